"""The detector names and the key-frame step the command line offers, importable without OpenCV (``abaw --help``
lists them without loading the detectors)."""

from __future__ import annotations

#: Face detectors of :func:`abaw.video.faces.create_detector`.
DETECTORS: tuple[str, ...] = ("yunet", "haar")
#: Person detectors of :func:`abaw.video.persons.create_person_detector`; ``face`` derives the box from the face.
PERSON_BACKENDS: tuple[str, ...] = ("yolo-fastest", "ultralytics", "face")
#: Faces are detected on every 5th frame and interpolated between (abaw.video.keyframes): on the real
#: clips of ../shared/assets/media that finds a face in exactly the same frames as detecting all of them, with
#: landmarks 1.2 % of the eye distance away on average, for a fifth of the detector's time.
DETECT_EVERY = 5

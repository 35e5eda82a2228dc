"""Face detection: YuNet (``cv2.FaceDetectorYN``: box, 5 landmarks, score) by default, and OpenCV's Haar cascade
as a fallback that needs no downloaded file (it gives no landmarks: they are estimated from the box).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from abaw.errors import AbawError
from abaw.video.choices import DETECTORS
from abaw.video.resize import resize

#: Where the 5 landmarks sit inside a Haar face box, as fractions of its width/height, in YuNet's order
#: (right eye, left eye, nose tip, right mouth corner, left mouth corner; the subject's right is the image's left).
#: Measured on Haar boxes of frontal faces; good enough to align a crop, not to measure expressions.
HAAR_LANDMARKS = np.array([[0.32, 0.39], [0.68, 0.39], [0.50, 0.58], [0.36, 0.77], [0.64, 0.77]], dtype=np.float32)


@dataclass
class FaceDetection:
    box: np.ndarray  # (4,) x, y, w, h in pixels
    landmarks: np.ndarray  # (5, 2) pixels, YuNet order
    score: float


def landmarks_from_box(box: np.ndarray) -> np.ndarray:
    """Estimated 5 landmarks (5, 2) for a face box (x, y, w, h) without landmarks."""
    x, y, w, h = (float(v) for v in box)
    return (HAAR_LANDMARKS * np.array([w, h], dtype=np.float32) + np.array([x, y], dtype=np.float32)).astype(
        np.float32)


class YuNetDetector:
    """YuNet through OpenCV; large frames are shrunk to ``max_side`` for speed and the results scaled back."""

    name = "yunet"

    def __init__(self, model_path: str | Path | None = None, score_threshold: float = 0.6,
                 nms_threshold: float = 0.3, max_side: int = 640) -> None:
        if model_path is None:
            from abaw.weights import fetch

            model_path = fetch("yunet")
        try:
            self._net = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320), score_threshold, nms_threshold,
                                                  5000)
        except cv2.error as exc:
            raise AbawError(f"cannot load YuNet ({exc.err})", path=model_path) from None
        self.max_side = max_side
        self._size: tuple[int, int] | None = None

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        height, width = image.shape[:2]
        scale = min(1.0, self.max_side / max(height, width)) if self.max_side else 1.0
        if scale < 1.0:
            image = resize(image, round(width * scale), round(height * scale))
        size = (image.shape[1], image.shape[0])
        if size != self._size:
            self._net.setInputSize(size)
            self._size = size
        _, faces = self._net.detect(image)
        if faces is None:
            return []
        out = []
        for row in faces:
            values = row[:14] / scale
            out.append(FaceDetection(values[:4].astype(np.float32), values[4:14].reshape(5, 2).astype(np.float32),
                                     float(row[14])))
        return out


class HaarDetector:
    """OpenCV's frontal-face Haar cascade (ships with opencv-python): no file to download, no landmarks."""

    name = "haar"

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24,
                 max_side: int = 640) -> None:
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise AbawError("cannot load the Haar cascade shipped with OpenCV", path=path)
        self.scale_factor, self.min_neighbors, self.min_size, self.max_side = (scale_factor, min_neighbors, min_size,
                                                                                max_side)

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        height, width = image.shape[:2]
        scale = min(1.0, self.max_side / max(height, width)) if self.max_side else 1.0
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if scale < 1.0:
            grey = resize(grey, round(width * scale), round(height * scale))
        grey = cv2.equalizeHist(grey)
        boxes, _, weights = self._cascade.detectMultiScale3(grey, self.scale_factor, self.min_neighbors,
                                                            minSize=(self.min_size, self.min_size),
                                                            outputRejectLevels=True)
        out = []
        for box, weight in zip(boxes, np.asarray(weights).reshape(-1), strict=False):
            box = np.asarray(box, dtype=np.float32) / scale
            # The cascade's last-stage weight is unbounded; squash it into (0, 1) so it reads like a confidence.
            score = float(1.0 / (1.0 + np.exp(-float(weight))))
            out.append(FaceDetection(box, landmarks_from_box(box), score))
        return out


def per_thread(factory: Callable[[], YuNetDetector | HaarDetector]) -> Callable[[np.ndarray], list[FaceDetection]]:
    """A detect function safe to call from several threads: each thread gets its own detector from ``factory``
    (OpenCV's detectors keep per-call state and must not be shared)."""
    local = threading.local()

    def detect(image: np.ndarray) -> list[FaceDetection]:
        if not hasattr(local, "detector"):
            local.detector = factory()
        return local.detector.detect(image)

    return detect


def create_detector(name: str = "yunet", **kwargs: object) -> YuNetDetector | HaarDetector:
    if name == "yunet":
        return YuNetDetector(**kwargs)
    if name == "haar":
        return HaarDetector(**kwargs)
    raise AbawError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")

"""Person (body) detection: Yolo-Fastest body through OpenCV DNN (offline default, files from the weights
catalogue), or an ultralytics YOLO model for users who have its weights. ``face`` means no detector: the person box is
derived from the face box (:func:`abaw.video.tracking.derived_person_box`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from abaw.errors import AbawError
from abaw.fileio import load_failure_reason
from abaw.video.choices import PERSON_BACKENDS

log = logging.getLogger(__name__)

PersonBox = tuple[np.ndarray, float]  # (x, y, w, h) in pixels, score


class YoloFastestBody:
    """Yolo-Fastest 1.1 body (one class, person), 320x320 Darknet model run by ``cv2.dnn``."""

    name = "yolo-fastest"

    def __init__(self, cfg: str | Path | None = None, weights: str | Path | None = None, input_size: int = 320,
                 score_threshold: float = 0.4, nms_threshold: float = 0.45) -> None:
        from abaw.weights import fetch

        cfg = cfg or fetch("yolo_fastest_body_cfg")
        weights = weights or fetch("yolo_fastest_body_weights")
        try:
            self._net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
        except cv2.error as exc:
            raise AbawError(f"cannot load the Yolo-Fastest body model ({exc.err})", path=weights) from None
        self._outputs = self._net.getUnconnectedOutLayersNames()
        self.input_size, self.score_threshold, self.nms_threshold = input_size, score_threshold, nms_threshold

    def detect(self, image: np.ndarray) -> list[PersonBox]:
        height, width = image.shape[:2]
        blob = cv2.dnn.blobFromImage(image, 1 / 255.0, (self.input_size, self.input_size), swapRB=True, crop=False)
        self._net.setInput(blob)
        rows = np.concatenate([out.reshape(-1, out.shape[-1]) for out in self._net.forward(self._outputs)])
        # Darknet region rows: cx, cy, w, h (relative), objectness, class scores (already times objectness).
        scores = rows[:, 5:].max(axis=1)
        keep = scores >= self.score_threshold
        rows, scores = rows[keep], scores[keep]
        boxes = np.stack([(rows[:, 0] - rows[:, 2] / 2) * width, (rows[:, 1] - rows[:, 3] / 2) * height,
                          rows[:, 2] * width, rows[:, 3] * height], axis=1) if len(rows) else np.zeros((0, 4))
        return _nms(boxes, scores, self.score_threshold, self.nms_threshold, width, height)


class UltralyticsPerson:
    """An ultralytics YOLO detector (COCO class 0 = person); ``model`` is a weights path or abaw.weights' yolov8n.

    ultralytics opens ``.pt`` files with ``weights_only=False`` (a pickle that can run code), so the file is checked
    first: the catalogue's yolov8n against its sha256, a given path against the catalogue's hashes; other bytes are
    refused unless ``trust_weights`` (``--trust-weights``).
    """

    name = "ultralytics"

    def __init__(self, model: str | Path | None = None, score_threshold: float = 0.4, device: str = "cpu",
                 trust_weights: bool = False) -> None:
        from abaw import weights

        if model is None:
            model = weights.fetch("yolov8n", trust=trust_weights)
        else:
            model = weights.check_file(model, trust_weights)
        try:
            from ultralytics import YOLO
        except ImportError as exc:  # pragma: no cover - ultralytics is a dependency
            raise AbawError(f"the ultralytics backend needs the ultralytics package ({exc})") from None
        try:
            self._model = YOLO(str(model))
        except Exception as exc:  # a trusted file that is no ultralytics model: one line, not a traceback
            raise AbawError(f"cannot load the ultralytics model: {load_failure_reason(exc)}", path=model) from None
        self.score_threshold, self.device = score_threshold, device

    def detect(self, image: np.ndarray) -> list[PersonBox]:
        result = self._model.predict(image, classes=[0], conf=self.score_threshold, device=self.device,
                                     verbose=False)[0]
        xyxy = result.boxes.xyxy.cpu().numpy()
        conf = result.boxes.conf.cpu().numpy()
        return [(np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float32), float(c))
                for (x0, y0, x1, y1), c in zip(xyxy, conf, strict=True)]


class NoPersonDetector:
    """``--person face``: detect nothing, so every person box is derived from the face."""

    name = "face"

    def detect(self, image: np.ndarray) -> list[PersonBox]:
        return []


def _nms(boxes: np.ndarray, scores: np.ndarray, score_threshold: float, nms_threshold: float, width: int,
         height: int) -> list[PersonBox]:
    if not len(boxes):
        return []
    keep = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), score_threshold, nms_threshold)
    out = []
    for i in np.asarray(keep).reshape(-1):
        x, y, w, h = boxes[i]
        x0, y0 = max(0.0, x), max(0.0, y)
        x1, y1 = min(float(width), x + w), min(float(height), y + h)
        if x1 > x0 and y1 > y0:
            out.append((np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float32), float(scores[i])))
    return out


def create_person_detector(name: str = "yolo-fastest", trust_weights: bool = False,
                           weights: str | Path | None = None, **kwargs: object):
    """The person detector ``name``; ``trust_weights`` (``--trust-weights``) and ``weights`` (``--person-weights``,
    checked by :func:`abaw.weights.check_file`) matter only to the ultralytics one."""
    if weights is not None and name != "ultralytics":
        raise AbawError(f"a person weights file is for the ultralytics detector, not {name!r}", path=weights)
    if name == "yolo-fastest":
        return YoloFastestBody(**kwargs)
    if name == "ultralytics":
        return UltralyticsPerson(model=weights, trust_weights=trust_weights, **kwargs)
    if name == "face":
        return NoPersonDetector()
    raise AbawError(f"unknown person detector {name!r}; choose one of {', '.join(PERSON_BACKENDS)}")


def check_person_weights(name: str, trust_weights: bool = False, path: str | Path | None = None) -> None:
    """Check the weights file of person detector ``name`` now, before any work, so that a refused file stops a
    command once rather than failing every video: ``path`` (``--person-weights``; it must exist) by
    :func:`abaw.weights.check_file`, else the catalogue's present copy (a missing one is fetched later, when needed)."""
    if name == "ultralytics":
        from abaw import weights

        if path is not None:
            weights.check_file(path, trust_weights)
            return
        found = weights.locate("yolov8n")
        if found is not None:
            weights.checked("yolov8n", found, trust_weights)

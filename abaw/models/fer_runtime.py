"""The FER2013 mini-Xception at run time, without torch: OpenCV's DNN module runs an ONNX export of the model.

Importing torch costs ``abaw predict`` 1.5-1.9 s of start-up, more than it spends on a short clip, for a network of
60 k parameters. So the PyTorch port (:mod:`abaw.models.fer`, the reference) is exported to ONNX once, on first use:
that one time imports torch and onnx and logs one line. The export is written atomically into the weights cache
(:func:`abaw.weights.cache_dir`) and named after the source ``.hdf5`` and the start of its sha256
(:func:`export_filename`), so another ``.hdf5`` never reuses it; it is looked for in the offline folder
(``ABAW_WEIGHTS_DIR``) first, then in the cache. Later runs only read it, with ``cv2.dnn.readNetFromONNX``.

Backends of :class:`ExpressionClassifier`: ``opencv`` (the export), ``torch`` (the PyTorch model, the reference) and
``auto``: ``opencv`` on the CPU when the export exists or can be made, else ``torch`` (one log line says why). Both
give the same probabilities within 1e-4 (tests/test_fer.py); the softmax is computed here, in numpy, for both.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from abaw import tasks, weights
from abaw.errors import AbawError
from abaw.video.resize import resize

log = logging.getLogger(__name__)

WEIGHTS_NAME = "fer2013_mini_xception"
FER2013_CLASSES = tasks.FER2013_CLASSES
#: FER2013 output index -> index in ``abaw.tasks.EXPR_CLASSES_7`` (every FER2013 class exists in ABAW's 7).
FER2013_TO_ABAW: dict[int, int] = tasks.class_mapping(FER2013_CLASSES, tasks.EXPR_CLASSES_7)
INPUT_SIZE = 64  # the model's (abaw.models.fer.MiniXception.input_size; tests/test_fer.py checks they agree)
BACKENDS = ("auto", "opencv", "torch")
#: Part of the export's file name: raise it when the export recipe (abaw.models.fer.export_onnx) changes its output.
EXPORT_VERSION = 1
#: Crops per forward pass. OpenCV's time per crop grows with larger batches here (1 ms at 16-64, 3 ms at 512).
BATCH_SIZE = 32


def preprocess(faces_bgr: list[np.ndarray]) -> np.ndarray:
    """BGR (or grey) face crops -> (N, 1, 64, 64) float32 in [-1, 1], as the Keras training code did."""
    batch = np.zeros((len(faces_bgr), 1, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for i, face in enumerate(faces_bgr):
        grey = face if face.ndim == 2 else cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
        grey = resize(grey, INPUT_SIZE, INPUT_SIZE)
        batch[i, 0] = grey.astype(np.float32) / 255.0 * 2.0 - 1.0
    return batch


def to_abaw_order(probs_fer: np.ndarray) -> np.ndarray:
    """Reorder (..., 7) FER2013-ordered probabilities into ``abaw.tasks.EXPR_CLASSES_7`` order."""
    out = np.zeros(probs_fer.shape[:-1] + (len(tasks.EXPR_CLASSES_7),), dtype=probs_fer.dtype)
    for src, dst in FER2013_TO_ABAW.items():
        out[..., dst] = probs_fer[..., src]
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits, in float32."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def face_crop_for_fer(image: np.ndarray, box: tuple[float, float, float, float], margin: float = 0.1) -> np.ndarray:
    """The face box widened by ``margin`` on each side, clipped to the image (the crop FER2013 faces resemble)."""
    x, y, w, h = box
    height, width = image.shape[:2]
    x0, y0 = int(max(0, np.floor(x - margin * w))), int(max(0, np.floor(y - margin * h)))
    x1, y1 = int(min(width, np.ceil(x + w * (1 + margin)))), int(min(height, np.ceil(y + h * (1 + margin))))
    if x1 <= x0 or y1 <= y0:
        return np.zeros((INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    return image[y0:y1, x0:x1]


def export_filename(source: str | Path) -> str:
    """The ONNX export's file name for the Keras file ``source``: its stem, the first 16 hex digits of its sha256
    and :data:`EXPORT_VERSION` (``fer2013_mini_XCEPTION.102-0.66.59534287fdfb125e.v1.onnx``)."""
    source = Path(source)
    return f"{source.stem}.{weights.sha256_of(source)[:16]}.v{EXPORT_VERSION}.onnx"


def onnx_export(source: str | Path, make: bool = True) -> Path | None:
    """The ONNX export of the Keras file ``source``: found in the offline folder or the cache, else (``make``) made
    once into the cache (imports torch and onnx), else None."""
    name = export_filename(source)
    found = weights.locate_file(name)
    if found is not None or not make:
        return found
    from abaw.models.fer import export_onnx, load_mini_xception  # torch: only the one time the export is made

    dest = weights.cache_dir() / name
    export_onnx(load_mini_xception(source), dest)
    log.debug("FER: exported %s to ONNX once, for OpenCV: %s", source, dest)
    return dest


class Logits(Protocol):
    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


class OpenCVLogits:
    """(N, 1, 64, 64) float32 -> (N, 7) logits with ``cv2.dnn`` on an ONNX export. One network per instance: a
    ``cv2.dnn.Net`` is not to be shared between threads."""

    def __init__(self, path: str | Path) -> None:
        try:
            self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            reason = str(exc).strip().splitlines()[-1][:200]
            raise AbawError(f"OpenCV cannot read this ONNX export of the FER model ({reason}); delete it to have it "
                            "made again", path=path) from None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.net.setInput(np.ascontiguousarray(batch, dtype=np.float32))
        return np.asarray(self.net.forward(), dtype=np.float32).reshape(len(batch), -1)


def _backend(source: Path, backend: str, device: str) -> tuple[str, Logits]:
    """The backend name :class:`ExpressionClassifier` uses and its logits function."""
    if backend not in BACKENDS:
        raise AbawError(f"unknown FER backend {backend!r}; known: {', '.join(BACKENDS)}")
    on_cpu = str(device) == "cpu"
    if backend == "opencv" and not on_cpu:
        raise AbawError(f"the opencv FER backend runs on the CPU only (device {device!r}); use backend 'torch'")
    if backend == "opencv" or (backend == "auto" and on_cpu):
        try:
            return "opencv", OpenCVLogits(onnx_export(source))
        except ImportError as exc:
            if backend == "opencv":
                raise AbawError(f"the opencv FER backend needs the ONNX export, made once with torch and onnx: "
                                f"{exc.name or exc} is not installed") from None
            log.info("FER: running the PyTorch model (%s is not installed, so no ONNX export for OpenCV)",
                     exc.name or exc)
        except OSError as exc:  # the cache cannot be written: the export cannot be kept
            if backend == "opencv":
                raise AbawError(f"cannot write the ONNX export of the FER model ({exc.strerror or exc})",
                                path=exc.filename) from None
            log.info("FER: running the PyTorch model (the ONNX export cannot be written: %s)", exc.strerror or exc)
    from abaw.models.fer import TorchLogits

    return "torch", TorchLogits(source, device)


class ExpressionClassifier:
    """Face crops in, probabilities in ABAW's 7-class order out (``abaw.tasks.EXPR_CLASSES_7``).

    ``path``: the Keras ``.hdf5`` (default: catalogue file ``fer2013_mini_xception``, fetched and sha256-checked);
    ``backend``: ``auto``, ``opencv`` or ``torch`` (module docstring); ``device``: the torch backend's device.
    """

    classes = tasks.EXPR_CLASSES_7

    def __init__(self, path: str | Path | None = None, backend: str = "auto", device: Any = "cpu") -> None:
        self.source = Path(path) if path is not None else weights.fetch(WEIGHTS_NAME)
        if not self.source.is_file():
            raise AbawError("FER weights file not found", path=self.source)
        self.backend, self.logits = _backend(self.source, backend, device)

    def predict(self, faces_bgr: list[np.ndarray], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """(N, 7) float32 probabilities for N crops, in ABAW's class order."""
        if not len(faces_bgr):
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        probs = [softmax(self.logits(preprocess(faces_bgr[start:start + batch_size])))
                 for start in range(0, len(faces_bgr), batch_size)]
        return to_abaw_order(np.concatenate(probs))

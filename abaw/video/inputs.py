"""Body and context inputs from a person box (the NTUA-CVSP streams, made from the person's box as intended).

body: the person box made square around its centre (padded with black outside the frame), resized.
context: the whole frame with the person box blacked out, resized.
"""

from __future__ import annotations

import numpy as np

from abaw.video.resize import resize

DEFAULT_SIZE = 112


def square_box(box: np.ndarray, scale: float = 1.0) -> tuple[int, int, int]:
    """(x0, y0, side) of the square of side ``max(w, h) * scale`` centred on box (x, y, w, h)."""
    x, y, w, h = (float(v) for v in box)
    side = max(1, int(round(max(w, h) * scale)))
    return int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2)), side


def crop_padded(image: np.ndarray, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """``image[y0:y0+height, x0:x0+width]`` with black where the window leaves the image."""
    out = np.zeros((height, width) + image.shape[2:], dtype=image.dtype)
    ih, iw = image.shape[:2]
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(iw, x0 + width), min(ih, y0 + height)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def body_input(image: np.ndarray, person_box: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """The person's square crop (size, size, 3)."""
    x0, y0, side = square_box(person_box)
    crop = crop_padded(image, x0, y0, side, side)
    return resize(crop, size, size)


def context_input(image: np.ndarray, person_box: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """The frame with the person box blacked out (size, size, 3); the frame's aspect ratio is not kept."""
    out = image.copy()
    x, y, w, h = (float(v) for v in person_box)
    ih, iw = image.shape[:2]
    x0, y0 = max(0, int(np.floor(x))), max(0, int(np.floor(y)))
    x1, y1 = min(iw, int(np.ceil(x + w))), min(ih, int(np.ceil(y + h)))
    out[y0:y1, x0:x1] = 0
    return resize(out, size, size)

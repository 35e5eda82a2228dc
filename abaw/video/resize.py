"""Resizing images the way every stream does it: area averaging when shrinking, bilinear when enlarging.

OpenCV's ``INTER_AREA`` is slow for non-integer ratios (0.5 ms for a 640x360 frame to 112x112, 4.4 ms from 1080p on
one core) but has a fast path for an exact halving. Halving first while the image is at least twice the target,
then one area resize, gives about the same picture (0.3 grey levels apart on average on a video frame) 2.5x
(640x360) to 7x (1080p) faster.
"""

from __future__ import annotations

import cv2
import numpy as np


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` resized to ``width`` x ``height``: area averaging to shrink, bilinear to enlarge."""
    # Halve while both sides are even (an odd side would shift the sampling grid) and still twice the target.
    while image.shape[1] >= 2 * width and image.shape[0] >= 2 * height and not (image.shape[0] | image.shape[1]) & 1:
        h, w = image.shape[:2]
        image = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrink = image.shape[1] >= width and image.shape[0] >= height
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)

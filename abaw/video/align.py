"""Face alignment by 5 landmarks to a fixed 112x112 template (comparable to Aff-Wild2's ``cropped_aligned``).

Shared by the synthetic generator (ground-truth landmarks) and the real-video pipeline (detected landmarks), so the
crops a model trains on look the same whichever way they were made.
"""

from __future__ import annotations

import cv2
import numpy as np

#: The widely used 5-point template for 112x112 face crops (ArcFace / InsightFace), in YuNet's landmark order:
#: right eye, left eye, nose tip, right mouth corner, left mouth corner (the subject's right is the image's left).
TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
CROP_SIZE = 112


def template(size: int = CROP_SIZE) -> np.ndarray:
    """The landmark template scaled to a ``size`` x ``size`` crop."""
    return TEMPLATE_112 * (size / CROP_SIZE)


def alignment_matrix(landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """2x3 similarity transform taking the 5 ``landmarks`` (5, 2) onto the template."""
    src = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    matrix, _ = cv2.estimateAffinePartial2D(src, template(size), method=cv2.LMEDS)
    if matrix is None:  # degenerate landmarks: fall back to a least-squares fit on all points
        matrix, _ = cv2.estimateAffinePartial2D(src, template(size), method=0)
    if matrix is None:
        raise ValueError("landmarks are degenerate; cannot align")
    return matrix


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Warp ``image`` (H, W, 3, BGR or RGB) so that ``landmarks`` land on the template; returns (size, size, 3)."""
    matrix = alignment_matrix(landmarks, size)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

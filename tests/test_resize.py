"""abaw.video.resize: halving then area averaging gives OpenCV's INTER_AREA picture, faster."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from abaw.video.resize import resize


def natural(h: int, w: int, channels: int = 3) -> np.ndarray:
    """A smooth image with some texture (random noise would make any two resamplers disagree)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 128 + 60 * np.sin(x / 17.0) * np.cos(y / 23.0) + 20 * np.sin((x + y) / 11.0)
    image = np.stack([base, base[::-1], base[:, ::-1]][:channels], axis=-1)
    return np.clip(image, 0, 255).astype(np.uint8).squeeze()


@pytest.mark.parametrize("shape,size", [((360, 640), (112, 112)), ((1080, 1920), (160, 90)), ((301, 299), (112, 112)),
                                        ((540, 960), (640, 360))])
def test_shrinking_matches_inter_area(shape: tuple[int, int], size: tuple[int, int]) -> None:
    image = natural(*shape)
    out = resize(image, *size)
    ref = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    assert out.shape == ref.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - ref).mean() < 2.0  # grey levels of 255


def test_enlarging_is_bilinear_and_same_size_is_unchanged() -> None:
    image = natural(50, 40)
    np.testing.assert_array_equal(resize(image, 80, 100), cv2.resize(image, (80, 100), interpolation=cv2.INTER_LINEAR))
    assert resize(image, 40, 50) is image


def test_grey_images() -> None:
    grey = natural(480, 640, channels=1)
    assert resize(grey, 64, 64).shape == (64, 64)


def test_a_real_photo(media_dir: Path) -> None:
    image = cv2.imread(str(media_dir / "multi_face.jpg"))
    for size in ((112, 112), (250, 160)):
        ref = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        assert np.abs(resize(image, *size).astype(int) - ref).mean() < 1.0

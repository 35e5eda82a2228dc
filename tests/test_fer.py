"""abaw.models.fer: the mini-Xception port reproduces the Keras model, checked against an independent numpy/scipy
computation read straight from the .hdf5, and its FER2013 class order is mapped explicitly onto ours."""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from abaw import tasks
from abaw.models import fer

H5 = "fer2013_mini_XCEPTION.102-0.66.hdf5"


@pytest.fixture(scope="module")
def h5_path(weights_dir: Path) -> Path:
    return weights_dir / H5


@pytest.fixture(scope="module")
def model(h5_path: Path) -> fer.MiniXception:
    return fer.load_mini_xception(h5_path)


def keras_layer(path: Path, layer: str) -> dict[str, np.ndarray]:
    """A layer's arrays read directly with h5py (Keras 2 layout: model_weights/<layer>/<layer>_1/<name>:0)."""
    with h5py.File(path, "r") as fh:
        (inner,) = fh["model_weights"][layer].values()
        return {key.split(":")[0]: np.asarray(inner[key], dtype=np.float64) for key in inner}


def np_conv_valid(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Keras Conv2D 'valid', channels last: x (H, W, Cin), kernel (kh, kw, Cin, Cout) -> (H', W', Cout)."""
    return np.stack([sum(correlate2d(x[..., i], kernel[..., i, o], mode="valid") for i in range(x.shape[-1]))
                     for o in range(kernel.shape[-1])], axis=-1)


def np_bn(x: np.ndarray, bn: dict[str, np.ndarray], eps: float = 1e-3) -> np.ndarray:
    return bn["gamma"] * (x - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + eps) + bn["beta"]


def np_separable_same(x: np.ndarray, sep: dict[str, np.ndarray]) -> np.ndarray:
    """Keras SeparableConv2D 3x3 'same', no bias: depthwise then pointwise."""
    depthwise = sep["depthwise_kernel"]  # (3, 3, C, 1)
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    dw = np.stack([correlate2d(padded[..., c], depthwise[..., c, 0], mode="valid") for c in range(x.shape[-1])], -1)
    return dw @ sep["pointwise_kernel"][0, 0]  # (C, Cout)


def test_first_layers_match_an_independent_computation(model: fer.MiniXception, h5_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (64, 64)).astype(np.float64)
    # Stem: conv 3x3 valid -> BN -> ReLU, twice; then the first separable conv + BN of module 1.
    x = np.maximum(np_bn(np_conv_valid(image[..., None], keras_layer(h5_path, "conv2d_1")["kernel"]),
                         keras_layer(h5_path, "batch_normalization_1")), 0)
    x = np.maximum(np_bn(np_conv_valid(x, keras_layer(h5_path, "conv2d_2")["kernel"]),
                         keras_layer(h5_path, "batch_normalization_2")), 0)
    sep = np_bn(np_separable_same(x, keras_layer(h5_path, "separable_conv2d_1")),
                keras_layer(h5_path, "batch_normalization_4"))
    residual = np_bn(np_conv_valid(x[::2, ::2], keras_layer(h5_path, "conv2d_3")["kernel"]),
                     keras_layer(h5_path, "batch_normalization_3"))  # 1x1 stride 2 'same' on an even size
    with torch.inference_mode():
        inp = torch.from_numpy(image[None, None].astype(np.float32))
        stem = model.stem(inp)
        block = model.blocks[0]
        ours_sep = block.main[1](block.main[0](stem))
        ours_res = block.residual(stem)
    assert stem.shape == (1, 8, 60, 60)
    np.testing.assert_allclose(stem[0].permute(1, 2, 0).numpy(), x, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours_sep[0].permute(1, 2, 0).numpy(), sep, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours_res[0].permute(1, 2, 0).numpy(), residual, rtol=1e-4, atol=1e-4)


def test_head_matches_numpy_and_softmax_sums_to_one(model: fer.MiniXception, h5_path: Path) -> None:
    """The last conv (3x3 'same', with bias) + global average pooling, recomputed in numpy from the h5 arrays."""
    rng = np.random.default_rng(1)
    features = rng.normal(size=(1, 128, 4, 4)).astype(np.float32)
    head = keras_layer(h5_path, "conv2d_7")
    x = np.pad(features[0].transpose(1, 2, 0).astype(np.float64), ((1, 1), (1, 1), (0, 0)))
    logits = (np_conv_valid(x, head["kernel"]) + head["bias"]).mean(axis=(0, 1))
    with torch.inference_mode():
        ours = model.head(torch.from_numpy(features)).mean(dim=(2, 3))[0].numpy()
        probs = torch.softmax(model(torch.from_numpy(rng.uniform(-1, 1, (3, 1, 64, 64)).astype(np.float32))), 1)
    np.testing.assert_allclose(ours, logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(probs.sum(1).numpy(), 1.0, atol=1e-5)


def test_every_keras_weight_is_used_once(h5_path: Path) -> None:
    keras = fer.read_keras_weights(h5_path)
    state = fer.load_state_dict(h5_path)
    n_keras = sum(a.size for a in keras.values())
    n_ours = sum(t.numel() for k, t in state.items() if not k.endswith("num_batches_tracked"))
    assert n_ours == n_keras
    assert set(fer.MiniXception().state_dict()) == set(state)


def test_class_order_is_mapped_explicitly() -> None:
    assert fer.FER2013_CLASSES == ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Neutral")
    for src, name in enumerate(fer.FER2013_CLASSES):
        onehot = np.eye(7, dtype=np.float32)[src]
        assert tasks.EXPR_CLASSES_7[int(fer.to_abaw_order(onehot).argmax())] == name
    assert sorted(fer.FER2013_TO_ABAW.values()) == list(range(7))


def test_real_faces_give_plausible_expressions(media_dir: Path, weights_dir: Path, h5_path: Path) -> None:
    from abaw.video.faces import YuNetDetector

    detector = YuNetDetector(weights_dir / "yunet_s_640_640.onnx")
    classifier = fer.ExpressionClassifier(h5_path)
    crops = []
    for name in ("astronaut.png", "single_face.jpg"):
        image = cv2.imread(str(media_dir / name))
        face = max(detector.detect(image), key=lambda f: f.score)
        crops.append(fer.face_crop_for_fer(image, tuple(face.box)))
    probs = classifier.predict(crops)
    assert probs.shape == (2, 7)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    # Both photos show a smiling or calm face: the top class is happiness or neutral, never disgust/fear/anger.
    top = [tasks.EXPR_CLASSES_7[i] for i in probs.argmax(1)]
    assert set(top) <= {"Happiness", "Neutral"}, top


def test_not_a_keras_file_is_one_line(tmp_path: Path) -> None:
    from abaw.errors import AbawError

    bad = tmp_path / "bad.hdf5"
    bad.write_text("no")
    with pytest.raises(AbawError, match="not a readable Keras"):
        fer.load_mini_xception(bad)

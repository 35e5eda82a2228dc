"""abaw.models.fer: the mini-Xception port reproduces the Keras model, checked against an independent numpy/scipy
computation read straight from the .hdf5, and its FER2013 class order is mapped explicitly onto ours.
abaw.models.fer_runtime: its ONNX export run by OpenCV gives the PyTorch model's probabilities, is made once per
source file and reused, and ``abaw predict``'s default predictor then runs without torch."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from abaw import tasks
from abaw.models import fer, fer_runtime
from tests.helpers.fer_keras import random_mini_xception, write_keras_h5

H5 = "fer2013_mini_XCEPTION.102-0.66.hdf5"


@pytest.fixture(scope="module")
def h5_path(weights_dir: Path) -> Path:
    if not (weights_dir / H5).is_file():
        pytest.skip(f"{H5} not found in {weights_dir}")
    return weights_dir / H5


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private weights cache: the ONNX exports the tests make go there, not into the user's."""
    monkeypatch.setenv("ABAW_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


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
    assert fer_runtime.FER2013_CLASSES == ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Neutral")
    for src, name in enumerate(fer_runtime.FER2013_CLASSES):
        onehot = np.eye(7, dtype=np.float32)[src]
        assert tasks.EXPR_CLASSES_7[int(fer_runtime.to_abaw_order(onehot).argmax())] == name
    assert sorted(fer_runtime.FER2013_TO_ABAW.values()) == list(range(7))


def test_real_faces_give_plausible_expressions(media_dir: Path, weights_dir: Path, h5_path: Path,
                                               cache: Path) -> None:
    from abaw.video.faces import YuNetDetector

    detector = YuNetDetector(weights_dir / "yunet_s_640_640.onnx")
    classifier = fer_runtime.ExpressionClassifier(h5_path)
    crops = []
    for name in ("astronaut.png", "single_face.jpg"):
        image = cv2.imread(str(media_dir / name))
        face = max(detector.detect(image), key=lambda f: f.score)
        crops.append(fer_runtime.face_crop_for_fer(image, tuple(face.box)))
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


def random_crops(seed: int = 0) -> list[np.ndarray]:
    """Face-crop-like inputs of several sizes, smaller and larger than the model's 64x64: lit gradients with noise
    (BGR), pure noise, a grey and a black crop."""
    rng = np.random.default_rng(seed)
    crops = []
    for i, (h, w) in enumerate([(40, 37), (64, 64), (130, 118), (97, 201), (64, 80)]):
        light = np.linspace(0, 255, w)[None, :] * np.linspace(0.2, 1, h)[:, None] * (i + 1) / 5
        grey = np.clip(light + rng.normal(0, 10 + 20 * i, (h, w)), 0, 255).astype(np.uint8)
        crops.append(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    crops += [rng.integers(0, 256, (88, 72, 3), dtype=np.uint8), np.full((70, 66), 200, np.uint8),
              np.zeros((50, 50, 3), np.uint8)]
    return crops


@pytest.fixture()
def random_h5(tmp_path: Path) -> Path:
    return write_keras_h5(random_mini_xception(seed=0), tmp_path / "random_mini_xception.hdf5")


def test_the_keras_writer_of_the_tests_round_trips(random_h5: Path) -> None:
    reference = random_mini_xception(seed=0).state_dict()
    loaded = fer.load_mini_xception(random_h5).state_dict()
    for key, value in reference.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)


def test_input_size_agrees() -> None:
    assert fer.MiniXception.input_size == fer_runtime.INPUT_SIZE


@pytest.mark.parametrize("batch_size", [32, 3, 1])
def test_opencv_equals_torch_on_a_random_model(random_h5: Path, cache: Path, batch_size: int) -> None:
    crops = random_crops()
    opencv = fer_runtime.ExpressionClassifier(random_h5, backend="opencv")
    torch_ = fer_runtime.ExpressionClassifier(random_h5, backend="torch")
    assert (opencv.backend, torch_.backend) == ("opencv", "torch")
    got, want = opencv.predict(crops, batch_size=batch_size), torch_.predict(crops, batch_size=batch_size)
    assert got.shape == want.shape == (len(crops), 7) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
    assert np.ptp(got, axis=0).max() > 5e-3  # different inputs give different outputs: the comparison tells
    # and the logits themselves, before the softmax, agree too
    batch = fer_runtime.preprocess(crops)
    np.testing.assert_allclose(opencv.logits(batch), torch_.logits(batch), rtol=0, atol=1e-4)


def test_opencv_equals_torch_on_the_real_weights(h5_path: Path, media_dir: Path, cache: Path) -> None:
    crops = random_crops(1) + [cv2.imread(str(media_dir / "single_face.jpg"))]
    opencv = fer_runtime.ExpressionClassifier(h5_path, backend="opencv")
    torch_ = fer_runtime.ExpressionClassifier(h5_path, backend="torch")
    np.testing.assert_allclose(opencv.predict(crops), torch_.predict(crops), rtol=0, atol=1e-4)


def test_the_export_is_made_once_then_reused(random_h5: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("ABAW_WEIGHTS_DIR", raising=False)
    with caplog.at_level(logging.DEBUG, logger="abaw"):
        first = fer_runtime.ExpressionClassifier(random_h5)
    assert first.backend == "opencv"
    export = cache / fer_runtime.export_filename(random_h5)
    assert export.is_file() and sorted(p.name for p in cache.iterdir()) == [export.name]  # no temporary file left
    assert sum("exported" in r.getMessage() for r in caplog.records) == 1
    mtime = export.stat().st_mtime_ns

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(fer, "export_onnx", no_export)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="abaw"):
        second = fer_runtime.ExpressionClassifier(random_h5)
    assert second.backend == "opencv" and export.stat().st_mtime_ns == mtime and not caplog.records
    crops = random_crops()
    np.testing.assert_array_equal(first.predict(crops), second.predict(crops))


def test_another_source_gets_its_own_export(random_h5: Path, cache: Path, tmp_path: Path) -> None:
    other = write_keras_h5(random_mini_xception(seed=1), tmp_path / "other" / random_h5.name)  # same file name
    assert fer_runtime.export_filename(other) != fer_runtime.export_filename(random_h5)
    a, b = fer_runtime.ExpressionClassifier(random_h5), fer_runtime.ExpressionClassifier(other)
    assert (cache / fer_runtime.export_filename(random_h5)).is_file()
    assert (cache / fer_runtime.export_filename(other)).is_file()
    crops = random_crops()
    assert np.abs(a.predict(crops) - b.predict(crops)).max() > 1e-3
    np.testing.assert_allclose(b.predict(crops), fer_runtime.ExpressionClassifier(other, backend="torch")
                               .predict(crops), rtol=0, atol=1e-4)


def test_an_export_in_the_offline_folder_is_used(random_h5: Path, cache: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    offline = tmp_path / "offline"
    fer.export_onnx(fer.load_mini_xception(random_h5), offline / fer_runtime.export_filename(random_h5))
    monkeypatch.setenv("ABAW_WEIGHTS_DIR", str(offline))
    monkeypatch.setattr(fer, "export_onnx", None)  # never called
    assert fer_runtime.ExpressionClassifier(random_h5).backend == "opencv"
    assert not cache.exists()


def test_without_onnx_auto_runs_torch_and_opencv_says_why(random_h5: Path, cache: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    from abaw.errors import AbawError

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    with caplog.at_level(logging.INFO, logger="abaw"):
        classifier = fer_runtime.ExpressionClassifier(random_h5)
    assert classifier.backend == "torch"
    assert [r.getMessage() for r in caplog.records if "PyTorch" in r.getMessage()] == [
        "FER: running the PyTorch model (onnx is not installed, so no ONNX export for OpenCV)"]
    assert classifier.predict(random_crops()).shape == (8, 7)
    with pytest.raises(AbawError, match="onnx is not installed"):
        fer_runtime.ExpressionClassifier(random_h5, backend="opencv")
    with pytest.raises(AbawError, match="unknown FER backend"):
        fer_runtime.ExpressionClassifier(random_h5, backend="tensorflow")
    assert not cache.exists()


def test_a_damaged_export_is_one_line(random_h5: Path, cache: Path) -> None:
    from abaw.errors import AbawError

    export = cache / fer_runtime.export_filename(random_h5)
    export.parent.mkdir(parents=True)
    export.write_bytes(b"not an onnx file")
    with pytest.raises(AbawError, match="OpenCV cannot read this ONNX export") as info:
        fer_runtime.ExpressionClassifier(random_h5)
    assert "\n" not in str(info.value) and str(export) in str(info.value)


NO_TORCH = """
import json, sys
import numpy as np
import abaw.apps.predict as predict
predictor = predict.FerPredictor(*sys.argv[1:])
probs = predictor.classifier.predict([np.full((90, 80, 3), 128, np.uint8)])
print(json.dumps({"backend": predictor.classifier.backend, "sum": float(probs.sum()),
                  "heavy": sorted(m for m in ("torch", "scipy", "h5py", "onnx") if m in sys.modules)}))
"""


def _predictor_in_a_fresh_process(env: dict[str, str], *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_the_predictor_runs_without_torch_once_the_export_exists(random_h5: Path, cache: Path) -> None:
    fer_runtime.ExpressionClassifier(random_h5)  # makes the export
    out = _predictor_in_a_fresh_process({"ABAW_CACHE_DIR": str(cache)}, str(random_h5))
    assert out["backend"] == "opencv" and out["heavy"] == [] and abs(out["sum"] - 1) < 1e-5


def test_the_default_predictor_runs_without_torch(h5_path: Path, cache: Path) -> None:
    """``abaw predict``'s default model, from the catalogue file in the offline folder and its export in the cache."""
    fer_runtime.ExpressionClassifier(h5_path)
    out = _predictor_in_a_fresh_process({"ABAW_CACHE_DIR": str(cache), "ABAW_WEIGHTS_DIR": str(h5_path.parent)})
    assert out["backend"] == "opencv" and out["heavy"] == [] and abs(out["sum"] - 1) < 1e-5


def test_weights_convert_makes_the_export_ahead_of_use(h5_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    from tests.helpers.cli import run_cli

    monkeypatch.setenv("ABAW_WEIGHTS_DIR", str(h5_path.parent))
    code, out, _ = run_cli(capsys, "weights", "convert", "fer2013_mini_xception")
    export = cache / fer_runtime.export_filename(h5_path)
    assert code == 0 and out.strip() == f"fer2013_mini_xception: {export}" and export.is_file()
    mtime = export.stat().st_mtime_ns
    assert run_cli(capsys, "weights", "convert", "fer2013_mini_xception")[0] == 0  # already there: kept as it is
    assert export.stat().st_mtime_ns == mtime
    assert fer_runtime.ExpressionClassifier().backend == "opencv"

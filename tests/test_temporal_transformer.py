"""The transformer temporal model: options, masking of padding and frames without input, positions for windows
longer than training, a local attention window; and a run trained from the feature cache that evaluates, predicts
and joins an ensemble beside a GRU run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from abaw.cli import main
from abaw.errors import AbawError
from abaw.models import create_model, list_models
from abaw.models.temporal_transformer import TemporalTransformer

D = 16  # width of the fake cached features
TINY = dict(backbone="tiny_cnn", hidden_size=16, heads=2, num_layers=2, dropout=0.0)


def cached(b: int, t: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"face_feat": torch.randn(b, t, 128, generator=g), "face_valid": torch.ones(b, t, dtype=torch.bool)}


def model(**kwargs) -> TemporalTransformer:
    torch.manual_seed(0)
    return create_model("temporal_transformer", **{**TINY, **kwargs}).eval()


def test_registered_and_options_checked() -> None:
    assert "temporal_transformer" in list_models()
    m = model(positional="RELATIVE", mask_invalid="false", streams=["face", "audio"], tasks=[1, "au"])
    assert (m.config.positional, m.config.mask_invalid, m.stream_names, m.tasks) == (
        "relative", False, ("face", "audio"), ("va", "au"))
    assert m.embedding_dim == 16 and len(m.fusion.encoder.layers) == 2 and m.fusion.encoder.layers[0].norm_first
    assert not any(p.requires_grad for p in m.stream_encoders()["face"].parameters())  # frozen features by default
    for kwargs, message in [({"head": 2}, r"unknown model option 'head' of 'temporal_transformer' \(did you mean "
                                          r"'heads'\?\)"),
                            ({"heads": 3}, r"'hidden_size' of 'temporal_transformer' \(16\) must be a multiple of "
                                           r"'heads' \(3\)"),
                            ({"positional": "rope"}, "'positional' of 'temporal_transformer' must be one of"),
                            ({"cell_type": "lstm"}, "'cell_type' of 'temporal_transformer' is an RNN-fusion option"),
                            ({"fusion": "late"}, "'fusion' of 'temporal_transformer' is an RNN-fusion option"),
                            ({"attention_window": -1}, "'attention_window' of 'temporal_transformer' must be at "
                                                       "least 0")]:
        with pytest.raises(AbawError, match=message) as info:
            model(**kwargs)
        assert len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize("positional", ["sinusoidal", "learned", "relative", "none"])
def test_padding_and_frames_without_input_are_not_attended_to(positional: str) -> None:
    m = model(positional=positional)
    inputs = cached(2, 8)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, 6:] = False
    inputs["face_valid"][0, 2] = False
    with torch.no_grad():
        base = m(inputs, mask)
        changed = {k: v.clone() for k, v in inputs.items()}
        changed["face_feat"][1, 6:] = 9.0  # padding
        changed["face_feat"][0, 2] = -9.0  # no face: zeroed by the stream, and not a key
        again = m(changed, mask)
        # a frame without input is masked like padding: the other frames see the same keys either way
        as_padding = mask.clone()
        as_padding[0, 2] = False
        padded = m(inputs, as_padding)
    real = mask & inputs["face_valid"]
    for task in m.tasks:
        assert torch.isfinite(base[task]).all()
        torch.testing.assert_close(again[task][mask], base[task][mask])
        torch.testing.assert_close(padded[task][real], base[task][real])
    unmasked = model(positional=positional, mask_invalid=False)
    with torch.no_grad():
        differs = unmasked(inputs, mask)["va"][real] - unmasked(inputs, as_padding)["va"][real]
    assert differs.abs().max() > 1e-4  # without the key mask, the zero token is attended to


def test_a_window_without_any_input_gives_finite_outputs() -> None:
    m = model()
    inputs = cached(1, 6)
    inputs["face_valid"][:] = False
    with torch.no_grad():
        out = m(inputs, torch.ones(1, 6, dtype=torch.bool))
    assert all(torch.isfinite(v).all() for v in out.values())


def test_windows_longer_than_training_and_a_local_attention_window() -> None:
    for positional in ("sinusoidal", "relative"):
        with torch.no_grad():
            out = model(positional=positional, max_len=8)(cached(1, 40))
        assert out["va"].shape == (1, 40, 2) and torch.isfinite(out["va"]).all()
    with pytest.raises(AbawError, match="window of 40 frames is longer than the learned positions"):
        model(positional="learned", max_len=8)(cached(1, 40))
    # two layers with a window of 2 frames: frame 0 sees frames 0..4 only
    m = model(attention_window=2, positional="relative")
    inputs = cached(1, 12)
    changed = {k: v.clone() for k, v in inputs.items()}
    changed["face_feat"][0, 5:] = torch.randn(7, 128)
    with torch.no_grad():
        a, b = m(inputs)["embedding"], m(changed)["embedding"]
    torch.testing.assert_close(a[0, :1], b[0, :1])
    assert (a[0, 1] - b[0, 1]).abs().max() > 1e-4  # frame 1 reaches frame 5 through two layers


def test_multistream_concatenates_per_frame_and_trains_under_bf16() -> None:
    torch.manual_seed(0)
    m = create_model("temporal_transformer", **TINY, streams=["face", "body", "audio"], image_size=32,
                     body_size=32, fc=8, audio_fc=8, positional="learned").train()
    assert m.fusion.proj.in_features == 24  # three streams of FC width 8, one token per frame
    inputs = {"face_feat": torch.randn(2, 5, 128), "body_feat": torch.randn(2, 5, 128),
              "audio_feat": torch.randn(2, 5, 128), "audio_valid": torch.tensor([[1, 1, 0, 1, 1]] * 2).bool()}
    from abaw.train.losses import MultiTaskLoss

    targets = {"va": torch.rand(2, 5, 2) * 2 - 1, "expr": torch.randint(0, 7, (2, 5)),
               "au": torch.randint(0, 2, (2, 5, 12)).float()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(inputs)
        total, _ = MultiTaskLoss(m.tasks)(out, targets)
    total.backward()
    trainable = [n for n, p in m.named_parameters() if p.requires_grad]
    assert trainable and all(m.get_parameter(n).grad is not None for n in trainable)


# ---- a run from the feature cache: evaluate, predict, ensemble -------------------------------------------------------

def _train(root: Path, out: Path, model_name: str, kwargs: dict) -> Path:
    from abaw.train.config import resolve
    from abaw.train.loop import train

    cfg = resolve({"name": model_name, "tasks": ["va"],
                   "data": {"root": str(root), "streams": ["face"], "duration": 8, "batch_size": 4, "mode": "cached"},
                   "model": {"name": model_name, "kwargs": {"backbone": "tiny_cnn", "image_size": 32, **kwargs}},
                   "train": {"epochs": 1, "seed": 0, "progress": False, "threads": 1}})
    return train(cfg, out=out)


@pytest.fixture(scope="module")
def runs(tiny_root_ro: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tt") / "data"
    shutil.copytree(tiny_root_ro, root)
    out = tmp_path_factory.mktemp("runs")
    return {"root": root, "transformer": _train(root, out, "temporal_transformer", {"hidden_size": 16, "heads": 2}),
            "gru": _train(root, out, "demo_face", {"hidden_size": 8})}


def test_trains_from_the_cache_and_writes_outputs(runs: dict[str, Path]) -> None:
    run = runs["transformer"]
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["model"] == "temporal_transformer"
    assert (runs["root"] / "features" / "face").is_dir()  # trained from the cache
    scores = json.loads((run / "scores.json").read_text())
    assert -1 <= scores["tracks"]["va"]["score"] <= 1
    embedding = np.load(next((run / "embeddings" / "validation").glob("*.npy")))
    assert embedding.dtype == np.float16 and embedding.shape[1] == 16  # the temporal model's input


def test_evaluate_and_ensemble_with_a_gru_run(runs: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    root, run = str(runs["root"]), str(runs["transformer"])
    assert main(["evaluate", run, "--data-root", root, "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    stored = json.loads((runs["transformer"] / "scores.json").read_text())
    assert evaluated["score"] == pytest.approx(stored["score"], abs=1e-6)  # the same outputs whatever the command
    assert main(["ensemble", run, str(runs["gru"]), "--track", "va", "--data-root", root,
                 "--out", str(tmp_path)]) == 0
    ensemble = next(p for p in tmp_path.iterdir() if (p / "run.json").is_file())
    info = json.loads((ensemble / "run.json").read_text())
    assert info["kind"] == "ensemble" and len(info["members"]) == 2
    assert runs["transformer"].name in capsys.readouterr().out


@pytest.mark.assets
def test_predict_with_the_checkpoint(runs: dict[str, Path], media_dir: Path, tmp_path: Path) -> None:
    import cv2
    import pandas as pd

    from abaw.video.decode import iter_frames

    frames = [f.image for f in iter_frames(media_dir / "single_face.mp4", max_frames=12)]
    h, w = frames[0].shape[:2]
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 25, (w, h))
    for image in frames:
        writer.write(image)
    writer.release()
    assert main(["predict", str(clip), "--checkpoint", str(runs["transformer"]), "--out", str(tmp_path / "out"),
                 "--no-plots"]) == 0
    table = pd.read_csv(tmp_path / "out" / "clip.csv")
    face = table["success"] == 1
    va = table.loc[face, ["valence", "arousal"]].to_numpy()
    assert len(table) == 12 and face.any() and np.isfinite(va).all() and (np.abs(va) <= 1).all()

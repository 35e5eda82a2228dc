"""The temporal statistical model: block statistics against a naive reference, both variants trained and scored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers.runs import PROTOCOL, SPLIT_NAMES, make_label_root, make_run

from abaw import tasks
from abaw.errors import AbawError
from abaw.temporal.model import TemporalStatModel
from abaw.temporal.stats import block_stats, block_windows, carry_index, video_block_stats

FAST = {"epochs": 3, "batch_size": 64, "hidden": 32, "lstm_hidden": 8, "patience": 3}


def _naive_stats(values: np.ndarray, valid: np.ndarray, block: int, quantiles: tuple[float, ...]) -> np.ndarray:
    """Loop over frames: the block is the last ``block`` valid frames up to and including the current one."""
    rows = []
    for i in range(len(values)):
        if not valid[i]:
            rows.append(np.full(values.shape[1] * (4 + len(quantiles)), np.nan))
            continue
        prev = [j for j in range(i + 1) if valid[j]][-block:]
        b = values[prev]
        parts = [b.max(0), b.min(0), b.mean(0), b.std(0)] + [np.quantile(b, q, axis=0) for q in quantiles]
        rows.append(np.concatenate(parts))
    return np.array(rows)


@pytest.mark.parametrize("block", [1, 4, 16])
def test_block_stats_equal_a_naive_reference(block: int) -> None:
    rng = np.random.default_rng(block)
    values = rng.uniform(size=(50, 3))
    valid = rng.uniform(size=50) > 0.3
    out = block_stats(values, block, ("max", "min", "mean", "std"), (0.25, 0.5), valid)
    assert out.shape == (50, 3 * 6)
    np.testing.assert_allclose(out, _naive_stats(values, valid, block, (0.25, 0.5)), atol=1e-10, equal_nan=True)


def test_stats_and_windows_do_not_cross_videos() -> None:
    rng = np.random.default_rng(0)
    values = rng.uniform(size=(30, 2))
    names = np.array(["a"] * 12 + ["b"] * 18)
    out = video_block_stats(values, names, 8)
    assert np.allclose(out[12:], block_stats(values[12:], 8))
    seq, lengths = block_windows(values, names, 4)
    assert lengths[12] == 1 and np.allclose(seq[12, 0], values[12]) and np.allclose(seq[12, 1:], 0)
    assert lengths[16] == 4 and np.allclose(seq[16], values[13:17])  # oldest first
    valid = np.ones(30, bool)
    valid[14] = False
    seq, lengths = block_windows(values, names, 4, valid)
    assert lengths[14] == 0 and np.allclose(seq[16], values[[12, 13, 15, 16]])  # the invalid frame is skipped


def test_faceless_frames_carry_the_previous_block() -> None:
    names = np.array(["a"] * 6 + ["b"] * 4 + ["c"] * 2)
    valid = np.array([0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 0, 0], dtype=bool)
    # a: row 0 precedes the first face (takes the next one), rows 3-4 take row 2; b: row 7-8 take 6; c: no face
    assert carry_index(names, valid).tolist() == [1, 1, 2, 2, 2, 5, 6, 6, 6, 9, 10, 11]


@pytest.mark.parametrize("variant", ["mlp", "bilstm"])
def test_model_heads(variant: str) -> None:
    model = TemporalStatModel(20, 9, n_expr=7, n_au=12, va=True, hidden=16, variant=variant, seq_dim=3,
                              lstm_hidden=4)
    seq = torch.rand(5, 4, 3)
    out = model(torch.randn(5, 20), seq, torch.tensor([1, 2, 3, 4, 4]))
    assert out["expr"].shape == (5, 7) and out["au"].shape == (5, 12) and out["aux"].shape == (5, 7)
    assert out["va"].shape == (5, 2) and out["va"].abs().max() <= 1


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("temporal")
    labels = make_label_root(base / "data", seed=1)
    return base / "data", make_run(base / "runs", "src", labels, base / "data", 0.3, seed=3)


@pytest.fixture(autouse=True)
def _private_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABAW_DB", str(tmp_path / "abaw.sqlite"))


@pytest.mark.parametrize("preset", ["cnu_adl_temporal.json", "cnu_adl_temporal_bilstm.json"])
def test_temporal_run_trains_and_scores(source: tuple[Path, Path], tmp_path: Path, preset: str) -> None:
    from abaw.temporal.train import fit_temporal, load_config

    root, src = source
    config = load_config(Path(__file__).resolve().parents[1] / "configs" / preset, FAST)
    run_dir = fit_temporal(src, config, root, tmp_path / "runs")
    info = json.loads((run_dir / "run.json").read_text())
    assert info["kind"] == "temporal" and info["status"] == "finished" and info["source"] == "src"
    resolved = json.loads((run_dir / "config.json").read_text())
    assert resolved["use_embedding"] is True and resolved["block"] == 16
    scores = json.loads((run_dir / "scores.json").read_text())
    assert set(scores["tracks"]) == {"va", "expr", "au"}
    assert all(np.isfinite(s["score"]) for s in scores["tracks"].values())
    val = pd.read_parquet(run_dir / "predictions" / "validation.parquet")
    assert np.allclose(val[tasks.expr_columns(PROTOCOL)].sum(axis=1), 1.0, atol=1e-5)
    assert sorted(val["name"].unique()) == sorted(SPLIT_NAMES["validation"])
    assert len(Path(run_dir / "metrics.jsonl").read_text().splitlines()) >= 1
    ckpt = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert "model" in ckpt and ckpt["feature_mean"].shape[0] > 21
    # the same source and config again reuses the finished run
    stamp = (run_dir / "scores.json").stat().st_mtime_ns
    assert fit_temporal(src, config, root, tmp_path / "runs") == run_dir
    assert (run_dir / "scores.json").stat().st_mtime_ns == stamp


def test_temporal_cli_and_config_errors(source: tuple[Path, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    from abaw.cli import main
    from abaw.temporal.train import load_config

    root, src = source
    args = ["temporal", "--source", str(src), "--data-root", str(root), "--out", str(tmp_path / "runs"),
            "--set", "epochs=2", "--set", "hidden=16", "--set", "block=4", "--set", "use_embedding=false",
            "--set", 'inputs=["expr"]', "--set", 'tasks=["expr", "va"]', "--set", 'stats=["max", "mean", "std"]']
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "expr  validation score" in out and "va    validation score" in out and "au " not in out
    with pytest.raises(AbawError, match="unknown temporal config key 'blocks'"):
        load_config(None, {"blocks": 8})
    with pytest.raises(AbawError, match="unknown statistic 'median'"):
        load_config(None, {"stats": ["median"]})
    assert main(["temporal", "--source", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "run folder not found" in capsys.readouterr().err
    no_train = tmp_path / "no_train"
    shutil.copytree(src, no_train)
    (no_train / "predictions" / "train.parquet").unlink()
    assert main(["temporal", "--source", str(no_train), "--out", str(tmp_path)]) == 2
    assert "has no train-split predictions; make them with `abaw evaluate" in capsys.readouterr().err


def test_split_built_per_video_equals_the_whole_split_reference(source: tuple[Path, Path]) -> None:
    """float32 statistics/outputs, float16 embeddings as stored, rows equal to the whole-split float64 build."""
    from abaw.runs.outputs import load_run, track_columns
    from abaw.temporal.train import DEFAULTS, build_split

    root, src = source
    run = load_run(src)
    for variant in ("mlp", "bilstm"):
        config = {**DEFAULTS, "block": 4, "stats": ["max", "min", "mean", "std"], "variant": variant}
        data = build_split(run, "validation", config, root, PROTOCOL, ["va", "expr"], ["va"], True)
        assert data.x.dtype == np.float32 and data.emb is not None and data.emb.dtype == np.float16
        columns = [c for t in ("va", "expr") for c in track_columns(t, PROTOCOL)]
        df = run.predictions("validation", columns)
        values = df[columns].to_numpy(dtype=np.float64)
        names = df["name"].to_numpy(dtype=str)
        face = np.ones(len(df), bool)
        stats = video_block_stats(values, names, 4, config["stats"], valid=face)[carry_index(names, face)]
        emb = np.concatenate([np.load(src / "embeddings" / "validation" / f"{n}.npy")[g["frame"].to_numpy() - 1]
                              for n, g in df.groupby("name", sort=True)]).astype(np.float64)
        ref = np.concatenate([stats, emb, values], axis=1).astype(np.float32)
        assert data.dim == ref.shape[1] and data.n_stats == stats.shape[1]
        np.testing.assert_array_equal(data.features(slice(None)), ref)
        rows = np.array([5, 0, len(ref) - 1])
        np.testing.assert_array_equal(data.features(rows), ref[rows])
        mean, std = data.moments(chunk=7)
        assert mean.dtype == std.dtype == np.float32
        np.testing.assert_allclose(mean, ref.astype(np.float64).mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(std, ref.astype(np.float64).std(0) + 1e-6, rtol=1e-5, atol=1e-6)
        data.mean, data.std = mean, std
        np.testing.assert_allclose(data.features(rows), (ref[rows] - mean) / std, rtol=1e-6)
        if variant == "bilstm":
            seq, lengths = block_windows(values, names, 4, valid=face)
            np.testing.assert_array_equal(data.seq, seq)
            np.testing.assert_array_equal(data.lengths, lengths)

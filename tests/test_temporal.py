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
    assert info["fit_uses_validation"] is True and scores["temporal"]["fit_on"] == "validation"
    assert len(ckpt["folds"]) == 3 and all("model" in f and f["feature_mean"].shape[0] > 21 for f in ckpt["folds"])
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
    assert main(["temporal", "--source", str(no_train), "--out", str(tmp_path), "--set", "fit_on=train"]) == 2
    assert "has no train-split predictions; make them with `abaw evaluate" in capsys.readouterr().err
    # out of fold, the training split is not needed: it is predicted only when the source has it
    assert main(["temporal", "--source", str(no_train), "--data-root", str(root), "--out", str(tmp_path / "nt"),
                 "--set", "epochs=1", "--set", "hidden=8"]) == 0
    assert "fitted on validation: validation scores out of fold" in capsys.readouterr().out
    run_dir = next((tmp_path / "nt").glob("temporal-*"))
    assert not (run_dir / "predictions" / "train.parquet").exists()


def _reference(src: Path, split: str, config: dict, inputs: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Today's whole-split build, as one float64 array: [block statistics, embedding, outputs] per row."""
    from abaw.runs.outputs import load_run, track_columns

    run = load_run(src)
    columns = [c for t in inputs for c in track_columns(t, PROTOCOL)]
    df = run.predictions(split, columns)
    values = df[columns].to_numpy(dtype=np.float64)
    names = df["name"].to_numpy(dtype=str)
    face = np.ones(len(df), bool)
    stats = video_block_stats(values, names, config["block"], config["stats"], valid=face)[carry_index(names, face)]
    emb = np.concatenate([np.load(src / "embeddings" / split / f"{n}.npy")[g["frame"].to_numpy() - 1]
                          for n, g in df.groupby("name", sort=True)]).astype(np.float64)
    return np.concatenate([stats, emb, values], axis=1), df


@pytest.mark.parametrize("chunk_rows", [10**6, 50])
def test_chunks_equal_the_whole_split_reference(source: tuple[Path, Path], chunk_rows: int) -> None:
    """float32 statistics/outputs, float16 embeddings as stored, BiLSTM windows gathered per batch: every chunk's rows
    equal the whole-split float64 build; the moments merged over chunks equal the whole split's."""
    from abaw.runs.outputs import load_run
    from abaw.temporal.data import VideoSet, moments, read_split
    from abaw.temporal.train import DEFAULTS

    root, src = source
    run = load_run(src)
    for variant in ("mlp", "bilstm"):
        config = {**DEFAULTS, "block": 4, "stats": ["max", "min", "mean", "std"], "variant": variant}
        table = read_split(run, "validation", config, root, PROTOCOL, ["va", "expr"], ["va"], True)
        ref64, df = _reference(src, "validation", config, ["va", "expr"])
        ref = ref64.astype(np.float32)
        data = VideoSet(table, range(len(table.videos)), chunk_rows)
        chunks = list(data.chunks())
        assert (len(chunks) == 1) == (chunk_rows > len(ref)) and all(len(c) <= max(chunk_rows, 59) for c in chunks)
        assert table.dim == ref.shape[1] and np.array_equal(data.rows, np.arange(len(ref)))
        for chunk in chunks:
            assert chunk.x.dtype == np.float32 and chunk.emb is not None and chunk.emb.dtype == np.float16
            np.testing.assert_array_equal(chunk.features(slice(None)), ref[chunk.rows])
            idx = np.array([len(chunk) - 1, 0, 3])
            np.testing.assert_array_equal(chunk.features(idx), ref[chunk.rows[idx]])
            if variant == "bilstm":
                seq, lengths = chunk.sequences(np.arange(len(chunk)))
                values = ref64[:, -table.dim + table.n_stats + table.emb_dim:]
                want, want_len = block_windows(values, df["name"].to_numpy(str), 4)
                np.testing.assert_array_equal(seq, want[chunk.rows])
                np.testing.assert_array_equal(lengths, want_len[chunk.rows])
            else:
                assert chunk.win is None
        mean, std = moments(data, chunk=7)
        assert mean.dtype == std.dtype == np.float32
        np.testing.assert_allclose(mean, ref.astype(np.float64).mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(std, ref.astype(np.float64).std(0) + 1e-6, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(chunks[0].features(slice(0, 5), mean, std), (ref[:5] - mean) / std, rtol=1e-6)


def test_sampler_orders(source: tuple[Path, Path]) -> None:
    """One chunk: one permutation of the labelled rows (the former order); several: shuffled blocks of videos, each
    labelled row once per epoch, reproducible for a seed."""
    from abaw.runs.outputs import load_run
    from abaw.temporal.data import VideoSet, epoch_batches, labelled, read_split
    from abaw.temporal.train import DEFAULTS

    root, src = source
    table = read_split(load_run(src), "train", DEFAULTS, root, PROTOCOL, ["va"], ["va"], False)
    fit_rows = np.flatnonzero(labelled(table, np.arange(len(table))))
    assert 0 < len(fit_rows) < len(table)  # a few invalid frames
    whole = VideoSet(table, range(len(table.videos)), 10**6)
    got = np.concatenate([c.rows[i] for c, i in epoch_batches(whole, np.random.default_rng(3), 16)])
    np.testing.assert_array_equal(got, np.random.default_rng(3).permutation(fit_rows))

    small = VideoSet(table, range(len(table.videos)), 100)  # 55 rows a video: one video per block
    rng = np.random.default_rng(0)
    epochs = []
    for _ in range(2):
        batches = list(epoch_batches(small, rng, 16))
        assert all(len(np.unique(table.df["name"].to_numpy()[c.rows[i]])) == 1 for c, i in batches)
        epochs.append(np.concatenate([c.rows[i] for c, i in batches]))
        assert sorted(epochs[-1]) == fit_rows.tolist()
    assert not np.array_equal(epochs[0], epochs[1])
    again = np.concatenate([c.rows[i] for c, i in epoch_batches(small, np.random.default_rng(0), 16)])
    np.testing.assert_array_equal(again, epochs[0])


@pytest.mark.parametrize("variant", ["mlp", "bilstm"])
def test_fit_on_train_equals_the_whole_split_loop(source: tuple[Path, Path], tmp_path: Path, variant: str) -> None:
    """fit_on=train read chunk by chunk gives the outputs of the former whole-split loop (one epoch, in memory)."""
    from abaw.runs.outputs import track_columns
    from abaw.temporal.train import _loss, _make_model, fit_temporal, load_config
    from abaw.train.fitting import optimizer_step

    root, src = source
    config = load_config(None, {**FAST, "epochs": 1, "variant": variant, "fit_on": "train"})
    run_dir = fit_temporal(src, config, root, tmp_path / "runs")
    got = pd.read_parquet(run_dir / "predictions" / "validation.parquet")
    assert json.loads((run_dir / "run.json").read_text())["fit_uses_validation"] is False

    from abaw.runs.outputs import labels_for_rows, load_labels

    inputs = list(tasks.TRACKS)
    tr, tr_df = _reference(src, "train", config, inputs)
    va, va_df = _reference(src, "validation", config, inputs)
    mean = tr.astype(np.float32).astype(np.float64).mean(0).astype(np.float32)
    std = tr.astype(np.float32).astype(np.float64).std(0).astype(np.float32) + np.float32(1e-6)
    k = len([c for t in inputs for c in track_columns(t, PROTOCOL)])

    def batch(x: np.ndarray, df: pd.DataFrame, rows: np.ndarray) -> tuple[torch.Tensor, ...]:
        feat = torch.from_numpy(((x[rows].astype(np.float32) - mean) / std).astype(np.float32))
        if variant == "mlp":
            return (feat,)
        seq, lengths = block_windows(x[:, -k:], df["name"].to_numpy(str), config["block"])
        return feat, torch.from_numpy(seq[rows]), torch.from_numpy(lengths[rows])

    targets = {t: torch.from_numpy(labels_for_rows(tr_df, load_labels(root, "train", t, PROTOCOL), t, PROTOCOL))
               for t in tasks.TRACKS}
    ok = np.zeros(len(tr_df), bool)
    for t, v in targets.items():
        v = v.numpy()
        ok |= (v > tasks.INVALID[t]).all(axis=1) if t != "au" else ((v == 0) | (v == 1)).any(axis=1)
    torch.manual_seed(0)
    model = _make_model(config, tr.shape[1], PROTOCOL, inputs, inputs)
    opt = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    order = np.random.default_rng(0).permutation(np.flatnonzero(ok))
    model.train()
    for s in range(0, len(order), config["batch_size"]):
        rows = order[s: s + config["batch_size"]]
        loss = _loss(model(*batch(tr, tr_df, rows)), {t: v[rows] for t, v in targets.items()}, config["aux_weight"])
        optimizer_step(loss, opt)
    model.eval()
    with torch.no_grad():
        out = model(*batch(va, va_df, np.arange(len(va))))
    np.testing.assert_allclose(got[tasks.expr_columns(PROTOCOL)].to_numpy(), torch.softmax(out["expr"], 1).numpy(),
                               atol=1e-5)
    np.testing.assert_allclose(got[["valence", "arousal"]].to_numpy(), out["va"].numpy(), atol=1e-5)


def test_out_of_fold_fit(source: tuple[Path, Path], tmp_path: Path) -> None:
    """fit_on=validation: grouped folds (the two persons of a video together), each video predicted by the model
    that did not fit on it and did not choose its epoch on it; new videos get the folds' mean; ensembles say when
    validation videos fitted something."""
    from abaw.posthoc.ensemble import ensemble_runs
    from abaw.temporal.train import fit_temporal, load_config, predict_temporal

    root, src = source
    run_dir = fit_temporal(src, load_config(None, {**FAST, "epochs": 2}), root, tmp_path / "runs")
    assert json.loads((run_dir / "run.json").read_text())["fit_uses_validation"] is True
    details = json.loads((run_dir / "scores.json").read_text())["temporal"]
    folds = details["folds"]
    held = [set(f["held_out_videos"]) for f in folds]
    assert sorted(n for h in held for n in h) == sorted(SPLIT_NAMES["validation"])
    assert {"v2_left", "v2_right"} in held  # one video file, one fold
    for f in folds:
        assert not set(f["selection_videos"]) & set(f["held_out_videos"]) and f["fit_videos"] >= 1
        assert 1 <= f["best_epoch"] <= 2
    assert "out of fold" in details["score_note"]
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {x["fold"] for x in lines} == {0, 1, 2}

    oof = pd.read_parquet(run_dir / "predictions" / "validation.parquet")
    assert (run_dir / "predictions" / "train.parquet").is_file()  # the folds' mean on the training split
    predict_temporal(run_dir, "validation")  # each video again by its own fold's model
    pd.testing.assert_frame_equal(oof, pd.read_parquet(run_dir / "predictions" / "validation.parquet"), atol=1e-6)
    ckpt = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert [sorted(f["held_out"]) for f in ckpt["folds"]] == [sorted(h) for h in held]

    plain = make_run(tmp_path / "runs", "src2", _labels_of(root), root, 0.4, seed=5)
    mean = ensemble_runs([src, plain], "va", "mean", data_root=root, out_dir=tmp_path / "ens")
    assert json.loads((mean.run_dir / "run.json").read_text())["fit_uses_validation"] is False
    with_temporal = ensemble_runs([src, run_dir], "va", "mean", data_root=root, out_dir=tmp_path / "ens")
    assert json.loads((with_temporal.run_dir / "run.json").read_text())["fit_uses_validation"] is True
    weighted = ensemble_runs([src, plain], "va", "weighted", data_root=root, out_dir=tmp_path / "ens", n_splits=3)
    assert json.loads((weighted.run_dir / "run.json").read_text())["fit_uses_validation"] is True

    two = make_run(tmp_path / "runs", "two", _labels_of(root), root, 0.3, seed=3, drop=("v2_left", "v2_right"))
    folds = json.loads((fit_temporal(two, load_config(None, {**FAST, "epochs": 2}), root, tmp_path / "runs")
                        / "scores.json").read_text())["temporal"]["folds"]
    assert [(f["selection_videos"], f["best_epoch"], f["fit_videos"]) for f in folds] == [([], 2, 1)] * 2
    one = make_run(tmp_path / "runs", "one", _labels_of(root), root, 0.3, seed=3, drop=("v1", "v2_left", "v2_right"))
    with pytest.raises(AbawError, match="out-of-fold fitting needs at least 2 validation videos"):
        fit_temporal(one, load_config(None, FAST), root, tmp_path / "runs")


def _labels_of(root: Path) -> dict:
    from helpers.runs import labels_of_root

    return labels_of_root(root)

"""``abaw evaluate`` / ``evaluate_run``: predictions table, embeddings, result files, scores, plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from abaw.tasks import au_columns, expr_columns


def test_evaluate_run_writes_everything(tiny_mtl_run: Path, tiny_root_ro: Path, tmp_path: Path) -> None:
    from abaw.data.affwild2 import AffWild2
    from abaw.metrics import score_track
    from abaw.results import read_result_folder, validate_submission
    from abaw.train.evaluate import evaluate_run

    result = evaluate_run(tiny_mtl_run, tiny_root_ro, "validation", submission=tmp_path / "sub")
    assert set(result["tracks"]) == {"va", "expr", "au"}
    assert result["score"] == pytest.approx(sum(s["score"] for s in result["tracks"].values()))
    saved = json.loads((tiny_mtl_run / "scores.json").read_text())
    assert saved["split"] == "validation" and saved["tracks"]["expr"]["score"] == result["tracks"]["expr"]["score"]

    table = pd.read_parquet(tiny_mtl_run / "predictions" / "validation.parquet")
    assert list(table.columns) == ["name", "frame", "valence", "arousal", *expr_columns(), *au_columns()]
    ds = AffWild2(tiny_root_ro)
    names = sorted({e.name for t in ("va", "expr", "au") for e in ds.entries("validation", t)})
    assert sorted(table["name"].unique()) == names
    for name, group in table.groupby("name"):
        assert group["frame"].tolist() == list(range(1, len(group) + 1))  # every annotated frame exactly once
        emb = np.load(tiny_mtl_run / "embeddings" / "validation" / f"{name}.npy", allow_pickle=False)
        assert emb.shape[0] == len(group) and emb.dtype == np.float16

    # the official score recomputed from the result files equals the one reported
    for track in ("va", "expr", "au"):
        entries = ds.entries("validation", track)
        assert validate_submission(tiny_mtl_run / "results" / "validation", tiny_root_ro, "validation", track) == []
        assert validate_submission(tmp_path / "sub", tiny_root_ro, "validation", track) == []
        files = read_result_folder(tiny_mtl_run / "results" / "validation", track)
        pred = np.concatenate([files[e.name][: len(ds.labels(e))] for e in entries])
        true = np.concatenate([ds.labels(e) for e in entries])
        if track == "expr":
            pred, true = pred.reshape(-1), true.reshape(-1)
        assert score_track(track, pred, true)["score"] == pytest.approx(result["tracks"][track]["score"], abs=1e-6)
    for plot in ("validation_va_time.png", "validation_expr_confusion.png", "validation_au_f1.png"):
        assert (tiny_mtl_run / "plots" / plot).stat().st_size > 1000


def test_evaluate_train_split_and_cli(tiny_mtl_run: Path, tiny_root_ro: Path, capsys: pytest.CaptureFixture) -> None:
    from abaw.cli import main

    assert main(["evaluate", str(tiny_mtl_run), "--data-root", str(tiny_root_ro), "--split", "train", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["split"] == "train" and (tiny_mtl_run / "scores_train.json").is_file()
    assert (tiny_mtl_run / "predictions" / "train.parquet").is_file()
    assert list((tiny_mtl_run / "embeddings" / "train").glob("*.npy"))
    assert main(["evaluate", str(tiny_root_ro), "--data-root", str(tiny_root_ro)]) == 2
    assert "not a training run folder" in capsys.readouterr().err


def test_evaluate_test_split_writes_valid_result_files(tiny_mtl_run: Path, tiny_root_ro: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    from abaw.cli import main
    from abaw.data.affwild2 import AffWild2
    from abaw.results import read_result_folder, validate_submission
    from abaw.train.evaluate import evaluate_run

    ds = AffWild2(tiny_root_ro)
    result = evaluate_run(tiny_mtl_run, tiny_root_ro, "test", submission=tmp_path / "sub")
    assert result["split"] == "test" and result["score"] is None
    assert set(result["tracks"]) == {t for t in ("va", "expr", "au") if ds.has_test_set(t)} != set()
    for track, info in result["tracks"].items():
        names = ds.test_names(track)
        assert info["files"] == len(names)
        assert validate_submission(tmp_path / "sub", tiny_root_ro, "test", track) == []
        files = read_result_folder(Path(info["folder"]), track)
        for name in names:  # one line per frame of the whole video
            assert len(files[name]) == ds.video_info(name)[0]
    table = pd.read_parquet(tiny_mtl_run / "predictions" / "test.parquet")
    assert table["name"].nunique() == len({n for t in result["tracks"] for n in ds.test_names(t)})
    assert not (tiny_mtl_run / "scores_test.json").exists()  # no labels, no scores
    assert main(["evaluate", str(tiny_mtl_run), "--data-root", str(tiny_root_ro), "--split", "test"]) == 0
    assert "test result files valid" in capsys.readouterr().out


def test_streaming_prediction_writes_embeddings_per_video_and_keeps_none(tiny_mtl_run: Path, tiny_root_ro: Path,
                                                                          tmp_path: Path) -> None:
    from abaw.data.affwild2 import AffWild2
    from abaw.data.sequences import load_videos
    from abaw.inference import load_run_model, make_loader, predict_videos, window_length
    from abaw.train.config import tracks_of
    from abaw.train.evaluate import predict_streaming, video_groups

    model, cfg, device = load_run_model(tiny_mtl_run)
    tasks = tracks_of(cfg)
    videos = load_videos(AffWild2(tiny_root_ro), "validation", tasks, cfg["protocol"], None)
    assert len(videos) >= 2
    sizes = [v.n_frames for v in videos]
    groups = video_groups(videos, max_frames=sizes[0] + sizes[1])
    assert [v.name for g in groups for v in g] == [v.name for v in videos] and len(groups[0]) == 2
    assert [len(g) for g in video_groups(videos, max_frames=1)] == [1] * len(videos)  # a long video: its own group

    loader = make_loader(cfg, model)
    whole = predict_videos(model, videos, loader, window_length(cfg), 4, tasks, device)
    streamed = predict_streaming(model, videos, loader, window_length(cfg), 4, tasks, device, None,
                                 tmp_path / "emb", max_frames=1)
    assert set(streamed) == set(whole)
    for name, store in streamed.items():
        assert "embedding" not in store  # written, not held
        for task in tasks:
            np.testing.assert_allclose(store[task], whole[name][task], atol=1e-5)
        emb = np.load(tmp_path / "emb" / f"{name}.npy")
        assert emb.dtype == np.float16
        np.testing.assert_allclose(emb, whole[name]["embedding"].astype(np.float16), atol=1e-2)

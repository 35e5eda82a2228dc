"""``abaw extract``: per-name, per-stream float16 feature files, resumable; cached training reads them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from abaw.train.config import resolve


def _cfg(root: Path, streams: list[str], **over) -> dict:
    return resolve({"name": "cached", "tasks": ["va", "au"],
                    "data": {"root": str(root), "streams": streams, "duration": 8, "batch_size": 4,
                             "mode": "cached"},
                    "model": {"name": "demo_multistream",
                              "kwargs": {"hidden_size": 8, "image_size": 32, "body_size": 32, "context_size": 32}},
                    "train": {"epochs": 1, "seed": 0, "progress": False, "threads": 1}}, over)


def test_extract_writes_resumable_float16_files(prepared_root: Path, capsys: pytest.CaptureFixture) -> None:
    from abaw.cli import main
    from abaw.data.stream_inputs import StreamLoader, feature_path
    from abaw.train.checkpoint import model_from_config
    from abaw.train.extract import all_videos, extractor_names

    streams = ["face", "body", "context", "audio"]
    cfg = _cfg(prepared_root, streams)
    cfg_path = prepared_root.parent / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    assert main(["extract", "--data-root", str(prepared_root), "-c", str(cfg_path), "--batch-size", "16"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) == set(streams)
    model = model_from_config(cfg)
    names = extractor_names(cfg, model)
    videos = all_videos(prepared_root, "abaw2021")
    for stream in streams:
        assert summary[stream]["written"] == len(videos) and summary[stream]["skipped"] == 0
        for video in videos:
            with np.load(feature_path(prepared_root, stream, names[stream], video.name), allow_pickle=False) as z:
                assert z["feats"].dtype == np.float16 and z["valid"].dtype == bool
                assert z["feats"].shape[0] == video.n_frames == z["valid"].shape[0]
                assert not z["feats"][~z["valid"]].any()  # no input -> zeros
    # features equal the stream CNN on the same input (float16 rounding)
    video = next(v for v in videos if v.name.endswith("_left")) if any(v.name.endswith("_left") for v in videos) \
        else videos[0]
    loader = StreamLoader(prepared_root, ["face"], model.input_spec())
    x = loader.load(video, np.arange(video.n_frames), video.n_frames)
    frame = int(np.flatnonzero(x["face_valid"])[0])
    with torch.inference_mode():
        ref = model.stream_encoders()["face"].eval()(torch.from_numpy(x["face"][frame:frame + 1]))[0].numpy()
    with np.load(feature_path(prepared_root, "face", names["face"], video.name), allow_pickle=False) as z:
        assert np.allclose(z["feats"][frame].astype(np.float32), ref, rtol=1e-2, atol=1e-2)
        assert (z["valid"] == x["face_valid"]).all()

    # a second run skips every complete file and rewrites a damaged one
    damaged = feature_path(prepared_root, "body", names["body"], videos[0].name)
    damaged.write_bytes(b"truncated")
    assert main(["extract", "--data-root", str(prepared_root), "-c", str(cfg_path)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["face"]["written"] == 0 and again["face"]["skipped"] == len(videos)
    assert again["body"]["written"] == 1
    with np.load(damaged, allow_pickle=False) as z:
        assert z["feats"].shape[0] == videos[0].n_frames


def test_cached_training_reads_the_cache(prepared_root: Path, tmp_path: Path) -> None:
    from abaw.train.evaluate import evaluate_run
    from abaw.train.loop import train

    cfg = _cfg(prepared_root, ["face", "audio"])
    run = train(cfg, out=tmp_path)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["mode"] == "cached"
    scores = json.loads((run / "scores.json").read_text())
    again = evaluate_run(run, prepared_root, "validation", plots=False)
    assert again["tracks"] == scores["tracks"]


def test_extract_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from abaw.cli import main

    assert main(["extract", "--data-root", str(tmp_path)]) == 2
    assert "--config" in capsys.readouterr().err
    assert main(["extract", "--data-root", str(tmp_path / "none"), "--model", "demo_face"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_completeness_check_reads_headers_only(tmp_path: Path) -> None:
    import numpy as np

    from abaw.fileio import save_npz
    from abaw.train.extract import _complete

    path = tmp_path / "v.npz"
    save_npz(path, feats=np.zeros((40, 8), np.float16), valid=np.ones(40, bool))
    assert _complete(path, 40) and not _complete(path, 41)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[:50])  # a truncated archive is incomplete, not an error
    assert not _complete(cut, 40)
    other = tmp_path / "other.npz"
    save_npz(other, feats=np.zeros(40, np.float16), valid=np.ones(40, bool))  # 1-D features: not ours
    assert not _complete(other, 40)


def test_prepare_and_extract_under_two_ranks_cover_every_video_once(tiny_root: Path, prepared_root: Path,
                                                                    capsys: pytest.CaptureFixture,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Started by ``torchrun`` (RANK/WORLD_SIZE set), prepare and extract take the rank's share of the videos."""
    from abaw.cli import main
    from abaw.train.extract import all_videos

    prepared: list[set[str]] = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert main(["prepare", str(tiny_root), "--force"]) == 0
        lines = capsys.readouterr().out.splitlines()
        prepared.append({ln.split(":")[0] for ln in lines if " frames, face in " in ln})
    videos = {p.stem for p in (tiny_root / "videos").rglob("*") if p.is_file()}
    assert prepared[0] and prepared[1] and not prepared[0] & prepared[1]
    assert {Path(v).stem for v in prepared[0] | prepared[1]} == videos

    cfg_path = prepared_root.parent / "cfg_ranks.json"
    cfg_path.write_text(json.dumps(_cfg(prepared_root, ["face"], **{"model.kwargs.hidden_size": 4})))
    written = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        assert main(["extract", "--data-root", str(prepared_root), "-c", str(cfg_path), "--force"]) == 0
        written.append(json.loads(capsys.readouterr().out)["face"]["written"])
    n = len(all_videos(prepared_root, "abaw2021"))
    assert written[0] > 0 and written[1] > 0 and sum(written) == n

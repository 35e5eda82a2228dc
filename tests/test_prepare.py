"""``abaw prepare``: boxes, aligned crops, body/context inputs and audio per video; idempotent, sharded, failures
reported without stopping the others and without partial outputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from abaw.cli import main
from abaw.data.affwild2 import BOX_COLUMNS
from abaw.errors import AbawError
from abaw.video.prepare import PREPARED_DIR, find_videos, marker_path, parse_shard, shard


def _names(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "cropped_aligned").iterdir())


def test_shards_cover_all_videos_and_second_run_skips(tiny_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    videos = [p.stem for p in find_videos(tiny_root)]
    crops_before = {p: p.stat().st_mtime_ns for p in (tiny_root / "cropped_aligned").rglob("*.jpg")}
    args = ["prepare", str(tiny_root), "--person", "face", "--size", "32"]
    assert main([*args, "--shard", "1/2"]) == 0
    first = {v for v in videos if marker_path(tiny_root, v).is_file()}
    assert 0 < len(first) < len(videos)
    assert main([*args, "--shard", "2/2"]) == 0
    assert all(marker_path(tiny_root, v).is_file() for v in videos)
    capsys.readouterr()
    prepared = tiny_root / PREPARED_DIR
    for name in _names(tiny_root):  # every track (incl. _left/_right) gets body and context images
        video = name.removesuffix("_left").removesuffix("_right")
        n_frames = int(pd.read_csv(tiny_root / "boxes" / f"{video}.csv")["frame"].max())
        for stream in ("body", "context"):
            files = sorted((prepared / stream / name).glob("*.jpg"))
            assert len(files) == n_frames and files[0].name == "00001.jpg"
    for video in videos:
        with np.load(prepared / "audio" / f"{video}.npz", allow_pickle=False) as npz:
            assert npz["logmel"].shape[0] == 64 and float(npz["audio_seconds"]) >= 0
    # Given boxes and crops (the synthetic ground truth) are kept, not redone.
    assert {p: p.stat().st_mtime_ns for p in (tiny_root / "cropped_aligned").rglob("*.jpg")} == crops_before
    assert not (prepared / ".tmp").exists() or not any((prepared / ".tmp").iterdir())
    # Second run: everything is skipped.
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("already prepared") == len(videos) and f"skipped {len(videos)}" in out


def test_a_failing_video_is_reported_and_leaves_nothing(tiny_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    videos = find_videos(tiny_root)
    for extra in videos[1:]:
        extra.unlink()  # one good video is enough here
    (videos[0].parent / "broken.mp4").write_text("this is text, not a video")
    (videos[0].parent / "empty.mp4").write_bytes(b"")
    code = main(["prepare", str(tiny_root), "--person", "face", "--detector", "haar", "--streams", "face,audio"])
    out, err = capsys.readouterr()  # per-file failures are errors: on stderr, then a summary line
    assert code == 1 and "failed:" not in out and err.strip().splitlines()[-1].endswith("2 of 3 videos failed")
    assert "failed: broken:" in err and "not a readable video" in err and "failed: empty:" in err and "empty" in err
    assert marker_path(tiny_root, videos[0].stem).is_file()
    for bad in ("broken", "empty"):
        assert not marker_path(tiny_root, bad).exists()
        assert not (tiny_root / "boxes" / f"{bad}.csv").exists()
        assert not (tiny_root / PREPARED_DIR / "audio" / f"{bad}.npz").exists()
        assert not (tiny_root / "cropped_aligned" / bad).exists()
    assert not any((tiny_root / PREPARED_DIR / ".tmp").iterdir())


def test_video_files_with_detection(media_dir: Path, weights_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["prepare", str(media_dir / "single_face.mp4"), str(media_dir / "person.jpg"), "--out", str(out),
                 "--size", "48"]) == 0
    boxes = pd.read_csv(out / "boxes" / "single_face.csv")
    assert list(boxes.columns) == list(BOX_COLUMNS)
    assert len(boxes) == 72 and (boxes["face_score"] > 0).mean() >= 0.95 and boxes["name"].eq("single_face").all()
    crops = sorted((out / "cropped_aligned" / "single_face").glob("*.jpg"))
    assert len(crops) == (boxes["face_score"] > 0).sum()
    assert len(list((out / PREPARED_DIR / "body" / "single_face").glob("*.jpg"))) == 72
    assert (out / PREPARED_DIR / "audio" / "single_face.npz").is_file()
    assert not (out / PREPARED_DIR / "audio" / "person.npz").exists()  # an image has no sound
    person = pd.read_csv(out / "boxes" / "person.csv")
    assert len(person) >= 1 and (person["person_score"] > 0).any()  # a detected (not derived) person box


def test_argument_errors() -> None:
    assert parse_shard("2/4") == (2, 4) and parse_shard(None) == (1, 1)
    for bad in ("0/2", "3/2", "x"):
        with pytest.raises(AbawError, match="--shard"):
            parse_shard(bad)
    items = [Path(str(i)) for i in range(7)]
    assert sorted(sum((shard(items, i, 3) for i in (1, 2, 3)), []), key=lambda p: int(p.name)) == items


def test_resume_after_a_crash_redoes_only_the_unfinished(tiny_root: Path) -> None:
    videos = find_videos(tiny_root)
    for extra in videos[2:]:
        extra.unlink()
    assert main(["prepare", str(tiny_root), "--person", "face", "--streams", "audio"]) == 0
    marker = marker_path(tiny_root, videos[1].stem)
    marker.unlink()  # as if the run had died before committing this video
    stale = tiny_root / PREPARED_DIR / ".tmp" / videos[1].stem
    stale.mkdir(parents=True)
    (stale / "half.jpg").write_bytes(b"x")
    kept = marker_path(tiny_root, videos[0].stem).stat().st_mtime_ns
    assert main(["prepare", str(tiny_root), "--person", "face", "--streams", "audio"]) == 0
    assert marker.is_file() and marker_path(tiny_root, videos[0].stem).stat().st_mtime_ns == kept
    assert not stale.exists()
    shutil.rmtree(tiny_root / PREPARED_DIR / "audio")


def test_two_processes_on_one_root_prepare_each_video_once(tiny_root: Path) -> None:
    """Two trainings started on one data root both prepare it: each video is done by one of them, the other finds it
    done (a shared staging folder used to make both fail)."""
    from concurrent.futures import ThreadPoolExecutor

    from abaw.video.prepare import PrepareOptions, prepare_video

    video = find_videos(tiny_root)[0]
    opts = PrepareOptions(person="face", streams=("body", "audio"), body_size=32)
    with ThreadPoolExecutor(2) as pool:  # flock excludes open file descriptions, so threads stand in for processes
        results = list(pool.map(lambda _: prepare_video(video, tiny_root, opts), range(2)))
    assert sorted(r.status for r in results) == ["done", "skipped"]
    assert marker_path(tiny_root, video.stem).is_file()
    assert not any((tiny_root / PREPARED_DIR / ".tmp").iterdir())
    shutil.rmtree(tiny_root / PREPARED_DIR)


def test_key_frame_detection_with_workers_finds_the_same_faces(media_dir: Path, weights_dir: Path,
                                                               tmp_path: Path) -> None:
    """Every frame detected by one thread, or every 5th frame by two threads: a face in the same frames, in about
    the same place; the detected boxes of key frames are the same either way."""
    tables = {}
    for label, extra in (("every", ["--detect-every", "1"]), ("keys", ["--detect-every", "5", "--workers", "2"])):
        out = tmp_path / label
        assert main(["prepare", str(media_dir / "face_noface.mov"), "--out", str(out), "--person", "face",
                     "--streams", "face", "--size", "32", *extra]) == 0
        tables[label] = pd.read_csv(out / "boxes" / "face_noface.csv")
    every, keys = tables["every"], tables["keys"]
    assert len(every) == len(keys) == 169
    assert ((every["face_score"] > 0) == (keys["face_score"] > 0)).all()
    with_face = every["face_score"] > 0
    eyes = np.hypot(every["lm0_x"] - every["lm1_x"], every["lm0_y"] - every["lm1_y"])[with_face]
    error = np.hypot(every["lm2_x"] - keys["lm2_x"], every["lm2_y"] - keys["lm2_y"])[with_face] / eyes
    assert error.mean() < 0.05  # the nose tip, interpolated between key frames
    key_rows = every.index[::5]
    np.testing.assert_allclose(keys.loc[key_rows, "face_x"], every.loc[key_rows, "face_x"], atol=1e-3)
    assert main(["prepare", str(media_dir / "face_noface.mov"), "--out", str(tmp_path / "x"),
                 "--detect-every", "0"]) == 2


def test_a_crop_that_cannot_be_written_fails_the_video(tmp_path: Path) -> None:
    """cv2.imwrite only returns False; a missing crop must not be committed as prepared."""
    from abaw.video.prepare import _write_jpeg

    image = np.zeros((8, 8, 3), np.uint8)
    _write_jpeg(tmp_path / "ok.jpg", image, [])
    assert (tmp_path / "ok.jpg").stat().st_size > 0
    with pytest.raises(OSError, match="gone"):
        _write_jpeg(tmp_path / "gone" / "00001.jpg", image, [])

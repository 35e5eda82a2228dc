"""``abaw predict``: one row per video frame (frames without a face marked), plots, bad inputs as one line with
nothing left behind, and a trained run (``--checkpoint``) filling valence/arousal/AUs."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from abaw import tasks
from abaw.cli import main
from abaw.errors import AbawError
from abaw.video.decode import iter_frames


@pytest.fixture(scope="module")
def fer_predictor(weights_dir: Path):
    from abaw.apps.predict import FerPredictor

    return FerPredictor()


@pytest.fixture(scope="module")
def clips(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Awkward inputs made from the real face video."""
    folder = tmp_path_factory.mktemp("clips")
    frames = [f.image for f in iter_frames(media_dir / "single_face.mp4", max_frames=16)]
    out = {}
    for name, images in (("no_audio", frames), ("portrait", [np.ascontiguousarray(np.rot90(f)) for f in frames])):
        h, w = images[0].shape[:2]
        writer = cv2.VideoWriter(str(folder / f"{name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30, (w, h))
        for image in images:
            writer.write(image)
        writer.release()
        out[name] = folder / f"{name}.mp4"
    data = (media_dir / "single_face.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (folder / "zero.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("I am a text file, not a video\n")
    out.update({n: folder / f"{n}.mp4" for n in ("truncated", "zero", "text")})
    return out


def _n_frames(path: Path) -> int:
    return sum(1 for _ in iter_frames(path))


def _check_table(table: pd.DataFrame, n_frames: int) -> None:
    assert table["frame"].tolist() == list(range(1, n_frames + 1))  # one row per frame, single face
    assert set(tasks.expr_columns()) <= set(table.columns)
    assert {"timestamp", "face_id", "face_x", "face_score", "success", "valence", "arousal", "expression",
            "AU01", "AU01_c"} <= set(table.columns)
    no_face = table["success"] == 0
    assert (table.loc[no_face, "face_score"] == 0).all() and table.loc[no_face, "face_x"].isna().all()
    assert table.loc[no_face, "expression"].fillna("").eq("").all()
    face = ~no_face
    probs = table.loc[face, tasks.expr_columns()].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)


@pytest.mark.parametrize("video", ["single_face.mp4", "no_face.mp4", "face_noface.mov"])
def test_predict_writes_one_row_per_frame(video: str, media_dir: Path, fer_predictor, tmp_path: Path) -> None:
    from abaw.apps.predict import PredictOptions, predict_file

    path = media_dir / video
    written = predict_file(path, tmp_path, PredictOptions(plots=video != "no_face.mp4"), fer_predictor)
    table = pd.read_csv(written["csv"])
    _check_table(table, _n_frames(path))
    share = table["success"].mean()
    if video == "single_face.mp4":
        assert share >= 0.95 and table["expression"].isin(["happiness", "neutral"]).mean() > 0.9
        assert table["valence"].isna().all() and table["AU12"].isna().all()  # no model given
        assert table["note"].str.contains("no model given").all()
        assert written["plot_expr"].is_file() and "plot_va" not in written  # nothing to draw for VA without a model
    elif video == "no_face.mp4":
        assert share == 0
    else:
        assert table["success"].iloc[:10].all() and not table["success"].iloc[-10:].any()
    # Only finished files, no work folder or hidden temporary folder left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written.values())


@pytest.mark.parametrize("name", ["truncated", "zero", "text"])
def test_bad_files_are_one_line_and_leave_nothing(name: str, clips: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str], weights_dir: Path) -> None:
    out = tmp_path / "out"
    assert main(["predict", str(clips[name]), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(clips[name]) in err[0] and "Traceback" not in err[0]
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("name", ["no_audio", "portrait"])
def test_no_audio_and_portrait_videos_work(name: str, clips: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str], weights_dir: Path) -> None:
    assert main(["predict", str(clips[name]), "--out", str(tmp_path), "--no-plots"]) == 0
    table = pd.read_csv(tmp_path / f"{name}.csv")
    _check_table(table, 16)
    assert table["success"].mean() >= 0.9
    if name == "portrait":
        assert (table["face_w"].dropna() < 360).all()  # found in the upright 360-wide picture
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.csv", f"{name}.json"]


def test_many_inputs_one_failing(clips: dict[str, Path], media_dir: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str], weights_dir: Path) -> None:
    code = main(["predict", str(clips["text"]), str(media_dir / "multi_face.jpg"), "--out", str(tmp_path),
                 "--no-plots"])
    out, err = capsys.readouterr()
    assert code == 1 and "failed:" in err and "text.mp4" in err and "failed" not in out  # failures on stderr
    assert err.strip().splitlines()[-1] == "abaw predict: error: 1 of 2 inputs failed"
    assert "multi_face" in out
    table = pd.read_csv(tmp_path / "multi_face.csv")
    assert len(table) == 5 and table["success"].eq(1).all() and table["name"].nunique() == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multi_face.csv", "multi_face.json"]


def test_checkpoint_fills_va_and_aus_and_draws_them(tiny_mtl_run: Path, clips: dict[str, Path], media_dir: Path,
                                                    tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(clips["no_audio"]), str(media_dir / "no_face.mp4"), "--checkpoint", str(tiny_mtl_run),
                 "--out", str(tmp_path), "--annotate"]) == 0
    assert "no model given" not in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "no_audio.csv")
    _check_table(table, 16)
    face = table["success"] == 1
    va = table.loc[face, ["valence", "arousal"]].to_numpy()
    assert np.isfinite(va).all() and (np.abs(va) <= 1).all()
    aus = table.loc[face, tasks.au_columns()].to_numpy()
    assert np.isfinite(aus).all() and ((aus >= 0) & (aus <= 1)).all()
    decisions = table.loc[face, [f"{c}_c" for c in tasks.au_columns()]].to_numpy()
    assert np.array_equal(decisions, (aus >= 0.5).astype(float))
    assert "note" not in table.columns
    for suffix in ("_va.png", "_expr.png", "_au.png", "_annotated.mp4", ".json"):
        assert (tmp_path / f"no_audio{suffix}").stat().st_size > 1000 or suffix == ".json"
    assert _n_frames(tmp_path / "no_audio_annotated.mp4") == 16
    empty = pd.read_csv(tmp_path / "no_face.csv")
    assert empty["success"].eq(0).all() and empty[["valence", "arousal"]].isna().all().all()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or p.name == "work"]


#: Presentation times (ms) of the variable-frame-rate clip: uneven gaps, as a phone writes them.
VFR_PTS_MS = (0, 100, 133, 250, 300, 500, 533, 566, 800, 1000)


@pytest.fixture(scope="module")
def vfr_clip(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A variable-frame-rate Matroska clip of the real face (time base 1/1000, irregular pts)."""
    import av

    path = tmp_path_factory.mktemp("vfr") / "vfr.mkv"
    images = [f.image for f in iter_frames(media_dir / "single_face.mp4", max_frames=len(VFR_PTS_MS))]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = images[0].shape[1], images[0].shape[0], "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        for image, pts in zip(images, VFR_PTS_MS, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_vfr_frames_carry_their_presentation_times(vfr_clip: Path) -> None:
    frames = list(iter_frames(vfr_clip))
    assert [f.index for f in frames] == list(range(1, len(VFR_PTS_MS) + 1))
    np.testing.assert_allclose([f.timestamp for f in frames], np.array(VFR_PTS_MS) / 1000, atol=1e-6)
    # Every other frame: numbers and times of the frames themselves, not of their position among those yielded.
    np.testing.assert_allclose([f.timestamp for f in iter_frames(vfr_clip, step=2)], np.array(VFR_PTS_MS[::2]) / 1000)


def test_vfr_video_predicts_real_timestamps(vfr_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            weights_dir: Path) -> None:
    assert main(["predict", str(vfr_clip), "--out", str(tmp_path), "--no-plots", "--annotate"]) == 0
    table = pd.read_csv(tmp_path / "vfr.csv")
    assert table["frame"].tolist() == list(range(1, len(VFR_PTS_MS) + 1))  # 1-based, decode order: label lines
    np.testing.assert_allclose(table["timestamp"], np.array(VFR_PTS_MS) / 1000, atol=1e-6)  # not frame / avg fps
    annotated = [f.timestamp for f in iter_frames(tmp_path / "vfr_annotated.mp4")]
    np.testing.assert_allclose(annotated, np.array(VFR_PTS_MS) / 1000, atol=1e-3)  # the copy keeps the times


def test_streamed_table_equals_whole_table(vfr_clip: Path, tmp_path: Path, fer_predictor) -> None:
    """The CSV written a few frames at a time is the table built in one piece."""
    from abaw.apps.predict import frame_table, write_frame_table
    from abaw.data.affwild2 import read_boxes
    from abaw.video.prepare import PrepareOptions, prepare_video

    prepare_video(vfr_clip, tmp_path / "work", PrepareOptions(detector="yunet", person="face", streams=("face",)),
                  name="vfr")
    boxes = read_boxes(tmp_path / "work", "vfr")
    outputs = {"vfr": fer_predictor.predict(tmp_path / "work", "vfr", "vfr", len(VFR_PTS_MS), 30.0)}
    path, face_frames = write_frame_table(boxes, outputs, fer_predictor, tmp_path / "t.csv", chunk=3)
    whole = frame_table(boxes, outputs, fer_predictor)
    whole.to_csv(tmp_path / "whole.csv", index=False)
    assert path.read_text() == (tmp_path / "whole.csv").read_text()
    assert face_frames == int(whole.groupby("frame")["success"].max().sum())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "whole.csv", "work"]  # no temporary file left


def test_a_folder_named_like_a_video_is_called_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.mp4").mkdir()
    assert main(["predict", str(tmp_path / "x.mp4"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x.mp4" in err[0] and "is a folder" in err[0] and "no such file" not in err[0]
    assert not (tmp_path / "out").exists()


# ---- a checkpoint with an audio stream on a still image ----------------------------------------------------------

def _audio_visual_run(run_dir: Path) -> Path:
    """A tiny untrained face + audio run folder (config, run.json, best checkpoint): enough to load and predict."""
    from abaw.fileio import write_json
    from abaw.train.checkpoint import model_from_config, save_checkpoint
    from abaw.train.config import resolve

    run_dir.mkdir(parents=True)
    cfg = resolve({"name": "av", "tasks": ["va", "expr", "au"],
                   "data": {"root": str(run_dir.parent), "streams": ["face", "audio"], "duration": 8},
                   "model": {"name": "demo_face",
                             "kwargs": {"streams": ["face", "audio"], "hidden_size": 8, "image_size": 32}},
                   "train": {"epochs": 1, "seed": 0, "progress": False, "threads": 1}})
    write_json(run_dir / "config.json", cfg)
    write_json(run_dir / "run.json", {"run_id": run_dir.name, "kind": "train", "status": "finished",
                                      "tracks": ["va", "expr", "au"]})
    save_checkpoint(run_dir / "checkpoints" / "best.pt", {"model": model_from_config(cfg).state_dict()})
    return run_dir


def test_audio_checkpoint_on_an_image_masks_the_audio(media_dir: Path, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """An image has no sound: the audio stream is a missing stream (masked), not an error; the outputs are those
    of the model given any audio with ``audio_valid`` False."""
    import torch

    from abaw.apps.predict import ModelPredictor, mask_missing_audio
    from abaw.video.prepare import PrepareOptions, prepare_video

    run = _audio_visual_run(tmp_path / "runs" / "av")
    image = media_dir / "single_face.jpg"
    with caplog.at_level(logging.INFO, logger="abaw"):
        assert main(["predict", str(image), "--checkpoint", str(run), "--out", str(tmp_path / "out"),
                     "--no-plots"]) == 0
    assert any("audio stream is masked" in r.getMessage() for r in caplog.records)
    table = pd.read_csv(tmp_path / "out" / "single_face.csv")
    assert len(table) == 1 and table["success"].eq(1).all()
    assert np.isfinite(table[["valence", "arousal", *tasks.au_columns()]].to_numpy()).all()
    meta = pd.read_json(tmp_path / "out" / "single_face.json", typ="series")
    assert list(meta["missing_streams"]) == ["audio"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["single_face.csv", "single_face.json"]

    predictor = ModelPredictor(run, device="cpu")
    work = tmp_path / "work"
    prepare_video(image, work, PrepareOptions(detector="yunet", person="face", streams=("face", "audio")),
                  name="still")
    assert not (work / "prepared" / "audio" / "still.npz").exists()  # prepare writes no audio for an image
    assert mask_missing_audio(work, "still", predictor) == ["audio"]
    assert mask_missing_audio(work, "still", predictor) == []  # present now: left as it is
    out = predictor.predict(work, "still", "still", 1, 1.0)
    np.testing.assert_allclose(out["va"][0], table[["valence", "arousal"]].to_numpy()[0], atol=1e-5)
    from abaw.data.sequences import SequenceVideo
    from abaw.data.stream_inputs import StreamLoader
    from abaw.inference import model_spec

    loader = StreamLoader(work, ("face",), model_spec(predictor.model))
    inputs = {k: torch.from_numpy(v)[None] for k, v in
              loader.load(SequenceVideo("still", "still", 1, 1.0, 1), np.arange(1), 8).items()}
    mask = torch.zeros(1, 8, dtype=torch.bool)
    mask[0, 0] = True
    for audio in (torch.zeros(1, 8, 1, predictor.n_mels, 100), torch.randn(1, 8, 1, predictor.n_mels, 100) * 30):
        with torch.no_grad():
            direct = predictor.model({**inputs, "audio": audio, "audio_valid": torch.zeros(1, 8, dtype=torch.bool)},
                                     mask)
        np.testing.assert_allclose(direct["va"][0, 0].numpy(), out["va"][0], atol=1e-5)


# ---- --person-weights ---------------------------------------------------------------------------------------------

class _Payload:
    """Unpickling this object runs code: it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return exec, (f"open({self.marker!r}, 'w').close()",)


@pytest.mark.parametrize("command", ["prepare", "predict"])
def test_person_weights_path_goes_through_the_trust_rule(command: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """``--person-weights PATH`` is opened by ultralytics (a pickle): bytes the catalogue does not know are refused
    with one line naming the file, before any work; it is only for ``--person ultralytics``."""
    import torch
    from helpers.cli import run_cli

    image = tmp_path / "media" / "still.jpg"
    image.parent.mkdir()
    cv2.imwrite(str(image), np.full((48, 64, 3), 128, np.uint8))
    marker, evil = tmp_path / "MARKER", tmp_path / "mine" / "yolov8s.pt"
    evil.parent.mkdir()
    torch.save({"model": _Payload(marker)}, evil)
    out = tmp_path / "out"
    base = [command, str(image), "--out", str(out), "--detector", "haar"]
    code, _, err = run_cli(capsys, *base, "--person", "ultralytics", "--person-weights", str(evil))
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and str(evil) in lines[0] and "Traceback" not in err
    assert "no catalogue file has its sha256" in lines[0] and "--trust-weights" in lines[0]
    code, _, err = run_cli(capsys, *base, "--person", "ultralytics", "--person-weights", str(tmp_path / "none.pt"))
    assert code == 2 and "weights file not found" in err and "none.pt" in err
    code, _, err = run_cli(capsys, *base, "--person", "yolo-fastest", "--person-weights", str(evil))
    assert code == 2 and "--person-weights is the model file of --person ultralytics" in err
    assert not marker.exists() and not out.exists()


def test_person_weights_reach_the_detector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trusted path is the model ultralytics is asked to open (the prepare options carry it to the detector)."""
    from abaw.video import persons
    from abaw.video.prepare import Detectors

    opened = []

    class FakeYolo:
        def __init__(self, path: str) -> None:
            opened.append(path)

    import ultralytics

    monkeypatch.setattr(ultralytics, "YOLO", FakeYolo)
    path = tmp_path / "yolov8s.pt"
    path.write_bytes(b"not checked: trusted")
    detectors = Detectors("haar", "ultralytics", trust_weights=True, person_weights=path)
    assert isinstance(detectors.person, persons.UltralyticsPerson) and opened == [str(path)]
    with pytest.raises(AbawError, match="not opened"):
        persons.create_person_detector("ultralytics", weights=path)
    with pytest.raises(AbawError, match="for the ultralytics detector"):
        persons.create_person_detector("yolo-fastest", weights=path)

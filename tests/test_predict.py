"""``abaw predict``: one row per video frame (frames without a face marked), plots, bad inputs as one line with
nothing left behind, and a trained run (``--checkpoint``) filling valence/arousal/AUs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from abaw import tasks
from abaw.cli import main
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
    out = capsys.readouterr().out
    assert code == 1 and "failed:" in out and "text.mp4" in out
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

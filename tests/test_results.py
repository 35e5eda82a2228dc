"""Result files: gap filling, writing and reading, perfect scores, the validator, the single-file format, the zip."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers.data_roots import NAMES, VIDEOS, make_root

from abaw import tasks
from abaw.data.affwild2 import AffWild2
from abaw.errors import AbawError
from abaw.results import (
    fill_missing,
    read_result_folder,
    score_result_folder,
    validate_submission,
    write_result_folder,
    write_single_file,
    zip_submission,
)

NAN = np.nan


@pytest.fixture(scope="module")
def root21(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_root(tmp_path_factory.mktemp("res21") / "data")


def perfect_preds(ds: AffWild2, split: str, track: str) -> dict[str, np.ndarray]:
    """The labels themselves, NaN where the label is invalid (those frames are filled and not scored)."""
    out = {}
    for entry in ds.entries(split, track):
        lab = ds.labels(entry).astype(np.float64)
        lab[lab.reshape(len(lab), -1).__eq__(tasks.INVALID[track]).any(axis=1)] = NAN
        out[entry.name] = lab
    return out


# ---- filling gaps ----------------------------------------------------------------------------------------------

def test_fill_va_interpolates_holds_ends_and_clips() -> None:
    arr = np.array([[NAN, NAN], [0.0, 1.0], [NAN, NAN], [0.5, 2.0], [NAN, NAN]])
    out = fill_missing("va", arr)
    np.testing.assert_allclose(out, [[0, 1], [0, 1], [0.25, 1], [0.5, 1], [0.5, 1]])
    arr = np.array([[-0.2, 0.0], [NAN, NAN], [NAN, NAN], [0.4, -0.6]])
    np.testing.assert_allclose(fill_missing("va", arr)[1:3], [[0.0, -0.2], [0.2, -0.4]], atol=1e-12)


def test_fill_expr_and_au_take_the_nearest_frame() -> None:
    expr = np.array([NAN, 3, NAN, NAN, NAN, 5, NAN, NAN])
    # frame 4 is equidistant from 3 (index 1) and 5 (index 5): ties go to the earlier frame
    np.testing.assert_array_equal(fill_missing("expr", expr)[:, 0], [3, 3, 3, 3, 5, 5, 5, 5])
    probs = np.array([[0.1, 0.7, 0.2, 0, 0, 0, 0], [NAN] * 7, [0, 0, 0, 0, 0, 0, 0.9]])
    np.testing.assert_array_equal(fill_missing("expr", probs)[:, 0], [1, 1, 6])
    au = np.full((4, 12), NAN)
    au[0] = 0.2
    au[3] = 0.8
    out = fill_missing("au", au)
    assert set(np.unique(out)) == {0.0, 1.0}
    np.testing.assert_array_equal(out[:, 0], [0, 0, 1, 1])


def test_fill_nothing_predicted_gives_zeros() -> None:
    for track, k in (("va", 2), ("expr", 1), ("au", 12)):
        out = fill_missing(track, np.full((5, k), NAN))
        assert out.shape == (5, k) and (out == 0).all()


# ---- writing, reading, scoring ---------------------------------------------------------------------------------

def test_write_and_read_back(tmp_path: Path) -> None:
    preds = {"a": np.array([[0.1, 0.2], [NAN, NAN], [0.3, -0.4]], dtype=np.float32),
             "b_left": np.array([[1.5, -2.0]])}
    folder = write_result_folder(tmp_path, "va", preds, "abaw2022")
    assert folder == tmp_path / "VA_Estimation_Challenge"
    assert (folder / "a.txt").read_text() == "valence,arousal\n0.1,0.2\n0.2,-0.1\n0.3,-0.4\n"
    back = read_result_folder(tmp_path, "va", "abaw2022")
    assert sorted(back) == ["a", "b_left"]
    np.testing.assert_array_equal(back["b_left"], [[1.0, -1.0]])
    with pytest.raises(AbawError, match="missing"):
        read_result_folder(tmp_path, "va", "abaw2022", names=["zzz"])


@pytest.mark.parametrize(("protocol", "layout"), [("abaw2020", "abaw2021"), ("abaw2021", "abaw2021"),
                                                  ("abaw2022", "abaw2022")])
def test_perfect_result_files_score_exactly_one(tmp_path: Path, protocol: str, layout: str) -> None:
    root = make_root(tmp_path / "d", layout=layout, protocol=protocol)
    ds = AffWild2(root, protocol=protocol)
    for track in tasks.TRACKS:
        for split in tasks.SPLITS:
            out = tmp_path / f"pred_{split}"
            write_result_folder(out, track, perfect_preds(ds, split, track), protocol)
            assert validate_submission(out, root, split, track, protocol) == []
            result = score_result_folder(out, root, split, track, protocol)
            assert result["score"] == 1.0, (track, split, result)
            assert result["n_videos"] == len(NAMES[split])


def test_score_rejects_wrong_line_counts(root21: Path, tmp_path: Path) -> None:
    ds = AffWild2(root21)
    preds = perfect_preds(ds, "validation", "expr")
    preds["vid4"] = preds["vid4"][:-3]
    write_result_folder(tmp_path, "expr", preds)
    with pytest.raises(AbawError, match="19 lines after the header, but the video of vid4 has 22 frames"):
        score_result_folder(tmp_path, root21, "validation", "expr")


# ---- the validator ---------------------------------------------------------------------------------------------

def _valid_folder(root: Path, out: Path, split: str = "validation", track: str = "au") -> Path:
    ds = AffWild2(root)
    entries = ds.entries(split, track) if split != "test" else ds.test_entries(track)
    preds = {e.name: np.zeros((e.n_frames, ds.protocol.n_outputs(track) if track != "expr" else 1))
             for e in entries}
    return write_result_folder(out, track, preds, ds.protocol)


def test_validator_accepts_a_good_folder_and_the_test_split(root21: Path, tmp_path: Path) -> None:
    folder = _valid_folder(root21, tmp_path / "v")
    assert validate_submission(folder, root21, "validation", "au") == []
    assert validate_submission(folder.parent, root21, "validation", "au") == []  # the parent works too
    test_folder = _valid_folder(root21, tmp_path / "t", "test", "va")
    assert validate_submission(test_folder, root21, "test", "va") == []


def test_validator_rejects_one_line_too_few(root21: Path, tmp_path: Path) -> None:
    folder = _valid_folder(root21, tmp_path / "v")
    path = folder / "vid3.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    problems = validate_submission(folder, root21, "validation", "au")
    assert problems == [f"{path}: 17 lines after the header, but the video of vid3 has 18 frames"]


def test_validator_lists_every_problem(root21: Path, tmp_path: Path) -> None:
    folder = _valid_folder(root21, tmp_path / "v", track="va")
    (folder / "vid4.txt").unlink()
    (folder / "extra.txt").write_text("valence,arousal\n0,0\n")
    (folder / "notes.md").write_text("hi")
    path = folder / "vid3.txt"
    lines = path.read_text().splitlines()
    lines[0] = "arousal,valence"
    path.write_text("\n".join(lines) + "\n")
    problems = validate_submission(folder, root21, "validation", "va")
    assert len(problems) == 4
    text = "\n".join(problems)
    assert "missing file for vid4" in text and "extra.txt: extra file" in text and "notes.md: extra file" in text
    assert f"{path}:1: wrong header" in text


@pytest.mark.parametrize(("track", "bad", "message"), [
    ("va", "-5,-5", "valence value -5 out of range (must be in [-1, 1])"),
    ("va", "0.5,x", "non-numeric value 'x'"),
    ("expr", "-1", "expression value -1 out of range (must be an integer in 0..6)"),
    ("au", "0,0,0,0,0,0,0,0,0,0,0,-1", "AU26 value -1 out of range (must be 0 or 1)"),
])
def test_validator_rejects_bad_values(root21: Path, tmp_path: Path, track: str, bad: str, message: str) -> None:
    folder = _valid_folder(root21, tmp_path / "v", track=track)
    path = folder / "vid4.txt"
    lines = path.read_text().splitlines()
    lines[5] = bad
    path.write_text("\n".join(lines) + "\n")
    assert validate_submission(folder, root21, "validation", track) == [f"{path}:6: {message}"]


def test_validator_bad_split(root21: Path, tmp_path: Path) -> None:
    with pytest.raises(AbawError, match="unknown split"):
        validate_submission(tmp_path, root21, "dev", "va")


# ---- the 2023+ format and the zip ------------------------------------------------------------------------------

def test_single_file_format(tmp_path: Path) -> None:
    preds = {"b": np.array([[1], [NAN]]), "a": np.array([[NAN], [2], [3]])}
    path = write_single_file(tmp_path / "expr.txt", "expr", preds, "abaw2022")
    assert path.read_text().splitlines() == [
        "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other",
        "a/00001.jpg,2", "a/00002.jpg,2", "a/00003.jpg,3", "b/00001.jpg,1", "b/00002.jpg,1"]


def test_zip_submission(root21: Path, tmp_path: Path) -> None:
    folder = _valid_folder(root21, tmp_path / "v")
    zip_path = zip_submission(folder, tmp_path / "sub.zip")
    with zipfile.ZipFile(zip_path) as zf:
        assert sorted(zf.namelist()) == ["AU_Set/vid3.txt", "AU_Set/vid4.txt"]
        assert zf.read("AU_Set/vid3.txt").decode().startswith(tasks.header("au") + "\n")
        assert len(zf.read("AU_Set/vid4.txt").decode().splitlines()) == VIDEOS["vid4"][2] + 1

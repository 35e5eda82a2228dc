"""The Aff-Wild2 reader on small hand-written data roots (every layout, every error case) and the synthetic set.

``make_root`` and ``write_video`` are shared with the other foundation test files.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from helpers.data_roots import NAMES, VIDEOS, label_text, make_root, random_labels

from abaw import tasks
from abaw.data import affwild2
from abaw.data.affwild2 import AffWild2, dataset_fingerprint, read_boxes, valid_mask, video_info, write_table
from abaw.errors import AbawError


@pytest.fixture(scope="module")
def root21(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_root(tmp_path_factory.mktemp("r21") / "data")


def ann_file(root: Path, track: str = "va", split: str = "train", name: str = "vid1", layout: str = "abaw2021") -> Path:
    return root / "annotations" / tasks.ANNOTATION_DIRS[layout][track] / tasks.SPLIT_DIRS[split] / f"{name}.txt"


# ---- the happy path --------------------------------------------------------------------------------------------

def test_entries_find_videos_in_batches_avi_and_two_person(root21: Path) -> None:
    ds = AffWild2(root21)
    assert ds.layout == "abaw2021" and ds.protocol.name == "abaw2021"
    train = {e.name: e for e in ds.entries("train", "va")}
    assert sorted(train) == NAMES["train"]
    assert train["vid2_left"].video == train["vid2_right"].video == "vid2"
    assert train["vid2_left"].video_path == root21 / "videos" / "batch1" / "vid2.mp4"
    val = {e.name: e for e in ds.entries("validation", "expr")}
    assert val["vid3"].video_path.suffix == ".avi"
    for entry in [*train.values(), *val.values()]:
        n = VIDEOS[entry.video][2]
        assert entry.n_frames == entry.n_label_lines == n
        assert entry.fps == pytest.approx(25.0)
        assert isinstance(entry.fps, float)
    assert ds.available() == [(s, t) for t in tasks.TRACKS for s in tasks.SPLITS]


def test_labels_keep_invalid_markers_and_match_the_file(root21: Path) -> None:
    ds = AffWild2(root21)
    for track, k in (("va", 2), ("expr", 1), ("au", 12)):
        entry = ds.entries("train", track)[0]
        lab = ds.labels(entry)
        assert lab.dtype == np.float32 and lab.shape == (entry.n_label_lines, k)
        ref = np.loadtxt(entry.annotation_path, delimiter=",", skiprows=1, ndmin=2).astype(np.float32)
        np.testing.assert_array_equal(lab, ref)
        mask = valid_mask(track, lab)
        assert 0 < mask.sum() < len(lab)
        np.testing.assert_array_equal(mask, (ref != tasks.INVALID[track]).all(axis=1))


def test_valid_mask_rules() -> None:
    va = np.array([[0.1, 0.2], [-5, -5], [0.3, -5], [np.nan, 0]])
    np.testing.assert_array_equal(valid_mask("va", va), [True, False, False, False])
    np.testing.assert_array_equal(valid_mask("expr", np.array([0, -1, 6])), [True, False, True])
    au = np.array([[0, 1], [-1, -1], [1, -1]])
    np.testing.assert_array_equal(valid_mask("au", au), [True, False, False])


def test_crops_listed_once(root21: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = AffWild2(root21)
    assert ds.crop_path("vid1", 7) == root21 / "cropped_aligned" / "vid1" / "00007.jpg"
    mask = ds.crop_mask("vid1", 24)
    np.testing.assert_array_equal(mask, np.arange(24) % 2 == 0)
    calls = []
    real_scandir = affwild2.os.scandir
    monkeypatch.setattr(affwild2.os, "scandir", lambda p: calls.append(p) or real_scandir(p))
    ds2 = AffWild2(root21)
    ds2.crop_mask("vid3", 18)
    ds2.crop_mask("vid3", 18)
    assert len(calls) == 1
    assert not ds2.crop_mask("no_such_name", 5).any()


def test_test_names_and_entries(root21: Path) -> None:
    ds = AffWild2(root21)
    assert ds.test_names("au") == ["vid5"]
    (entry,) = ds.test_entries("va")
    assert entry.split == "test" and entry.n_frames == 15 and entry.n_label_lines == 0


def test_index_table_and_writing_it(root21: Path, tmp_path: Path) -> None:
    table = AffWild2(root21).index_table()
    assert len(table) == 3 * (3 + 2 + 1)
    row = table[(table.split == "train") & (table.track == "va") & (table.name == "vid1")].iloc[0]
    assert row.n_frames == row.n_label_lines == 24 and row.n_crops == 12 and row.fps == 25.0
    assert 0 < row.n_valid < 24
    test_rows = table[table.split == "test"]
    assert (test_rows.n_frames == 15).all() and (test_rows.n_valid == 0).all()
    for suffix in (".csv", ".parquet"):
        path = write_table(table, tmp_path / f"index{suffix}")
        back = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
        assert back["n_valid"].sum() == table["n_valid"].sum() and list(back.columns) == list(table.columns)
    with pytest.raises(AbawError, match="csv or .parquet"):
        write_table(table, tmp_path / "index.pkl")


def test_video_info_counts_frames_when_the_container_does_not_store_them(tmp_path: Path) -> None:
    path = tmp_path / "v.mkv"  # Matroska stores no frame count
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for _ in range(13):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode())
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0
    assert video_info(path) == (13, 30.0)


def test_fingerprint_is_stable_and_sees_label_changes(tmp_path: Path) -> None:
    root = make_root(tmp_path / "d", videos=False)
    first = dataset_fingerprint(root)
    assert first == dataset_fingerprint(root) and len(first) == 16
    path = ann_file(root)
    lines = path.read_text().splitlines()
    lines[1] = "0.5,0.5"
    path.write_text("\n".join(lines) + "\n")
    assert dataset_fingerprint(root) != first


def test_fingerprint_sees_a_synthetic_roots_cues(tmp_path: Path) -> None:
    """Two synthetic sets with the same labels but other cue strengths (other pixels) are other datasets; where a
    root is written does not matter, and a broken summary is one line naming it."""
    root = make_root(tmp_path / "d", videos=False)
    plain = dataset_fingerprint(root)
    summary = root / tasks.SYNTH_SUMMARY_FILE
    summary.write_text(json.dumps({"out": "a", "cues": {"body_expression": 0.6}}))
    first = dataset_fingerprint(root)
    summary.write_text(json.dumps({"out": "b", "cues": {"body_expression": 0.6}}))
    assert dataset_fingerprint(root) == first != plain
    summary.write_text(json.dumps({"out": "a", "cues": {"body_expression": 0.8}}))
    assert dataset_fingerprint(root) != first
    summary.write_text("{")
    with pytest.raises(AbawError, match="synth.json"):
        dataset_fingerprint(root)


def test_read_boxes_sorted_and_checked(root21: Path, tmp_path: Path) -> None:
    boxes = read_boxes(root21, "vid1")
    assert list(boxes["frame"]) == [1, 2]
    with pytest.raises(AbawError, match="not found"):
        read_boxes(root21, "vid9")
    (tmp_path / "boxes").mkdir()
    (tmp_path / "boxes" / "v.csv").write_text("frame,face_id\n1,0\n")
    with pytest.raises(AbawError, match="lacks columns"):
        read_boxes(tmp_path, "v")


@pytest.mark.parametrize("layout", ["abaw2022", "mtl"])
def test_other_layouts(tmp_path: Path, layout: str) -> None:
    root = make_root(tmp_path / "d", layout=layout, protocol="abaw2022")
    ds = AffWild2(root)
    assert ds.layout == layout and ds.protocol.name == "abaw2022"
    entries = ds.entries("validation", "expr")
    assert [e.name for e in entries] == NAMES["validation"]
    lab = ds.labels(entries[0])
    assert lab.shape == (entries[0].n_frames, 1)
    if layout == "mtl":
        assert entries[0].n_label_lines == (entries[0].n_frames + 1) // 2
        assert (lab[1::2] == tasks.EXPR_INVALID).all()  # frames without a CSV row are invalid
        assert ds.labels(ds.entries("train", "au")[0]).shape[1] == 12
    table = ds.index_table()
    assert table["n_valid"].sum() > 0 and not table["label_mismatch"].any()


def test_the_6th_abaw_expr_folder_name_is_read(tmp_path: Path) -> None:
    """The 6th ABAW (2024) named the EXPR folder EXPR_Recognition_Challenge: the same entries and labels."""
    root = make_root(tmp_path / "d", layout="abaw2022", protocol="abaw2022")
    expected = AffWild2(root).entries("validation", "expr")
    ann = root / "annotations"
    (ann / "EXPR_Classification_Challenge").rename(ann / "EXPR_Recognition_Challenge")
    ds = AffWild2(root, protocol="abaw2024")
    entries = ds.entries("validation", "expr")
    assert ds.layout == "abaw2022" and [e.name for e in entries] == [e.name for e in expected]
    assert "EXPR_Recognition_Challenge" in str(entries[0].annotation_path)
    assert (ds.labels(entries[0]) == AffWild2(root).labels(entries[0])).all()


def test_missing_track_has_no_entries(tmp_path: Path) -> None:
    root = make_root(tmp_path / "d", videos=False)
    for split in tasks.SPLITS:
        shutil.rmtree(root / "annotations" / "AU_Set" / tasks.SPLIT_DIRS[split])
    ds = AffWild2(root)
    assert not ds.has("train", "au") and ds.entries("train", "au") == []
    assert ("train", "au") not in ds.available() and ("train", "va") in ds.available()
    assert set(ds.index_table().track) == {"va", "expr", "au"}  # au only through its test list
    with pytest.raises(AbawError, match="unknown split"):
        ds.entries("dev", "va")


def test_layout_and_protocol_choice_errors(tmp_path: Path) -> None:
    with pytest.raises(AbawError, match="not found"):
        AffWild2(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AbawError, match="annotations"):
        AffWild2(tmp_path / "empty")
    (tmp_path / "empty" / "annotations" / "Other").mkdir(parents=True)
    with pytest.raises(AbawError, match="no known annotation folder"):
        AffWild2(tmp_path / "empty")


# ---- bad input: one error naming the file and the line ----------------------------------------------------------

def _corrupt(path: Path, line_no: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[line_no - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(("track", "line_no", "text", "message"), [
    ("va", 1, "valence;arousal", "wrong header"),
    ("va", 5, "0.1,abc", "non-numeric value 'abc'"),
    ("va", 6, "0.1", "1 values on the line, expected 2"),
    ("va", 7, "0.1,0.2,0.3", "3 values on the line, expected 2"),
    ("va", 3, "0.1,1.5", "arousal value 1.5 out of range"),
    ("va", 4, "-4,0", "valence value -4 out of range"),
    ("va", 8, "", "empty line"),
    ("va", 9, "nan,0", "non-numeric value 'nan'"),
    ("expr", 4, "7", "expression value 7 out of range"),
    ("expr", 5, "2.5", "expression value 2.5 out of range"),
    ("expr", 1, "Neutral,Anger", "wrong header"),
    ("au", 6, "0,1,0,1,0,1,0,1,0,1,0,2", "AU26 value 2 out of range"),
    ("au", 2, "0,1,0,1,0,1,0,1,0,1,0", "11 values on the line, expected 12"),
])
def test_bad_label_files_name_file_and_line(tmp_path: Path, track: str, line_no: int, text: str,
                                            message: str) -> None:
    root = make_root(tmp_path / "d", videos=False)
    path = ann_file(root, track)
    _corrupt(path, line_no, text)
    ds = AffWild2(root)
    with pytest.raises(AbawError) as info:
        entry = next(e for e in ds.entries("train", track) if e.name == "vid1")
        ds.labels(entry)
    assert message in str(info.value)
    assert str(info.value).startswith(f"{path}:{line_no}: ")
    assert info.value.line == line_no


def test_bad_multitask_csv(tmp_path: Path) -> None:
    root = make_root(tmp_path / "d", layout="mtl", protocol="abaw2022", videos=False)
    path = root / "annotations" / "MTL" / tasks.MTL_FILES["train"]
    lines = path.read_text().splitlines()
    original = lines[3]
    for bad, message in ((original.replace(".jpg", ".png", 1), "is not <video>/<frame>.jpg"),
                         (original.split(",", 1)[0] + ",0.1,0.2,9" + ",0" * 12, "expression value 9 out of range"),
                         (original + ",1", "17 values on the line, expected 16"),
                         (lines[2], "appears twice")):
        lines[3] = bad
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(AbawError, match=message) as info:
            AffWild2(root).entries("train", "va")
        assert info.value.line == 4


def test_unreadable_video(tmp_path: Path) -> None:
    root = make_root(tmp_path / "d", videos=False)
    (root / "videos").mkdir()
    (root / "videos" / "vid1.mp4").write_bytes(b"this is not a video" * 10)
    with pytest.raises(AbawError, match="unreadable video") as info:
        AffWild2(root).entries("train", "va")
    assert "vid1.mp4" in str(info.value)


def test_line_count_mismatch_warns_or_fails_when_strict(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_root(tmp_path / "d")
    path = ann_file(root, "au", "validation", "vid4")
    path.write_text(path.read_text() + "0,0,0,0,0,0,0,0,0,0,0,0\n")
    with caplog.at_level(logging.WARNING):
        entries = AffWild2(root).entries("validation", "au")
    assert "vid4: 23 label lines but video vid4.mp4 has 22 frames" in caplog.text
    assert {e.name: e.n_frames for e in entries}["vid4"] == 22
    with pytest.raises(AbawError, match="23 label lines but video vid4.mp4 has 22 frames"):
        AffWild2(root, strict=True).entries("validation", "au")


def test_missing_videos_warn_once_and_fall_back_to_label_lines(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    root = make_root(tmp_path / "d", videos=False)
    with caplog.at_level(logging.WARNING):
        entries = AffWild2(root).entries("train", "va")
    assert caplog.text.count("no video file") == 1
    assert all(e.video_path is None and e.n_frames == e.n_label_lines for e in entries)
    with pytest.raises(AbawError, match="no video file"):
        AffWild2(root, strict=True).entries("train", "va")


def test_large_file_parses_fast_path(tmp_path: Path) -> None:
    """200k lines go through pandas in one call (a per-value Python loop would take seconds)."""
    rng = np.random.default_rng(1)
    lab = random_labels("au", 200_000, rng)
    path = tmp_path / "big.txt"
    path.write_text(label_text("au", lab))
    out = affwild2.parse_label_file(path, "au")
    np.testing.assert_array_equal(out, lab)


# ---- the synthetic set -------------------------------------------------------------------------------------------

def test_synthetic_set_line_counts_equal_frame_counts(tiny_root_ro: Path) -> None:
    ds = AffWild2(tiny_root_ro, strict=True)
    table = ds.index_table()
    labelled = table[table.split != "test"]
    assert len(labelled) > 0
    assert (labelled.n_label_lines == labelled.n_frames).all()
    assert (labelled.n_valid > 0).all()


def test_video_info_on_real_media(media_dir: Path) -> None:
    assert video_info(media_dir / "single_face.mp4") == (72, 30.0)
    n_frames, fps = video_info(media_dir / "face_noface.mov")  # HEVC in QuickTime, a non-integer rate
    assert n_frames == 169 and fps == pytest.approx(26.398, abs=1e-3)


def test_binary_label_file(tmp_path: Path) -> None:
    root = make_root(tmp_path / "d", videos=False)
    path = ann_file(root, "expr")
    path.write_bytes(b"\xff\xfe\x00garbage\n1\n")
    with pytest.raises(AbawError, match="not a UTF-8 text file") as info:
        AffWild2(root).entries("train", "expr")
    assert str(path) in str(info.value)
    with pytest.raises(AbawError, match="not a UTF-8 text file"):
        affwild2.parse_label_file(path, "expr")

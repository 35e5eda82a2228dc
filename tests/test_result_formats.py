"""Result files of every protocol in both formats (folder, single file), validated and scored end to end: perfect
predictions score exactly 1, the training mean scores CCC 0, a missing line is refused; the hidden test split is
scored against a label root (``abaw score --split test --labels DIR``)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers.cli import run_cli
from helpers.data_roots import VIDEOS, make_root
from helpers.label_roots import covering_labels, write_label_root

from abaw import tasks
from abaw.data.affwild2 import AffWild2, parse_label_file
from abaw.errors import AbawError
from abaw.results import (
    convert_results,
    read_results,
    result_format,
    result_path,
    score_results,
    validate_submission,
    write_results,
)

SPLITS = tasks.RESULT_SPLITS
TEST_NAME = "vid5"  # make_root's one test name


@dataclass(frozen=True)
class World:
    proto: tasks.Protocol
    root: Path
    labels: Path  # the label root holding only the hidden test labels


@pytest.fixture(scope="module", params=tuple(tasks.PROTOCOLS))
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> World:
    proto = tasks.get_protocol(request.param)
    base = tmp_path_factory.mktemp(proto.name)
    root = make_root(base / "data", layout=proto.layout, protocol=proto.name)
    labels = base / "test_labels"
    for i, track in enumerate(tasks.TRACKS):
        lab = covering_labels(track, VIDEOS[TEST_NAME][2], proto.name, seed=i)
        write_label_root(labels, track, {TEST_NAME: lab}, proto.name)
    return World(proto, root, labels)


def truth(world: World, split: str, track: str) -> dict[str, np.ndarray]:
    """The labels of a split: the data root's for train/validation, the label root's for test."""
    if split == tasks.TEST_SPLIT:
        folder = world.labels / "annotations" / world.proto.annotation_dir(track) / tasks.TEST_SPLIT_DIR
        return {p.stem: parse_label_file(p, track, world.proto) for p in sorted(folder.glob("*.txt"))}
    ds = AffWild2(world.root, protocol=world.proto)
    return {e.name: ds.labels(e) for e in ds.entries(split, track)}


def perfect(labels: dict[str, np.ndarray], track: str) -> dict[str, np.ndarray]:
    """The labels as predictions; NaN where a label is invalid (filled when written, not scored)."""
    out = {}
    for name, lab in labels.items():
        pred = lab.astype(np.float64).reshape(len(lab), -1)
        pred[~tasks.valid_mask(track, pred)] = np.nan
        out[name] = pred
    return out


def score(world: World, path: Path, split: str, track: str, **kwargs: object) -> dict:
    labels = world.labels if split == tasks.TEST_SPLIT else None
    return score_results(path, world.root, split, track, world.proto.name, labels=labels, **kwargs)


def drop_last_line(path: Path) -> None:
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")


@pytest.mark.parametrize("fmt", tasks.RESULT_FORMATS)
def test_perfect_predictions_score_exactly_one(world: World, tmp_path: Path, fmt: str) -> None:
    for split in SPLITS:
        for track in tasks.TRACKS:
            out = tmp_path / split
            written = write_results(out, track, perfect(truth(world, split, track), track), world.proto, fmt)
            assert written == result_path(out, track, world.proto, fmt)
            assert written.is_file() if fmt == "single" else written.is_dir()
            assert result_format(out, track, world.proto) == result_format(written, track, world.proto) == fmt
            assert validate_submission(out, world.root, split, track, world.proto.name) == []
            result = score(world, out, split, track)
            assert result["score"] == 1.0, (world.proto.name, fmt, split, track, result)
            assert result["n_videos"] == len(truth(world, split, track))
    # the test split scores against the label root alone too (no data root: frame counts from the label files)
    result = score_results(tmp_path / "test", None, "test", "au", world.proto.name, labels=world.labels)
    assert result["score"] == 1.0 and result["n_videos"] == 1


@pytest.mark.parametrize("fmt", tasks.RESULT_FORMATS)
def test_the_training_mean_scores_ccc_zero(world: World, tmp_path: Path, fmt: str) -> None:
    train = np.concatenate(list(truth(world, "train", "va").values()))
    mean = train[tasks.valid_mask("va", train)].mean(axis=0)
    for split in ("validation", "test"):
        preds = {name: np.tile(mean, (len(lab), 1)) for name, lab in truth(world, split, "va").items()}
        out = write_results(tmp_path / split, "va", preds, world.proto, fmt)
        result = score(world, out, split, "va")
        assert (result["ccc_valence"], result["ccc_arousal"], result["score"]) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("fmt", tasks.RESULT_FORMATS)
def test_a_missing_line_is_refused_naming_the_file(world: World, tmp_path: Path, fmt: str,
                                                   capsys: pytest.CaptureFixture) -> None:
    for split, name in (("validation", "vid4"), ("test", TEST_NAME)):
        out = tmp_path / split
        written = write_results(out, "expr", perfect(truth(world, split, "expr"), "expr"), world.proto, fmt)
        path = written if fmt == "single" else written / f"{name}.txt"
        drop_last_line(path)  # the single file's last line is the last frame of its last name
        n = VIDEOS[name][2]
        what = f"{n - 1} lines for {name}" if fmt == "single" else f"{n - 1} lines after the header"
        message = f"{path}: {what}, but the video of {name} has {n} frames"
        assert validate_submission(out, world.root, split, "expr", world.proto.name) == [message]
        with pytest.raises(AbawError) as info:
            score(world, out, split, "expr")
        assert str(info.value) == message
        argv = ["score", "--data-root", str(world.root), "--split", split, "--track", "expr", "--pred", str(out)]
        code, out_text, err = run_cli(capsys, *argv, *(["--labels", str(world.labels)] if split == "test" else []))
        assert code == 2 and out_text == "" and err.count("\n") == 1 and str(path) in err and "Traceback" not in err


def test_the_test_split_needs_a_label_root(world: World, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sub"
    write_results(out, "va", perfect(truth(world, "test", "va"), "va"), world.proto)
    code, _, err = run_cli(capsys, "score", "--data-root", str(world.root), "--split", "test", "--track", "va",
                           "--pred", str(out))
    assert code == 2 and err.count("\n") == 1 and "--labels" in err
    code, _, err = run_cli(capsys, "score", "--split", "test", "--track", "va", "--pred", str(out))
    assert code == 2 and err.count("\n") == 1 and "--labels" in err
    code, out_text, _ = run_cli(capsys, "score", "--labels", str(world.labels), "--split", "test", "--track", "va",
                                "--pred", str(out), "--json")
    assert code == 0 and json.loads(out_text)["score"] == 1.0
    # a data root's layout never reads Test_Set: the reader knows only train and validation
    assert tasks.TEST_SPLIT not in tasks.SPLITS and tasks.TEST_SPLIT not in tasks.SPLIT_DIRS
    with pytest.raises(AbawError, match="unknown split"):
        AffWild2(world.root).entries(tasks.TEST_SPLIT, "va")


def test_validate_submission_cli_reads_both_formats_and_zips_a_single_file(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    proto = tasks.get_protocol("abaw2024")
    root = make_root(tmp_path / "data", layout=proto.layout, protocol=proto.name)
    world = World(proto, root, tmp_path / "labels")
    preds = perfect(truth(world, "validation", "au"), "au")
    for fmt in tasks.RESULT_FORMATS:
        out = tmp_path / fmt
        written = write_results(out, "au", preds, proto, fmt)
        code, text, _ = run_cli(capsys, "validate-submission", str(out), "--data-root", str(root), "--split",
                                "validation", "--track", "au", "--zip", str(tmp_path / f"{fmt}.zip"))
        assert code == 0 and f"{written}: valid" in text
        with zipfile.ZipFile(tmp_path / f"{fmt}.zip") as zf:
            names = sorted(zf.namelist())
        assert names == (["AU_Detection_Challenge.txt"] if fmt == "single"
                         else ["AU_Detection_Challenge/vid3.txt", "AU_Detection_Challenge/vid4.txt"])
        code, text, _ = run_cli(capsys, "score", "--data-root", str(root), "--split", "validation", "--track", "au",
                                "--pred", str(written), "--format", fmt)
        assert code == 0 and "score 1.0000" in text
    # both formats in one folder: the format must be chosen
    both = tmp_path / "both"
    write_results(both, "au", preds, proto, "folder")
    write_results(both, "au", preds, proto, "single")
    code, _, err = run_cli(capsys, "validate-submission", str(both), "--data-root", str(root), "--split",
                           "validation", "--track", "au")
    assert code == 2 and "--format" in err and err.count("\n") == 1
    for fmt in tasks.RESULT_FORMATS:
        assert validate_submission(both, root, "validation", "au", fmt=fmt) == []


def test_single_file_header_lines_and_problems(tmp_path: Path) -> None:
    proto = tasks.get_protocol("abaw2025")
    root = make_root(tmp_path / "data", layout=proto.layout, protocol=proto.name)
    world = World(proto, root, tmp_path / "labels")
    labels = truth(world, "validation", "va")
    path = write_results(tmp_path / "s", "va", perfect(labels, "va"), proto, "single")
    assert path.name == "VA_Estimation_Challenge.txt"
    lines = path.read_text().splitlines()
    assert lines[0] == "image_location,valence,arousal" and lines[1].startswith("vid3/00001.jpg,")
    assert len(lines) == 1 + sum(VIDEOS[n][2] for n in labels)
    expr = write_results(tmp_path / "e", "expr", perfect(truth(world, "validation", "expr"), "expr"), proto)
    head, first = expr.read_text().splitlines()[:2]
    assert head == "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
    assert first.count(",") == 1  # one class index per line, as in the folder format

    def problems(edit: Callable[[bytes], bytes]) -> list[str]:
        edited = tmp_path / "edited.txt"
        edited.write_bytes(edit(path.read_bytes()))
        return validate_submission(edited, root, "validation", "va")

    assert problems(lambda b: b"\xef\xbb\xbf" + b.replace(b"\n", b"\r\n")) == []  # BOM and CRLF are fine
    lines_b = path.read_bytes().split(b"\n")
    assert problems(lambda b: b"\n".join(lines_b[:5] + lines_b[6:])) == [  # a middle line missing
        f"{tmp_path / 'edited.txt'}: no line for vid3/00005.jpg (one line per frame 1..N of each video)"]
    assert problems(lambda b: b"\n".join(lines_b[:5] + [lines_b[4]] + lines_b[5:])) == [
        f"{tmp_path / 'edited.txt'}:6: vid3/00004.jpg appears twice"]
    assert problems(lambda b: b.replace(b"vid4/", b"vid9/")) == [
        f"{tmp_path / 'edited.txt'}: no lines for vid4",
        f"{tmp_path / 'edited.txt'}: vid9 is not a validation name of the VA track"]
    assert problems(lambda b: b.replace(b"vid3/00002.jpg", b"vid3-00002.png")) == [
        f"{tmp_path / 'edited.txt'}:3: image location 'vid3-00002.png' is not <name>/<frame>.jpg"]
    assert problems(lambda b: b.replace(b"image_location,", b"")) == [
        f"{tmp_path / 'edited.txt'}:1: wrong header 'valence,arousal', expected 'image_location,valence,arousal'"]
    bad_value = problems(lambda b: b"\n".join(lines_b[:3] + [b"vid3/00003.jpg,2,0"] + lines_b[4:]))
    assert bad_value == [f"{tmp_path / 'edited.txt'}:4: valence value 2 out of range (must be in [-1, 1])"]
    # a folder-format file is not a single file
    folder = write_results(tmp_path / "f", "va", perfect(labels, "va"), proto, "folder")
    with pytest.raises(AbawError, match=r"vid3\.txt:1: wrong header"):
        read_results(folder / "vid3.txt", "va", proto)


def test_convert_between_formats_keeps_every_value(tmp_path: Path) -> None:
    proto = tasks.get_protocol("abaw2023")
    root = make_root(tmp_path / "data", layout=proto.layout, protocol=proto.name)
    world = World(proto, root, tmp_path / "labels")
    for track in tasks.TRACKS:
        folder = write_results(tmp_path / "a", track, perfect(truth(world, "train", track), track), proto, "folder")
        single = convert_results(folder, tmp_path / "b", track, proto)  # the protocol's format: single
        back = convert_results(single, tmp_path / "c", track, proto, fmt="folder")
        original = read_results(folder, track, proto)
        for values in (read_results(single, track, proto), read_results(back, track, proto)):
            assert values.keys() == original.keys()
            for name in original:
                np.testing.assert_array_equal(values[name], original[name])


def test_evaluate_writes_the_protocols_format_for_the_test_split(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    """A one-epoch abaw2023 run on a synthetic root: ``abaw evaluate --split test`` writes one valid file per track,
    which ``abaw score --split test --labels`` scores against the generator's hidden test labels."""
    from abaw.synth.dataset import generate
    from abaw.train.config import resolve
    from abaw.train.loop import train

    root = tmp_path / "data"
    generate(root, videos=6, frames=16, seed=0, layout="abaw2022")
    cfg = resolve({"name": "single", "protocol": "abaw2023", "tasks": ["va", "expr", "au"],
                   "data": {"root": str(root), "streams": ["face"], "duration": 8, "batch_size": 4},
                   "model": {"name": "demo_face", "kwargs": {"hidden_size": 8, "image_size": 32}},
                   "train": {"epochs": 1, "seed": 0, "progress": False, "threads": 1}})
    run_dir = train(cfg, out=tmp_path / "runs")
    code, text, err = run_cli(capsys, "evaluate", str(run_dir), "--split", "test", "--submission",
                              str(tmp_path / "sub"))
    assert code == 0, err
    ds = AffWild2(root, protocol="abaw2023")
    proto = tasks.get_protocol("abaw2023")
    scored = 0
    for track in tasks.TRACKS:
        if not ds.has_test_set(track):
            continue
        path = run_dir / "results" / "test" / proto.result_file(track)
        assert f"{track.upper()} test result file valid: {path}" in text
        assert (tmp_path / "sub" / proto.result_file(track)).read_text() == path.read_text()
        assert not (run_dir / "results" / "test" / proto.annotation_dir(track)).exists()
        values = read_results(path, track, proto)
        assert {name: len(v) for name, v in values.items()} == {n: ds.video_info(n)[0] for n in ds.test_names(track)}
        labels = root / "test_labels"
        if (labels / "annotations" / proto.annotation_dir(track) / tasks.TEST_SPLIT_DIR).is_dir():
            code, out, err = run_cli(capsys, "score", "--labels", str(labels), "--data-root", str(root), "--split",
                                     "test", "--track", track, "--pred", str(tmp_path / "sub"), "--protocol",
                                     "abaw2023", "--json")
            assert code == 0, err
            assert json.loads(out)["protocol"] == "abaw2023"
            scored += 1
    assert scored or not (root / "test_labels").exists()


def test_demo_result_format_single_rewrites_the_submitted_folders(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    """``abaw demo --result-format single``: each validated submission folder also as one file, validated, zipped."""
    from abaw.apps.demo import Demo
    from abaw.commands.demo import _single_files

    out, subs = tmp_path / "abaw-demo", tmp_path / "submissions"
    root = make_root(Demo(out=out, submissions=subs).data_root)
    world = World(tasks.get_protocol("abaw2021"), root, tmp_path / "labels")
    tracks = {}
    for track in tasks.TRACKS:
        folder = write_results(subs, track, perfect(truth(world, "validation", track), track), world.proto, "folder")
        tracks[track] = {"folder": str(folder), "split": "validation"}
    assert _single_files(out, subs, {"submissions": {"state": "ran", "summary": {"tracks": tracks}}})
    printed = capsys.readouterr().out
    for track in tasks.TRACKS:
        path = subs / "single" / world.proto.result_file(track)
        assert f"single result file: {path} (valid" in printed and path.with_suffix(".zip").is_file()
        assert score_results(path, root, "validation", track)["score"] == 1.0
    assert not _single_files(out, subs, {"submissions": {"state": "failed"}})

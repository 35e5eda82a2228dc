"""The bad-input corpus (issue 16): every class of bad input a user could feed each command gives one error line
naming the file, the documented exit code, no traceback and nothing left behind.

One row per case: id, a writer that puts the bad input under the case's folder, the ``abaw`` argv (``{t}`` is the
case's input folder, ``{r}`` a small synthetic data root copied for the case), the exit code, a fragment the error
line must contain (normally the file's name; None when the input is accepted) and the paths the command may add.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from abaw import tasks
from abaw.cli import main
from tests.helpers import bad_inputs as bi
from tests.helpers.data_roots import write_video


@dataclass(frozen=True)
class Case:
    """One bad input and what the command must do with it."""

    id: str
    make: Callable[[Path, Path | None], object]
    argv: tuple[str, ...]
    code: int
    fragment: str | None
    root: bool | str = False  # the case needs a copy of a data root at {r}: True (2021 layout) or "mtl" (2022, CSV)
    outputs: tuple[str, ...] = ()  # globs ({t}, {r} filled in) of paths the command may create or change
    env: dict[str, str] = field(default_factory=dict)
    weights: bool = False  # needs the real model files (skipped when absent)
    xfail: str | None = None


def _nothing(t: Path, r: Path | None) -> None:
    return None


def _config(r: Path | None, **over: object) -> dict:
    """A tiny valid training config on the data root, with top-level groups replaced/merged from ``over``."""
    cfg: dict = {"name": "bad", "tasks": ["va"],
                 "data": {"root": str(r), "streams": ["face"], "duration": 8, "batch_size": 4},
                 "model": {"name": "demo_face", "kwargs": {"hidden_size": 8, "image_size": 32}},
                 "train": {"epochs": 1, "seed": 0, "progress": False, "threads": 1}}
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def _cfg_file(**over: object) -> Callable[[Path, Path | None], object]:
    return lambda t, r: bi.write(t / "cfg.json", json.dumps(_config(r, **over)))


def _label(track: str, row: int, text: str, split: str = "validation") -> Callable[[Path, Path | None], object]:
    """Replace one line of the first annotation file of ``track``; the file is copied to {t}/label.txt for naming."""
    def make(t: Path, r: Path | None) -> None:
        assert r is not None
        bi.edit_lines(bi.first_annotation(r, track, split), row, text)
    return make


def _label_bytes(track: str, transform: Callable[[bytes], bytes]) -> Callable[[Path, Path | None], object]:
    def make(t: Path, r: Path | None) -> None:
        assert r is not None
        path = bi.first_annotation(r, track)
        path.write_bytes(transform(path.read_bytes()))
    return make


MTL_FILE = "annotations/MTL/validation_set_annotations.txt"
INDEX_MTL = ("index", "{r}", "--layout", "mtl")


def _mtl(transform: Callable[[bytes], bytes]) -> Callable[[Path, Path | None], object]:
    """Rewrite the validation CSV of the multi-task layout."""
    def make(t: Path, r: Path | None) -> None:
        assert r is not None
        path = r / MTL_FILE
        path.write_bytes(transform(path.read_bytes()))
    return make


def _mtl_line(row: int, text: str) -> Callable[[Path, Path | None], object]:
    def edit(data: bytes) -> bytes:
        lines = data.decode().splitlines()
        lines[row] = text
        return ("\n".join(lines) + "\n").encode()
    return _mtl(edit)


def _copy_line(data: bytes, src: int, dst: int) -> bytes:
    """Line ``dst`` of a text file replaced by a copy of line ``src`` (an image listed twice)."""
    lines = data.decode().splitlines()
    lines[dst] = lines[src]
    return ("\n".join(lines) + "\n").encode()


def _results(track: str, edit: Callable[[Path], object]) -> Callable[[Path, Path | None], object]:
    """A valid result folder of the validation split under {t}/pred, then ``edit(track_folder)``."""
    def make(t: Path, r: Path | None) -> None:
        assert r is not None
        edit(bi.valid_results(r, t / "pred", track))
    return make


def _first(folder: Path) -> Path:
    return sorted(folder.glob("*.txt"))[0]


def _single(track: str, edit: Callable[[Path], object]) -> Callable[[Path, Path | None], object]:
    """The valid result folder rewritten as one single result file (2023 format) under {t}/pred, then ``edit(it)``."""
    def make(t: Path, r: Path | None) -> None:
        from abaw.results import convert_results

        assert r is not None
        folder = bi.valid_results(r, t / "folder", track)
        edit(convert_results(folder, t / "pred", track, "abaw2021", fmt="single"))
    return make


def _drop_last_line(path: Path) -> None:
    bi.write(path, "\n".join(path.read_text().splitlines()[:-1]) + "\n")


def _video_in_root(writer: Callable[[Path], object]) -> Callable[[Path, Path | None], object]:
    """Replace the video of the first VA validation annotation by a bad one (same name)."""
    def make(t: Path, r: Path | None) -> None:
        assert r is not None
        name = tasks.split_two_person(bi.first_annotation(r, "va").stem)[0]
        video = next((r / "videos").rglob(f"{name}.*"))
        video.unlink()
        writer(video)
    return make


def _crop_in_root(data: bytes) -> Callable[[Path, Path | None], object]:
    def make(t: Path, r: Path | None) -> None:
        assert r is not None
        for crop in (r / "cropped_aligned").rglob("*.jpg"):
            crop.write_bytes(data)
    return make


def _weights_dir(data: bytes | None) -> Callable[[Path, Path | None], object]:
    """{t}/w holding the YuNet file with the given bytes (the real file's name, wrong content)."""
    def make(t: Path, r: Path | None) -> None:
        (t / "w").mkdir(parents=True, exist_ok=True)
        (t / "cache").mkdir(exist_ok=True)
        if data is not None:
            bi.write(t / "w" / "face_detection_yunet_2023mar.onnx", data)
    return make


WENV = {"ABAW_WEIGHTS_DIR": "{t}/w", "ABAW_CACHE_DIR": "{t}/cache", "ABAW_OFFLINE": "1"}
TRAIN = ("train", "-c", "{t}/cfg.json", "--out", "{t}/runs")
SCORE_VA = ("score", "--data-root", "{r}", "--split", "validation", "--track", "va", "--pred", "{t}/pred")
SCORE_AU = ("score", "--data-root", "{r}", "--split", "validation", "--track", "au", "--pred", "{t}/pred")
VALID_VA = ("validate-submission", "--data-root", "{r}", "--split", "validation", "--track", "va", "{t}/pred")
VALID_AU = ("validate-submission", "--data-root", "{r}", "--split", "validation", "--track", "au", "{t}/pred")
HEAD_VA = "valence,arousal"

CASES: list[Case] = [
    # --- videos -------------------------------------------------------------------------------------------------
    Case("predict-video-empty", lambda t, r: bi.write(t / "empty.mp4", b""),
         ("predict", "{t}/empty.mp4", "--out", "{t}/out", "--no-plots"), 2, "empty.mp4", weights=True),
    Case("predict-video-truncated", lambda t, r: bi.truncated_video(t / "cut.mp4"),
         ("predict", "{t}/cut.mp4", "--out", "{t}/out", "--no-plots"), 2, "cut.mp4", weights=True),
    Case("predict-video-text", lambda t, r: bi.write(t / "notes.mp4", "this is not a video\n"),
         ("predict", "{t}/notes.mp4", "--out", "{t}/out", "--no-plots"), 2, "notes.mp4", weights=True),
    Case("predict-video-zero-frames", lambda t, r: bi.zero_frame_video(t / "zero.mp4"),
         ("predict", "{t}/zero.mp4", "--out", "{t}/out", "--no-plots"), 2, "zero.mp4", weights=True),
    Case("predict-video-folder", lambda t, r: (t / "x.mp4").mkdir(parents=True),
         ("predict", "{t}/x.mp4", "--out", "{t}/out", "--no-plots"), 2, "x.mp4"),
    Case("predict-video-missing", _nothing,
         ("predict", "{t}/nothere.mp4", "--out", "{t}/out", "--no-plots"), 2, "nothere.mp4"),
    Case("prepare-video-empty", lambda t, r: bi.write(t / "empty.mp4", b""),
         ("prepare", "{t}/empty.mp4", "--out", "{t}/prep", "--person", "face"), 1, "empty.mp4", weights=True),
    Case("prepare-video-text", lambda t, r: bi.write(t / "notes.mp4", "not a video\n"),
         ("prepare", "{t}/notes.mp4", "--out", "{t}/prep", "--person", "face"), 1, "notes.mp4", weights=True),
    Case("prepare-video-folder", lambda t, r: (t / "x.mp4").mkdir(parents=True),
         ("prepare", "{t}/x.mp4", "--out", "{t}/prep", "--person", "face"), 2, "x.mp4"),
    Case("prepare-root-without-videos", lambda t, r: (t / "root" / "annotations").mkdir(parents=True),
         ("prepare", "{t}/root", "--person", "face"), 2, "root"),
    Case("index-video-truncated", _video_in_root(bi.truncated_video), ("index", "{r}"), 2, ".mp4", root=True),
    Case("index-video-text", _video_in_root(lambda p: bi.write(p, "text")), ("index", "{r}"), 2, ".mp4", root=True),
    Case("index-video-zero-frames", _video_in_root(bi.zero_frame_video), ("index", "{r}"), 2, ".mp4", root=True),
    Case("index-video-empty", _video_in_root(lambda p: bi.write(p, b"")), ("index", "{r}"), 2, ".mp4", root=True),
    # --- images -------------------------------------------------------------------------------------------------
    Case("predict-image-empty", lambda t, r: bi.write(t / "empty.jpg", b""),
         ("predict", "{t}/empty.jpg", "--out", "{t}/out", "--no-plots"), 2, "empty.jpg", weights=True),
    Case("predict-image-junk", lambda t, r: bi.write(t / "junk.png", bi.JUNK),
         ("predict", "{t}/junk.png", "--out", "{t}/out", "--no-plots"), 2, "junk.png", weights=True),
    Case("predict-image-wrong-extension", lambda t, r: bi.write(t / "face.txt", b"\x89PNG\r\n"),
         ("predict", "{t}/face.txt", "--out", "{t}/out", "--no-plots"), 2, "face.txt", weights=True),
    # A 1x1 image is a valid image without a face: predicted as such (rows without a face), not refused.
    Case("predict-image-1x1", lambda t, r: bi.image(t / "dot.png", (1, 1)),
         ("predict", "{t}/dot.png", "--out", "{t}/out", "--no-plots"), 0, None, outputs=("{t}/out", "{t}/out/dot.*"),
         weights=True),
    Case("predict-several-one-bad", lambda t, r: (bi.image(t / "dot.png", (1, 1)), bi.write(t / "junk.png", bi.JUNK)),
         ("predict", "{t}/dot.png", "{t}/junk.png", "--out", "{t}/out", "--no-plots"), 1, "junk.png",
         outputs=("{t}/out", "{t}/out/dot.*"), weights=True),
    Case("train-crop-junk", lambda t, r: (_crop_in_root(bi.JUNK)(t, r), _cfg_file()(t, r)), TRAIN, 2, ".jpg",
         root=True),
    # --- label files (read by index, score, train) ----------------------------------------------------------------
    Case("index-label-bom", _label_bytes("va", lambda b: b"\xef\xbb\xbf" + b), ("index", "{r}"), 0, None, root=True),
    Case("index-label-crlf", _label_bytes("va", lambda b: b.replace(b"\n", b"\r\n")), ("index", "{r}"), 0, None,
         root=True),
    Case("index-label-nan", _label("va", 3, "nan,0.1"), ("index", "{r}"), 2, ".txt:4", root=True),
    Case("index-label-binary", _label_bytes("au", lambda b: bi.JUNK), ("index", "{r}"), 2, ".txt", root=True),
    Case("index-label-empty", _label_bytes("expr", lambda b: b""), ("index", "{r}"), 2, ".txt: empty", root=True),
    Case("index-label-wrong-header", _label("va", 0, "arousal,valence"), ("index", "{r}"), 2, ".txt:1", root=True),
    Case("index-label-too-many-values", _label("va", 2, "0.1,0.2,0.3"), ("index", "{r}"), 2, ".txt:3", root=True),
    Case("index-label-too-few-values", _label("au", 2, "0,1,0"), ("index", "{r}"), 2, ".txt:3", root=True),
    Case("index-label-va-out-of-range", _label("va", 5, "1.5,0.2"), ("index", "{r}"), 2, ".txt:6", root=True),
    Case("index-label-expr-out-of-range", _label("expr", 5, "9"), ("index", "{r}"), 2, ".txt:6", root=True),
    Case("index-label-au-invalid-marker-mistyped", _label("au", 4, ",".join(["-5"] * 12)), ("index", "{r}"), 2,
         ".txt:5", root=True),
    Case("index-label-expr-invalid-marker-mistyped", _label("expr", 4, "-5"), ("index", "{r}"), 2, ".txt:5",
         root=True),
    Case("index-label-non-numeric", _label("va", 2, "0.1,high"), ("index", "{r}"), 2, ".txt:3", root=True),
    Case("index-label-blank-line", _label("va", 2, ""), ("index", "{r}"), 2, ".txt:3", root=True),
    Case("score-label-binary", lambda t, r: (_results("va", lambda f: None)(t, r),
                                             _label_bytes("va", lambda b: bi.JUNK)(t, r)), SCORE_VA, 2, ".txt",
         root=True),
    Case("train-label-nan", lambda t, r: (_label("va", 3, "nan,0.1", "train")(t, r), _cfg_file()(t, r)), TRAIN, 2,
         ".txt:4", root=True),
    Case("index-no-validation-set", lambda t, r: shutil.rmtree(bi.first_annotation(r, "va").parent),
         ("index", "{r}"), 0, "Validation_Set", root=True),
    Case("index-label-without-video", _video_in_root(lambda p: None), ("index", "{r}", "--strict"), 2,
         "have no video file under videos/",
         root=True),
    Case("train-no-validation-set", lambda t, r: (shutil.rmtree(bi.first_annotation(r, "va").parent),
                                                  _cfg_file()(t, r)), TRAIN, 2, "Validation_Set", root=True),
    Case("validate-test-list-missing", lambda t, r: (_results("va", lambda f: None)(t, r),
                                                     (r / "test_set" / "va.txt").unlink()),
         ("validate-submission", "--data-root", "{r}", "--split", "test", "--track", "va", "{t}/pred"), 2, "va.txt",
         root=True),
    Case("mtl-image-not-a-frame", _mtl_line(3, "s001-25-96x72/third.jpg,0,0,1" + ",0" * 12), INDEX_MTL, 2,
         "validation_set_annotations.txt:4", root="mtl"),
    Case("mtl-image-twice", _mtl(lambda data: _copy_line(data, 1, 3)), INDEX_MTL, 2,
         "validation_set_annotations.txt:4", root="mtl"),
    Case("mtl-frame-zero", _mtl_line(3, "s001-25-96x72/00000.jpg,0,0,1" + ",0" * 12), INDEX_MTL, 2,
         "validation_set_annotations.txt:4", root="mtl"),
    Case("mtl-wrong-header", _mtl_line(0, "image,valence,arousal"), INDEX_MTL, 2, "validation_set_annotations.txt",
         root="mtl"),
    Case("mtl-too-few-values", _mtl_line(2, "s001-25-96x72/00002.jpg,0,0,1,0"), INDEX_MTL, 2,
         "validation_set_annotations.txt:3", root="mtl"),
    Case("mtl-value-out-of-range", _mtl_line(2, "s001-25-96x72/00002.jpg,3,0,1" + ",0" * 12), INDEX_MTL, 2,
         "validation_set_annotations.txt:3", root="mtl"),
    Case("mtl-nan", _mtl_line(2, "s001-25-96x72/00002.jpg,nan,0,1" + ",0" * 12), INDEX_MTL, 2,
         "validation_set_annotations.txt:3", root="mtl"),
    Case("mtl-binary", _mtl(lambda b: bi.JUNK), INDEX_MTL, 2, "validation_set_annotations.txt", root="mtl"),
    Case("mtl-empty", _mtl(lambda b: b""), INDEX_MTL, 2, "validation_set_annotations.txt: empty", root="mtl"),
    Case("mtl-bom-crlf", _mtl(lambda b: b"\xef\xbb\xbf" + b.replace(b"\n", b"\r\n")), INDEX_MTL, 0, None,
         root="mtl"),
    Case("index-root-missing", _nothing, ("index", "{t}/nowhere"), 2, "nowhere"),
    Case("index-root-is-file", lambda t, r: bi.write(t / "root.txt", "x"), ("index", "{t}/root.txt"), 2, "root.txt"),
    Case("index-out-is-folder", lambda t, r: (t / "table.csv").mkdir(), ("index", "{r}", "--out", "{t}/table.csv"),
         2, "table.csv", root=True),
    Case("index-out-bad-extension", _nothing, ("index", "{r}", "--out", "{t}/table.txt"), 2, "table.txt", root=True),
    # --- configs (train, temporal, extract) ----------------------------------------------------------------------
    Case("train-config-bad-json", lambda t, r: bi.write(t / "cfg.json", '{"name": "x",'), TRAIN, 2, "cfg.json"),
    Case("train-config-not-object", lambda t, r: bi.write(t / "cfg.json", "[1, 2]"), TRAIN, 2, "cfg.json"),
    Case("train-config-empty", lambda t, r: bi.write(t / "cfg.json", ""), TRAIN, 2, "cfg.json"),
    Case("train-config-binary", lambda t, r: bi.write(t / "cfg.json", bi.JUNK), TRAIN, 2, "cfg.json"),
    Case("train-config-unknown-key", _cfg_file(train={"epochs": 1, "epoch": 2}), TRAIN, 2, "epoch", root=True),
    Case("train-config-wrong-type", _cfg_file(train={"epochs": "ten"}), TRAIN, 2, "train.epochs", root=True),
    Case("train-config-lr-negative", _cfg_file(optim={"lr": -1}), TRAIN, 2, "optim.lr", root=True),
    Case("train-config-dropout-above-one", _cfg_file(model={"name": "demo_face", "kwargs": {"dropout": 1.5}}), TRAIN,
         2, "dropout", root=True),
    Case("train-config-batch-size-zero", _cfg_file(data={"batch_size": 0}), TRAIN, 2, "batch_size", root=True),
    Case("train-config-stride-above-duration", _cfg_file(data={"stride": 16}), TRAIN, 2, "data.stride", root=True),
    Case("train-config-missing-parent", lambda t, r: bi.write(t / "cfg.json", json.dumps(
        {"extends": "base/no_such_parent", **_config(r)})), TRAIN, 2, "no_such_parent", root=True),
    Case("train-config-missing", _nothing, TRAIN, 2, "cfg.json"),
    Case("train-set-bad-json", _cfg_file(), (*TRAIN, "--set", "optim.lr={"), 2, "optim.lr", root=True),
    Case("train-set-unknown-key", _cfg_file(), (*TRAIN, "--set", "optim.learning_rate=0.1"), 2, "learning_rate",
         root=True),
    Case("train-set-out-of-range", _cfg_file(), (*TRAIN, "--set", "optim.lr=-1"), 2, "optim.lr", root=True),
    Case("train-cli-lr-negative", _cfg_file(), (*TRAIN, "--lr", "-0.5"), 2, "lr", root=True),
    Case("train-data-root-missing", _cfg_file(), (*TRAIN, "--data-root", "{t}/nowhere"), 2, "nowhere", root=True),
    Case("temporal-config-bad-json", lambda t, r: (bi.write(t / "cfg.json", "{"), bi.run_folder(t / "src", None)),
         ("temporal", "--source", "{t}/src", "-c", "{t}/cfg.json", "--out", "{t}/runs"), 2, "cfg.json"),
    Case("temporal-source-not-a-run", lambda t, r: (t / "src").mkdir(parents=True),
         ("temporal", "--source", "{t}/src", "--out", "{t}/runs"), 2, "src: not a run folder"),
    Case("temporal-config-out-of-range", lambda t, r: bi.run_folder(t / "src", None),
         ("temporal", "--source", "{t}/src", "--set", "block=0", "--out", "{t}/runs"), 2, "block"),
    Case("temporal-config-quantile-out-of-range", lambda t, r: bi.run_folder(t / "src", None),
         ("temporal", "--source", "{t}/src", "--set", "quantiles=[1.5]", "--out", "{t}/runs"), 2, "1.5"),
    Case("temporal-config-unknown-stat", lambda t, r: bi.run_folder(t / "src", None),
         ("temporal", "--source", "{t}/src", "--set", 'stats=["maxx"]', "--out", "{t}/runs"), 2, "maxx"),
    Case("temporal-config-unknown-key", lambda t, r: (bi.write(t / "cfg.json", '{"blocks": 8}'),
                                                      bi.run_folder(t / "src", None)),
         ("temporal", "--source", "{t}/src", "-c", "{t}/cfg.json", "--out", "{t}/runs"), 2, "cfg.json"),
    Case("extract-config-unknown-key", lambda t, r: bi.write(t / "cfg.json", json.dumps({"nonsense": 1})),
         ("extract", "--data-root", "{r}", "-c", "{t}/cfg.json"), 2, "nonsense", root=True),
    Case("evaluate-not-a-run", lambda t, r: (t / "run1").mkdir(), ("evaluate", "{t}/run1"), 2, "run1"),
    Case("ensemble-not-runs", lambda t, r: ((t / "a").mkdir(), (t / "b").mkdir()),
         ("ensemble", "{t}/a", "{t}/b", "--track", "va", "--out", "{t}/runs"), 2, "in/a"),
    Case("synth-out-not-empty", lambda t, r: bi.write(t / "mine" / "thesis.txt", "precious"),
         ("synth", "--out", "{t}/mine", "--videos", "2", "--frames", "8"), 2, "mine"),
    # --- result files (score, validate-submission) ------------------------------------------------------------------
    Case("score-result-missing-line", _results("va", lambda f: bi.write(_first(f), "\n".join(
        _first(f).read_text().splitlines()[:-1]) + "\n")), SCORE_VA, 2, ".txt", root=True),
    Case("score-result-extra-file", _results("va", lambda f: bi.write(f / "stranger.txt", HEAD_VA + "\n0,0\n")),
         SCORE_VA, 2, "stranger.txt", root=True),
    Case("score-result-wrong-header", _results("va", lambda f: bi.edit_lines(_first(f), 0, "arousal,valence")),
         SCORE_VA, 2, ".txt:1", root=True),
    Case("score-result-bad-value", _results("va", lambda f: bi.edit_lines(_first(f), 2, "0.1,abc")),
         SCORE_VA, 2, ".txt:3", root=True),
    Case("score-result-invalid-marker", _results("va", lambda f: bi.edit_lines(_first(f), 2, "-5,-5")),
         SCORE_VA, 2, ".txt:3", root=True),
    Case("score-result-au-columns", _results("au", lambda f: bi.edit_lines(_first(f), 2, "0,1,0")),
         SCORE_AU, 2, ".txt:3", root=True),
    Case("score-result-missing-file", _results("va", lambda f: _first(f).unlink()), SCORE_VA, 2, "missing",
         root=True),
    Case("score-result-binary", _results("va", lambda f: _first(f).write_bytes(bi.JUNK)), SCORE_VA, 2, ".txt",
         root=True),
    Case("score-result-bom-crlf", _results("va", lambda f: _first(f).write_bytes(
        b"\xef\xbb\xbf" + _first(f).read_bytes().replace(b"\n", b"\r\n"))), SCORE_VA, 0, None, root=True),
    Case("validate-result-bom-crlf", _results("va", lambda f: _first(f).write_bytes(
        b"\xef\xbb\xbf" + _first(f).read_bytes().replace(b"\n", b"\r\n"))), VALID_VA, 0, None, root=True),
    Case("score-pred-missing", _nothing, SCORE_VA, 2, "pred", root=True),
    Case("validate-result-missing-line", _results("va", lambda f: bi.write(_first(f), "\n".join(
        _first(f).read_text().splitlines()[:-1]) + "\n")), VALID_VA, 1, ".txt", root=True),
    Case("validate-result-extra-file", _results("va", lambda f: bi.write(f / "stranger.txt", HEAD_VA + "\n0,0\n")),
         VALID_VA, 1, "stranger.txt", root=True),
    Case("validate-result-wrong-header", _results("va", lambda f: bi.edit_lines(_first(f), 0, "v,a")),
         VALID_VA, 1, ".txt", root=True),
    Case("validate-result-au-columns", _results("au", lambda f: bi.edit_lines(_first(f), 1, "0,1")),
         VALID_AU, 1, ".txt", root=True),
    Case("validate-result-nan", _results("va", lambda f: bi.edit_lines(_first(f), 1, "nan,0")),
         VALID_VA, 1, ".txt", root=True),
    Case("validate-zip-is-folder", lambda t, r: (_results("va", lambda f: None)(t, r), (t / "sub.zip").mkdir()),
         (*VALID_VA, "--zip", "{t}/sub.zip"), 2, "sub.zip", root=True),
    # --- single result files (2023 on) and label roots (score, validate-submission) --------------------------------
    Case("score-single-missing-line", _single("va", _drop_last_line), SCORE_VA, 2, "VA_Set.txt", root=True),
    Case("score-single-wrong-header", _single("va", lambda p: bi.edit_lines(p, 0, HEAD_VA)), SCORE_VA, 2,
         "VA_Set.txt:1", root=True),
    Case("score-single-bad-location", _single("va", lambda p: bi.edit_lines(p, 2, "00002.jpg,0,0")), SCORE_VA, 2,
         "VA_Set.txt:3", root=True),
    Case("score-single-binary", _single("va", lambda p: p.write_bytes(bi.JUNK)), SCORE_VA, 2, "VA_Set.txt",
         root=True),
    Case("score-single-bom-crlf", _single("va", lambda p: p.write_bytes(
        b"\xef\xbb\xbf" + p.read_bytes().replace(b"\n", b"\r\n"))), SCORE_VA, 0, None, root=True),
    Case("validate-single-missing-line", _single("va", _drop_last_line), VALID_VA, 1, "VA_Set.txt", root=True),
    Case("validate-single-duplicate-line", _single("au", lambda p: bi.write(p, p.read_text() + p.read_text(
        ).splitlines()[1] + "\n")), VALID_AU, 1, "AU_Set.txt:", root=True),
    Case("score-test-without-labels", _nothing,
         ("score", "--data-root", "{r}", "--split", "test", "--track", "va", "--pred", "{t}/pred"), 2, "--labels",
         root=True),
    Case("score-labels-not-a-label-root", _nothing,
         ("score", "--labels", "{t}", "--split", "test", "--track", "va", "--pred", "{t}/pred"), 2, "label root"),
    # --- databases (leaderboard, record) ---------------------------------------------------------------------------
    Case("leaderboard-db-text", lambda t, r: bi.write(t / "runs.sqlite", "hello, not a database\n"),
         ("leaderboard", "--db", "{t}/runs.sqlite"), 2, "runs.sqlite"),
    Case("leaderboard-db-junk", lambda t, r: bi.write(t / "runs.sqlite", bi.JUNK),
         ("leaderboard", "--db", "{t}/runs.sqlite"), 2, "runs.sqlite"),
    Case("leaderboard-db-truncated", lambda t, r: bi.truncate(bi.sqlite_file(t / "runs.sqlite")),
         ("leaderboard", "--db", "{t}/runs.sqlite"), 2, "runs.sqlite"),
    Case("leaderboard-db-wrong-schema", lambda t, r: bi.sqlite_file(t / "runs.sqlite"),
         ("leaderboard", "--db", "{t}/runs.sqlite"), 2, "runs.sqlite: not an abaw runs database"),
    Case("leaderboard-db-missing", _nothing, ("leaderboard", "--db", "{t}/none.sqlite"), 2, "none.sqlite"),
    Case("ablate-readme-without-markers", lambda t, r: bi.write(t / "README.md", "# no ablation markers\n"),
         ("ablate", "--data-root", "{r}", "--out", "{t}/abl", "--readme", "{t}/README.md"), 2, "README.md", root=True),
    Case("record-db-junk", lambda t, r: (bi.write(t / "runs.sqlite", bi.JUNK), bi.run_folder(t / "run1", None)),
         ("record", "--db", "{t}/runs.sqlite", "{t}/run1"), 1, "runs.sqlite"),
    Case("record-not-a-run", lambda t, r: (t / "run1").mkdir(parents=True),  # skipped with a note
         ("record", "--db", "{t}/runs.sqlite", "{t}/run1"), 0, "run1"),
    Case("record-run-json-bad", lambda t, r: bi.run_folder(t / "run1", "{not json"),
         ("record", "--db", "{t}/runs.sqlite", "{t}/run1"), 1, "run.json"),
    Case("record-run-json-binary", lambda t, r: bi.run_folder(t / "run1", bi.JUNK.decode("latin-1")),
         ("record", "--db", "{t}/runs.sqlite", "{t}/run1"), 1, "run.json"),
    # --- weight files -----------------------------------------------------------------------------------------------
    Case("weights-verify-empty", _weights_dir(b""), ("weights", "verify", "yunet"), 1,
         "face_detection_yunet_2023mar.onnx", env=WENV),
    Case("weights-verify-junk", _weights_dir(bi.JUNK), ("weights", "verify", "yunet"), 1,
         "face_detection_yunet_2023mar.onnx", env=WENV),
    Case("weights-verify-missing", _weights_dir(None), ("weights", "verify", "yunet"), 1, "yunet", env=WENV),
    Case("weights-unknown-name", _weights_dir(None), ("weights", "verify", "nosuchnet"), 2, "nosuchnet", env=WENV),
    Case("prepare-weights-wrong-sha256", lambda t, r: (_weights_dir(bi.JUNK)(t, r), write_video(t / "v.mp4", 4)),
         ("prepare", "{t}/v.mp4", "--out", "{t}/prep", "--person", "face"), 1, "face_detection_yunet_2023mar.onnx",
         env=WENV),
    Case("prepare-pickle-weights-untrusted", lambda t, r: (_weights_dir(None)(t, r), bi.write(t / "w" / "yolov8n.pt",
                                                                                               bi.JUNK),
                                                             write_video(t / "v.mp4", 4)),
         ("prepare", "{t}/v.mp4", "--out", "{t}/prep", "--person", "ultralytics"), 2, "yolov8n.pt",
         env={**WENV, "ABAW_WEIGHTS_DIR": "{t}/w"}),
    Case("weights-convert-pickle-untrusted", lambda t, r: (_weights_dir(None)(t, r),
                                                           bi.write(t / "w" / "enet_b0_8_best_vgaf.pt", bi.JUNK)),
         ("weights", "convert", "hsemotion_enet_b0_8_best_vgaf"), 2, "enet_b0_8_best_vgaf.pt", env=WENV),
    Case("weights-convert-pickle-junk", lambda t, r: (_weights_dir(None)(t, r),
                                                      bi.write(t / "w" / "enet_b0_8_best_vgaf.pt", bi.JUNK)),
         ("weights", "convert", "hsemotion_enet_b0_8_best_vgaf", "--trust-weights"), 2, "enet_b0_8_best_vgaf.pt",
         env=WENV),
    Case("train-pretrained-empty", lambda t, r: (bi.write(t / "ckpt.pt", b""), _cfg_file()(t, r)),
         (*TRAIN, "--pretrained_affectnet", "{t}/ckpt.pt"), 2, "not a PyTorch file", root=True),
    Case("train-pretrained-junk", lambda t, r: (bi.write(t / "ckpt.pt", bi.JUNK), _cfg_file()(t, r)),
         (*TRAIN, "--pretrained_affectnet", "{t}/ckpt.pt"), 2, "ckpt.pt", root=True),
    Case("predict-checkpoint-not-a-run", lambda t, r: (bi.run_folder(t / "run1", None), bi.image(t / "face.png")),
         ("predict", "{t}/face.png", "--checkpoint", "{t}/run1", "--out", "{t}/out", "--no-plots"), 2, "run1"),
    Case("predict-checkpoint-junk", lambda t, r: (bi.run_folder(t / "run1", None),
                                                  bi.write(t / "run1" / "config.json", json.dumps(_config(t))),
                                                  bi.write(t / "run1" / "checkpoints" / "best.pt", bi.JUNK),
                                                  bi.image(t / "face.png")),
         ("predict", "{t}/face.png", "--checkpoint", "{t}/run1", "--out", "{t}/out", "--no-plots"), 2, "best.pt",
         weights=True),
    # --- crowd votes ------------------------------------------------------------------------------------------------
    Case("crowd-votes-empty", lambda t, r: bi.write(t / "votes.csv", b""), ("crowd", "aggregate", "{t}/votes.csv"),
         2, "votes.csv"),
    Case("crowd-votes-binary", lambda t, r: bi.write(t / "votes.csv", bi.JUNK),
         ("crowd", "aggregate", "{t}/votes.csv"), 2, "votes.csv"),
    Case("crowd-votes-header-only", lambda t, r: bi.write(t / "votes.csv", "item,a1,a2\n"),
         ("crowd", "aggregate", "{t}/votes.csv"), 2, "votes.csv"),
    Case("crowd-votes-non-numeric", lambda t, r: bi.write(t / "votes.csv", "item,a1,a2\nx,1,happy\n"),
         ("crowd", "aggregate", "{t}/votes.csv"), 2, "votes.csv"),
    Case("crowd-votes-negative-code", lambda t, r: bi.write(t / "votes.csv", "item,a1,a2\nx,1,-3\n"),
         ("crowd", "aggregate", "{t}/votes.csv", "--kind", "class"), 2, "votes.csv"),
    Case("crowd-votes-one-column", lambda t, r: bi.write(t / "votes.csv", "item\nx\n"),
         ("crowd", "aggregate", "{t}/votes.csv"), 2, "votes.csv"),
    Case("crowd-votes-bom-crlf", lambda t, r: bi.write(t / "votes.csv", b"\xef\xbb\xbfitem,a1,a2\r\nx,1,1\r\n"),
         ("crowd", "aggregate", "{t}/votes.csv"), 0, None),
    Case("crowd-votes-c25-bad-level", lambda t, r: bi.write(t / "valence_set1_C25.csv",
                                                            "filename,participant0,participant1\na.jpg,0.3,0.5\n"),
         ("crowd", "aggregate", "{t}/valence_set1_C25.csv"), 2, "valence_set1_C25.csv"),
    Case("crowd-out-is-folder", lambda t, r: (bi.write(t / "votes.csv", "item,a1,a2\nx,1,1\n"), (t / "o").mkdir()),
         ("crowd", "aggregate", "{t}/votes.csv", "--out", "{t}/o"), 2, "in/o"),
    Case("crowd-votes-missing", _nothing, ("crowd", "aggregate", "{t}/votes.csv"), 2, "votes.csv"),
    Case("train-crowd-value-votes-as-expression",
         lambda t, r: bi.write(t / "valence_set1_C25.csv", "index,filename,participant0\n0,a.jpg,0.25\n"),
         ("train-crowd", "--data", "{t}", "--votes", "{t}/valence_set1_C25.csv", "--kind", "expression", "--out",
          "{t}/run"), 2, "valence_set1_C25.csv"),
    Case("train-crowd-two-valence-files",
         lambda t, r: [bi.write(t / f"valence_set{i}_C25.csv", "index,filename,participant0\n0,a.jpg,0.25\n")
                       for i in (1, 2)],
         ("train-crowd", "--data", "{t}", "--votes", "{t}/valence_set1_C25.csv", "{t}/valence_set2_C25.csv",
          "--out", "{t}/run"), 2, "valence_set2_C25.csv"),
]


@pytest.fixture(scope="module")
def small_root_ro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic Aff-Wild2 smaller than ``tiny_root_ro`` (4 videos of 16 small frames; VA, EXPR and AU in both
    splits): the corpus copies it for each case that needs a data root."""
    from abaw.synth.dataset import generate

    root = tmp_path_factory.mktemp("bad_inputs") / "data"
    generate(root, videos=4, frames=16, seed=0, size=(96, 72), workers=1)
    return root


@pytest.fixture(scope="module")
def mtl_root_ro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same in the 2022 layout, with the multi-task CSV files."""
    from abaw.synth.dataset import generate

    root = tmp_path_factory.mktemp("bad_inputs_mtl") / "data"
    generate(root, videos=4, frames=16, seed=0, size=(96, 72), workers=1, layout="abaw2022")
    return root


def _fill(items: tuple[str, ...], t: Path, r: Path | None) -> list[str]:
    return [s.replace("{t}", str(t)).replace("{r}", str(r)) for s in items]


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    commands = {c.argv[0] for c in CASES}
    assert {"index", "score", "validate-submission", "train", "temporal", "predict", "prepare", "leaderboard",
            "record", "weights", "crowd", "extract", "evaluate", "ensemble", "synth"} <= commands


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
             for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture,
                   caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    if case.weights:
        request.getfixturevalue("weights_dir")
    root = None
    if case.root:
        root = tmp_path / "data"
        shutil.copytree(request.getfixturevalue("mtl_root_ro" if case.root == "mtl" else "small_root_ro"), root)
    t = tmp_path / "in"
    (t / "runs").mkdir(parents=True)  # the folder of run folders (train, temporal --out): only a new run would show
    case.make(t, root)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value.replace("{t}", str(t)))
    monkeypatch.chdir(t)  # a command's default output folder would land here, and be seen
    before = bi.files_tree(tmp_path)
    capsys.readouterr()
    caplog.clear()

    code = main(_fill(case.argv, t, root))
    out, err = capsys.readouterr()
    # The command line logs to stderr (one line a record); under pytest the records land in caplog instead.
    err += "".join(f"{r.getMessage()}\n" for r in caplog.records if r.levelno >= logging.INFO)

    assert "Traceback" not in out + err
    assert code == case.code, f"exit {code}, expected {case.code}\nstdout: {out}\nstderr: {err}"
    errors = [line for line in err.splitlines() if line.strip()]
    if case.fragment is None:
        assert not any("error" in line for line in errors), err
    else:
        assert errors, f"no error line on stderr\nstdout: {out}"
        # one line naming the file, plus at most a summary line ("N of M ... failed", "not valid (N problems)")
        assert len(errors) <= 2, err
        if len(errors) == 2:
            assert re.search(r"error: .*(\d+ of \d+ .* failed|not valid \(\d+ problems?\))", errors[1]), err
        assert any(case.fragment in line for line in errors), f"{case.fragment!r} not in {err!r}"
        assert all(len(line) < 2000 for line in errors)
    after = bi.files_tree(tmp_path)
    allowed = [_fill((g,), t, root)[0] for g in case.outputs]
    new = [p for p in after if p not in before and not any(fnmatch.fnmatch(str(tmp_path / p), g) for g in allowed)]
    changed = [p for p in before if p in after and after[p] != before[p]
               and not any(fnmatch.fnmatch(str(tmp_path / p), g) for g in allowed)]
    gone = [p for p in before if p not in after]
    assert not new, f"left behind: {new}"
    assert not changed, f"changed: {changed}"
    assert not gone, f"removed: {gone}"

"""No code runs from a weights file: a ``.pt`` whose pickle holds a ``__reduce__`` (it would create a marker file
when unpickled) is never opened, wherever a loader would find it (the offline folder under the catalogue name, the
cache, an explicit path), through every command and backend; the refusal is one line naming the file. Files with the
catalogue's bytes still load, and ``--trust-weights`` lets a file the user vouches for through."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from helpers.cli import run_cli

from abaw import weights
from abaw.errors import AbawError


class _Payload:
    """Unpickling this object runs code: it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return exec, (f"open({self.marker!r}, 'w').close()",)


def _malicious_pt(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": _Payload(marker), "train_args": {}}, path)
    return path


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Offline, private folders: the offline weights folder, the cache, ultralytics' settings; a marker path."""
    ns = SimpleNamespace(offline=tmp_path / "offline", cache=tmp_path / "cache", marker=tmp_path / "MARKER")
    ns.offline.mkdir()
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(ns.offline))
    monkeypatch.setenv(weights.CACHE_DIR_ENV, str(ns.cache))
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics"))
    return ns


@pytest.fixture(params=["offline", "cache"])
def planted(request: pytest.FixtureRequest, env: SimpleNamespace) -> SimpleNamespace:
    """A malicious ``yolov8n.pt`` where abaw.weights finds the catalogue's yolov8n: the offline folder or the cache."""
    env.evil = _malicious_pt(getattr(env, request.param) / weights.get("yolov8n").filename, env.marker)
    return env


def _image(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "still.jpg"
    cv2.imwrite(str(path), np.full((48, 64, 3), 128, np.uint8))
    return path


def _one_line_naming(err: str, path: Path) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert str(path) in lines[0] and "Traceback" not in err
    return lines[0]


def test_the_payload_is_real(tmp_path: Path) -> None:
    """The file the other tests plant does run code when unpickled, so its marker's absence means something."""
    marker = tmp_path / "MARKER"
    torch.load(_malicious_pt(tmp_path / "evil.pt", marker), weights_only=False)  # what ultralytics does
    assert marker.exists()


@pytest.mark.parametrize("command", ["prepare", "predict"])
def test_commands_never_open_a_planted_weights_file(command: str, planted: SimpleNamespace, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    image = _image(tmp_path / "media")
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, command, str(image), "--out", str(out), "--person", "ultralytics",
                           "--detector", "haar")
    assert code == 2
    line = _one_line_naming(err, planted.evil)
    assert "sha256" in line and "--trust-weights" in line and "abaw weights fetch yolov8n" in line
    assert not planted.marker.exists()
    assert not out.exists()  # refused before any work


def test_library_loaders_never_open_a_planted_weights_file(planted: SimpleNamespace, tmp_path: Path) -> None:
    """The functions under the commands, past the commands' early check: the detector classes, one prepare run
    (the failure is that video's one-line reason) and one predict run of a model with a body stream."""
    from abaw.apps.predict import PredictOptions, predict_file
    from abaw.video.persons import UltralyticsPerson, check_person_weights, create_person_detector
    from abaw.video.prepare import PrepareOptions, prepare_all

    for make in (UltralyticsPerson, lambda: create_person_detector("ultralytics"),
                 lambda: check_person_weights("ultralytics"), lambda: weights.fetch("yolov8n")):
        with pytest.raises(AbawError) as info:
            make()
        _one_line_naming(str(info.value), planted.evil)
    image = _image(tmp_path / "media")
    [result] = prepare_all([image], tmp_path / "prepared", PrepareOptions(detector="haar", person="ultralytics"))
    assert result.status == "failed"
    _one_line_naming(result.reason, planted.evil)
    body_model = SimpleNamespace(streams=("face", "body"), predict=lambda *a: pytest.fail("never reached"))
    with pytest.raises(AbawError) as info:
        predict_file(image, tmp_path / "predictions", PredictOptions(detector="haar", person="ultralytics"),
                     body_model)
    _one_line_naming(str(info.value), planted.evil)
    assert not planted.marker.exists()


def test_an_explicit_path_with_no_known_hash_is_refused(env: SimpleNamespace) -> None:
    from abaw.video.persons import UltralyticsPerson

    evil = _malicious_pt(env.offline.parent / "mine" / "yolov8n.pt", env.marker)  # the name does not matter
    for model in (evil, str(evil)):
        with pytest.raises(AbawError) as info:
            UltralyticsPerson(model=model)
        line = _one_line_naming(str(info.value), evil)
        assert "no catalogue file has its sha256" in line and "--trust-weights" in line
    with pytest.raises(AbawError, match="not found"):
        UltralyticsPerson(model=env.offline / "absent.pt")
    assert not env.marker.exists()


def test_weights_only_loaders_refuse_the_payload(env: SimpleNamespace) -> None:
    """Our own loaders read with ``torch.load(weights_only=True)``, and a catalogue file with other bytes is not
    read at all: a backbone's ImageNet weights, a backbone checkpoint path, a training checkpoint."""
    from abaw.models.backbones import create_backbone
    from abaw.train.checkpoint import load_checkpoint

    planted = _malicious_pt(env.offline / weights.get("mobilenet_v2_imagenet").filename, env.marker)
    with pytest.raises(AbawError) as info:
        create_backbone("tv_mobilenet_v2", pretrained=True)
    assert "not the catalogue's" in _one_line_naming(str(info.value), planted)
    other = _malicious_pt(env.offline.parent / "ckpt" / "last.pt", env.marker)
    for load in (lambda: create_backbone("tiny_cnn", pretrained=other), lambda: load_checkpoint(other)):
        with pytest.raises(AbawError) as info:
            load()
        _one_line_naming(str(info.value), other)
    assert not env.marker.exists()


def test_trust_weights_lets_a_file_through_to_the_loader(env: SimpleNamespace, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """``--trust-weights`` skips the refusal (here on a harmless file that is no model: the loader's failure is one
    line too); without it the same file is refused."""
    from abaw.video.persons import UltralyticsPerson

    junk = env.offline / weights.get("yolov8n").filename
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(AbawError, match="can run code"):
        UltralyticsPerson()
    with pytest.raises(AbawError) as info:
        UltralyticsPerson(trust_weights=True)
    assert "cannot load the ultralytics model" in _one_line_naming(str(info.value), junk)
    image = _image(tmp_path / "media")
    code, _, err = run_cli(capsys, "prepare", str(image), "--out", str(tmp_path / "out"), "--person", "ultralytics",
                           "--detector", "haar", "--trust-weights")
    assert code != 0 and "cannot load the ultralytics model" in err and "can run code" not in err
    assert "Traceback" not in err


def test_a_file_with_the_catalogue_bytes_loads(env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real ultralytics checkpoint (built here from the yolov8n config: no download) whose sha256 is the
    catalogue's loads and detects, found by name and given by path."""
    from ultralytics import YOLO

    from abaw.video.persons import UltralyticsPerson

    path = env.offline / weights.get("yolov8n").filename
    YOLO("yolov8n.yaml").save(str(path))
    pinned = dataclasses.replace(weights.get("yolov8n"), sha256=weights.sha256_of(path))
    monkeypatch.setitem(weights.CATALOGUE, "yolov8n", pinned)
    detector = UltralyticsPerson()
    assert detector.detect(np.zeros((64, 64, 3), np.uint8)) == []  # untrained: nothing, but it runs
    assert UltralyticsPerson(model=path)._model is not None


def test_the_offline_assets_pass_their_check_and_load(weights_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    from abaw.models.backbones import create_backbone
    from abaw.models.fer import load_mini_xception
    from abaw.video.faces import create_detector
    from abaw.video.persons import YoloFastestBody

    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(weights_dir))
    monkeypatch.setenv(weights.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    YoloFastestBody()
    create_detector("yunet")
    load_mini_xception()
    assert create_backbone("tv_mobilenet_v2", pretrained=True).num_features == 1280


def test_a_file_is_hashed_once_per_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = weights.pooch.file_hash
    monkeypatch.setattr(weights.pooch, "file_hash", lambda path, alg: calls.append(path) or real(path, alg=alg))
    path = tmp_path / "w.bin"
    path.write_bytes(b"one")
    first = weights.sha256_of(path)
    assert weights.sha256_of(path) == first and len(calls) == 1
    path.write_bytes(b"three")  # new bytes (another size, should the clock not have ticked): hashed again
    assert weights.sha256_of(path) != first and len(calls) == 2

"""abaw.weights: the catalogue finds the offline files, verifies sha256, downloads atomically, and says clearly what
is missing offline."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from abaw import weights
from abaw.errors import AbawError

OFFLINE_FILES = ("yunet", "yolo_fastest_body_cfg", "yolo_fastest_body_weights", "fer2013_mini_xception",
                 "mobilenet_v2_imagenet")


def test_catalogue_has_every_model_file_with_source_and_licence() -> None:
    assert set(OFFLINE_FILES) | {"yolov8n"} <= set(weights.names())
    for name in weights.names():
        entry = weights.get(name)
        assert entry.url.startswith(("https://", "http://")) and entry.licence and entry.note
        assert entry.sha256 is None or len(entry.sha256) == 64 or (8 <= len(entry.sha256) < 64)
        assert entry.sha256 is None or int(entry.sha256, 16) >= 0  # hex digits
        if entry.unpickled:  # a file that can run code is pinned by its full sha256, or not at all
            assert entry.sha256 is None or len(entry.sha256) == 64
        if entry.url.startswith("http://"):  # no TLS: only for a file read with weights_only (no code can run)
            assert entry.layout in ("state_dict", "places365", "vgg_face_dag")
        assert entry.layout in (None, "state_dict", "places365", "vgg_face_dag", "timm_pickle")
        if entry.layout:
            assert entry.citation
    with pytest.raises(AbawError, match="unknown weights"):
        weights.get("nope")


def test_fetch_finds_and_verifies_the_offline_files(weights_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(weights_dir))
    monkeypatch.setenv(weights.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    assert weights.fetch("yunet").name == "yunet_s_640_640.onnx"  # the asset's file name is accepted as an alias
    for name in OFFLINE_FILES:
        path = weights.fetch(name)
        assert path.parent == weights_dir
        ok, message = weights.verify(name)
        assert ok, message
        assert weights.sha256_of(path) == weights.get(name).sha256


def test_missing_file_offline_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(tmp_path / "offline"))
    monkeypatch.setenv(weights.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    with pytest.raises(AbawError) as info:
        weights.fetch("fer2013_mini_xception")
    message = str(info.value)
    assert "\n" not in message
    assert "fer2013_mini_XCEPTION.102-0.66.hdf5" in message  # the file
    assert str(tmp_path / "offline") in message and str(tmp_path / "cache") in message  # where it looked
    assert weights.get("fer2013_mini_xception").url in message  # how to get it
    ok, why = weights.verify("fer2013_mini_xception")
    assert not ok and "missing" in why


def test_wrong_bytes_fail_verification_and_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / weights.get("mobilenet_v2_imagenet").filename).write_bytes(b"not the weights")
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(offline))
    monkeypatch.setenv(weights.CACHE_DIR_ENV, str(tmp_path / "cache"))
    ok, message = weights.verify("mobilenet_v2_imagenet")
    assert not ok and "does not match" in message
    with pytest.raises(AbawError, match="sha256"):
        weights.install("mobilenet_v2_imagenet", offline / weights.get("mobilenet_v2_imagenet").filename)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on localhost: (folder, base address)."""
    folder = tmp_path / "served"
    folder.mkdir()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_download_is_verified_and_atomic(tmp_path: Path, served: tuple[Path, str]) -> None:
    """The real download code (pooch), fed from a local HTTP server (no network here)."""
    folder, base = served
    payload = b"weights bytes" * 1000
    (folder / "served.bin").write_bytes(payload)
    url = f"{base}/served.bin"
    good = weights.WeightFile("demo", "demo.bin", url, hashlib.sha256(payload).hexdigest(), "MIT", "test")
    dest = tmp_path / "cache" / "demo.bin"
    assert weights._download(good, good.url, dest, timeout=5) == dest
    assert dest.read_bytes() == payload
    bad = weights.WeightFile("demo", "bad.bin", url, "0" * 64, "MIT", "test")
    with pytest.raises(AbawError, match="sha256"):
        weights._download(bad, bad.url, tmp_path / "cache" / "bad.bin", timeout=5)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["demo.bin"]  # nothing half-written kept


def test_fetch_downloads_once_then_says_why_it_failed(tmp_path: Path, served: tuple[Path, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    folder, base = served
    payload = b"more weights" * 100
    (folder / "w.bin").write_bytes(payload)
    entry = weights.WeightFile("demo", "w.bin", f"{base}/missing.bin", hashlib.sha256(payload).hexdigest(), "MIT",
                               "test", mirrors=(f"{base}/w.bin",))
    monkeypatch.setitem(weights.CATALOGUE, "demo", entry)
    monkeypatch.delenv(weights.WEIGHTS_DIR_ENV, raising=False)
    monkeypatch.delenv(weights.OFFLINE_ENV, raising=False)
    monkeypatch.setenv(weights.CACHE_DIR_ENV, str(tmp_path / "cache"))
    assert weights.fetch("demo") == tmp_path / "cache" / "w.bin"  # the first address fails: the mirror serves it
    assert weights.verify("demo")[0]
    (tmp_path / "cache" / "w.bin").unlink()
    monkeypatch.setitem(weights.CATALOGUE, "demo", weights.WeightFile("demo", "w.bin", f"{base}/missing.bin", None,
                                                                      "MIT", "test"))
    with pytest.raises(AbawError) as info:
        weights.fetch("demo")
    message = str(info.value)
    assert "\n" not in message and "download failed" in message and "404" in message
    assert f"{base}/missing.bin" in message and "w.bin" in message


def test_cli_list_and_verify(weights_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    from abaw.cli import main

    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(weights_dir))
    monkeypatch.setenv(weights.CACHE_DIR_ENV, str(tmp_path / "cache"))
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in weights.names())
    assert main(["weights", "verify", "yunet", "fer2013_mini_xception"]) == 0
    assert main(["weights", "verify"]) == 0  # yolov8n is not offline: listed as missing, not a failure
    assert "yolov8n: missing" in capsys.readouterr().out
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(weights_dir.parent / "no-such-folder"))
    monkeypatch.setenv(weights.CACHE_DIR_ENV, str(weights_dir.parent / "no-such-cache"))
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    assert main(["weights", "fetch", "yunet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "face_detection_yunet_2023mar.onnx" in err


def test_backbone_entries_and_torchvision_prefixes() -> None:
    """Every backbone's entry is a backbone file; torchvision's hash prefix is the one in its own weight enums."""
    import torchvision

    from abaw.models.backbones import BACKBONE_WEIGHTS

    for backbone, name in BACKBONE_WEIGHTS.items():
        assert weights.get(name).layout is not None, backbone
    for name, enum in (("resnet18_imagenet", torchvision.models.ResNet18_Weights.IMAGENET1K_V1),
                       ("resnet50_imagenet", torchvision.models.ResNet50_Weights.IMAGENET1K_V1),
                       ("mobilenet_v2_imagenet", torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1)):
        entry = weights.get(name)
        assert entry.url == enum.url
        prefix = enum.url.rsplit("-", 1)[1].split(".")[0]  # torchvision's <name>-<sha256 prefix>.pth
        assert entry.sha256.startswith(prefix)


def test_a_published_prefix_is_checked_as_a_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = b"resnet bytes" * 100
    digest = hashlib.sha256(payload).hexdigest()
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "r-x.pth").write_bytes(payload)
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(offline))
    monkeypatch.setenv(weights.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    good = weights.WeightFile("r", "r-x.pth", "https://example.org/r-x.pth", digest[:8], "MIT", "test")
    monkeypatch.setitem(weights.CATALOGUE, "r", good)
    assert good.sha256_is_prefix and weights.fetch("r") == offline / "r-x.pth"
    ok, message = weights.verify("r")
    assert ok and "starts with the published" in message
    bad = weights.WeightFile("r", "r-x.pth", "https://example.org/r-x.pth", "0" * 8, "MIT", "test")
    monkeypatch.setitem(weights.CATALOGUE, "r", bad)
    with pytest.raises(AbawError, match="not used: sha256"):
        weights.fetch("r")
    assert not weights.verify("r")[0]
    # an unpickled file is never let through on a prefix alone
    monkeypatch.setitem(weights.CATALOGUE, "r", weights.WeightFile("r", "r-x.pth", "https://example.org/r-x.pth",
                                                                    digest[:8], "MIT", "test", unpickled=True))
    with pytest.raises(AbawError, match="not opened"):
        weights.fetch("r")


def test_download_with_a_published_prefix(tmp_path: Path, served: tuple[Path, str]) -> None:
    folder, base = served
    payload = b"torchvision-style weights" * 500
    (folder / "w-1.pth").write_bytes(payload)
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    good = weights.WeightFile("w", "w-1.pth", f"{base}/w-1.pth", prefix, "MIT", "test")
    dest = tmp_path / "cache" / "w-1.pth"
    assert weights._download(good, good.url, dest, timeout=5) == dest and dest.read_bytes() == payload
    bad = weights.WeightFile("w", "w-2.pth", f"{base}/w-1.pth", "f" * 8 if prefix[0] != "f" else "0" * 8, "MIT",
                             "test")
    with pytest.raises(AbawError, match="does not start with the publisher's"):
        weights._download(bad, bad.url, tmp_path / "cache" / "w-2.pth", timeout=5)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["w-1.pth"]  # nothing unverified kept


def test_offline_message_names_the_offline_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(tmp_path / "offline"))
    monkeypatch.setenv(weights.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    with pytest.raises(AbawError) as info:
        weights.fetch("resnet50_imagenet")
    assert str(info.value).endswith(f"download https://download.pytorch.org/models/resnet50-0676ba61.pth and put it "
                                    f"in {tmp_path / 'offline'} ($ABAW_WEIGHTS_DIR) as resnet50-0676ba61.pth")

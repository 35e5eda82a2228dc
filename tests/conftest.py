"""Shared fixtures: the real assets (skipped with a reason when absent) and a tiny synthetic Aff-Wild2."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("ABAW_ASSETS_DIR", PROJECT.parent / "shared" / "assets"))

if (ASSETS / "weights").is_dir():
    os.environ.setdefault("ABAW_WEIGHTS_DIR", str(ASSETS / "weights"))
# a private weights cache: converted files (the FER model's ONNX export) are made there, never in the user's home
os.environ.setdefault("ABAW_CACHE_DIR", tempfile.mkdtemp(prefix="abaw-test-cache-"))
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# The tests' models are tiny: one thread is faster than two fighting over two shared cores (and two xdist workers
# share the two cores anyway).
import torch  # noqa: E402

torch.set_num_threads(1)

#: Size of the tiny synthetic set every test shares (one per xdist worker, built once).
TINY = {"videos": 6, "frames": 48, "seed": 0}


@pytest.fixture(scope="session")
def assets_dir() -> Path:
    if not ASSETS.is_dir():
        pytest.skip(f"real assets not found at {ASSETS} (set ABAW_ASSETS_DIR to ../shared/assets)")
    return ASSETS


@pytest.fixture(scope="session")
def weights_dir(assets_dir: Path) -> Path:
    return assets_dir / "weights"


@pytest.fixture(scope="session")
def media_dir(assets_dir: Path) -> Path:
    return assets_dir / "media"


@pytest.fixture(scope="session")
def tiny_root_ro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic Aff-Wild2 shared by the session: do not write into it (use ``tiny_root``)."""
    from abaw.synth.dataset import generate

    root = tmp_path_factory.mktemp("tiny_affwild2") / "data"
    generate(root, **TINY)
    return root


@pytest.fixture()
def tiny_root(tiny_root_ro: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the tiny synthetic Aff-Wild2."""
    dst = tmp_path / "data"
    shutil.copytree(tiny_root_ro, dst)
    return dst


@pytest.fixture(autouse=True, scope="session")
def _private_runs_db(tmp_path_factory: pytest.TempPathFactory):
    """Finished runs are recorded in the runs database: keep the tests' out of the working tree's."""
    old = os.environ.get("ABAW_DB")
    os.environ["ABAW_DB"] = str(tmp_path_factory.mktemp("db") / "abaw.sqlite")
    yield
    if old is None:
        os.environ.pop("ABAW_DB", None)
    else:
        os.environ["ABAW_DB"] = old


@pytest.fixture(scope="module")
def tiny_mtl_run(tiny_root_ro: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A multi-task (VA, EXPR, AU) face run trained for one epoch on the tiny set: a run folder to evaluate or load."""
    from abaw.train.config import resolve
    from abaw.train.loop import train

    cfg = resolve({"name": "mtl", "tasks": ["va", "expr", "au"],
                   "data": {"root": str(tiny_root_ro), "streams": ["face"], "duration": 8, "batch_size": 4},
                   "model": {"name": "demo_face", "kwargs": {"hidden_size": 8, "image_size": 32}},
                   "train": {"epochs": 1, "seed": 0, "progress": False, "threads": 1}})
    return train(cfg, out=tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="session")
def tiny_prepared_ro(tiny_root_ro: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny set with ``abaw prepare`` outputs (body, context, audio), prepared once: do not write into it."""
    from abaw.cli import main

    root = tmp_path_factory.mktemp("tiny_prepared") / "data"
    shutil.copytree(tiny_root_ro, root)
    assert main(["prepare", str(root)]) == 0
    return root


@pytest.fixture(scope="module")
def prepared_root(tiny_prepared_ro: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable copy of the prepared tiny set, one per test module (extraction writes its feature cache here)."""
    root = tmp_path_factory.mktemp("prepared") / "data"
    shutil.copytree(tiny_prepared_ro, root)
    return root

"""Preset configs: the JSON files of the repository's ``configs/`` folder, shipped inside the package as
``abaw.configs`` (pyproject/setup.py map the folder there), found by name and read with their parents.

A preset may name one parent, ``"extends": "base/affwildnet_gru"``, and state only what differs from it: the
parent is read first (itself maybe extending another), then the preset's own keys are merged over it (objects key
by key, other values replaced; to drop a parent's value, set it to the default or null). A parent is looked up next
to the preset first, then among the shipped presets; ``.json`` may be left out. Parents that only hold shared
blocks live in ``configs/base/``, which is not listed as presets.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from abaw.errors import AbawError

PACKAGE = "abaw.configs"
EXTENDS = "extends"

Check = Callable[[dict[str, Any], Path], Any]
Merge = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


def preset_dir() -> Path:
    """The folder of the shipped presets: ``configs/`` in a checkout or an editable install, the installed copy
    otherwise (read as files: the package is never imported from a zip)."""
    try:
        return Path(str(resources.files(PACKAGE)))
    except ModuleNotFoundError:  # an editable install made before configs/ became abaw.configs
        raise AbawError(f"the presets package {PACKAGE} is not installed; reinstall abaw (pip install -e .)") from None


def list_presets() -> list[str]:
    """Names of the shipped presets (``configs/*.json``, not the parents in ``configs/base/``)."""
    return sorted(p.stem for p in preset_dir().glob("*.json"))


def _lookup(name: str, folder: Path) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.json"):
        if candidate.is_file():
            return candidate
    return None


def find_preset(text: str | Path) -> Path:
    """A config path, or the name of a shipped preset (``demo_va`` or ``demo_va.json``)."""
    path = Path(text)
    if path.is_file():
        return path
    found = _lookup(str(text), preset_dir())
    if found is None:
        raise AbawError(f"config not found (presets in configs/: {', '.join(list_presets())})", path=text)
    return found


def read_json_object(path: str | Path) -> dict[str, Any]:
    """One JSON object from a file; a missing file or bad JSON is a one-line error naming the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise AbawError("config file not found", path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise AbawError(f"not valid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    except UnicodeDecodeError:
        raise AbawError("not a UTF-8 text file (a config is JSON)", path=path) from None
    except OSError as exc:
        raise AbawError(f"cannot read file ({exc.strerror or exc})", path=path) from None
    if not isinstance(data, dict):
        raise AbawError("a config must be a JSON object", path=path)
    return data


def chain(path: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """The files a preset is made of, the farthest parent first, each with its own keys (``extends`` removed)."""
    files: list[tuple[Path, dict[str, Any]]] = []
    current = Path(path)
    while True:
        data = read_json_object(current)
        parent = data.pop(EXTENDS, None)
        files.append((current, data))
        if parent is None:
            return files[::-1]
        if not isinstance(parent, str) or not parent:
            raise AbawError(f"{EXTENDS!r} must name one parent preset, got {parent!r}", path=current)
        found = _lookup(parent, current.parent) or _lookup(parent, preset_dir())
        if found is None:
            raise AbawError(f"parent preset {parent!r} not found (next to this file or in the presets)", path=current)
        seen = [p.resolve() for p, _ in files]
        if found.resolve() in seen:
            cycle = " -> ".join(p.stem for p in [*(p for p, _ in files[seen.index(found.resolve()):]), found])
            raise AbawError(f"presets extend each other in a cycle: {cycle}", path=current)
        current = found


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Objects merge key by key, other values are replaced."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = deep_merge(out[key], value) if both else copy.deepcopy(value)
    return out


def read_preset(path: str | Path, check: Check | None = None, merge: Merge = deep_merge) -> dict[str, Any]:
    """A preset with its parents merged in (farthest first); ``check(data, file)`` sees each file's own keys."""
    out: dict[str, Any] = {}
    for file, data in chain(path):
        if check is not None:
            check(data, file)
        out = merge(out, data)
    return out

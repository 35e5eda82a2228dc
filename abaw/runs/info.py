"""``run.json`` (docs/design.md section 5): the :class:`RunInfo` record, its one reader and writer, the JSON reader of
run folders, and the one config hash every run kind records.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from abaw.errors import AbawError
from abaw.fileio import write_json
from abaw.schema import get_dotted

PROJECT = Path(__file__).resolve().parents[2]

RUN_KINDS: tuple[str, ...] = ("train", "temporal", "ensemble", "baseline")

#: Config keys left out of the config hash, for every run kind: they change where or how fast a run goes, not what it
#: computes (the data's identity is the run's ``dataset_fingerprint``, not the folder it lies in). Dotted keys of
#: training configs, then the top-level keys of temporal, ensemble and baseline configs.
UNHASHED: tuple[str, ...] = (
    "data.root", "data.workers", "data.extract_batch_size", "train.progress", "train.log_interval", "train.device",
    "train.threads",
    "data_root", "source_dir", "device", "threads",
)


def read_json(path: str | Path) -> Any:
    """A JSON file's content; a missing or broken file is a one-line AbawError naming it (and the line)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AbawError("file not found", path=path) from None
    except json.JSONDecodeError as exc:
        raise AbawError(f"not valid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    except UnicodeDecodeError:
        raise AbawError("not valid JSON: not UTF-8 text", path=path) from None


#: Options added after run folders existed, with the value that leaves training as it was: hashed only when set to
#: something else, so adding an option does not make every earlier run a different config (reuse, seed groups).
HASHED_WHEN_SET: dict[str, Any] = {"train.ema_decay": 0.0}


def config_hash(config: dict[str, Any]) -> str:
    """sha256 (16 hex) of the canonical JSON (sorted keys, no spaces) of ``config`` without the UNHASHED keys (and
    the HASHED_WHEN_SET ones at their neutral value).

    Training checkpoints store it, so a resumed run can tell that its config.json did not change: keep it stable.
    """
    if isinstance(config, dict):
        neutral = tuple(k for k, v in HASHED_WHEN_SET.items() if get_dotted(config, k, v) == v)
        clean = _without(config, UNHASHED + neutral)
    else:
        clean = config
    text = json.dumps(clean, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _without(config: dict[str, Any], dotted_keys: tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``config`` without ``dotted_keys`` (the sections on the way are copied, the rest is shared)."""
    out = dict(config)
    for dotted in dotted_keys:
        *sections, last = dotted.split(".")
        node = out
        for part in sections:
            if not isinstance(node.get(part), dict):
                break
            node[part] = dict(node[part])
            node = node[part]
        else:
            node.pop(last, None)
    return out


def git_commit() -> str | None:
    """The commit of the source tree, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class RunInfo:
    """The content of ``run.json``. Fields left None after ``members`` are not written; unknown keys of an older or
    newer run folder are kept in ``extra`` and written back as they were."""

    run_id: str
    kind: str = "train"
    created: str | None = None
    git_commit: str | None = None
    config_hash: str | None = None
    data_root: str | None = None
    dataset_fingerprint: str | None = None
    protocol: str | None = None
    tracks: list[str] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)
    model: str | None = None
    n_params: int | None = None
    train_seconds: float | None = None
    status: str | None = None  # running, stopped, finished
    members: list[str] | None = None  # ensembles: the member run ids
    # training runs
    mode: str | None = None
    world_size: int | None = None
    device: str | None = None
    epochs: int | None = None
    steps: int | None = None
    best_epoch: int | None = None
    score: float | None = None
    finished: str | None = None
    evaluated: str | None = None
    # temporal runs: the run whose outputs it was fitted on
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | Path | None = None) -> RunInfo:
        """Read a ``run.json`` object; ``path`` names the file in errors."""
        if not isinstance(data, dict):
            raise AbawError("run.json must hold a JSON object", path=path)
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        model = values.get("model")
        if isinstance(model, dict):  # a model given as {"name": ..., kwargs}: keep its name
            model = model.get("name")
        return cls(**{
            **values,
            "run_id": str(values.get("run_id") or (Path(path).parent.name if path else "")),
            "kind": str(values.get("kind") or "train"),
            "data_root": None if values.get("data_root") is None else str(values["data_root"]),
            "tracks": _as_list(values.get("tracks")),
            "streams": _as_list(values.get("streams")),
            "members": None if values.get("members") is None else _as_list(values["members"]),
            "model": None if model is None else str(model),
            "n_params": _int_or_none(values.get("n_params"), path, "n_params"),
            "train_seconds": float_or_none(values.get("train_seconds")),
            "extra": {k: v for k, v in data.items() if k not in known},
        })

    def to_dict(self) -> dict[str, Any]:
        """The ``run.json`` object: the fields up to ``status`` always, the later ones when set, then ``extra``."""
        out: dict[str, Any] = {}
        always = True
        for f in dataclasses.fields(self):
            if f.name == "members":
                always = False
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if always or value is not None:
                out[f.name] = value
        return {**out, **self.extra}

    def updated(self, **fields: Any) -> RunInfo:
        """A copy with ``fields`` set (unknown names go to ``extra``)."""
        return RunInfo.from_dict({**self.to_dict(), **fields})


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def float_or_none(value: Any) -> float | None:
    """``value`` as a float; None for None, NaN and what is not a number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _int_or_none(value: Any, path: str | Path | None, key: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise AbawError(f"{key} must be an integer, got {value!r}", path=path) from None


def new_run_info(run_id: str, kind: str, config: dict[str, Any], *, data_root: str | Path | None, protocol: str,
                 tracks: list[str], model: str, n_params: int = 0, train_seconds: float = 0.0,
                 members: list[str] | None = None, streams: list[str] | None = None,
                 status: str = "running") -> RunInfo:
    """A new run's record: created now, at this commit, with the config's hash and the data's fingerprint."""
    if kind not in RUN_KINDS:
        raise ValueError(f"unknown run kind {kind!r}; choose from {', '.join(RUN_KINDS)}")
    return RunInfo(
        run_id=run_id, kind=kind, created=now(), git_commit=git_commit(), config_hash=config_hash(config),
        data_root=str(Path(data_root).resolve()) if data_root else None,
        dataset_fingerprint=_fingerprint(data_root), protocol=protocol, tracks=list(tracks),
        streams=list(streams or []), model=model, n_params=int(n_params), train_seconds=float(train_seconds),
        status=status, members=None if members is None else list(members))


def _fingerprint(data_root: str | Path | None) -> str | None:
    if data_root is None:
        return None
    from abaw.data.affwild2 import dataset_fingerprint  # the data reader, only when a run has a data root

    return dataset_fingerprint(data_root)


def read_run_info(run_dir: str | Path) -> RunInfo:
    """``RUN_DIR/run.json``; missing or broken is a one-line AbawError."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise AbawError("missing (not a finished run folder?)", path=path)
    return RunInfo.from_dict(read_json(path), path)


def write_run_info(run_dir: str | Path, info: RunInfo) -> None:
    """Write ``RUN_DIR/run.json`` atomically: the one writer of run.json."""
    write_json(Path(run_dir) / "run.json", info.to_dict())


def update_run_info(run_dir: str | Path, **fields: Any) -> RunInfo:
    """Set ``fields`` in ``RUN_DIR/run.json`` (made when missing; its run id is then the folder's name)."""
    run_dir = Path(run_dir)
    path = run_dir / "run.json"
    info = read_run_info(run_dir) if path.is_file() else RunInfo(run_id=run_dir.name)
    info = info.updated(**fields)
    write_run_info(run_dir, info)
    return info

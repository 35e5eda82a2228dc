"""Seeds as an axis of the runs: the seed a config trains with, and the hash that groups runs across seeds.

``config_hash`` (:mod:`abaw.runs.info`) includes the seed, on purpose: a checkpoint refuses a resume whose config
changed, the seed included. Runs that differ only in their seed are grouped by :func:`group_hash` instead: the config
hash without the seed keys, where a temporal run's source run is named by the source's own group hash (a temporal fit
per seed of one source config is one group).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from abaw.runs.info import _without, config_hash, read_json
from abaw.schema import get_dotted

#: Where configs keep their seed: training configs under ``train``, temporal (and other top-level) configs at the top.
SEED_KEYS: tuple[str, ...] = ("train.seed", "seed")
#: Keys naming a temporal run's source run (its id): replaced by the source config's group hash when it is readable.
SOURCE_KEY = "source"
SOURCE_DIR_KEY = "source_dir"


def config_seed(config: dict[str, Any]) -> int | None:
    """The seed a config trains with (``train.seed``, else a top-level ``seed``); None when it names none."""
    if not isinstance(config, dict):
        return None
    for key in SEED_KEYS:
        value = get_dotted(config, key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def without_seed(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` without its seed keys."""
    return _without(config, SEED_KEYS)


def _source_group(config: dict[str, Any]) -> str | None:
    """The group hash of a temporal config's source run, read from ``source_dir/config.json`` (None if unreadable)."""
    source_dir = config.get(SOURCE_DIR_KEY)
    if not isinstance(source_dir, str):
        return None
    path = Path(source_dir) / "config.json"
    try:
        source_config = read_json(path)
    except Exception:  # a moved or deleted source: the run keeps its own (seed-free) hash
        return None
    return group_hash(source_config, resolve_source=False) if isinstance(source_config, dict) else None


def group_hash(config: dict[str, Any], resolve_source: bool = True) -> str:
    """The config hash without the seed: equal for runs of one config that differ only in their seed.

    With ``resolve_source``, a config naming a source run (``source`` + ``source_dir``) is hashed with the source's
    group hash in place of its run id, so fits on the seeds of one source config group together.
    """
    if not isinstance(config, dict):
        return config_hash(config)
    clean = without_seed(config)
    if resolve_source and SOURCE_KEY in clean:
        source = _source_group(clean)
        if source is not None:
            clean[SOURCE_KEY] = f"group:{source}"
    return config_hash(clean)

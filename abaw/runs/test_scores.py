"""A run's scores on the hidden test split: ``RUN_DIR/scores_test.json``, the shape of ``scores.json``.

Written when the run's test result files are scored against a label root (``abaw ablate``, ``abaw demo``; ``abaw
score --split test --labels DIR`` can write it for a run folder with the same call), read by
:func:`abaw.runs.database.record_run` into score rows of split ``test``, which the leaderboard shows next to the
validation score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from abaw.fileio import write_json
from abaw.runs.database import SPLIT_SCORE_FILES, TEST_SPLIT
from abaw.runs.info import read_json

TEST_SCORES_FILE = SPLIT_SCORE_FILES[TEST_SPLIT]


def has_test_score(run_dir: str | Path, track: str) -> bool:
    """Whether ``run_dir``'s ``scores_test.json`` holds ``track``."""
    path = Path(run_dir) / TEST_SCORES_FILE
    return path.is_file() and track in (read_json(path).get("tracks") or {})


def write_test_score(run_dir: str | Path, track: str, result: dict[str, Any], protocol: str,
                     labels: str | Path | None = None) -> Path:
    """Add one track's test score (a ``score_track``/``score_results`` dict) to ``RUN_DIR/scores_test.json``,
    keeping the other tracks'; ``score`` is the sum over the tracks, as in ``scores.json``."""
    path = Path(run_dir) / TEST_SCORES_FILE
    old = read_json(path) if path.is_file() else {}
    tracks = {**(old.get("tracks") or {}), track: {k: v for k, v in result.items() if k not in ("split", "n_videos")}}
    doc: dict[str, Any] = {"split": TEST_SPLIT, "protocol": protocol, "tracks": tracks,
                           "score": sum(float(t["score"]) for t in tracks.values())}
    if labels is not None:
        doc["labels"] = str(labels)
    write_json(path, doc)
    return path

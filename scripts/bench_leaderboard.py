"""Record N runs in a fresh runs database and time the terminal and HTML leaderboards (target: under 2 s each).

    .venv/bin/python scripts/bench_leaderboard.py [--runs 1000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import tempfile
import time
from pathlib import Path

from rich.console import Console

from abaw.runs import database, leaderboard
from abaw.runs.choices import TERMINAL_TOP
from abaw.tasks import TRACKS


def make_runs(root: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` run folders over three tracks, two datasets and a multi-task share, with realistic configs."""
    rng = random.Random(seed)
    dirs = []
    for i in range(n):
        run_dir = root / f"run-{i:05d}"
        run_dir.mkdir(parents=True)
        tracks = list(TRACKS) if i % 5 == 0 else [TRACKS[i % 3]]
        fingerprint = "synthetic-a" if i % 4 else "synthetic-b"
        config = {"name": f"run{i}", "tasks": tracks, "data": {"streams": ["face", "audio"], "duration": 16},
                  "model": {"name": "demo_face", "kwargs": {"hidden": rng.choice([64, 128, 256])}},
                  "optim": {"name": "AdamW", "lr": rng.choice([1e-3, 3e-4])}, "train": {"seed": i}}
        (run_dir / "config.json").write_text(json.dumps(config))
        (run_dir / "run.json").write_text(json.dumps({
            "run_id": run_dir.name, "kind": "train", "created": f"2026-11-22T{i % 24:02d}:00:00+00:00",
            "git_commit": "0" * 40, "data_root": f"/data/{fingerprint}", "dataset_fingerprint": fingerprint,
            "protocol": "abaw2021", "tracks": tracks, "streams": ["face", "audio"], "model": "demo_face",
            "n_params": rng.randint(10_000, 5_000_000), "train_seconds": rng.uniform(10, 500),
            "status": "finished"}))
        scores = {}
        for track in tracks:
            s = rng.random()
            scores[track] = {"score": s, "ccc_valence": s, "ccc_arousal": s, "f1": s, "accuracy": s,
                             "f1_per_class": {f"c{k}": rng.random() for k in range(7)}, "n_frames": 10_000}
        (run_dir / "scores.json").write_text(json.dumps({"split": "validation", "protocol": "abaw2021",
                                                         "tracks": scores}))
        dirs.append(run_dir)
    return dirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="write the database, runs and HTML here instead of a temp folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        db = root / "bench.sqlite"
        dirs = make_runs(root / "runs", args.runs)
        t0 = time.perf_counter()
        database.record_runs(dirs, db)
        t_record = time.perf_counter() - t0

        t0 = time.perf_counter()
        board = leaderboard.load_leaderboard(db)
        t_load = time.perf_counter() - t0

        t_terminal = {}
        for label, top in (("top", TERMINAL_TOP), ("all", None)):
            t0 = time.perf_counter()
            board = leaderboard.load_leaderboard(db)
            leaderboard.render_terminal(board, Console(file=io.StringIO(), width=160), top=top)
            t_terminal[label] = time.perf_counter() - t0

        t0 = time.perf_counter()
        board = leaderboard.load_leaderboard(db)
        html_path = leaderboard.write_html(board, root / "leaderboard.html")
        t_html = time.perf_counter() - t0

        entries = sum(len(g.entries) for g in board.groups)
        print(f"runs recorded             {args.runs} ({entries} ranked entries in {len(board.groups)} tables)")
        print(f"record (one transaction each) {t_record:7.2f} s  ({1000 * t_record / args.runs:.2f} ms per run)")
        print(f"query + rank              {t_load:7.3f} s")
        print(f"terminal leaderboard      {t_terminal['top']:7.3f} s  (query + rank + render, default: best "
              f"{TERMINAL_TOP} per table; target < 2 s)")
        print(f"terminal, every row       {t_terminal['all']:7.3f} s  (--top 0: {entries} rows through rich)")
        print(f"HTML leaderboard          {t_html:7.3f} s  (query + rank + write; target < 2 s; "
              f"{html_path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""abaw on an Aff-Wild2-sized data root: wall time, CPU time and peak RSS of every stage, at a size you choose.

Writes, under ``--work`` (default: a temporary folder, removed at the end unless ``--keep``):

- a data root in abaw's formats: ``videos/`` (one tiny encoded video of ``--frames`` frames, hard-linked under
  ``--videos`` names, so probing is real and nothing is decoded), annotations of the three tracks in the ABAW 2021
  layout (three quarters of the names in ``Train_Set``, a quarter in ``Validation_Set``, every frame labelled);
- a feature cache in abaw's own format (``features/face/<extractor>/<name>.npz``, float16 ``feats`` and ``valid``,
  docs/design.md section 4) for the face stream of a multi-task model whose backbone gives ``--dim`` features, under
  the extractor name the trainer computes, so training finds it complete and extracts nothing;
- the same at ``--short-frames`` frames per video (default 500), on which only the training steps run: the s/step
  ratio of the two roots shows whether a training step's cost grows with video length.

Each stage runs as its own process (``python -m abaw ...``); its peak RSS is the child's own ``ru_maxrss`` (from
``os.wait4``), its CPU time user + system of the child. Stages: ``index``, the cache completeness check (``abaw
extract`` over a complete cache; the check alone is timed inside the process too), ``--steps`` training steps in
cached mode on each root, ``evaluate`` (validation, result files written; with ``--train-split`` the training split
too), ``temporal`` (out of fold on the validation outputs), ``ensemble``, ``validate-submission`` and ``score``::

    .venv/bin/python scripts/bench_scale.py                                  # 564 videos x 5,000 frames, 512-d
    .venv/bin/python scripts/bench_scale.py --videos 40 --frames 2000 --json  # a smaller run

A stage that fails is reported with its exit code and the last line of its stderr, and the stages after it that
need its output are skipped.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from abaw import tasks  # the vocabulary only: the parent stays small (see ``prepare``)

PROTOCOL = "abaw2021"
#: Backbone whose per-frame feature has the requested dimension (``--dim``).
BACKBONES: dict[int, str] = {128: "tiny_cnn", 512: "resnet18", 1280: "tv_mobilenet_v2", 2048: "tv_resnet50"}
#: Timed inside the completeness-check process: the check alone, without Python and model start-up.
CHECK_SNIPPET = """
import json, sys, time
from abaw.train.checkpoint import model_from_config
from abaw.train.extract import extract_features
from abaw.runs.info import read_json
cfg = read_json(sys.argv[1])
model = model_from_config(cfg)
t0 = time.perf_counter()
summary = extract_features(cfg, model, progress=False)
print(json.dumps({"check_seconds": time.perf_counter() - t0, "written": summary["face"]["written"]}))
"""


@dataclass
class Stage:
    name: str
    wall_s: float | None = None
    cpu_s: float | None = None
    peak_rss_mb: float | None = None
    ok: bool = True
    note: str = ""


def write_video(path: Path, frames: int, fps: int = 30) -> None:
    """A 16x16 MPEG-4 video of ``frames`` frames (its header gives the frame count; nothing here decodes it)."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        image = np.zeros((16, 16, 3), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        for _ in range(frames):
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def split_names(videos: int) -> dict[str, list[str]]:
    n_train = max(1, (3 * videos) // 4)
    return {"train": [f"v{i:04d}" for i in range(n_train)],
            "validation": [f"v{i:04d}" for i in range(n_train, max(n_train + 1, videos))]}


def write_root(root: Path, videos: int, frames: int, seed: int = 0) -> None:
    """Videos (hard links of one file) and labels of the three tracks for every frame (smooth VA, expression runs
    of 50-200 frames, sparse AUs)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    proto = tasks.get_protocol(PROTOCOL)
    (root / tasks.VIDEOS_DIR).mkdir(parents=True, exist_ok=True)
    template = root / "template.mp4"
    write_video(template, frames)
    for split, names in split_names(videos).items():
        for name in names:
            os.link(template, root / tasks.VIDEOS_DIR / f"{name}.mp4")
            va = np.tanh(np.cumsum(rng.normal(0, 0.03, (frames, 2)), axis=0))
            expr = np.repeat(rng.integers(0, proto.n_expr, frames // 50 + 1), rng.integers(50, 200, frames // 50 + 1))
            expr = np.resize(expr, frames)
            au = (rng.uniform(size=(frames, proto.n_au)) > 0.8).astype(np.int8)
            for track, values in (("va", va.round(3)), ("expr", expr[:, None]), ("au", au)):
                folder = root / tasks.ANNOTATIONS_DIR / proto.annotation_dir(track) / tasks.SPLIT_DIRS[split]
                folder.mkdir(parents=True, exist_ok=True)
                with (folder / f"{name}.txt").open("w") as f:  # pandas quotes a one-column header with commas
                    f.write(proto.header(track) + "\n")
                    pd.DataFrame(values).to_csv(f, index=False, header=False)
    template.unlink()


def train_config(root: Path, dim: int, seed: int = 0) -> dict:
    """The benchmark's multi-task config: face stream, cached mode, a GRU over ``dim``-d features."""
    from abaw.presets import find_preset
    from abaw.train.config import resolve

    if dim not in BACKBONES:
        raise SystemExit(f"--dim {dim}: choose one of {', '.join(map(str, BACKBONES))} (a backbone of that width)")
    cfg = resolve(find_preset("demo_multitask"), {"data.root": str(root), "data.mode": "cached",
                                                  "data.streams": ["face"], "train.seed": seed,
                                                  # --max-steps ends the run: no epoch (and no validation) completes
                                                  "train.epochs": 1000, "train.threads": None})
    cfg["model"]["kwargs"]["backbone"] = BACKBONES[dim]
    cfg["model"]["kwargs"]["pretrained"] = False
    return cfg


def write_cache(root: Path, cfg: dict, frames: int, dim: int) -> str:
    """The face-stream cache of every name, under the extractor name the trainer computes for ``cfg``."""
    import numpy as np
    import torch

    from abaw.fileio import save_npz
    from abaw.train.checkpoint import model_from_config
    from abaw.train.extract import extractor_names
    from abaw.train.fitting import seed_everything

    seed_everything(int(cfg["train"]["seed"]))
    with torch.no_grad():
        model = model_from_config(cfg)
    extractor = extractor_names(cfg, model)["face"]
    rng = np.random.default_rng(1)
    folder = root / tasks.FEATURES_DIR / "face" / extractor
    base = rng.standard_normal((frames, dim), dtype=np.float32).astype(np.float16)
    valid = np.ones(frames, dtype=bool)
    for name in sorted(p.stem for p in (root / tasks.VIDEOS_DIR).iterdir()):
        # one random row shift per video: files differ, and nothing is generated per frame per video
        save_npz(folder / f"{name}.npz", feats=np.roll(base, int(rng.integers(frames)), axis=0), valid=valid)
    return extractor


def prepare(work: Path, key: str, videos: int, frames: int, dim: int) -> None:
    """Data root, feature cache and config file of one root (skipped when the cache exists: ``--work`` reuse)."""
    from abaw.fileio import write_json

    root = work / f"data_{frames}"
    if not (root / tasks.FEATURES_DIR).is_dir():
        shutil.rmtree(root, ignore_errors=True)
        write_root(root, videos, frames)
        write_cache(root, train_config(root, dim), frames, dim)
    write_json(work / f"config_{key}.json", train_config(root, dim))


def run_stage(name: str, argv: list[str], log_dir: Path) -> tuple[Stage, str]:
    """Run one process; return its figures and its stdout."""
    slug = "".join(c if c.isalnum() else "_" for c in name)
    out, err = log_dir / f"{slug}.out", log_dir / f"{slug}.err"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    with out.open("w") as fo, err.open("w") as fe:
        proc = subprocess.Popen(argv, stdout=fo, stderr=fe, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    stage = Stage(name, round(wall, 2), round(usage.ru_utime + usage.ru_stime, 2), round(usage.ru_maxrss / 1024, 1))
    if code != 0:
        lines = [ln for ln in err.read_text(errors="replace").splitlines() if ln.strip()]
        stage.ok, stage.note = False, f"exit {code}: {lines[-1] if lines else ''}"[:200]
    return stage, out.read_text(errors="replace")


def abaw(*args: str) -> list[str]:
    return [sys.executable, "-m", "abaw", *args]


def last_json(text: str) -> dict:
    """The last line of ``text`` that parses as a JSON object ({} when none does)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {}


def run_dir_of(runs: Path) -> Path | None:
    found = sorted(p for p in runs.iterdir() if (p / "run.json").is_file()) if runs.is_dir() else []
    return found[-1] if found else None


def s_per_step(run: Path | None) -> float | None:
    if run is None:
        return None
    info = json.loads((run / "run.json").read_text())
    return info["train_seconds"] / info["steps"] if info.get("steps") else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=564)
    ap.add_argument("--frames", type=int, default=5000, help="frames per video")
    ap.add_argument("--short-frames", type=int, default=500, help="frames per video of the s/step comparison root")
    ap.add_argument("--dim", type=int, default=512, help=f"feature dimension: {', '.join(map(str, BACKBONES))}")
    ap.add_argument("--steps", type=int, default=1000, help="training steps timed on each root (100 is too few: noise)")
    ap.add_argument("--work", type=Path, help="folder for the roots and runs (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    ap.add_argument("--train-split", action="store_true",
                    help="also evaluate the training split (the inputs of `temporal --set fit_on=train`)")
    args = ap.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="abaw-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    logs, runs, short_runs = work / "logs", work / "runs", work / "runs_short"
    logs.mkdir(exist_ok=True)
    stages: list[Stage] = []
    figures: dict = {"videos": args.videos, "frames": args.frames, "dim": args.dim, "steps": args.steps,
                     "load_before": os.getloadavg(), "cpus": os.cpu_count()}
    try:
        t0 = time.perf_counter()
        for key, frames in (("full", args.frames), ("short", args.short_frames)):
            spawn = multiprocessing.get_context("spawn")  # torch and the data live in the child, not in this process
            child = spawn.Process(target=prepare, args=(work, key, args.videos, frames, args.dim))
            child.start()
            child.join()
            if child.exitcode != 0:
                raise SystemExit(f"writing the {frames}-frame data root failed (exit {child.exitcode})")
        figures["write_seconds"] = round(time.perf_counter() - t0, 1)
        root, config = work / f"data_{args.frames}", work / "config_full.json"
        figures["cache_gb"] = round(sum(p.stat().st_size for p in (root / tasks.FEATURES_DIR).rglob("*.npz")) / 1e9, 2)

        stages.append(run_stage("index", abaw("index", str(root), "--json"), logs)[0])
        stage, out = run_stage("completeness check", [sys.executable, "-c", CHECK_SNIPPET, str(config)], logs)
        inner = last_json(out)
        if "check_seconds" in inner:
            stage.note = f"check alone {inner['check_seconds']:.2f} s, {inner['written']} files written"
        stages.append(stage)

        steps = {}
        for key, folder in (("full", runs), ("short", short_runs)):
            frames = args.frames if key == "full" else args.short_frames
            stage, _ = run_stage(f"train {args.steps} steps ({frames} fr/video)",
                                 abaw("train", "-c", str(work / f"config_{key}.json"), "--max-steps", str(args.steps),
                                      "--out", str(folder)), logs)
            steps[key] = s_per_step(run_dir_of(folder))
            if steps[key] is not None:
                stage.note = f"{steps[key]:.4f} s/step"
            stages.append(stage)
        figures["s_per_step"] = steps
        if steps["full"] and steps["short"]:
            figures["s_per_step_ratio"] = round(steps["full"] / steps["short"], 3)

        run = run_dir_of(runs)
        if run is None:
            raise SystemExit(f"training wrote no run folder; see {logs}")
        sub = work / "submission"
        for split in ("validation", "train") if args.train_split else ("validation",):
            extra = ["--submission", str(sub)] if split == "validation" else []
            stage, _ = run_stage(f"evaluate {split}", abaw("evaluate", str(run), "--split", split, "--checkpoint",
                                                           "last", *extra), logs)
            stages.append(stage)
        temporal_runs = work / "runs_temporal"
        stage, _ = run_stage("temporal", abaw("temporal", "--source", str(run), "-c", "cnu_adl_temporal",
                                              "--set", "epochs=1", "--out", str(temporal_runs)), logs)
        stages.append(stage)
        members = [str(run)] + ([str(t)] if (t := run_dir_of(temporal_runs)) else [])
        stages.append(run_stage("ensemble", abaw("ensemble", *members, "--track", "va", "--method", "weighted",
                                                  "--out", str(work / "runs_ensemble")), logs)[0])
        stages.append(run_stage("validate-submission", abaw("validate-submission", str(sub), "--data-root", str(root),
                                                            "--split", "validation", "--track", "va"), logs)[0])
        stages.append(run_stage("score", abaw("score", "--data-root", str(root), "--split", "validation", "--track",
                                              "va", "--pred", str(sub), "--json"), logs)[0])
    finally:
        figures["load_after"] = os.getloadavg()
        figures["stages"] = [asdict(s) for s in stages]
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            figures["work"] = str(work)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{args.videos} videos x {args.frames} frames, {args.dim}-d face features ({figures.get('cache_gb')} GB "
          f"cache), written in {figures.get('write_seconds')} s; load average {figures['load_before'][0]:.1f} before, "
          f"{figures['load_after'][0]:.1f} after, {figures['cpus']} CPUs")
    print(f"{'stage':<34} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12}  note")
    for s in stages:
        wall = f"{s.wall_s:8.2f}" if s.wall_s is not None else f"{'':>8}"
        note = s.note if s.ok else f"FAILED {s.note}"
        print(f"{s.name:<34} {wall} {s.cpu_s or 0:8.2f} {s.peak_rss_mb or 0:12.1f}  {note}")
    if "s_per_step_ratio" in figures:
        print(f"s/step at {args.frames} frames per video / at {args.short_frames}: {figures['s_per_step_ratio']:.2f}")


if __name__ == "__main__":
    main()

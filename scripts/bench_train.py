#!/usr/bin/env python
"""Training throughput (frames/s) end-to-end (frames in, CNN + RNN trained) and from the feature cache (RNN and
heads on cached CNN features) for the same model, fp32 and bf16, plus peak memory and the one-off extraction cost.

    python scripts/bench_train.py --data-root ROOT [-c demo_va] [--steps 20] [--threads 2] [--amps fp32 bf16]

Each measurement runs in its own process so its peak memory (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def measure(args: argparse.Namespace) -> dict:
    """One measurement (runs in a child process): ``args.steps`` timed training steps after 2 warm-up steps."""
    import torch
    from torch.utils.data import DataLoader

    from abaw.commands.train import find_config
    from abaw.data.sequences import epoch_batches, epoch_order
    from abaw.inference import to_device
    from abaw.train.config import resolve
    from abaw.train.loop import Trainer, compute_loss

    torch.set_num_threads(args.threads)
    over = {"data.root": str(Path(args.data_root).resolve()), "data.mode": args.mode, "train.progress": False,
            "train.threads": args.threads, "train.amp": None if args.amp == "fp32" else "bf16"}
    for item in args.override:
        key, value = item.split("=", 1)
        over[key] = json.loads(value)
    cfg = resolve(find_config(args.config), over)
    for item in args.set:
        key, value = item.split("=", 1)
        cfg["model"]["kwargs"][key] = json.loads(value)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp), progress=False)
        amp = cfg["train"]["amp"]
        t0 = time.perf_counter()
        trainer.setup()  # in cached mode this extracts what is missing
        setup_seconds = time.perf_counter() - t0
        extract_fps = None
        if args.mode == "cached":  # one-off cost of the cache: the first stream's CNN over one video's frames
            from abaw.data.stream_inputs import StreamLoader
            from abaw.train.extract import encode_video

            stream = next(s for s in cfg["data"]["streams"] if s != "landmarks")
            video = trainer.train_videos[0]
            loader = StreamLoader(cfg["data"]["root"], [stream], trainer.model.input_spec())
            t0 = time.perf_counter()
            _, valid = encode_video(trainer.model.stream_encoders()[stream].eval(), loader, stream, video,
                                    cfg["data"]["extract_batch_size"], trainer.device, amp == "bf16")
            extract_fps = round(int(valid.sum()) / (time.perf_counter() - t0), 1)
        order = epoch_order(len(trainer.train_set), 0, 0)
        batches = epoch_batches(order, cfg["data"]["batch_size"])
        while len(batches) < args.steps + 2:
            batches += batches
        dl = DataLoader(trainer.train_set, batch_sampler=batches[: args.steps + 2], num_workers=0)
        model = trainer.model.train()
        frames, t_start = 0, None
        for i, batch in enumerate(dl):
            if i == 2:
                t_start = time.perf_counter()
            batch = to_device(batch, trainer.device)
            with torch.autocast(device_type=trainer.device.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
                out = model(batch["inputs"], batch["mask"])
            loss, _ = compute_loss(trainer.loss_fn, {k: v.float() for k, v in out.items()}, batch)
            trainer.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            trainer.optimizer.step()
            if i >= 2:
                frames += int(batch["mask"].sum())
        seconds = time.perf_counter() - t_start
    return {"mode": args.mode, "amp": args.amp, "threads": args.threads, "steps": args.steps,
            "frames_per_second": round(frames / seconds, 1), "step_seconds": round(seconds / args.steps, 4),
            "setup_seconds": round(setup_seconds, 1), "extract_fps": extract_fps,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "model": cfg["model"]["name"], "kwargs": cfg["model"]["kwargs"], "streams": cfg["data"]["streams"],
            "batch": f"{cfg['data']['batch_size']}x{cfg['data']['duration']}"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True)
    p.add_argument("-c", "--config", default="demo_va")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--modes", nargs="+", default=["end2end", "cached"], choices=("end2end", "cached"))
    p.add_argument("--amps", nargs="+", default=["fp32", "bf16"], choices=("fp32", "bf16"))
    p.add_argument("--set", action="append", default=[], metavar="KWARG=JSON", help="model kwarg override")
    p.add_argument("--override", action="append", default=[], metavar="KEY=JSON",
                   help="config override, e.g. data.batch_size=2")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--amp", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print one JSON line per measurement")
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return 0
    rows = []
    for mode in args.modes:
        for amp in args.amps:
            cmd = [sys.executable, __file__, "--child", "--data-root", args.data_root, "-c", args.config,
                   "--steps", str(args.steps), "--threads", str(args.threads), "--mode", mode, "--amp", amp]
            for item in args.set:
                cmd += ["--set", item]
            for item in args.override:
                cmd += ["--override", item]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=PROJECT)
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                return 1
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            if args.json:
                print(json.dumps(rows[-1]))
    if not args.json:
        r0 = rows[0]
        print(f"model {r0['model']} {r0['kwargs']} streams {r0['streams']} batch {r0['batch']}, "
              f"{args.threads} threads, {args.steps} timed steps")
        print(f"{'mode':<9} {'amp':<5} {'frames/s':>10} {'s/step':>8} {'peak MB':>9} {'extract frames/s':>17}")
        for r in rows:
            print(f"{r['mode']:<9} {r['amp']:<5} {r['frames_per_second']:>10} {r['step_seconds']:>8} "
                  f"{r['peak_rss_mb']:>9} {str(r['extract_fps'] or ''):>17}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

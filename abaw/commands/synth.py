"""``abaw synth``: write a synthetic Aff-Wild2; ``abaw synth-affectnet``: a synthetic AffectNet-format set."""

from __future__ import annotations

import argparse
import json

from abaw import tasks
from abaw.errors import AbawError


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 320x240, not {text!r}") from None
    return w, h


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from abaw.synth.defaults import AFFECTNET_DEFAULTS, DEFAULTS

    p = subparsers.add_parser("synth", help="write a synthetic Aff-Wild2 (videos, crops, annotations, boxes)",
                              description="Write a synthetic Aff-Wild2 in the real layout, with learnable labels.")
    p.add_argument("--out", required=True, help="output folder (empty, or an earlier synthetic set to replace)")
    p.add_argument("--videos", type=int, default=DEFAULTS["videos"], help="number of videos (default %(default)s)")
    p.add_argument("--frames", type=int, default=DEFAULTS["frames"], help="frames per video (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    p.add_argument("--layout", choices=tasks.LAYOUTS, default="abaw2021",
                   help="annotation layout: abaw2021 (7 expressions) or abaw2022 (8, with MTL CSVs)")
    p.add_argument("--fps", type=float, default=DEFAULTS["fps"], help="frame rate (default %(default)s)")
    p.add_argument("--size", type=_size, default=DEFAULTS["size"], metavar="WxH",
                   help="frame size (default {}x{})".format(*DEFAULTS["size"]))
    p.add_argument("--workers", type=int, default=None, help="rendering processes (default: up to 2)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty folder that is not a synthetic set")
    p.add_argument("--cue", action="append", default=[], metavar="KEY=VALUE",
                   help="strength of one cue (repeatable), e.g. --cue audio_valence=0 --cue face_noise=0.1; "
                        "keys: the fields of abaw.synth.params.Cues (docs/synthetic.md)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)

    a = subparsers.add_parser("synth-affectnet", help="write a synthetic AffectNet-format set",
                              description="Write synthetic face images with AffectNet's folder and CSV layout.")
    a.add_argument("--out", required=True, help="output folder")
    a.add_argument("--images", type=int, default=AFFECTNET_DEFAULTS["images"],
                   help="number of images (default %(default)s)")
    a.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    a.add_argument("--size", type=int, default=AFFECTNET_DEFAULTS["size"],
                   help="image side in pixels (default %(default)s)")
    a.add_argument("--json", action="store_true", help="print the summary as JSON")
    a.set_defaults(func=run_affectnet)

    c = subparsers.add_parser("synth-check", help="measure how strongly each stream of a data root carries the labels",
                              description="Probe a (synthetic) data root: linear models on small face crops, and "
                                          "correlations of body motion, background colour and audio with the labels.")
    c.add_argument("root", help="data root (Aff-Wild2 layout, with boxes/ for the body cues)")
    c.add_argument("--json", action="store_true", help="print the figures as JSON")
    c.set_defaults(func=run_check)


def _print(summary: dict, as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print("\n".join(lines))


def run(args: argparse.Namespace) -> int:
    from abaw.synth.dataset import generate

    if args.workers is not None and args.workers < 1:
        raise AbawError("--workers must be at least 1")
    from abaw.synth.params import parse_cue

    cues = dict(parse_cue(text) for text in args.cue)
    s = generate(args.out, videos=args.videos, frames=args.frames, seed=args.seed, layout=args.layout, fps=args.fps,
                 size=args.size, workers=args.workers, overwrite=args.overwrite, cues=cues)
    files = s["annotation_files"]
    lines = [f"wrote {s['videos']} videos x {s['frames_per_video']} frames ({s['names']} names, "
             f"{len(s['two_person_videos'])} with two people) to {s['out']} in {s['seconds']:.1f} s"]
    for t in tasks.TRACKS:
        lines.append(f"  {t:4s} train {files[t]['train']:3d}  validation {files[t]['validation']:3d}  "
                     f"test {files[t]['test']:3d} names")
    lines.append(f"  faces in {s['face_frames']} of {s['name_frames']} name-frames; test labels in {s['test_labels']}")
    _print(s, args.json, lines)
    return 0


def run_affectnet(args: argparse.Namespace) -> int:
    from abaw.synth.affectnet import generate_affectnet

    s = generate_affectnet(args.out, images=args.images, seed=args.seed, size=args.size)
    _print(s, args.json, [f"wrote {s['images']} images ({s['train']} training, {s['validation']} validation) "
                          f"to {s['out']} in {s['seconds']:.1f} s"])
    return 0


def run_check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from abaw.synth.cues import measure_cues

    if not (Path(args.root) / tasks.ANNOTATIONS_DIR).is_dir():
        raise AbawError("not a data root (no annotations/ folder)", path=args.root)
    s = measure_cues(args.root)
    lines = ["face crops (24x24 grey, linear models, train -> validation):"]
    lines += [f"  {k:24s} {v:.3f}" for k, v in s["face"].items()]
    lines.append("stream cues (Pearson r over one-person VA videos):")
    lines += [f"  {k:24s} {v:.3f}" for k, v in s["streams"].items()]
    lines.append("per-stream ceilings, linear probes train -> validation (per frame | inputs averaged over 1 s); "
                 "trivial baseline: CCC 0")
    for title, probes in (("simple statistics", s["stats"]), ("cached features", s["features"])):
        for stream, probe in probes.items():
            for track in ("va", "expr"):
                item = probe.get(track, probe if track == "va" else {})
                if "frame" not in item:
                    continue
                f, m = item["frame"], item["smoothed"]
                text = (f"CCC V {f['valence']:.3f} A {f['arousal']:.3f} | V {m['valence']:.3f} A {m['arousal']:.3f}"
                        if track == "va" else f"EXPR F1 {f['f1']:.3f} | {m['f1']:.3f}")
                scale = f"  (mean |feature| {probe['scale']:.2g})" if "scale" in probe and track == "va" else ""
                lines.append(f"  {title}: {stream:44s} {text}{scale}")
            if "scale" in probe and probe["scale"] < 1e-6:
                lines.append(f"  {title}: {stream:44s} features are all zero: this stream carries nothing")
    _print(s, args.json, lines)
    return 0

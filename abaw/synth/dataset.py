"""``generate``: plan a synthetic Aff-Wild2 (videos, two-person videos, splits and tracks per video), render the
videos (in parallel worker processes when large), and write the annotations in the chosen layout; the test names'
labels go to a separate root, ``<out>/test_labels/``, that training and evaluation never read."""

from __future__ import annotations

import logging
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from abaw import tasks
from abaw.errors import AbawError
from abaw.fileio import write_json, write_text
from abaw.synth.defaults import DEFAULTS
from abaw.synth.params import Cues, make_cues
from abaw.synth.render import PersonLabels, VideoSpec, names_for, render_video, simulate_people
from abaw.synth.writer import write_annotation, write_mtl
from abaw.tasks import (
    ANNOTATIONS_DIR,
    BOXES_DIR,
    CROPS_DIR,
    FEATURES_DIR,
    MTL_DIR,
    PREPARED_DIR,
    TEST_SET_DIR,
    VIDEOS_DIR,
)

log = logging.getLogger(__name__)

#: The hidden test split's labels: ``<out>/test_labels/annotations/<track dir>/Test_Set/<name>.txt``, the data root's
#: layout (same track folders and headers) under a label root of their own, read only by
#: ``abaw score --split test --labels <out>/test_labels``.
TEST_LABELS_DIR = "test_labels"
#: Folders the generator owns inside its output, and folders later stages derive from them (prepare, extract): all
#: cleared when regenerating over an earlier synthetic set, since new videos make the derived data stale.
OWNED = (VIDEOS_DIR, CROPS_DIR, ANNOTATIONS_DIR, BOXES_DIR, TEST_SET_DIR, TEST_LABELS_DIR)
DERIVED = (PREPARED_DIR, FEATURES_DIR)


def _split_sizes(n: int) -> dict[str, int]:
    """Videos per split: 30 % test (in Aff-Wild2 the test split is a quarter or more of each track's videos), 30 %
    validation, the rest train. Large evaluation splits because the scores they give are per-person averages: with
    a quarter each (24 of 96 videos) one model's validation and test scores differed by 0.08 (sd, VA) by the draw."""
    if n == 1:
        return {"train": 1, "validation": 0, "test": 0}
    n_test = int(0.3 * n)
    n_val = max(1, int(round(0.3 * n)))
    return {"train": n - n_test - n_val, "validation": n_val, "test": n_test}


#: About the mean valence and arousal of the synthetic people (spread is measured around it).
VA_CENTRE = (-0.1, 0.2)


def label_profile(spec: VideoSpec, tracks: set[str] | frozenset[str] = frozenset(tasks.TRACKS)) -> np.ndarray:
    """What a video's labels hold, for stratifying: membership of each track, then, for the tracks it is in, frames
    per band of valence and of arousal, people per band of their mean valence and arousal, the spread of valence and
    arousal, frames of each expression state and active frames of each AU; last, its masked frames and its second
    person (simulated from the video's seed before it is rendered)."""
    people = simulate_people(spec)
    edges = [-0.3, 0.0, 0.3]
    va = np.concatenate([np.bincount(np.digitize(np.concatenate([p.va[:, k] for p in people]), edges), minlength=4)
                         for k in (0, 1)]
                        + [np.bincount(np.digitize([p.va[:, k].mean() for p in people], [-0.1, 0.1]), minlength=3)
                           for k in (0, 1)])
    # the spread of valence and arousal (squared distance from the circumplex's middle, summed over frames): a CCC
    # is measured against the label variance of its split, and band counts alone left validation's valence
    # variance a fifth below test's
    spread = [sum(float(((p.va[:, k] - VA_CENTRE[k]) ** 2).sum()) for p in people) for k in (0, 1)]
    va = np.concatenate([va, spread])
    expr = sum(np.bincount(p.expr, minlength=len(tasks.EXPR_CLASSES_8)) for p in people)
    au = sum(p.au.sum(axis=0) for p in people)
    # frames whose face masks the feeling: a masked face is harder to read, and with the default cues validation had
    # a fifth fewer of them than test, which put a face model's test score 0.07-0.1 below its validation score
    masked = sum(float((p.masked > 0.5).sum()) for p in people if p.masked is not None)
    inside = [float(t in tracks) for t in tasks.TRACKS]
    return np.concatenate([inside, va * inside[0], expr * inside[1], au * inside[2], [masked, len(people) - 1]]
                          ).astype(np.float64)


def _plan_splits(rng: np.random.Generator, profiles: np.ndarray, first: dict[int, str] | None = None,
                 max_swap_passes: int = 20) -> list[str]:
    """Split per video (same for every track, so no video leaks between splits), stratified on what the labels hold.

    With a few dozen videos a random split leaves validation and test with different mixes of expressions and AUs
    (measured: 20 % Surprise frames in validation, 4 % in test), and a macro F1 measured on one is not the other's;
    greedy iterative stratification (Sechidis et al., 2011) gives each split its share of every label column instead:
    videos in order of how much of a rare column they hold, each to the split furthest below its share of that video's
    columns, within the split sizes; then pairwise swaps that bring the splits closer to their shares. ``first``
    assigns some videos beforehand (e.g. a two-person video to train)."""
    n = len(profiles)
    sizes = _split_sizes(n)
    names = [s for s in sizes if sizes[s]]
    share = np.array([sizes[s] / n for s in names])
    totals = profiles.sum(axis=0)
    x = profiles[:, totals > 0] / totals[totals > 0]  # each column sums to 1 over the videos
    held = np.zeros((len(names), x.shape[1]))
    left = np.array([sizes[s] for s in names])
    split = [""] * n

    def put(i: int, k: int) -> None:
        split[i] = names[k]
        held[k] += x[i]
        left[k] -= 1

    def misfit(rows: np.ndarray, k: int | np.ndarray) -> np.ndarray:
        """Squared relative shortfall or excess of split(s) ``k`` holding ``rows`` (each split's share is 1)."""
        return ((rows / share[k][..., None] - 1.0) ** 2).sum(axis=-1)

    for i, s in (first or {}).items():
        put(i, names.index(s))
    order = rng.permutation(n)
    order = order[np.argsort(-x[order].max(axis=1), kind="stable")]
    for i in order:
        if split[i]:
            continue
        # growth of each split's misfit if it took this video (negative: it is behind)
        every = np.arange(len(names))
        cost = misfit(held + x[i], every) - misfit(held, every)
        cost[left <= 0] = np.inf
        put(int(i), int(np.argmin(cost)))
    # the last videos of the greedy pass have no choice left: swaps between splits that bring the splits' shares
    # closer to their targets finish the job
    where = np.array([names.index(v) for v in split])
    movable = np.array([i not in (first or {}) for i in range(n)])
    for _ in range(max_swap_passes):
        improved = False
        for i in rng.permutation(np.flatnonzero(movable)):
            a = where[i]
            js = np.flatnonzero(movable & (where != a))
            if not len(js):
                break
            b = where[js]
            d = x[js] - x[i]  # what split a gains (and b loses) by the swap
            delta = misfit(held[a] + d, a) + misfit(held[b] - d, b) - misfit(held[a], a) - misfit(held[b], b)
            best = int(np.argmin(delta))
            if delta[best] < -1e-12:
                j = int(js[best])
                held[a] += d[best]
                held[where[j]] -= d[best]
                where[i], where[j] = where[j], a
                improved = True
        if not improved:
            break
    return [names[k] for k in where]


def _draw_tracks(rng: np.random.Generator, n: int) -> list[set[str]]:
    """Which tracks annotate (or, for test videos, list) each video: most videos are in most tracks, not all."""
    member = [{t for t in tasks.TRACKS if rng.random() < 0.8} for _ in range(n)]
    for m in member:
        if not m:
            m.add(tasks.TRACKS[int(rng.integers(len(tasks.TRACKS)))])
    return member


def _repair_tracks(rng: np.random.Generator, member: list[set[str]], split: list[str]) -> None:
    """Put a video of each split in each track that has none there (tiny sets)."""
    for s in ("train", "validation", "test"):
        idx = [i for i in range(len(split)) if split[i] == s]
        for t in tasks.TRACKS:
            if idx and not any(t in member[i] for i in idx):
                member[int(rng.choice(idx))].add(t)


def _video_name(i: int, fps: float, width: int, height: int) -> str:
    return f"s{i + 1:03d}-{fps:g}-{width}x{height}"


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / tasks.SYNTH_SUMMARY_FILE).exists() and not overwrite:
            raise AbawError("folder exists and is not a synthetic set; choose an empty folder", path=out)
        for d in OWNED + DERIVED:
            if (out / d).exists():
                shutil.rmtree(out / d)
    out.mkdir(parents=True, exist_ok=True)


def test_labels_path(out: Path, track: str, name: str, protocol: tasks.Protocol) -> Path:
    """Where the generator writes a test name's labels (never read by training or evaluation)."""
    return (out / TEST_LABELS_DIR / ANNOTATIONS_DIR / protocol.annotation_dir(track) / tasks.TEST_SPLIT_DIR
            / f"{name}.txt")


def track_labels(track: str, person: PersonLabels, protocol: tasks.Protocol) -> np.ndarray:
    """The annotation of one name for one track, with the invalid markers of frames without face or label."""
    invalid = ~person.face | person.missing[track]
    if track == "va":
        lab = person.va.copy()
        lab[invalid] = tasks.VA_INVALID
    elif track == "expr":
        lab = person.expr.copy()
        lab[lab >= protocol.n_expr] = tasks.EXPR_INVALID  # "Other" is not a class before 2022: left unannotated
        lab[invalid] = tasks.EXPR_INVALID
    else:
        lab = person.au.copy()
        lab[invalid] = tasks.AU_INVALID
    return lab


def generate(out: str | Path, videos: int = DEFAULTS["videos"], frames: int = DEFAULTS["frames"], seed: int = 0,
             layout: str = "abaw2021", fps: float = DEFAULTS["fps"], size: tuple[int, int] = DEFAULTS["size"],
             workers: int | None = None, overwrite: bool = False, cues: Cues | dict | None = None) -> dict:
    """Write a synthetic Aff-Wild2 to ``out`` in the real layout (docs/design.md section 1); returns a summary.

    ``layout`` is ``abaw2021`` (7 expressions, ``VA_Set`` ...) or ``abaw2022`` (8 expressions with Other, the
    challenge folder names and the multi-task CSV). ``size`` is (width, height), both even. ``workers`` processes
    render videos in parallel (default: 2 for large sets, 1 for small ones). ``cues`` sets the strength of each
    stream's cues (:class:`abaw.synth.params.Cues`, or a dict of its fields). The test names' labels are written
    under ``out/test_labels/`` (:func:`test_labels_path`).
    """
    cues = make_cues(cues)
    if layout not in tasks.LAYOUTS:
        raise AbawError(f"unknown layout {layout!r}; choose one of {', '.join(tasks.LAYOUTS)}")
    width, height = int(size[0]), int(size[1])
    if videos < 1 or frames < 8:
        raise AbawError(f"need at least 1 video of at least 8 frames (got {videos} videos of {frames} frames)")
    if width % 2 or height % 2 or width < 96 or height < 72:
        raise AbawError(f"size must be even and at least 96x72 (got {width}x{height})")
    if not 1.0 <= fps <= 120.0:
        raise AbawError(f"fps must be between 1 and 120 (got {fps})")
    protocol = tasks.get_protocol("abaw2022" if layout == "abaw2022" else "abaw2021")
    out = Path(out)
    _prepare_out(out, overwrite)
    started = time.perf_counter()

    rng = np.random.default_rng([seed, 0x5EED])
    two: set[int] = set()
    if videos >= 3:  # about one in eight videos shows two people
        two = {int(i) for i in rng.choice(videos, size=max(1, int(round(0.12 * videos))), replace=False)}
    specs = [VideoSpec(video=_video_name(i, fps, width, height), seed=(seed, i), frames=frames, fps=fps, width=width,
                       height=height, two_person=i in two, cues=cues)
             for i in range(videos)]
    member = _draw_tracks(rng, videos)
    split = _plan_splits(rng, np.stack([label_profile(s, m) for s, m in zip(specs, member, strict=True)]),
                         first={min(two): "train"} if two else None)
    _repair_tracks(rng, member, split)
    labelled = [i for i in range(videos) if split[i] != "test"]
    # guarantee frames without a face in both labelled splits, even for tiny sets
    for s in ("train", "validation"):
        if s in split:
            specs[min(i for i in labelled if split[i] == s)].force_noface = True
    for spec in specs:
        spec.names = names_for(spec.video, spec.two_person)

    if workers is None:
        workers = min(2, os.cpu_count() or 1) if videos * frames >= 2000 else 1
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(render_video, [out] * videos, specs))
    else:
        results = [render_video(out, s) for s in specs]

    counts = {t: {"train": 0, "validation": 0, "test": 0} for t in tasks.TRACKS}
    frames_valid = {t: {"train": 0, "validation": 0} for t in tasks.TRACKS}
    test_names: dict[str, list[str]] = {t: [] for t in tasks.TRACKS}
    mtl: dict[str, list] = {"train": [], "validation": []}
    for i, people in enumerate(results):
        for person in people:
            if split[i] == "test":
                for t in sorted(member[i]):
                    test_names[t].append(person.name)
                    counts[t]["test"] += 1
                    write_annotation(test_labels_path(out, t, person.name, protocol), t,
                                     track_labels(t, person, protocol), protocol)
                continue
            per_track = {}
            for t in tasks.TRACKS:
                lab = track_labels(t, person, protocol)
                per_track[t] = lab
                if t not in member[i]:
                    continue
                path = (out / ANNOTATIONS_DIR / protocol.annotation_dir(t) / tasks.SPLIT_DIRS[split[i]]
                        / f"{person.name}.txt")
                write_annotation(path, t, lab, protocol)
                counts[t][split[i]] += 1
                valid = lab != tasks.INVALID[t] if lab.ndim == 1 else (lab != tasks.INVALID[t]).all(axis=1)
                frames_valid[t][split[i]] += int(valid.sum())
            if layout == "abaw2022":
                fr = np.flatnonzero(person.face)
                va = per_track["va"] if "va" in member[i] else np.full((frames, 2), tasks.VA_INVALID)
                ex = per_track["expr"] if "expr" in member[i] else np.full(frames, tasks.EXPR_INVALID)
                au = per_track["au"] if "au" in member[i] else np.full((frames, 12), tasks.AU_INVALID)
                mtl[split[i]].append((person.name, fr + 1, va[fr], ex[fr], au[fr]))
    for t in tasks.TRACKS:
        write_text(out / TEST_SET_DIR / f"{t}.txt", "".join(f"{name}\n" for name in test_names[t]))
    if layout == "abaw2022":
        for s, rows in mtl.items():
            write_mtl(out / ANNOTATIONS_DIR / MTL_DIR / tasks.MTL_FILES[s], rows, protocol)

    n_faces = sum(int(p.face.sum()) for people in results for p in people)
    summary = {
        "out": str(out), "layout": layout, "protocol": protocol.name, "seed": seed, "videos": videos,
        "frames_per_video": frames, "fps": fps, "size": [width, height],
        "two_person_videos": sorted(specs[i].video for i in two),
        "names": sum(len(s.names) for s in specs),
        "face_frames": n_faces, "name_frames": sum(len(s.names) for s in specs) * frames,
        "splits": {specs[i].video: split[i] for i in range(videos)},
        "tracks": {specs[i].video: sorted(member[i]) for i in range(videos)},
        "annotation_files": counts, "valid_label_frames": frames_valid,
        "test_labels": str(out / TEST_LABELS_DIR), "cues": cues.to_dict(),
        "seconds": round(time.perf_counter() - started, 2),
    }
    write_json(out / tasks.SYNTH_SUMMARY_FILE, summary)
    log.debug("synthetic Aff-Wild2: %d videos x %d frames (%s) in %s in %.1f s", videos, frames, layout, out,
             summary["seconds"])
    return summary

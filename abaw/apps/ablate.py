"""``abaw ablate``: the ablations the README reports, over seeds, as one resumable command that writes their table.

The ablation set is data (:data:`VARIANTS`): each variant is a shipped preset plus overrides, trained per track and per
seed in cached mode on one data root. Streams alone against fused (early and late fusion), per-frame against GRU against
the CNU_ADL temporal statistics fitted on the per-frame runs, and the transformer temporal model (face alone and the
four streams) when its preset is shipped. Every run folder lives under ``OUT/runs/<track>/<variant>/`` and is reused
when a finished run of the same config hash (the seed included) on the same dataset is there, so a killed ablation
started again trains only what is missing (a stopped training run resumes from its last checkpoint). Each run's test
result files are scored against the hidden test labels when the data root has them (``ROOT/test_labels``, or
``--test-labels``), into its ``scores_test.json``. The table (mean ± sample std over seeds, validation and test) goes to
a markdown file and, with ``readme``, replaces the block between :data:`START` and :data:`END` in that file, atomically.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from abaw.apps.image_backbones import RANDOM_BACKBONE, with_available_weights
from abaw.apps.session import exclusive, temporary_env
from abaw.errors import AbawError
from abaw.fileio import write_json, write_text
from abaw.presets import find_preset
from abaw.runs import database
from abaw.runs.info import config_hash, read_json, read_run_info
from abaw.runs.seeds import config_seed
from abaw.runs.test_scores import has_test_score, write_test_score
from abaw.tasks import DEFAULT_PROTOCOL, ENCODED_STREAMS, TEST_SPLIT, TRACKS

if TYPE_CHECKING:
    import numpy as np

    from abaw.runs.compare import Difference

log = logging.getLogger(__name__)

START = "<!-- ablation:start -->"
END = "<!-- ablation:end -->"
#: Where ``abaw demo --out D`` leaves its face CNN pretrained on synthetic AffectNet, relative to its data root D/data.
DEMO_FACE_CNN = Path("..") / "pretrain"
DEFAULT_TRACKS: tuple[str, ...] = ("va", "expr")


@dataclass(frozen=True)
class Variant:
    """One row of the ablation table: a preset (``{track}`` is replaced by the track) plus dotted overrides."""

    name: str
    title: str
    block: str  # what the row is compared with: streams, fusion, temporal
    preset: str
    overrides: dict[str, Any] = field(default_factory=dict)
    kind: str = "train"  # train, or temporal (fitted on the runs of ``source``, seed by seed)
    source: str | None = None
    optional: bool = False  # left out when its preset is not shipped

    def preset_name(self, track: str) -> str:
        return self.preset.format(track=track)


_ALL = list(ENCODED_STREAMS)
VARIANTS: tuple[Variant, ...] = (
    Variant("face", "face alone (GRU)", "streams", "demo_{track}"),
    Variant("body", "body alone", "streams", "demo_{track}", {"data.streams": ["body"]}),
    Variant("context", "context alone", "streams", "demo_{track}", {"data.streams": ["context"]}),
    Variant("audio", "audio alone", "streams", "demo_{track}", {"data.streams": ["audio"]}),
    Variant("early_fusion", "four streams, early fusion", "fusion", "demo_{track}",
            {"data.streams": _ALL, "model.name": "demo_multistream"}),
    Variant("late_fusion", "four streams, late attention fusion", "fusion", "demo_{track}",
            {"data.streams": _ALL, "model.name": "demo_multistream", "model.kwargs.fusion": "late",
             "model.kwargs.late_fusion": "attention"}),
    Variant("late_fusion_heads", "four streams, late attention fusion, per-stream heads", "fusion", "demo_{track}",
            {"data.streams": _ALL, "model.name": "demo_multistream", "model.kwargs.fusion": "late",
             "model.kwargs.late_fusion": "attention", "model.kwargs.stream_heads": 1.0}),
    Variant("late_fusion_heads_dropout", "four streams, late attention fusion, per-stream heads, stream dropout 0.3",
            "fusion", "demo_{track}",
            {"data.streams": _ALL, "model.name": "demo_multistream", "model.kwargs.fusion": "late",
             "model.kwargs.late_fusion": "attention", "model.kwargs.stream_heads": 1.0,
             "model.kwargs.stream_dropout": 0.3}),
    Variant("face_audio", "face + audio, late attention fusion", "fusion", "demo_{track}",
            {"data.streams": ["face", "audio"], "model.name": "demo_multistream", "model.kwargs.fusion": "late",
             "model.kwargs.late_fusion": "attention"}),
    Variant("transformer_fusion", "four streams, temporal transformer", "fusion", "transformer_{track}",
            {"data.streams": _ALL}, optional=True),
    Variant("per_frame", "face, per-frame (no RNN)", "temporal", "demo_{track}", {"model.kwargs.num_layers": 0}),
    Variant("temporal_stats", "face per-frame + temporal statistics (CNU_ADL)", "temporal", "cnu_adl_temporal",
            kind="temporal", source="per_frame"),
    Variant("transformer", "face, temporal transformer", "temporal", "transformer_{track}", optional=True),
)


def variant_names() -> list[str]:
    return [v.name for v in VARIANTS]


def select_variants(names: list[str] | None = None, tracks: tuple[str, ...] = DEFAULT_TRACKS
                    ) -> list[Variant]:
    """The variants asked for (all by default), with the sources of temporal ones added; an optional variant whose
    preset is not shipped for every track is left out (named ones are errors)."""
    by_name = {v.name: v for v in VARIANTS}
    unknown = [n for n in names or [] if n not in by_name]
    if unknown:
        raise AbawError(f"unknown ablation variant(s) {', '.join(unknown)}; choose from {', '.join(by_name)}")
    wanted = set(names or by_name)
    wanted |= {by_name[n].source for n in wanted if by_name[n].source}
    chosen = []
    for variant in VARIANTS:
        if variant.name not in wanted:
            continue
        if variant.optional:
            try:
                for track in tracks:
                    find_preset(variant.preset_name(track))
            except AbawError:
                if names and variant.name in names:
                    raise
                log.info("ablation variant %s left out: no preset %s", variant.name, variant.preset)
                continue
        chosen.append(variant)
    return chosen


@dataclass
class Ablation:
    out: Path
    data_root: Path
    seeds: list[int]
    tracks: tuple[str, ...]
    variants: list[Variant]
    epochs: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # every training variant (e.g. for a quick run)
    pretrained_face: Path | None = None
    test_labels: Path | None = None
    console: Console = field(default_factory=lambda: Console(stderr=True))
    notes: set[str] = field(default_factory=set)

    @property
    def db(self) -> Path:
        return self.out / "abaw.sqlite"

    def folder(self, track: str, variant: Variant) -> Path:
        return self.out / "runs" / track / variant.name

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.add(text)
            self.console.print(f"  [yellow]note[/yellow]: {text}")


# ---- data ----------------------------------------------------------------------------------------------------------

def ensure_data(out: Path, data_root: Path | None, console: Console) -> Path:
    """The data root to ablate on: ``data_root``, or the synthetic default set generated once into ``OUT/data``."""
    if data_root is not None:
        return data_root.resolve()
    root = out / "data"
    if not root.is_dir():
        from abaw.synth.dataset import generate

        partial = out / "data.partial"
        shutil.rmtree(partial, ignore_errors=True)
        console.print(f"generating the synthetic default set into {root} …")
        generate(partial)
        os.replace(partial, root)  # the data root appears whole or not at all
    return root.resolve()


def prepare(root: Path, variants: list[Variant]) -> None:
    """Write the body, context and audio inputs the variants read (finished videos are skipped)."""
    streams = {s for v in variants for s in v.overrides.get("data.streams", ["face"])}
    if not streams - {"face"}:
        return
    from abaw.video.prepare import PrepareOptions, find_videos, prepare_all

    failed = [r for r in prepare_all(find_videos(root), root, PrepareOptions(progress=False)) if r.status == "failed"]
    if failed:
        raise AbawError(f"prepare failed for {len(failed)} video(s); first: {failed[0].reason}", path=root)


def demo_face_cnn(root: Path) -> Path | None:
    """The face CNN ``abaw demo`` pretrained next to this data root (``D/pretrain/face_*_affectnet.pt``), if any."""
    found = sorted((root / DEMO_FACE_CNN).glob("face_*_affectnet.pt"))
    return found[0].resolve() if found else None


def _checkpoint_backbone(path: Path) -> str:
    import torch

    meta = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(meta, dict) or not meta.get("backbone"):
        raise AbawError("not a face CNN checkpoint of abaw pretrain-affectnet (no backbone recorded)", path=path)
    return str(meta["backbone"])


# ---- configs -------------------------------------------------------------------------------------------------------

def train_config(ab: Ablation, track: str, variant: Variant, seed: int) -> dict[str, Any]:
    """The resolved config of one training run: preset, the variant's overrides, the ablation's, track and seed."""
    from abaw.train.config import resolve

    preset = variant.preset_name(track)
    overrides: dict[str, Any] = {"name": f"ablation_{track}_{variant.name}", "data.root": str(ab.data_root),
                                 "data.mode": "cached", "tasks": [track], "train.seed": seed, "train.progress": False,
                                 **variant.overrides, **ab.overrides}
    if ab.epochs is not None:
        overrides["train.epochs"] = ab.epochs
    streams = overrides.get("data.streams") or resolve(find_preset(preset), check_root=False)["data"]["streams"]
    if ab.pretrained_face is not None and "face" in streams:
        overrides["model.kwargs.face_backbone"] = _checkpoint_backbone(ab.pretrained_face)
        overrides["model.kwargs.pretrained_face"] = str(ab.pretrained_face)
    cfg = resolve(find_preset(preset), overrides)
    return with_available_weights(cfg, lambda backbone: ab.note(
        f"no local copy of the ImageNet weights of {backbone} ($ABAW_WEIGHTS_DIR or the weights cache), so the image "
        f"streams using it get a frozen random {RANDOM_BACKBONE}"))


def temporal_config(ab: Ablation, variant: Variant, seed: int) -> dict[str, Any]:
    from abaw.temporal.config import load_config

    overrides: dict[str, Any] = {"seed": seed, **variant.overrides}
    if ab.epochs is not None:
        overrides["epochs"] = ab.epochs
    return load_config(find_preset(variant.preset), overrides)


# ---- runs ----------------------------------------------------------------------------------------------------------

def find_run(folder: Path, cfg: dict[str, Any], fingerprint: str | None) -> tuple[Path | None, bool]:
    """A run folder under ``folder`` of this config (its hash includes the seed) on this dataset: ``(path,
    finished)``; a stopped or killed one with a checkpoint to resume from counts, unfinished."""
    wanted = config_hash(cfg)
    resumable = None
    for run_dir in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        if not (run_dir / "run.json").is_file() or not (run_dir / "config.json").is_file():
            continue
        try:
            info = read_run_info(run_dir)
            same = config_hash(read_json(run_dir / "config.json")) == wanted
        except AbawError:
            continue
        if not same or (fingerprint and info.dataset_fingerprint not in (None, fingerprint)):
            continue
        if info.status == "finished":
            return run_dir, True
        if (run_dir / "checkpoints" / "last.pt").is_file():
            resumable = run_dir
    return resumable, False


def train_run(ab: Ablation, track: str, variant: Variant, seed: int, fingerprint: str | None) -> Path:
    from abaw.train.loop import train

    cfg = train_config(ab, track, variant, seed)
    folder = ab.folder(track, variant)
    found, finished = find_run(folder, cfg, fingerprint)
    if finished:
        return found  # type: ignore[return-value]
    if found is not None:
        ab.console.print(f"  {track} {variant.name} seed {seed}: resuming {found.name}")
        run_dir = Path(train(resume=found, progress=False))
    else:
        ab.console.print(f"  {track} {variant.name} seed {seed}: training …")
        run_dir = Path(train(cfg, out=folder, progress=False))
    status = read_run_info(run_dir).status
    if status != "finished":
        raise AbawError(f"training ended with status {status!r}", path=run_dir)
    return run_dir


def _has_predictions(run_dir: Path, split: str) -> bool:
    from abaw.runs.outputs import load_run

    return load_run(run_dir).predictions_path(split).is_file()


def temporal_run(ab: Ablation, track: str, variant: Variant, seed: int, source: Path) -> Path:
    from abaw.temporal.train import fit_temporal

    config = temporal_config(ab, variant, seed)
    if config.get("fit_on", "train") == "train" and not _has_predictions(source, "train"):
        from abaw.train.evaluate import evaluate_run

        evaluate_run(source, ab.data_root, "train", plots=False)  # the fit's inputs: the source's training outputs
    ab.console.print(f"  {track} {variant.name} seed {seed}: fitting on {source.name} (reused when done) …")
    return Path(fit_temporal(source, config, ab.data_root, ab.folder(track, variant)))


# ---- the hidden test split -----------------------------------------------------------------------------------------

def _test_result_path(run_dir: Path, track: str, protocol: str) -> Path | None:
    from abaw.results import result_path, split_format

    path = result_path(run_dir / "results" / TEST_SPLIT, track, protocol, split_format(TEST_SPLIT, protocol))
    return path if path.exists() else None


def score_test(ab: Ablation, run_dir: Path, track: str, kind: str, source: Path | None = None) -> None:
    """Predict the test names and score them on the hidden labels, once (a scored track is skipped)."""
    if ab.test_labels is None or has_test_score(run_dir, track):
        return
    from abaw.results import score_results

    protocol = read_run_info(run_dir).protocol or DEFAULT_PROTOCOL
    try:
        if _test_result_path(run_dir, track, protocol) is None:
            if kind == "temporal":
                from abaw.temporal.train import predict_temporal

                if source is not None and not _has_predictions(source, TEST_SPLIT):
                    from abaw.train.evaluate import evaluate_run

                    evaluate_run(source, ab.data_root, TEST_SPLIT, plots=False)
                predict_temporal(run_dir, TEST_SPLIT)
            elif kind == "train":  # a baseline writes its test result files when it is made
                from abaw.train.evaluate import evaluate_run

                evaluate_run(run_dir, ab.data_root, TEST_SPLIT, plots=False)
        folder = _test_result_path(run_dir, track, protocol)
        if folder is None:
            raise AbawError("no test result files were written", path=run_dir)
        result = score_results(folder, ab.data_root, TEST_SPLIT, track, protocol, labels=ab.test_labels)
    except AbawError as exc:
        ab.note(f"{run_dir.name}: not scored on the test split: {exc}")
        return
    write_test_score(run_dir, track, result, protocol, ab.test_labels)


# ---- the whole ablation --------------------------------------------------------------------------------------------

def run_all(ab: Ablation) -> dict[str, dict[str, list[Path]]]:
    """Train, fit and score every (track, variant, seed) not done yet; ``{track: {variant: [run_dir per seed]}}``."""
    from abaw.data.affwild2 import dataset_fingerprint
    from abaw.posthoc.baselines import run_baselines

    fingerprint = dataset_fingerprint(ab.data_root)
    runs: dict[str, dict[str, list[Path]]] = {}
    baselines = run_baselines(ab.data_root, ab.out / "runs" / "baselines")
    for track in ab.tracks:
        per_variant: dict[str, list[Path]] = runs.setdefault(track, {})
        if track in baselines:
            per_variant["baseline"] = [Path(baselines[track])]
            score_test(ab, Path(baselines[track]), track, "baseline")
        for variant in ab.variants:
            made = []
            for index, seed in enumerate(ab.seeds):
                if variant.kind == "temporal":
                    source = per_variant[variant.source or ""][index]
                    run_dir = temporal_run(ab, track, variant, seed, source)
                    score_test(ab, run_dir, track, "temporal", source)
                else:
                    run_dir = train_run(ab, track, variant, seed, fingerprint)
                    score_test(ab, run_dir, track, "train")
                made.append(run_dir)
            per_variant[variant.name] = made
    for paths in (p for per in runs.values() for ps in per.values() for p in ps):
        database.record_run(paths, ab.db)
    return runs


# ---- the table -----------------------------------------------------------------------------------------------------

@dataclass
class Row:
    track: str
    name: str
    title: str
    block: str
    streams: list[str]
    model: str | None
    seeds: list[int | None]
    validation: list[float]
    test: list[float]
    fit_uses_validation: bool = False
    #: test score minus the reference variant's, with its bootstrap interval over test videos
    versus: Difference | None = None


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _track_score(path: Path, track: str) -> float | None:
    if not path.is_file():
        return None
    value = ((read_json(path).get("tracks") or {}).get(track) or {}).get("score")
    return None if value is None else float(value)


def _seed(run_dir: Path) -> int | None:
    path = run_dir / "config.json"
    return config_seed(read_json(path)) if path.is_file() else None


def collect(runs: dict[str, dict[str, list[Path]]], variants: list[Variant]) -> list[Row]:
    """One row per (track, variant): the validation and test scores of its runs, from their run folders."""
    by_name = {v.name: v for v in variants}
    test_file = database.SPLIT_SCORE_FILES[TEST_SPLIT]
    rows = []
    for track, per_variant in runs.items():
        for name, run_dirs in per_variant.items():
            variant = by_name.get(name)
            info = read_run_info(run_dirs[0])
            val = [s for d in run_dirs if (s := _track_score(d / "scores.json", track)) is not None]
            test = [s for d in run_dirs if (s := _track_score(d / test_file, track)) is not None]
            on_validation = any(read_run_info(d).extra.get("fit_uses_validation") for d in run_dirs)
            rows.append(Row(track, name, variant.title if variant else "trivial baseline",
                            variant.block if variant else "baseline", info.streams, info.model,
                            [_seed(d) for d in run_dirs], val, test, on_validation))
    return rows


#: The row every other row of a track is compared with, paired on the test videos.
REFERENCE = "face"


def _test_statistics(ab: Ablation, run_dir: Path, track: str) -> np.ndarray | None:
    """The per-video sufficient statistics of a run's test result files (None: not scored on test)."""
    from abaw.results import scored_pairs
    from abaw.runs.compare import video_statistics

    if ab.test_labels is None or not has_test_score(run_dir, track):
        return None
    protocol = read_run_info(run_dir).protocol or DEFAULT_PROTOCOL
    folder = _test_result_path(run_dir, track, protocol)
    if folder is None:
        return None
    proto, pairs = scored_pairs(folder, ab.data_root, TEST_SPLIT, track, protocol, labels=ab.test_labels)
    return video_statistics(track, [(pred, true) for _, pred, true in pairs], proto)


def compare_to_reference(ab: Ablation, runs: dict[str, dict[str, list[Path]]], rows: list[Row]) -> None:
    """Fill each row's ``versus``: its seeds' mean test score minus the face row's, with a paired bootstrap interval
    over the test videos (:mod:`abaw.runs.compare`); rows or runs without test scores are left without."""
    from abaw.runs.compare import paired_difference

    for track, per_variant in runs.items():
        reference = per_variant.get(REFERENCE)
        if not reference:
            continue
        protocol = read_run_info(reference[0]).protocol or DEFAULT_PROTOCOL
        try:
            ref_stats = [_test_statistics(ab, d, track) for d in reference]
            if any(x is None for x in ref_stats):
                continue
            for row in rows:
                if row.track != track or row.name in (REFERENCE, "baseline"):
                    continue
                stats = [_test_statistics(ab, d, track) for d in per_variant[row.name]]
                if stats and all(x is not None for x in stats):
                    row.versus = paired_difference(track, stats, ref_stats, protocol)
        except (AbawError, ValueError) as exc:
            ab.note(f"{track.upper()}: no paired comparison on the test videos: {exc}")


def _versus_cell(diff: Difference | None) -> str:
    if diff is None:
        return "—"
    if diff.n_videos < 2:
        return f"{diff.delta:+.3f} (1 test video)"
    return f"{diff.delta:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}]"


def _cell(values: list[float]) -> str:
    mean, std = _mean_std(values)
    if mean is None:
        return "—"
    return f"{mean:.3f}" + ("" if std is None else f" ± {std:.3f}")


def markdown_table(rows: list[Row], command: str, data_note: str) -> str:
    """The README's ablation table: one line per (track, variant), mean ± sample std over the seeds."""
    from abaw.runs.compare import N_BOOT

    lines = [f"Mean ± sample standard deviation over seeds (n); validation: the best epoch's score on the validation "
             f"split, which also selects it; test: the hidden test split, scored once; vs face: the test score minus "
             f"face alone's (means over seeds), paired on the test videos, with the 95 % interval of "
             f"{N_BOOT} bootstrap draws of those videos (the spread the draw of test people gives; the seed std "
             f"is the spread the draw of a model gives). {data_note} Made by `{command}`.", "",
             "| Track | Comparison | Variant | Streams | Model | n | Validation | Test | vs face [95 % CI] |",
             "|---|---|---|---|---|---:|---:|---:|---:|"]
    for row in rows:
        title = row.title + (" †" if row.fit_uses_validation else "")
        lines.append(f"| {row.track.upper()} | {row.block} | {title} | {'+'.join(row.streams) or '—'} | "
                     f"{row.model or '—'} | {len(row.validation)} | {_cell(row.validation)} | {_cell(row.test)} | "
                     f"{_versus_cell(row.versus)} |")
    if any(row.fit_uses_validation for row in rows):
        lines += ["", "† fitted on validation videos (out of fold): its validation score is not held out from its "
                      "fit the way the others' are; compare on test."]
    return "\n".join(lines) + "\n"


def _block(path: Path) -> tuple[str, int, int]:
    """``path``'s text and where its START and END markers are; a file without exactly one pair is an error."""
    if not path.is_file():
        raise AbawError("file not found", path=path)
    text = path.read_text(encoding="utf-8")
    start, end = text.find(START), text.find(END)
    if start < 0 or end < 0 or end < start or text.count(START) != 1 or text.count(END) != 1:
        raise AbawError(f"needs one {START} line and one {END} line after it, around the table", path=path)
    return text, start, end


def replace_block(path: Path, table: str) -> None:
    """Replace the text between the START and END marker lines of ``path`` with ``table``, atomically."""
    text, start, end = _block(path)
    write_text(path, f"{text[: start + len(START)]}\n{table}{text[end:]}")


def rows_json(rows: list[Row]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        val_mean, val_std = _mean_std(row.validation)
        test_mean, test_std = _mean_std(row.test)
        versus = dataclasses.asdict(row.versus) if row.versus is not None else None
        out.append({**row.__dict__, "versus": versus, "validation_mean": val_mean, "validation_std": val_std,
                    "test_mean": test_mean, "test_std": test_std})
    return out


def run_ablation(out: str | Path, data_root: str | Path | None = None, seeds: list[int] | None = None,
                 tracks: tuple[str, ...] = DEFAULT_TRACKS, variants: list[str] | None = None,
                 epochs: int | None = None, overrides: dict[str, Any] | None = None,
                 pretrained_face: str | Path | None = "auto", test_labels: str | Path | None = None,
                 table: str | Path | None = None, readme: str | Path | None = None, command: str | None = None,
                 console: Console | None = None) -> dict[str, Any]:
    """Run (or resume) the ablation and write its table; returns the rows and where the table went."""
    from abaw.synth.dataset import TEST_LABELS_DIR

    out = Path(out).resolve()
    console = console or Console(stderr=True)
    unknown = [t for t in tracks if t not in TRACKS]
    if unknown:
        raise AbawError(f"unknown track(s) {', '.join(unknown)}; choose from {', '.join(TRACKS)}")
    chosen = select_variants(variants, tracks)
    # what the user named is checked before anything is made (and before hours of training, for the README)
    if readme is not None:
        _block(Path(readme))
    if data_root is not None and not Path(data_root).is_dir():
        raise AbawError("data root not found", path=data_root)
    if pretrained_face not in (None, "auto", "none") and not Path(pretrained_face).is_file():
        raise AbawError("face CNN checkpoint not found", path=pretrained_face)
    if test_labels is not None and not Path(test_labels).is_dir():
        raise AbawError("test label root not found", path=test_labels)
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out, "abaw ablate"), temporary_env(ABAW_DB=str(out / "abaw.sqlite"), ABAW_OFFLINE="1"):
        root = ensure_data(out, Path(data_root) if data_root is not None else None, console)
        face = demo_face_cnn(root) if pretrained_face == "auto" else (
            None if pretrained_face in (None, "none") else Path(pretrained_face).resolve())
        labels = Path(test_labels).resolve() if test_labels is not None else root / TEST_LABELS_DIR
        ab = Ablation(out, root, list(seeds or [0, 1, 2]), tuple(tracks), chosen, epochs, dict(overrides or {}),
                      face, labels if labels.is_dir() else None, console)
        if ab.test_labels is None:
            ab.note(f"no hidden test labels ({labels}): the test column stays empty")
        console.print(f"ablation on {root}: {len(chosen)} variants x {len(ab.tracks)} tracks x {len(ab.seeds)} seeds"
                      + (f"; face CNN {face}" if face else "; face CNN: the preset's"))
        prepare(root, chosen)
        runs = run_all(ab)
    rows = collect(runs, chosen)
    compare_to_reference(ab, runs, rows)
    from abaw.data.affwild2 import dataset_fingerprint

    fingerprint_note = f"Data: dataset `{dataset_fingerprint(root)[:12]}` ({_describe(root)})."
    text = markdown_table(rows, command or "abaw ablate", fingerprint_note)
    table_path = Path(table) if table is not None else out / "ablation.md"
    write_text(table_path, text)
    write_json(out / "ablation.json", {"rows": rows_json(rows), "seeds": ab.seeds, "data_root": str(root)})
    if readme is not None:
        replace_block(Path(readme), text)
    return {"rows": rows, "table": str(table_path), "markdown": text, "readme": str(readme) if readme else None,
            "runs": {t: {v: [str(p) for p in ps] for v, ps in per.items()} for t, per in runs.items()}}


def _describe(root: Path) -> str:
    """How many videos per split of each track, in a few words."""
    from abaw.data.affwild2 import AffWild2

    ds = AffWild2(root)
    parts = []
    for split, track in ds.available():
        parts.append(f"{track.upper()} {split} {len(ds.entries(split, track))}")
    return ", ".join(parts) + " names"

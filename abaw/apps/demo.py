"""``abaw demo``: the whole job on an embedded synthetic Aff-Wild2, as resumable stages.

synth -> baselines -> prepare -> pretrain (the face CNN on a synthetic AffectNet-format set) -> extract -> train (per
track, multi-task; their face stream starts from the pretrained CNN) -> evaluate (training split for the temporal
model, test set for every trained run) -> temporal -> ensemble -> test (every run's test result files scored on the
synthetic set's hidden test labels; selection stays on validation) -> submissions (validated test-set result files of
the best run per track that predicts the test set) -> leaderboard (terminal and HTML, validation and test columns).

Every stage writes its completion marker ``OUT/stages/<stage>.json`` last (atomically), holding what later stages
need (e.g. the run folders it made). A stage whose marker exists is skipped, so a demo killed midway and started again
finishes without redoing finished stages; a stage that runs again first removes its own leftovers, and once it has
finished, the markers of the stages that read its outputs (their inputs changed, so they run again). A stage whose
inputs come from a stage that did not finish is skipped with a message and no marker, and a stage that fails is
reported without a marker; both run again on the next start. The heavy modules (torch, the trainers) are imported
inside the stages that use them, so a demo whose stages are done starts quickly.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from abaw.apps.image_backbones import RANDOM_BACKBONE, with_available_weights
from abaw.apps.session import exclusive, temporary_env
from abaw.errors import AbawError
from abaw.fileio import write_json
from abaw.presets import find_preset
from abaw.runs import database, leaderboard
from abaw.runs.info import read_json, read_run_info
from abaw.tasks import DEFAULT_PROTOCOL, TRACKS, get_protocol, split_two_person
from abaw.train.config import resolve

#: Summary key of a stage that finished with a part failing: its results are used, and it runs again next time.
INCOMPLETE = "incomplete"


class StageSkipped(Exception):
    """A stage cannot run yet (an input stage did not finish); the demo goes on without it."""


@dataclass(frozen=True)
class DemoSize:
    """How big the demo is. ``None`` keeps the default of the called module (synth size, preset epochs)."""

    videos: int | None = None
    frames: int | None = None
    epochs: int | None = None
    temporal_epochs: int | None = None
    #: Synthetic AffectNet-format images and epochs of the face CNN's pretraining.
    pretrain_images: int = 4000
    pretrain_epochs: int = 10


FULL = DemoSize()
#: --quick shrinks the data (feature extraction dominates the time); training keeps the presets' epochs, and the
#: face CNN's pretraining its full size (under a minute; on the small quick set it matters most).
QUICK = DemoSize(videos=12, frames=80)

#: The face CNN pretrained on synthetic AffectNet (expression + valence/arousal) that every demo run's face stream
#: starts from, in place of the presets' ImageNet CNN (the demo never downloads ImageNet weights).
PRETRAIN_BACKBONE = "tiny_cnn"
PRETRAIN_TASKS = ("expr", "va")


@dataclass
class Demo:
    out: Path
    submissions: Path
    seed: int = 0  # the seed of every training of a track model
    quick: bool = False
    size: DemoSize = FULL
    #: Seed of the instrument: the synthetic videos, and the face CNN pretrained on synthetic AffectNet (images and
    #: training), which plays the part of downloaded pretrained weights. It stays the same when only ``seed`` changes,
    #: so the spread over ``seed`` is the noise of training the track models alone.
    data_seed: int = 0
    protocol: str = DEFAULT_PROTOCOL
    console: Console = field(default_factory=leaderboard.make_console)
    notes: set[str] = field(default_factory=set)

    @property
    def data_root(self) -> Path:
        return self.out / "data"

    @property
    def runs(self) -> Path:
        return self.out / "runs"

    @property
    def db(self) -> Path:
        return self.out / "abaw.sqlite"

    @property
    def html(self) -> Path:
        return self.out / "leaderboard.html"

    @property
    def stages_dir(self) -> Path:
        return self.out / "stages"

    def marker(self, stage: str) -> Path:
        return self.stages_dir / f"{stage}.json"

    def done(self, stage: str, complete: bool = False) -> dict[str, Any] | None:
        """The summary a finished stage left in its marker, or None; with ``complete``, None also for a stage that
        finished with a part failing (it is tried again on the next run)."""
        path = self.marker(stage)
        if not path.is_file():
            return None
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))["summary"]
        except (json.JSONDecodeError, KeyError, UnicodeDecodeError, TypeError):
            return None  # a damaged marker means the stage did not finish
        return None if complete and summary.get(INCOMPLETE) else summary

    def need(self, stage: str) -> dict[str, Any]:
        summary = self.done(stage)
        if summary is None:
            raise StageSkipped(f"needs stage '{stage}', which has not run")
        return summary


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    run: Callable[[Demo], dict[str, Any]]
    #: Paths (relative to OUT) the stage writes, removed before it runs again.
    outputs: tuple[str, ...] = ()
    #: Stages whose outputs it reads (when they ran): re-running one of those re-runs this stage too.
    after: tuple[str, ...] = ()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


# ---- stages --------------------------------------------------------------------------------------------------------

def stage_synth(demo: Demo) -> dict[str, Any]:
    from abaw.synth.dataset import generate

    kwargs: dict[str, Any] = {"seed": demo.data_seed}
    if demo.size.videos is not None:
        kwargs["videos"] = demo.size.videos
    if demo.size.frames is not None:
        kwargs["frames"] = demo.size.frames
    partial = demo.out / "data.partial"
    _remove(partial)
    summary = generate(partial, **kwargs)
    os.replace(partial, demo.data_root)  # the data root appears whole or not at all
    return {"data_root": str(demo.data_root), "generate": kwargs, "synth": _jsonable(summary)}


def stage_baselines(demo: Demo) -> dict[str, Any]:
    from abaw.posthoc.baselines import run_baselines

    demo.need("synth")
    run_dirs = run_baselines(demo.data_root, demo.runs / "baselines", protocol=demo.protocol)
    runs = {track: str(path) for track, path in run_dirs.items()}
    for path in runs.values():
        database.record_run(path, demo.db)
    return {"runs": runs}


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """One torch thread, as the demo presets train with (the same numbers on any machine, 2 cores shared)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def stage_pretrain(demo: Demo) -> dict[str, Any]:
    """Generate a synthetic AffectNet-format set and pretrain the face CNN on it (expression + valence/arousal)."""
    import torch

    from abaw.synth.affectnet import generate_affectnet
    from abaw.train.pretrain import PretrainConfig, pretrain_affectnet

    folder = demo.out / "pretrain"
    data, partial = folder / "affectnet", folder / "affectnet.partial"
    wanted = {"images": demo.size.pretrain_images, "seed": demo.data_seed}
    made = data / "synth_affectnet.json"
    try:
        old = json.loads(made.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        old = {}
    if {k: old.get(k) for k in wanted} != wanted:  # a set from a killed run is kept; any other is made again
        _remove(data)
        _remove(partial)
        generate_affectnet(partial, **wanted)
        os.replace(partial, data)
    cfg = PretrainConfig(data=data, backbone=PRETRAIN_BACKBONE, out=folder / f"face_{PRETRAIN_BACKBONE}_affectnet.pt",
                         tasks=PRETRAIN_TASKS, epochs=demo.size.pretrain_epochs, seed=demo.data_seed)
    with _torch_threads(1):  # resumes from its per-epoch state file after a kill; a finished checkpoint is kept
        pretrain_affectnet(cfg)
    # The checkpoint itself says which backbone it holds and how it scored (also when it was finished before a kill).
    meta = torch.load(cfg.out, map_location="cpu", weights_only=True)
    summary: dict[str, Any] = {"checkpoint": str(cfg.out), "backbone": meta["backbone"], "tasks": list(cfg.tasks),
                               "images": wanted["images"], "epochs": cfg.epochs, "best_epoch": meta.get("best_epoch")}
    best = next((h for h in meta.get("history") or [] if h.get("epoch") == meta.get("best_epoch")), None)
    if best:
        summary["validation"] = {k[4:]: v for k, v in best.items() if k.startswith("val_")}
        demo.console.print("  face CNN on synthetic AffectNet, best epoch {}: {}".format(
            best["epoch"], ", ".join(f"{k} {v:.3f}" for k, v in summary["validation"].items())))
    return summary


#: The demo presets (``configs/<name>.json``), one training stage each.
DEMO_PRESETS: dict[str, str] = {"va": "demo_va", "expr": "demo_expr", "au": "demo_au", "multitask": "demo_multitask"}
TEMPORAL_PRESET = "cnu_adl_temporal"


def stage_prepare(demo: Demo) -> dict[str, Any]:
    from abaw.video.prepare import PrepareOptions, find_videos, prepare_all

    demo.need("synth")
    # The synthetic set has ground-truth boxes and crops, so no detector runs: prepare writes body/context/audio.
    results = prepare_all(find_videos(demo.data_root), demo.data_root, PrepareOptions(progress=False))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise AbawError(f"prepare failed for {len(failed)} video(s); first: {failed[0].reason}", path=demo.data_root)
    return {"videos": len(results), "done": sum(r.status == "done" for r in results)}


def _train_config(demo: Demo, preset: str) -> dict[str, Any]:
    overrides: dict[str, Any] = {"data.root": str(demo.data_root), "train.seed": demo.seed,
                                 "train.progress": False}
    if demo.size.epochs is not None:
        overrides["train.epochs"] = demo.size.epochs
    pretrained = demo.done("pretrain")
    if pretrained:  # the face stream starts from the CNN pretrained on synthetic AffectNet; other streams unchanged
        overrides["model.kwargs.face_backbone"] = pretrained["backbone"]
        overrides["model.kwargs.pretrained_face"] = pretrained["checkpoint"]
    cfg = resolve(find_preset(preset), overrides)

    def missing(backbone: str) -> None:
        if preset not in demo.notes:
            demo.notes.add(preset)
            demo.console.print(f"  [yellow]note[/yellow]: {preset}: no local copy of the ImageNet weights of "
                               f"{backbone} ($ABAW_WEIGHTS_DIR or the weights cache; the demo never downloads), so "
                               f"the streams using it get a frozen random {RANDOM_BACKBONE}")

    # The preset's ImageNet CNN still serves the image streams without a backbone of their own (all of them without
    # the pretrain stage; all but the face with it).
    return with_available_weights(cfg, missing)


def _extract(demo: Demo, cfg: dict[str, Any]) -> dict[str, Any]:
    """Cache the features a cached-mode config reads (complete files are skipped, so this is cheap when done)."""
    if cfg["data"]["mode"] != "cached":
        return {}
    from abaw.train.checkpoint import model_from_config
    from abaw.train.extract import extract_features

    return extract_features(cfg, model_from_config(cfg), batch_size=cfg["data"]["extract_batch_size"], progress=False)


def stage_extract(demo: Demo) -> dict[str, Any]:
    demo.need("prepare")
    done = {preset: _jsonable(_extract(demo, _train_config(demo, preset))) for preset in DEMO_PRESETS.values()}
    return {"presets": done}


def _train_stage(key: str) -> Callable[[Demo], dict[str, Any]]:
    preset = DEMO_PRESETS[key]

    def run(demo: Demo) -> dict[str, Any]:
        from abaw.train.loop import train

        demo.need("prepare")
        cfg = _train_config(demo, preset)  # in cached mode the trainer extracts whatever features are missing
        run_dir = Path(train(cfg, out=demo.runs / "train" / key, progress=False))
        info = read_run_info(run_dir)
        if info.status != "finished":
            raise AbawError(f"training of {preset} ended with status {info.status!r}", path=run_dir)
        return {"runs": {key: str(run_dir)}, "preset": preset, "score": info.score}

    return run


def _train_runs(demo: Demo) -> dict[str, str]:
    """Finished training runs by preset key (va, expr, au, multitask)."""
    runs = {}
    for key in DEMO_PRESETS:
        summary = demo.done(f"train_{key}")
        if summary:
            runs[key] = summary["runs"][key]
    return runs


def _temporal_source(demo: Demo) -> str:
    runs = _train_runs(demo)
    for key in ("multitask", "expr"):  # the CNU_ADL model works from expression probabilities and embeddings
        if key in runs:
            return runs[key]
    raise StageSkipped("needs the multi-task or the EXPR training run")


def stage_evaluate(demo: Demo) -> dict[str, Any]:
    from abaw.train.evaluate import evaluate_run

    source = _temporal_source(demo)
    # Validation outputs come with training; the temporal model also needs the training split's.
    result = evaluate_run(source, demo.data_root, "train", plots=False)
    # Challenge result files: every trained run on the test set (test_set/<track>.txt, no labels).
    test: dict[str, Any] = {}
    for key, run_dir in _train_runs(demo).items():
        test[key] = {t: info["files"] for t, info in evaluate_run(run_dir, demo.data_root, "test")["tracks"].items()}
    return {"source": source, "train_score": result.get("score"), "test": test}


def stage_temporal(demo: Demo) -> dict[str, Any]:
    from abaw.temporal.train import fit_temporal, load_config, predict_temporal

    evaluated = demo.need("evaluate")
    overrides: dict[str, Any] = {"seed": demo.seed}
    if demo.size.temporal_epochs is not None:
        overrides["epochs"] = demo.size.temporal_epochs
    config = load_config(find_preset(TEMPORAL_PRESET), overrides)
    run_dir = fit_temporal(evaluated["source"], config, demo.data_root, out_dir=demo.runs / "temporal")
    test = _on_test_set(demo, "temporal model", predict_temporal, run_dir)
    return {"runs": {"temporal": str(run_dir)}, "source": evaluated["source"], "test": test}


def _on_test_set(demo: Demo, what: str, predict: Callable[[str | Path, str], Any], run_dir: str | Path) -> bool:
    """Predict the test set with a fitted run; a failure is said and leaves the run without test result files."""
    try:
        predict(run_dir, "test")
    except AbawError as exc:
        demo.console.print(f"  [yellow]the {what} did not predict the test set[/yellow]: {exc}")
        return False
    return True


def _scored_tracks(run_dir: str) -> set[str]:
    path = Path(run_dir) / "scores.json"
    if not path.is_file():
        return set()
    return set(read_json(path).get("tracks") or {})


def _validation_videos(demo: Demo, track: str) -> int:
    from abaw.data.affwild2 import AffWild2

    entries = AffWild2(demo.data_root, protocol=demo.protocol).entries("validation", track)
    return len({split_two_person(e.name)[0] for e in entries})


def stage_ensemble(demo: Demo) -> dict[str, Any]:
    from abaw.posthoc.ensemble import apply_ensemble, ensemble_runs

    candidates = list(_train_runs(demo).values())
    temporal = demo.done("temporal")
    if temporal:
        candidates.append(temporal["runs"]["temporal"])
    runs: dict[str, str] = {}
    scores: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for track in TRACKS:
        members = [r for r in candidates if track in _scored_tracks(r)]
        if len(members) < 2:
            continue
        # Smoothing is tuned by cross-validation grouped by video: it needs two validation videos at least.
        smooth = _validation_videos(demo, track) >= 2
        try:
            report = ensemble_runs(members, track, "mean", smooth=smooth, data_root=demo.data_root,
                                   out_dir=demo.runs / "ensemble")
        except AbawError as exc:  # one track's fusion failing must not stop the demo: say so, and retry next time
            demo.console.print(f"  [yellow]ensemble of the {track.upper()} runs failed[/yellow]: {exc}")
            failed[track] = str(exc)
            continue
        runs[track] = str(report.run_dir)
        scores[track] = {"members": report.member_scores, "fused": report.final_score, "smoothed": smooth,
                         "test": _on_test_set(demo, f"{track.upper()} ensemble", apply_ensemble, report.run_dir)}
    if not runs and not failed:
        raise StageSkipped("no track has two scored runs to fuse yet")
    return {"runs": runs, "scores": scores, "failed": failed, INCOMPLETE: bool(failed)}


def _test_folder(run_dir: Path, track: str, protocol: str) -> Path | None:
    from abaw.results import result_path, split_format

    path = result_path(run_dir / "results" / "test", track, protocol, split_format("test", protocol))
    return path if path.exists() else None


def stage_test(demo: Demo) -> dict[str, Any]:
    """Score every run's test result files against the synthetic set's hidden test labels (``data/test_labels``,
    which no training or evaluation reads) and write them to the run's ``scores_test.json`` (the shape of
    ``scores.json``), which the runs database and the leaderboard show next to the validation score."""
    from abaw.results import score_results
    from abaw.synth.dataset import TEST_LABELS_DIR

    labels = demo.data_root / TEST_LABELS_DIR
    if not labels.is_dir():
        raise StageSkipped(f"the data root has no hidden test labels ({labels})")
    scored: dict[str, dict[str, float]] = {}
    for run in _all_runs(demo):
        run_dir = Path(run)
        info = read_run_info(run_dir)
        protocol = info.protocol or demo.protocol
        tracks: dict[str, Any] = {}
        for track in _scored_tracks(run):
            folder = _test_folder(run_dir, track, protocol)
            if folder is None:
                continue
            result = score_results(folder, demo.data_root, "test", track, protocol, labels=labels)
            tracks[track] = {k: v for k, v in result.items() if k not in ("split", "n_videos")}
        if tracks:
            write_json(run_dir / "scores_test.json", {"split": "test", "protocol": protocol, "tracks": tracks,
                                                      "score": sum(t["score"] for t in tracks.values())})
            scored[run] = {track: t["score"] for track, t in tracks.items()}
    if not scored:
        raise StageSkipped("no run has test result files yet")
    selected = _selected(demo, scored)
    for track, pick in selected.items():
        demo.console.print(f"  {track.upper():4s} selected on validation: {pick['kind']} {pick['model']} "
                           f"validation {pick['validation']:.4f}, test {pick['test']:.4f}")
    return {"runs": {}, "test_scores": scored, "selected": selected}


def _selected(demo: Demo, test: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Per track, the run with the best validation score among those scored on test, and both its scores."""
    out: dict[str, dict[str, Any]] = {}
    for run, tracks in test.items():
        run_dir = Path(run)
        scores = read_json(run_dir / "scores.json").get("tracks") or {} if (run_dir / "scores.json").is_file() else {}
        info = read_run_info(run_dir)
        for track, test_score in tracks.items():
            val = (scores.get(track) or {}).get("score")
            if val is None:
                continue
            if track not in out or val > out[track]["validation"]:
                out[track] = {"run": run, "kind": info.kind, "model": info.model, "validation": float(val),
                              "test": float(test_score)}
    return out


def _all_runs(demo: Demo) -> list[str]:
    """Every run folder the finished stages made, in stage order."""
    runs: list[str] = []
    for stage in STAGES:
        summary = demo.done(stage.name)
        if not summary:
            continue
        for value in (summary.get("runs") or {}).values():
            for path in (value if isinstance(value, list) else [value]):
                if path and path not in runs:
                    runs.append(path)
    return runs


def _ranked_runs(demo: Demo) -> dict[str, list[database.Entry]]:
    """The recorded demo runs per track (on the demo's dataset), best validation score first, from the database."""
    mine = {str(Path(p).resolve()) for p in _all_runs(demo)}
    ranked: dict[str, list[database.Entry]] = {}
    for group in leaderboard.rank_entries(database.query_entries(demo.db)):
        for item in group.entries:
            entry = item.entry
            if entry.run_dir in mine and entry.score is not None:
                ranked.setdefault(group.track, []).append(entry)
    return ranked


def _result_folder(run_dir: Path, track: str, protocol: str, split: str) -> Path | None:
    """The run's result folder of ``track`` on ``split``, if it wrote one."""
    candidate = run_dir / "results" / split / get_protocol(protocol).annotation_dir(track)
    return candidate if candidate.is_dir() and any(candidate.glob("*.txt")) else None


def _submission_source(entries: list[database.Entry], track: str, default_protocol: str
                       ) -> tuple[database.Entry, Path, str] | None:
    """What to submit for ``track``: the best-scoring run that has test result files (a challenge takes test
    predictions only), else the best run's validation files."""
    for entry in entries:
        folder = _result_folder(Path(entry.run_dir), track, entry.protocol or default_protocol, "test")
        if folder is not None:
            return entry, folder, "test"
    if entries:
        best = entries[0]
        folder = _result_folder(Path(best.run_dir), track, best.protocol or default_protocol, "validation")
        if folder is not None:
            return best, folder, "validation"
    return None


def stage_submissions(demo: Demo) -> dict[str, Any]:
    from abaw.results import validate_submission, zip_submission

    demo.need("synth")
    ranked = _ranked_runs(demo)
    if not ranked:
        raise StageSkipped("no scored run to submit yet")
    demo.submissions.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    for track in TRACKS:
        found = _submission_source(ranked.get(track, []), track, demo.protocol)
        if found is None:
            continue
        entry, source, split = found
        protocol = entry.protocol or demo.protocol
        target = demo.submissions / source.name
        partial = demo.submissions / f".{source.name}.partial"
        _remove(partial)
        shutil.copytree(source, partial)
        problems = validate_submission(partial, demo.data_root, split, track, protocol)
        if problems:
            raise AbawError(f"the {track.upper()} result files of run {entry.run_id} do not validate: "
                            + "; ".join(problems[:3]), path=source)
        _remove(target)
        os.replace(partial, target)
        zip_path = zip_submission(target, demo.submissions / f"{source.name}.zip")
        out[track] = {"run_id": entry.run_id, "kind": entry.kind, "score": entry.score, "split": split,
                      "folder": str(target), "zip": str(zip_path), "files": len(list(target.glob("*.txt"))),
                      "valid": True}
    if not out:
        raise StageSkipped("no run has result files yet")
    return {"tracks": out}


def stage_leaderboard(demo: Demo) -> dict[str, Any]:
    runs = _all_runs(demo)
    if not runs:
        raise StageSkipped("no runs yet")
    _prune(demo, runs)
    for path in runs:
        database.record_run(path, demo.db)
    board = leaderboard.load_leaderboard(demo.db)
    leaderboard.write_html(board, demo.html, title="abaw demo leaderboard")
    json_path = demo.out / "leaderboard.json"
    write_json(json_path, leaderboard.to_json(board))
    return {"html": str(demo.html), "json": str(json_path), "runs": {"all": runs},
            "entries": sum(len(g.entries) for g in board.groups)}


def _prune(demo: Demo, keep: list[str]) -> None:
    """Forget database rows of demo runs that a re-run stage replaced (their folders are gone or superseded)."""
    keep_resolved = {str(Path(p).resolve()) for p in keep}
    runs_root = str(demo.runs.resolve())
    with database.connect(demo.db) as conn:
        stale = [run_id for run_id, run_dir in conn.execute("SELECT run_id, run_dir FROM runs")
                 if run_dir.startswith(runs_root) and run_dir not in keep_resolved]
    for run_id in stale:
        database.delete_run(run_id, demo.db)


_TRAIN_STAGES = tuple(f"train_{key}" for key in DEMO_PRESETS)
_RUN_STAGES = ("baselines", *_TRAIN_STAGES, "temporal", "ensemble")

STAGES: tuple[Stage, ...] = (
    Stage("synth", "generate the synthetic Aff-Wild2", stage_synth, ("data", "data.partial")),
    Stage("baselines", "score the baselines (training mean, majority class, AU base rates)", stage_baselines,
          ("runs/baselines",), after=("synth",)),
    Stage("prepare", "prepare the body, context and audio inputs", stage_prepare, after=("synth",)),
    Stage("pretrain", "pretrain the face CNN on a synthetic AffectNet-format set (expression, valence/arousal)",
          stage_pretrain),
    Stage("extract", "cache the per-frame CNN features of the demo presets", stage_extract,
          after=("prepare", "pretrain")),
    *(Stage(f"train_{key}", f"train the {preset} preset", _train_stage(key), (f"runs/train/{key}",),
            after=("extract", "pretrain")) for key, preset in DEMO_PRESETS.items()),
    Stage("evaluate", "predict the training split (temporal model's source) and the test set (every trained run)",
          stage_evaluate,
          after=_TRAIN_STAGES),
    Stage("temporal", "fit the temporal statistical model (CNU_ADL)", stage_temporal, ("runs/temporal",),
          after=("evaluate",)),
    Stage("ensemble", "fuse the runs of each track (mean, tuned smoothing)", stage_ensemble, ("runs/ensemble",),
          after=(*_TRAIN_STAGES, "temporal")),
    Stage("test", "score every run's test result files on the hidden test labels (selection stays on validation)",
          stage_test, after=(*_RUN_STAGES, "evaluate")),
    Stage("submissions", "write and validate the test result files of the best run per track that has them",
          stage_submissions, after=(*_RUN_STAGES, "evaluate")),
    Stage("leaderboard", "record the runs and write the leaderboard", stage_leaderboard,
          after=(*_RUN_STAGES, "test", "submissions")),
)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def _dependents(name: str) -> list[str]:
    """Every stage that reads ``name``'s outputs, directly or through other stages."""
    found: list[str] = []
    for stage in STAGES:
        if any(dep == name or dep in found for dep in stage.after):
            found.append(stage.name)
    return found


def _invalidate_dependents(demo: Demo, name: str) -> None:
    for later in _dependents(name):
        _remove(demo.marker(later))


def run_demo(out: str | Path = "abaw-demo", quick: bool = False, seed: int = 0,
             submissions: str | Path = Path("submissions") / "demo", size: DemoSize | None = None,
             console: Console | None = None, data_seed: int = 0) -> dict[str, Any]:
    """Run (or resume) the demo; returns a summary of every stage (its state and what it made). ``seed`` seeds
    every training, ``data_seed`` the synthetic data."""
    demo = Demo(out=Path(out).resolve(), submissions=Path(submissions).resolve(), seed=seed, quick=quick,
                size=size or (QUICK if quick else FULL), console=console or leaderboard.make_console(),
                data_seed=data_seed)
    demo.out.mkdir(parents=True, exist_ok=True)
    settings = demo.out / "demo.json"
    report: dict[str, Any] = {}
    started = time.perf_counter()
    # No download in the demo: weights are used when a local copy exists (ABAW_WEIGHTS_DIR or the cache).
    with exclusive(demo.out, "abaw demo"), temporary_env(ABAW_DB=str(demo.db), ABAW_OFFLINE="1"):
        _check_settings(demo, settings)
        for index, stage in enumerate(STAGES):
            prefix = f"[{index + 1}/{len(STAGES)}] {stage.name}"
            summary = demo.done(stage.name, complete=True)
            if summary is not None:
                demo.console.print(f"{prefix}: done before, skipped")
                report[stage.name] = {"state": "done before", "summary": summary}
                continue
            for rel in stage.outputs:
                _remove(demo.out / rel)
            demo.console.print(f"{prefix}: {stage.description} …")
            t0 = time.perf_counter()
            try:
                summary = stage.run(demo)
            except StageSkipped as exc:
                demo.console.print(f"{prefix}: [yellow]skipped[/yellow]: {exc}")
                report[stage.name] = {"state": "skipped", "reason": str(exc)}
                continue
            except AbawError as exc:  # the stages that do not need this one still run; the exit code says it failed
                demo.console.print(f"{prefix}: [red]failed[/red]: {exc}")
                report[stage.name] = {"state": "failed", "reason": str(exc)}
                continue
            seconds = round(time.perf_counter() - t0, 2)
            _invalidate_dependents(demo, stage.name)  # their inputs changed
            write_json(demo.marker(stage.name), {"stage": stage.name, "seconds": seconds, "summary": summary})
            demo.console.print(f"{prefix}: done in {seconds:.1f} s")
            report[stage.name] = {"state": "ran", "seconds": seconds, "summary": summary}
    report["seconds"] = round(time.perf_counter() - started, 2)
    _finish(demo, report)
    return report


def _check_settings(demo: Demo, path: Path) -> None:
    """Resuming is only sound with the same seed and size: refuse to mix them in one folder."""
    settings = {"seed": demo.seed, "data_seed": demo.data_seed, "quick": demo.quick, "size": demo.size.__dict__,
                "protocol": demo.protocol}
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = None
        if old is not None and old != settings:
            raise AbawError(f"this folder holds a demo made with other settings ({old}); use another --out or "
                            "delete the folder", path=demo.out)
    write_json(path, settings)


def _finish(demo: Demo, report: dict[str, Any]) -> None:
    """Print the leaderboard and where everything is."""
    console = demo.console
    if demo.db.is_file():
        board = leaderboard.load_leaderboard(demo.db, references=False)
        leaderboard.render_terminal(board, console)
    console.print(f"Published scores on the real Aff-Wild2 are in the HTML page and in "
                  f"`abaw leaderboard --db {demo.db}`.")
    console.print("\n[bold]Where everything is[/bold]")
    lines = [("synthetic data", demo.data_root), ("pretrained face CNN", demo.out / "pretrain"), ("runs", demo.runs),
             ("runs database", demo.db),
             ("leaderboard (HTML)", demo.html), ("result files", demo.submissions), ("stage markers", demo.stages_dir)]
    for label, path in lines:
        state = "" if path.exists() else "  (not made)"
        console.print(f"  {label:20s} {path}{state}")
    subs = (report.get("submissions") or {}).get("summary") or {}
    for track, info in (subs.get("tracks") or {}).items():
        console.print(f"  {track.upper():4s} submission: {info['folder']} ({info['files']} files, {info['split']} "
                      f"split, valid) from run {info['run_id']} (score {info['score']:.4f})")
    for state in ("skipped", "failed"):
        names = [name for name, info in report.items() if isinstance(info, dict) and info.get("state") == state]
        if names:
            console.print(f"  {state} stages: {', '.join(names)} (see the messages above)")
    console.print(f"  total time {report['seconds']:.1f} s")

"""Inference, one path for every command: a checkpoint's model over a video's frames -> per-frame outputs ->
decisions.

- Windows: a sequence model sees a video as windows of ``data.duration`` frames (the checkpoint's config) laid end to
  end (stride = length), the last one padded (mask False); every frame is predicted once, by the window it falls in.
  ``data.stride`` is the training stride only.
- Activation: VA clipped to [-1, 1] (the heads end in tanh), EXPR softmax probabilities, AU sigmoid probabilities.
- Decisions (what the official metrics take): VA the values, EXPR the argmax class, AU probability >= threshold (one
  threshold, one per AU, or one per row and AU).

The training loop's validation, ``abaw evaluate``, ``abaw predict``, the ensembles, baselines, smoothing, threshold
tuning and the temporal models all go through here. Torch, the readers and the model code are imported by the
functions that run a model only, so the post-hoc commands, which need the decisions, stay light.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from abaw import tasks

if TYPE_CHECKING:
    import torch
    from torch import nn

    from abaw.data.sequences import SequenceVideo
    from abaw.data.stream_inputs import StreamLoader

#: Key of :func:`predict_videos` outputs: True where at least one stream had an input for the frame.
HAS_INPUT = "has_input"


# ---- a checkpoint ready to predict -----------------------------------------------------------------------------


def window_length(cfg: dict[str, Any]) -> int:
    """Frames per window of a sequence model: the config's ``data.duration`` (windows tile the video)."""
    return int(cfg["data"]["duration"])


def batch_size(cfg: dict[str, Any], override: int | None = None) -> int:
    """Windows per forward pass: ``override``, else ``data.eval_batch_size``, else ``data.batch_size``."""
    data = cfg["data"]
    return int(override or data.get("eval_batch_size") or data["batch_size"])


def load_run_model(run_dir: str | Path, which: str = "best", device: str | torch.device | None = None
                   ) -> tuple[nn.Module, dict[str, Any], torch.device]:
    """A run's trained model in eval mode, its config, and the device it was moved to: ``device`` when given
    (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``), else the config's ``train.device``, else the local GPU when
    there is one, else the CPU."""
    from abaw.train.checkpoint import load_model
    from abaw.train.fitting import pick_device, setup_device

    model, cfg = load_model(run_dir, which)
    device = setup_device(pick_device(device or cfg["train"].get("device")))
    return model.to(device), cfg, device


def model_spec(model: nn.Module) -> dict[str, Any]:
    """The model's ``input_spec()`` (through a DDP wrapper), or {} for a model without one."""
    from abaw.train.checkpoint import unwrap

    model = unwrap(model)
    return dict(model.input_spec()) if hasattr(model, "input_spec") else {}


def make_loader(cfg: dict[str, Any], model: nn.Module, root: str | Path | None = None,
                mode: str | None = None) -> StreamLoader:
    """The stream reader of a config: images/audio (end-to-end) or the feature cache (cached mode). ``root`` and
    ``mode`` replace the config's (``abaw predict`` reads a freshly prepared folder end to end)."""
    from abaw.data.stream_inputs import StreamLoader
    from abaw.train.checkpoint import unwrap

    data = cfg["data"]
    mode = mode or data["mode"]
    extractors = None
    if mode == "cached":
        from abaw.train.extract import extractor_names

        extractors = extractor_names(cfg, unwrap(model))
    return StreamLoader(root or data["root"], data["streams"], model_spec(model), mode=mode, extractors=extractors,
                        audio_window=data["audio_window"], image_size=data["image_size"])


# ---- running the model -----------------------------------------------------------------------------------------


def to_device(obj: Any, device: torch.device) -> Any:
    """Tensors (also inside a dict) moved to ``device``; anything else as is."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def activate(task: str, out: torch.Tensor) -> torch.Tensor:
    """Raw model output -> prediction (float32): VA clipped to [-1, 1], EXPR softmax, AU sigmoid; any other output
    (``embedding``) as is."""
    if task == "va":
        return out.float().clamp(-1.0, 1.0)
    if task == "expr":
        return out.float().softmax(dim=-1)
    if task == "au":
        return out.float().sigmoid()
    return out.float()


def predict_videos(model: nn.Module, videos: list[SequenceVideo], loader: Any, duration: int, batch_size: int,
                   tracks: Sequence[str], device: torch.device, amp: str | None = None,
                   embeddings: bool = True, progress: bool = False,
                   workers: int | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Per-frame outputs of every video, windows of ``duration`` frames tiling each one (give
    :func:`window_length` of the checkpoint's config): ``{name: {"va": (n, 2), "expr": (n, C) probabilities,
    "au": (n, A) probabilities, "embedding": (n, F), "has_input": (n,) bool}}``. ``workers``: DataLoader processes
    reading the windows (None: the device's default, :func:`abaw.train.fitting.loader_options`). ``amp`` "fp16"
    runs in float16 on CUDA and in float32 elsewhere (a run trained on a GPU evaluates anywhere)."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from abaw.data.sequences import SequenceDataset, eval_batches, make_windows
    from abaw.train.fitting import amp_mode, loader_options

    windows = make_windows(videos, duration, stride=duration)
    dataset = SequenceDataset(videos, windows, duration, (), loader)  # no targets: inference needs no labels
    dl = DataLoader(dataset, batch_sampler=eval_batches(len(dataset), batch_size), generator=torch.Generator(),
                    **loader_options(workers, device))
    amp = amp_mode(amp)
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    enabled = amp == "bf16" or (amp == "fp16" and device.type == "cuda")
    was_training = model.training
    model.eval()
    out: dict[str, dict[str, np.ndarray]] = {}
    try:
        with torch.inference_mode():
            for batch in tqdm(dl, desc="predict", leave=False, disable=not progress):
                inputs = to_device(batch["inputs"], device)
                mask = batch["mask"].to(device)
                with torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled):
                    result = model(inputs, mask)
                keys = [t for t in tracks if t in result]
                keys += ["embedding"] if embeddings and "embedding" in result else []
                arrays = {k: activate(k, result[k]).cpu().numpy() for k in keys}
                flags = [v.numpy() for k, v in batch["inputs"].items() if k.endswith("_valid")]
                seen = np.logical_or.reduce(flags) if flags else np.ones(batch["mask"].shape, bool)
                for row, (vi, start) in enumerate(batch["window"].tolist()):
                    video = videos[vi]
                    n = int(batch["mask"][row].sum())
                    store = out.setdefault(video.name, {HAS_INPUT: np.zeros(video.n_frames, bool)})
                    store[HAS_INPUT][start:start + n] = seen[row, :n]
                    for k, a in arrays.items():
                        if k not in store:
                            store[k] = np.full((video.n_frames,) + a.shape[2:], np.nan, np.float32)
                        store[k][start:start + n] = a[row, :n]
    finally:
        model.train(was_training)
    return out


# ---- decisions ---------------------------------------------------------------------------------------------------


def decide(track: str, values: np.ndarray, thresholds: np.ndarray | float = 0.5) -> np.ndarray:
    """Per-frame outputs ``(n, k)`` -> what the official metric takes: VA clipped to [-1, 1], EXPR class indices
    ``(n,)``, AU 0/1 (probability >= threshold; ``thresholds`` a scalar, one per AU, or ``(n, k)``)."""
    track = tasks.check_track(track)
    values = np.asarray(values)
    if track == "va":
        return np.clip(values, -1.0, 1.0)
    if track == "expr":
        return values.argmax(axis=1)
    return (values >= np.asarray(thresholds)).astype(np.int64)


def score(track: str, values: np.ndarray, true: np.ndarray, protocol: str | tasks.Protocol | None = None,
          thresholds: np.ndarray | float = 0.5) -> dict[str, Any]:
    """Official score of a track's per-frame outputs against labels (``abaw.metrics.score_track``); EXPR labels
    may be ``(n,)`` or ``(n, 1)``."""
    from abaw.metrics import score_track

    true = np.asarray(true)
    true = true.reshape(len(true)) if tasks.check_track(track) == "expr" else true
    return score_track(track, decide(track, values, thresholds), true, protocol)

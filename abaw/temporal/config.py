"""The temporal model's config: typed keys and defaults (``abaw.schema``), a preset with its parents, overrides.

``load_config(path, overrides)`` gives defaults, then the preset at ``path`` (which may extend another, see
``abaw.presets``), then ``overrides``; an unknown key, a wrong type or a value out of range is a one-line error
naming the key and the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from abaw import schema, tasks
from abaw.errors import AbawError
from abaw.presets import deep_merge, read_preset
from abaw.schema import option
from abaw.temporal.stats import check_stats

VARIANTS: tuple[str, ...] = ("mlp", "bilstm")
#: What the model is fitted on: "validation" = grouped cross-validation over the source's validation videos (outputs
#: the source model did not train on; each validation video is predicted by a model that did not fit on it),
#: "train" = the source's training-split outputs (nearly memorised by the source model; the former rule).
FIT_ON: tuple[str, ...] = ("validation", "train")
LABEL = "temporal config key"


@dataclass
class TemporalConfig:
    """Every key and its default. ``inputs``/``tasks`` None = every track the source run predicts."""

    name: str = "cnu_adl_temporal"
    block: int = option(16, ge=1)  # frames per block (the paper uses 4, 8, 16, 32)
    stats: list[str] = option(["max", "min", "mean"])
    quantiles: list[float] = option([])  # in [0, 1], checked with the statistics
    inputs: list[str] | None = None
    tasks: list[str] | None = None
    use_embedding: bool | str = option("auto", choices=(True, False, "auto"))  # "auto": when the source has them
    face_frames_only: bool = True  # blocks skip frames without a face crop (when the data root has crops)
    variant: str = option("mlp", choices=VARIANTS)
    hidden: int = option(256, ge=1)
    lstm_hidden: int = option(32, ge=1)
    dropout: float = option(0.3, ge=0, lt=1)
    aux_weight: float = option(0.5, ge=0)
    epochs: int = option(30, ge=1)
    patience: int = option(8, ge=0)
    batch_size: int = option(256, ge=1)
    lr: float = option(1e-3, gt=0)
    weight_decay: float = option(1e-4, ge=0)
    seed: int = option(0, ge=0)
    fit_on: str = option("validation", choices=FIT_ON)
    # grouped folds over the validation videos (fit_on "validation"): each fold is predicted by a model fitted on
    # the other folds but one, which chooses its epoch (with 2 folds: the last epoch)
    folds: int = option(5, ge=2)
    # rows loaded at once (a few videos); bounds memory. A fit set larger than this is visited in shuffled blocks
    # of videos, so it also sets the training order
    chunk_rows: int = option(131072, ge=1)
    device: str | None = None  # None = cuda when available, else cpu
    # torch CPU threads while fitting; the model is small, and on a busy machine more threads only wait on each
    # other (measured: a BiLSTM step 26x slower with 2 threads than with 1 on a loaded 2-core machine). None = torch's
    threads: int | None = option(1, ge=1)


#: Every config key and its default, as the plain dict a config is.
DEFAULTS: dict[str, Any] = schema.defaults(TemporalConfig)


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then the JSON preset at ``path`` (with its parents), then ``overrides``; bad keys/values: errors."""
    config = schema.defaults(TemporalConfig)
    if path is not None:
        config.update(read_preset(path, lambda data, where: schema.check(TemporalConfig, data, where, LABEL),
                                  merge=deep_merge))
    if overrides:
        schema.check(TemporalConfig, overrides, None, LABEL)
        config.update(overrides)
    check(config, path)
    return config


def check(config: dict[str, Any], path: str | Path | None = None) -> None:
    """Every key of a full config, then the statistics and the track lists."""
    schema.check(TemporalConfig, config, path, LABEL)
    try:
        check_stats(tuple(config["stats"]), tuple(config["quantiles"]))
    except ValueError as exc:
        raise AbawError(str(exc), path=path) from None
    for key in ("inputs", "tasks"):
        for track in config[key] or []:
            if track not in tasks.TRACKS:
                raise AbawError(f"{key} lists unknown track {track!r}; choose from {', '.join(tasks.TRACKS)}",
                                path=path)


"""The generic multi-stream CNN-RNN model every registered preset is built from.

``ModelConfig`` holds every option, typed with ``abaw.schema`` (a preset is a dict of defaults; the user's overrides
are checked against the fields, so a misspelled option or a value out of range fails with one line).
``MultiStreamModel(config)`` wires streams -> fusion -> heads and follows the model contract of docs/design.md
section 4.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from abaw import schema
from abaw.errors import AbawError
from abaw.models.backbones import NORMALIZATIONS, create_backbone, load_backbone_checkpoint, parse_pretrained
from abaw.models.encoders import AudioEncoder, SequenceRNN, Stream
from abaw.models.fusion import LATE_MODES, EarlyFusion, LateFusion
from abaw.models.heads import TaskHeads
from abaw.schema import option
from abaw.tasks import ENCODED_STREAMS, TRACKS, check_track, get_protocol

#: The streams a multi-stream model encodes (landmarks are an input of the face stream, not a stream of their own).
STREAMS: tuple[str, ...] = ENCODED_STREAMS
LANDMARK_POINTS: tuple[int, ...] = (0, 5, 68)
FUSIONS: tuple[str, ...] = ("early", "late")
CELL_TYPES: tuple[str, ...] = ("gru", "lstm")


@dataclass
class ModelConfig:
    """Every option of the generic model; a preset sets defaults, ``create_model(name, **overrides)`` the rest."""

    streams: tuple[str, ...] = ("face",)  # any of face, body, context, audio (+ "landmarks", same as landmarks=5)
    tasks: tuple[str | int, ...] = TRACKS  # names or track numbers (1, 2, 3); names once resolved
    protocol: str = "abaw2021"
    backbone: str = "tiny_cnn"  # image streams without their own backbone below
    face_backbone: str | None = None
    body_backbone: str | None = None
    context_backbone: str | None = None
    audio_backbone: str = "audio_cnn"
    pretrained: Any = False  # image CNNs: False, True (ImageNet via abaw.weights) or a checkpoint path
    pretrained_face: str | None = None  # face CNN checkpoint (abaw-backbone, e.g. AffectNet); wins over pretrained
    freeze_cnn: bool = False
    image_size: int = option(112, ge=1)  # face crop side
    body_size: int = option(112, ge=1)
    context_size: int = option(112, ge=1)
    normalization: str | None = option(None, choices=(None, *NORMALIZATIONS))  # None: the backbone's own
    fc: tuple[int, ...] = option((), ge=1)  # FC layers after each image CNN (landmarks join FC1's input)
    audio_fc: tuple[int, ...] = option((), ge=1)
    landmarks: int = option(0, choices=LANDMARK_POINTS)  # (x, y) points concatenated to the face CNN feature
    fusion: str = option("early", choices=FUSIONS)
    late_fusion: str = option("concat", choices=LATE_MODES)
    fusion_dim: int = option(128, ge=1)
    cell_type: str = option("gru", choices=CELL_TYPES)
    hidden_size: int = option(128, ge=1)
    num_layers: int = option(1, ge=0)  # 0: no RNN (per-frame model)
    bidirectional: bool = False
    dropout: float = option(0.0, ge=0, lt=1)  # after each FC layer and between RNN layers
    head_dropout: float = option(0.0, ge=0, lt=1)
    stream_dropout: float = option(0.0, ge=0, lt=1)  # training: drop each stream of a window with this probability
    stream_heads: float = option(0.0, ge=0)  # late fusion, training: loss weight of task heads on each stream's RNN
    n_mels: int = option(64, ge=1)
    audio_window_seconds: float = option(1.0, gt=0)
    freq_mask: int = option(8, ge=0)  # SpecAugment: widest frequency mask (mel bins), 0 = off
    time_mask: int = option(10, ge=0)  # widest time mask (log-mel frames), 0 = off

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


_BOOLS = ("freeze_cnn", "bidirectional")
_LOWER = ("protocol", "fusion", "late_fusion", "cell_type")


def _convert(key: str, value: Any) -> Any:
    """The conveniences of command-line and Python callers, before the schema check: "true"/"false" for a switch,
    one value for a list, paths for strings, any case for named choices, "none" for no face checkpoint."""
    if key in _BOOLS and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if key in ("fc", "audio_fc") and isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if key in ("streams", "tasks") and isinstance(value, (str, int)) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, Path):
        value = str(value)
    if key in _LOWER and isinstance(value, str):
        return value.lower()
    if key == "pretrained_face" and isinstance(value, str) and parse_pretrained(value) is False:
        return None
    return value


def resolve_config(model: str, defaults: dict[str, Any], overrides: dict[str, Any]) -> ModelConfig:
    """Preset defaults + user overrides -> a checked ModelConfig (unknown keys and bad values: one-line AbawError)."""
    values: dict[str, Any] = {}
    for source in (defaults, overrides):
        converted = {key: _convert(key, value) for key, value in source.items()}
        schema.check(ModelConfig, converted, label="model option", owner=f" of {model!r}")
        values.update(converted)
    cfg = schema.build(ModelConfig, values)
    streams = []
    for s in cfg.streams:
        s = str(s).lower()
        if s == "landmarks":
            cfg.landmarks = cfg.landmarks or 5
            continue
        if s not in STREAMS:
            raise AbawError(f"model option 'streams' of {model!r} has unknown stream {s!r}; choose from "
                            f"{', '.join(STREAMS)}")
        streams.append(s)
    if not streams:
        raise AbawError(f"model {model!r} needs at least one of the streams {', '.join(STREAMS)}")
    cfg.streams = tuple(s for s in STREAMS if s in streams)
    try:
        cfg.tasks = tuple(dict.fromkeys(check_track(t) for t in cfg.tasks))
        cfg.protocol = get_protocol(cfg.protocol).name
    except ValueError as exc:
        raise AbawError(f"model {model!r}: {exc}") from None
    if not cfg.tasks:
        raise AbawError(f"model option 'tasks' of {model!r} must name at least one task")
    if cfg.landmarks and "face" not in cfg.streams:
        raise AbawError(f"model {model!r}: landmarks join the face stream, which is not used")
    if cfg.stream_heads and (cfg.fusion != "late" or len(cfg.streams) < 2):
        raise AbawError(f"model option 'stream_heads' of {model!r} needs late fusion of two or more streams "
                        f"(fusion is {cfg.fusion!r}, streams {', '.join(cfg.streams)})")
    cfg.pretrained = parse_pretrained(cfg.pretrained)
    cfg.pretrained = str(cfg.pretrained) if isinstance(cfg.pretrained, Path) else cfg.pretrained
    return cfg


class MultiStreamModel(nn.Module):
    """Streams (CNN -> FC per frame) -> early or late fusion (RNN) -> per-frame heads.

    With ``stream_heads`` > 0 (late fusion), training also predicts every task from each stream's RNN alone and the
    trainer adds those losses, weighted: deep supervision of each branch, so that a weaker stream (the body, the
    voice) learns what it can say while the strongest (the face) would otherwise carry the fused loss by itself.

    ``forward(inputs, mask)`` follows docs/design.md section 4: ``inputs[s]`` raw (B, T, ...) or ``inputs[s + "_feat"]``
    cached (B, T, D) per stream, optional ``inputs[s + "_valid"]`` (B, T) bool, ``inputs["landmarks"]`` (B, T, 2P);
    ``mask`` (B, T) bool, True for real frames. Returns per-frame ``va`` (tanh), ``expr`` / ``au`` logits and the
    fused ``embedding``.
    """

    def __init__(self, config: ModelConfig, name: str = "multistream"):
        super().__init__()
        self.model_name = name
        self.config = config
        self.protocol = get_protocol(config.protocol)
        self.tasks = config.tasks
        self.stream_names = config.streams
        self.streams = nn.ModuleDict({s: self._make_stream(s) for s in config.streams})
        self.fusion = self._make_fusion({s: stream.out_features for s, stream in self.streams.items()})
        self.embedding_dim = self.fusion.out_features
        self.heads = TaskHeads(self.embedding_dim, self.tasks, self.protocol, dropout=config.head_dropout)
        self.stream_heads: nn.ModuleDict | None = None
        if config.stream_heads and isinstance(self.fusion, LateFusion):
            self.stream_heads = nn.ModuleDict({
                s: TaskHeads(width, self.tasks, self.protocol, dropout=config.head_dropout)
                for s, width in self.fusion.stream_widths.items()})

    # ---- construction -------------------------------------------------------------------------------------------
    def _make_fusion(self, widths: dict[str, int]) -> nn.Module:
        """The temporal model over the streams' per-frame features (``out_features`` wide): early or late RNN
        fusion; subclasses put another temporal model here."""
        cfg = self.config
        rnn_kwargs = dict(cell_type=cfg.cell_type, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                          bidirectional=cfg.bidirectional, dropout=cfg.dropout)
        if cfg.fusion == "early":
            return EarlyFusion(widths, **rnn_kwargs)
        return LateFusion(widths, mode=cfg.late_fusion, fusion_dim=cfg.fusion_dim, **rnn_kwargs)

    def _backbone_name(self, stream: str) -> str:
        if stream == "audio":
            return self.config.audio_backbone
        return getattr(self.config, f"{stream}_backbone") or self.config.backbone

    def _make_stream(self, stream: str) -> Stream:
        cfg = self.config
        if stream == "audio":
            encoder = AudioEncoder(create_backbone(cfg.audio_backbone, pretrained=False, in_chans=1),
                                   freq_mask=cfg.freq_mask, time_mask=cfg.time_mask)
            return Stream("audio", encoder, fc=cfg.audio_fc, dropout=cfg.dropout, freeze=cfg.freeze_cnn)
        pretrained = cfg.pretrained
        if stream == "face" and cfg.pretrained_face:
            pretrained = False
        backbone = create_backbone(self._backbone_name(stream), pretrained=pretrained)
        if stream == "face" and cfg.pretrained_face:
            path = Path(cfg.pretrained_face).expanduser()
            load_backbone_checkpoint(backbone, path)
        extras = {"landmarks": 2 * cfg.landmarks} if stream == "face" and cfg.landmarks else {}
        return Stream(stream, backbone, fc=cfg.fc, dropout=cfg.dropout, extras=extras, freeze=cfg.freeze_cnn)

    # ---- the model contract -------------------------------------------------------------------------------------
    def stream_encoders(self) -> dict[str, nn.Module]:
        """Per-frame CNN of each stream, (N, C, H, W) -> (N, D): what ``abaw extract`` runs and caches."""
        return {s: stream.encoder for s, stream in self.streams.items()}

    def feature_dims(self) -> dict[str, int]:
        """Width D of each stream's cached feature ``<stream>_feat``."""
        return {s: stream.feature_dim for s, stream in self.streams.items()}

    def _weights_tag(self, stream: str) -> str:
        if stream == "face" and self.config.pretrained_face:
            return Path(self.config.pretrained_face).stem
        if stream == "audio" or not self.config.pretrained:
            return "scratch"
        if self.config.pretrained is not True:
            return Path(str(self.config.pretrained)).stem
        from abaw.models.backbones import weights_entry

        entry = weights_entry(self._backbone_name(stream))  # e.g. vgg_face_dag: not ImageNet
        return "imagenet" if entry is None or entry.endswith("_imagenet") else entry

    def input_spec(self) -> dict[str, dict[str, Any]]:
        """How the data pipeline prepares each input: size, channels, normalisation, cached feature width."""
        cfg = self.config
        spec: dict[str, dict[str, Any]] = {}
        for s, stream in self.streams.items():
            name = self._backbone_name(s)
            common = {"backbone": name, "feature_dim": stream.feature_dim,
                      "extractor": f"{name}-{self._weights_tag(s)}"}
            if s == "audio":
                spec[s] = {"kind": "logmel", "channels": 1, "n_mels": cfg.n_mels,
                           "window_seconds": cfg.audio_window_seconds, "normalization": "per_window",
                           "note": "log-mel in dB as prepared; the model standardises each window itself", **common}
                spec[s]["extractor"] += f"-{cfg.n_mels}x{cfg.audio_window_seconds:g}s"
                continue
            size = {"face": cfg.image_size, "body": cfg.body_size, "context": cfg.context_size}[s]
            norm = cfg.normalization or stream.encoder.normalization
            mean, std = NORMALIZATIONS[norm]
            spec[s] = {"kind": "image", "size": [size, size], "channels": 3, "normalization": norm,
                       "mean": list(mean), "std": list(std), **common}
            if norm == "minus_one_one":
                spec[s]["range"] = [-1.0, 1.0]
            spec[s]["extractor"] += f"-{size}"
        if cfg.landmarks:
            spec["landmarks"] = {"kind": "landmarks", "points": cfg.landmarks, "dim": 2 * cfg.landmarks,
                                 "normalization": "x0, y0, x1, y1, ... relative to the face box, scaled to [-1, 1]"}
        return spec

    def frame_mask(self, inputs: dict[str, torch.Tensor], mask: torch.Tensor | None) -> torch.Tensor:
        """The (B, T) bool padding mask: all frames when none is given."""
        if mask is None:
            b, t = _batch_shape(inputs, self.stream_names)
            return torch.ones(b, t, dtype=torch.bool, device=next(iter(inputs.values())).device)
        return mask.to(torch.bool)

    def forward(self, inputs: dict[str, torch.Tensor], mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        mask = self.frame_mask(inputs, mask)
        feats = {s: stream(inputs, mask) for s, stream in self.streams.items()}
        if self.training and self.config.stream_dropout > 0 and len(feats) > 1:
            feats = drop_streams(feats, self.config.stream_dropout)
        supervised = self.stream_heads is not None and self.training
        hidden = self.fusion.stream_hidden(feats, mask) if supervised else None
        embedding = self.fusion.combine(hidden) if hidden is not None else self.fusion(feats, mask)
        out = self.heads(embedding)
        if hidden is not None:
            for s, heads in self.stream_heads.items():
                out.update({stream_output(task, s): y for task, y in heads(hidden[s]).items()})
        out["embedding"] = embedding
        return out


def stream_output(task: str, stream: str) -> str:
    """The output key of ``task`` predicted from ``stream`` alone (``stream_heads``, in training only)."""
    return f"{task}@{stream}"


def stream_outputs(outputs: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """The per-stream predictions among a model's outputs: ``{stream: {task: tensor}}`` (empty without them)."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in outputs.items():
        task, sep, stream = key.partition("@")
        if sep:
            out.setdefault(stream, {})[task] = value
    return dict(sorted(out.items()))


def drop_streams(feats: dict[str, torch.Tensor], p: float) -> dict[str, torch.Tensor]:
    """Modality dropout: each stream's features (B, T, F) of each window are zeroed with probability ``p``, never all
    of a window's streams, so that a fused model learns to use every stream and not only the strongest (the face),
    and copes when one is missing or uninformative."""
    names = list(feats)
    first = feats[names[0]]
    keep = torch.rand(first.shape[0], len(names), device=first.device) >= p
    none = ~keep.any(dim=1)
    if bool(none.any()):  # a window that lost every stream keeps one at random
        pick = torch.randint(len(names), (int(none.sum()),), device=first.device)
        keep[none] = torch.nn.functional.one_hot(pick, len(names)).bool()
    return {s: feats[s] * keep[:, k, None, None].to(feats[s].dtype) for k, s in enumerate(names)}


def _batch_shape(inputs: dict[str, torch.Tensor], streams: tuple[str, ...]) -> tuple[int, int]:
    for s in streams:
        for key in (s, f"{s}_feat"):
            if key in inputs:
                return int(inputs[key].shape[0]), int(inputs[key].shape[1])
    raise AbawError(f"the model needs input {streams[0]!r} or {streams[0] + '_feat'!r}; got {', '.join(inputs)}")


def multistream_model(name: str, defaults: dict[str, Any], overrides: dict[str, Any]) -> MultiStreamModel:
    """What every registered entry point calls: resolve the preset with the overrides, build the model."""
    return MultiStreamModel(resolve_config(name, defaults, overrides), name=name)


__all__ = ["ModelConfig", "MultiStreamModel", "SequenceRNN", "multistream_model", "resolve_config", "STREAMS",
           "stream_output", "stream_outputs"]

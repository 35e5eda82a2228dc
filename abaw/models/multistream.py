"""The generic multi-stream CNN-RNN model every registered preset is built from.

``ModelConfig`` holds every option (a preset is a dict of defaults; the user's overrides are checked against the
fields, so a misspelled option fails with one line). ``MultiStreamModel(config)`` wires streams -> fusion -> heads
and follows the model contract of docs/design.md section 4.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from abaw.errors import AbawError
from abaw.models.backbones import NORMALIZATIONS, create_backbone, load_backbone_checkpoint, parse_pretrained
from abaw.models.encoders import AudioEncoder, SequenceRNN, Stream
from abaw.models.fusion import LATE_MODES, EarlyFusion, LateFusion
from abaw.models.heads import TaskHeads
from abaw.tasks import TRACKS, check_track, get_protocol

IMAGE_STREAMS: tuple[str, ...] = ("face", "body", "context")
STREAMS: tuple[str, ...] = (*IMAGE_STREAMS, "audio")
LANDMARK_POINTS: tuple[int, ...] = (0, 5, 68)
FUSIONS: tuple[str, ...] = ("early", "late")
CELL_TYPES: tuple[str, ...] = ("gru", "lstm")


@dataclass
class ModelConfig:
    """Every option of the generic model; a preset sets defaults, ``create_model(name, **overrides)`` the rest."""

    streams: tuple[str, ...] = ("face",)  # any of face, body, context, audio (+ "landmarks", same as landmarks=5)
    tasks: tuple[str, ...] = TRACKS
    protocol: str = "abaw2021"
    backbone: str = "tiny_cnn"  # image streams without their own backbone below
    face_backbone: str | None = None
    body_backbone: str | None = None
    context_backbone: str | None = None
    audio_backbone: str = "audio_cnn"
    pretrained: Any = False  # image CNNs: False, True (ImageNet via abaw.weights) or a checkpoint path
    pretrained_face: str | None = None  # face CNN checkpoint (abaw-backbone, e.g. AffectNet); wins over pretrained
    freeze_cnn: bool = False
    image_size: int = 112  # face crop side
    body_size: int = 112
    context_size: int = 112
    normalization: str | None = None  # None: the backbone's own (imagenet; minus_one_one for vggface)
    fc: tuple[int, ...] = ()  # FC layers after each image CNN (landmarks join FC1's input)
    audio_fc: tuple[int, ...] = ()
    landmarks: int = 0  # 0, 5 or 68 points (x, y) concatenated to the face CNN feature
    fusion: str = "early"
    late_fusion: str = "concat"  # concat, gated, attention
    fusion_dim: int = 128
    cell_type: str = "gru"
    hidden_size: int = 128
    num_layers: int = 1  # 0: no RNN (per-frame model)
    bidirectional: bool = False
    dropout: float = 0.0  # after each FC layer and between RNN layers
    head_dropout: float = 0.0
    n_mels: int = 64
    audio_window_seconds: float = 1.0
    freq_mask: int = 8  # SpecAugment: widest frequency mask (mel bins), 0 = off
    time_mask: int = 10  # widest time mask (log-mel frames), 0 = off

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


_FIELDS = {f.name: f for f in dataclasses.fields(ModelConfig)}
_INT_TUPLES = ("fc", "audio_fc")
_BOOLS = ("freeze_cnn", "bidirectional")
_INTS = ("image_size", "body_size", "context_size", "landmarks", "fusion_dim", "hidden_size", "num_layers", "n_mels",
         "freq_mask", "time_mask")
_FLOATS = ("dropout", "head_dropout", "audio_window_seconds")
_OPTIONAL_STR = ("face_backbone", "body_backbone", "context_backbone", "pretrained_face", "normalization")


def _bad(key: str, what: str, value: Any, model: str) -> AbawError:
    return AbawError(f"model option {key!r} of {model!r} must be {what}, got {value!r}")


def _coerce(key: str, value: Any, model: str) -> Any:
    if key in _BOOLS:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise _bad(key, "true or false", value, model)
        return value
    if key in _INTS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _bad(key, "a non-negative integer", value, model)
        return value
    if key in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise _bad(key, "a non-negative number", value, model)
        return float(value)
    if key in _INT_TUPLES:
        if isinstance(value, int) and not isinstance(value, bool):
            value = (value,)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and v > 0 for v in value):
            raise _bad(key, "a list of positive integers", value, model)
        return tuple(value)
    if key in ("streams", "tasks"):
        if isinstance(value, str):
            value = (value,)
        if not isinstance(value, (list, tuple)) or not value:
            raise _bad(key, "a non-empty list", value, model)
        return tuple(value)
    if key in _OPTIONAL_STR:
        if value is not None and not isinstance(value, (str, Path)):
            raise _bad(key, "a string or null", value, model)
        if key == "pretrained_face" and value is not None and parse_pretrained(value) is False:
            return None
        return str(value) if value is not None else None
    if key in ("protocol", "backbone", "audio_backbone", "fusion", "late_fusion", "cell_type"):
        if not isinstance(value, str):
            raise _bad(key, "a string", value, model)
        return value.lower() if key in ("protocol", "fusion", "late_fusion", "cell_type") else value
    return value


def resolve_config(model: str, defaults: dict[str, Any], overrides: dict[str, Any]) -> ModelConfig:
    """Preset defaults + user overrides -> a checked ModelConfig (unknown keys and bad values: one-line AbawError)."""
    values: dict[str, Any] = {}
    for source in (defaults, overrides):
        for key, value in source.items():
            if key not in _FIELDS:
                close = difflib.get_close_matches(key, list(_FIELDS), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise AbawError(f"unknown model option {key!r} for model {model!r}{hint}")
            values[key] = _coerce(key, value, model)
    cfg = ModelConfig(**values)
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
    checks = [("fusion", FUSIONS), ("late_fusion", LATE_MODES), ("cell_type", CELL_TYPES),
              ("landmarks", LANDMARK_POINTS)]
    for key, allowed in checks:
        if getattr(cfg, key) not in allowed:
            raise AbawError(f"model option {key!r} of {model!r} must be one of {', '.join(map(str, allowed))}, "
                            f"got {getattr(cfg, key)!r}")
    if cfg.normalization is not None and cfg.normalization not in NORMALIZATIONS:
        raise AbawError(f"model option 'normalization' must be one of {', '.join(NORMALIZATIONS)}")
    if cfg.landmarks and "face" not in cfg.streams:
        raise AbawError(f"model {model!r}: landmarks join the face stream, which is not used")
    if cfg.dropout >= 1 or cfg.head_dropout >= 1:
        raise AbawError(f"model {model!r}: dropout must be below 1")
    cfg.pretrained = parse_pretrained(cfg.pretrained)
    cfg.pretrained = str(cfg.pretrained) if isinstance(cfg.pretrained, Path) else cfg.pretrained
    return cfg


class MultiStreamModel(nn.Module):
    """Streams (CNN -> FC per frame) -> early or late fusion (RNN) -> per-frame heads.

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
        widths = {s: stream.out_features for s, stream in self.streams.items()}
        rnn_kwargs = dict(cell_type=config.cell_type, hidden_size=config.hidden_size, num_layers=config.num_layers,
                          bidirectional=config.bidirectional, dropout=config.dropout)
        if config.fusion == "early":
            self.fusion: nn.Module = EarlyFusion(widths, **rnn_kwargs)
        else:
            self.fusion = LateFusion(widths, mode=config.late_fusion, fusion_dim=config.fusion_dim, **rnn_kwargs)
        self.embedding_dim = self.fusion.out_features
        self.heads = TaskHeads(self.embedding_dim, self.tasks, self.protocol, dropout=config.head_dropout)

    # ---- construction -------------------------------------------------------------------------------------------
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
        return "imagenet" if self.config.pretrained is True else Path(str(self.config.pretrained)).stem

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

    def forward(self, inputs: dict[str, torch.Tensor], mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if mask is None:
            b, t = _batch_shape(inputs, self.stream_names)
            device = next(iter(inputs.values())).device
            mask = torch.ones(b, t, dtype=torch.bool, device=device)
        mask = mask.to(torch.bool)
        feats = {s: stream(inputs, mask) for s, stream in self.streams.items()}
        embedding = self.fusion(feats, mask)
        out = self.heads(embedding)
        out["embedding"] = embedding
        return out


def _batch_shape(inputs: dict[str, torch.Tensor], streams: tuple[str, ...]) -> tuple[int, int]:
    for s in streams:
        for key in (s, f"{s}_feat"):
            if key in inputs:
                return int(inputs[key].shape[0]), int(inputs[key].shape[1])
    raise AbawError(f"the model needs input {streams[0]!r} or {streams[0] + '_feat'!r}; got {', '.join(inputs)}")


def multistream_model(name: str, defaults: dict[str, Any], overrides: dict[str, Any]) -> MultiStreamModel:
    """What every registered entry point calls: resolve the preset with the overrides, build the model."""
    return MultiStreamModel(resolve_config(name, defaults, overrides), name=name)


__all__ = ["ModelConfig", "MultiStreamModel", "SequenceRNN", "multistream_model", "resolve_config", "STREAMS"]

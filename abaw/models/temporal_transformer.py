"""A transformer temporal model over per-frame features: the recipe of the 2022-2025 ABAW winners.

Frozen per-frame CNN features (cached by ``abaw extract``, or computed by a frozen CNN from raw frames) -> per stream:
the usual ``Stream`` (optional FC) and a LayerNorm -> the streams concatenated per frame (early fusion: one token per
frame) -> a linear projection to ``hidden_size`` -> positional information -> a pre-norm ``nn.TransformerEncoder``
(batch first) -> a final LayerNorm (the per-frame ``embedding``) -> the task heads of ``abaw.models.heads``.

Positions: ``sinusoidal`` (added, any length), ``learned`` (added, at most ``max_len`` frames), ``relative`` (a
per-head linear distance bias on the attention scores, ALiBi-style, any length) or ``none``. ``attention_window`` > 0
limits attention to frames at most that far apart, so a window longer than the training windows sees the same
neighbourhood. Keys that are padding, or (``mask_invalid``) frames where no stream has an input, are masked out of
attention; their own outputs are still computed from the valid frames around them.

The model follows the contract of docs/design.md section 4 like ``MultiStreamModel`` (it is one, with the RNN fusion
replaced), so ``abaw extract``, cached training, evaluation, prediction, the temporal model and ensembles use it
unchanged. The RNN options of ``ModelConfig`` (``hidden_size`` and ``num_layers`` aside, which mean the model width and
the number of encoder layers here) are refused when set.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from abaw import schema
from abaw.errors import AbawError
from abaw.models.multistream import ModelConfig, MultiStreamModel, _convert, resolve_config
from abaw.schema import option

POSITIONS: tuple[str, ...] = ("sinusoidal", "learned", "relative", "none")
#: ModelConfig options of the RNN fusion that this model does not have (their defaults are accepted).
_RNN_ONLY = ("fusion", "late_fusion", "fusion_dim", "cell_type", "bidirectional", "stream_heads")


@dataclass
class TransformerConfig(ModelConfig):
    """``ModelConfig`` plus the encoder's own options. ``hidden_size``: model width; ``num_layers``: encoder layers."""

    heads: int = option(4, ge=1)  # attention heads; hidden_size must be a multiple
    ff_mult: float = option(4.0, gt=0)  # feed-forward width = ff_mult x hidden_size
    positional: str = option("sinusoidal", choices=POSITIONS)
    max_len: int = option(512, ge=1)  # longest window for learned positions
    attention_window: int = option(0, ge=0)  # 0: every frame of the window; k: frames at most k apart
    mask_invalid: bool = True  # frames where no stream has an input are not attended to
    input_dropout: float = option(0.0, ge=0, lt=1)  # on the projected tokens


_OWN = tuple(f.name for f in dataclasses.fields(TransformerConfig) if f.name not in
             {g.name for g in dataclasses.fields(ModelConfig)})


def resolve_transformer_config(model: str, defaults: dict[str, Any], overrides: dict[str, Any]) -> TransformerConfig:
    """Preset defaults + overrides -> a checked TransformerConfig (unknown keys and bad values: one-line AbawError)."""
    own: dict[str, Any] = {}
    base: list[dict[str, Any]] = []
    for source in (defaults, overrides):
        values = {key: _convert(key, value) for key, value in source.items()}
        if "mask_invalid" in values and isinstance(values["mask_invalid"], str) \
                and values["mask_invalid"].lower() in ("true", "false"):
            values["mask_invalid"] = values["mask_invalid"].lower() == "true"
        if isinstance(values.get("positional"), str):
            values["positional"] = values["positional"].lower()
        schema.check(TransformerConfig, values, label="model option", owner=f" of {model!r}")
        own.update({k: v for k, v in values.items() if k in _OWN})
        base.append({k: v for k, v in values.items() if k not in _OWN})
    cfg = resolve_config(model, base[0], base[1])
    reference = ModelConfig()
    for key in _RNN_ONLY:
        if getattr(cfg, key) != getattr(reference, key):
            raise AbawError(f"model option {key!r} of {model!r} is an RNN-fusion option; the transformer fuses "
                            "streams by concatenation per frame (remove it)")
    out = schema.build(TransformerConfig, {**dataclasses.asdict(cfg), **own})
    if out.hidden_size % out.heads:
        raise AbawError(f"model option 'hidden_size' of {model!r} ({out.hidden_size}) must be a multiple of "
                        f"'heads' ({out.heads})")
    return out


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """The (length, dim) sine/cosine table of "Attention is all you need" (any length, no parameters)."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


def _gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU as a plain function: PyTorch takes its fused inference path only for F.gelu / nn.GELU itself, and that
    path returns NaN for a whole sequence given a float attention mask with -inf entries (torch 2.11, CPU)."""
    return nn.functional.gelu(x)


def alibi_slopes(heads: int) -> torch.Tensor:
    """Per-head slopes of the linear distance bias (geometric, 2^(-8/heads) ... 2^-8, as ALiBi)."""
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / heads) for h in range(heads)])


class FrameTransformer(nn.Module):
    """Per-frame stream features -> concatenation -> projection -> positions -> pre-norm transformer encoder.

    ``forward(feats, mask, valid)``: ``feats`` {stream: (B, T, D_s)}, ``mask`` (B, T) True for real frames, ``valid``
    {stream: (B, T) bool} where a stream has input. Returns (B, T, hidden_size).
    """

    def __init__(self, in_features: dict[str, int], cfg: TransformerConfig):
        super().__init__()
        self.streams = tuple(in_features)
        self.cfg = cfg
        width = cfg.hidden_size
        self.norms = nn.ModuleDict({s: nn.LayerNorm(d) for s, d in in_features.items()})
        self.proj = nn.Linear(sum(in_features.values()), width)
        self.input_dropout = nn.Dropout(cfg.input_dropout) if cfg.input_dropout > 0 else nn.Identity()
        self.positions = nn.Parameter(torch.randn(cfg.max_len, width) * 0.02) if cfg.positional == "learned" else None
        self.register_buffer("slopes", alibi_slopes(cfg.heads), persistent=False)
        self.encoder: nn.TransformerEncoder | None = None
        if cfg.num_layers > 0:
            layer = nn.TransformerEncoderLayer(width, cfg.heads, dim_feedforward=max(1, round(cfg.ff_mult * width)),
                                               dropout=cfg.dropout, activation=_gelu, batch_first=True,
                                               norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, norm=nn.LayerNorm(width),
                                                 enable_nested_tensor=False)
        self.out_features = width

    def _tokens(self, feats: dict[str, torch.Tensor], valid: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        for s in self.streams:
            x = self.norms[s](feats[s])
            if s in valid:  # a missing input is zero, not the LayerNorm's bias
                x = x * valid[s].unsqueeze(-1).to(x.dtype)
            parts.append(x)
        return self.proj(torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0])

    def _attention_bias(self, keys: torch.Tensor, t: int, dtype: torch.dtype) -> torch.Tensor | None:
        """Float mask (B * heads, T, T) added to the attention scores: -inf for masked keys and frames beyond the
        attention window, minus slope x distance for relative positions; None when nothing is masked."""
        cfg = self.cfg
        b = keys.shape[0]
        device = keys.device
        distance = None
        if cfg.positional == "relative" or cfg.attention_window:
            idx = torch.arange(t, device=device)
            distance = (idx.view(1, t) - idx.view(t, 1)).abs()
        windowed = bool(cfg.attention_window) and t > cfg.attention_window + 1
        if bool(keys.all()) and cfg.positional != "relative" and not windowed:
            return None
        bias = torch.zeros(b, cfg.heads, t, t, device=device, dtype=torch.float32)
        if cfg.positional == "relative":
            bias = bias - self.slopes.view(1, -1, 1, 1) * distance.view(1, 1, t, t).float()
        blocked = ~keys.view(b, 1, 1, t)
        if cfg.attention_window:
            blocked = blocked | (distance > cfg.attention_window).view(1, 1, t, t)
        # a query whose keys are all blocked (a window without any input) attends to every real frame instead
        none_left = blocked.all(dim=-1, keepdim=True)
        bias = bias.masked_fill(blocked & ~none_left, float("-inf"))
        return bias.view(b * cfg.heads, t, t).to(dtype)

    def forward(self, feats: dict[str, torch.Tensor], mask: torch.Tensor,
                valid: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self._tokens(feats, valid)
        b, t, _ = x.shape
        if self.positions is not None:
            if t > self.cfg.max_len:
                raise AbawError(f"a window of {t} frames is longer than the learned positions (max_len "
                                f"{self.cfg.max_len}); use positional 'sinusoidal' or 'relative', or a shorter window")
            x = x + self.positions[:t].to(x.dtype)
        elif self.cfg.positional == "sinusoidal":
            x = x + sinusoidal_positions(t, x.shape[-1], x.device).to(x.dtype)
        x = self.input_dropout(x)
        if self.encoder is None:
            return x
        keys = mask
        if self.cfg.mask_invalid and valid and len(valid) == len(self.streams):
            keys = mask & torch.stack([valid[s] for s in self.streams], dim=0).any(dim=0)
        keys = torch.where(keys.any(dim=1, keepdim=True), keys, mask)  # nothing valid: fall back to the padding mask
        # under autocast the attention runs in the autocast dtype; the float mask must match it
        dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        return self.encoder(x, mask=self._attention_bias(keys, t, dtype))


class TemporalTransformer(MultiStreamModel):
    """``MultiStreamModel`` (streams, heads, the model contract) with a transformer encoder as the temporal model."""

    def __init__(self, config: TransformerConfig, name: str = "temporal_transformer"):
        super().__init__(config, name=name)

    def _make_fusion(self, widths: dict[str, int]) -> nn.Module:
        return FrameTransformer(widths, self.config)

    def forward(self, inputs: dict[str, torch.Tensor], mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        mask = self.frame_mask(inputs, mask)
        feats = {s: stream(inputs, mask) for s, stream in self.streams.items()}
        valid = {s: inputs[f"{s}_valid"].to(device=mask.device, dtype=torch.bool)
                 for s in self.stream_names if f"{s}_valid" in inputs}
        embedding = self.fusion(feats, mask, valid)
        out = self.heads(embedding)
        out["embedding"] = embedding
        return out


def temporal_transformer_model(name: str, defaults: dict[str, Any], overrides: dict[str, Any]) -> TemporalTransformer:
    """What a registered entry point calls: resolve the preset with the overrides, build the model."""
    return TemporalTransformer(resolve_transformer_config(name, defaults, overrides), name=name)


__all__ = ["POSITIONS", "FrameTransformer", "TemporalTransformer", "TransformerConfig", "resolve_transformer_config",
           "sinusoidal_positions", "temporal_transformer_model"]

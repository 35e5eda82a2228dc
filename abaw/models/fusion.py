"""Fusion of per-frame stream features.

Early fusion (the NTUA-CVSP model): concatenate the streams' per-frame features, then one shared RNN.
Late fusion: one RNN per stream, then concatenation or a learned per-frame weighting of the streams ("gated": an
independent sigmoid gate per stream; "attention": a softmax over the streams).
"""

from __future__ import annotations

import torch
from torch import nn

from abaw.models.encoders import SequenceRNN

LATE_MODES: tuple[str, ...] = ("concat", "gated", "attention")


class EarlyFusion(nn.Module):
    def __init__(self, in_features: dict[str, int], **rnn_kwargs):
        super().__init__()
        self.streams = tuple(in_features)
        self.rnn = SequenceRNN(sum(in_features.values()), **rnn_kwargs)
        self.out_features = self.rnn.out_features

    def forward(self, feats: dict[str, torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.cat([feats[s] for s in self.streams], dim=-1) if len(self.streams) > 1 else feats[self.streams[0]]
        return self.rnn(x, mask)


class LateFusion(nn.Module):
    """An RNN per stream, then ``mode``: concat, gated or attention (both project each stream to ``fusion_dim``).

    ``last_weights`` keeps the stream weights (B, T, S) of the latest forward (gated / attention), for inspection.
    """

    def __init__(self, in_features: dict[str, int], mode: str = "concat", fusion_dim: int = 128, **rnn_kwargs):
        super().__init__()
        if mode not in LATE_MODES:
            raise ValueError(f"late fusion mode must be one of {LATE_MODES}, got {mode!r}")
        self.streams = tuple(in_features)
        self.mode = mode
        self.rnns = nn.ModuleDict({s: SequenceRNN(d, **rnn_kwargs) for s, d in in_features.items()})
        widths = {s: rnn.out_features for s, rnn in self.rnns.items()}
        self.stream_widths = widths
        self.last_weights: torch.Tensor | None = None
        if mode == "concat":
            self.out_features = sum(widths.values())
            return
        self.proj = nn.ModuleDict({s: nn.Linear(w, fusion_dim) for s, w in widths.items()})
        if mode == "gated":
            self.gate = nn.ModuleDict({s: nn.Linear(w, 1) for s, w in widths.items()})
        else:
            self.score = nn.Linear(fusion_dim, 1, bias=False)
        self.out_features = fusion_dim

    def forward(self, feats: dict[str, torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.combine(self.stream_hidden(feats, mask))

    def stream_hidden(self, feats: dict[str, torch.Tensor], mask: torch.Tensor | None = None
                      ) -> dict[str, torch.Tensor]:
        """Each stream's RNN output (B, T, width)."""
        return {s: self.rnns[s](feats[s], mask) for s in self.streams}

    def combine(self, hidden: dict[str, torch.Tensor]) -> torch.Tensor:
        """The fused per-frame embedding (B, T, out_features) of the streams' RNN outputs."""
        if self.mode == "concat":
            return torch.cat([hidden[s] for s in self.streams], dim=-1)
        projected = torch.stack([torch.tanh(self.proj[s](hidden[s])) for s in self.streams], dim=-2)  # (B, T, S, F)
        if self.mode == "gated":
            weights = torch.sigmoid(torch.cat([self.gate[s](hidden[s]) for s in self.streams], dim=-1))
        else:
            weights = torch.softmax(self.score(projected).squeeze(-1).float(), dim=-1).to(projected.dtype)
        self.last_weights = weights.detach()
        return (weights.unsqueeze(-1) * projected).sum(dim=-2)

"""Multi-task heads of the temporal statistical model, and its BiLSTM-over-probabilities variant.

Input per frame: [block statistics, current embedding (optional), current outputs]. A shared MLP trunk feeds one
head per task: expression (logits; softmax at inference), valence and arousal (tanh), AU (logits; sigmoid), and an
auxiliary expression head that sees the block statistics alone (deep supervision of the temporal branch).
The BiLSTM variant adds a 2-layer bidirectional LSTM over the block's output sequence, whose last states join the
trunk's input.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


def _mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))


class TemporalStatModel(nn.Module):
    """CNU_ADL-style multi-task temporal statistical model over precomputed per-frame features."""

    def __init__(self, in_dim: int, stats_dim: int, n_expr: int = 0, n_au: int = 0, va: bool = False,
                 hidden: int = 256, dropout: float = 0.3, variant: str = "mlp", seq_dim: int = 0,
                 lstm_hidden: int = 32, aux: bool = True) -> None:
        super().__init__()
        if variant not in ("mlp", "bilstm"):
            raise ValueError(f"unknown variant {variant!r}; choose mlp or bilstm")
        if variant == "bilstm" and seq_dim < 1:
            raise ValueError("the bilstm variant needs seq_dim > 0")
        self.variant = variant
        self.stats_dim = stats_dim
        self.lstm = (nn.LSTM(seq_dim, lstm_hidden, num_layers=2, batch_first=True, bidirectional=True,
                             dropout=dropout) if variant == "bilstm" else None)
        trunk_in = in_dim + (2 * lstm_hidden if self.lstm is not None else 0)
        self.trunk = nn.Sequential(nn.Linear(trunk_in, hidden), nn.ReLU(), nn.Dropout(dropout),
                                   nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout))
        half = max(hidden // 2, 8)
        self.expr = _mlp(hidden, half, n_expr, dropout) if n_expr else None
        self.valence = _mlp(hidden, half, 1, dropout) if va else None
        self.arousal = _mlp(hidden, half, 1, dropout) if va else None
        self.au = _mlp(hidden, half, n_au, dropout) if n_au else None
        self.aux = nn.Linear(stats_dim, n_expr) if (aux and n_expr and stats_dim) else None

    def forward(self, x: torch.Tensor, seq: torch.Tensor | None = None,
                lengths: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``x`` (B, in_dim) whose first ``stats_dim`` columns are the statistics; ``seq`` (B, block, seq_dim)
        left-aligned with ``lengths`` (B,) >= 1 for the BiLSTM variant."""
        parts = [x]
        if self.lstm is not None:
            if seq is None or lengths is None:
                raise ValueError("the bilstm variant needs seq and lengths")
            packed = pack_padded_sequence(seq, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
            _, (h, _) = self.lstm(packed)
            parts.append(torch.cat([h[-2], h[-1]], dim=1))  # last layer, forward and backward
        z = self.trunk(torch.cat(parts, dim=1))
        out: dict[str, torch.Tensor] = {}
        if self.expr is not None:
            out["expr"] = self.expr(z)
        if self.valence is not None:
            out["va"] = torch.tanh(torch.cat([self.valence(z), self.arousal(z)], dim=1))
        if self.au is not None:
            out["au"] = self.au(z)
        if self.aux is not None:
            out["aux"] = self.aux(x[:, : self.stats_dim])
        return out

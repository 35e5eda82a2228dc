"""Per-frame task heads: VA (2 values, tanh), EXPR (n_expr logits), AU (n_au logits) for the protocol's classes."""

from __future__ import annotations

import torch
from torch import nn

from abaw.tasks import Protocol, check_track


class TaskHeads(nn.Module):
    """One linear head per task on the per-frame embedding (B, T, F) -> {task: (B, T, k)}."""

    def __init__(self, in_features: int, tasks: tuple[str, ...], protocol: Protocol, dropout: float = 0.0):
        super().__init__()
        self.tasks = tuple(check_track(t) for t in tasks)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.heads = nn.ModuleDict({t: nn.Linear(in_features, protocol.n_outputs(t)) for t in self.tasks})

    def forward(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.dropout(embedding)
        out = {t: head(x) for t, head in self.heads.items()}
        if "va" in out:
            out["va"] = torch.tanh(out["va"])
        return out

"""Losses: CCC against a float64 reference, masking by padding and label validity, empty batches, weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.reference import reference_ccc

from abaw.train.losses import (
    MultiTaskLoss,
    bce_loss,
    ccc_loss,
    class_weights,
    concordance,
    cross_entropy_loss,
    mse_loss,
    pos_weights,
)


def _batch(seed: int = 0, b: int = 3, t: int = 7, n_au: int = 12):
    g = torch.Generator().manual_seed(seed)
    outputs = {"va": torch.tanh(torch.randn(b, t, 2, generator=g)), "expr": torch.randn(b, t, 7, generator=g),
               "au": torch.randn(b, t, n_au, generator=g)}
    targets = {"va": torch.rand(b, t, 2, generator=g) * 2 - 1, "expr": torch.randint(0, 7, (b, t), generator=g),
               "au": torch.randint(0, 2, (b, t, n_au), generator=g).float()}
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2, 2:] = False
    return outputs, targets, mask


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ccc_loss_equals_one_minus_reference_ccc(seed: int) -> None:
    outputs, targets, mask = _batch(seed)
    targets["va"][0, 1, 0] = -5.0  # one invalid valence, its arousal stays valid
    loss = ccc_loss(outputs["va"], targets["va"], mask)
    cccs = []
    for k in range(2):
        valid = mask & (targets["va"][..., k] != -5)
        cccs.append(reference_ccc(outputs["va"][..., k][valid].numpy(), targets["va"][..., k][valid].numpy()))
    assert loss.item() == pytest.approx(1 - np.mean(cccs), abs=1e-6)


def test_ccc_loss_is_the_former_temporal_ccc_loss() -> None:
    """The temporal model's own CCC loss (deleted in favour of ``ccc_loss``), written out: the same numbers up to
    float32 rounding (variance by another summation order), and the same gradients."""
    def former(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
        pm, tm = pred.mean(0), true.mean(0)
        pv, tv = pred.var(0, unbiased=False), true.var(0, unbiased=False)
        cov = ((pred - pm) * (true - tm)).mean(0)
        return (1 - 2 * cov / (pv + tv + (pm - tm) ** 2 + 1e-8)).mean()

    g = torch.Generator().manual_seed(0)
    for n in (2, 3, 17, 256):
        true = torch.rand(n, 2, generator=g) * 2 - 1
        logits = torch.randn(n, 2, generator=g, requires_grad=True)
        a, b = former(torch.tanh(logits), true), ccc_loss(torch.tanh(logits), true)
        assert a.item() == pytest.approx(b.item(), rel=0, abs=3e-7)
        ga, gb = (torch.autograd.grad(v, logits)[0] for v in (a, b))
        torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-7)


def test_concordance_matches_reference_and_constant_prediction_is_zero() -> None:
    x, y = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    assert concordance(x, y).item() == pytest.approx(reference_ccc(x.numpy(), y.numpy()), abs=1e-6)
    assert concordance(x, x).item() == pytest.approx(1.0, abs=1e-6)
    constant = concordance(torch.full((50,), 0.3), y.float())
    assert torch.isfinite(constant) and constant.item() == pytest.approx(0.0, abs=1e-6)


def test_ccc_gradient_is_finite_and_matches_numerical() -> None:
    x = torch.randn(12, 2, dtype=torch.float64, requires_grad=True)
    y = torch.rand(12, 2, dtype=torch.float64) * 2 - 1
    assert torch.autograd.gradcheck(lambda p: concordance(p, y).double(), (x,))


def _perturb(targets: dict, outputs: dict, mask: torch.Tensor) -> tuple[dict, dict]:
    """New values wherever a frame is padding or a label is invalid."""
    outputs = {k: v.clone() for k, v in outputs.items()}
    targets = {k: v.clone() for k, v in targets.items()}
    pad = ~mask
    outputs["va"][pad] = torch.rand_like(outputs["va"][pad])
    outputs["expr"][pad] = 10 * torch.randn_like(outputs["expr"][pad])
    outputs["au"][pad] = 10 * torch.randn_like(outputs["au"][pad])
    targets["va"][pad] = torch.rand_like(targets["va"][pad])
    targets["expr"][pad] = torch.randint_like(targets["expr"][pad], 0, 7)
    targets["au"][pad] = torch.randint_like(targets["au"][pad], 0, 2)
    return outputs, targets


@pytest.mark.parametrize("task", ["va", "expr", "au"])
def test_padding_and_invalid_labels_change_nothing(task: str) -> None:
    outputs, targets, mask = _batch(3)
    # Invalid labels on real frames: their predictions must not matter either.
    targets["va"][0, 0] = -5.0
    targets["expr"][0, 0] = -1
    targets["au"][0, 0, :5] = -1
    crit = MultiTaskLoss((task,))
    base = crit(outputs, targets, mask)[0]
    outputs2, targets2 = _perturb(targets, outputs, mask)
    if task == "au":
        outputs2["au"][0, 0, :5] = 9.0
    else:
        outputs2[task][0, 0] = 0.7 if task == "va" else 5.0
    changed = crit(outputs2, targets2, mask)[0]
    assert changed.item() == pytest.approx(base.item(), abs=1e-6)
    # ... and the masked predictions get no gradient.
    pred = outputs2[task].clone().requires_grad_(True)
    crit({**outputs2, task: pred}, targets2, mask)[0].backward()
    assert torch.all(pred.grad[~mask] == 0)


def test_all_invalid_batch_gives_zero_loss_without_nan() -> None:
    outputs, _, mask = _batch(4)
    outputs = {k: v.clone().requires_grad_(True) for k, v in outputs.items()}
    targets = {"va": torch.full((3, 7, 2), -5.0), "expr": torch.full((3, 7), -1), "au": torch.full((3, 7, 12), -1.0)}
    total, parts = MultiTaskLoss(("va", "expr", "au"), va_loss="ccc+mse")(outputs, targets, mask)
    assert total.item() == 0.0 and all(p.item() == 0.0 for p in parts.values())
    total.backward()
    for v in outputs.values():
        assert v.grad is not None and torch.all(torch.isfinite(v.grad)) and torch.all(v.grad == 0)
    # a fully padded batch with valid labels is the same case
    _, targets, _ = _batch(4)
    total, _ = MultiTaskLoss(("va", "expr", "au"))(outputs, targets, torch.zeros(3, 7, dtype=torch.bool))
    assert total.item() == 0.0


def test_single_valid_frame_is_finite() -> None:
    outputs, targets, _ = _batch(5)
    mask = torch.zeros(3, 7, dtype=torch.bool)
    mask[0, 0] = True
    loss = ccc_loss(outputs["va"], targets["va"], mask)
    assert torch.isfinite(loss)


def test_cross_entropy_weights_and_smoothing_match_torch() -> None:
    outputs, targets, mask = _batch(6)
    targets["expr"][0, :2] = -1
    valid = mask & (targets["expr"] >= 0)
    weight = torch.rand(7) + 0.5
    got = cross_entropy_loss(outputs["expr"], targets["expr"], mask, weight=weight, label_smoothing=0.1)
    want = F.cross_entropy(outputs["expr"][valid], targets["expr"][valid], weight=weight, label_smoothing=0.1)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)


def test_bce_pos_weight_and_mse_match_torch() -> None:
    outputs, targets, mask = _batch(7)
    targets["au"][1, 0, 3] = -1
    pw = torch.rand(12) + 0.5
    valid = mask.unsqueeze(-1) & (targets["au"] >= 0)
    got = bce_loss(outputs["au"], targets["au"], mask, pos_weight=pw)
    per = F.binary_cross_entropy_with_logits(outputs["au"], targets["au"].clamp(min=0), pos_weight=pw,
                                             reduction="none")
    assert got.item() == pytest.approx(per[valid].mean().item(), rel=1e-6)
    got = mse_loss(outputs["va"], targets["va"], mask)
    want = ((outputs["va"] - targets["va"]) ** 2)[mask].mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-6)


def test_multitask_weights_missing_task_and_extra_validity() -> None:
    outputs, targets, mask = _batch(8)
    crit = MultiTaskLoss(("va", "expr", "au"), weights={"va": 2.0, "expr": 0.5, "au": 1.0})
    total, parts = crit(outputs, targets, mask)
    assert total.item() == pytest.approx(2 * parts["va"].item() + 0.5 * parts["expr"].item() + parts["au"].item(),
                                         rel=1e-6)
    no_expr = {k: v for k, v in targets.items() if k != "expr"}
    _, parts2 = crit(outputs, no_expr, mask)
    assert parts2["expr"].item() == 0.0 and parts2["va"].item() == pytest.approx(parts["va"].item())
    only_first = torch.zeros(3, 7, dtype=torch.bool)
    only_first[0] = True
    _, parts3 = crit(outputs, {**targets, "va_valid": only_first}, mask)
    assert parts3["va"].item() == pytest.approx(ccc_loss(outputs["va"], targets["va"], mask & only_first).item())


def test_bf16_predictions_give_float32_loss() -> None:
    outputs, targets, mask = _batch(9)
    outputs = {k: v.to(torch.bfloat16) for k, v in outputs.items()}
    total, _ = MultiTaskLoss(("va", "expr", "au"))(outputs, targets, mask)
    assert total.dtype == torch.float32 and torch.isfinite(total)


def test_class_and_pos_weight_helpers() -> None:
    labels = torch.tensor([0, 0, 0, 1, -1, 2, 2])
    w = class_weights(labels, 4)
    assert w[3] == 0 and w[1] > w[2] > w[0] and w[:3].mean().item() == pytest.approx(1.0)
    au = torch.tensor([[1, 0], [0, 0], [0, -1], [1, 0]])
    assert pos_weights(au).tolist() == [1.0, 1.0]
    assert pos_weights(torch.tensor([[1, 0], [0, 0], [0, 0]])).tolist() == [2.0, 1.0]

"""The fitting steps the training loops share (abaw.train.fitting), on small random tensors."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from abaw.errors import AbawError
from abaw.train.checkpoint import load_checkpoint, save_checkpoint
from abaw.train.fitting import (
    autocast,
    cpu_copy,
    epoch_line,
    grad_scaler,
    num_threads,
    optimizer_step,
    pick_device,
    progress,
    restore_training_state,
    seed_everything,
    show_progress,
    training_state,
)

CPU = torch.device("cpu")


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 2))


def _plain_step(net: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, clip: float | None) -> None:
    opt.zero_grad(set_to_none=True)
    net(x).pow(2).mean().backward()
    if clip:
        nn.utils.clip_grad_norm_(net.parameters(), clip)
    opt.step()


@pytest.mark.parametrize("clip", [None, 0.05])
def test_optimizer_step_equals_the_written_out_step(clip: float | None) -> None:
    x = torch.randn(16, 4)
    a, b = _net(), _net()
    opt_a, opt_b = torch.optim.SGD(a.parameters(), lr=0.1), torch.optim.SGD(b.parameters(), lr=0.1)
    for _ in range(3):
        torch.manual_seed(1)
        _plain_step(a, opt_a, x, clip)
        torch.manual_seed(1)
        norm = optimizer_step(b(x).pow(2).mean(), opt_b, grad_clip=clip)
        assert (norm is None) == (clip is None)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_clipping_bounds_the_gradient_norm_and_reports_it() -> None:
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.0)  # lr 0: the gradients stay for inspection
    loss = 100 * net(torch.randn(8, 4)).pow(2).mean()
    norm = optimizer_step(loss, opt, grad_clip=0.5)
    assert float(norm) > 0.5
    after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in net.parameters()]))
    assert float(after) == pytest.approx(0.5, rel=1e-4)


def test_autocast_on_cpu_bf16_and_float32() -> None:
    lin, x = nn.Linear(4, 3), torch.randn(2, 4)
    with autocast(CPU, "bf16"):
        assert lin(x).dtype == torch.bfloat16
    with autocast(CPU, None):
        assert lin(x).dtype == torch.float32


def test_fp16_needs_cuda_and_unknown_modes_fail() -> None:
    with pytest.raises(AbawError, match="needs a CUDA device"):
        autocast(CPU, "fp16")
    with pytest.raises(AbawError, match="amp must be"):
        grad_scaler(CPU, "fp8")
    assert not grad_scaler(CPU, "bf16").is_enabled() and not grad_scaler(CPU, None).is_enabled()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_fp16_on_cuda_scales_the_loss() -> None:
    dev = torch.device("cuda")
    net = _net().to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    scaler = grad_scaler(dev, "fp16")
    assert scaler.is_enabled()
    with autocast(dev, "fp16"):
        loss = net(torch.randn(8, 4, device=dev)).pow(2).mean()
    assert optimizer_step(loss.float(), opt, grad_clip=1.0, scaler=scaler) is not None
    assert scaler.state_dict()["scale"] > 0


def test_training_state_round_trip_continues_exactly(tmp_path) -> None:
    """Save mid-training, keep going; restore into fresh objects and go the same way: identical weights."""
    x = torch.randn(16, 4)

    def steps(net: nn.Module, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler) -> None:
        for _ in range(3):
            noise = float(np.random.rand()) + random.random()  # the numpy and python RNGs matter too
            optimizer_step(net(x + noise).pow(2).mean(), opt)  # dropout: the torch RNG matters
            sched.step()

    def make(seed: int) -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        net = _net(seed)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
        return net, opt, torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

    seed_everything(3)
    net, opt, sched = make(0)
    steps(net, opt, sched)
    path = tmp_path / "state.pt"
    save_checkpoint(path, training_state(net, opt, sched, grad_scaler(CPU, None), epoch=1, history=[{"loss": 0.5}]))
    steps(net, opt, sched)

    seed_everything(99)  # other RNG states and other weights: the checkpoint must bring everything back
    net2, opt2, sched2 = make(1)
    state = load_checkpoint(path)  # weights_only=True inside
    assert state["epoch"] == 1 and state["history"] == [{"loss": 0.5}]
    restore_training_state(state, net2, opt2, sched2, grad_scaler(CPU, None))
    steps(net2, opt2, sched2)
    for pa, pb in zip(net.parameters(), net2.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert sched.get_last_lr() == sched2.get_last_lr()


def test_cpu_copy_is_detached() -> None:
    net = _net()
    copy = cpu_copy(net.state_dict())
    with torch.no_grad():
        net[0].weight.add_(1.0)
    assert not torch.equal(copy["0.weight"], net[0].weight)


def test_device_progress_and_epoch_line() -> None:
    assert pick_device("cpu") == CPU
    assert pick_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert show_progress(False) is False
    bar = progress(range(3), enabled=False, desc="x")
    bar.set_postfix(loss="1")  # a disabled bar still has tqdm's methods
    assert list(bar) == [0, 1, 2]
    line = epoch_line(2, {"epoch": 2, "loss": 0.123456, "val": {"va": 0.5}, "skip": None, "n": 3}, best=True)
    assert line == "epoch 2: loss 0.1235, val/va 0.5000, n 3 (best)"


def test_num_threads_is_restored() -> None:
    before = torch.get_num_threads()
    with num_threads(1):
        assert torch.get_num_threads() == 1
    with num_threads(None):
        assert torch.get_num_threads() == before
    assert torch.get_num_threads() == before


# ---- devices, precision, loaders and DDP settings (issue 13, the GPU path; no GPU needed) --------------------------

def test_devices_auto_explicit_and_unknown() -> None:
    from abaw.train.fitting import parse_device

    assert pick_device("auto") == pick_device(None) == pick_device(" AUTO ")
    assert pick_device("cpu") == CPU and pick_device(CPU) is CPU
    assert parse_device("cuda:1") == torch.device("cuda", 1) and parse_device("cuda") == torch.device("cuda")
    for bad in ("gpu", "cuda:x", "cpu:0:1"):
        with pytest.raises(AbawError, match="unknown device"):
            parse_device(bad)
    with pytest.raises(AbawError, match="unknown device 'gpu'"):
        pick_device("gpu")


def test_amp_none_is_float32_and_fp16_scales_only_on_cuda() -> None:
    from abaw.train.fitting import amp_mode

    assert amp_mode("none") is None and amp_mode(None) is None and amp_mode("bf16") == "bf16"
    with autocast(CPU, "none"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert not grad_scaler(CPU, "none").is_enabled()
    with pytest.raises(AbawError, match="needs a CUDA device") as err:
        grad_scaler(CPU, "fp16")
    assert "\n" not in str(err.value)


def test_loader_options_leave_the_cpu_as_it_was() -> None:
    import os

    from abaw.train.fitting import CUDA_WORKERS, loader_options

    assert loader_options(None, CPU) == {"num_workers": 0, "pin_memory": False, "persistent_workers": False}
    assert loader_options(2, CPU) == {"num_workers": 2, "pin_memory": False, "persistent_workers": False}
    gpu = torch.device("cuda", 0)  # only the settings: nothing runs on it
    assert loader_options(None, gpu) == {"num_workers": min(CUDA_WORKERS, os.cpu_count() or 1), "pin_memory": True,
                                         "persistent_workers": True}
    assert loader_options(0, gpu) == {"num_workers": 0, "pin_memory": False, "persistent_workers": False}


def test_setup_device_changes_nothing_on_the_cpu() -> None:
    from abaw.train.fitting import setup_device

    before = (torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32)
    assert setup_device(CPU) is CPU
    assert (torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32) == before


def test_ddp_searches_unused_parameters_only_when_some_may_get_no_gradient() -> None:
    from abaw.models import create_model
    from abaw.train.distributed import find_unused_parameters
    from abaw.train.losses import MultiTaskLoss

    model = create_model("demo_face", tasks=("va", "expr"), image_size=16)
    assert not find_unused_parameters(model, ["va", "expr"])
    assert find_unused_parameters(model, ["va"])  # the EXPR head is not trained: it gets no gradient
    assert find_unused_parameters(nn.Linear(2, 2), ["va"])  # not a multi-stream model: search
    # The rule's premise: every trainable parameter gets a gradient, even from a batch without any valid label.
    inputs = {"face": torch.randn(2, 3, 3, 16, 16)}
    out = model(inputs)
    targets = {"va": torch.full((2, 3, 2), -5.0), "expr": torch.full((2, 3), -1, dtype=torch.long)}
    loss, _ = MultiTaskLoss(("va", "expr")).forward({k: out[k] for k in ("va", "expr")}, targets)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_process_group_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime

    from abaw.train.distributed import DEFAULT_TIMEOUT_MINUTES, TIMEOUT_ENV, timeout

    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert timeout() == datetime.timedelta(minutes=DEFAULT_TIMEOUT_MINUTES) > datetime.timedelta(minutes=30)
    monkeypatch.setenv(TIMEOUT_ENV, "90")
    assert timeout() == datetime.timedelta(minutes=90)
    for bad in ("0", "soon"):
        monkeypatch.setenv(TIMEOUT_ENV, bad)
        with pytest.raises(AbawError, match=TIMEOUT_ENV):
            timeout()

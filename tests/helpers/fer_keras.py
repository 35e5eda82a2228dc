"""A randomly initialised FER2013 mini-Xception written in the published Keras ``.hdf5`` layout, so that tests run the
whole path (h5py reader, ONNX export, OpenCV) without the real weights file."""

from __future__ import annotations

from pathlib import Path

import h5py
import torch

from abaw.models import fer


def random_mini_xception(seed: int = 0) -> fer.MiniXception:
    """Random weights and batch-norm statistics (the defaults, mean 0 and variance 1, would hide a mix-up)."""
    torch.manual_seed(seed)
    model = fer.MiniXception()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        model.head.weight.mul_(10)  # logits of a few units, so that different inputs give visibly different outputs
    return model.eval()


def write_keras_h5(model: fer.MiniXception, path: Path) -> Path:
    """``model`` as Keras 2 saves it: ``model_weights/<layer>/<layer>_1/<array>:0``, kernels HWIO (the inverse of
    :func:`abaw.models.fer.load_state_dict`)."""
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    arrays: dict[str, dict] = {}
    for prefix, layer in fer._keras_names():
        if layer.startswith("batch_normalization"):
            arrays[layer] = {theirs: state[f"{prefix}.{ours}"] for ours, theirs in (
                ("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                ("running_var", "moving_variance"))}
        elif layer.startswith("separable"):
            arrays[layer] = {"depthwise_kernel": state[f"{prefix}.0.weight"].transpose(2, 3, 0, 1),
                             "pointwise_kernel": state[f"{prefix}.1.weight"].transpose(2, 3, 1, 0)}
        else:
            arrays[layer] = {"kernel": state[f"{prefix}.weight"].transpose(2, 3, 1, 0)}
            if f"{prefix}.bias" in state:
                arrays[layer]["bias"] = state[f"{prefix}.bias"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        for layer, named in arrays.items():
            group = fh.create_group(f"model_weights/{layer}/{layer}_1")
            for name, array in named.items():
                group.create_dataset(f"{name}:0", data=array)
    return path

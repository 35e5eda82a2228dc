"""The FER2013 mini-Xception expression classifier (Arriaga et al., oarriaga/face_classification) in PyTorch.

Weights are read from the published Keras ``.hdf5`` with h5py (no TensorFlow). Input: 64x64 grey face crops scaled
to [-1, 1]; output: logits in the model's own class order (FER2013: angry, disgust, fear, happy, sad, surprise,
neutral), which :mod:`abaw.models.fer_runtime` maps explicitly onto ours (``abaw.tasks.EXPR_CLASSES_7``).

This port is the reference. ``abaw predict`` runs its ONNX export (:func:`export_onnx`) with OpenCV, without torch:
:mod:`abaw.models.fer_runtime` holds the preprocessing and :class:`~abaw.models.fer_runtime.ExpressionClassifier`,
and imports this module only to make the export once or to run the ``torch`` backend.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from abaw.errors import AbawError
from abaw.fileio import atomic_path

BN_EPS = 1e-3  # Keras' default, not PyTorch's 1e-5
ONNX_OPSET = 13


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after) along one axis: the extra pixel goes after, unlike PyTorch."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class KerasSame(nn.Module):
    """Pad a (N, C, H, W) tensor the way Keras' ``padding='same'`` does for the wrapped layer."""

    def __init__(self, layer: nn.Module, kernel: int, stride: int, value: float = 0.0) -> None:
        super().__init__()
        self.layer, self.kernel, self.stride, self.value = layer, kernel, stride, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # int(): the ONNX export (:func:`export_onnx`) then bakes the padding in for its fixed input size
        top, bottom = same_padding(int(x.shape[-2]), self.kernel, self.stride)
        left, right = same_padding(int(x.shape[-1]), self.kernel, self.stride)
        return self.layer(F.pad(x, (left, right, top, bottom), value=self.value))


class SeparableConv(nn.Sequential):
    """Keras ``SeparableConv2D`` (depthwise 3x3 then pointwise 1x1, no bias)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1, bias=False))


class XceptionModule(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(KerasSame(nn.Conv2d(cin, cout, 1, stride=2, bias=False), 1, 2),
                                      nn.BatchNorm2d(cout, eps=BN_EPS))
        self.main = nn.Sequential(
            SeparableConv(cin, cout), nn.BatchNorm2d(cout, eps=BN_EPS), nn.ReLU(inplace=True),
            SeparableConv(cout, cout), nn.BatchNorm2d(cout, eps=BN_EPS),
            KerasSame(nn.MaxPool2d(3, stride=2), 3, 2, value=-3.0e38),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.residual(x)


class MiniXception(nn.Module):
    """mini-Xception: (N, 1, 64, 64) in [-1, 1] -> (N, 7) logits in FER2013 order (softmax gives Keras' output)."""

    widths = (16, 32, 64, 128)
    input_size = 64

    def __init__(self, num_classes: int = 7) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 8, 3, bias=False), nn.BatchNorm2d(8, eps=BN_EPS), nn.ReLU(inplace=True),
            nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8, eps=BN_EPS), nn.ReLU(inplace=True),
        )
        cins = (8, *self.widths[:-1])
        self.blocks = nn.Sequential(*(XceptionModule(a, b) for a, b in zip(cins, self.widths, strict=True)))
        self.head = nn.Conv2d(self.widths[-1], num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x))).mean(dim=(2, 3))


def _keras_names() -> list[tuple[str, str]]:
    """(torch parameter prefix, Keras layer name) pairs, following the Keras graph's layer numbering."""
    pairs = [("stem.0", "conv2d_1"), ("stem.1", "batch_normalization_1"),
             ("stem.3", "conv2d_2"), ("stem.4", "batch_normalization_2")]
    for i in range(4):
        bn = 3 + 3 * i  # residual BN, then the two BNs of the separable branch
        block = f"blocks.{i}"
        pairs += [
            (f"{block}.residual.0.layer", f"conv2d_{3 + i}"), (f"{block}.residual.1", f"batch_normalization_{bn}"),
            (f"{block}.main.0", f"separable_conv2d_{1 + 2 * i}"), (f"{block}.main.1", f"batch_normalization_{bn + 1}"),
            (f"{block}.main.3", f"separable_conv2d_{2 + 2 * i}"), (f"{block}.main.4", f"batch_normalization_{bn + 2}"),
        ]
    pairs.append(("head", "conv2d_7"))
    return pairs


def read_keras_weights(path: str | Path) -> dict[str, np.ndarray]:
    """All arrays of a Keras 2 ``.hdf5`` model as ``{"layer/kind": array}`` (e.g. ``conv2d_1/kernel``)."""
    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as fh:
            group = fh.get("model_weights", fh)

            def visit(name: str, obj: object) -> None:
                if isinstance(obj, h5py.Dataset):
                    layer, leaf = name.split("/")[0], name.split("/")[-1].split(":")[0]
                    out[f"{layer}/{leaf}"] = np.asarray(obj[()], dtype=np.float32)

            group.visititems(visit)
    except OSError as exc:
        raise AbawError(f"not a readable Keras .hdf5 file ({exc})", path=path) from None
    return out


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Convert the Keras weights to a :class:`MiniXception` state dict (kernels HWIO -> OIHW)."""
    keras = read_keras_weights(path)
    state: dict[str, torch.Tensor] = {}
    try:
        for prefix, layer in _keras_names():
            if layer.startswith("batch_normalization"):
                for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                                     ("running_var", "moving_variance")):
                    state[f"{prefix}.{ours}"] = torch.from_numpy(keras[f"{layer}/{theirs}"])
                state[f"{prefix}.num_batches_tracked"] = torch.tensor(0)
            elif layer.startswith("separable"):
                depthwise = keras[f"{layer}/depthwise_kernel"]  # (3, 3, in, 1)
                pointwise = keras[f"{layer}/pointwise_kernel"]  # (1, 1, in, out)
                state[f"{prefix}.0.weight"] = torch.from_numpy(depthwise.transpose(2, 3, 0, 1).copy())
                state[f"{prefix}.1.weight"] = torch.from_numpy(pointwise.transpose(3, 2, 0, 1).copy())
            else:
                state[f"{prefix}.weight"] = torch.from_numpy(keras[f"{layer}/kernel"].transpose(3, 2, 0, 1).copy())
                if f"{layer}/bias" in keras:
                    state[f"{prefix}.bias"] = torch.from_numpy(keras[f"{layer}/bias"])
    except KeyError as exc:
        raise AbawError(f"not the FER2013 mini-Xception (missing {exc})", path=path) from None
    return state


def load_mini_xception(path: str | Path | None = None) -> MiniXception:
    """The pretrained model in eval mode; ``path`` defaults to ``fer2013_mini_xception`` of abaw.weights."""
    if path is None:
        from abaw.weights import fetch

        path = fetch("fer2013_mini_xception")
    model = MiniXception()
    model.load_state_dict(load_state_dict(path))
    return model.eval()


def export_onnx(model: MiniXception, path: str | Path) -> Path:
    """Write ``model`` as ONNX (input ``x`` (N, 1, 64, 64), output ``logits`` (N, 7)) for ``cv2.dnn``, atomically.

    The TorchScript exporter with a fixed input size: the Keras 'same' paddings become constants (OpenCV runs any
    batch size on it), and the max pooling pads with -3e38, not -inf (OpenCV cannot read the Neg node of -inf).
    """
    import onnx  # noqa: F401  (torch.onnx.export needs it; an ImportError names it for the fallback's log line)

    path = Path(path)
    example = torch.zeros(2, 1, model.input_size, model.input_size)
    with atomic_path(path) as tmp, warnings.catch_warnings(), torch.inference_mode(False):
        warnings.simplefilter("ignore")  # the exporter's notes on constant folding
        torch.onnx.export(model.eval(), example, str(tmp), dynamo=False, input_names=["x"], output_names=["logits"],
                          opset_version=ONNX_OPSET)
    return path


class TorchLogits:
    """(N, 1, 64, 64) float32 -> (N, 7) logits with the PyTorch model (the reference backend of
    :class:`abaw.models.fer_runtime.ExpressionClassifier`)."""

    def __init__(self, path: str | Path, device: Any = "cpu") -> None:
        self.device = torch.device(device)
        # channels_last: 2.7x less CPU time per frame than NCHW here (depthwise convs; scripts/bench_predict_speed.py)
        self.model = load_mini_xception(path).to(self.device, memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device, memory_format=torch.channels_last)
        return self.model(x).float().cpu().numpy()

"""The FER2013 mini-Xception expression classifier (Arriaga et al., oarriaga/face_classification) in PyTorch.

Weights are read from the published Keras ``.hdf5`` with h5py (no TensorFlow). Input: 64x64 grey face crops scaled
to [-1, 1]. The model's own class order (FER2013: angry, disgust, fear, happy, sad, surprise, neutral) is mapped
explicitly onto ours (``abaw.tasks.EXPR_CLASSES_7``) by :data:`FER2013_TO_ABAW`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from abaw import tasks
from abaw.errors import AbawError
from abaw.video.resize import resize

FER2013_CLASSES = tasks.FER2013_CLASSES
#: FER2013 output index -> index in ``abaw.tasks.EXPR_CLASSES_7`` (every FER2013 class exists in ABAW's 7).
FER2013_TO_ABAW: dict[int, int] = tasks.class_mapping(FER2013_CLASSES, tasks.EXPR_CLASSES_7)
INPUT_SIZE = 64
BN_EPS = 1e-3  # Keras' default, not PyTorch's 1e-5


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
        top, bottom = same_padding(x.shape[-2], self.kernel, self.stride)
        left, right = same_padding(x.shape[-1], self.kernel, self.stride)
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
            KerasSame(nn.MaxPool2d(3, stride=2), 3, 2, value=float("-inf")),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.residual(x)


class MiniXception(nn.Module):
    """mini-Xception: (N, 1, 64, 64) in [-1, 1] -> (N, 7) logits in FER2013 order (softmax gives Keras' output)."""

    widths = (16, 32, 64, 128)

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


def preprocess(faces_bgr: list[np.ndarray]) -> torch.Tensor:
    """BGR (or grey) face crops -> (N, 1, 64, 64) float in [-1, 1], as the Keras training code did."""
    batch = np.zeros((len(faces_bgr), 1, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for i, face in enumerate(faces_bgr):
        grey = face if face.ndim == 2 else cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
        grey = resize(grey, INPUT_SIZE, INPUT_SIZE)
        batch[i, 0] = grey.astype(np.float32) / 255.0 * 2.0 - 1.0
    return torch.from_numpy(batch)


def to_abaw_order(probs_fer: np.ndarray) -> np.ndarray:
    """Reorder (..., 7) FER2013-ordered probabilities into ``abaw.tasks.EXPR_CLASSES_7`` order."""
    out = np.zeros(probs_fer.shape[:-1] + (len(tasks.EXPR_CLASSES_7),), dtype=probs_fer.dtype)
    for src, dst in FER2013_TO_ABAW.items():
        out[..., dst] = probs_fer[..., src]
    return out


class ExpressionClassifier:
    """Face crops in, probabilities in ABAW's 7-class order out (``abaw.tasks.EXPR_CLASSES_7``)."""

    classes = tasks.EXPR_CLASSES_7

    def __init__(self, path: str | Path | None = None, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        # channels_last: 2.7x less CPU time per frame than NCHW here (depthwise convs; scripts/bench_predict_speed.py)
        self.model = load_mini_xception(path).to(self.device, memory_format=torch.channels_last)

    @torch.inference_mode()
    def predict(self, faces_bgr: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
        if not faces_bgr:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        probs = []
        for start in range(0, len(faces_bgr), batch_size):
            x = preprocess(faces_bgr[start:start + batch_size]).to(self.device, memory_format=torch.channels_last)
            probs.append(torch.softmax(self.model(x), dim=1).float().cpu().numpy())
        return to_abaw_order(np.concatenate(probs))


def face_crop_for_fer(image: np.ndarray, box: tuple[float, float, float, float], margin: float = 0.1) -> np.ndarray:
    """The face box widened by ``margin`` on each side, clipped to the image (the crop FER2013 faces resemble)."""
    x, y, w, h = box
    height, width = image.shape[:2]
    x0, y0 = int(max(0, np.floor(x - margin * w))), int(max(0, np.floor(y - margin * h)))
    x1, y1 = int(min(width, np.ceil(x + w * (1 + margin)))), int(min(height, np.ceil(y + h * (1 + margin))))
    if x1 <= x0 or y1 <= y0:
        return np.zeros((INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    return image[y0:y1, x0:x1]

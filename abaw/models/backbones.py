"""Per-frame CNN backbones: ``create_backbone(name, pretrained) -> nn.Module`` mapping (N, C, H, W) to (N, D).

Names: any ``timm`` model (``resnet18``, ``efficientnet_b0``, ...), torchvision models prefixed ``tv_``
(``tv_resnet50``, ``tv_mobilenet_v2``, ...; ImageNet weights come from :mod:`abaw.weights`, so they load offline),
``vggface`` (the VGG-Face conv part used by AffWildNet), and the small ``tiny_cnn`` / ``audio_cnn`` for tests, demos
and the audio stream. Every backbone has ``.num_features`` (D), ``.backbone_name`` and ``.normalization``.

Backbone checkpoints (``save_backbone_checkpoint`` / ``load_backbone_checkpoint``) are ``weights_only``-safe dicts
``{"format": "abaw-backbone", "backbone": name, "state_dict": ..., **meta}``, e.g. a face CNN pretrained on AffectNet.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import timm
import torch
import torchvision
from torch import nn

from abaw.errors import AbawError
from abaw.fileio import atomic_path, load_failure_reason

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "abaw-backbone"
#: Input normalisations a stream may use: mean/std on [0, 1] pixels. "minus_one_one" maps [0, 1] to [-1, 1].
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "minus_one_one": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
#: The 13 conv layers of VGG-16 ("M" = 2x2 max pooling), the layout of VGG-Face.
VGG16_LAYOUT: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
                                 "M"]
_OWN = ("tiny_cnn", "audio_cnn", "vggface")


class SimpleCNN(nn.Module):
    """A few conv-BN-ReLU blocks and global average pooling: fast on CPU (tests, demos, the audio stream)."""

    def __init__(self, in_chans: int = 3, widths: tuple[int, ...] = (16, 32, 64, 128), downsample: str = "stride"):
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_chans
        for width in widths:
            stride = 2 if downsample == "stride" else 1
            layers += [nn.Conv2d(prev, width, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            if downsample == "maxpool":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            prev = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = prev

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)


class VGGFaceConv(nn.Module):
    """VGG-Face conv part (13 conv layers, VGG-16 layout), flattened after pooling to ``pool_size`` x ``pool_size``.

    At AffWildNet's 96x96 input pool5 is 3x3x512 = 4608 values, which the adaptive pooling keeps as is; other input
    sizes are pooled to the same 3x3 grid so FC1 keeps its shape. No VGG-Face weights are available offline.
    """

    def __init__(self, in_chans: int = 3, pool_size: int = 3):
        super().__init__()
        self.features = torchvision.models.vgg.make_layers(_vgg_layout(in_chans), batch_norm=False)
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.num_features = 512 * pool_size * pool_size
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)


def _vgg_layout(in_chans: int) -> list[int | str]:
    if in_chans != 3:
        raise AbawError(f"vggface takes 3 input channels, not {in_chans}")
    return list(VGG16_LAYOUT)


def _torchvision(arch: str, in_chans: int, **kwargs: Any) -> nn.Module:
    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise AbawError(f"unknown torchvision backbone 'tv_{arch}'")
    if in_chans != 3:
        raise AbawError(f"torchvision backbone 'tv_{arch}' takes 3 input channels, not {in_chans}")
    model = torchvision.models.get_model(arch, weights=None, **kwargs)
    # Cut the classifier where timm's num_classes=0 would: replace the last Linear layer by Identity.
    for attr in ("fc", "classifier", "head", "heads"):
        head = getattr(model, attr, None)
        if isinstance(head, nn.Linear):
            setattr(model, attr, nn.Identity())
            model.num_features = head.in_features
            return model
        if isinstance(head, nn.Sequential):
            linears = [i for i, m in enumerate(head) if isinstance(m, nn.Linear)]
            if linears:
                model.num_features = head[linears[-1]].in_features
                head[linears[-1]] = nn.Identity()
                return model
    raise AbawError(f"cannot find the classifier of torchvision model 'tv_{arch}' to use it as a backbone")


def _timm(name: str, in_chans: int, **kwargs: Any) -> nn.Module:
    if not timm.is_model(name):
        raise AbawError(f"unknown backbone {name!r} (not a timm model, nor tv_<torchvision name>, vggface, tiny_cnn, "
                        "audio_cnn)")
    return timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans, **kwargs)


def parse_pretrained(value: Any) -> bool | Path:
    """``False`` / ``True`` (ImageNet) / a checkpoint path, from a bool, None or a CLI/JSON string."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    text = str(value).strip()
    if text.lower() in ("", "none", "false", "no", "0", "scratch"):
        return False
    if text.lower() in ("true", "yes", "1", "imagenet"):
        return True
    path = Path(text).expanduser()
    if not path.is_file():
        raise AbawError("pretrained weights file not found", path=path)
    return path


def create_backbone(name: str, pretrained: bool | str | Path | None = False, in_chans: int = 3,
                    **kwargs: Any) -> nn.Module:
    """Build backbone ``name`` mapping (N, in_chans, H, W) to (N, num_features).

    ``pretrained``: False (random init), True (ImageNet weights through :mod:`abaw.weights`; a backbone without a
    registered weights file is a one-line AbawError) or the path of a backbone checkpoint or plain state_dict.
    """
    pretrained = parse_pretrained(pretrained)
    if name == "tiny_cnn":
        model: nn.Module = SimpleCNN(in_chans, **kwargs)
    elif name == "audio_cnn":
        model = SimpleCNN(in_chans, downsample="maxpool", **kwargs)
    elif name == "vggface":
        model = VGGFaceConv(in_chans, **kwargs)
    elif name.startswith("tv_"):
        model = _torchvision(name[3:], in_chans, **kwargs)
    else:
        model = _timm(name, in_chans, **kwargs)
    model.backbone_name = name
    model.normalization = "minus_one_one" if name == "vggface" else "imagenet"
    if pretrained is True:
        _load_file(model, imagenet_weights(name))
    elif pretrained:
        _load_file(model, pretrained)
    return model


def imagenet_weights(name: str) -> Path:
    """The offline ImageNet weights file of backbone ``name`` (catalogue entry ``<arch>_imagenet`` of abaw.weights)."""
    from abaw import weights

    if name in _OWN:
        raise AbawError(f"no pretrained weights exist for backbone {name!r}; pass pretrained=False or the path of a "
                        "backbone checkpoint")
    key = f"{name[3:]}_imagenet" if name.startswith("tv_") else f"timm_{name}_imagenet"
    if key not in weights.CATALOGUE:
        have = sorted(k for k in weights.CATALOGUE if k.endswith("_imagenet"))
        raise AbawError(f"no ImageNet weights registered for backbone {name!r} (abaw.weights has {', '.join(have)}); "
                        "pass pretrained=False or a checkpoint path")
    return weights.fetch(key)


def _read(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad or unsafe file
        raise AbawError(f"cannot read weights: {load_failure_reason(exc)}", path=path) from None


def _load_file(model: nn.Module, path: Path) -> dict[str, Any]:
    obj = _read(path)
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        return _load_checkpoint_obj(model, obj, path)
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AbawError("not a state_dict nor an abaw backbone checkpoint", path=path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise AbawError(f"weights do not fit backbone {model.backbone_name!r}: {_first_error(exc)}",
                        path=path) from None
    if result.missing_keys:
        raise AbawError(f"weights do not fit backbone {model.backbone_name!r}: {len(result.missing_keys)} missing "
                        f"tensors (first {result.missing_keys[0]!r})", path=path)
    if result.unexpected_keys:
        log.info("%s: ignored %d tensors not in the backbone (classifier): %s", path, len(result.unexpected_keys),
                 ", ".join(result.unexpected_keys[:4]))
    return {}


def _first_error(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[1] if len(lines) > 1 else (lines[0] if lines else type(exc).__name__)


def _load_checkpoint_obj(model: nn.Module, obj: dict[str, Any], path: Path) -> dict[str, Any]:
    name = getattr(model, "backbone_name", None)
    if obj.get("backbone") != name:
        raise AbawError(f"checkpoint is for backbone {obj.get('backbone')!r}, not {name!r}", path=path)
    try:
        model.load_state_dict(obj["state_dict"], strict=True)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise AbawError(f"checkpoint does not fit backbone {name!r}: {_first_error(exc)}", path=path) from None
    return {k: v for k, v in obj.items() if k not in ("format", "state_dict")}


def save_backbone_checkpoint(backbone: nn.Module, name: str | None, path: str | Path, **meta: Any) -> Path:
    """Write ``backbone``'s weights atomically as a ``weights_only``-safe abaw backbone checkpoint."""
    name = name or getattr(backbone, "backbone_name", None)
    if not name:
        raise ValueError("save_backbone_checkpoint needs the backbone name")
    reserved = {"format", "backbone", "state_dict"} & set(meta)
    if reserved:
        raise ValueError(f"meta keys {sorted(reserved)} are reserved")
    obj = {"format": CHECKPOINT_FORMAT, "backbone": name,
           "state_dict": {k: v.detach().cpu() for k, v in backbone.state_dict().items()}, **meta}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def load_backbone_checkpoint(backbone: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load an abaw backbone checkpoint into ``backbone`` (names must match); return its meta data."""
    path = Path(path)
    if not path.is_file():
        raise AbawError("backbone checkpoint not found", path=path)
    obj = _read(path)
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise AbawError(f"not an abaw backbone checkpoint (no format {CHECKPOINT_FORMAT!r})", path=path)
    return _load_checkpoint_obj(backbone, obj, path)

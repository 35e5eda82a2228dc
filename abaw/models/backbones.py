"""Per-frame CNN backbones: ``create_backbone(name, pretrained) -> nn.Module`` mapping (N, C, H, W) to (N, D).

Names: any ``timm`` model (``resnet18``, ``efficientnet_b0``, ...), torchvision models prefixed ``tv_``
(``tv_resnet50``, ``tv_mobilenet_v2``, ...), ``vggface`` (the VGG-Face conv part used by AffWildNet), and the small
``tiny_cnn`` / ``audio_cnn`` for tests, demos and the audio stream. ``<arch>.<tag>`` (timm's naming) is architecture
``<arch>`` with other weights: ``tv_resnet50.places365`` (a scene CNN for the context stream),
``tf_efficientnet_b0.hsemotion_vgaf`` (HSEmotion's AffectNet face model). Every backbone has ``.num_features`` (D),
``.backbone_name`` and ``.normalization``.

``pretrained=True``: the backbones of :data:`BACKBONE_WEIGHTS` load their file by name through :mod:`abaw.weights`
(offline folder ``ABAW_WEIGHTS_DIR``, cache, download), read by :mod:`abaw.models.convert`; any other timm model takes
timm's own weights: a file ``<name>.safetensors`` (or ``.pth``) in the offline folder or cache, given to timm with
``pretrained_cfg_overlay=dict(file=...)``, else timm's download from the Hugging Face hub unless offline.

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
#: The catalogue entry (abaw.weights) each backbone starts from with ``pretrained=True``.
BACKBONE_WEIGHTS: dict[str, str] = {
    "tv_resnet18": "resnet18_imagenet",
    "tv_resnet50": "resnet50_imagenet",
    "tv_mobilenet_v2": "mobilenet_v2_imagenet",
    "vggface": "vgg_face_dag",
    "tv_resnet18.places365": "resnet18_places365",
    "tv_resnet50.places365": "resnet50_places365",
    "tf_efficientnet_b0.hsemotion_vgaf": "hsemotion_enet_b0_8_best_vgaf",
    "tf_efficientnet_b0.hsemotion_va_mtl": "hsemotion_enet_b0_8_va_mtl",
    "tf_efficientnet_b2.hsemotion": "hsemotion_enet_b2_8",
}
#: File names timm's own weights may have in the offline folder or the cache: ``<timm name><suffix>``.
TIMM_FILE_SUFFIXES = (".safetensors", ".pth", ".bin")


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
    sizes are pooled to the same 3x3 grid so FC1 keeps its shape. ``pretrained=True`` loads VGG-Face (catalogue entry
    ``vgg_face_dag``, converted by :func:`abaw.models.convert.vgg_face_dag_state_dict` for [-1, 1] input).
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


def _timm(name: str, in_chans: int, pretrained_file: Path | None = None, **kwargs: Any) -> nn.Module:
    """timm model ``name`` without classifier; ``pretrained_file``: load it through timm (its own filters apply)."""
    if not timm.is_model(name):
        raise AbawError(f"unknown backbone {name!r} (not a timm model, nor tv_<torchvision name>, vggface, tiny_cnn, "
                        "audio_cnn)")
    if pretrained_file is None:
        return timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans, **kwargs)
    try:
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(pretrained_file)),
                                 num_classes=0, in_chans=in_chans, **kwargs)
    except (RuntimeError, KeyError, ValueError, OSError) as exc:
        raise AbawError(f"weights do not fit backbone {name!r}: {_first_error(exc)}", path=pretrained_file) from None


def architecture(name: str) -> str:
    """The architecture of backbone ``name``: ``tv_resnet50.places365`` -> ``tv_resnet50`` (abaw's own tags only;
    timm's tags, ``resnet50.a1_in1k``, stay part of a timm name)."""
    return name.partition(".")[0] if name in BACKBONE_WEIGHTS else name


def weights_entry(name: str) -> str | None:
    """The abaw.weights catalogue entry backbone ``name`` starts from with ``pretrained=True``, or None (timm's own
    weights, or none)."""
    return BACKBONE_WEIGHTS.get(name)


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

    ``pretrained``: False (random init), True (the weights the backbone starts from: its :data:`BACKBONE_WEIGHTS`
    file through :mod:`abaw.weights`, or timm's own; a backbone without any is a one-line AbawError) or the path of a
    backbone checkpoint or a plain state_dict (for a timm backbone, a file timm reads with its own filters).
    """
    pretrained = parse_pretrained(pretrained)
    arch = architecture(name)
    timm_file = None
    if _is_timm(name) and pretrained:
        if not timm.is_model(name):
            _timm(name, in_chans)  # the one-line "unknown backbone" error
        if pretrained is True:
            timm_file = _timm_weights_file(name)
            if timm_file is None:  # online: timm downloads its own weights from the Hugging Face hub
                return _named(_timm_download(name, in_chans, **kwargs), name)
        elif pretrained and not _is_abaw_checkpoint(pretrained):
            timm_file = pretrained
    if arch == "tiny_cnn":
        model: nn.Module = SimpleCNN(in_chans, **kwargs)
    elif arch == "audio_cnn":
        model = SimpleCNN(in_chans, downsample="maxpool", **kwargs)
    elif arch == "vggface":
        model = VGGFaceConv(in_chans, **kwargs)
    elif arch.startswith("tv_"):
        model = _torchvision(arch[3:], in_chans, **kwargs)
    else:
        model = _timm(arch, in_chans, timm_file, **kwargs)
    _named(model, name)
    if timm_file is not None:
        return model
    if pretrained is True:
        from abaw.models.convert import load_weights

        entry = _catalogue_entry(name)
        _load_state(model, load_weights(entry), where=entry)
    elif pretrained:
        _load_file(model, pretrained)
    return model


def _is_timm(name: str) -> bool:
    """A backbone name timm builds and takes its own weights for (not one of abaw's names)."""
    return name not in _OWN and not name.startswith("tv_") and name not in BACKBONE_WEIGHTS


def _named(model: nn.Module, name: str) -> nn.Module:
    model.backbone_name = name
    model.normalization = "minus_one_one" if architecture(name) == "vggface" else "imagenet"
    return model


def _catalogue_entry(name: str) -> str:
    """The catalogue entry of backbone ``name``, or a one-line error saying there is none."""
    from abaw import weights

    if name in BACKBONE_WEIGHTS:
        return BACKBONE_WEIGHTS[name]
    if name in _OWN:
        raise AbawError(f"no pretrained weights exist for backbone {name!r}; pass pretrained=False or the path of a "
                        "backbone checkpoint")
    have = ", ".join(f"{b} ({w})" for b, w in BACKBONE_WEIGHTS.items() if weights.get(w).layout)
    raise AbawError(f"no ImageNet weights registered for backbone {name!r} (abaw.weights has {have}); pass "
                    "pretrained=False or a checkpoint path")


def pretrained_file(name: str) -> Path:
    """The local weights file backbone ``name`` starts from with ``pretrained=True``: its catalogue file through
    :func:`abaw.weights.fetch` (a download unless offline), or timm's own file in the offline folder or cache (never
    downloaded here); otherwise a one-line AbawError. For a ``timm_pickle`` entry, its converted state_dict."""
    from abaw import weights
    from abaw.models.convert import converted_path

    if _is_timm(name):
        found = _timm_weights_file(name)
        if found is None:
            raise AbawError(f"no local copy of timm's weights for {name!r}: {_timm_how(name)}")
        return found
    entry = weights.get(_catalogue_entry(name))
    if entry.layout == "timm_pickle":
        return converted_path(entry.name)
    return weights.fetch(entry.name)


#: Kept for abaw.apps.demo, which checks for a local copy before training (it never downloads).
imagenet_weights = pretrained_file


def _timm_full_name(name: str) -> str:
    """``resnet18`` -> ``resnet18.a1_in1k`` (timm's default tag); a tagged name as it is."""
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except Exception:  # noqa: BLE001  (timm raises various types for a name without pretrained weights)
        cfg = None
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise AbawError(f"timm has no pretrained weights for backbone {name!r}; pass pretrained=False or a file")
    return f"{cfg.architecture}.{cfg.tag}" if cfg.tag else cfg.architecture


def timm_weights_filenames(name: str) -> list[str]:
    """The file names timm's weights of ``name`` may have in the offline folder or cache."""
    names = dict.fromkeys((name, _timm_full_name(name)))
    return [f"{n}{suffix}" for n in names for suffix in TIMM_FILE_SUFFIXES]


def _timm_weights_file(name: str) -> Path | None:
    from abaw import weights

    for filename in timm_weights_filenames(name):
        found = weights.locate_file(filename)
        if found is not None:
            return found
    return None


def _timm_how(name: str) -> str:
    """Where to get timm's weights of ``name`` and where to put them, in one line."""
    from abaw import weights

    full = _timm_full_name(name)
    cfg = timm.models.get_pretrained_cfg(full)
    url = f"https://huggingface.co/{cfg.hf_hub_id}/resolve/main/model.safetensors" if cfg.hf_hub_id else cfg.url
    folder = weights.weights_dir() or weights.cache_dir()
    return f"download {url} and put it in {folder} (${weights.WEIGHTS_DIR_ENV}) as {full}.safetensors"


def _timm_download(name: str, in_chans: int, **kwargs: Any) -> nn.Module:
    """timm's own pretrained weights from the Hugging Face hub (its cache); offline, one line saying where to put the
    file instead."""
    from abaw import weights

    how = _timm_how(name)
    if weights.offline():
        raise AbawError(f"timm weights of backbone {name!r} not found (offline, {weights.OFFLINE_ENV}=1); {how}")
    try:
        return timm.create_model(name, pretrained=True, num_classes=0, in_chans=in_chans, **kwargs)
    except Exception as exc:  # noqa: BLE001  (network, hub and file errors come in many types)
        raise AbawError(f"timm could not get the weights of backbone {name!r} ({_first_error(exc)}); {how}") from None


def _is_abaw_checkpoint(path: Path) -> bool:
    obj = _read(path)
    return isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT


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
    _load_state(model, {k.removeprefix("module."): v for k, v in state.items()}, where=path)
    return {}


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], where: str | Path) -> None:
    """Load ``state`` into the backbone: every backbone tensor must be there; extra ones (a classifier) are ignored."""
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise AbawError(f"weights do not fit backbone {model.backbone_name!r}: {_first_error(exc)}",
                        path=where) from None
    if result.missing_keys:
        raise AbawError(f"weights do not fit backbone {model.backbone_name!r}: {len(result.missing_keys)} missing "
                        f"tensors (first {result.missing_keys[0]!r})", path=where)
    if result.unexpected_keys:
        log.info("%s: ignored %d tensors not in the backbone (classifier): %s", where, len(result.unexpected_keys),
                 ", ".join(result.unexpected_keys[:4]))


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

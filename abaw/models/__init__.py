"""Models: backbones, streams, fusion, heads, and the registered presets (``create_model(name, **overrides)``).

The names below load on first use (PEP 562): ``from abaw.models import fer_runtime`` (the FER2013 model of
``abaw predict``, run by OpenCV) imports no torch, and ``from abaw.models import fer`` (its PyTorch port) torch only,
not timm and torchvision, which cost seconds of start-up. The registry imports the modules that
register the built-in entry points on its first lookup.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the submodule that defines it.
_EXPORTS: dict[str, str] = {
    "ModelConfig": "multistream", "MultiStreamModel": "multistream",
    "create_backbone": "backbones", "load_backbone_checkpoint": "backbones", "save_backbone_checkpoint": "backbones",
    "create_model": "registry", "is_model": "registry", "list_models": "registry", "model_entrypoint": "registry",
    "register_model": "registry",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"abaw.models.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'abaw.models' has no attribute {name!r}")


def builtin_modules() -> tuple[Any, ...]:
    """The modules of the built-in entry points; importing them registers the entry points."""
    from abaw.models import affwildnet, ntua, zoo

    return affwildnet, ntua, zoo


def model_defaults(name: str) -> dict:
    """The option defaults of registered model ``name`` (before overrides)."""
    from abaw.models.registry import model_entrypoint

    for module in builtin_modules():
        if name in module.MODEL_DEFAULTS:
            return dict(module.MODEL_DEFAULTS[name])
    model_entrypoint(name)  # unknown name: one-line error
    return {}


__all__ = ["ModelConfig", "MultiStreamModel", "builtin_modules", "create_backbone", "create_model", "is_model",
           "list_models",
           "load_backbone_checkpoint", "model_entrypoint", "model_defaults", "register_model",
           "save_backbone_checkpoint"]

"""Models: backbones, streams, fusion, heads, and the registered presets (``create_model(name, **overrides)``)."""

from abaw.models import affwildnet, ntua, zoo  # noqa: F401  (registers the entry points)
from abaw.models.backbones import create_backbone, load_backbone_checkpoint, save_backbone_checkpoint
from abaw.models.multistream import ModelConfig, MultiStreamModel
from abaw.models.registry import create_model, is_model, list_models, model_entrypoint, register_model


def model_defaults(name: str) -> dict:
    """The option defaults of registered model ``name`` (before overrides)."""
    for module in (affwildnet, ntua, zoo):
        if name in module.MODEL_DEFAULTS:
            return dict(module.MODEL_DEFAULTS[name])
    model_entrypoint(name)  # unknown name: one-line error
    return {}


__all__ = ["ModelConfig", "MultiStreamModel", "create_backbone", "create_model", "is_model", "list_models",
           "load_backbone_checkpoint", "model_entrypoint", "model_defaults", "register_model",
           "save_backbone_checkpoint"]

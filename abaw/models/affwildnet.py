"""AffWildNet (Kollias et al., IJCV 2019; seed 000) as registered models: VA from 96x96 faces in [-1, 1].

CNN-only: VGG-Face conv -> FC 4096 -> FC 2000 (or 4096) -> FC 2; ResNet-50 -> FC 1500 -> FC 256 -> FC 2.
CNN-RNN: CNN -> FC1 (4096 / 1500) -> dropout -> GRU 128 -> dropout -> GRU 128 -> FC 2, per frame; ``_landmarks``
variants concatenate the landmark points into FC1's input (5 points by default, the ones abaw's boxes table has;
``landmarks=68`` for the paper's 68); ``_nofc`` is the released ResNet-50 variant (pooled 2048 -> GRU 128 x 2 -> 2).
Our VA head ends in tanh (outputs in [-1, 1]); the paper's FC 2 was linear.
"""

from __future__ import annotations

from typing import Any

from abaw.models.multistream import MultiStreamModel, multistream_model
from abaw.models.registry import register_model

#: Shared by all AffWildNet presets: 96x96 face in [-1, 1], VA track, dropout 0.5.
_BASE: dict[str, Any] = dict(streams=("face",), tasks=("va",), image_size=96, normalization="minus_one_one",
                             dropout=0.5, cell_type="gru", hidden_size=128)
_VGGFACE = dict(_BASE, backbone="vggface")
_RESNET50 = dict(_BASE, backbone="tv_resnet50")

MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "affwildnet_vggface_fc2000": dict(_VGGFACE, fc=(4096, 2000), num_layers=0),
    "affwildnet_vggface_fc4096": dict(_VGGFACE, fc=(4096, 4096), num_layers=0),
    "affwildnet_resnet50_fc": dict(_RESNET50, fc=(1500, 256), num_layers=0),
    "affwildnet_vggface_gru": dict(_VGGFACE, fc=(4096,), num_layers=2),
    "affwildnet_resnet50_gru": dict(_RESNET50, fc=(1500,), num_layers=2),
    "affwildnet_vggface_gru_landmarks": dict(_VGGFACE, fc=(4096,), num_layers=2, landmarks=5),
    "affwildnet_resnet50_gru_landmarks": dict(_RESNET50, fc=(1500,), num_layers=2, landmarks=5),
    "affwildnet_resnet50_gru_nofc": dict(_RESNET50, fc=(), num_layers=2),
}


def _model(name: str, kwargs: dict[str, Any]) -> MultiStreamModel:
    return multistream_model(name, MODEL_DEFAULTS[name], kwargs)


@register_model
def affwildnet_vggface_fc2000(**kwargs: Any) -> MultiStreamModel:
    return _model("affwildnet_vggface_fc2000", kwargs)


@register_model
def affwildnet_vggface_fc4096(**kwargs: Any) -> MultiStreamModel:
    return _model("affwildnet_vggface_fc4096", kwargs)


@register_model
def affwildnet_resnet50_fc(**kwargs: Any) -> MultiStreamModel:
    return _model("affwildnet_resnet50_fc", kwargs)


@register_model
def affwildnet_vggface_gru(**kwargs: Any) -> MultiStreamModel:
    return _model("affwildnet_vggface_gru", kwargs)


@register_model
def affwildnet_resnet50_gru(**kwargs: Any) -> MultiStreamModel:
    return _model("affwildnet_resnet50_gru", kwargs)


@register_model
def affwildnet_vggface_gru_landmarks(**kwargs: Any) -> MultiStreamModel:
    return _model("affwildnet_vggface_gru_landmarks", kwargs)


@register_model
def affwildnet_resnet50_gru_landmarks(**kwargs: Any) -> MultiStreamModel:
    return _model("affwildnet_resnet50_gru_landmarks", kwargs)


@register_model
def affwildnet_resnet50_gru_nofc(**kwargs: Any) -> MultiStreamModel:
    return _model("affwildnet_resnet50_gru_nofc", kwargs)

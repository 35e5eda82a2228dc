"""The NTUA-CVSP audiovisual and contextual model (ABAW 2020/2021; seed 004) as a registered model.

Face (112x112) + body (the person's box) + context (frame with the person blacked out) + audio (log-mel window per
frame), each through its CNN (ResNet-50 by default; ``face_backbone=`` etc. change them, ``streams=`` the set),
concatenated per frame (early fusion) -> LSTM, hidden 512 -> per-frame linear head (VA by default; ``tasks=("expr",)``
for track 2). ``pretrained_face=PATH`` loads an AffectNet-pretrained face CNN (``--pretrained_affectnet``).

The seed builds its LSTM bidirectional (``bidirectional=True`` in its train_affwild2.py; the head reads both
directions, 2 x 512): the presets ``ntua_cvsp_track1/2`` say ``bidirectional: true``. The entry point's own default
stays one-way because run folders saved before the presets said so have no such key in their config.json, and their
checkpoints must keep loading; pass ``bidirectional=True`` when building the seed's layout from Python.
"""

from __future__ import annotations

from typing import Any

from abaw.models.multistream import MultiStreamModel, multistream_model
from abaw.models.registry import register_model
from abaw.tasks import ENCODED_STREAMS

MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "ntua_cvsp": dict(streams=ENCODED_STREAMS, tasks=("va",), backbone="tv_resnet50",
                      image_size=112, body_size=112, context_size=112, fusion="early", cell_type="lstm",
                      hidden_size=512, num_layers=1, bidirectional=False, audio_window_seconds=10.0),
}


def _model(name: str, kwargs: dict[str, Any]) -> MultiStreamModel:
    return multistream_model(name, MODEL_DEFAULTS[name], kwargs)


@register_model
def ntua_cvsp(**kwargs: Any) -> MultiStreamModel:
    return _model("ntua_cvsp", kwargs)

"""Our own registered models: the four-stream multi-task late-fusion model and the small CPU demo models."""

from __future__ import annotations

from typing import Any

from abaw.models.multistream import MultiStreamModel, multistream_model
from abaw.models.registry import register_model
from abaw.models.temporal_transformer import TemporalTransformer, temporal_transformer_model
from abaw.tasks import ENCODED_STREAMS, TRACKS

MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    # Four streams, an RNN each, attention over the streams per frame, all three heads.
    "multitask_late_fusion": dict(streams=ENCODED_STREAMS, tasks=TRACKS, backbone="tv_resnet18",
                                  fc=(256,), audio_fc=(256,), fusion="late", late_fusion="attention", fusion_dim=256,
                                  cell_type="gru", hidden_size=128, num_layers=1, dropout=0.2),
    # Trains on the synthetic set in minutes on 2 CPU cores: tiny CNN on the 112x112 face crop, GRU 64.
    "demo_face": dict(streams=("face",), tasks=TRACKS, backbone="tiny_cnn", cell_type="gru", hidden_size=64,
                      num_layers=1),
    # The same with body, context and audio, concatenated per frame (early fusion) into one GRU 64.
    "demo_multistream": dict(streams=ENCODED_STREAMS, tasks=TRACKS, backbone="tiny_cnn",
                             audio_backbone="audio_cnn", fusion="early", cell_type="gru", hidden_size=64,
                             num_layers=1),
    # Frozen per-frame CNN features -> concatenated per frame -> 2-layer pre-norm transformer encoder (width 64).
    "temporal_transformer": dict(streams=("face",), tasks=TRACKS, backbone="tiny_cnn", freeze_cnn=True, hidden_size=64,
                                 num_layers=2, heads=4, dropout=0.1),
}


def _model(name: str, kwargs: dict[str, Any]) -> MultiStreamModel:
    return multistream_model(name, MODEL_DEFAULTS[name], kwargs)


@register_model
def multitask_late_fusion(**kwargs: Any) -> MultiStreamModel:
    return _model("multitask_late_fusion", kwargs)


@register_model
def demo_face(**kwargs: Any) -> MultiStreamModel:
    return _model("demo_face", kwargs)


@register_model
def demo_multistream(**kwargs: Any) -> MultiStreamModel:
    return _model("demo_multistream", kwargs)


@register_model
def temporal_transformer(**kwargs: Any) -> TemporalTransformer:
    return temporal_transformer_model("temporal_transformer", MODEL_DEFAULTS["temporal_transformer"], kwargs)

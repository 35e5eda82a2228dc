"""Which weights a model starts from, per image stream, derived from a training config through the model registry.

A config names a registered model and its keyword overrides; the model's registered defaults fill in the rest
(``backbone``, ``<stream>_backbone``, ``pretrained``, ``pretrained_face``). Each image stream's CNN then starts from:
the face checkpoint (``pretrained_face``), the backbone's weights (``pretrained: true``: its :mod:`abaw.weights`
catalogue entry, see :data:`abaw.models.backbones.BACKBONE_WEIGHTS`, or timm's own), a file (``pretrained: PATH``),
or random weights. For a stream that starts from random weights, :attr:`StreamWeights.weights` still names what
``pretrained: true`` would load, with ``used`` False. The audio CNN always starts from random weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from abaw.tasks import IMAGE_STREAMS

#: ``weights`` of a timm backbone that takes timm's own weights: ``timm:<name>``.
TIMM_PREFIX = "timm:"


@dataclass(frozen=True)
class StreamWeights:
    """What one image stream's CNN starts from."""

    stream: str
    backbone: str
    #: The catalogue entry, ``timm:<name>``, a checkpoint path, or None (the backbone has no pretrained weights).
    weights: str | None
    #: Whether the config loads ``weights`` (False: the stream starts from random weights).
    used: bool

    def describe(self) -> str:
        if self.weights is None:
            return f"{self.stream}: {self.backbone} from random weights (none exist for it)"
        if self.used:
            return f"{self.stream}: {self.backbone} from {self.weights}"
        return f"{self.stream}: {self.backbone} from random weights (pretrained=true: {self.weights})"


def backbone_weights(backbone: str) -> str | None:
    """The weights ``pretrained=True`` loads into ``backbone``: a catalogue entry, ``timm:<name>``, or None."""
    from abaw.models.backbones import _OWN, weights_entry

    entry = weights_entry(backbone)
    if entry is not None:
        return entry
    if backbone in _OWN or backbone.startswith("tv_"):
        return None
    return f"{TIMM_PREFIX}{backbone}"


def config_weights(cfg: dict[str, Any]) -> list[StreamWeights]:
    """Per image stream of a resolved training config, what its CNN starts from (empty for a model without one)."""
    from abaw.models import model_defaults
    from abaw.models.backbones import parse_pretrained
    from abaw.models.multistream import ModelConfig

    defaults = model_defaults(cfg["model"]["name"])
    if not defaults:  # a registered model that is not built from a ModelConfig preset
        return []
    fields = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    values = {**fields, **defaults, **cfg["model"].get("kwargs", {})}
    streams = cfg["model"].get("kwargs", {}).get("streams") or cfg["data"]["streams"]
    pretrained = parse_pretrained(values["pretrained"]) if values["pretrained"] not in (None, "") else False
    out = []
    for stream in (s for s in IMAGE_STREAMS if s in streams):
        backbone = values.get(f"{stream}_backbone") or values["backbone"]
        face_ckpt = values.get("pretrained_face") if stream == "face" else None
        if face_ckpt and parse_pretrained(face_ckpt) is not False:
            out.append(StreamWeights(stream, backbone, str(face_ckpt), True))
        elif pretrained is not True and pretrained is not False:
            out.append(StreamWeights(stream, backbone, str(pretrained), True))
        else:
            named = backbone_weights(backbone)
            out.append(StreamWeights(stream, backbone, named, bool(pretrained) and named is not None))
    return out


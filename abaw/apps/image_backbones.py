"""The image streams' CNN for ``abaw demo`` and ``abaw ablate`` when its ImageNet weights are not here: a frozen random
``tiny_cnn`` instead of the preset's backbone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from abaw.errors import AbawError
from abaw.tasks import IMAGE_STREAMS
from abaw.train.config import resolve

#: Image streams without a local copy of their ImageNet weights use this CNN, frozen at its random initialisation:
#: its features keep the colours and shapes (a random MobileNetV2's shrink to about 1e-9 through its 50 layers and
#: are stored as zeros in the float16 cache, which left the body and context streams carrying nothing).
RANDOM_BACKBONE = "tiny_cnn"


def with_available_weights(cfg: dict[str, Any], on_missing: Callable[[str], None]) -> dict[str, Any]:
    """``cfg`` whose image streams use the preset's ImageNet CNN when its weights are here (offline folder or cache;
    online, a download), else :data:`RANDOM_BACKBONE` (``on_missing(backbone)`` is called to say so). A face stream
    with its own pretrained CNN (``pretrained_face``) does not count; with no stream using ImageNet weights the
    config says ``pretrained: false``."""
    kwargs = cfg["model"]["kwargs"]
    uses_imagenet = any(s in IMAGE_STREAMS and (s != "face" or not kwargs.get("pretrained_face"))
                        for s in cfg["data"]["streams"])
    if kwargs.get("pretrained") is not True:
        return cfg
    if not uses_imagenet:  # no stream uses them: say so in the run's config
        return resolve(cfg, {"model.kwargs.pretrained": False})
    if not kwargs.get("backbone"):
        return cfg
    from abaw.models.backbones import imagenet_weights

    try:  # under ABAW_OFFLINE=1 (the demo) a local copy or an error, never a download
        imagenet_weights(kwargs["backbone"])
    except AbawError:
        on_missing(kwargs["backbone"])
        return resolve(cfg, {"model.kwargs.pretrained": False, "model.kwargs.backbone": RANDOM_BACKBONE})
    return cfg

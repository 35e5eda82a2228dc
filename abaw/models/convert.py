"""Published backbone files -> state_dicts with abaw's key names (torchvision, timm, :class:`VGGFaceConv`).

One reader per :attr:`abaw.weights.WeightFile.layout`:

- ``state_dict``: a plain torchvision state_dict (the classifier is left to the loader, which ignores it).
- ``places365``: CSAILVision's checkpoint ``{"epoch", "arch", "state_dict", "best_prec1"}`` whose keys start with
  ``module.`` (DataParallel): read with ``weights_only=True``, prefix stripped, the 365-class ``fc`` dropped.
- ``vgg_face_dag``: pytorch-mcn's ``conv1_1 ... conv5_3, fc6 ... fc8``: the 13 conv layers renamed to the
  ``features.<i>`` of :class:`abaw.models.backbones.VGGFaceConv`, the FC layers dropped (AffWildNet's FC1 has another
  shape), and the network's input scaling (RGB in 0-255 less the mean) folded into ``conv1_1`` so that it takes the
  [-1, 1] input of the vggface backbone (exact away from the image border, where zero padding differs).
- ``timm_pickle``: a whole pickled timm model (HSEmotion). Unpickling can run code, so it is opened only with
  ``--trust-weights`` (or when its sha256 is pinned), once: its state_dict, without the classifier, is written as a
  ``weights_only``-safe file ``<stem>.state_dict.pt`` into the weights cache, and read from there afterwards.
"""

from __future__ import annotations

import logging
import pickle
import types
from pathlib import Path
from typing import Any

import torch

from abaw import weights
from abaw.errors import AbawError
from abaw.fileio import atomic_path, load_failure_reason

log = logging.getLogger(__name__)

State = dict[str, torch.Tensor]
#: vgg_face_dag's per-channel input mean (RGB, 0-255 scale), from pytorch-mcn's model meta data.
VGG_FACE_DAG_MEAN = (129.186279296875, 104.76238250732422, 93.59396362304688)
#: VGG-16's conv blocks (conv layers per block, each block ends in max pooling), the layout of VGG-Face.
VGG16_BLOCKS = (2, 2, 3, 3, 3)
#: The 13 conv layers in pytorch-mcn's names, in order.
VGG16_CONV_NAMES = tuple(f"conv{b}_{i}" for b, n in enumerate(VGG16_BLOCKS, 1) for i in range(1, n + 1))


def read_state_dict(path: str | Path) -> State:
    """A state_dict from a ``weights_only`` PyTorch file: plain, or nested under ``state_dict`` (a checkpoint)."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad or unsafe file
        raise AbawError(f"cannot read weights: {load_failure_reason(exc)}", path=path) from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AbawError("not a state_dict (nor a checkpoint holding one)", path=path)
    return state


def strip_prefix(state: State, prefix: str = "module.") -> State:
    return {k.removeprefix(prefix): v for k, v in state.items()}


def places365_state_dict(state: State) -> State:
    """CSAILVision Places365 ResNet -> torchvision ResNet keys, without the 365-class ``fc``."""
    state = strip_prefix(state)
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def vgg_face_dag_state_dict(state: State, fold_input: bool = True, path: str | Path | None = None) -> State:
    """pytorch-mcn's vgg_face_dag -> the ``features.<i>`` of VGGFaceConv (FC layers dropped).

    ``fold_input``: fold the original input scaling (``255 * p - mean`` for pixels p in [0, 1]) into ``conv1_1`` so the
    converted network takes ``x = 2 * p - 1``: with ``d = 127.5 * x + (127.5 - mean)``, ``W d + b`` is
    ``(127.5 W) x + (b + W (127.5 - mean))``.
    """
    conv_indices = []
    index = 0
    for n_convs in VGG16_BLOCKS:  # torchvision's make_layers: Conv2d + ReLU per conv layer, then MaxPool2d
        for _ in range(n_convs):
            conv_indices.append(index)
            index += 2
        index += 1
    missing = [f"{n}.{p}" for n in VGG16_CONV_NAMES for p in ("weight", "bias") if f"{n}.{p}" not in state]
    if missing:
        raise AbawError(f"not a vgg_face_dag state_dict: {len(missing)} conv tensors missing (first {missing[0]!r})",
                        path=path)
    out: State = {}
    for name, i in zip(VGG16_CONV_NAMES, conv_indices, strict=True):
        out[f"features.{i}.weight"] = state[f"{name}.weight"].clone()
        out[f"features.{i}.bias"] = state[f"{name}.bias"].clone()
    if fold_input:
        w, b = out["features.0.weight"], out["features.0.bias"]
        shift = 127.5 - torch.tensor(VGG_FACE_DAG_MEAN, dtype=w.dtype)
        out["features.0.bias"] = b + (w * shift.view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
        out["features.0.weight"] = w * 127.5
    return out


class _TimmUnpickler(pickle.Unpickler):
    """Finds the classes of a model pickled with an older timm (``timm.models.layers.*`` moved to ``timm.layers``,
    ``timm.models.efficientnet_blocks`` to ``timm.models._efficientnet_blocks``)."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ModuleNotFoundError, AttributeError):
            if module.startswith("timm.models.layers"):
                return super().find_class("timm.layers" + module.removeprefix("timm.models.layers"), name)
            head, _, tail = module.rpartition(".")
            if head == "timm.models":
                return super().find_class(f"timm.models._{tail}", name)
            raise


_TIMM_PICKLE = types.SimpleNamespace(Unpickler=_TimmUnpickler, load=pickle.load, __name__="pickle")


def timm_pickle_state_dict(path: str | Path) -> State:
    """The state_dict of a whole pickled timm model, without its classifier. Opens (unpickles) the file: call it only on
    a file :func:`abaw.weights.checked` let through."""
    path = Path(path)
    import timm  # noqa: F401  (the pickle names timm's classes)

    try:
        model = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_TIMM_PICKLE)
    except Exception as exc:  # an unpickling failure can be of any type
        raise AbawError(f"cannot read the pickled model: {type(exc).__name__}: {str(exc)[:200]}", path=path) from None
    if isinstance(model, torch.nn.Module):
        cfg = getattr(model, "default_cfg", None)  # an old timm model's attribute, or a property of a newer one
        state, classifier = model.state_dict(), cfg.get("classifier", "classifier") if isinstance(cfg, dict) \
            else "classifier"
    elif isinstance(model, dict):
        state, classifier = model.get("state_dict", model), "classifier"
    else:
        raise AbawError(f"not a pickled model (a {type(model).__name__})", path=path)
    return {k: v.detach().clone() for k, v in state.items()
            if isinstance(v, torch.Tensor) and not k.startswith(f"{classifier}.")}


def converted_filename(entry: weights.WeightFile) -> str:
    """The name of the weights_only-safe state_dict converted from a ``timm_pickle`` file."""
    return f"{Path(entry.filename).stem}.state_dict.pt"


def convert(name: str, trust: bool = False) -> Path:
    """Convert catalogue file ``name`` (layout ``timm_pickle``) once into ``<stem>.state_dict.pt`` in the weights
    cache; return its path. The pickle is opened only when :func:`abaw.weights.fetch` lets it through (``trust``).
    The FER2013 model is exported to ONNX for OpenCV instead (:mod:`abaw.models.fer_runtime`; made on first use
    otherwise): the existing export's path when there is one."""
    from abaw.models import fer_runtime

    entry = weights.get(name)
    if name == fer_runtime.WEIGHTS_NAME:
        return fer_runtime.onnx_export(weights.fetch(name))
    if entry.layout != "timm_pickle":
        raise AbawError(f"{name} needs no conversion: abaw reads its {entry.layout or 'own'} layout directly")
    source = weights.fetch(name, trust=trust)
    state = timm_pickle_state_dict(source)
    dest = weights.cache_dir() / converted_filename(entry)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        torch.save(state, tmp)
    log.info("%s: converted %s into %s (sha256 %s)", name, source, dest, weights.sha256_of(dest))
    return dest


def converted_path(name: str) -> Path:
    """The converted state_dict of ``timm_pickle`` file ``name`` (offline folder, then cache); without one, a one-line
    error saying how to make it."""
    entry = weights.get(name)
    found = weights.locate_file(converted_filename(entry))
    if found is None:
        raise AbawError(f"{name} is a pickled model, converted once into a safe state_dict: run `abaw weights "
                        f"convert {name} {weights.TRUST_FLAG}` ({weights.how_to_get(entry)})",
                        path=converted_filename(entry))
    return found


def load_weights(name: str) -> State:
    """The state_dict of catalogue file ``name`` with abaw's key names, fetched by name (offline folder, cache,
    download). A ``timm_pickle`` file is read from its converted copy; without one, a one-line error says how to
    make it (``abaw weights convert NAME --trust-weights``)."""
    entry = weights.get(name)
    if entry.layout is None:
        raise AbawError(f"{name} is not a backbone's weights file (it is read by its own library)")
    if entry.layout == "timm_pickle":
        return read_state_dict(converted_path(name))
    path = weights.fetch(name)
    state = read_state_dict(path)
    if entry.layout == "places365":
        return places365_state_dict(state)
    if entry.layout == "vgg_face_dag":
        return vgg_face_dag_state_dict(state, path=path)
    return strip_prefix(state)

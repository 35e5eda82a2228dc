"""timm-style model registry: ``@register_model`` entry points, ``create_model(name, **kwargs)``, ``list_models()``.

An entry point is a function ``name(**kwargs) -> nn.Module`` whose name is the model name. Its keyword arguments are
the overrides of the preset (``backbone=``, ``hidden_size=``, ``tasks=``, ...); unknown ones fail with one line.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable

from torch import nn

from abaw.errors import AbawError

_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}
_MODULES: dict[str, str] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register ``fn`` as the entry point of the model named ``fn.__name__``."""
    name = fn.__name__
    if name in _ENTRYPOINTS and _ENTRYPOINTS[name] is not fn:
        raise ValueError(f"model {name!r} is registered twice ({_MODULES[name]} and {fn.__module__})")
    _ENTRYPOINTS[name] = fn
    _MODULES[name] = fn.__module__
    return fn


def _register_builtin_models() -> None:
    from abaw.models import builtin_modules

    builtin_modules()


def list_models(filter: str | Iterable[str] = "", exclude_filters: str | Iterable[str] = ()) -> list[str]:
    """Sorted names of the registered models, optionally filtered by shell-style wildcards (as ``timm``)."""
    _register_builtin_models()
    names = sorted(_ENTRYPOINTS)
    includes = [filter] if isinstance(filter, str) else list(filter)
    includes = [f for f in includes if f]
    if includes:
        names = [n for n in names if any(fnmatch.fnmatch(n, f) for f in includes)]
    excludes = [exclude_filters] if isinstance(exclude_filters, str) else list(exclude_filters)
    return [n for n in names if not any(fnmatch.fnmatch(n, f) for f in excludes if f)]


def is_model(name: str) -> bool:
    _register_builtin_models()
    return name in _ENTRYPOINTS


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    """The entry point of ``name``; an unknown name is a one-line AbawError suggesting the closest one."""
    _register_builtin_models()
    if name not in _ENTRYPOINTS:
        close = difflib.get_close_matches(str(name), list(_ENTRYPOINTS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(sorted(_ENTRYPOINTS))}"
        raise AbawError(f"unknown model {name!r}{hint}")
    return _ENTRYPOINTS[name]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with keyword overrides of its preset."""
    return model_entrypoint(name)(**kwargs)

"""Synthetic Aff-Wild2 (``generate``) and synthetic AffectNet-format data (``generate_affectnet``).

See ``docs/synthetic.md`` for the generative model. The two entry points are imported on first use, so that reading
:mod:`abaw.synth.defaults` (the command line's help) does not load OpenCV, PyAV and pandas.
"""

from __future__ import annotations

from typing import Any

__all__ = ["generate", "generate_affectnet"]


def __getattr__(name: str) -> Any:
    if name == "generate":
        from abaw.synth.dataset import generate

        return generate
    if name == "generate_affectnet":
        from abaw.synth.affectnet import generate_affectnet

        return generate_affectnet
    raise AttributeError(f"module 'abaw.synth' has no attribute {name!r}")

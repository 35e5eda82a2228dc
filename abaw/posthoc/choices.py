"""The fusion methods the command line offers, importable without numpy or scipy (``abaw --help`` lists them)."""

from __future__ import annotations

#: Ways :func:`abaw.posthoc.ensemble.ensemble_runs` fuses runs: unweighted mean, tuned weights, a stacker.
ENSEMBLE_METHODS: tuple[str, ...] = ("mean", "weighted", "stack")

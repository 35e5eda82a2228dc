"""Minimum-cost assignment (scipy's ``linear_sum_assignment``) without importing scipy for one row or one column.

A video with one face asks for a 1x1 (or 1xN, Nx1) assignment on every frame. Its answer is the smallest entry, the
first one on a tie, which is what scipy returns too (checked in tests/test_keyframes.py against scipy); scipy.optimize
costs 0.4-0.7 s of import, more than ``abaw predict`` spends on a short clip, so it is imported only for a real
matching problem.
"""

from __future__ import annotations

import numpy as np


def linear_sum_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the minimum-cost assignment of a 2-D ``cost`` matrix, as ``scipy.optimize`` gives them."""
    cost = np.asarray(cost)
    if cost.ndim == 2 and 0 not in cost.shape and min(cost.shape) == 1 and not np.isnan(cost).any():
        best = int(np.argmin(cost.ravel()))
        pair = (0, best) if cost.shape[0] == 1 else (best, 0)
        return np.array([pair[0]], dtype=np.intp), np.array([pair[1]], dtype=np.intp)
    from scipy.optimize import linear_sum_assignment as scipy_assignment

    return scipy_assignment(cost)

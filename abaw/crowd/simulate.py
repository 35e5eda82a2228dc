"""Simulated annotators with known confusion matrices (reliable, noisy, adversarial) and a small synthetic
classification problem (Gaussian class clusters), to check crowd aggregation and crowd layers against the truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ANNOTATOR_KINDS: tuple[str, ...] = ("reliable", "noisy", "adversarial")


def confusion_matrix(kind: str, n_classes: int, rng: np.random.Generator, accuracy: float | None = None) -> np.ndarray:
    """A row-stochastic (K, K) confusion matrix, ``[k, j] = P(says j | true k)``.

    - ``reliable``: right with probability ``accuracy`` (default 0.85), errors spread at random over the others;
    - ``noisy``: right a little more often than chance (default 1/K + 0.1), the rest spread at random;
    - ``adversarial``: says a fixed wrong class ``perm[k]`` (a random derangement) with probability
      ``1 - accuracy`` (accuracy default 0.15), so it is systematically wrong but still informative.
    """
    k = n_classes
    if kind not in ANNOTATOR_KINDS:
        raise ValueError(f"unknown annotator kind {kind!r}; choose one of {', '.join(ANNOTATOR_KINDS)}")
    acc = accuracy if accuracy is not None else {"reliable": 0.85, "noisy": 1.0 / k + 0.1, "adversarial": 0.15}[kind]
    conf = np.zeros((k, k))
    if kind == "adversarial":
        perm = _derangement(k, rng)
        rest = rng.dirichlet(np.ones(k - 1), size=k) * 0.1  # a little mass on the other wrong classes
        for row in range(k):
            others = [j for j in range(k) if j != row]
            conf[row, others] = rest[row] * (1 - acc)
            conf[row, perm[row]] += (1 - acc) * 0.9
            conf[row, row] = acc
        return conf / conf.sum(axis=1, keepdims=True)
    for row in range(k):
        others = [j for j in range(k) if j != row]
        conf[row, others] = rng.dirichlet(np.ones(k - 1)) * (1 - acc)
        conf[row, row] = acc
    return conf


def _derangement(k: int, rng: np.random.Generator) -> np.ndarray:
    while True:
        perm = rng.permutation(k)
        if (perm != np.arange(k)).all():
            return perm


def annotator_panel(n_classes: int, rng: np.random.Generator, reliable: int = 3, noisy: int = 3,
                    adversarial: int = 2) -> tuple[np.ndarray, list[str]]:
    """Confusion matrices (R, K, K) and kinds for a panel of annotators."""
    kinds = ["reliable"] * reliable + ["noisy"] * noisy + ["adversarial"] * adversarial
    return np.stack([confusion_matrix(kind, n_classes, rng) for kind in kinds]), kinds


def simulate_annotations(true_labels: np.ndarray, confusions: np.ndarray, rng: np.random.Generator,
                         missing: float = 0.0) -> np.ndarray:
    """Each annotator labels each item by sampling from their confusion row; a ``missing`` fraction of labels is
    dropped (-1), keeping at least one label per item."""
    true_labels = np.asarray(true_labels)
    n, (r, k, _) = len(true_labels), confusions.shape
    cdf = confusions[:, true_labels].cumsum(axis=2)  # (R, N, K)
    u = rng.random((r, n, 1))
    codes = (u > cdf).sum(axis=2).clip(max=k - 1).T.astype(np.int64)  # (N, R)
    if missing > 0:
        drop = rng.random(codes.shape) < missing
        drop[np.arange(n), rng.integers(0, r, n)] = False
        codes[drop] = -1
    return codes


def empirical_confusion(true_labels: np.ndarray, codes: np.ndarray, n_classes: int) -> np.ndarray:
    """The confusion matrices (R, K, K) the simulated labels actually realise (rows normalised; uniform if empty)."""
    r = codes.shape[1]
    conf = np.zeros((r, n_classes, n_classes))
    for a in range(r):
        seen = codes[:, a] >= 0
        np.add.at(conf[a], (true_labels[seen], codes[seen, a]), 1)
    total = conf.sum(axis=2, keepdims=True)
    return np.divide(conf, total, out=np.full_like(conf, 1.0 / n_classes), where=total > 0)


@dataclass
class Clusters:
    """A synthetic classification problem: inputs ``x`` (N, D) float32 and true classes ``y`` (N,)."""

    x: np.ndarray
    y: np.ndarray


def gaussian_clusters(n: int, n_classes: int, dim: int, rng: np.random.Generator, separation: float = 3.0,
                      centers: np.ndarray | None = None) -> tuple[Clusters, np.ndarray]:
    """``n`` points from ``n_classes`` isotropic unit Gaussians whose centres are ``separation`` apart on average;
    pass the returned ``centers`` back to draw a test set from the same problem."""
    if centers is None:
        centers = rng.normal(size=(n_classes, dim)) * separation / np.sqrt(2 * dim)
    y = rng.integers(0, n_classes, n)
    x = centers[y] + rng.normal(size=(n, dim))
    return Clusters(x.astype(np.float32), y.astype(np.int64)), centers


# ---- continuous labels (valence / arousal) -----------------------------------------------------------------------

#: Default (scale range, bias spread, noise sd) of each kind of value annotator: ``reliable`` near the truth,
#: ``noisy`` unbiased with a large spread, ``adversarial`` systematically off (compressed scale, a fixed offset of
#: 0.3-0.5 in a random direction) with little noise.
VALUE_KINDS: dict[str, tuple[tuple[float, float], float, float]] = {
    "reliable": ((0.9, 1.1), 0.05, 0.1),
    "noisy": ((0.8, 1.0), 0.1, 0.4),
    "adversarial": ((0.4, 0.7), 0.4, 0.1),
}


@dataclass
class ValuePanel:
    """Annotators of a continuous label: annotator r says ``clip(scale[r] * truth + bias[r] + N(0, noise[r]))``."""

    scale: np.ndarray  # (R,)
    bias: np.ndarray  # (R,)
    noise: np.ndarray  # (R,)
    kinds: list[str]


def value_panel(rng: np.random.Generator, reliable: int = 3, noisy: int = 3, adversarial: int = 2) -> ValuePanel:
    """A panel of value annotators of each kind (:data:`VALUE_KINDS`)."""
    kinds = ["reliable"] * reliable + ["noisy"] * noisy + ["adversarial"] * adversarial
    scale, bias, noise = [], [], []
    for kind in kinds:
        (lo, hi), spread, sd = VALUE_KINDS[kind]
        scale.append(rng.uniform(lo, hi))
        offset = rng.uniform(0.75 * spread, 1.25 * spread) * rng.choice((-1.0, 1.0)) if kind == "adversarial" \
            else rng.normal(0.0, spread)
        bias.append(offset)
        noise.append(sd)
    return ValuePanel(np.array(scale), np.array(bias), np.array(noise), kinds)


def simulate_values(truth: np.ndarray, panel: ValuePanel, rng: np.random.Generator, missing: float = 0.0,
                    levels: tuple[float, ...] | None = None) -> np.ndarray:
    """Each annotator's value for each item (N, R), clipped to [-1, 1] and, with ``levels`` (e.g. AffectNetC25's 9),
    rounded to the nearest level; a ``missing`` fraction is NaN, keeping at least one value per item."""
    truth = np.asarray(truth, dtype=np.float64)
    n, r = len(truth), len(panel.kinds)
    values = truth[:, None] * panel.scale + panel.bias + rng.normal(size=(n, r)) * panel.noise
    values = np.clip(values, -1.0, 1.0)
    if levels is not None:
        grid = np.asarray(levels, dtype=np.float64)
        values = grid[np.abs(values[..., None] - grid).argmin(axis=-1)]
    if missing > 0:
        drop = rng.random((n, r)) < missing
        drop[np.arange(n), rng.integers(0, r, n)] = False
        values[drop] = np.nan
    return values


def linear_targets(n: int, dim: int, rng: np.random.Generator, weights: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A small regression problem: inputs ``x`` (N, D) float32, a truth in (-1, 1) ``tanh(x @ w)``, and ``w``
    (pass it back to draw a test set of the same problem)."""
    if weights is None:
        weights = rng.normal(size=dim) / np.sqrt(dim)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x, np.tanh(x @ weights), weights

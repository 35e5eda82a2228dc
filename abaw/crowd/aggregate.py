"""Aggregating crowd labels: majority vote (with a tie report), vote distributions as soft labels, mean / median
for continuous labels, and Dawid-Skene EM (per-annotator confusion matrices)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abaw.crowd.votes import counts_from_codes


@dataclass
class MajorityVote:
    """``labels`` (N,): the mode per item, ties to the smallest code (the AffectNetC25 rule), -1 when an item has no
    vote. ``tied`` (N,) marks items whose mode is not unique; ``tie_sets[i]`` lists every tied code (one code when
    there is no tie, none when there is no vote), so a tie can be reported instead of guessed."""

    labels: np.ndarray
    tied: np.ndarray
    tie_sets: list[tuple[int, ...]]
    n_votes: np.ndarray

    @property
    def n_ties(self) -> int:
        return int(self.tied.sum())


def majority_vote(counts: np.ndarray) -> MajorityVote:
    """Majority vote over vote counts (N, K)."""
    counts = np.asarray(counts)
    n_votes = counts.sum(axis=1)
    top = counts.max(axis=1, keepdims=True)
    winners = (counts == top) & (n_votes[:, None] > 0)
    labels = np.where(n_votes > 0, winners.argmax(axis=1), -1)  # argmax of a bool row = the smallest tied code
    tie_sets = [tuple(np.flatnonzero(row).tolist()) for row in winners]
    return MajorityVote(labels.astype(np.int64), winners.sum(axis=1) > 1, tie_sets, n_votes)


def majority_vote_codes(codes: np.ndarray, n_classes: int) -> MajorityVote:
    """Majority vote over per-annotator codes (N, R), -1 = missing."""
    return majority_vote(counts_from_codes(codes, n_classes))


def soft_labels(counts: np.ndarray, smoothing: float = 0.0) -> np.ndarray:
    """The vote distribution per item (N, K), optionally add-``smoothing`` (Laplace); a row without votes is
    uniform."""
    counts = np.asarray(counts, dtype=np.float64) + smoothing
    total = counts.sum(axis=1, keepdims=True)
    k = counts.shape[1]
    return np.divide(counts, total, out=np.full_like(counts, 1.0 / k), where=total > 0)


def mean_values(values: np.ndarray) -> np.ndarray:
    """Mean of the annotators' values per item (N, R) -> (N,), NaN where nobody answered."""
    return _nan_reduce(np.nanmean, values)


def median_values(values: np.ndarray) -> np.ndarray:
    """Median of the annotators' values per item (N, R) -> (N,), NaN where nobody answered."""
    return _nan_reduce(np.nanmedian, values)


def majority_values(values: np.ndarray, levels: tuple[float, ...] | np.ndarray) -> MajorityVote:
    """Majority vote over values on a grid of ``levels`` (AffectNetC25's 9 valence/arousal levels): each value is
    taken as its nearest level, ties go to the lowest level (the smallest code, as for classes). The voted value is
    ``levels[labels]`` (NaN where ``labels`` is -1, no vote)."""
    values = np.asarray(values, dtype=np.float64)
    grid = np.asarray(levels, dtype=np.float64)
    seen = ~np.isnan(values)
    codes = np.where(seen, np.abs(np.nan_to_num(values)[..., None] - grid).argmin(axis=-1), -1)
    return majority_vote_codes(codes, len(grid))


def _nan_reduce(fn, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape[0], np.nan)
    seen = ~np.isnan(values).all(axis=1)
    if seen.any():
        out[seen] = fn(values[seen], axis=1)
    return out


@dataclass
class DawidSkene:
    """Result of Dawid-Skene EM: ``posterior`` (N, K) over the true class, ``confusion`` (R, K, K) with
    ``confusion[r, k, j] = P(annotator r says j | true class k)``, class ``priors`` (K,)."""

    posterior: np.ndarray
    confusion: np.ndarray
    priors: np.ndarray
    n_iter: int
    log_likelihood: float
    converged: bool

    @property
    def labels(self) -> np.ndarray:
        return self.posterior.argmax(axis=1)


def dawid_skene(votes: np.ndarray, n_classes: int | None = None, max_iter: int = 200, tol: float = 1e-7,
                smoothing: float = 0.01, init: np.ndarray | None = None) -> DawidSkene:
    """Dawid & Skene (1979) EM for the true class of each item from noisy annotators.

    ``votes`` is either per-annotator codes (N, R) with -1 missing, or a vote tensor (N, R, K) counting how often
    annotator r gave class j to item i; a CREMA-D count table (N, K) is passed as ``counts[:, None, :]`` (one pooled
    annotator). EM starts from the vote distribution (``init`` overrides it: (N, K) posteriors), ``smoothing`` is a
    Dirichlet pseudo-count on each confusion row and on the priors so that no probability becomes exactly 0.
    Hand-written: it is ~20 lines of numpy and no maintained library here provides it.
    """
    votes = np.asarray(votes)
    if votes.ndim == 2:
        if n_classes is None:
            n_classes = int(votes.max()) + 1
        tensor = np.zeros((*votes.shape, n_classes))
        i, r = np.nonzero(votes >= 0)
        tensor[i, r, votes[i, r]] = 1.0
    elif votes.ndim == 3:
        tensor = votes.astype(np.float64)
    else:
        raise ValueError(f"votes must be (N, R) codes or (N, R, K) counts, got shape {votes.shape}")
    n_items, _, k = tensor.shape
    post = soft_labels(tensor.sum(axis=1)) if init is None else np.asarray(init, dtype=np.float64)
    prev = -np.inf
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        # M-step: priors and confusion matrices from the current posteriors.
        priors = (post.sum(axis=0) + smoothing) / (n_items + k * smoothing)
        confusion = np.einsum("ik,irj->rkj", post, tensor) + smoothing
        confusion /= confusion.sum(axis=2, keepdims=True)
        # E-step: log P(true = k | votes) up to a constant.
        log_joint = np.log(priors)[None, :] + np.einsum("irj,rkj->ik", tensor, np.log(confusion))
        norm = np.logaddexp.reduce(log_joint, axis=1, keepdims=True)
        post = np.exp(log_joint - norm)
        ll = float(norm.sum())
        if abs(ll - prev) <= tol * max(1.0, abs(ll)):
            converged = True
            break
        prev = ll
    return DawidSkene(post, confusion, priors, it, ll, converged)

"""The paired video bootstrap: its scores are the official ones, its interval covers what the draw of videos does."""

from __future__ import annotations

import numpy as np
import pytest

from abaw import tasks
from abaw.metrics import score_track
from abaw.runs.compare import paired_difference, scores_from_statistics, video_statistics


def _videos(track: str, proto: tasks.Protocol, rng: np.random.Generator, skill: float, n: int = 12
            ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` videos of random length whose predictions agree with the labels to a degree ``skill``, invalid labels
    included."""
    out = []
    label_rng = np.random.default_rng(7)  # the same labels for every model
    for _ in range(n):
        m = int(label_rng.integers(20, 60))
        if track == "va":
            true = label_rng.uniform(-1, 1, (m, 2))
            true[label_rng.random(m) < 0.1] = -5.0
            pred = np.clip(skill * np.where(true > -5, true, 0) + rng.normal(0, 0.4, (m, 2)), -1, 1)
        elif track == "expr":
            true = label_rng.integers(0, proto.n_expr, (m, 1))
            true[label_rng.random(m) < 0.1] = -1
            pred = np.where((rng.random((m, 1)) < skill) & (true >= 0), true, rng.integers(0, proto.n_expr, (m, 1)))
        else:
            true = label_rng.integers(0, 2, (m, proto.n_au))
            true[label_rng.random(m) < 0.1] = -1
            pred = np.where((rng.random(true.shape) < skill) & (true >= 0), true, rng.integers(0, 2, true.shape))
        out.append((pred, true))
    return out


@pytest.mark.parametrize("protocol", ["abaw2021", "abaw2022"])
@pytest.mark.parametrize("track", ["va", "expr", "au"])
def test_statistics_give_the_official_score(track: str, protocol: str) -> None:
    proto = tasks.get_protocol(protocol)
    pairs = _videos(track, proto, np.random.default_rng(0), 0.6)
    stats = video_statistics(track, pairs, proto)
    pred = np.concatenate([p for p, _ in pairs])
    true = np.concatenate([t for _, t in pairs])
    expected = score_track(track, pred[:, 0] if track == "expr" else pred, true, proto)["score"]
    assert scores_from_statistics(track, stats.sum(0), proto) == pytest.approx(expected, abs=1e-10)
    # a video twice counts twice, as its frames concatenated twice would
    twice = np.concatenate([pred, pairs[0][0]]), np.concatenate([true, pairs[0][1]])
    again = score_track(track, twice[0][:, 0] if track == "expr" else twice[0], twice[1], proto)["score"]
    assert scores_from_statistics(track, stats.sum(0) + stats[0], proto) == pytest.approx(again, abs=1e-10)


@pytest.mark.parametrize("track", ["va", "expr", "au"])
def test_paired_difference_tells_a_better_model_from_a_reseeded_one(track: str) -> None:
    proto = tasks.get_protocol("abaw2021")
    rng = np.random.default_rng(1)
    weak = [video_statistics(track, _videos(track, proto, rng, 0.3, n=30), proto) for _ in range(3)]
    strong = [video_statistics(track, _videos(track, proto, rng, 0.7, n=30), proto) for _ in range(3)]
    other_weak = [video_statistics(track, _videos(track, proto, rng, 0.3, n=30), proto) for _ in range(3)]
    better = paired_difference(track, strong, weak, proto, n_boot=300)
    assert better.delta > 0 and better.excludes_zero and better.low <= better.delta <= better.high
    same = paired_difference(track, other_weak, weak, proto, n_boot=300)
    assert not same.excludes_zero and same.high - same.low < better.delta
    # the split itself is the first "draw": the difference of the seed means of the official scores
    official = [scores_from_statistics(track, s.sum(0), proto) for s in (*strong, *weak)]
    assert better.delta == pytest.approx(np.mean(official[:3]) - np.mean(official[3:]), abs=1e-12)
    assert paired_difference(track, strong, weak, proto, n_boot=300) == better  # fixed draws
    with pytest.raises(ValueError, match="same videos"):
        paired_difference(track, strong, [s[:-1] for s in weak], proto)
    single = paired_difference(track, [s[:1] for s in strong], [s[:1] for s in weak], proto)
    assert single.n_videos == 1 and np.isnan(single.low) and not single.excludes_zero

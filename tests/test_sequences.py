"""The video-grouped training order: a reproducible permutation of all windows that visits them video by video."""

from __future__ import annotations

import numpy as np

from abaw.data.sequences import epoch_batches, epoch_order, video_epoch_order


def _windows(lengths: list[int]) -> np.ndarray:
    return np.asarray([(v, s) for v, n in enumerate(lengths) for s in range(n)], dtype=np.int64)


def _runs(order: np.ndarray, windows: np.ndarray) -> int:
    """Number of maximal runs of consecutive windows of the same video."""
    vids = windows[order, 0]
    return int(1 + np.count_nonzero(vids[1:] != vids[:-1]))


def test_video_order_is_a_grouped_reproducible_permutation() -> None:
    windows = _windows([7, 3, 12, 1, 9, 5])
    order = video_epoch_order(windows, seed=3, epoch=0)
    assert sorted(order.tolist()) == list(range(len(windows)))
    assert _runs(order, windows) == 6  # one run per video
    assert np.array_equal(order, video_epoch_order(windows, seed=3, epoch=0))
    other = video_epoch_order(windows, seed=3, epoch=1)
    assert not np.array_equal(order, other)
    assert not np.array_equal(order, video_epoch_order(windows, seed=4, epoch=0))
    assert sorted(other.tolist()) == list(range(len(windows)))
    # windows are shuffled within a video, and video orders differ across epochs
    assert any(not np.array_equal(order[windows[order, 0] == v], np.flatnonzero(windows[:, 0] == v)) for v in range(6))
    firsts = {tuple(dict.fromkeys(windows[video_epoch_order(windows, 3, e), 0].tolist())) for e in range(6)}
    assert len(firsts) > 1


def test_video_order_in_blocks_and_with_weights() -> None:
    windows = _windows([4] * 10)
    order = video_epoch_order(windows, seed=1, epoch=2, block=3)
    assert sorted(order.tolist()) == list(range(40))
    vids = windows[order, 0]
    for start in range(0, 40, 12):  # every block of 3 videos (12 windows) holds exactly 3 videos
        assert len(set(vids[start:start + 12].tolist())) == min(3, (40 - start) // 4)
    w = np.ones(40)
    w[:4] = 0.0  # video 0 never drawn
    drawn = video_epoch_order(windows, seed=1, epoch=2, weights=w)
    assert len(drawn) == 40 and 0 not in set(windows[drawn, 0].tolist())
    assert _runs(drawn, windows) == len(set(windows[drawn, 0].tolist()))
    assert np.array_equal(drawn, video_epoch_order(windows, seed=1, epoch=2, weights=w))
    assert len(video_epoch_order(np.zeros((0, 2), np.int64), 0, 0)) == 0


def test_rank_shards_are_disjoint_covering_and_grouped() -> None:
    windows = _windows([5, 8, 2, 6, 9, 3, 7])
    order = video_epoch_order(windows, seed=0, epoch=0)
    for world in (2, 3):
        shards = [sum(epoch_batches(order, 4, r, world, contiguous=True), []) for r in range(world)]
        per = -(-len(order) // world)
        assert all(len(s) == per for s in shards)
        flat = [i for s in shards for i in s]
        assert set(flat) == set(range(len(windows)))
        assert flat[:len(order)] == order.tolist()  # disjoint slices in order; only the wrapped padding repeats
        assert sum(_runs(np.asarray(s), windows) for s in shards) <= 7 + 2 * world  # rank borders, padding
    # the global order and the strided split are unchanged
    assert sum(epoch_batches(epoch_order(10, 0, 0), 3, 1, 2), []) == epoch_order(10, 0, 0)[1::2].tolist()

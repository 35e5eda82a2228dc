"""Face detection on every k-th frame with interpolation between (abaw.video.keyframes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from abaw.video.decode import Frame, read_frames
from abaw.video.faces import FaceDetection, YuNetDetector
from abaw.video.keyframes import detect_every, match_faces

N = 23


def face_at(x: float, y: float = 40.0, size: float = 50.0, score: float = 0.9) -> FaceDetection:
    box = np.array([x, y, size, size], np.float32)
    landmarks = np.array([[x + 15, y + 20], [x + 35, y + 20], [x + 25, y + 30], [x + 18, y + 40], [x + 32, y + 40]],
                         np.float32)
    return FaceDetection(box, landmarks, score)


class Scripted:
    """A detector whose answer for frame ``i`` (1-based) is ``script(i)``; it records which frames it saw."""

    def __init__(self, script) -> None:
        self.script, self.seen = script, []

    def __call__(self, image: np.ndarray) -> list[FaceDetection]:
        index = int(image[0, 0, 0])  # the frame number is written into the first pixel
        self.seen.append(index)
        return self.script(index)


def frames(n: int = N) -> Iterator[Frame]:
    for i in range(1, n + 1):
        image = np.zeros((4, 4, 3), np.uint8)
        image[0, 0, 0] = i
        yield Frame(i, (i - 1) / 25, image)


def moving(i: int) -> list[FaceDetection]:
    return [face_at(10.0 + 2 * i)]


def test_every_one_detects_every_frame() -> None:
    det = Scripted(moving)
    out = list(detect_every(frames(), det, 1))
    assert det.seen == list(range(1, N + 1)) and all(detected for _, _, detected in out)


@pytest.mark.parametrize("every", [2, 5, 7, 11])
def test_linear_motion_is_interpolated_exactly_between_key_frames(every: int) -> None:
    det = Scripted(moving)
    out = list(detect_every(frames(), det, every))
    assert [f.index for f, _, _ in out] == list(range(1, N + 1))  # every frame once, in order
    keys = sorted({1, N} | set(range(1 + every, N + 1, every)))
    assert det.seen == keys  # the first, every k-th and the last frame only
    for frame, faces, detected in out:
        assert detected == (frame.index in keys)
        want = moving(frame.index)[0]
        assert len(faces) == 1
        np.testing.assert_allclose(faces[0].box, want.box, atol=1e-4)
        np.testing.assert_allclose(faces[0].landmarks, want.landmarks, atol=1e-4)


def test_a_face_that_appears_between_key_frames_is_found_on_its_first_frame() -> None:
    det = Scripted(lambda i: moving(i) if i >= 8 else [])
    out = list(detect_every(frames(), det, 5))
    present = [bool(faces) for _, faces, _ in out]
    assert present == [i >= 8 for i in range(1, N + 1)]
    assert {7, 8, 9, 10} <= set(det.seen)  # the span 6..11 around the change was detected frame by frame
    assert 13 not in det.seen  # and interpolation resumed after it


def test_a_face_that_jumps_is_detected_not_interpolated() -> None:
    det = Scripted(lambda i: [face_at(10.0 if i < 9 else 300.0)])
    out = {f.index: faces for f, faces, _ in detect_every(frames(), det, 5)}
    assert out[8][0].box[0] == 10.0 and out[9][0].box[0] == 300.0


def test_two_faces_are_matched_not_swapped() -> None:
    det = Scripted(lambda i: [face_at(200.0 - i), face_at(10.0 + i)][:: 1 if i % 2 else -1])  # order changes
    for frame, faces, _ in detect_every(frames(), det, 4):
        xs = sorted(float(f.box[0]) for f in faces)
        np.testing.assert_allclose(xs, [10.0 + frame.index, 200.0 - frame.index], atol=1e-4)


def test_at_most_every_frames_are_held() -> None:
    pulled = []

    def counted() -> Iterator[Frame]:
        for frame in frames(100):
            pulled.append(frame.index)
            yield frame

    stream = detect_every(counted(), Scripted(moving), 5)
    for frame, _, _ in stream:
        assert len(pulled) - frame.index <= 5


def test_match_needs_the_same_faces() -> None:
    assert match_faces([], []) == []
    assert match_faces([face_at(10)], []) is None
    assert match_faces([face_at(10)], [face_at(12)]) == [(0, 0)]
    assert match_faces([face_at(10)], [face_at(10, size=120)]) is None  # same place, other size


def test_real_clip_presence_is_exact_and_landmarks_close(media_dir: Path, weights_dir: Path) -> None:
    detector = YuNetDetector(weights_dir / "yunet_s_640_640.onnx")
    clip = read_frames(media_dir / "face_noface.mov")
    reference = {f.index: detector.detect(f.image) for f in clip}
    errors = []
    for frame, faces, _ in detect_every(clip, detector.detect, 5):
        ref = reference[frame.index]
        assert bool(faces) == bool(ref), frame.index
        if faces:
            eyes = np.linalg.norm(ref[0].landmarks[0] - ref[0].landmarks[1])
            errors.append(np.linalg.norm(faces[0].landmarks - ref[0].landmarks, axis=1).mean() / eyes)
    assert np.mean(errors) < 0.03  # 1 % measured: a small fraction of the eye distance


@pytest.mark.parametrize("every", [1, 3, 5])
def test_a_thread_pool_gives_the_same_frames(every: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def script(i: int) -> list[FaceDetection]:
        return moving(i) if i < 9 or i > 14 else []  # a gap: spans detected frame by frame

    serial = [(f.index, [d.box.tolist() for d in faces], det) for f, faces, det in
              detect_every(frames(), Scripted(script), every)]
    with ThreadPoolExecutor(2) as pool:
        pooled = [(f.index, [d.box.tolist() for d in faces], det) for f, faces, det in
                  detect_every(frames(), Scripted(script), every, pool, workers=2)]
    assert pooled == serial


def test_per_thread_gives_each_thread_its_own_detector() -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from abaw.video.faces import per_thread

    made: list[int] = []

    class Probe:
        def __init__(self) -> None:
            made.append(threading.get_ident())

        def detect(self, image: np.ndarray) -> list[FaceDetection]:
            return [face_at(float(threading.get_ident() % 7))]

    detect = per_thread(Probe)
    barrier = threading.Barrier(2)

    def call(_: int) -> int:
        barrier.wait()  # both threads are alive at once
        return len(detect(np.zeros((2, 2, 3), np.uint8)))

    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(call, range(2))) == [1, 1]
    assert len(made) == len(set(made)) == 2


def test_one_row_or_column_is_assigned_as_scipy_does_without_it() -> None:
    """abaw.video.assignment answers a 1xN or Nx1 problem itself (ties included: the first smallest), exactly as
    scipy does, and hands anything larger to scipy."""
    from scipy.optimize import linear_sum_assignment as scipy_assignment

    from abaw.video.assignment import linear_sum_assignment

    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(1, 6))
        values = rng.choice([0.5, 0.7, 1e6, float(rng.random())], size=n)  # ties and the "no match" cost
        for cost in (values[None, :], values[:, None], rng.random((n, n + 1)), rng.random((2, 2))):
            ours, theirs = linear_sum_assignment(cost), scipy_assignment(cost)
            for a, b in zip(ours, theirs, strict=True):
                np.testing.assert_array_equal(a, b)
                assert a.dtype == b.dtype

"""Face detection (YuNet, Haar), tracking and naming, person detection, body/context inputs, streaming decode."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from abaw.errors import AbawError
from abaw.video import decode, inputs, tracking
from abaw.video.faces import FaceDetection, HaarDetector, YuNetDetector, landmarks_from_box


@pytest.fixture(scope="module")
def yunet(weights_dir: Path) -> YuNetDetector:
    return YuNetDetector(weights_dir / "yunet_s_640_640.onnx")


def face_share(path: Path, detector: YuNetDetector, step: int = 1) -> np.ndarray:
    """Per decoded frame (every ``step``-th): whether a face was found."""
    return np.array([bool(detector.detect(f.image)) for f in decode.iter_frames(path, step=step)])


def test_single_face_video_has_a_face_in_95_percent_of_frames(media_dir: Path, yunet: YuNetDetector) -> None:
    found = face_share(media_dir / "single_face.mp4", yunet)
    assert len(found) == 72 and found.mean() >= 0.95


def test_no_face_video_has_no_face(media_dir: Path, yunet: YuNetDetector) -> None:
    found = face_share(media_dir / "no_face.mp4", yunet)
    assert len(found) > 90 and not found.any()


def test_face_then_no_face(media_dir: Path, yunet: YuNetDetector) -> None:
    found = face_share(media_dir / "face_noface.mov", yunet, step=3)
    assert found[:10].all() and not found[-10:].any()


def test_multi_face_image_gives_five_faces(media_dir: Path, yunet: YuNetDetector) -> None:
    faces = yunet.detect(cv2.imread(str(media_dir / "multi_face.jpg")))
    assert len(faces) == 5
    for face in faces:
        x, y, w, h = face.box
        assert face.landmarks.shape == (5, 2) and 0.6 <= face.score <= 1.0
        assert ((face.landmarks >= [x, y]) & (face.landmarks <= [x + w, y + h])).all()  # landmarks inside the box


def test_haar_fallback_finds_the_face_with_estimated_landmarks(media_dir: Path, yunet: YuNetDetector) -> None:
    image = cv2.imread(str(media_dir / "single_face.jpg"))
    haar = HaarDetector().detect(image)
    ref = yunet.detect(image)
    assert haar and ref
    best = max(haar, key=lambda f: tracking.iou(f.box, ref[0].box))
    assert tracking.iou(best.box, ref[0].box) > 0.4
    assert best.landmarks.shape == (5, 2) and 0 < best.score < 1
    assert best.landmarks[0, 0] < best.landmarks[1, 0] and best.landmarks[2, 1] < best.landmarks[3, 1]


def test_person_detector_finds_the_person(media_dir: Path, weights_dir: Path) -> None:
    from abaw.video.persons import YoloFastestBody

    image = cv2.imread(str(media_dir / "person.jpg"))
    persons = YoloFastestBody(weights_dir / "yolo-fastest-1.1_body.cfg",
                              weights_dir / "yolo-fastest-1.1_body.weights").detect(image)
    assert persons
    box, score = max(persons, key=lambda p: p[1])
    h, w = image.shape[:2]
    assert 0.4 <= score <= 1 and box[2] * box[3] > 0.05 * w * h
    assert box[0] >= 0 and box[1] >= 0 and box[0] + box[2] <= w + 1 and box[1] + box[3] <= h + 1


def _det(x: float, y: float, size: float = 40.0) -> FaceDetection:
    box = np.array([x, y, size, size], dtype=np.float32)
    return FaceDetection(box, landmarks_from_box(box), 0.9)


def test_tracking_keeps_identities_and_names_left_right() -> None:
    tracker = tracking.FaceTracker(max_age=5)
    for frame in range(1, 31):
        dets = [_det(200 - frame, 50), _det(20 + frame, 60)]  # right face listed first, both moving
        if 10 <= frame <= 13:
            dets = dets[1:]  # the right face is lost for a while
        tracker.update(frame, dets)
    tracks = tracking.select_tracks(tracking.merge_tracks(tracker.tracks), 30)
    assert len(tracks) == 2 and [len(t) for t in tracks] == [30, 26]
    assert tracks[0].mean_x < tracks[1].mean_x
    assert all(d.box[0] < 100 for d in tracks[0].detections)  # the left track never jumps to the other face
    table = tracking.boxes_table("vid", 30, 25.0, 320, 240, tracks, {})
    assert sorted(table["name"].unique()) == ["vid_left", "vid_right"] and len(table) == 60
    right = table[table["name"] == "vid_right"]
    assert (right["face_score"] == 0).sum() == 4 and right["face_x"].isna().sum() == 4
    assert right[tracking.PERSON_COLUMNS].notna().all().all()  # person box carried over the gap


def test_boxes_table_without_faces_and_person_matching() -> None:
    table = tracking.boxes_table("empty", 5, 25.0, 320, 240, [], {})
    assert len(table) == 5 and table["face_score"].eq(0).all() and table["face_x"].isna().all()
    assert table[tracking.PERSON_COLUMNS].to_numpy().tolist() == [[0, 0, 320, 240]] * 5
    face = np.array([100, 50, 40, 40], dtype=np.float32)
    inside = (np.array([60, 30, 120, 200], dtype=np.float32), 0.8)
    elsewhere = (np.array([200, 30, 100, 200], dtype=np.float32), 0.9)
    assert tracking.person_for_face(face, [elsewhere, inside])[1] == 0.8
    assert tracking.person_for_face(face, [elsewhere]) is None
    derived = tracking.derived_person_box(face, 320, 240)
    assert derived[0] <= face[0] and derived[1] <= face[1] and derived[1] + derived[3] <= 240


def test_body_and_context_inputs() -> None:
    image = np.full((100, 200, 3), 200, dtype=np.uint8)
    box = np.array([150, 10, 80, 60], dtype=np.float32)  # runs past the right edge
    body = inputs.body_input(image, box, 32)
    assert body.shape == (32, 32, 3)
    assert body[:, -3:].max() == 0 and body[16, 5].min() == 200  # outside the frame is black, inside kept
    context = inputs.context_input(image, box, 40)
    assert context.shape == (40, 40, 3)
    assert context[10, 35].max() == 0 and context[10, 5].min() == 200  # the person is blacked out


def _write(path: Path, images: list[np.ndarray], fourcc: str = "mp4v") -> Path:
    h, w = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25, (w, h))
    for image in images:
        writer.write(image)
    writer.release()
    return path


def test_decode_portrait_and_bad_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    portrait = _write(tmp_path / "portrait.mp4", [rng.integers(0, 255, (96, 48, 3), dtype=np.uint8)] * 12)
    meta = decode.probe(portrait)
    assert (meta.width, meta.height, meta.n_frames, meta.has_audio) == (48, 96, 12, False)
    frames = decode.read_frames(portrait, step=5)
    assert [f.index for f in frames] == [1, 6, 11] and frames[0].image.shape == (96, 48, 3)
    assert frames[1].timestamp == pytest.approx(5 / 25)
    avi = _write(tmp_path / "full.avi", [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(20)],
                 "MJPG")
    data = avi.read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("hello, not a video")
    for name, reason in (("cut.avi", "decoding failed|truncated"), ("zero.mp4", "empty"),
                         ("text.mp4", "not a readable video")):
        with pytest.raises(AbawError, match=reason) as info:
            list(decode.iter_frames(tmp_path / name))
        assert "\n" not in str(info.value) and name in str(info.value)


def test_one_probe_rule_for_a_missing_frame_count_and_rate(tmp_path: Path) -> None:
    """decode.probe and the reader's video_info give the same answer; what the container leaves out is filled by
    one rule: frames counted from the packets, a missing rate read as DEFAULT_FPS."""
    from types import SimpleNamespace

    import av

    from abaw.data.affwild2 import video_info

    path = tmp_path / "v.mkv"  # Matroska stores no frame count
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for _ in range(13):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode())
    meta = decode.probe(path)
    assert (meta.n_frames, meta.fps, meta.has_audio, meta.is_image) == (13, 30.0, False, False)
    assert video_info(path) == (meta.n_frames, meta.fps)
    no_rate = SimpleNamespace(average_rate=None, guessed_rate=None, base_rate=0)
    assert decode.frame_rate(no_rate) == decode.DEFAULT_FPS == 25.0
    assert decode.frame_rate(SimpleNamespace(average_rate=None, guessed_rate=30, base_rate=60)) == 30.0
    path.write_bytes(b"rewritten: not a video any more")  # the cache sees the new file
    with pytest.raises(AbawError, match="not a readable video"):
        decode.probe(path)
    with pytest.raises(AbawError, match="unreadable video") as info:
        video_info(path)
    assert str(info.value).count(str(path)) == 1


def test_upright_undoes_the_display_rotation() -> None:
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    image[0, 0] = 255
    turned = decode._upright(image, 90)
    assert turned.shape == (3, 2, 3) and turned[2, 0].max() == 255
    assert decode._upright(image, 0) is image


def test_prefetch_keeps_order_and_reraises() -> None:
    assert list(decode.prefetch(iter(range(50)), size=3)) == list(range(50))

    def broken():
        yield 1
        raise AbawError("boom")

    with pytest.raises(AbawError, match="boom"):
        list(decode.prefetch(broken()))


@pytest.mark.parametrize("video", ["single_face.mp4", "face_noface.mov"])
def test_fast_colour_conversion_matches_swscale(video: str, media_dir: Path) -> None:
    import av

    with av.open(str(media_dir / video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            ours, swscale = decode.to_bgr(frame), frame.to_ndarray(format="bgr24")
            assert ours.shape == swscale.shape and ours.dtype == np.uint8
            diff = np.abs(ours.astype(int) - swscale)
            assert diff.mean() < 2.0 and diff.max() <= 12  # rounding and chroma upsampling, same BT.601 matrix
            if i == 3:
                break


def test_odd_sized_frames_fall_back_to_swscale() -> None:
    import av

    frame = av.VideoFrame.from_ndarray(np.full((31, 45, 3), 120, np.uint8), format="bgr24").reformat(
        format="yuv420p")
    out = decode.to_bgr(frame)
    assert out.shape[2] == 3 and abs(int(out.mean()) - 120) <= 3

"""Face tracking across frames (IoU / centre-distance association with a track life), naming of the tracks like
Aff-Wild2 (``<video>``, or ``<video>_left`` / ``<video>_right`` by mean x), and the boxes table
(docs/design.md, "Boxes table").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from abaw import tasks
from abaw.data.affwild2 import BOX_COLUMNS
from abaw.video.assignment import linear_sum_assignment  # scipy only for a real matching problem
from abaw.video.faces import FaceDetection

# Column groups of the boxes table (its full column list is abaw.data.affwild2.BOX_COLUMNS).
FACE_COLUMNS: list[str] = [c for c in BOX_COLUMNS if c.startswith("face_") and c not in ("face_id", "face_score")]
LANDMARK_COLUMNS: list[str] = [c for c in BOX_COLUMNS if c.startswith("lm")]
PERSON_COLUMNS: list[str] = [c for c in BOX_COLUMNS if c.startswith("person_") and c != "person_score"]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def centre_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between the box centres in units of their mean size (so it is scale-free)."""
    ca = np.array([a[0] + a[2] / 2, a[1] + a[3] / 2])
    cb = np.array([b[0] + b[2] / 2, b[1] + b[3] / 2])
    size = (np.sqrt(a[2] * a[3]) + np.sqrt(b[2] * b[3])) / 2
    return float(np.linalg.norm(ca - cb) / max(size, 1e-6))


@dataclass
class Track:
    track_id: int
    frames: list[int] = field(default_factory=list)
    detections: list[FaceDetection] = field(default_factory=list)

    @property
    def last_box(self) -> np.ndarray:
        return self.detections[-1].box

    @property
    def mean_x(self) -> float:
        return float(np.mean([d.box[0] + d.box[2] / 2 for d in self.detections]))

    def __len__(self) -> int:
        return len(self.frames)


class FaceTracker:
    """Greedy-optimal (Hungarian) association of each frame's faces with the live tracks.

    A detection joins a track when their IoU is at least ``min_iou`` or their centres are closer than
    ``max_distance`` face sizes; a track not seen for ``max_age`` frames ends.
    """

    def __init__(self, min_iou: float = 0.2, max_distance: float = 0.6, max_age: int = 30) -> None:
        self.min_iou, self.max_distance, self.max_age = min_iou, max_distance, max_age
        self.tracks: list[Track] = []
        self._live: list[Track] = []

    def update(self, frame: int, detections: list[FaceDetection]) -> list[int]:
        """Add the detections of ``frame``; returns the track id given to each detection."""
        self._live = [t for t in self._live if frame - t.frames[-1] <= self.max_age]
        ids = [-1] * len(detections)
        if self._live and detections:
            cost = np.full((len(self._live), len(detections)), 1e6)
            for i, track in enumerate(self._live):
                for j, det in enumerate(detections):
                    overlap, dist = iou(track.last_box, det.box), centre_distance(track.last_box, det.box)
                    if overlap >= self.min_iou or dist <= self.max_distance:
                        cost[i, j] = (1.0 - overlap) + dist
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols, strict=True):
                if cost[i, j] < 1e6:
                    self._live[i].frames.append(frame)
                    self._live[i].detections.append(detections[j])
                    ids[j] = self._live[i].track_id
        for j, det in enumerate(detections):
            if ids[j] < 0:
                track = Track(len(self.tracks), [frame], [det])
                self.tracks.append(track)
                self._live.append(track)
                ids[j] = track.track_id
        return ids


def merge_tracks(tracks: list[Track], max_distance: float = 1.5) -> list[Track]:
    """Join a track that starts after another ends, close to where it ended (the same face lost for a while)."""
    merged: list[Track] = []
    for track in sorted(tracks, key=lambda t: t.frames[0]):
        best, best_dist = None, max_distance
        for prev in merged:
            if prev.frames[-1] < track.frames[0]:
                dist = centre_distance(prev.last_box, track.detections[0].box)
                if dist <= best_dist:
                    best, best_dist = prev, dist
        if best is None:
            merged.append(Track(track.track_id, list(track.frames), list(track.detections)))
        else:
            best.frames += track.frames
            best.detections += track.detections
    return merged


def select_tracks(tracks: list[Track], n_frames: int, max_faces: int | None = 2,
                  min_share: float = 0.05) -> list[Track]:
    """The ``max_faces`` longest tracks covering at least ``min_share`` of the frames (min. 1), left to right."""
    if not tracks:
        return []
    keep = [t for t in tracks if len(t) >= max(1, int(min_share * n_frames))] or [max(tracks, key=len)]
    keep = sorted(keep, key=len, reverse=True)[:max_faces] if max_faces else keep
    return sorted(keep, key=lambda t: t.mean_x)


def track_names(video: str, n_tracks: int) -> list[str]:
    """Aff-Wild2 names, left to right: one track is ``<video>``, two are ``<video>_left`` / ``<video>_right``."""
    if n_tracks <= 1:
        return [video]
    if n_tracks == 2:
        return [video + s for s in tasks.TWO_PERSON_SUFFIXES]
    return [f"{video}_{i}" for i in range(n_tracks)]


def derived_person_box(face_box: np.ndarray, width: int, height: int) -> np.ndarray:
    """A person box guessed from a face box: 3 faces wide, from half a face above to 6 faces below, in the frame."""
    x, y, w, h = (float(v) for v in face_box)
    cx = x + w / 2
    x0, y0 = max(0.0, cx - 1.5 * w), max(0.0, y - 0.5 * h)
    x1, y1 = min(float(width), cx + 1.5 * w), min(float(height), y + 7.0 * h)
    return np.array([x0, y0, max(1.0, x1 - x0), max(1.0, y1 - y0)], dtype=np.float32)


def person_for_face(face_box: np.ndarray, persons: list[tuple[np.ndarray, float]]) -> tuple[np.ndarray, float] | None:
    """The person box that contains the face box best (most of the face inside it, then the smaller box)."""
    best, best_key = None, (0.5, 0.0)
    fx, fy, fw, fh = face_box
    for box, score in persons:
        px, py, pw, ph = box
        ix = max(0.0, min(fx + fw, px + pw) - max(fx, px))
        iy = max(0.0, min(fy + fh, py + ph) - max(fy, py))
        inside = ix * iy / max(fw * fh, 1e-6)
        key = (round(inside, 2), -pw * ph)
        if inside >= 0.5 and key > best_key:
            best, best_key = (box, score), key
    return best


def boxes_table(video: str, n_frames: int, fps: float, width: int, height: int, tracks: list[Track],
                persons: dict[int, list[tuple[np.ndarray, float]]] | None = None,
                timestamps: np.ndarray | None = None) -> pd.DataFrame:
    """The boxes table: one row per frame per selected track (NaN face where the track has no face).

    ``timestamps`` holds each frame's presentation time in seconds (index ``frame - 1``, as
    :attr:`abaw.video.decode.Frame.timestamp`); without it (or for frames past its end) ``(frame - 1) / fps``.

    ``persons`` maps a frame number to that frame's person detections ((x, y, w, h), score). A video without any
    face gives one track whose face columns are all NaN and whose person box is the most confident person detected
    (carried over frames without one), else the whole frame.
    """
    persons = persons or {}
    names = track_names(video, len(tracks))
    frames = np.arange(1, n_frames + 1)
    times = (frames - 1) / fps
    if timestamps is not None:
        known = min(len(timestamps), n_frames)
        times[:known] = np.asarray(timestamps, dtype=np.float64)[:known]
    parts = []
    for face_id, (track, name) in enumerate(zip(tracks or [None], names, strict=False)):
        face = np.full((n_frames, 4), np.nan, dtype=np.float64)
        lms = np.full((n_frames, 10), np.nan, dtype=np.float64)
        score = np.zeros(n_frames)
        person = np.full((n_frames, 4), np.nan, dtype=np.float64)
        pscore = np.zeros(n_frames)
        if track is None:  # no face anywhere: the most confident person of each frame, if any
            for frame, found in persons.items():
                if 1 <= frame <= n_frames and found:
                    person[frame - 1], pscore[frame - 1] = max(found, key=lambda p: p[1])
        else:
            for frame, det in zip(track.frames, track.detections, strict=True):
                if not 1 <= frame <= n_frames:
                    continue
                i = frame - 1
                face[i], lms[i], score[i] = det.box, det.landmarks.reshape(-1), det.score
                found = person_for_face(det.box, persons.get(frame, []))
                if found is not None:
                    person[i], pscore[i] = found
                else:
                    person[i] = derived_person_box(det.box, width, height)
        # Frames without a face keep the person box of the nearest earlier frame (the next one before the first face).
        person_df = pd.DataFrame(person).ffill().bfill()
        whole_frame = np.tile([0.0, 0.0, width, height], (n_frames, 1))
        person = person_df.to_numpy() if person_df.notna().all().all() else whole_frame
        part = pd.DataFrame({"frame": frames, "timestamp": times, "face_id": face_id, "name": name})
        part[FACE_COLUMNS] = face
        part["face_score"] = score
        part[LANDMARK_COLUMNS] = lms
        part[PERSON_COLUMNS] = person
        part["person_score"] = pscore
        parts.append(part)
    return pd.concat(parts, ignore_index=True)[list(BOX_COLUMNS)]

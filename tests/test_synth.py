"""The synthetic Aff-Wild2 and AffectNet-format generators: layout, counts, crops, boxes, audio, determinism,
learnability, and the command line."""

from __future__ import annotations

import filecmp
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from abaw import tasks
from abaw.cli import main
from abaw.synth.affectnet import generate_affectnet
from abaw.synth.dataset import generate
from abaw.synth.latent import (
    CH,
    STATES,
    AffectTrack,
    masking_episodes,
    prototype_matrix,
    read_expression,
    simulate_person,
)

#: The boxes table of docs/design.md section 1, spelled out independently of the writer.
BOX_SCHEMA = (["frame", "timestamp", "face_id", "name", "face_x", "face_y", "face_w", "face_h", "face_score"]
              + [f"lm{i}_{c}" for i in range(5) for c in ("x", "y")]
              + ["person_x", "person_y", "person_w", "person_h", "person_score"])
FACE_FIELDS = ["face_x", "face_y", "face_w", "face_h"] + [f"lm{i}_{c}" for i in range(5) for c in ("x", "y")]


def _frame_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def _annotation_files(root: Path, layout: str = "abaw2021") -> dict[tuple[str, str], list[Path]]:
    out = {}
    for t in tasks.TRACKS:
        for s in tasks.SPLITS:
            d = root / "annotations" / tasks.ANNOTATION_DIRS[layout][t] / tasks.SPLIT_DIRS[s]
            out[t, s] = sorted(d.glob("*.txt"))
    return out


def _read_labels(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def _video_of(name: str) -> str:
    return tasks.split_two_person(name)[0]


@pytest.fixture(scope="module")
def set2022(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Six videos (one with two people) long enough to see the streams follow the labels, in the 2022 layout (a
    quarter of them are test videos, whose labels are in ``test_labels/``)."""
    root = tmp_path_factory.mktemp("synth2022") / "data"
    summary = generate(root, videos=6, frames=150, seed=3, layout="abaw2022")
    return root, summary


def test_layout_and_line_counts(tiny_root_ro: Path) -> None:
    root = tiny_root_ro
    videos = sorted((root / "videos").glob("*.mp4"))
    assert len(videos) == 6
    files = _annotation_files(root)
    for (track, split), paths in files.items():
        assert paths, f"no {split} videos in the {track} track"
        for path in paths:
            lines = path.read_text().splitlines()
            assert lines[0] == tasks.header(track, "abaw2021")
            n_video = _frame_count(root / "videos" / f"{_video_of(path.stem)}.mp4")
            assert len(lines) - 1 == n_video == 48
            labels = _read_labels(path)
            if track == "va":
                ok = (labels != tasks.VA_INVALID).all(axis=1)
                assert np.all(np.abs(labels[ok]) <= 1)
            elif track == "expr":
                assert set(np.unique(labels)) <= set(range(-1, 7))
            else:
                assert labels.shape[1] == 12 and set(np.unique(labels)) <= {-1, 0, 1}
    # not every video is in every track (like the real set), and test videos have no labels
    annotated = {p.stem for paths in files.values() for p in paths}
    for track in tasks.TRACKS:
        test_names = (root / "test_set" / f"{track}.txt").read_text().split()
        assert test_names and not set(test_names) & annotated
    per_track = [{p.stem for s in tasks.SPLITS for p in files[t, s]} for t in tasks.TRACKS]
    assert len({frozenset(x) for x in per_track}) > 1


def test_crops_boxes_and_invalid_labels(tiny_root_ro: Path) -> None:
    root = tiny_root_ro
    files = _annotation_files(root)
    no_face_frames = 0
    for video in sorted((root / "videos").glob("*.mp4")):
        df = pd.read_csv(root / "boxes" / f"{video.stem}.csv")
        assert list(df.columns) == BOX_SCHEMA
        assert list(zip(df["face_id"], df["frame"], strict=True)) == sorted(zip(df["face_id"], df["frame"],
                                                                               strict=True))
        assert df[["person_x", "person_y", "person_w", "person_h"]].notna().all().all()
        for face_id, track_df in df.groupby("face_id"):
            assert list(track_df["frame"]) == list(range(1, 49))
            assert np.allclose(track_df["timestamp"], (track_df["frame"] - 1) / 25.0)
            name = track_df["name"].iloc[0]
            has_face = track_df["face_score"].to_numpy() == 1.0
            assert np.isin(track_df["face_score"], [0.0, 1.0]).all()
            assert track_df.loc[has_face, FACE_FIELDS].notna().all().all()
            assert track_df.loc[~has_face, FACE_FIELDS].isna().all().all()
            crops = sorted(p.name for p in (root / "cropped_aligned" / name).glob("*.jpg"))
            assert crops == [tasks.CROP_PATTERN.format(f) for f in track_df["frame"][has_face]]
            no_face_frames += int((~has_face).sum())
            # frames without a face carry invalid labels in every track
            for (track, _split), paths in files.items():
                for path in paths:
                    if path.stem == name:
                        labels = _read_labels(path)
                        assert (labels[~has_face] == tasks.INVALID[track]).all()
            assert face_id in (0, 1)
    assert no_face_frames > 0
    # label stretches missing although the face is there exist somewhere (like the real set) or no-face ones do
    invalid = sum(int((_read_labels(p) == tasks.INVALID[t]).all(axis=1).sum()) for (t, _), ps in files.items()
                  for p in ps)
    assert invalid > 0


def test_crop_images(tiny_root_ro: Path) -> None:
    import cv2

    crop = next((tiny_root_ro / "cropped_aligned").glob("*/00001.jpg"), None)
    if crop is None:
        crop = next((tiny_root_ro / "cropped_aligned").glob("*/*.jpg"))
    img = cv2.imread(str(crop))
    assert img.shape == (112, 112, 3)
    assert img.std() > 10  # a face, not a blank image


def test_two_person_video(tiny_root_ro: Path) -> None:
    root = tiny_root_ro
    boxes = [pd.read_csv(p) for p in sorted((root / "boxes").glob("*.csv"))]
    two = [df for df in boxes if df["face_id"].nunique() == 2]
    assert two
    names = sorted(two[0]["name"].unique())
    video = _video_of(names[0])
    assert names == [video + "_left", video + "_right"]
    for name in names:
        assert (root / "cropped_aligned" / name).is_dir()
    assert not (root / "videos" / f"{names[0]}.mp4").exists() and (root / "videos" / f"{video}.mp4").exists()
    left = two[0][two[0]["name"] == names[0]]
    right = two[0][two[0]["name"] == names[1]]
    assert left["face_x"].mean() < right["face_x"].mean()


def test_audio_track_follows_arousal(set2022: tuple[Path, dict]) -> None:
    root, _ = set2022
    corrs = []
    labels = [*(root / "annotations").glob("VA_Estimation_Challenge/*/*.txt"),
              *(root / "test_labels" / "annotations").glob("VA_Estimation_Challenge/*/*.txt")]  # test videos too
    for path in sorted(labels):
        if tasks.split_two_person(path.stem)[1]:
            continue  # two voices mixed
        with av.open(str(root / "videos" / f"{_video_of(path.stem)}.mp4")) as c:
            assert c.streams.audio, "no audio track"
            stream = c.streams.audio[0]
            sr = stream.codec_context.sample_rate
            audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
        va = _read_labels(path)
        n = len(va)
        hop = sr / 25.0
        energy = np.array([np.sqrt(np.mean(audio[int(i * hop):int((i + 1) * hop)] ** 2) + 1e-12) for i in range(n)])
        # smooth over a second: speech comes in syllables and pauses, arousal sets the level
        kernel = np.ones(25) / 25
        energy = np.convolve(energy, kernel, mode="same")
        arousal = np.convolve(np.where(va[:, 1] == tasks.VA_INVALID, np.nan, va[:, 1]), kernel, mode="same")
        ok = ~np.isnan(arousal)
        if ok.sum() > 50 and energy[ok].std() > 0 and arousal[ok].std() > 0:
            corrs.append(np.corrcoef(energy[ok], arousal[ok])[0, 1])
    assert corrs and np.mean(corrs) > 0.2, corrs


def test_every_stream_carries_a_cue(set2022: tuple[Path, dict]) -> None:
    from abaw.synth.cues import stream_correlations

    r = stream_correlations(set2022[0])
    for key in ("body_openness~arousal", "scene_warmth~valence", "audio_rms~arousal", "audio_brightness~valence"):
        assert r[key] > 0.1, r


def test_layout_2022_and_mtl(set2022: tuple[Path, dict]) -> None:
    root, summary = set2022
    assert summary["layout"] == "abaw2022"
    files = _annotation_files(root, "abaw2022")
    expr = [p for s in tasks.SPLITS for p in files["expr", s]]
    assert expr and expr[0].read_text().splitlines()[0] == ",".join(tasks.EXPR_CLASSES_8)
    for s in tasks.SPLITS:
        mtl = root / "annotations" / "MTL" / tasks.MTL_FILES[s]
        df = pd.read_csv(mtl)
        assert list(df.columns) == list(tasks.MTL_HEADER_PREFIX) + list(tasks.AU_NAMES_12)
        for image in df["image"].head(20):
            assert (root / "cropped_aligned" / image).is_file()
        assert df["expression"].between(-1, 7).all()


def test_determinism(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", videos=3, frames=16, seed=7)
    b = generate(tmp_path / "b", videos=3, frames=16, seed=7, workers=2)
    generate(tmp_path / "c", videos=3, frames=16, seed=8)
    assert a["splits"] == b["splits"]
    for sub in ("annotations", "boxes", "test_set", "cropped_aligned", "videos"):
        ra = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a" / sub).rglob("*") if p.is_file())
        rb = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b" / sub).rglob("*") if p.is_file())
        assert ra == rb
        for rel in ra:
            assert filecmp.cmp(tmp_path / "a" / rel, tmp_path / "b" / rel, shallow=False), rel
    boxes_a = sorted((tmp_path / "a" / "boxes").glob("*.csv"))[0]
    assert boxes_a.read_bytes() != (tmp_path / "c" / "boxes" / boxes_a.name).read_bytes()


def test_expression_follows_action_pattern() -> None:
    protos = prototype_matrix()
    for k, state in enumerate(STATES):
        read = read_expression(0.8 * protos[k][None, :], protos)
        assert STATES[read[0]] == state
    track = simulate_person(np.random.default_rng(0), 500, 25.0)
    assert track.va.shape == (500, 2) and np.abs(track.va).max() <= 1
    happy = track.expr == STATES.index("Happiness")
    if happy.any() and (~happy).any():
        assert track.va[happy, 0].mean() > track.va[~happy, 0].mean()


def test_expr_learnable_from_crops(tmp_path: Path) -> None:
    """A logistic regression on downsampled crop pixels (per-person mean removed) beats the majority class on
    held-out videos."""
    import cv2
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    root = tmp_path / "data"
    generate(root, videos=8, frames=100, seed=1, cues={"face_masking": 0.0})  # masking: the face is not the label

    def load(split: str) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for path in sorted((root / "annotations" / "EXPR_Set" / tasks.SPLIT_DIRS[split]).glob("*.txt")):
            labels = _read_labels(path)[:, 0].astype(int)
            rows = []
            for i in np.flatnonzero(labels >= 0):
                img = cv2.imread(str(root / "cropped_aligned" / path.stem / tasks.CROP_PATTERN.format(i + 1)), 0)
                rows.append(cv2.resize(img, (24, 24), interpolation=cv2.INTER_AREA).reshape(-1) / 255.0)
                ys.append(labels[i])
            if rows:  # subtract each person's mean crop: the identity is not the expression
                xs.extend(np.array(rows) - np.mean(rows, axis=0))
        return np.array(xs), np.array(ys)

    x_tr, y_tr = load("train")
    x_va, y_va = load("validation")
    model = LogisticRegression(max_iter=200, C=0.5).fit(x_tr, y_tr)
    f1_model = f1_score(y_va, model.predict(x_va), average="macro")
    f1_major = f1_score(y_va, np.full_like(y_va, np.bincount(y_tr).argmax()), average="macro")
    assert f1_model > f1_major + 0.05, (f1_model, f1_major)


def test_affectnet_layout(tmp_path: Path) -> None:
    out = tmp_path / "affectnet"
    s = generate_affectnet(out, images=64, seed=2, size=96)
    assert s["train"] + s["validation"] == 64
    cols = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
            "expression", "valence", "arousal"]
    frames = []
    for name in ("training.csv", "validation.csv"):
        df = pd.read_csv(out / name)
        assert list(df.columns) == cols
        frames.append(df)
    df = pd.concat(frames)
    assert set(df["expression"]) == set(range(len(tasks.AFFECTNET_CLASSES)))
    assert df["valence"].between(-1, 1).all() and df["arousal"].between(-1, 1).all()
    for _, row in df.head(5).iterrows():
        assert (out / "Manually_Annotated_Images" / row["subDirectory_filePath"]).is_file()
        lm = np.array(row["facial_landmarks"].split(";"), dtype=float).reshape(68, 2)
        assert (lm >= 0).all() and (lm < 96).all()
        assert 0 <= row["face_x"] < 96 and row["face_width"] > 10
    # the same seed gives the same set
    generate_affectnet(tmp_path / "again", images=64, seed=2, size=96)
    assert (out / "training.csv").read_bytes() == (tmp_path / "again" / "training.csv").read_bytes()
    # happiness is happier than sadness
    happy = df[df["expression"] == tasks.AFFECTNET_CLASSES.index("Happiness")]["valence"].mean()
    sad = df[df["expression"] == tasks.AFFECTNET_CLASSES.index("Sadness")]["valence"].mean()
    assert happy > sad


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main(["synth", "--out", str(out), "--videos", "2", "--frames", "12", "--seed", "1"]) == 0
    assert "wrote 2 videos" in capsys.readouterr().out
    assert (out / "synth.json").is_file()
    # regenerating over an earlier synthetic set replaces it
    assert main(["synth", "--out", str(out), "--videos", "1", "--frames", "10"]) == 0
    assert len(list((out / "videos").glob("*.mp4"))) == 1
    # a folder with other data is refused with one line
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    assert main(["synth", "--out", str(other), "--videos", "1", "--frames", "10"]) == 2
    err = capsys.readouterr().err
    assert "not a synthetic set" in err and err.count("\n") == 1
    assert main(["synth", "--out", str(tmp_path / "bad"), "--size", "321x240"]) == 2
    assert main(["synth-affectnet", "--out", str(tmp_path / "an"), "--images", "10", "--size", "64"]) == 0


def test_hidden_test_labels(tiny_root_ro: Path) -> None:
    """The test names' labels live in their own root (the data root's layout, Test_Set), never in annotations/."""
    from abaw.data.affwild2 import AffWild2
    from abaw.synth.dataset import TEST_LABELS_DIR

    root = tiny_root_ro
    ds = AffWild2(root)
    seen = {e.name for s in tasks.SPLITS for t in tasks.TRACKS for e in ds.entries(s, t)}
    for track in tasks.TRACKS:
        names = (root / "test_set" / f"{track}.txt").read_text().split()
        folder = root / TEST_LABELS_DIR / "annotations" / tasks.ANNOTATION_DIRS["abaw2021"][track] / "Test_Set"
        assert sorted(p.stem for p in folder.glob("*.txt")) == sorted(names)
        for name in names:
            lines = (folder / f"{name}.txt").read_text().splitlines()
            assert lines[0] == tasks.header(track, "abaw2021") and len(lines) == 49
            assert name not in seen
    assert not list((root / "annotations").rglob("Test_Set"))


def test_splits_are_stratified_on_the_labels() -> None:
    """Validation and test get the same mix of expressions, AUs and two-person videos, far closer than a random split
    of the same sizes (over three draws of 40 videos: how close one draw gets depends on its rarest class); the split
    sizes and a video assigned beforehand are kept."""
    from abaw.synth.dataset import _plan_splits, _split_sizes, label_profile
    from abaw.synth.render import VideoSpec

    n = 40
    n_va = 4 + 4 + 3 + 3 + 2
    expr = slice(3 + n_va, 3 + n_va + len(tasks.EXPR_CLASSES_8))
    spread = slice(3 + n_va - 2, 3 + n_va)  # valence and arousal spread: the CCC's denominator
    ratios, spread_ratios = [], []

    def gap(profiles: np.ndarray, split: list[str], columns: slice = expr) -> float:
        shares = [profiles[np.array(split) == s].sum(axis=0) / profiles.sum(axis=0) for s in ("validation", "test")]
        return float(np.abs(shares[0] - shares[1])[columns].max())

    for draw in (3, 4, 5):
        specs = [VideoSpec(video=f"v{i}", seed=(draw, i), frames=80, fps=25.0, width=320, height=240,
                           two_person=i % 8 == 0) for i in range(n)]
        profiles = np.stack([label_profile(s) for s in specs])
        assert profiles.shape == (n, 3 + n_va + len(tasks.EXPR_CLASSES_8) + 12 + 2) and profiles[:, -1].sum() == 5
        assert not label_profile(specs[0], {"va"})[[1, 2] + list(range(3 + n_va, 3 + n_va + 20))].any()

        split = _plan_splits(np.random.default_rng(0), profiles, first={8: "test"})
        assert split[8] == "test"
        assert {s: split.count(s) for s in ("train", "validation", "test")} == _split_sizes(n) == {
            "train": 16, "validation": 12, "test": 12}
        rng = np.random.default_rng(0)
        ratios.append(gap(profiles, split) / float(np.median([gap(profiles, list(rng.permutation(split)))
                                                              for _ in range(20)])))
        spread_ratios.append(gap(profiles, split, spread) / float(np.median(
            [gap(profiles, list(rng.permutation(split)), spread) for _ in range(20)])))
    assert max(ratios) < 1.0 and float(np.mean(ratios)) < 0.5, ratios
    assert float(np.mean(spread_ratios)) < 1.0, spread_ratios
    assert _plan_splits(np.random.default_rng(0), profiles[:1]) == ["train"]
    assert sorted(_plan_splits(np.random.default_rng(0), profiles[:2])) == ["train", "validation"]


def test_cue_strengths() -> None:
    from abaw.errors import AbawError
    from abaw.synth.params import Cues, make_cues, parse_cue

    assert make_cues(None) == Cues() and make_cues({"talk": "0.2"}).talk == 0.2
    assert parse_cue("audio_valence=0") == ("audio_valence", 0.0)
    for bad in ({"nope": 1}, {"talk": -1}, {"talk": "x"}):
        with pytest.raises(AbawError):
            make_cues(bad)

    def person(frames: int = 2000, **cues: float) -> AffectTrack:
        """The same simulated person (seed 0, 25 fps) under other cue strengths."""
        return simulate_person(np.random.default_rng(0), frames, 25.0, Cues(**cues))

    # without masking and the eyes' arousal the face shows the labelled actions exactly without per-frame jitter,
    # and noisily with it
    clean = person(200, face_noise=0.0, face_masking=0.0, face_arousal=0.0)
    assert np.array_equal(clean.shown, clean.actions)
    noisy = person(200, face_noise=0.3, face_masking=0.0)
    assert np.array_equal(noisy.au, clean.au)  # the labels do not see the jitter
    assert np.abs(np.diff(noisy.shown[:, :12], axis=0)).mean() > 0.15
    # a masking face shows a trace of the felt actions: the expression label follows the feeling, the AUs the face
    masking = person(face_noise=0.0, face_masking=0.5, masked_trace=0.15, masked_leak=0.0, masked_negative=0.0)
    masked = masking.masked > 0.99
    assert 0.3 < masked.mean() < 0.7
    assert (masking.shown[masked, :12] <= 0.15 * masking.actions[masked, :12] + 0.3 + 1e-9).all()
    assert masking.au[masked].mean() < 0.02 and (masking.expr[masked] != 0).mean() > 0.3
    # masked_trace 0: a neutral face (only talking moves the lips), the same feeling and labels of expression
    neutral = person(face_noise=0.0, face_masking=0.5, masked_trace=0.0, masked_leak=0.0, masked_negative=0.0)
    lips = [CH["AU25"], CH["AU26"]]
    others = np.setdiff1d(np.arange(12), lips)
    assert np.array_equal(neutral.expr, masking.expr) and np.array_equal(neutral.masked, masking.masked)
    assert neutral.shown[masked][:, others].max() < 0.02 < masking.shown[masked][:, others].max()
    # short clips are masked about as often as long ones: a clip may open inside an episode
    clips = np.stack([masking_episodes(np.random.default_rng(i), 80, 25.0, 0.2) for i in range(400)])
    assert abs((clips > 0.5).mean() - 0.2) < 0.03 and (clips[:, 0] > 0.5).mean() > 0.1
    # masked_leak: the masking face leaks the felt valence as a faint smile or frown, below the AU threshold
    leaky = person(face_noise=0.0, face_masking=0.5, masked_trace=0.0, masked_leak=1.5, masked_negative=0.0)
    up, down = CH["AU12"], CH["AU15"]
    smile = leaky.shown[masked, up] - leaky.shown[masked, down]
    assert np.array_equal(leaky.expr, masking.expr) and np.array_equal(leaky.au[masked], neutral.au[masked])
    assert np.corrcoef(smile, leaky.va[masked, 0])[0, 1] > 0.8 and leaky.shown[masked][:, others].max() < 0.4
    # masked_negative 1: only unpleasant feelings are masked (happiness and surprise show)
    negative = person(face_noise=0.0, face_masking=0.5, masked_trace=0.0, masked_negative=1.0)
    shown_states = {tasks.EXPR_CLASSES_8.index(c) for c in ("Happiness", "Surprise")}
    hidden_states = {tasks.EXPR_CLASSES_8.index(c) for c in ("Anger", "Sadness")}
    pleasant = np.isin(negative.expr, list(shown_states))
    unpleasant = np.isin(negative.expr, list(hidden_states)) & masked
    assert (negative.masked[pleasant] < 0.05).mean() > 0.95 and negative.masked[unpleasant].mean() > 0.5
    # the slow valence shows as a tonic smile or frown: per person, the face's mean says more about the mean valence
    def mood_read(tonic: float) -> float:
        rng = np.random.default_rng(1)
        people = [simulate_person(rng, 100, 25.0, Cues(face_tonic=tonic, face_masking=0.0)) for _ in range(60)]
        up, down = tasks.AU_NAMES_12.index("AU12"), tasks.AU_NAMES_12.index("AU15")
        smile = [(p.shown[:, up] - p.shown[:, down]).mean() for p in people]
        return float(np.corrcoef(smile, [p.va[:, 0].mean() for p in people])[0, 1])

    assert mood_read(1.5) > mood_read(0.0) + 0.1
    # arousal the face does not show widens arousal beyond what the expression explains
    flat = person(arousal_hidden=0.0)
    hidden = person(arousal_hidden=0.4)
    assert hidden.va[:, 1].std() > flat.va[:, 1].std()
    # the eyes show arousal, also while the face masks a feeling; the labels do not move
    closed, eyes = (person(face_noise=0.0, face_masking=0.5, arousal_hidden=0.0, face_arousal=gain) for gain in (0, 1))
    assert np.array_equal(closed.expr, eyes.expr) and np.array_equal(closed.au, eyes.au)
    assert np.array_equal(closed.va, eyes.va)
    wide = (eyes.shown - closed.shown)[:, CH["AU5"]] - (eyes.shown - closed.shown)[:, CH["blink"]]
    mask = eyes.masked > 0.5
    assert mask.sum() > 100 and np.corrcoef(wide[mask], eyes.va[mask, 1])[0, 1] > 0.8


def test_body_shows_the_expression(tmp_path: Path) -> None:
    """Posture follows the state (a slump in sadness, hands up in fear, open arms in happiness), scaled by the cue;
    the cue's strength changes the body's pixels and nothing else of the video (labels, face frames)."""
    from abaw.synth.render import VideoSpec, render_video
    from abaw.synth.scene import body_posture

    one_hot = np.eye(len(STATES))
    arms, slump = body_posture(one_hot, STATES, 1.0)
    k = {s: STATES.index(s) for s in ("Sadness", "Fear", "Happiness", "Neutral")}
    assert slump[k["Sadness"]] > 0.5 and arms[k["Sadness"], 0] < 0
    assert arms[k["Fear"], 1] > 0.5 and arms[k["Happiness"], 0] > 0
    assert not arms[k["Neutral"]].any() and slump[k["Neutral"]] == 0
    assert not any(x.any() for x in body_posture(one_hot, STATES, 0.0))

    def render(strength: float) -> tuple[list, bytes]:
        from abaw.synth.params import Cues

        root = tmp_path / str(strength)
        spec = VideoSpec(video="v", seed=(5, 1), frames=24, fps=25.0, width=160, height=120,
                         cues=Cues(body_expression=strength))
        people = render_video(root, spec)
        return people, (root / tasks.VIDEOS_DIR / "v.mp4").read_bytes()

    (still,), still_video = render(0.0)
    (shown,), shown_video = render(1.0)
    assert np.array_equal(still.va, shown.va) and np.array_equal(still.expr, shown.expr)
    assert np.array_equal(still.face, shown.face) and still_video != shown_video

def test_feature_probes_find_the_cue_and_flag_vanished_features(tiny_root: Path) -> None:
    """Ridge on cached features that hold the labels beats the trivial baseline; all-zero features show scale 0."""
    from abaw.data.affwild2 import AffWild2
    from abaw.fileio import save_npz
    from abaw.synth.probes import feature_probes

    ds = AffWild2(tiny_root)
    rng = np.random.default_rng(0)
    for split in tasks.SPLITS:
        for entry in ds.entries(split, "va"):
            va = ds.labels(entry)
            valid = (va != tasks.VA_INVALID).all(axis=1)
            feats = np.concatenate([np.where(valid[:, None], va, 0), rng.normal(0, 0.3, (len(va), 6))], axis=1)
            for stream, x in (("body", feats), ("context", np.zeros_like(feats))):
                save_npz(tiny_root / "features" / stream / "fake" / f"{entry.name}.npz",
                         feats=x.astype(np.float16), valid=valid)
    probes = feature_probes(tiny_root)
    body, context = probes["body/fake"], probes["context/fake"]
    assert body["va"]["frame"]["valence"] > 0.8 and body["scale"] > 0.1
    assert context["scale"] == 0.0

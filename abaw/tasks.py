"""The one source of truth for the ABAW tasks: tracks, class orders, AU lists, invalid markers, headers,
annotation folder names and the official protocol of each competition year.

Every other module imports these names; no class list or folder name is written anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

TRACKS: tuple[str, ...] = ("va", "expr", "au")
#: The NTUA-CVSP command line numbers the tracks; we add 3 for AU.
TRACK_NUMBERS: dict[int, str] = {1: "va", 2: "expr", 3: "au"}
TRACK_TITLES: dict[str, str] = {
    "va": "Valence-Arousal Estimation",
    "expr": "Expression Classification",
    "au": "Action Unit Detection",
}

SPLITS: tuple[str, ...] = ("train", "validation")
SPLIT_DIRS: dict[str, str] = {"train": "Train_Set", "validation": "Validation_Set"}
#: The test split. Its labels are hidden: they live only in a separate label root laid out like a data root's
#: annotations (``LABELS/annotations/<track dir>/Test_Set/<name>.txt``, e.g. the synthetic generator's
#: ``test_labels/``), read only by ``abaw score --split test --labels LABELS``. It is kept out of SPLITS and
#: SPLIT_DIRS, which are all that training, evaluation and the data root reader look at (real Aff-Wild2 has no test
#: labels).
TEST_SPLIT = "test"
TEST_SPLIT_DIR = "Test_Set"
#: Splits that result files are written for, validated and scored on.
RESULT_SPLITS: tuple[str, ...] = SPLITS + (TEST_SPLIT,)
#: Annotation split folders of a label root (``abaw score --labels``): SPLIT_DIRS plus the test split's.
LABEL_SPLIT_DIRS: dict[str, str] = {**SPLIT_DIRS, TEST_SPLIT: TEST_SPLIT_DIR}

VA_NAMES: tuple[str, str] = ("valence", "arousal")
VA_INVALID: float = -5.0
EXPR_INVALID: int = -1
AU_INVALID: int = -1
INVALID: dict[str, float] = {"va": VA_INVALID, "expr": EXPR_INVALID, "au": AU_INVALID}

EXPR_CLASSES_7: tuple[str, ...] = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")
EXPR_CLASSES_8: tuple[str, ...] = EXPR_CLASSES_7 + ("Other",)

AU_NAMES_8: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25")
AU_NAMES_12: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25",
                                "AU26")

#: Annotation folder names per layout (``annotations/<dir>/<Train_Set|Validation_Set>/<name>.txt``).
ANNOTATION_DIRS: dict[str, dict[str, str]] = {
    "abaw2021": {"va": "VA_Set", "expr": "EXPR_Set", "au": "AU_Set"},
    "abaw2022": {"va": "VA_Estimation_Challenge", "expr": "EXPR_Classification_Challenge",
                 "au": "AU_Detection_Challenge"},
}
LAYOUTS: tuple[str, ...] = tuple(ANNOTATION_DIRS)
#: Other names of an annotation folder, read when the usual one is absent: the 6th ABAW (2024) distributed the EXPR
#: labels as ``EXPR_Recognition_Challenge`` (public code of 2024 entries).
ANNOTATION_DIR_ALIASES: dict[str, tuple[str, ...]] = {"EXPR_Classification_Challenge": ("EXPR_Recognition_Challenge",)}

#: Multi-task (2022 on) CSV layout: one file per split, ``image`` is ``<video>/00001.jpg``.
MTL_HEADER_PREFIX: tuple[str, ...] = ("image", "valence", "arousal", "expression")
MTL_FILES: dict[str, str] = {"train": "training_set_annotations.txt", "validation": "validation_set_annotations.txt"}
#: The reader's name for that layout (``--layout mtl``); the per-track layouts are LAYOUTS.
MTL_LAYOUT = "mtl"

#: Folder names of a data root (docs/design.md section 1).
ANNOTATIONS_DIR = "annotations"
VIDEOS_DIR = "videos"
CROPS_DIR = "cropped_aligned"
TEST_SET_DIR = "test_set"
BOXES_DIR = "boxes"
MTL_DIR = "MTL"
PREPARED_DIR = "prepared"
FEATURES_DIR = "features"
#: A synthetic root's summary (``abaw synth``): its cue strengths change the pixels and sound, not the labels.
SYNTH_SUMMARY_FILE = "synth.json"

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi")

#: Result-file formats: "folder" (2020-2022: ``<track dir>/<name>.txt`` with the annotation header, one line per
#: frame) and "single" (2023 on: one file per track, ``<track dir>.txt``, below).
RESULT_FORMATS: tuple[str, ...] = ("folder", "single")
#: First column of the single-file format: ``<name>/00001.jpg`` (CROP_PATTERN), one line per frame of each test video.
#: Header and lines as the public code of ABAW 2023-2025 entries writes them for the organisers' per-track sample
#: files (``CVPR_5th/6th/8th_ABAW_<VA|Expr|AU>_test_set_example/sample.txt``): upczww/abaw5 and upczww/abaw6
#: (``EXPR/test.py``, ``AU/test.py``; 5th and 6th ABAW) and FreedomPuppy77/Charon (``VA/test.py``; 8th ABAW):
#: ``image_location,valence,arousal`` then ``<name>/00001.jpg,v,a``; ``image_location,Neutral,...,Other`` (the 8
#: class names) then ONE class index per line, as in the 2020-2022 files; ``image_location,AU1,...,AU26`` then 12
#: 0/1 values. So a single-file line is the folder format's line with ``<name>/<frame>.jpg,`` in front. The file
#: name is abaw's choice (``Protocol.result_file``; entrants name theirs freely, e.g. ``predictions.txt``): readers
#: take any name when given the file itself.
IMAGE_LOCATION = "image_location"

#: The input streams. Image streams are CNN inputs cut from the frame; audio is a log-mel window per frame; the
#: landmarks are points, fed to the model without a CNN. ENCODED_STREAMS are the ones with a per-frame encoder
#: (what ``abaw extract`` caches).
IMAGE_STREAMS: tuple[str, ...] = ("face", "body", "context")
ENCODED_STREAMS: tuple[str, ...] = IMAGE_STREAMS + ("audio",)
STREAMS: tuple[str, ...] = ENCODED_STREAMS + ("landmarks",)
CROP_PATTERN = "{:05d}.jpg"  # frame i (1-based) -> cropped_aligned/<name>/00001.jpg
TWO_PERSON_SUFFIXES: tuple[str, ...] = ("_left", "_right")


@dataclass(frozen=True)
class Protocol:
    """One competition year's task definitions and official metrics."""

    name: str
    expr_classes: tuple[str, ...]
    au_names: tuple[str, ...]
    #: "f1_acc" = 0.67 * macro F1 + 0.33 * accuracy (EXPR) or 0.5 * mean F1 + 0.5 * accuracy (AU); "f1" = F1 only.
    expr_metric: str
    au_metric: str
    layout: str
    #: Result-file format of the year: "folder" (one <video>.txt per name) or "single" (one file per track).
    result_format: str = "folder"

    @property
    def n_expr(self) -> int:
        return len(self.expr_classes)

    @property
    def n_au(self) -> int:
        return len(self.au_names)

    def header(self, track: str) -> str:
        """The header line of an annotation file or a 2020-2022 result file for ``track``."""
        return header(track, self)

    def n_outputs(self, track: str) -> int:
        return {"va": 2, "expr": self.n_expr, "au": self.n_au}[check_track(track)]

    def annotation_dir(self, track: str) -> str:
        return ANNOTATION_DIRS[self.layout][check_track(track)]

    def single_header(self, track: str) -> str:
        """The header line of a single-file (2023 on) result file: ``image_location,<header>``."""
        return f"{IMAGE_LOCATION},{header(track, self)}"

    def result_file(self, track: str) -> str:
        """File name of a track's single-file result: the track's annotation folder name + ``.txt``."""
        return f"{self.annotation_dir(track)}.txt"


PROTOCOLS: dict[str, Protocol] = {
    "abaw2020": Protocol("abaw2020", EXPR_CLASSES_7, AU_NAMES_8, "f1_acc", "f1_acc", "abaw2021"),
    "abaw2021": Protocol("abaw2021", EXPR_CLASSES_7, AU_NAMES_12, "f1_acc", "f1_acc", "abaw2021"),
    "abaw2022": Protocol("abaw2022", EXPR_CLASSES_8, AU_NAMES_12, "f1", "f1", "abaw2022"),
    # 5th (CVPR 2023), 6th (CVPR 2024) and 8th (CVPR 2025) ABAW: the VA, EXPR and AU tracks of 2022 on Aff-Wild2
    # (8 expressions, 12 AUs, mean CCC, macro F1, mean per-AU F1, the 2022 annotation folders), results in one file
    # per track. The 7th ABAW (ECCV 2024) ran other tasks on other data: no protocol here. The 6th ABAW's
    # annotations name the EXPR folder EXPR_Recognition_Challenge (public code of 2024 entries): read as an alias
    # (ANNOTATION_DIR_ALIASES).
    "abaw2023": Protocol("abaw2023", EXPR_CLASSES_8, AU_NAMES_12, "f1", "f1", "abaw2022", "single"),
    "abaw2024": Protocol("abaw2024", EXPR_CLASSES_8, AU_NAMES_12, "f1", "f1", "abaw2022", "single"),
    "abaw2025": Protocol("abaw2025", EXPR_CLASSES_8, AU_NAMES_12, "f1", "f1", "abaw2022", "single"),
}
DEFAULT_PROTOCOL = "abaw2021"

#: Official weights of the F1 / accuracy mix for protocols whose metric is "f1_acc".
EXPR_F1_WEIGHT, EXPR_ACC_WEIGHT = 0.67, 0.33
AU_F1_WEIGHT, AU_ACC_WEIGHT = 0.5, 0.5


def get_protocol(name: str | Protocol | None = None) -> Protocol:
    """Return a protocol by name (``abaw2020`` ... ``abaw2025``); ``None`` gives the default."""
    if isinstance(name, Protocol):
        return name
    key = DEFAULT_PROTOCOL if name is None else str(name).lower()
    if key not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[key]


def check_track(track: str | int) -> str:
    """Normalise a track given as a name (``va``/``expr``/``au``) or number (1, 2, 3)."""
    if isinstance(track, int) or (isinstance(track, str) and track.isdigit()):
        number = int(track)
        if number not in TRACK_NUMBERS:
            raise ValueError(f"unknown track {track!r}; choose 1 (VA), 2 (EXPR) or 3 (AU)")
        return TRACK_NUMBERS[number]
    key = str(track).lower()
    if key not in TRACKS:
        raise ValueError(f"unknown track {track!r}; choose one of {', '.join(TRACKS)}")
    return key


def header(track: str, protocol: str | Protocol | None = None) -> str:
    """Header line of an annotation / result file."""
    proto = get_protocol(protocol)
    track = check_track(track)
    if track == "va":
        return ",".join(VA_NAMES)
    if track == "expr":
        return ",".join(proto.expr_classes)
    return ",".join(proto.au_names)


def valid_mask(track: str, labels: np.ndarray) -> np.ndarray:
    """True for frames whose label is valid: no invalid marker (-5 VA, -1 EXPR/AU) in any column, no NaN."""
    import numpy as np  # here, so that importing the vocabulary stays free of numpy

    track = check_track(track)
    labels = np.asarray(labels, dtype=np.float64)
    labels = labels.reshape(len(labels), -1)
    ok = np.isfinite(labels) & (labels != INVALID[track])
    return ok.all(axis=1)


def expr_column(name: str) -> str:
    """Column name of an expression probability in prediction tables (py-feat style: lower case)."""
    return name.lower()


def au_column(name: str) -> str:
    """Column name of an AU in prediction tables (py-feat / OpenFace style: ``AU1`` -> ``AU01``)."""
    return f"AU{int(name[2:]):02d}"


def expr_columns(protocol: str | Protocol | None = None) -> list[str]:
    return [expr_column(c) for c in get_protocol(protocol).expr_classes]


def au_columns(protocol: str | Protocol | None = None) -> list[str]:
    return [au_column(a) for a in get_protocol(protocol).au_names]


def split_two_person(name: str) -> tuple[str, str]:
    """``'10-60-1280x720_left'`` -> ``('10-60-1280x720', 'left')``; a one-person name gives ``(name, '')``."""
    for suffix in TWO_PERSON_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)], suffix[1:]
    return name, ""


# ---- AffectNet and AffectNetC25 expression codes (crowd learning, AffectNet pretraining) -----------------------
AFFECTNET_CLASSES: tuple[str, ...] = ("Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger",
                                      "Contempt")
AFFECTNETC25_CLASSES: tuple[str, ...] = ("Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger", "Contempt",
                                         "Neutral")
#: FER2013's label order (angry, disgust, fear, happy, sad, surprise, neutral), as the mini-Xception outputs it.
FER2013_CLASSES: tuple[str, ...] = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Neutral")
#: CREMA-D's emotions in the order of its vote columns (A, D, F, H, N, S).
CREMAD_CLASSES: tuple[str, ...] = ("Anger", "Disgust", "Fear", "Happiness", "Neutral", "Sadness")
#: AffectNetC25 valence/arousal levels: 9 steps of 0.25 from -1 to 1.
AFFECTNETC25_VA_LEVELS: tuple[float, ...] = tuple(-1.0 + 0.25 * i for i in range(9))


def class_mapping(src: tuple[str, ...], dst: tuple[str, ...]) -> dict[int, int]:
    """Map class indices of ``src`` onto ``dst`` by name; a class ``dst`` lacks (Contempt in ABAW) is left out,
    so callers must decide explicitly what happens to it (drop the sample, or map it to ``Other`` where it exists)."""
    return {i: dst.index(name) for i, name in enumerate(src) if name in dst}

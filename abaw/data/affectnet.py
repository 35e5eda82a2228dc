"""AffectNet-format data: ``Manually_Annotated_Images/<subDirectory_filePath>`` plus ``training.csv`` /
``validation.csv`` (columns ``subDirectory_filePath, face_x, face_y, face_width, face_height, facial_landmarks,
expression, valence, arousal``), and the explicit mappings between AffectNet, AffectNetC25 and ABAW class orders.

AffectNet expression codes 0-7 are :data:`abaw.tasks.AFFECTNET_CLASSES`; 8 ``None`` (none of the eight), 9
``Uncertain`` and 10 ``No-Face`` are not emotions. Valence/arousal are in [-1, 1]; -2 marks "not annotated".

Class mapping decisions (:func:`expression_lookup`):

- to AffectNet / AffectNetC25 order: a permutation of the same 8 classes; codes 8-10 are dropped (-1);
- to the 7 ABAW classes (``abaw7``, protocols abaw2020/abaw2021): **Contempt is dropped** (-1), as are 8-10;
- to the 8 ABAW classes (``abaw8``, protocol abaw2022): **Contempt and None map to Other**; Uncertain and No-Face
  are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from abaw import tasks
from abaw.errors import AbawError
from abaw.tasks import AFFECTNET_CLASSES, AFFECTNETC25_CLASSES, EXPR_CLASSES_7, EXPR_CLASSES_8, class_mapping
from abaw.video.resize import resize

COLUMNS: tuple[str, ...] = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                            "facial_landmarks", "expression", "valence", "arousal")
IMAGE_DIR = "Manually_Annotated_Images"
SPLIT_FILES: dict[str, str] = {"train": "training.csv", "validation": "validation.csv"}
#: AffectNet's codes beyond the 8 emotions.
NONE_CODE, UNCERTAIN_CODE, NOFACE_CODE = 8, 9, 10
N_CODES = 11
VA_INVALID = -2.0

#: Target class orders by name; protocol names select the ABAW order of their year.
TARGET_CLASSES: dict[str, tuple[str, ...]] = {
    "affectnet": AFFECTNET_CLASSES,
    "affectnetc25": AFFECTNETC25_CLASSES,
    "abaw7": EXPR_CLASSES_7,
    "abaw8": EXPR_CLASSES_8,
    **{name: protocol.expr_classes for name, protocol in tasks.PROTOCOLS.items()},  # abaw2020 ... abaw2025
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def target_classes(target: str) -> tuple[str, ...]:
    if target not in TARGET_CLASSES:
        raise AbawError(f"unknown class order {target!r}; choose one of {', '.join(TARGET_CLASSES)}")
    return TARGET_CLASSES[target]


def expression_lookup(target: str = "affectnet", source: tuple[str, ...] = AFFECTNET_CLASSES) -> np.ndarray:
    """A lookup table ``codes -> target index`` (-1 = dropped) for source codes ``0 .. 10`` (AffectNet, with its
    None/Uncertain/No-Face codes) or ``0 .. 7`` (AffectNetC25: pass ``source=AFFECTNETC25_CLASSES``).
    See the module docstring for what happens to Contempt and None."""
    dst = target_classes(target)
    n_codes = N_CODES if source == AFFECTNET_CLASSES else len(source)
    table = np.full(n_codes, -1, dtype=np.int64)
    for src_idx, dst_idx in class_mapping(source, dst).items():
        table[src_idx] = dst_idx
    if "Other" in dst:
        table[source.index("Contempt")] = dst.index("Other")
        if source == AFFECTNET_CLASSES:
            table[NONE_CODE] = dst.index("Other")
    return table


def map_expressions(codes: np.ndarray, target: str = "affectnet", source: tuple[str, ...] = AFFECTNET_CLASSES
                    ) -> np.ndarray:
    """Map an array of source codes (any shape; negative = missing, kept as -1) onto ``target``'s order."""
    codes = np.asarray(codes, dtype=np.int64)
    table = expression_lookup(target, source)
    out = np.full(codes.shape, -1, dtype=np.int64)
    ok = (codes >= 0) & (codes < len(table))
    out[ok] = table[codes[ok]]
    return out


def read_split(root: str | Path, split: str) -> pd.DataFrame:
    """Read ``training.csv`` / ``validation.csv`` of an AffectNet-format root, checked column by column."""
    if split not in SPLIT_FILES:
        raise AbawError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_FILES)}")
    path = Path(root) / SPLIT_FILES[split]
    if not path.is_file():
        raise AbawError(f"no {SPLIT_FILES[split]} (is this an AffectNet-format folder?)", path=path)
    try:
        df = pd.read_csv(path, dtype={"subDirectory_filePath": str, "facial_landmarks": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AbawError(f"not a readable CSV table ({str(exc).splitlines()[0]})", path=path) from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise AbawError(f"missing AffectNet columns: {', '.join(missing)}", path=path)
    for col in ("face_x", "face_y", "face_width", "face_height", "expression", "valence", "arousal"):
        values = pd.to_numeric(df[col], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise AbawError(f"column {col!r}: not a number: {df[col].iloc[row]!r}", path=path, line=row + 2)
        df[col] = values
    expr = df["expression"].to_numpy()
    bad = (expr != np.round(expr)) | (expr < 0) | (expr >= N_CODES)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise AbawError(f"expression code {float(expr[row]):g} is not an integer in 0..10", path=path, line=row + 2)
    df["expression"] = df["expression"].astype(np.int64)
    for col in ("valence", "arousal"):
        v = df[col].to_numpy()
        bad = ~(((v >= -1) & (v <= 1)) | (v == VA_INVALID))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise AbawError(f"{col} {float(v[row]):g} outside [-1, 1] (and not the -2 marker)", path=path, line=row + 2)
    return df


def image_path(root: str | Path, rel: str) -> Path:
    """Where an image named by ``subDirectory_filePath`` lies (under ``Manually_Annotated_Images/`` or the root)."""
    root = Path(root)
    path = root / IMAGE_DIR / rel
    return path if path.is_file() or not (root / rel).is_file() else root / rel


def load_face(path: str | Path, box: tuple[float, float, float, float] | None, size: int) -> np.ndarray:
    """Read an image, crop the face box (clipped to the image; ``None`` = whole image), resize to size x size RGB
    uint8."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise AbawError("cannot read image", path=path)
    if box is not None:
        x, y, w, h = (int(round(v)) for v in box)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, img.shape[1]), min(y + h, img.shape[0])
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            img = img[y0:y1, x0:x1]
    img = resize(img, size, size)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@dataclass
class AffectNetSample:
    rel_path: str
    expression: int  # in the dataset's target order, -1 = not usable
    valence: float  # NaN when not annotated
    arousal: float


class AffectNetImages(Dataset):
    """AffectNet-format face images as tensors.

    Items: ``{"image": (3, size, size) float, "expr": long (target order, -1 dropped), "va": (2,) float (NaN when
    not annotated), "index": long}``. ``target`` picks the class order (see :func:`expression_lookup`);
    ``require_expr`` keeps only rows with a usable expression. ``cache`` keeps decoded images in memory (small sets).
    """

    def __init__(self, root: str | Path, split: str = "train", target: str = "affectnet", image_size: int = 112,
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                 crop: bool = True, augment: bool = False, require_expr: bool = False, limit: int | None = None,
                 cache: bool = True) -> None:
        self.root, self.split, self.target = Path(root), split, target
        self.classes = target_classes(target)
        df = read_split(self.root, split)
        expr = map_expressions(df["expression"].to_numpy(), target)
        keep = expr >= 0 if require_expr else np.ones(len(df), dtype=bool)
        df, expr = df[keep].reset_index(drop=True), expr[keep]
        if limit is not None:
            df, expr = df.iloc[:limit], expr[:limit]
        self.table = df
        self.expr = expr
        va = df[["valence", "arousal"]].to_numpy(dtype=np.float32)
        va[va == VA_INVALID] = np.nan
        self.va = va
        self.image_size, self.crop, self.augment = image_size, crop, augment
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self._cache: dict[int, np.ndarray] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.table)

    @property
    def rel_paths(self) -> list[str]:
        return self.table["subDirectory_filePath"].astype(str).tolist()

    def sample(self, i: int) -> AffectNetSample:
        return AffectNetSample(str(self.table["subDirectory_filePath"].iloc[i]), int(self.expr[i]),
                               float(self.va[i, 0]), float(self.va[i, 1]))

    def image(self, i: int) -> np.ndarray:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        row = self.table.iloc[i]
        box = (row.face_x, row.face_y, row.face_width, row.face_height) if self.crop else None
        img = load_face(image_path(self.root, str(row.subDirectory_filePath)), box, self.image_size)
        if self._cache is not None:
            self._cache[i] = img
        return img

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        img = torch.from_numpy(self.image(i)).permute(2, 0, 1).float().div_(255.0)
        if self.augment and torch.rand(()) < 0.5:
            img = img.flip(2)
        img = (img - self.mean) / self.std
        return {"image": img, "expr": torch.tensor(self.expr[i], dtype=torch.long),
                "va": torch.from_numpy(self.va[i]), "index": torch.tensor(i, dtype=torch.long)}

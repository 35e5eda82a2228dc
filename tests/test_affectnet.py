"""AffectNet-format reader, class-order mappings (Contempt / None decisions) and ``abaw train-crowd``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from helpers.affectnet import write_tiny_affectnet

from abaw.cli import main
from abaw.data.affectnet import (
    COLUMNS,
    AffectNetImages,
    expression_lookup,
    load_face,
    map_expressions,
    read_split,
)
from abaw.errors import AbawError
from abaw.tasks import AFFECTNET_CLASSES, AFFECTNETC25_CLASSES, EXPR_CLASSES_7, EXPR_CLASSES_8


@pytest.fixture(scope="module")
def tiny_affectnet(tmp_path_factory) -> Path:
    return write_tiny_affectnet(tmp_path_factory.mktemp("affectnet"), extra_codes=True)


def test_expression_lookup_orders_and_contempt():
    to_c25 = expression_lookup("affectnetc25")
    for src, name in enumerate(AFFECTNET_CLASSES):
        assert AFFECTNETC25_CLASSES[to_c25[src]] == name
    assert to_c25[8:].tolist() == [-1, -1, -1]  # None, Uncertain, No-Face
    to7 = expression_lookup("abaw7")
    assert to7[AFFECTNET_CLASSES.index("Contempt")] == -1  # no ABAW class: dropped
    assert EXPR_CLASSES_7[to7[AFFECTNET_CLASSES.index("Happiness")]] == "Happiness"
    assert to7[8] == -1
    to8 = expression_lookup("abaw2022")
    assert EXPR_CLASSES_8[to8[AFFECTNET_CLASSES.index("Contempt")]] == "Other"
    assert EXPR_CLASSES_8[to8[8]] == "Other" and to8[9] == -1 and to8[10] == -1
    c25_to_affectnet = expression_lookup("affectnet", source=AFFECTNETC25_CLASSES)
    assert [AFFECTNET_CLASSES[i] for i in c25_to_affectnet] == list(AFFECTNETC25_CLASSES)
    np.testing.assert_array_equal(map_expressions(np.array([[0, -1], [7, 6]]), "abaw7"), [[0, -1], [-1, 1]])
    with pytest.raises(AbawError, match="unknown class order"):
        expression_lookup("nope")


def test_read_split_and_dataset(tiny_affectnet):
    df = read_split(tiny_affectnet, "train")
    assert list(df.columns[:9]) == list(COLUMNS) and len(df) == 48
    ds = AffectNetImages(tiny_affectnet, "train", image_size=32)
    item = ds[0]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert ds.expr[1] == -1  # Uncertain is not an emotion
    assert np.isnan(ds.va[3]).all() and not np.isnan(ds.va[0]).any()  # -2 marks "not annotated"
    kept = AffectNetImages(tiny_affectnet, "train", image_size=32, require_expr=True, target="abaw7")
    assert (kept.expr >= 0).all() and len(kept) < len(ds)
    assert set(np.unique(kept.expr)) <= set(range(7))


def test_load_face_crops_the_box(tmp_path):
    img = np.zeros((50, 60, 3), np.uint8)
    img[10:30, 20:40] = (0, 0, 255)  # red in BGR
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), img)
    face = load_face(path, (20, 10, 20, 20), 16)
    assert face.shape == (16, 16, 3) and (face[..., 0] > 250).all() and (face[..., 2] < 5).all()
    whole = load_face(path, (-100, -100, 5, 5), 16)  # box outside the image: the whole image
    assert whole.shape == (16, 16, 3) and whole[..., 0].min() == 0
    with pytest.raises(AbawError, match="cannot read image"):
        load_face(tmp_path / "missing.jpg", None, 16)


def test_read_split_errors(tmp_path):
    with pytest.raises(AbawError, match="no training.csv"):
        read_split(tmp_path, "train")
    (tmp_path / "training.csv").write_text(",".join(COLUMNS) + "\na.jpg,0,0,10,10,,12,0.1,0.2\n")
    with pytest.raises(AbawError, match=r"training.csv:2: expression code 12"):
        read_split(tmp_path, "train")
    (tmp_path / "training.csv").write_text(",".join(COLUMNS) + "\na.jpg,0,0,10,10,,1,1.5,0.2\n")
    with pytest.raises(AbawError, match=r"training.csv:2: valence 1.5 outside"):
        read_split(tmp_path, "train")
    (tmp_path / "training.csv").write_text("a,b\n1,2\n")
    with pytest.raises(AbawError, match="missing AffectNet columns"):
        read_split(tmp_path, "train")


def test_train_crowd_simulated(tiny_affectnet, tmp_path):
    out = tmp_path / "run"
    code = main(["train-crowd", "--data", str(tiny_affectnet), "--simulate", "reliable=2,noisy=1,adversarial=1",
                 "--method", "crowd", "--backbone", "tiny_cnn", "--epochs", "2", "--batch-size", "16",
                 "--image-size", "32", "--out", str(out)])
    assert code == 0
    scores = json.loads((out / "scores.json").read_text())
    assert 0 <= scores["scores"]["accuracy"] <= 1 and len(scores["history"]) == 2
    assert np.load(out / "confusion.npy", allow_pickle=False).shape == (4, 8, 8)
    assert len(pd.read_csv(out / "aggregated.csv")) == 47  # the Uncertain image has no simulated labels
    from abaw.models.backbones import create_backbone, load_backbone_checkpoint

    meta = load_backbone_checkpoint(create_backbone("tiny_cnn"), out / "backbone.pt")
    assert meta["method"] == "crowd" and meta["classes"] == list(AFFECTNET_CLASSES)


def test_train_crowd_with_c25_votes(tiny_affectnet, tmp_path):
    df = read_split(tiny_affectnet, "train")
    c25 = map_expressions(df["expression"].to_numpy(), "affectnetc25")
    rng = np.random.default_rng(0)
    votes = {f"participant{r}": np.where(rng.random(len(df)) < 0.8, c25, rng.integers(0, 8, len(df)))
             for r in range(5)}
    table = pd.DataFrame({"index": range(len(df)), "filename": df["subDirectory_filePath"], **votes})
    table = table[c25 >= 0]
    path = tmp_path / "expression_set1_C25.csv"
    table.to_csv(path, index=False)
    out = tmp_path / "run"
    assert main(["train-crowd", "--data", str(tiny_affectnet), "--votes", str(path), "--method", "ds",
                 "--epochs", "1", "--image-size", "32", "--out", str(out)]) == 0
    agg = pd.read_csv(out / "aggregated.csv")
    assert len(agg) == len(table)
    assert (agg["ds"] == agg["expression"]).mean() > 0.9  # votes were mapped from C25 into AffectNet order


def test_train_crowd_bad_spec(tiny_affectnet, tmp_path, capsys):
    assert main(["train-crowd", "--data", str(tiny_affectnet), "--simulate", "experts=3", "--out",
                 str(tmp_path / "r")]) == 2
    assert "bad --simulate part" in capsys.readouterr().err


def test_reads_the_synthetic_affectnet_set(tmp_path):
    """The synthetic AffectNet-format set of the synth generator reads back with the same labels."""
    from abaw.synth.affectnet import generate_affectnet

    root = tmp_path / "an"
    generate_affectnet(root, images=20, seed=3, size=64)
    raw = pd.read_csv(root / "training.csv")
    ds = AffectNetImages(root, "train", image_size=48)
    assert len(ds) == len(raw) and ds.expr.tolist() == raw["expression"].tolist()
    assert ds[0]["image"].shape == (3, 48, 48)
    c25 = AffectNetImages(root, "validation", target="affectnetc25")
    assert [AFFECTNETC25_CLASSES[k] for k in c25.expr] == [
        AFFECTNET_CLASSES[k] for k in pd.read_csv(root / "validation.csv")["expression"]]

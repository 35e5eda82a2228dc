"""``abaw pretrain-affectnet``: training, the saved backbone checkpoint, resuming, and loading into a backbone."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.affectnet import write_tiny_affectnet

from abaw.cli import main
from abaw.errors import AbawError
from abaw.models.backbones import create_backbone, load_backbone_checkpoint
from abaw.train.pretrain import PretrainConfig, pretrain_affectnet


@pytest.fixture(scope="module")
def affectnet_root(tmp_path_factory):
    return write_tiny_affectnet(tmp_path_factory.mktemp("affectnet_pre"), images=64, size=32)


def test_pretrain_cli_expr_va_and_checkpoint_loads(affectnet_root, tmp_path, capsys):
    out = tmp_path / "affectnet_tiny.pt"
    assert main(["pretrain-affectnet", "--data", str(affectnet_root), "--backbone", "tiny_cnn", "--tasks", "expr+va",
                 "--epochs", "4", "--batch-size", "16", "--lr", "3e-3", "--image-size", "32", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    history = summary["history"]
    assert len(history) == 4 and "val_ccc_valence" in history[0]
    assert history[-1]["loss"] < history[0]["loss"]
    assert summary["best_val_f1"] > 0.5  # colour-coded classes: far above chance (1/8)
    backbone = create_backbone("tiny_cnn")
    meta = load_backbone_checkpoint(backbone, out)
    assert meta["tasks"] == ["expr", "va"] and meta["backbone"] == "tiny_cnn"
    assert meta["classes"][7] == "Contempt" and meta["best_epoch"] == summary["best_epoch"]
    assert not (tmp_path / "affectnet_tiny.pt.state.pt").exists()
    # A finished checkpoint is skipped on a rerun with the same settings.
    assert main(["pretrain-affectnet", "--data", str(affectnet_root), "--backbone", "tiny_cnn", "--tasks", "expr+va",
                 "--epochs", "4", "--batch-size", "16", "--lr", "3e-3", "--image-size", "32", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] is True
    with pytest.raises(AbawError, match="checkpoint is for backbone 'tiny_cnn'"):
        load_backbone_checkpoint(create_backbone("audio_cnn"), out)


def test_pretrain_resumes_to_the_same_result(affectnet_root, tmp_path):
    kw = {"data": affectnet_root, "backbone": "tiny_cnn", "target": "abaw7", "batch_size": 16, "image_size": 32,
          "augment": False}
    full = pretrain_affectnet(PretrainConfig(out=tmp_path / "full.pt", epochs=2, **kw))
    state = torch.load(tmp_path / "full.pt", weights_only=True)
    assert state["classes"] == ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise"]
    stopped = pretrain_affectnet(PretrainConfig(out=tmp_path / "resumed.pt", epochs=2, **kw), stop_after=1)
    assert stopped["stopped_after"] == 1 and (tmp_path / "resumed.pt.state.pt").is_file()
    saved = torch.load(tmp_path / "resumed.pt.state.pt", weights_only=True)  # abaw.train.fitting.training_state
    assert saved["format"] == "abaw-pretrain-state" and saved["epoch"] == 1
    assert {"model", "optimizer", "rng"} <= set(saved)
    assert not (tmp_path / "resumed.pt").exists()
    resumed = pretrain_affectnet(PretrainConfig(out=tmp_path / "resumed.pt", epochs=2, **kw), force=False)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    assert resumed["history"][1]["loss"] == pytest.approx(full["history"][1]["loss"], rel=1e-5)
    assert resumed["best_val_f1"] == pytest.approx(full["best_val_f1"], rel=1e-6)


def test_pretrain_bad_tasks(affectnet_root, tmp_path):
    with pytest.raises(AbawError, match="tasks must be expr or expr\\+va"):
        pretrain_affectnet(PretrainConfig(data=affectnet_root, backbone="tiny_cnn", out=tmp_path / "x.pt",
                                          tasks=("va",)))


def test_checkpoint_loads_into_the_face_stream_of_a_preset(affectnet_root, tmp_path):
    """What ``train_affwild2.py --pretrained_affectnet CKPT`` does: the face CNN of the model starts from it."""
    from abaw.models import create_model

    out = tmp_path / "face.pt"
    pretrain_affectnet(PretrainConfig(data=affectnet_root, backbone="tiny_cnn", out=out, epochs=1, batch_size=32,
                                      image_size=32))
    saved = torch.load(out, weights_only=True)["state_dict"]
    model = create_model("demo_face", tasks=("expr",), pretrained_face=str(out))
    face = model.stream_encoders()["face"].state_dict()
    for key, value in saved.items():
        torch.testing.assert_close(face[key], value)
    scratch = create_model("demo_face", tasks=("expr",)).stream_encoders()["face"].state_dict()
    assert any(not torch.equal(scratch[k], v) for k, v in saved.items() if v.is_floating_point())

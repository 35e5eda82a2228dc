"""Pretrained backbones by name: every preset's backbone resolves to a named weights entry; the MobileNetV2 file of
the shared assets builds a preset by name; offline, a missing file is one line; the publishers' layouts (Places365
checkpoint, VGG-Face dag, HSEmotion's pickled timm model, timm's own files) are converted by abaw's code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers.cli import run_cli

from abaw import weights
from abaw.errors import AbawError
from abaw.models.backbones import BACKBONE_WEIGHTS, create_backbone, pretrained_file
from abaw.models.convert import VGG16_CONV_NAMES, VGG_FACE_DAG_MEAN, converted_filename


@pytest.fixture
def offline_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty offline weights folder, a private cache, no downloads."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(folder))
    monkeypatch.setenv(weights.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return folder


def _preset_weights() -> dict:
    from abaw.commands.weights import preset_weights

    return preset_weights()


@pytest.mark.assets
def test_a_mobilenet_v2_preset_is_built_from_the_file_by_name(weights_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    from abaw.models.pretrained import config_weights
    from abaw.presets import find_preset
    from abaw.train.checkpoint import model_from_config
    from abaw.train.config import resolve

    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(weights_dir))
    monkeypatch.setenv(weights.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    cfg = resolve(find_preset("demo_va"), check_root=False)
    [face] = config_weights(cfg)
    assert (face.stream, face.backbone, face.weights, face.used) == ("face", "tv_mobilenet_v2",
                                                                     "mobilenet_v2_imagenet", True)
    assert pretrained_file("tv_mobilenet_v2") == weights_dir / "mobilenet_v2-b0353104.pth"
    model = model_from_config(cfg)
    loaded = model.stream_encoders()["face"].state_dict()
    published = torch.load(weights_dir / "mobilenet_v2-b0353104.pth", weights_only=True)
    assert set(published) - set(loaded) == {"classifier.1.weight", "classifier.1.bias"}  # the ImageNet classifier
    assert set(loaded) <= set(published)
    for key, tensor in loaded.items():
        assert torch.equal(tensor, published[key]), key


def test_every_preset_backbone_has_a_named_entry_and_offline_one_line(offline_dir: Path) -> None:
    """Offline with an empty folder, the weights entry of every preset's backbone is one line naming the file, its
    address and the folder to put it in."""
    presets = _preset_weights()
    assert {"demo_va", "ntua_cvsp_track1", "affwildnet_vggface_gru", "multitask_late_fusion"} <= set(presets)
    checked = set()
    for preset, streams in presets.items():
        for s in streams:
            if s.backbone in ("tiny_cnn",):
                assert s.weights is None, (preset, s)
                continue
            assert s.weights in weights.CATALOGUE, (preset, s)  # a named entry, not timm's nor nothing
            checked.add(s.backbone)
    assert {"tv_mobilenet_v2", "tv_resnet50", "tv_resnet18", "vggface", "tv_resnet50.places365"} <= checked
    for backbone in sorted(checked | set(BACKBONE_WEIGHTS)):
        entry = weights.get(BACKBONE_WEIGHTS[backbone])
        with pytest.raises(AbawError) as info:
            pretrained_file(backbone)
        message = str(info.value)
        assert "\n" not in message, message
        if entry.layout == "timm_pickle":  # converted once from the pickle: the command to run, and the file
            assert f"abaw weights convert {entry.name} --trust-weights" in message and entry.url in message
        else:
            assert entry.filename in message and entry.url in message and str(offline_dir) in message, message
            assert "ABAW_WEIGHTS_DIR" in message


def test_create_model_by_name_offline_says_which_file(offline_dir: Path) -> None:
    from abaw.models import create_model

    small = dict(streams=("face",), image_size=32)
    with pytest.raises(AbawError, match=r"resnet50-0676ba61\.pth: weights file not found .*download "
                       r"https://download\.pytorch\.org/models/resnet50-0676ba61\.pth and put it in"):
        create_model("ntua_cvsp", pretrained=True, **small)
    with pytest.raises(AbawError, match=r"vgg_face_dag\.pth: weights file not found"):
        create_model("affwildnet_vggface_fc2000", pretrained=True)


def _publish(folder: Path, name: str, obj: object, legacy: bool = True) -> Path:
    """Write ``obj`` where abaw looks for catalogue file ``name``, the old (pre-1.6) way the publishers saved it."""
    path = folder / weights.get(name).filename
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def test_places365_checkpoint_is_read_weights_only_and_stripped(offline_dir: Path) -> None:
    import torchvision

    torch.manual_seed(0)
    source = torchvision.models.resnet18(num_classes=365)
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    _publish(offline_dir, "resnet18_places365", {"epoch": 90, "arch": "resnet18", "state_dict": state,
                                                 "best_prec1": 54.7})
    backbone = create_backbone("tv_resnet18.places365", pretrained=True)
    assert backbone.backbone_name == "tv_resnet18.places365" and backbone.num_features == 512
    loaded = backbone.state_dict()
    assert not any(k.startswith("fc.") for k in loaded)  # the 365-class classifier is dropped
    for key, tensor in loaded.items():
        assert torch.equal(tensor, source.state_dict()[key]), key
    (offline_dir / "resnet18_places365.pth.tar").write_bytes(b"junk")
    with pytest.raises(AbawError, match="resnet18_places365.pth.tar: cannot read weights"):
        create_backbone("tv_resnet18.places365", pretrained=True)


def _vgg_face_dag(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state_dict in pytorch-mcn's vgg_face_dag names and conv shapes (small FC layers: they are dropped)."""
    g = torch.Generator().manual_seed(seed)
    widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    state, prev = {}, 3
    for name, width in zip(VGG16_CONV_NAMES, widths, strict=True):
        state[f"{name}.weight"] = torch.randn(width, prev, 3, 3, generator=g) * 0.01
        state[f"{name}.bias"] = torch.randn(width, generator=g) * 0.1
        prev = width
    for name, shape in (("fc6", (16, 32)), ("fc7", (16, 16)), ("fc8", (2622, 16))):
        state[f"{name}.weight"] = torch.randn(*shape, generator=g)
        state[f"{name}.bias"] = torch.randn(shape[0], generator=g)
    return state


def test_vgg_face_dag_is_renamed_and_takes_minus_one_one_input(offline_dir: Path) -> None:
    dag = _vgg_face_dag()
    _publish(offline_dir, "vgg_face_dag", dag)
    backbone = create_backbone("vggface", pretrained=True)
    convs = [m for m in backbone.features if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13
    for conv, name in list(zip(convs, VGG16_CONV_NAMES, strict=True))[1:]:
        assert torch.equal(conv.weight, dag[f"{name}.weight"]) and torch.equal(conv.bias, dag[f"{name}.bias"])
    # conv1_1 on the original input (RGB in 0-255 less the mean) equals ours on the backbone's [-1, 1] input
    pixels = torch.rand(2, 3, 20, 20)
    original = 255 * pixels - torch.tensor(VGG_FACE_DAG_MEAN).view(1, 3, 1, 1)
    expected = F.conv2d(original, dag["conv1_1.weight"], dag["conv1_1.bias"], padding=1)
    ours = convs[0](2 * pixels - 1)
    torch.testing.assert_close(ours[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1], rtol=1e-4, atol=1e-3)
    assert backbone.normalization == "minus_one_one"
    from abaw.models import create_model

    model = create_model("affwildnet_vggface_fc2000", pretrained=True)  # the preset's model, VGG-Face by name
    assert torch.equal(model.stream_encoders()["face"].features[2].weight, dag["conv1_2.weight"])
    assert model.input_spec()["face"]["extractor"] == "vggface-vgg_face_dag-96"  # the cache says which weights
    del dag["conv3_2.weight"]
    _publish(offline_dir, "vgg_face_dag", dag)
    with pytest.raises(AbawError, match=r"vgg_face_dag.pth: not a vgg_face_dag state_dict: 1 conv tensors missing "
                       r"\(first 'conv3_2.weight'\)"):
        create_backbone("vggface", pretrained=True)


def test_hsemotion_pickle_is_converted_once_with_trust(offline_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """HSEmotion publishes whole pickled timm models: opened only with --trust-weights, once, into a safe
    state_dict in the cache; the backbone then loads that by name."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_b0", pretrained=False)
    model.classifier = torch.nn.Sequential(torch.nn.Linear(1280, 8))  # HSEmotion's 8-expression head
    entry = weights.get("hsemotion_enet_b0_8_best_vgaf")
    _publish(offline_dir, entry.name, model, legacy=False)
    with pytest.raises(AbawError, match=r"run `abaw weights convert hsemotion_enet_b0_8_best_vgaf --trust-weights`"):
        create_backbone("tf_efficientnet_b0.hsemotion_vgaf", pretrained=True)
    code, _, err = run_cli(capsys, "weights", "convert", entry.name)  # no published sha256: refused, one line
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--trust-weights" in err
    assert not (tmp_path / "cache" / converted_filename(entry)).exists()
    code, out, _ = run_cli(capsys, "weights", "convert", "--trust-weights")  # every pickled model present
    converted = tmp_path / "cache" / converted_filename(entry)
    assert code == 0 and str(converted) in out and converted.is_file()
    assert pretrained_file("tf_efficientnet_b0.hsemotion_vgaf") == converted
    torch.load(converted, weights_only=True)  # the converted copy needs no unpickling
    backbone = create_backbone("tf_efficientnet_b0.hsemotion_vgaf", pretrained=True)
    assert backbone.num_features == 1280 and backbone.normalization == "imagenet"
    source = model.state_dict()
    for key, tensor in backbone.state_dict().items():
        assert torch.equal(tensor, source[key]), key


def test_timm_weights_from_an_offline_file(offline_dir: Path) -> None:
    """timm's own weights: offline, a file named after the timm model in the folder is given to timm
    (pretrained_cfg_overlay); without it, one line naming the Hugging Face address and the folder."""
    import timm
    from safetensors.torch import save_file

    with pytest.raises(AbawError) as info:
        create_backbone("test_resnet", pretrained=True)
    message = str(info.value)
    assert "\n" not in message and str(offline_dir) in message
    assert "https://huggingface.co/timm/test_resnet.r160_in1k/resolve/main/model.safetensors" in message
    assert "test_resnet.r160_in1k.safetensors" in message
    torch.manual_seed(0)
    source = timm.create_model("test_resnet", pretrained=False)  # with its 1000-class classifier
    save_file(source.state_dict(), offline_dir / "test_resnet.r160_in1k.safetensors")
    backbone = create_backbone("test_resnet", pretrained=True)
    assert backbone.backbone_name == "test_resnet" and backbone.num_features == source.num_features
    for key, tensor in backbone.state_dict().items():
        assert torch.equal(tensor, source.state_dict()[key]), key
    assert pretrained_file("test_resnet") == offline_dir / "test_resnet.r160_in1k.safetensors"


def test_weights_list_shows_which_presets_use_each_entry(offline_dir: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_cli(capsys, "weights", "list")
    assert code == 0
    lines = out.splitlines()
    block = lines[lines.index(next(x for x in lines if x.startswith("mobilenet_v2_imagenet"))):]
    assert any(line.strip().startswith("presets: ") and "demo_va (face)" in line for line in block[:6])
    vgg = lines[lines.index(next(x for x in lines if x.startswith("vgg_face_dag"))):]
    assert any("with pretrained=true: " in line and "affwildnet_vggface_gru (face)" in line for line in vgg[:6])
    assert any(line.startswith("ntua_cvsp_track1 ") and "context: tv_resnet50.places365 from random weights "
               "(pretrained=true: resnet50_places365)" in line for line in lines)  # the seed's scene CNN


def test_old_timm_module_names_are_found() -> None:
    """HSEmotion's pickles were written with timm 0.4: their classes have moved since."""
    import io

    import timm.layers.activations
    import timm.models._efficientnet_blocks as blocks

    from abaw.models.convert import _TimmUnpickler

    unpickler = _TimmUnpickler(io.BytesIO(b""))
    assert unpickler.find_class("timm.models.layers.activations", "Swish") is timm.layers.activations.Swish
    assert unpickler.find_class("timm.models.efficientnet_blocks", "DepthwiseSeparableConv") is \
        blocks.DepthwiseSeparableConv
    with pytest.raises(ModuleNotFoundError):
        unpickler.find_class("no_such_package.module", "X")

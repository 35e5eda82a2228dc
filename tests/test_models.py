"""Models (timm's test style): every registered model builds, runs raw and cached inputs, and trains every parameter;
backbones, checkpoints, validity masks, padding, bf16 autocast, channels_last."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from abaw.errors import AbawError
from abaw.models import (
    create_backbone,
    create_model,
    list_models,
    load_backbone_checkpoint,
    model_defaults,
    register_model,
    save_backbone_checkpoint,
)
from abaw.models.multistream import MultiStreamModel
from abaw.tasks import get_protocol
from abaw.train.losses import MultiTaskLoss

REQUIRED = {
    "affwildnet_vggface_fc2000", "affwildnet_vggface_fc4096", "affwildnet_resnet50_fc", "affwildnet_vggface_gru",
    "affwildnet_resnet50_gru", "affwildnet_vggface_gru_landmarks", "affwildnet_resnet50_gru_landmarks",
    "affwildnet_resnet50_gru_nofc", "ntua_cvsp", "multitask_late_fusion", "demo_face", "demo_multistream",
    "temporal_transformer",
}
B, T = 2, 5
#: Small inputs for the parametrised tests: tiny CNNs at small sizes; the real CNNs are built in their own tests.
SMALL = dict(backbone="tiny_cnn", face_backbone=None, body_backbone=None, context_backbone=None,
             audio_backbone="audio_cnn", image_size=48, body_size=40, context_size=40)


def make_inputs(model: MultiStreamModel, b: int = B, t: int = T, seed: int = 0, audio_width: int = 30) -> dict:
    g = torch.Generator().manual_seed(seed)
    inputs = {}
    for stream, spec in model.input_spec().items():
        if spec["kind"] == "image":
            inputs[stream] = torch.randn(b, t, 3, *spec["size"], generator=g)
        elif spec["kind"] == "logmel":
            inputs[stream] = -40 + 20 * torch.randn(b, t, 1, spec["n_mels"], audio_width, generator=g)
        else:
            inputs[stream] = torch.rand(b, t, spec["dim"], generator=g) * 2 - 1
    return inputs


def make_targets(model: MultiStreamModel, b: int = B, t: int = T, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    n_expr, n_au = model.protocol.n_expr, model.protocol.n_au
    targets = {"va": torch.rand(b, t, 2, generator=g) * 2 - 1, "expr": torch.randint(0, n_expr, (b, t), generator=g),
               "au": torch.randint(0, 2, (b, t, n_au), generator=g).float()}
    return {k: v for k, v in targets.items() if k in model.tasks}


def padding_mask(b: int = B, t: int = T) -> torch.Tensor:
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[-1, t - 2:] = False
    return mask


def check_outputs(model: MultiStreamModel, out: dict, b: int = B, t: int = T) -> None:
    sizes = {"va": 2, "expr": model.protocol.n_expr, "au": model.protocol.n_au}
    assert set(out) == {*model.tasks, "embedding"}
    for task in model.tasks:
        assert out[task].shape == (b, t, sizes[task]) and torch.isfinite(out[task]).all()
    if "va" in model.tasks:
        assert out["va"].abs().max() <= 1.0
    assert out["embedding"].shape == (b, t, model.embedding_dim)


def assert_all_grads(model: torch.nn.Module, skip: tuple[str, ...] = ()) -> None:
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and not n.startswith(skip) and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert not missing, f"no gradient for {missing[:5]}"


def test_registry_has_the_seed_systems() -> None:
    assert set(list_models()) >= REQUIRED
    assert list_models("affwildnet_*_gru") == ["affwildnet_resnet50_gru", "affwildnet_vggface_gru"]
    assert "demo_face" not in list_models(exclude_filters="demo_*")


def test_unknown_model_and_option_fail_with_one_line() -> None:
    with pytest.raises(AbawError, match="did you mean 'demo_face'"):
        create_model("demo_fac")
    with pytest.raises(AbawError, match="unknown model option 'hiden_size'.*'hidden_size'"):
        create_model("demo_face", hiden_size=3)
    with pytest.raises(AbawError, match="cell_type"):
        create_model("demo_face", cell_type="rnn")
    with pytest.raises(AbawError, match="unknown stream 'voice'"):
        create_model("demo_face", streams=["face", "voice"])
    with pytest.raises(AbawError, match="hidden_size"):
        create_model("demo_face", hidden_size="big")


def test_model_options_out_of_range_fail_with_one_line() -> None:
    from abaw.models.multistream import resolve_config

    for key, value, message in [
            ("dropout", 1.0, r"'dropout' of 'demo_face' must be in \[0, 1\), got 1.0"),
            ("head_dropout", -0.5, r"'head_dropout' of 'demo_face' must be in \[0, 1\), got -0.5"),
            ("hidden_size", 0, r"'hidden_size' of 'demo_face' must be at least 1, got 0"),
            ("hidden_size", True, r"'hidden_size' of 'demo_face' must be an integer, got True"),
            ("image_size", -3, r"'image_size' of 'demo_face' must be at least 1, got -3"),
            ("fc", [128, 0], r"'fc' of 'demo_face' must be a list of values at least 1, got \[128, 0\]"),
            ("num_layers", -1, r"'num_layers' of 'demo_face' must be at least 0, got -1"),
            ("audio_window_seconds", 0, r"'audio_window_seconds' of 'demo_face' must be greater than 0, got 0"),
            ("landmarks", 3, r"'landmarks' of 'demo_face' must be one of 0, 5, 68, got 3"),
            ("normalization", "zscore", r"'normalization' of 'demo_face' must be one of None, imagenet"),
            ("freeze_cnn", "maybe", r"'freeze_cnn' of 'demo_face' must be true/false, got 'maybe'")]:
        with pytest.raises(AbawError, match="model option " + message) as info:
            create_model("demo_face", **{key: value})
        assert len(str(info.value).splitlines()) == 1
    # the conveniences stay: a bare number for a list, "true"/"false", any case, "none", integer numbers
    cfg = resolve_config("m", {}, {"fc": 64, "freeze_cnn": "True", "cell_type": "LSTM", "pretrained_face": "none",
                                   "dropout": 0, "tasks": [3, "va"], "streams": "face"})
    assert (cfg.fc, cfg.freeze_cnn, cfg.cell_type, cfg.pretrained_face) == ((64,), True, "lstm", None)
    assert isinstance(cfg.dropout, float) and cfg.tasks == ("au", "va") and cfg.streams == ("face",)
    with pytest.raises(AbawError, match="must name at least one task"):
        resolve_config("m", {}, {"tasks": []})


def test_register_model_rejects_a_second_function_with_the_same_name() -> None:
    def demo_face(**kwargs):  # noqa: ANN202
        return None

    with pytest.raises(ValueError, match="registered twice"):
        register_model(demo_face)


@pytest.mark.parametrize("name", list_models())
def test_model_forward_backward_raw_and_cached(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, **SMALL)
    assert model.model_name == name and model.tasks == tuple(model_defaults(name)["tasks"])
    inputs, mask = make_inputs(model), padding_mask()
    out = model(inputs, mask)
    check_outputs(model, out)
    total, parts = MultiTaskLoss(model.tasks)(out, make_targets(model), mask)
    assert torch.isfinite(total) and set(parts) == set(model.tasks)
    total.backward()
    assert_all_grads(model)

    # Cached features from stream_encoders() give the same outputs on the real frames.
    model.eval()
    model.zero_grad()
    with torch.no_grad():
        raw = model(inputs, mask)
        cached = {k: v for k, v in inputs.items() if k not in model.stream_names}
        for stream, encoder in model.stream_encoders().items():
            x = inputs[stream]
            feats = encoder(x.flatten(0, 1)).reshape(B, T, -1)
            assert feats.shape[-1] == model.input_spec()[stream]["feature_dim"]
            cached[f"{stream}_feat"] = feats.half()  # the cache stores float16
        from_cache = model(cached, mask)
    for task in model.tasks:
        torch.testing.assert_close(from_cache[task][mask], raw[task][mask], atol=2e-2, rtol=2e-2)
    model.train()
    out = model(cached, mask)
    MultiTaskLoss(model.tasks)(out, make_targets(model), mask)[0].backward()
    assert_all_grads(model, skip=tuple(f"streams.{s}.encoder" for s in model.stream_names))


@pytest.mark.parametrize("name", ["affwildnet_vggface_gru", "affwildnet_resnet50_gru_landmarks"])
def test_full_size_seed_models(name: str) -> None:
    """The real VGG-Face conv part and ResNet-50 at AffWildNet's 96x96 input, one tiny batch."""
    torch.manual_seed(0)
    model = create_model(name)
    spec = model.input_spec()
    assert spec["face"]["size"] == [96, 96] and spec["face"]["range"] == [-1.0, 1.0]
    expected = {"vggface": 512 * 3 * 3, "tv_resnet50": 2048}[spec["face"]["backbone"]]
    assert spec["face"]["feature_dim"] == expected
    fc1 = model.streams["face"].proj[0]
    assert fc1.out_features == (4096 if "vggface" in name else 1500)
    assert fc1.in_features == expected + (10 if "landmarks" in name else 0)
    rnn = model.fusion.rnn.rnn
    assert isinstance(rnn, torch.nn.GRU) and rnn.hidden_size == 128 and rnn.num_layers == 2 and rnn.dropout == 0.5
    out = model(make_inputs(model, b=1, t=2))
    check_outputs(model, out, b=1, t=2)
    MultiTaskLoss(model.tasks)(out, make_targets(model, b=1, t=2))[0].backward()
    assert_all_grads(model)


def test_seed_layouts() -> None:
    fc2000 = create_model("affwildnet_vggface_fc2000", backbone="tiny_cnn")
    linears = [m for m in fc2000.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [4096, 2000, 2] and fc2000.fusion.rnn.rnn is None
    resnet_fc = create_model("affwildnet_resnet50_fc", backbone="tiny_cnn")
    assert [m.out_features for m in resnet_fc.modules() if isinstance(m, torch.nn.Linear)] == [1500, 256, 2]
    nofc = create_model("affwildnet_resnet50_gru_nofc")
    assert nofc.streams["face"].out_features == 2048 and nofc.fusion.rnn.rnn.input_size == 2048
    ntua = create_model("ntua_cvsp", **SMALL)
    assert ntua.stream_names == ("face", "body", "context", "audio")
    assert isinstance(ntua.fusion.rnn.rnn, torch.nn.LSTM) and ntua.fusion.rnn.rnn.hidden_size == 512
    assert model_defaults("ntua_cvsp")["backbone"] == "tv_resnet50"
    late = create_model("multitask_late_fusion", **SMALL)
    assert late.config.late_fusion == "attention" and set(late.fusion.rnns) == {"face", "body", "context", "audio"}
    assert late.tasks == ("va", "expr", "au")


def test_overrides_map_onto_the_model() -> None:
    model = create_model("ntua_cvsp", **SMALL, streams=["face", "audio"], tasks=["expr"], protocol="abaw2022",
                         cell_type="gru", hidden_size=32, num_layers=2, bidirectional=True, dropout=0.3)
    rnn = model.fusion.rnn.rnn
    assert model.stream_names == ("face", "audio") and model.tasks == ("expr",)
    assert isinstance(rnn, torch.nn.GRU) and rnn.bidirectional and rnn.num_layers == 2 and rnn.dropout == 0.3
    out = model(make_inputs(model), padding_mask())
    assert out["expr"].shape == (B, T, get_protocol("abaw2022").n_expr) and model.embedding_dim == 64
    late = create_model("demo_multistream", fusion="late", late_fusion="gated", tasks=[3], image_size=40,
                        body_size=40, context_size=40)
    out = late(make_inputs(late), padding_mask())
    assert out["au"].shape == (B, T, 12) and late.fusion.last_weights.shape == (B, T, 4)
    with_lm = create_model("demo_face", streams=["face", "landmarks"], image_size=40)
    assert with_lm.input_spec()["landmarks"]["dim"] == 10
    assert create_model("affwildnet_vggface_gru_landmarks", backbone="tiny_cnn",
                        landmarks=68).input_spec()["landmarks"]["dim"] == 136
    with pytest.raises(AbawError, match="landmarks"):
        with_lm({"face": torch.zeros(1, 2, 3, 40, 40)})


def test_validity_mask_zeroes_a_stream_and_padding_is_ignored() -> None:
    torch.manual_seed(0)
    for bidirectional in (False, True):
        model = create_model("demo_multistream", **SMALL, bidirectional=bidirectional).eval()
        inputs, mask = make_inputs(model), padding_mask()
        valid = torch.ones(B, T, dtype=torch.bool)
        valid[0, 1] = False
        inputs["face_valid"] = valid
        base = model(inputs, mask)
        changed = dict(inputs)
        changed["face"] = inputs["face"].clone()
        changed["face"][0, 1] += 5.0  # a frame without a face crop
        changed["face"][~mask] = 7.0  # padding
        changed["audio"] = inputs["audio"].clone()
        changed["audio"][~mask] = 1.0
        again = model(changed, mask)
        for task in model.tasks:
            torch.testing.assert_close(again[task][mask], base[task][mask])
        face = model.streams["face"](inputs, mask)
        assert torch.all(face[0, 1] == 0) and face[0, 0].abs().sum() > 0


def test_stream_dropout_drops_whole_streams_in_training_only() -> None:
    from abaw.models.multistream import drop_streams

    torch.manual_seed(0)
    feats = {s: torch.ones(400, 3, 2) for s in ("face", "body", "audio")}
    dropped = drop_streams(feats, 0.5)
    kept = torch.stack([dropped[s].flatten(1) for s in feats], dim=1)  # (B, S, T*F)
    assert bool(((kept == 0).all(dim=2) | (kept == 1).all(dim=2)).all())  # a stream's window is kept or zeroed whole
    alive = (kept == 1).all(dim=2)
    assert bool(alive.any(dim=1).all()) and 0.3 < 1 - alive.float().mean() < 0.6  # never all of a window's streams
    model = create_model("demo_multistream", **SMALL, streams=["face", "body"], fusion="late", late_fusion="attention",
                         stream_dropout=0.9)  # no audio: its SpecAugment would vary the training outputs too
    inputs, mask = make_inputs(model), padding_mask()
    model.eval()
    first = model(inputs, mask)["va"]
    torch.testing.assert_close(model(inputs, mask)["va"], first)  # no dropout at evaluation
    model.train()
    assert any(not torch.equal(model(inputs, mask)["embedding"], model(inputs, mask)["embedding"]) for _ in range(5))
    with pytest.raises(AbawError, match="stream_dropout"):
        create_model("demo_multistream", **SMALL, stream_dropout=1.0)


def test_stream_heads_add_a_weighted_per_stream_loss_in_training_only() -> None:
    from abaw.models.multistream import stream_output
    from abaw.train.loop import compute_loss
    from abaw.train.losses import MultiTaskLoss

    torch.manual_seed(0)
    model = create_model("demo_multistream", **SMALL, streams=["face", "body"], fusion="late", late_fusion="attention",
                         tasks=["va", "expr"], stream_heads=0.5)
    inputs, mask = make_inputs(model), padding_mask()
    model.eval()
    evaluated = model(inputs, mask)
    assert not any("@" in k for k in evaluated)  # predictions are the fused heads' alone
    model.train()
    out = model(inputs, mask)
    b, t = mask.shape
    batch = {"targets": {"va": torch.rand(b, t, 2) - 0.5, "expr": torch.randint(0, 7, (b, t))}, "valid": {},
             "mask": mask}
    loss_fn = MultiTaskLoss(("va", "expr"))
    fused, _ = compute_loss(loss_fn, out, batch)
    total, parts = compute_loss(loss_fn, out, batch, stream_weight=0.5)
    per_stream = [loss_fn({k: out[stream_output(k, s)] for k in ("va", "expr")}, batch["targets"], mask)[0]
                  for s in ("face", "body")]
    torch.testing.assert_close(total, fused + 0.5 * torch.stack(per_stream).mean())
    assert set(parts) == {"va", "expr", "streams"}
    total.backward()  # every stream head gets a gradient
    assert all(p.grad is not None for p in model.stream_heads.parameters())
    for bad in ({"fusion": "early", "streams": ["face", "body"]}, {"fusion": "late", "streams": ["face"]}):
        with pytest.raises(AbawError, match="stream_heads"):
            create_model("demo_multistream", **SMALL, stream_heads=0.5, **bad)


def test_wrong_or_missing_inputs_fail_with_one_line() -> None:
    model = create_model("demo_face", image_size=40)
    with pytest.raises(AbawError, match="face_feat"):
        model({"face_feat": torch.zeros(1, 2, 7)})
    with pytest.raises(AbawError, match="needs input 'face'"):
        model({"body": torch.zeros(1, 2, 3, 40, 40)})
    with pytest.raises(AbawError, match="needs input 'face'"):
        model({"body": torch.zeros(1, 2, 3, 40, 40)}, torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(AbawError, match="5 dims"):
        model({"face": torch.zeros(2, 3, 40, 40)}, torch.ones(1, 2, dtype=torch.bool))


def test_bf16_autocast_and_channels_last() -> None:
    torch.manual_seed(0)
    model = create_model("demo_multistream", **SMALL, cell_type="lstm", bidirectional=True)
    inputs, mask = make_inputs(model), padding_mask()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(inputs, mask)
        total, _ = MultiTaskLoss(model.tasks)(out, make_targets(model), mask)
    assert out["va"].dtype == torch.bfloat16 and torch.isfinite(total)
    total.backward()
    assert_all_grads(model)
    model.eval()
    with torch.no_grad():
        ref = model(inputs, mask)
        model.to(memory_format=torch.channels_last)
        assert model.streams["face"].encoder.features[0].weight.is_contiguous(memory_format=torch.channels_last)
        got = model(inputs, mask)
    for task in model.tasks:
        torch.testing.assert_close(got[task], ref[task], atol=1e-5, rtol=1e-4)


def test_freeze_cnn_keeps_the_encoders_fixed() -> None:
    model = create_model("demo_multistream", **SMALL, freeze_cnn=True).train()
    for stream in model.streams.values():
        assert not any(p.requires_grad for p in stream.encoder.parameters())
        assert not stream.encoder.training
    out = model(make_inputs(model), padding_mask())
    MultiTaskLoss(model.tasks)(out, make_targets(model), padding_mask())[0].backward()
    assert_all_grads(model)
    assert all(p.grad is None for p in model.streams["face"].encoder.parameters())


def test_audio_encoder_masks_only_in_training() -> None:
    torch.manual_seed(0)
    encoder = create_model("demo_multistream", **SMALL).stream_encoders()["audio"]
    x = -40 + 20 * torch.randn(4, 1, 64, 30)
    encoder.eval()
    a, b = encoder(x), encoder(x)
    torch.testing.assert_close(a, b)
    encoder.train()
    assert not torch.allclose(encoder(x), encoder(x))


def test_backbones_by_name() -> None:
    x = torch.randn(2, 3, 64, 64)
    for name, dim in [("tiny_cnn", 128), ("tv_mobilenet_v2", 1280), ("resnet18", 512), ("tv_resnet18", 512)]:
        backbone = create_backbone(name)
        assert backbone.num_features == dim and backbone(x).shape == (2, dim) and backbone.backbone_name == name
    assert create_backbone("audio_cnn", in_chans=1)(torch.randn(2, 1, 64, 30)).shape == (2, 128)
    assert create_backbone("vggface").normalization == "minus_one_one"
    with pytest.raises(AbawError, match="unknown backbone"):
        create_backbone("no_such_net")
    with pytest.raises(AbawError, match="unknown torchvision backbone"):
        create_backbone("tv_no_such_net")
    with pytest.raises(AbawError, match="no ImageNet weights registered for backbone 'tv_regnet_y_400mf'"):
        create_backbone("tv_regnet_y_400mf", pretrained=True)
    with pytest.raises(AbawError, match="no pretrained weights exist for backbone 'tiny_cnn'"):
        create_backbone("tiny_cnn", pretrained=True)  # vggface has VGG-Face now (tests/test_pretrained.py)


def test_backbone_checkpoint_roundtrip_and_pretrained_face(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = create_backbone("tiny_cnn")
    path = save_backbone_checkpoint(src, "tiny_cnn", tmp_path / "affectnet.pt", dataset="affectnet", epochs=3)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "abaw-backbone" and raw["backbone"] == "tiny_cnn"
    dst = create_backbone("tiny_cnn")
    meta = load_backbone_checkpoint(dst, path)
    assert meta == {"backbone": "tiny_cnn", "dataset": "affectnet", "epochs": 3}
    torch.testing.assert_close(dst.features[0].weight, src.features[0].weight)
    model = create_model("demo_face", pretrained_face=str(path))
    torch.testing.assert_close(model.streams["face"].encoder.features[0].weight, src.features[0].weight)
    assert model.input_spec()["face"]["extractor"] == "tiny_cnn-affectnet-112"
    assert create_model("demo_face", pretrained_face="none").config.pretrained_face is None
    with pytest.raises(AbawError, match="checkpoint is for backbone 'tiny_cnn', not 'tv_mobilenet_v2'"):
        create_model("demo_face", backbone="tv_mobilenet_v2", pretrained_face=str(path))
    with pytest.raises(AbawError, match="not found"):
        create_model("demo_face", pretrained_face=str(tmp_path / "missing.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(AbawError, match="cannot read weights"):
        create_backbone("tiny_cnn", pretrained=junk)
    # a plain state_dict with a classifier loads too (the classifier is ignored)
    state = {**src.state_dict(), "fc.weight": torch.zeros(3, 128)}
    torch.save(state, tmp_path / "plain.pt")
    plain = create_backbone("tiny_cnn", pretrained=tmp_path / "plain.pt")
    torch.testing.assert_close(plain.features[0].weight, src.features[0].weight)
    with pytest.raises(AbawError, match="do not fit"):
        create_backbone("tv_resnet18", pretrained=tmp_path / "plain.pt")


@pytest.mark.assets
def test_imagenet_mobilenet_v2_from_the_offline_weights(weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABAW_WEIGHTS_DIR", str(weights_dir))
    state = torch.load(weights_dir / "mobilenet_v2-b0353104.pth", weights_only=True)
    model = create_model("demo_face", backbone="tv_mobilenet_v2", pretrained=True)
    torch.testing.assert_close(model.streams["face"].encoder.features[0][0].weight, state["features.0.0.weight"])
    spec = model.input_spec()["face"]
    assert spec["extractor"] == "tv_mobilenet_v2-imagenet-112" and spec["mean"] == [0.485, 0.456, 0.406]


def test_same_seed_same_model_and_a_tiny_batch_is_learnt() -> None:
    torch.manual_seed(3)
    model = create_model("demo_multistream", **SMALL)
    torch.manual_seed(3)
    twin = create_model("demo_multistream", **SMALL)
    for (n, p), (_, q) in zip(model.state_dict().items(), twin.state_dict().items(), strict=True):
        assert torch.equal(p, q), n
    inputs, mask, targets = make_inputs(model), padding_mask(), make_targets(model)
    crit = MultiTaskLoss(model.tasks)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        total, _ = crit(model(inputs, mask), targets, mask)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(total.item())
    assert losses[-1] < 0.5 * losses[0]

"""Crowd labels: readers, aggregation (majority vote with ties, soft labels, mean/median, Dawid-Skene), crowd
layers and their losses, simulated annotators, training with crowd labels, and the ``abaw crowd`` commands."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from abaw.cli import main
from abaw.crowd.aggregate import (
    dawid_skene,
    majority_vote,
    majority_vote_codes,
    mean_values,
    median_values,
    soft_labels,
)
from abaw.crowd.layers import (
    CrowdClassification,
    CrowdModel,
    CrowdRegression,
    crowd_cross_entropy,
    crowd_mse,
)
from abaw.crowd.simulate import (
    annotator_panel,
    confusion_matrix,
    empirical_confusion,
    gaussian_clusters,
    simulate_annotations,
)
from abaw.crowd.train import fit_crowd, make_targets, predict_classes
from abaw.crowd.votes import (
    CREMAD_CODES,
    counts_from_codes,
    detect_format,
    read_annotator_table,
    read_c25,
    read_cremad_votes,
)
from abaw.errors import AbawError
from abaw.tasks import AFFECTNETC25_CLASSES


def _write_c25(path, rows: list[list[float | None]], kind_values: bool = False) -> None:
    cols = {f"participant{i}": [r[i] for r in rows] for i in range(len(rows[0]))}
    df = pd.DataFrame({"index": range(len(rows)), "filename": [f"{i}/img{i}.jpg" for i in range(len(rows))], **cols})
    df.to_csv(path, index=False)


# ---- readers ---------------------------------------------------------------------------------------------------

def test_read_c25_expression_and_missing(tmp_path):
    path = tmp_path / "expression_set1_C25.csv"
    _write_c25(path, [[0, 0, 1], [7, None, 7], [6, 5, 5]])
    table = read_c25(path)
    assert table.kind == "class" and table.classes == AFFECTNETC25_CLASSES
    assert table.annotators == ["participant0", "participant1", "participant2"]
    assert table.codes().tolist() == [[0, 0, 1], [7, -1, 7], [6, 5, 5]]
    assert table.counts().counts[1, 7] == 2 and table.counts().counts[1].sum() == 2
    assert detect_format(path) == "c25"


def test_read_c25_valence_levels_checked(tmp_path):
    good = tmp_path / "valence_set2_C25.csv"
    _write_c25(good, [[0.25, -1.0], [1.0, None]])
    table = read_c25(good)
    assert table.kind == "value" and np.isnan(table.values[1, 1])
    bad = tmp_path / "arousal_set1_C25.csv"
    _write_c25(bad, [[0.25, 0.3]])
    with pytest.raises(AbawError, match=r"arousal_set1_C25.csv:2: arousal 0.3 .* not one of the 9 levels"):
        read_c25(bad)


def test_read_c25_bad_code_and_unknown_kind(tmp_path):
    path = tmp_path / "expression_set1_C25.csv"
    _write_c25(path, [[0, 1], [9, 1]])
    with pytest.raises(AbawError, match=r":3: class code 9 is not an integer in 0..7"):
        read_c25(path)
    other = tmp_path / "votes.csv"
    _write_c25(other, [[0, 1]])
    with pytest.raises(AbawError, match="expression, valence or arousal"):
        read_c25(other)


def test_read_annotator_table_any_columns(tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text("item,ann_a,ann_b,ann_c\nx,1,,2\ny,0,0,\n")
    table = read_annotator_table(path, kind="class", classes=("a", "b", "c"))
    assert table.items == ["x", "y"] and table.annotators == ["ann_a", "ann_b", "ann_c"]
    assert table.codes().tolist() == [[1, -1, 2], [0, 0, -1]]
    path.write_text("item,ann_a\nx,happy\n")
    with pytest.raises(AbawError, match=r"votes.csv:2: column 'ann_a': not a number"):
        read_annotator_table(path)


def test_counts_from_codes():
    codes = np.array([[0, 2, 2, -1], [-1, -1, -1, -1]])
    assert counts_from_codes(codes, 3).tolist() == [[1, 0, 2], [0, 0, 0]]


# ---- aggregation -----------------------------------------------------------------------------------------------

def test_majority_vote_ties_to_smallest_code_and_reported():
    counts = np.array([[1, 3, 3, 0], [0, 0, 0, 5], [0, 0, 0, 0], [2, 1, 0, 0]])
    mv = majority_vote(counts)
    assert mv.labels.tolist() == [1, 3, -1, 0]
    assert mv.tied.tolist() == [True, False, False, False]
    assert mv.tie_sets == [(1, 2), (3,), (), (0,)]
    assert mv.n_ties == 1


def test_soft_labels_and_values():
    soft = soft_labels(np.array([[1, 3, 0], [0, 0, 0]]))
    np.testing.assert_allclose(soft, [[0.25, 0.75, 0], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(soft_labels(np.array([[1, 3, 0]]), smoothing=1.0), [[2 / 7, 4 / 7, 1 / 7]])
    values = np.array([[0.25, 0.5, 1.0], [np.nan, -1.0, np.nan], [np.nan] * 3])
    np.testing.assert_allclose(mean_values(values)[:2], [0.5833333333, -1.0])
    np.testing.assert_allclose(median_values(values)[:2], [0.5, -1.0])
    assert np.isnan(mean_values(values)[2]) and np.isnan(median_values(values)[2])


def test_dawid_skene_pooled_counts_equals_codes_form():
    rng = np.random.default_rng(1)
    conf = np.stack([confusion_matrix("reliable", 3, rng), confusion_matrix("noisy", 3, rng)])
    y = rng.integers(0, 3, 200)
    codes = simulate_annotations(y, conf, rng)
    a = dawid_skene(codes, 3)
    tensor = np.zeros((200, 2, 3))
    for r in range(2):
        tensor[np.arange(200), r, codes[:, r]] = 1
    b = dawid_skene(tensor)
    np.testing.assert_allclose(a.posterior, b.posterior, atol=1e-9)
    assert a.confusion.shape == (2, 3, 3) and np.allclose(a.confusion.sum(axis=2), 1)


# ---- real crowd votes (CREMA-D) ----------------------------------------------------------------------------------

@pytest.mark.assets
def test_cremad_majority_vote_reproduces_published_votes(assets_dir):
    votes = read_cremad_votes(assets_dir / "labels" / "cremad_tabulatedVotes.csv")
    assert votes.counts.shape == (22326, 6)
    mv = majority_vote(votes.counts)
    published = np.array(votes.published)
    ours = np.array([CREMAD_CODES[k] for k in mv.labels])
    clear = ~mv.tied
    assert clear.sum() == 20792 and mv.n_ties == 1534
    assert (ours[clear] == published[clear]).all()  # every row without a tie
    # Ties are reported with the full tied set, which is exactly what CREMA-D publishes ("A:D", "F:N:S", ...).
    tied_sets = [":".join(CREMAD_CODES[k] for k in s) for s, t in zip(mv.tie_sets, mv.tied, strict=True) if t]
    assert tied_sets == published[mv.tied].tolist()


@pytest.mark.assets
def test_cli_aggregate_cremad_reports_ties(assets_dir, tmp_path, capsys):
    out = tmp_path / "cremad_mv.csv"
    assert main(["crowd", "aggregate", str(assets_dir / "labels" / "cremad_tabulatedVotes.csv"), "--out",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1534 ties" in printed
    assert "matches 20792 of 20792 rows without a tie; tie sets match 1534 of 1534 tied rows" in printed
    df = pd.read_csv(out, keep_default_na=False)
    assert df["tied"].sum() == 1534 and (df.loc[df["tied"], "tie_set"] == df.loc[df["tied"], "published"]).all()


def test_cremad_reader_rejects_other_files(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(AbawError, match="not a CREMA-D tabulatedVotes file"):
        read_cremad_votes(path)


# ---- crowd layers ----------------------------------------------------------------------------------------------

def test_crowd_layers_definitions():
    torch.manual_seed(0)
    p = torch.softmax(torch.randn(4, 3), dim=1)
    for conn in ("MW", "VW", "VB", "VW+B"):
        layer = CrowdClassification(3, 5, conn)
        out = layer(p)
        assert out.shape == (4, 3, 5)
        torch.testing.assert_close(out, p[:, :, None].expand(-1, -1, 5))  # identity / ones / zeros at init
    mw = CrowdClassification(3, 2, "MW")
    with torch.no_grad():
        mw.weight[1] = torch.randn(3, 3)
    torch.testing.assert_close(mw(p)[:, :, 1], p @ mw.weight[1])
    vwb = CrowdClassification(3, 2, "VW+B")
    with torch.no_grad():
        vwb.scale.uniform_(0.5, 2)
        vwb.bias.uniform_(-1, 1)
    torch.testing.assert_close(vwb(p)[:, :, 1], p * vwb.scale[1] + vwb.bias[1])
    x = torch.randn(4, 1)
    for conn in ("S", "B", "S+B", "B+S"):
        layer = CrowdRegression(3, conn)
        torch.testing.assert_close(layer(x), x.expand(-1, 3))
    bs = CrowdRegression(2, "B+S")
    with torch.no_grad():
        bs.scale.copy_(torch.tensor([2.0, 3.0]))
        bs.bias.copy_(torch.tensor([1.0, -1.0]))
    torch.testing.assert_close(bs(x), torch.cat([(x + 1) * 2, (x - 1) * 3], dim=1))
    with pytest.raises(ValueError):
        CrowdClassification(3, 2, "XX")


def test_crowd_losses_mask_missing_labels():
    torch.manual_seed(0)
    scores = torch.randn(3, 4, 2, requires_grad=True)
    labels = torch.tensor([[1, -1], [-1, -1], [3, 0]])
    loss = crowd_cross_entropy(scores, labels)
    ref = torch.stack([nn.functional.cross_entropy(scores[i, :, r][None], labels[i, r][None])
                       for i, r in ((0, 0), (2, 0), (2, 1))]).mean()
    torch.testing.assert_close(loss, ref)
    loss.backward()
    assert scores.grad[1].abs().sum() == 0 and scores.grad[0, :, 1].abs().sum() == 0
    out = torch.tensor([[0.5, 0.0], [1.0, 2.0]])
    tgt = torch.tensor([[0.0, float("nan")], [1.5, 2.0]])
    torch.testing.assert_close(crowd_mse(out, tgt), torch.tensor((0.25 + 0.25 + 0.0) / 3))
    assert crowd_cross_entropy(scores, torch.full((3, 2), -1)) == 0


def test_crowd_model_drops_layer_at_inference():
    base = nn.Linear(4, 3)
    model = CrowdModel(base, CrowdClassification(3, 2, "MW"))
    x = torch.randn(5, 4)
    out = model(x)
    assert out["crowd"].shape == (5, 3, 2)
    torch.testing.assert_close(model.predict(x), torch.softmax(base(x), dim=1))


# ---- simulated annotators: DS beats MV; MW recovers confusions and beats a model trained on MV ------------------

def test_simulated_annotators_kinds():
    rng = np.random.default_rng(0)
    conf, kinds = annotator_panel(4, rng, reliable=1, noisy=1, adversarial=1)
    assert kinds == ["reliable", "noisy", "adversarial"]
    np.testing.assert_allclose(conf.sum(axis=2), 1)
    assert np.diag(conf[0]).min() == pytest.approx(0.85)
    assert (conf[2].argmax(axis=1) != np.arange(4)).all()  # adversarial: the most likely answer is always wrong
    y = rng.integers(0, 4, 4000)
    codes = simulate_annotations(y, conf, rng, missing=0.3)
    assert ((codes >= 0).sum(axis=1) >= 1).all() and 0.15 < (codes < 0).mean() < 0.3
    np.testing.assert_allclose(empirical_confusion(y, codes, 4), conf, atol=0.06)


@pytest.fixture(scope="module")
def crowd_problem():
    """5 classes, 8 annotators (2 reliable, 3 noisy, 3 adversarial), 20% of labels missing."""
    rng = np.random.default_rng(0)
    k, dim = 5, 10
    train, centers = gaussian_clusters(1500, k, dim, rng, separation=3.0)
    test, _ = gaussian_clusters(1000, k, dim, rng, centers=centers)
    conf, kinds = annotator_panel(k, rng, reliable=2, noisy=3, adversarial=3)
    codes = simulate_annotations(train.y, conf, rng, missing=0.2)
    return {"k": k, "dim": dim, "train": train, "test": test, "conf": conf, "codes": codes}


def _mlp(dim: int, k: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(dim, 32), nn.ReLU(), nn.Linear(32, k))


def test_dawid_skene_recovers_true_labels_better_than_majority_vote(crowd_problem):
    p = crowd_problem
    mv = majority_vote_codes(p["codes"], p["k"])
    ds = dawid_skene(p["codes"], p["k"])
    mv_acc = (mv.labels == p["train"].y).mean()
    ds_acc = (ds.labels == p["train"].y).mean()
    assert ds.converged
    assert ds_acc > 0.95 and ds_acc > mv_acc + 0.2, (mv_acc, ds_acc)
    assert np.abs(ds.confusion - p["conf"]).mean() < 0.02


def test_mw_crowd_layer_recovers_confusions_and_beats_majority_vote(crowd_problem):
    p = crowd_problem
    x, xt = torch.from_numpy(p["train"].x), torch.from_numpy(p["test"].x)
    kw = {"epochs": 30, "lr": 3e-3, "crowd_lr": 1e-2, "batch_size": 64}
    crowd = fit_crowd(_mlp(p["dim"], p["k"]), x, p["codes"], p["k"], method="crowd", conn_type="MW", **kw)
    mv = fit_crowd(_mlp(p["dim"], p["k"]), x, p["codes"], p["k"], method="mv", **kw)
    acc_crowd = (predict_classes(crowd.base, xt).argmax(1) == p["test"].y).mean()
    acc_mv = (predict_classes(mv.base, xt).argmax(1) == p["test"].y).mean()
    assert acc_crowd > acc_mv + 0.05, (acc_crowd, acc_mv)
    err = np.abs(crowd.crowd.confusion().numpy() - p["conf"]).mean(axis=(1, 2))  # per annotator
    assert err.max() < 0.05, err
    assert crowd.history[-1]["loss"] < crowd.history[0]["loss"]


def test_make_targets_shapes(crowd_problem):
    codes, k = crowd_problem["codes"][:10], crowd_problem["k"]
    assert make_targets(codes, k, "mv")[0].shape == (10,)
    soft, _ = make_targets(codes, k, "soft")
    torch.testing.assert_close(soft.sum(1), torch.ones(10, dtype=soft.dtype))
    post, ds = make_targets(codes, k, "ds")
    assert post.shape == (10, k) and ds is not None
    assert make_targets(codes, k, "crowd")[0].shape == codes.shape
    with pytest.raises(ValueError):
        make_targets(codes, k, "bogus")


# ---- command line ----------------------------------------------------------------------------------------------

def test_cli_aggregate_c25(tmp_path, capsys):
    path = tmp_path / "expression_set1_C25.csv"
    _write_c25(path, [[0, 0, 1], [7, None, 7], [6, 5, 5], [1, 2, None]])
    out = tmp_path / "mv.csv"
    assert main(["crowd", "aggregate", str(path), "--method", "mv", "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert df["label"].tolist() == [0, 7, 5, 1]
    assert df["class"].tolist() == ["Happiness", "Neutral", "Anger", "Sadness"]
    assert df["tied"].tolist() == [False, False, False, True]
    assert df["tie_set"].tolist()[3] == "1:2"
    assert "1 tie" in capsys.readouterr().out
    soft = tmp_path / "soft.csv"
    assert main(["crowd", "aggregate", str(path), "--method", "soft", "--out", str(soft)]) == 0
    df = pd.read_csv(soft)
    assert df.filter(like="p_").shape[1] == 8
    np.testing.assert_allclose(df.filter(like="p_").sum(axis=1), 1)


def test_cli_aggregate_values_and_errors(tmp_path, capsys):
    path = tmp_path / "valence_set1_C25.csv"
    _write_c25(path, [[0.25, 0.5, 1.0], [-1.0, None, -0.5]])
    out = tmp_path / "median.csv"
    assert main(["crowd", "aggregate", str(path), "--method", "median", "--out", str(out)]) == 0
    assert pd.read_csv(out)["value"].tolist() == [0.5, -0.75]
    assert main(["crowd", "aggregate", str(path), "--method", "mv"]) == 2
    assert "continuous" in capsys.readouterr().err
    assert main(["crowd", "aggregate", str(tmp_path / "none.csv")]) == 2


def test_regression_crowd_layer_learns_annotator_offsets():
    """Annotators who shift valence by a personal offset: a B layer learns the offsets (up to a common shift, which
    the base model absorbs) and the base model fits the true value; 30% of the values are missing."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(400, 3)).astype(np.float32))
    truth = x @ torch.tensor([0.3, -0.2, 0.1])
    offsets = torch.tensor([0.0, 0.4, -0.3, 0.2])
    targets = truth[:, None] + offsets + 0.05 * torch.randn(400, 4)
    targets[torch.from_numpy(rng.random((400, 4)) < 0.3)] = float("nan")
    model = CrowdModel(nn.Linear(3, 1), CrowdRegression(4, "B"))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(300):
        loss = model.loss(model(x), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    learned = model.crowd.bias.detach()
    torch.testing.assert_close(learned - learned.mean(), offsets - offsets.mean(), atol=0.03, rtol=0)
    pred = model.predict(x)[:, 0]
    assert torch.corrcoef(torch.stack([pred, truth]))[0, 1] > 0.99


def test_mw_init_from_confusion_round_trips():
    rng = np.random.default_rng(0)
    conf, _ = annotator_panel(4, rng, reliable=1, noisy=1, adversarial=1)
    layer = CrowdClassification(4, 3, "MW")
    layer.init_from_confusion(torch.from_numpy(conf))
    np.testing.assert_allclose(layer.confusion().numpy(), conf, atol=2e-3)
    with pytest.raises(ValueError):
        CrowdClassification(4, 3, "VW").init_from_confusion(torch.from_numpy(conf))


# ---- valence/arousal crowds: regression crowd layers ----------------------------------------------------------------

@pytest.fixture(scope="module")
def value_crowd():
    """A small regression problem labelled on AffectNetC25's 9 levels by 2 reliable, 2 noisy and 3 adversarial
    (compressed, offset) value annotators; 20% of the values missing."""
    from abaw.crowd.simulate import linear_targets, simulate_values, value_panel
    from abaw.tasks import AFFECTNETC25_VA_LEVELS

    rng = np.random.default_rng(0)
    x, truth, w = linear_targets(800, 6, rng)
    xt, truth_t, _ = linear_targets(500, 6, rng, weights=w)
    panel = value_panel(rng, reliable=2, noisy=2, adversarial=3)
    values = simulate_values(truth, panel, rng, missing=0.2, levels=AFFECTNETC25_VA_LEVELS)
    return {"x": torch.from_numpy(x), "xt": torch.from_numpy(xt), "truth_t": truth_t, "panel": panel,
            "values": values[:, :, None]}


def test_simulated_values_lie_on_the_levels(value_crowd):
    from abaw.tasks import AFFECTNETC25_VA_LEVELS

    values = value_crowd["values"][:, :, 0]
    seen = ~np.isnan(values)
    assert seen.any(axis=1).all() and 0.1 < 1 - seen.mean() < 0.3
    assert np.isin(values[seen], AFFECTNETC25_VA_LEVELS).all()
    panel = value_crowd["panel"]
    assert panel.kinds == ["reliable"] * 2 + ["noisy"] * 2 + ["adversarial"] * 3
    assert (np.abs(panel.bias[4:]) >= 0.3).all() and (panel.scale[4:] < 0.7).all()


def test_majority_level_and_aggregates():
    from abaw.crowd.aggregate import majority_values
    from abaw.crowd.regression import aggregate_values
    from abaw.tasks import AFFECTNETC25_VA_LEVELS as LEVELS

    values = np.array([[0.25, 0.25, -1.0], [0.5, -0.5, np.nan], [np.nan, np.nan, np.nan]])
    mv = majority_values(values, LEVELS)
    assert mv.labels.tolist() == [5, 2, -1] and mv.tied.tolist() == [False, True, False]  # tie -> the lowest level
    agg = aggregate_values(values[:, :, None], "mv", LEVELS)[:, 0]
    np.testing.assert_allclose(agg, [0.25, -0.5, np.nan])
    np.testing.assert_allclose(aggregate_values(values[:, :, None], "mean")[:, 0], [-1 / 6, 0.0, np.nan])
    np.testing.assert_allclose(aggregate_values(values[:, :, None], "median")[:, 0], [0.25, 0.0, np.nan])


@pytest.mark.parametrize("layer", ["S", "B", "S+B", "B+S"])
def test_regression_crowd_layers_train_on_a_simulated_crowd(value_crowd, layer: str):
    from abaw.crowd.regression import CrowdValues, fit_values, predict_values, value_scores

    p = value_crowd
    fit = fit_values(_value_net(), p["x"], p["values"], method="crowd", conn_type=layer, epochs=15, lr=3e-3,
                     crowd_lr=1e-2, seed=0)
    assert isinstance(fit.crowd, CrowdValues) and fit.crowd.conn_type == layer
    assert len(fit.history) == 15 and fit.history[-1]["loss"] < fit.history[0]["loss"]
    raw = value_scores(predict_values(fit.base, p["xt"]), p["truth_t"][:, None], ("v",))["v"]
    avg = value_scores(predict_values(fit.base, p["xt"], fit.crowd), p["truth_t"][:, None], ("v",))["v"]
    assert raw["items"] == 500 and raw["ccc"] > 0.85 and avg["ccc"] > 0.85
    table = fit.crowd.parameters_table()
    assert np.shape(table["scale"]) == np.shape(table["bias"]) == (1, 7)
    if "B" in layer:  # the adversarial annotators' offsets are learned with their sign
        learned = np.asarray(table["bias"][0])
        assert (np.sign(learned[4:] - np.median(learned)) == np.sign(p["panel"].bias[4:])).all()


def test_s_plus_b_layer_beats_the_mean_aggregate():
    """Three annotators who compress the scale by half, two of them shifted up by 0.4, pull the mean away from the
    truth; the S+B layer learns each annotator's scale and bias (relative to the reliable ones) and its base output
    (the layer dropped) is closer to the truth on test items than a model trained on the mean."""
    from abaw.crowd.regression import fit_values, predict_values, value_scores
    from abaw.crowd.simulate import ValuePanel, linear_targets, simulate_values
    from abaw.tasks import AFFECTNETC25_VA_LEVELS

    rng = np.random.default_rng(0)
    x, truth, w = linear_targets(800, 6, rng)
    xt, truth_t, _ = linear_targets(500, 6, rng, weights=w)
    panel = ValuePanel(np.array([1, 1, 1, 0.5, 0.5, 0.5]), np.array([0, 0, 0, 0.4, 0.4, -0.1]),
                       np.array([0.1, 0.1, 0.4, 0.1, 0.1, 0.1]), ["reliable"] * 2 + ["noisy"] + ["adversarial"] * 3)
    values = simulate_values(truth, panel, rng, missing=0.2, levels=AFFECTNETC25_VA_LEVELS)[:, :, None]
    kw = {"epochs": 15, "lr": 3e-3, "crowd_lr": 1e-2, "seed": 0, "levels": AFFECTNETC25_VA_LEVELS}
    scores, fits = {}, {}
    for method in ("mean", "crowd"):
        fits[method] = fit_values(_value_net(), torch.from_numpy(x), values, method=method, conn_type="S+B", **kw)
        scores[method] = value_scores(predict_values(fits[method].base, torch.from_numpy(xt)), truth_t[:, None],
                                      ("v",))["v"]
    assert scores["crowd"]["ccc"] > scores["mean"]["ccc"] + 0.05, scores
    assert scores["crowd"]["rmse"] < scores["mean"]["rmse"] - 0.05, scores
    table = fits["crowd"].crowd.parameters_table()
    scale, bias = np.asarray(table["scale"][0]), np.asarray(table["bias"][0])
    np.testing.assert_allclose(scale[3:] / scale[:2].mean(), 0.5, atol=0.1)
    np.testing.assert_allclose(bias[3:] - bias[:2].mean(), [0.4, 0.4, -0.1], atol=0.1)


def _value_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 1), nn.Tanh())


def test_cli_train_crowd_values_simulated(tmp_path, capsys):
    import json

    from helpers.affectnet import write_tiny_affectnet

    data = write_tiny_affectnet(tmp_path / "an", images=24)
    out = tmp_path / "run"
    assert main(["train-crowd", "--data", str(data), "--simulate", "reliable=2,noisy=1,adversarial=2,missing=0.2",
                 "--kind", "va", "--crowd-layer", "B+S", "--epochs", "2", "--batch-size", "8", "--image-size", "32",
                 "--out", str(out)]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["kind"] == "va" and scores["method"] == "crowd" and len(scores["history"]) == 2
    for key in ("validation", "validation_average_annotator"):
        assert set(scores["scores"][key]) == {"valence", "arousal"}
        assert all(np.isfinite(s["rmse"]) and -1 <= s["ccc"] <= 1 for s in scores["scores"][key].values())
    assert set(scores["scores"]["train_label_recovery"]) == {"mv", "mean", "median"}
    layers = json.loads((out / "crowd_layers.json").read_text())
    assert layers["type"] == "B+S" and np.shape(layers["bias"]) == (2, 5) and len(layers["simulated"]["bias"]) == 2
    agg = pd.read_csv(out / "aggregated.csv")
    assert {"valence_mean", "arousal_mv", "valence_n_votes", "arousal"} <= set(agg.columns)
    assert main(["train-crowd", "--data", str(data), "--simulate", "reliable=3", "--kind", "valence", "--method",
                 "mean", "--epochs", "1", "--image-size", "32", "--out", str(tmp_path / "mean")]) == 0
    assert not (tmp_path / "mean" / "crowd_layers.json").exists()
    capsys.readouterr()
    for bad, message in ((["--kind", "va", "--crowd-layer", "MW"], "--crowd-layer MW is not for valence/arousal"),
                         (["--kind", "va", "--method", "ds"], "--method ds is not for valence/arousal"),
                         (["--crowd-layer", "S+B"], "--crowd-layer S+B is not for expressions")):
        assert main(["train-crowd", "--data", str(data), "--simulate", "reliable=2", *bad, "--out",
                     str(tmp_path / "bad")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_cli_train_crowd_with_c25_value_files(tmp_path):
    """AffectNetC25 valence and arousal files (one column per participant) name the training images."""
    import json

    from helpers.affectnet import write_tiny_affectnet

    from abaw.data.affectnet import read_split
    from abaw.tasks import AFFECTNETC25_VA_LEVELS

    data = write_tiny_affectnet(tmp_path / "an", images=24)
    df = read_split(data, "train")
    grid = np.asarray(AFFECTNETC25_VA_LEVELS)
    rng = np.random.default_rng(0)
    paths = []
    for dim in ("valence", "arousal"):
        truth = df[dim].to_numpy()
        near = grid[np.abs(truth[:, None] - grid).argmin(1)]
        cols = {f"participant{r}": np.where(truth > -2, np.clip(near + 0.25 * rng.integers(-1, 2, len(df)), -1, 1),
                                            np.nan) for r in range(4)}
        paths.append(tmp_path / f"{dim}_set1_C25.csv")
        pd.DataFrame({"index": range(len(df)), "filename": df["subDirectory_filePath"], **cols}).to_csv(paths[-1],
                                                                                                     index=False)
    out = tmp_path / "run"
    assert main(["train-crowd", "--data", str(data), "--votes", *map(str, paths), "--method", "crowd",
                 "--epochs", "1", "--image-size", "32", "--out", str(out)]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["kind"] == "va" and json.loads((out / "config.json").read_text())["crowd_layer"] == "S+B"
    recovery = scores["scores"]["train_label_recovery"]["mean"]
    assert recovery["valence"]["ccc"] > 0.9 and recovery["arousal"]["items"] == int((df["arousal"] > -2).sum())

"""Leaderboard: ranking, dataset separation, reference rows, terminal, JSON and HTML output, the command."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from abaw.cli import main
from abaw.runs import database, leaderboard
from abaw.runs.reference_scores import REFERENCE_SCORES, reference_scores


def make_run(root: Path, run_id: str, scores: dict[str, float], fingerprint: str = "fp-synth-a", kind: str = "train",
             protocol: str = "abaw2021", config: dict | None = None, created: str = "2026-11-22T03:00:00") -> Path:
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    # a config of its own per run (runs of one config that differ only in the seed share a row)
    (run_dir / "config.json").write_text(json.dumps(config or {"name": run_id, "seed": 0}))
    (run_dir / "run.json").write_text(json.dumps({
        "run_id": run_id, "kind": kind, "created": created, "data_root": f"/data/{fingerprint}",
        "dataset_fingerprint": fingerprint, "protocol": protocol, "tracks": list(scores), "streams": ["face"],
        "model": "tiny", "n_params": 2_500_000, "train_seconds": 3.0, "status": "finished"}))
    tracks = {t: {"score": s, "f1": s / 2, "accuracy": s, "ccc_valence": s, "ccc_arousal": s}
              for t, s in scores.items()}
    (run_dir / "scores.json").write_text(json.dumps({"split": "validation", "protocol": protocol, "tracks": tracks}))
    return run_dir


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "runs.sqlite"
    runs = tmp_path / "runs"
    for run_id, scores, fingerprint in [
        ("low", {"va": 0.10}, "fp-synth-a"), ("high", {"va": 0.60, "expr": 0.4}, "fp-synth-a"),
        ("tie1", {"va": 0.30}, "fp-synth-a"), ("tie2", {"va": 0.30}, "fp-synth-a"),
        ("other-data", {"va": 0.99}, "fp-other-b"),
    ]:
        database.record_run(make_run(runs, run_id, scores, fingerprint), path)
    database.record_run(make_run(runs, "base", {"va": 0.0, "expr": 0.1, "au": 0.2}, kind="baseline"), path)
    return path


def test_ranking_and_dataset_separation(db: Path) -> None:
    board = leaderboard.load_leaderboard(db, track="va")
    assert [(g.track, g.dataset_fingerprint) for g in board.groups] == [("va", "fp-synth-a"), ("va", "fp-other-b")]
    synth = board.groups[0]
    assert [(r.rank, r.entry.run_id) for r in synth.entries] == [(1, "high"), (2, "tie1"), (2, "tie2"), (4, "low"),
                                                                  (5, "base")]
    assert [r.entry.run_id for r in board.groups[1].entries] == ["other-data"]  # never ranked with the synthetic runs
    assert all(ref.track == "va" for ref in board.references) and board.references


def test_multitask_run_is_ranked_on_every_track(db: Path) -> None:
    board = leaderboard.load_leaderboard(db)
    per_track = {g.track: [r.entry.run_id for r in g.entries] for g in board.groups if g.dataset_fingerprint
                 == "fp-synth-a"}
    assert per_track["expr"] == ["high", "base"] and per_track["au"] == ["base"]
    assert [g.track for g in board.groups][:1] == ["va"] and [g.track for g in board.groups][-1] == "au"


def test_protocols_are_not_ranked_together(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    database.record_run(make_run(tmp_path, "p21", {"expr": 0.5}), path)
    database.record_run(make_run(tmp_path, "p22", {"expr": 0.3}, protocol="abaw2022"), path)
    board = leaderboard.load_leaderboard(path, references=False)
    assert sorted((g.protocol, len(g.entries)) for g in board.groups) == [("abaw2021", 1), ("abaw2022", 1)]


def test_reference_rows() -> None:
    va = reference_scores("va")
    assert {r.track for r in va} == {"va"} and len(va) >= 10
    affwildnet = next(r for r in va if r.system.startswith("AffWildNet"))
    assert affwildnet.score == pytest.approx(0.50) and affwildnet.components["ccc_valence"] == pytest.approx(0.57)
    abaw2021 = next(r for r in va if r.system == "ABAW 2021 baseline")
    assert abaw2021.score == pytest.approx(0.22)
    assert all("real" in r.dataset and "reported" in r.dataset for r in REFERENCE_SCORES)
    scores = [r.score for r in reference_scores("expr")]
    assert scores == sorted(scores, reverse=True)


def test_terminal_and_json(db: Path) -> None:
    board = leaderboard.load_leaderboard(db)
    console = Console(file=StringIO(), width=200, color_system=None)
    leaderboard.render_terminal(board, console)
    text = console.file.getvalue()
    assert "high" in text and "0.6000" in text and "Published scores" in text and "AffWildNet" in text
    data = leaderboard.to_json(board)
    first = data["groups"][0]
    assert first["track"] == "va" and first["entries"][0]["run_id"] == "high" and first["entries"][0]["rank"] == 1
    assert data["references"] and all(r["reported"] for r in data["references"])
    json.dumps(data)  # plain JSON


def test_html_escapes_and_links_plots(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    evil = {"name": "<script>alert(1)</script>", "note": "a & b \"q\" {{groups}}"}
    run = make_run(tmp_path / "runs", "evil<run>", {"va": 0.5}, config=evil)
    (run / "plots").mkdir()
    (run / "plots" / "va curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    database.record_run(run, path)
    out = tmp_path / "site" / "board.html"
    leaderboard.write_html(leaderboard.load_leaderboard(path), out)
    page = out.read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "evil&lt;run&gt;" in page and "{{groups}}" in page  # a config's text is never taken for a placeholder
    assert 'href="../runs/evil%3Crun%3E/plots/va%20curve.png"' in page
    assert len(re.findall(r"<script>", page)) == 1  # only our inline script
    assert "http://" not in page and "https://" not in page  # no network


def test_command(db: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["leaderboard", "--db", str(db), "--track", "1", "--json", "--no-reference"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {g["track"] for g in data["groups"]} == {"va"} and data["references"] == []
    html_path = tmp_path / "lb.html"
    assert main(["leaderboard", "--db", str(db), "--top", "2", "--html", str(html_path)]) == 0
    out = capsys.readouterr().out
    assert "more" in out and html_path.is_file()
    assert main(["leaderboard", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert "no runs database" in capsys.readouterr().err
    assert main(["leaderboard", "--db", str(db), "--track", "xyz"]) == 2
    run = make_run(tmp_path / "more", "new", {"au": 0.7})
    assert main(["record", str(run), "--db", str(db)]) == 0
    assert "recorded new" in capsys.readouterr().out


def test_leaderboard_skips_unfinished_runs_with_a_note(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    database.record_run(make_run(tmp_path, "done", {"va": 0.4}), path)
    killed = make_run(tmp_path, "killed", {"va": 0.9})
    info = json.loads((killed / "run.json").read_text())
    (killed / "run.json").write_text(json.dumps({**info, "status": "running"}))
    database.record_run(killed, path)  # the API records it; the board leaves it out and says so
    assert main(["leaderboard", "--db", str(path), "--json", "--no-reference"]) == 0
    out, err = capsys.readouterr()
    assert [e["run_id"] for g in json.loads(out)["groups"] for e in g["entries"]] == ["done"]
    assert err == "abaw leaderboard: skipped 1 unfinished run(s) (status running): killed\n"
    assert leaderboard.load_leaderboard(path).skipped == ["killed"]


def test_bare_leaderboard_names_the_demo_database(capsys: pytest.CaptureFixture, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(database.DB_ENV, raising=False)
    assert main(["leaderboard"]) == 2
    err = capsys.readouterr().err
    assert "no runs database here (record a run first" in err and "demo" not in err
    demo = Path("abaw-demo") / "abaw.sqlite"  # where `abaw demo` (default --out abaw-demo) puts it
    database.record_run(make_run(tmp_path / "abaw-demo" / "runs", "done", {"va": 0.4}), demo)
    assert main(["leaderboard"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"the demo's is at {demo}: abaw leaderboard --db {demo}" in err
    assert not Path("runs").exists()  # a reader makes no folder
    assert main(["leaderboard", "--db", str(demo), "--json"]) == 0 and "done" in capsys.readouterr().out


# ---- seeds as an axis, the held-out test column ---------------------------------------------------------------------

def seed_run(root: Path, run_id: str, name: str, seed: int, val: float, test: float | None = None,
             fit_uses_validation: bool | None = None, kind: str = "train") -> Path:
    """A run of config ``name`` trained with ``seed`` (``train.seed``), scored on validation and maybe on test."""
    run_dir = make_run(root, run_id, {"va": val}, kind=kind,
                       config={"name": name, "model": {"name": "tiny"}, "train": {"seed": seed, "epochs": 1}})
    if fit_uses_validation is not None:
        info = json.loads((run_dir / "run.json").read_text())
        (run_dir / "run.json").write_text(json.dumps({**info, "fit_uses_validation": fit_uses_validation}))
    if test is not None:  # what `abaw score --split test --labels DIR --run RUN_DIR` leaves in the run folder
        (run_dir / "scores_test.json").write_text(json.dumps({
            "split": "test", "protocol": "abaw2021", "labels": "/hidden/labels",
            "tracks": {"va": {"score": test, "ccc_valence": test, "ccc_arousal": test}}, "score": test}))
    return run_dir


@pytest.fixture()
def seeds_db(tmp_path: Path) -> Path:
    path = tmp_path / "seeds.sqlite"
    runs = tmp_path / "runs"
    for args in [("a0", "cfg_a", 0, 0.5, 0.4), ("a1", "cfg_a", 1, 0.6, 0.5), ("a2", "cfg_a", 2, 0.7, 0.45),
                 ("b0", "cfg_b", 0, 0.65, 0.3, True), ("c0", "cfg_c", 0, 0.55), ("c1", "cfg_c", 1, 0.57)]:
        database.record_run(seed_run(runs, *args), path)
    return path


def test_seeds_of_one_config_share_a_row_ranked_by_mean(seeds_db: Path) -> None:
    (group,) = leaderboard.load_leaderboard(seeds_db, references=False).groups
    assert [(c.rank, c.best.config["name"], len(c.runs)) for c in group.configs] == [
        (1, "cfg_b", 1), (2, "cfg_a", 3), (3, "cfg_c", 2)]  # means 0.65, 0.60, 0.56
    b, a, c = group.configs
    assert a.seeds == [2, 1, 0] and a.score.mean == pytest.approx(0.6) and a.score.std == pytest.approx(0.1)
    assert a.score.ci95 == pytest.approx(4.302653 * 0.1 / 3 ** 0.5, rel=1e-5)  # t(0.975, 2 df) x std / sqrt(n)
    assert a.test.n == 3 and a.test.mean == pytest.approx(0.45) and a.test.ci95 == pytest.approx(4.302653 * 0.05 / 3
                                                                                                  ** 0.5, rel=1e-5)
    assert b.single_seed and b.score.ci95 is None and b.notes == ["single seed", "fit used validation videos"]
    assert c.test.n == 0 and c.notes == [] and c.name == "cfg_c (2 runs)"
    # the per-run ranking stays (the demo and JSON readers use it), with each run's test score
    assert [(r.rank, r.entry.run_id, r.entry.test_score) for r in group.entries][:3] == [
        (1, "a2", 0.45), (2, "b0", 0.3), (3, "a1", 0.5)]


def test_seed_grouping_and_test_column_in_the_terminal(seeds_db: Path) -> None:
    console = Console(file=StringIO(), width=250, color_system=None)
    leaderboard.render_terminal(leaderboard.load_leaderboard(seeds_db, references=False), console)
    lines = console.file.getvalue().splitlines()
    head = next(line for line in lines if "┃ #" in line)
    columns = [c.strip() for c in head.split("┃")[1:-1]]
    rows = [dict(zip(columns, (c.strip() for c in line.split("│")[1:-1]), strict=True)) for line in lines
            if re.match(r"│ +\d+ │", line)]
    shown = ["#", "run", "score", "± 95% CI", "seeds", "test", "notes"]
    assert [[r[k] for k in shown] for r in rows] == [
        ["1", "b0", "0.6500", "—", "1", "0.3000", "single seed, fit used validation videos"],
        ["2", "cfg_a (3 runs)", "0.6000", "0.2484", "3", "0.4500 ± 0.1242", ""],
        ["3", "cfg_c (2 runs)", "0.5600", "0.1271", "2", "—", ""]]
    assert "95% confidence interval" in " ".join(lines)


def test_seed_grouping_and_test_column_in_json(seeds_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["leaderboard", "--db", str(seeds_db), "--json", "--no-reference"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "t-based 95%" in data["interval"]
    configs = data["groups"][0]["configs"]
    assert [(c["rank"], c["n_runs"], c["single_seed"], c["fit_uses_validation"]) for c in configs] == [
        (1, 1, True, True), (2, 3, False, False), (3, 2, False, False)]
    a = configs[1]
    assert a["seeds"] == [2, 1, 0] and a["score"]["mean"] == pytest.approx(0.6) and a["score"]["n"] == 3
    assert a["test"]["mean"] == pytest.approx(0.45) and configs[2]["test"] is None
    assert [r["run_id"] for r in a["runs"]] == ["a2", "a1", "a0"] and len({r["config_hash"] for r in a["runs"]}) == 3
    entries = {e["run_id"]: e for e in data["groups"][0]["entries"]}
    assert entries["a0"]["seed"] == 0 and entries["a0"]["test_score"] == pytest.approx(0.4)
    assert entries["a0"]["group_hash"] == entries["a2"]["group_hash"] != entries["c0"]["group_hash"]
    # the test split on its own: the test scores ranked, no test column joined to itself
    assert main(["leaderboard", "--db", str(seeds_db), "--json", "--no-reference", "--split", "test"]) == 0
    test = json.loads(capsys.readouterr().out)["groups"][0]["configs"]
    assert [(c["name"], c["score"]["mean"], c["test"]) for c in test] == [("cfg_a (3 runs)", pytest.approx(0.45),
                                                                            None), ("b0", 0.3, None)]


def test_seed_grouping_in_html(seeds_db: Path, tmp_path: Path) -> None:
    out = leaderboard.write_html(leaderboard.load_leaderboard(seeds_db, references=False), tmp_path / "b.html")
    page = out.read_text()
    assert page.count('class="run-row') == 3 and "cfg_a (3 runs)" in page and "0.4500 ± 0.1242" in page
    assert page.count(">single seed<") == 1 and page.count(">fit used validation videos<") == 1


def test_configs_sharing_a_name_are_told_apart_by_their_hash(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    for run_id, seed, epochs in (("x0", 0, 1), ("x1", 1, 1), ("y0", 0, 2), ("y1", 1, 2)):
        run = make_run(tmp_path / "runs", run_id, {"va": 0.1 * (seed + epochs)},
                       config={"name": "same", "train": {"seed": seed, "epochs": epochs}})
        database.record_run(run, path)
    configs = leaderboard.load_leaderboard(path, references=False).groups[0].configs
    names = [c.name for c in configs]
    assert len(set(names)) == 2 and all(re.fullmatch(r"same [0-9a-f]{6} \(2 runs\)", n) for n in names)
    assert [c.group_hash[:6] for c in configs] == [n.split()[1] for n in names]

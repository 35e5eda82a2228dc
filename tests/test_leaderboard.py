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
    (run_dir / "config.json").write_text(json.dumps(config or {"seed": 0}))
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

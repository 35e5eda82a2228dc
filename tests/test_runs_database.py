"""Runs registry: recording run folders, upserts, multi-task entries, filters, concurrent writers."""

from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest

from abaw.errors import AbawError
from abaw.runs import database
from abaw.runs.info import RUN_KINDS, RunInfo, config_hash, read_json, read_run_info, update_run_info


def make_run(root: Path, run_id: str, scores: dict[str, float], fingerprint: str = "fp-synth-a", kind: str = "train",
             protocol: str = "abaw2021", config: dict | None = None) -> Path:
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(config or {"model": {"name": "tiny"}, "seed": 0}))
    (run_dir / "run.json").write_text(json.dumps({
        "run_id": run_id, "kind": kind, "created": "2026-11-22T03:00:00+00:00", "git_commit": "abc123",
        "data_root": f"/data/{fingerprint}", "dataset_fingerprint": fingerprint, "protocol": protocol,
        "tracks": list(scores), "streams": ["face", "audio"], "model": "tiny", "n_params": 1234,
        "train_seconds": 1.5, "status": "finished"}))
    tracks = {t: {"score": s, "f1": s, "accuracy": s, "ccc_valence": s, "ccc_arousal": s} for t, s in scores.items()}
    (run_dir / "scores.json").write_text(json.dumps({"split": "validation", "protocol": protocol, "tracks": tracks}))
    return run_dir


def test_record_and_query(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    run = make_run(tmp_path / "runs", "r1", {"va": 0.4}, config={"lr": 0.1, "model": {"name": "x"}})
    assert database.record_run(run, db) == "r1"
    (entry,) = database.query_entries(db)
    assert entry.run_id == "r1" and entry.track == "va" and entry.score == pytest.approx(0.4)
    assert entry.components["ccc_valence"] == pytest.approx(0.4) and "score" not in entry.components
    assert entry.config == {"lr": 0.1, "model": {"name": "x"}}
    assert entry.streams == ["face", "audio"] and entry.n_params == 1234 and entry.git_commit == "abc123"
    assert entry.config_hash == config_hash({"model": {"name": "x"}, "lr": 0.1})  # key order irrelevant
    assert Path(entry.run_dir) == run.resolve()


def test_upsert_replaces_and_multitask_gives_one_entry_per_track(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    run = make_run(tmp_path / "runs", "mt", {"va": 0.3, "expr": 0.5, "au": 0.6}, kind="train")
    database.record_run(run, db)
    assert sorted(e.track for e in database.query_entries(db)) == ["au", "expr", "va"]
    scores = json.loads((run / "scores.json").read_text())
    scores["tracks"] = {"va": {"score": 0.35}}
    (run / "scores.json").write_text(json.dumps(scores))
    database.record_run(run, db)
    entries = database.query_entries(db)
    assert [(e.track, e.score) for e in entries] == [("va", 0.35)]
    assert database.count_runs(db) == 1


def test_filters(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    database.record_run(make_run(tmp_path / "runs", "a", {"va": 0.1}, fingerprint="aaaa1111"), db)
    database.record_run(make_run(tmp_path / "runs", "b", {"va": 0.2, "au": 0.3}, fingerprint="bbbb2222"), db)
    database.record_run(make_run(tmp_path / "runs", "c", {"expr": 0.2}, protocol="abaw2022"), db)
    assert {e.run_id for e in database.query_entries(db, track="va")} == {"a", "b"}
    assert {e.run_id for e in database.query_entries(db, dataset="aaaa")} == {"a"}
    assert {e.run_id for e in database.query_entries(db, dataset="/data/bbbb2222")} == {"b"}
    assert {e.run_id for e in database.query_entries(db, protocol="abaw2022")} == {"c"}
    assert database.query_entries(db, dataset="a%") == []  # LIKE wildcards are taken literally


def test_nan_score_and_missing_scores(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    run = make_run(tmp_path / "runs", "n", {"va": 0.0})
    (run / "scores.json").write_text('{"split": "validation", "tracks": {"va": {"score": NaN}}}')
    database.record_run(run, db)
    assert database.query_entries(db)[0].score is None
    (run / "scores.json").unlink()
    database.record_run(run, db)  # a run without scores is recorded, but has no entry to rank
    assert database.query_entries(db) == [] and database.count_runs(db) == 1


def test_bad_run_folders(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    with pytest.raises(AbawError, match="not a run folder"):
        database.record_run(tmp_path / "missing", db)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AbawError, match="run.json: missing"):
        database.record_run(empty, db)
    (empty / "run.json").write_text("{broken")
    with pytest.raises(AbawError, match="not valid JSON"):
        database.record_run(empty, db)
    with pytest.raises(AbawError, match="no runs database"):
        database.query_entries(tmp_path / "nowhere.sqlite")
    (empty / "run.json").write_text('{"run_id": "x", "n_params": "many"}')
    with pytest.raises(AbawError, match="n_params must be an integer"):
        database.record_run(empty, db)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(AbawError, match="garbage.sqlite"):
        database.record_run(make_run(tmp_path / "runs", "g", {"va": 0.1}), garbage)


def test_default_path_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABAW_DB", str(tmp_path / "env.sqlite"))
    database.record_run(make_run(tmp_path / "runs", "e", {"au": 0.5}))
    assert (tmp_path / "env.sqlite").is_file()
    assert database.query_entries()[0].run_id == "e"


def _writer(args: tuple[str, str, int, int]) -> int:
    runs_root, db, worker, n = args
    for i in range(n):
        database.record_run(Path(runs_root) / f"w{worker}-{i}", db)
        database.record_run(Path(runs_root) / f"shared-{i % 3}", db)  # the same runs from every worker: upserts
    return n


def test_concurrent_writers(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    runs_root = tmp_path / "runs"
    workers, per_worker = 4, 12
    for w in range(workers):
        for i in range(per_worker):
            make_run(runs_root, f"w{w}-{i}", {"va": (w * per_worker + i) / 100, "expr": 0.5})
    for i in range(3):
        make_run(runs_root, f"shared-{i}", {"au": i / 10})
    with mp.get_context("spawn").Pool(workers) as pool:
        done = pool.map(_writer, [(str(runs_root), str(db), w, per_worker) for w in range(workers)])
    assert sum(done) == workers * per_worker
    assert database.count_runs(db) == workers * per_worker + 3
    assert len(database.query_entries(db, track="va")) == workers * per_worker
    assert len(database.query_entries(db, track="au")) == 3
    assert database.check_integrity(db) == "ok"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_config_hash_leaves_out_what_does_not_change_results() -> None:
    train = {"data": {"root": "/a", "workers": 0, "streams": ["face"]}, "train": {"progress": True, "seed": 0}}
    moved = {"data": {"root": "/b", "workers": 4, "streams": ["face"]}, "train": {"progress": False, "seed": 0}}
    assert config_hash(train) == config_hash(moved) != config_hash({**train, "train": {"seed": 1}})
    derived = {"kind": "ensemble", "data_root": "/a", "threads": 1, "members": ["x"]}
    assert config_hash(derived) == config_hash({**derived, "data_root": "/b", "threads": 2})
    assert train["data"]["root"] == "/a"  # the config itself is left as it was
    # an option added later counts only once set: earlier run folders (without it) keep their hash
    assert config_hash({**train, "train": {"progress": True, "seed": 0, "ema_decay": 0.0}}) == config_hash(train)
    assert config_hash({**train, "train": {"progress": True, "seed": 0, "ema_decay": 0.99}}) != config_hash(train)


def test_run_info_reads_writes_and_keeps_unknown_keys(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs", "r", {"va": 0.1})
    raw = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**raw, "future_key": {"a": 1}}))
    info = read_run_info(run)
    assert info.run_id == "r" and info.streams == ["face", "audio"] and info.extra == {"future_key": {"a": 1}}
    update_run_info(run, evaluated="now", status="finished")
    again = json.loads((run / "run.json").read_text())
    # an old run folder reads and writes back: every key kept, the design's keys written even when unknown (null)
    assert again == {**raw, "config_hash": None, "future_key": {"a": 1}, "evaluated": "now"}
    assert RunInfo.from_dict(again).to_dict() == again
    (run / "run.json").write_text("[1, 2]")
    with pytest.raises(AbawError, match="run.json must hold a JSON object"):
        read_run_info(run)


def test_every_run_kind_records_the_hash_of_its_config(tiny_mtl_run: Path, tiny_root_ro: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """One run of each kind, made by its own code: run.json, config.json and the database agree on the hash."""
    from test_ensemble import labels_of_root
    from test_ensemble import make_run as make_source_run

    from abaw.posthoc.baselines import run_baselines
    from abaw.posthoc.ensemble import ensemble_runs
    from abaw.temporal.train import fit_temporal, load_config

    db = tmp_path / "abaw.sqlite"
    monkeypatch.setenv("ABAW_DB", str(db))
    runs = tmp_path / "runs"
    labels = labels_of_root(tiny_root_ro)
    sources = [make_source_run(runs, f"s{i}", labels, tiny_root_ro, 0.3, seed=i, skip=7) for i in range(2)]
    fit_temporal(sources[0], load_config(None, {"epochs": 1, "hidden": 8, "lstm_hidden": 4}), tiny_root_ro, runs)
    ensemble_runs(sources, "va", "mean", out_dir=runs)
    run_baselines(tiny_root_ro, runs, record=True)
    database.record_run(tiny_mtl_run, db)  # trained by a shared fixture, recorded in the session's database
    with database.connect(db) as conn:
        rows = conn.execute("SELECT kind, config_hash, run_dir FROM runs").fetchall()
    assert sorted({row["kind"] for row in rows}) == sorted(RUN_KINDS)
    for row in rows:
        run_dir = Path(row["run_dir"])
        assert row["config_hash"] == config_hash(read_json(run_dir / "config.json")), row["kind"]
        assert read_run_info(run_dir).config_hash == row["config_hash"], row["kind"]


# ---- readers open read-only ------------------------------------------------------------------------------------------

def test_readers_open_the_database_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The leaderboard's reads use SQLite's ``mode=ro``: a database in a read-only folder is readable (tests run as
    root, where chmod does not stop writes: the read-only open itself is checked)."""
    folder = tmp_path / "shared"
    db = folder / "abaw.sqlite"
    database.record_run(make_run(tmp_path, "done", {"va": 0.5}), db)
    before = db.read_bytes()
    opened: list[str] = []
    real = sqlite3.connect

    def spy(target: object, *args: object, **kwargs: object) -> sqlite3.Connection:
        opened.append(str(target))
        return real(target, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", spy)
    folder.chmod(0o555)
    try:
        assert [e.run_id for e in database.query_entries(db)] == ["done"]
        assert database.count_runs(db) == 1 and database.check_integrity(db) == "ok"
        with pytest.raises(AbawError, match="readonly"), database.connect(db, create=False) as conn:
            conn.execute("DELETE FROM runs")
    finally:
        folder.chmod(0o755)
    assert opened and all(t.startswith("file:") and t.endswith("?mode=ro") for t in opened)
    assert db.read_bytes() == before  # nothing written (a -wal file SQLite may keep for readers stays empty)
    wal = folder / "abaw.sqlite-wal"
    assert not wal.is_file() or wal.stat().st_size == 0


def test_a_read_only_folder_falls_back_to_an_immutable_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where SQLite cannot make the WAL index (a read-only folder, as a user other than root) the reader opens the
    file immutable; simulated here by refusing the plain read-only open as SQLite does there."""
    db = tmp_path / "abaw.sqlite"
    database.record_run(make_run(tmp_path, "done", {"va": 0.5}), db)
    real = sqlite3.connect

    class NoWalIndex:
        def execute(self, *args: object) -> None:
            raise sqlite3.OperationalError("attempt to write a readonly database")

        def close(self) -> None:
            pass

    def connect(target: str, *args: object, **kwargs: object) -> object:
        return real(target, *args, **kwargs) if "immutable=1" in target else NoWalIndex()

    monkeypatch.setattr(sqlite3, "connect", connect)
    assert [e.run_id for e in database.query_entries(db)] == ["done"]


def test_a_reader_makes_no_database_or_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "abaw.sqlite"
    with pytest.raises(AbawError, match="no runs database here"):
        database.query_entries(missing)
    assert not missing.parent.exists()


# ---- seeds, held-out test scores, the schema's second version -------------------------------------------------------

def test_group_hash_pools_seeds_and_config_hash_does_not(tmp_path: Path) -> None:
    from abaw.runs.seeds import config_seed, group_hash

    a = {"name": "x", "train": {"seed": 0, "epochs": 3}, "data": {"root": "/a"}}
    b = {"name": "x", "train": {"seed": 7, "epochs": 3}, "data": {"root": "/b"}}
    assert config_hash(a) != config_hash(b)  # a resume with another seed is refused
    assert group_hash(a) == group_hash(b) != group_hash({**a, "train": {"seed": 0, "epochs": 4}})
    assert (config_seed(a), config_seed(b), config_seed({"seed": 3}), config_seed({"name": "x"})) == (0, 7, 3, None)
    # a temporal config names its source run: fits on the seeds of one source config pool, other sources do not
    sources = {}
    for run_id, seed, epochs in (("s0", 0, 3), ("s1", 1, 3), ("other", 0, 9)):
        folder = tmp_path / run_id
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"name": "x", "train": {"seed": seed, "epochs": epochs}}))
        sources[run_id] = {"name": "t", "seed": seed, "source": run_id, "source_dir": str(folder)}
    assert group_hash(sources["s0"]) == group_hash(sources["s1"]) != group_hash(sources["other"])
    gone = {**sources["s0"], "source_dir": str(tmp_path / "gone")}
    assert group_hash(gone) == config_hash({k: v for k, v in gone.items() if k != "seed"})  # unreadable: its own


def test_test_scores_seed_and_fit_marker_are_recorded(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    run = make_run(tmp_path / "runs", "r", {"va": 0.4, "expr": 0.3},
                   config={"name": "n", "train": {"seed": 2}})
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "fit_uses_validation": True}))
    (run / "scores_test.json").write_text(json.dumps(
        {"split": "test", "protocol": "abaw2021", "tracks": {"va": {"score": 0.35, "ccc_valence": 0.3}}}))
    database.record_run(run, db)
    va, expr = sorted(database.query_entries(db), key=lambda e: e.track != "va")
    assert (va.track, va.score, va.test_score, va.test_components) == ("va", 0.4, 0.35, {"ccc_valence": 0.3})
    assert (expr.track, expr.test_score, expr.test_components) == ("expr", None, None)
    assert va.seed == 2 and va.fit_uses_validation is True and va.group_hash == expr.group_hash
    (test,) = database.query_entries(db, split="test")
    assert (test.track, test.score, test.test_score) == ("va", 0.35, None)
    # a scores_test.json that says another split adds nothing; removing the file removes the test rows
    (run / "scores_test.json").write_text(json.dumps({"split": "validation", "tracks": {"va": {"score": 0.9}}}))
    database.record_run(run, db)
    assert database.query_entries(db, split="test") == []
    assert {e.score for e in database.query_entries(db)} == {0.4, 0.3}


V1_SCHEMA = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, kind TEXT NOT NULL, created TEXT, recorded TEXT NOT NULL,
    git_commit TEXT, config_json TEXT NOT NULL, config_hash TEXT NOT NULL, data_root TEXT, dataset_fingerprint TEXT,
    protocol TEXT, tracks TEXT NOT NULL, streams TEXT NOT NULL, model TEXT, n_params INTEGER, train_seconds REAL,
    status TEXT, members TEXT NOT NULL, run_dir TEXT NOT NULL);
CREATE TABLE scores (run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE, track TEXT NOT NULL,
    split TEXT NOT NULL, protocol TEXT, score REAL, components TEXT NOT NULL, PRIMARY KEY (run_id, track, split));
INSERT INTO runs VALUES ('old', 'train', NULL, 'now', NULL, '{"train": {"seed": 4}}', 'h', NULL, 'fp', 'abaw2021',
    '["va"]', '["face"]', 'm', 1, 1.0, 'finished', '[]', '/runs/old');
INSERT INTO scores VALUES ('old', 'va', 'validation', 'abaw2021', 0.5, '{}');
PRAGMA user_version = 1;
"""


def test_a_version_1_database_is_read_as_it_is_and_upgraded_by_a_writer(tmp_path: Path) -> None:
    from abaw.runs import leaderboard

    db = tmp_path / "v1.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript(V1_SCHEMA)
    (old,) = database.query_entries(db)  # a reader does not migrate (it opens read-only)
    assert (old.run_id, old.seed, old.group_hash, old.test_score) == ("old", None, None, None)
    (config,) = leaderboard.load_leaderboard(db, references=False).groups[0].configs  # hashed from its config
    assert config.group_hash and config.single_seed
    database.record_run(make_run(tmp_path / "runs", "new", {"va": 0.6}), db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == database.SCHEMA_VERSION
    assert {e.run_id: e.seed for e in database.query_entries(db)} == {"old": None, "new": 0}


def test_write_test_score_merges_tracks_and_is_recorded(tmp_path: Path) -> None:
    from abaw.runs.test_scores import TEST_SCORES_FILE, has_test_score, write_test_score

    db = tmp_path / "runs.sqlite"
    run = make_run(tmp_path / "runs", "r", {"va": 0.4, "au": 0.5})
    assert not has_test_score(run, "va")
    write_test_score(run, "va", {"score": 0.3, "ccc_valence": 0.2, "split": "test", "n_videos": 2}, "abaw2021", "/l")
    write_test_score(run, "au", {"score": 0.6, "f1": 0.6}, "abaw2021")
    doc = json.loads((run / TEST_SCORES_FILE).read_text())
    assert doc["split"] == "test" and doc["score"] == pytest.approx(0.9) and doc["tracks"]["va"] == {
        "score": 0.3, "ccc_valence": 0.2} and has_test_score(run, "au")
    database.record_run(run, db)
    assert {e.track: e.test_score for e in database.query_entries(db)} == {"va": 0.3, "au": 0.6}

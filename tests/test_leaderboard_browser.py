"""The HTML leaderboard in a real headless Chromium: it renders, the tables hold the expected rows, sorting works."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from abaw.runs import database, leaderboard

CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run")


def _find(*names: str) -> str | None:
    return next((path for name in names if (path := shutil.which(name))), None)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[dev])")
    chromium = _find("chromium", "chromium-browser", "google-chrome")
    driver_path = _find("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("chromium and chromedriver are needed (apt-get install chromium chromium-driver, "
                    "or scripts/setup.sh --dev)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _run(root: Path, run_id: str, scores: dict[str, float], fingerprint: str, n_params: int) -> Path:
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"name": f"<b>{run_id}</b>"}))
    (run_dir / "run.json").write_text(json.dumps({
        "run_id": run_id, "kind": "train", "created": f"2026-11-22T03:{len(run_id):02d}:00",
        "dataset_fingerprint": fingerprint, "data_root": f"/data/{fingerprint}", "protocol": "abaw2021",
        "tracks": list(scores), "streams": ["face"], "model": "m", "n_params": n_params, "train_seconds": 1.0}))
    tracks = {t: {"score": s, "ccc_valence": s, "ccc_arousal": s, "f1": s, "accuracy": s} for t, s in scores.items()}
    (run_dir / "scores.json").write_text(json.dumps({"split": "validation", "protocol": "abaw2021", "tracks": tracks}))
    return run_dir


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    db = root / "runs.sqlite"
    specs = [("alpha", {"va": 0.3, "expr": 0.5}, 300), ("beta", {"va": 0.7}, 100), ("gamma", {"va": 0.5}, 200),
             ("delta", {"expr": 0.2, "au": 0.6}, 50)]
    for run_id, scores, n_params in specs:
        database.record_run(_run(root / "runs", run_id, scores, "fp-synth", n_params), db)
    database.record_run(_run(root / "runs", "elsewhere", {"va": 0.9}, "fp-other", 10), db)
    return leaderboard.write_html(leaderboard.load_leaderboard(db), root / "board.html")


def _column(driver, table_id: str, index: int) -> list[str]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr:not(.detail-row)")
    return [row.find_elements(By.TAG_NAME, "td")[index].text for row in rows]


def test_page_renders_with_expected_rows(browser, page: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(page.as_uri())
    assert browser.title == "abaw leaderboard"
    tables = browser.find_elements(By.CSS_SELECTOR, "table.board:not(.reference)")
    ids = [t.get_attribute("id") for t in tables]
    assert ids == ["board-va-abaw2021-validation-fp-synth", "board-va-abaw2021-validation-fp-other",
                   "board-expr-abaw2021-validation-fp-synth", "board-au-abaw2021-validation-fp-synth"]
    assert _column(browser, ids[0], 1) == ["beta", "gamma", "alpha"]  # ranked by score
    assert _column(browser, ids[0], 0) == ["1", "2", "3"]
    assert _column(browser, ids[1], 1) == ["elsewhere"]  # other data: its own table
    assert _column(browser, ids[2], 1) == ["alpha", "delta"]
    refs = browser.find_elements(By.CSS_SELECTOR, "#reference-va tbody tr")
    assert len(refs) >= 10 and "reported" in refs[0].text
    # a run's details open below its row and show the escaped config
    detail = browser.find_element(By.CSS_SELECTOR, f"#{ids[0]} tbody tr.detail-row")
    assert not detail.is_displayed()
    browser.find_element(By.CSS_SELECTOR, f"#{ids[0]} tbody tr.run-row button.toggle").click()
    assert detail.is_displayed()
    assert "<b>beta</b>" in detail.find_element(By.CSS_SELECTOR, ".config pre").text


def test_sorting(browser, page: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(page.as_uri())
    table = "board-va-abaw2021-validation-fp-synth"
    headers = browser.find_elements(By.CSS_SELECTOR, f"#{table} thead th")
    by_name = {h.text.strip().split(" ")[0]: h for h in headers}
    by_name["score"].click()
    assert _column(browser, table, 5) == ["0.3000", "0.5000", "0.7000"]
    assert by_name["score"].get_attribute("aria-sort") == "ascending"
    by_name["score"].click()
    assert _column(browser, table, 5) == ["0.7000", "0.5000", "0.3000"]
    by_name["params"].click()
    assert _column(browser, table, 1) == ["beta", "gamma", "alpha"]  # 100 < 200 < 300 parameters
    by_name["run"].click()
    assert _column(browser, table, 1) == ["alpha", "beta", "gamma"]
    pairs = browser.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")  # each details row follows its run
    assert [p.get_attribute("class") for p in pairs[:2]] == ["run-row kind-train", "detail-row"]
    assert "<b>alpha</b>" in pairs[1].get_attribute("textContent")
    by_name["run"].click()
    assert _column(browser, table, 1) == ["gamma", "beta", "alpha"]


@pytest.fixture(scope="module")
def seeds_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three configs: one over seeds 0-2 with test scores, one single-seed fit on validation videos, one without
    test scores."""
    root = tmp_path_factory.mktemp("seeds")
    db = root / "runs.sqlite"
    specs = [("a0", "cfg_a", 0, 0.5, 0.4, None), ("a1", "cfg_a", 1, 0.6, 0.5, None),
             ("a2", "cfg_a", 2, 0.7, 0.45, None), ("b0", "cfg_b", 0, 0.65, 0.3, True),
             ("c0", "cfg_c", 0, 0.55, None, None), ("c1", "cfg_c", 1, 0.57, None, None)]
    for run_id, name, seed, val, test, fit_on_val in specs:
        run_dir = _run(root / "runs", run_id, {"va": val}, "fp-synth", 100)
        (run_dir / "config.json").write_text(json.dumps({"name": name, "train": {"seed": seed}}))
        if fit_on_val:
            info = json.loads((run_dir / "run.json").read_text())
            (run_dir / "run.json").write_text(json.dumps({**info, "fit_uses_validation": True}))
        if test is not None:
            (run_dir / "scores_test.json").write_text(json.dumps(
                {"split": "test", "protocol": "abaw2021", "tracks": {"va": {"score": test}}}))
        database.record_run(run_dir, db)
    return leaderboard.write_html(leaderboard.load_leaderboard(db, references=False), root / "seeds.html")


def test_seed_groups_and_test_column(browser, seeds_page: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(seeds_page.as_uri())
    table = "board-va-abaw2021-validation-fp-synth"
    names = [h.text.strip() for h in browser.find_elements(By.CSS_SELECTOR, f"#{table} thead th")]
    col = {name.split(" ")[0] if name[0] != "±" else "ci": i for i, name in enumerate(names)}
    assert names[5:9] == ["score", "± 95% CI", "seeds", "test"]
    assert _column(browser, table, col["run"]) == ["b0", "cfg_a (3 runs)", "cfg_c (2 runs)"]  # by the mean
    assert _column(browser, table, col["score"]) == ["0.6500", "0.6000", "0.5600"]
    assert _column(browser, table, col["ci"]) == ["—", "0.2484", "0.1271"]
    assert _column(browser, table, col["seeds"]) == ["1", "3", "2"]
    assert _column(browser, table, col["test"]) == ["0.3000", "0.4500 ± 0.1242", "—"]
    assert _column(browser, table, col["notes"]) == ["single seed fit used validation videos", "", ""]
    # the hidden test column sorts like the others (runs without a test score last)
    header = browser.find_elements(By.CSS_SELECTOR, f"#{table} thead th")[col["test"]]
    header.click()
    assert _column(browser, table, col["run"]) == ["b0", "cfg_a (3 runs)", "cfg_c (2 runs)"]
    header.click()
    assert _column(browser, table, col["run"]) == ["cfg_a (3 runs)", "b0", "cfg_c (2 runs)"]
    # a config's details list its runs, one per seed, with their validation and test scores
    row = browser.find_element(By.CSS_SELECTOR, f"#{table} tbody tr.run-row[data-run='a2']")
    row.find_element(By.CSS_SELECTOR, "button.toggle").click()
    detail = row.find_element(By.XPATH, "following-sibling::tr[1]")
    assert detail.is_displayed()
    runs = [li.text for li in detail.find_elements(By.CSS_SELECTOR, "ul.seed-runs li")]
    assert runs == ["a2 · seed 2 · score 0.7000 · test 0.4500", "a1 · seed 1 · score 0.6000 · test 0.5000",
                    "a0 · seed 0 · score 0.5000 · test 0.4000"]

"""``abaw ablate``: the variants as data, a resumable run over seeds on a tiny root, the table and the README."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from abaw.apps import ablate
from abaw.cli import main
from abaw.errors import AbawError
from abaw.presets import list_presets
from abaw.runs import leaderboard

README = """# project

Some text.

<!-- ablation:start -->
| old | table |
<!-- ablation:end -->

More text.
"""


def test_variants_are_data_over_shipped_presets() -> None:
    names = ablate.variant_names()
    assert names[:9] == ["face", "body", "context", "audio", "early_fusion", "late_fusion", "late_fusion_heads",
                         "late_fusion_heads_dropout", "face_audio"]
    by_name = {v.name: v for v in ablate.VARIANTS}
    assert by_name["late_fusion"].overrides["model.kwargs.fusion"] == "late"
    assert by_name["face_audio"].overrides["data.streams"] == ["face", "audio"]
    assert by_name["temporal_stats"].kind == "temporal" and by_name["temporal_stats"].source == "per_frame"
    # a temporal variant brings its source; the transformer is in when its presets are shipped
    assert [v.name for v in ablate.select_variants(["temporal_stats"], ("va",))] == ["per_frame", "temporal_stats"]
    everything = [v.name for v in ablate.select_variants(None, ("va", "expr"))]
    shipped = {"transformer_va", "transformer_expr"} <= set(list_presets())
    assert ("transformer" in everything) == ("transformer_fusion" in everything) == shipped
    fused = by_name["transformer_fusion"]
    assert fused.block == "fusion" and len(fused.overrides["data.streams"]) == 4
    with pytest.raises(AbawError, match="unknown ablation variant"):
        ablate.select_variants(["nope"])


def test_replace_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(README)
    ablate.replace_block(readme, "| new |\n")
    assert readme.read_text() == README.replace("| old | table |\n", "| new |\n")
    ablate.replace_block(readme, "| newer |\n")  # idempotent markers: replaced again
    assert "| newer |" in readme.read_text() and "| new |\n" not in readme.read_text()
    readme.write_text("no markers\n")
    with pytest.raises(AbawError, match="ablation:start"):
        ablate.replace_block(readme, "x")
    assert readme.read_text() == "no markers\n"


def _table_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| VA")]


def _run_dirs(out: Path) -> set[Path]:
    return {p for p in (out / "runs" / "va").glob("*/*") if p.is_dir()}


def test_ablation_over_two_seeds_resumes_and_writes_the_readme_block(
        tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    readme = tmp_path / "README.md"
    readme.write_text(README)
    out = tmp_path / "ablation"
    argv = ["ablate", "--data-root", str(tiny_root), "--out", str(out), "--seeds", "0,1", "--tracks", "va",
            "--variants", "face,per_frame", "--epochs", "1", "--set", "data.batch_size=4",
            "--set", "model.kwargs.hidden_size=8", "--readme", str(readme)]
    assert main(argv) == 0
    first = capsys.readouterr().out
    rows = _table_rows(first)
    assert [r[:3] + [r[5]] for r in rows] == [["VA", "baseline", "trivial baseline", "1"],
                                              ["VA", "streams", "face alone (GRU)", "2"],
                                              ["VA", "temporal", "face, per-frame (no RNN)", "2"]]
    number = r"-?\d\.\d{3}"
    assert re.fullmatch(r"-?\d\.\d{3}", rows[0][7])  # the baseline is scored on the test split too
    for row in rows[1:]:  # mean ± std over the two seeds, on validation and on the hidden test split
        assert re.fullmatch(f"{number} ± {number}", row[6]) and re.fullmatch(f"{number} ± {number}", row[7]), row
    # per-frame against face alone, paired on the test videos: the difference of the means
    # (the tiny root has one test video: no interval; the interval itself is tested in tests/test_compare.py)
    assert rows[0][8] == rows[1][8] == "—"
    delta = float(re.fullmatch(r"([-+]\d\.\d{3}) \(1 test video\)", rows[2][8]).group(1))
    means = [float(r[7].split(" ± ")[0]) for r in rows[1:]]
    assert delta == pytest.approx(means[1] - means[0], abs=2e-3)
    assert "--seeds 0,1" in first  # the table says which command made it
    text = readme.read_text()
    assert text.startswith("# project\n\nSome text.\n\n<!-- ablation:start -->\n") and "| old | table |" not in text
    assert text.endswith("<!-- ablation:end -->\n\nMore text.\n") and "face alone (GRU)" in text
    assert (out / "ablation.md").read_text() in text
    runs = _run_dirs(out)
    assert len(runs) == 4 and all((r / "scores_test.json").is_file() for r in runs)

    # resumed: nothing is trained again, and the same table comes out
    stamps = {r: (r / "run.json").stat().st_mtime_ns for r in runs}
    assert main(argv) == 0
    assert _table_rows(capsys.readouterr().out) == rows
    assert _run_dirs(out) == runs and {r: (r / "run.json").stat().st_mtime_ns for r in runs} == stamps

    # the runs database groups the seeds of each variant, with the test column
    board = leaderboard.load_leaderboard(out / "abaw.sqlite", track="va", references=False)
    configs = {c.best.config["name"]: c for c in board.groups[0].configs if c.best.kind == "train"}
    assert sorted(configs) == ["ablation_va_face", "ablation_va_per_frame"]
    assert all(len(c.runs) == 2 and c.test.n == 2 and sorted(c.seeds) == [0, 1] for c in configs.values())
    data = json.loads((out / "ablation.json").read_text())
    assert [r["name"] for r in data["rows"]] == ["baseline", "face", "per_frame"] and data["seeds"] == [0, 1]
    versus = data["rows"][2]["versus"]
    assert versus["delta"] == pytest.approx(delta, abs=1e-3) and versus["n_videos"] == 1


def test_bad_arguments_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ablate", "--variants", "nope", "--out", str(tmp_path / "o")]) == 2
    assert "unknown ablation variant(s) nope" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # a usage error: one line, exit 2
        main(["ablate", "--seeds", "0,0"])
    assert info.value.code == 2 and "names a seed twice" in capsys.readouterr().err
    assert main(["ablate", "--data-root", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data root not found" in err
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    assert main(["ablate", "--out", str(tmp_path / "o"), "--readme", str(readme)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "<!-- ablation:start -->" in err and not (tmp_path / "o" / "data").exists()

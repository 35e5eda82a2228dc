"""scripts/bench_pipeline.py runs end to end and prints every stage (figures are checked by reading them, not here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_pipeline.py"


def test_bench_prints_every_stage_and_the_ratio(media_dir: Path, weights_dir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_pipeline", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main([str(media_dir / "single_face.mp4"), "--cnn", "demo_multitask:face+audio", "--max-frames",
                       "12", "--repeat", "1", "--batch-size", "4", "--chunk", "8", "--dtype", "fp32"]) == 0
    out = capsys.readouterr().out
    for stage in ("decode", "detect", "detect/k", "persons", "align", "inputs", "audio", "pipeline/cnn"):
        assert stage in out
    row = [line for line in out.splitlines() if line.startswith("single_face.mp4")][-1]  # the CNN stage row
    assert "tv_mobilenet_v2" in row and "audio_cnn" in row and float(row.split()[-1].rstrip("%")) > 0
    assert "peak memory" in out

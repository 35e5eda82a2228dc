"""Running the abaw command line inside a test."""

from __future__ import annotations

import pytest

from abaw.cli import main


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err

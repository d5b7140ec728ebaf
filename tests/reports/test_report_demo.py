"""`kretain demo` ends by writing the report and printing its path."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from kretain.cli import cli


def test_demo_writes_the_report_and_prints_its_path(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["demo", "--entries", "1200", "--burst", "400", "--dir", "d"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    path = tmp_path / "d" / "kretain-report.html"
    assert f"report for decision makers: {path}" in result.output
    html = path.read_text(encoding="utf-8")
    candidates = re.search(r'data-figure="headline.candidates" data-value="(\d+)"', html)
    db = sqlite3.connect(tmp_path / "d" / "kretain.db")
    assert (
        candidates
        and int(candidates.group(1))
        == db.execute("SELECT count(*) FROM entries WHERE state = 'sized'").fetchone()[0]
        > 0
    )
    assert "No delete has run yet" in html

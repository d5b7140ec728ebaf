"""Progress rendering and the demo command."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from kretain.cli import cli
from kretain.progress import ProgressReporter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_off_a_terminal_with_rate_eta_and_requests() -> None:
    out, clock = io.StringIO(), Clock()
    requests = iter(range(0, 1000, 10))
    progress = ProgressReporter(
        stream=out, live=False, interval=10, clock=clock, requests=lambda: next(requests)
    )
    progress("size.batch", sized=0, total=1000)
    clock.now += 5
    progress("size.batch", sized=100, total=1000)  # within the interval: no line
    clock.now += 10
    progress("size.batch", sized=300, total=1000, bytes_saved=3 * 1024**3)
    clock.now += 1
    progress("size.done", sized=1000, total=1000)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert "sized 300" in lines[1] and "20/s" in lines[1] and "of 1,000" in lines[1]
    assert "ETA" in lines[1] and "3.0 GiB" in lines[1] and "req/s" in lines[1]
    assert "\r" not in out.getvalue()


def test_live_line_shows_concurrent_stages_and_ends_each_with_its_own_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # whatever terminal the tests run in
    out, clock = io.StringIO(), Clock()
    progress = ProgressReporter(stream=out, live=True, clock=clock)
    progress("discover.page", listed=500)
    clock.now += 1
    progress("discover.page", listed=1000)
    clock.now += 1
    progress("size.batch", sized=10)  # sizing runs while discovery still lists
    assert "discover: listed 1,000" in out.getvalue()
    assert " | size: sized 10" in out.getvalue()
    assert "\n" not in out.getvalue()  # one line, rewritten in place
    clock.now += 1
    progress("discover.done", listed=1200)
    final = out.getvalue().rsplit("\r", 1)[-1]
    assert final.startswith("discover: listed 1,200") and final.endswith("\n")
    clock.now += 1
    progress("size.batch", sized=50)
    assert out.getvalue().rsplit("\r", 1)[-1].startswith("size: sized 50")


def test_demo_audits_a_small_partner_and_prints_the_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["demo", "--entries", "1500", "--burst", "600", "--dir", "d"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "metric" in result.output and "candidates" in result.output
    db = tmp_path / "d" / "kretain.db"
    sized = (
        sqlite3.connect(db)
        .execute("select count(*) from entries where state = 'sized'")
        .fetchone()[0]
    )
    assert sized > 300
    total_line = next(line for line in result.output.splitlines() if line.startswith("candidates"))
    assert total_line.split()[-1] == str(sized)
    assert (tmp_path / "d" / "kretain-logs" / "demo.jsonl").exists()

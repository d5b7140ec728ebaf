"""Progress rendering and the demo command."""

from __future__ import annotations

import io
import re
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


def test_demo_runs_the_whole_job_and_writes_the_report(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["demo", "--entries", "1500", "--burst", "600", "--max-deletes", "30", "--dir", "d"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = tmp_path / "d"
    db = sqlite3.connect(out / "kretain.db")
    states = dict(db.execute("SELECT state, count(*) FROM entries GROUP BY state").fetchall())
    # Backed up, planned without a change, then exactly the cap carried out.
    assert states.get("archived", 0) > 50
    assert "Kaltura changes during the dry run: 0" in result.output
    assert states.get("deleted", 0) + states.get("stripped", 0) == 30
    assert "--max-deletes 30 reached" in result.output
    for (entry_id,) in db.execute("SELECT id FROM entries WHERE state = 'deleted'"):
        assert list(out.glob(f"archive/*/{entry_id}/entry.json")), entry_id
    assert (out / "kretain-plans" / "plan-2.csv").exists()
    # The summary counts every candidate, done or not.
    total_line = next(line for line in result.output.splitlines() if line.startswith("candidates"))
    due = db.execute(
        "SELECT count(*) FROM entries WHERE state IN ('sized', 'archived', 'deleted', 'stripped')"
    ).fetchone()[0]
    assert total_line.split()[-1] == str(due)
    assert (out / "kretain-logs" / "demo.jsonl").exists()
    # It ends with the report, whose numbers are the database's.
    path = out / "kretain-report.html"
    assert f"report for decision makers: {path}" in result.output
    html = path.read_text(encoding="utf-8")
    candidates = re.search(r'data-figure="headline.candidates" data-value="(\d+)"', html)
    assert candidates and int(candidates.group(1)) == due
    assert "No delete has run yet" not in html


def test_demo_refuses_a_directory_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("keep me")
    result = CliRunner().invoke(cli, ["demo", "--dir", "mine"])
    assert result.exit_code != 0
    assert "not a kretain demo directory" in result.output
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "keep me"


def test_the_demo_names_kretain_as_the_user_can_run_it(tmp_path, monkeypatch) -> None:
    """`make demo` runs .venv/bin/kretain, which is not on PATH: the hints the demo prints
    must name that path, or a new user's first command fails with 'command not found'."""
    from kretain import demo

    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "kretain").write_text("#!/bin/sh\n")
    (venv_bin / "kretain").chmod(0o755)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr("sys.argv", [str(venv_bin / "kretain"), "demo"])
    assert demo._program() == str(venv_bin / "kretain")
    monkeypatch.setenv("PATH", f"{venv_bin}:/usr/bin:/bin")
    assert demo._program() == "kretain"
    monkeypatch.setattr("sys.argv", ["/x/kretain/__main__.py", "demo"])
    assert demo._program() == "kretain"

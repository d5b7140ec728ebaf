"""`kretain report` on the command line: where it writes, its formats, the owner-hiding flag
and environment variable, the user's settings, and refusing to write over the database."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kretain.cli import cli
from kretain.policy import Policy
from kretain.reports import query
from kretain.reports.report import ReportInterrupted, write_report


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env or {}, catch_exceptions=False)


def test_default_output_is_next_to_the_database(built: Path) -> None:
    result = invoke("--db", str(built), "report")
    assert result.exit_code == 0, result.output
    path = built.parent / "kretain-report.html"
    assert result.stdout.strip() == str(path)
    assert path.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert not list(built.parent.glob(".kretain-report.html.*"))  # no temporary file left


def test_markdown_and_stdout(built: Path) -> None:
    result = invoke("--db", str(built), "report", "--format", "markdown")
    assert result.exit_code == 0, result.output
    text = (built.parent / "kretain-report.md").read_text(encoding="utf-8")
    assert text.startswith("# Media retention report\n")
    result = invoke("--db", str(built), "report", "--format", "markdown", "--out", "-")
    assert result.exit_code == 0
    # the same report but for the clock line
    assert result.stdout.split("\n", 3)[3] == text.split("\n", 3)[3]
    html = invoke("--db", str(built), "report", "--out", "-").stdout
    assert html.startswith("<!doctype html>") and html.endswith("</html>\n")


def test_out_names_a_file(built: Path, tmp_path: Path) -> None:
    out = tmp_path / "for-the-senate.html"
    result = invoke("--db", str(built), "report", "--out", str(out))
    assert result.exit_code == 0 and result.stdout.strip() == str(out)
    assert "<svg" in out.read_text(encoding="utf-8")


def test_refuses_to_write_over_the_database(built: Path) -> None:
    before = hashlib.sha256(built.read_bytes()).hexdigest()
    for target in (built, Path(str(built) + "-wal")):
        result = CliRunner().invoke(cli, ["--db", str(built), "report", "--out", str(target)])
        assert result.exit_code == 1
        assert "refusing to write the report over" in result.output
    assert hashlib.sha256(built.read_bytes()).hexdigest() == before


def test_hide_owners_by_flag_or_environment(built: Path) -> None:
    shown = invoke("--db", str(built), "report", "--out", "-").stdout
    assert ">carol<" in shown
    for args, env in (
        (["--hide-owners"], {}),
        ([], {"KRETAIN_REPORT_HIDE_OWNERS": "1"}),
        ([], {"KRETAIN_REPORT_HIDE_OWNERS": "true"}),
    ):
        hidden = invoke("--db", str(built), "report", "--out", "-", *args, env=env).stdout
        assert ">carol<" not in hidden and ">owner 1<" in hidden, (args, env)
    again = invoke(
        "--db", str(built), "report", "--out", "-", "--show-owners",
        env={"KRETAIN_REPORT_HIDE_OWNERS": "1"},
    ).stdout  # fmt: skip
    assert ">carol<" in again


def test_report_settings_in_kretain_toml(built: Path, tmp_path: Path) -> None:
    """[report] in kretain.toml, below the environment and the flags."""
    (tmp_path / "kretain.toml").write_text(
        '[report]\nout = "board/report.md"\nformat = "markdown"\nhide_owners = true\n',
        encoding="utf-8",
    )
    (tmp_path / "board").mkdir()
    result = invoke("--db", str(built), "report")
    out = tmp_path / "board" / "report.md"
    assert result.exit_code == 0 and result.stdout.strip() == str(out), result.output
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Media retention report\n") and "carol" not in text
    shown = invoke("--db", str(built), "report", "--out", "-", "--show-owners").stdout
    assert shown.startswith("# Media retention report\n") and "carol" in shown
    env = {"KRETAIN_REPORT_HIDE_OWNERS": "no", "KRETAIN_REPORT_FORMAT": "html"}
    page = invoke("--db", str(built), "report", "--out", "-", env=env).stdout
    assert page.startswith("<!doctype html>") and ">carol<" in page
    bad = CliRunner().invoke(
        cli, ["--db", str(built), "report"], env={"KRETAIN_REPORT_FORMAT": "pdf"}
    )
    assert bad.exit_code != 0 and "KRETAIN_REPORT_FORMAT must be html or markdown" in bad.output


def test_the_report_describes_the_users_policy(built: Path, tmp_path: Path) -> None:
    (tmp_path / "kretain.toml").write_text(
        '[policy.exemptions]\ntags = ["legal-hold"]\nowners = ["dean.of.law"]\n',
        encoding="utf-8",
    )
    html = invoke("--db", str(built), "report", "--out", "-").stdout
    assert "tags: legal-hold (case-insensitive, whole tag)" in html
    assert "owners: dean.of.law (case-insensitive)" in html
    hidden = invoke("--db", str(built), "report", "--out", "-", "--hide-owners").stdout
    assert "dean.of.law" not in hidden and "owners: 1 name hidden" in hidden


def test_a_missing_database_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "nope.db"), "report"])
    assert result.exit_code != 0
    assert result.output.startswith("kretain: ") and len(result.output.splitlines()) == 1
    assert not (tmp_path / "kretain-report.html").exists()


def test_help_names_the_options() -> None:
    text = invoke("report", "--help").output
    words = ("--out", "--format", "--hide-owners", "KRETAIN_REPORT_HIDE_OWNERS",
             "KRETAIN_REPORT_OUT", "KRETAIN_REPORT_FORMAT", "hide_owners")  # fmt: skip
    for word in words:
        assert word in text


def test_an_unwritable_place_is_one_line(built: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", str(built), "report", "--out", "/proc/report.html"])
    assert result.exit_code == 1
    assert result.output.startswith("kretain: cannot write the report to /proc/report.html")
    assert "--out" in result.output and len(result.output.splitlines()) == 1


def test_a_database_in_a_readonly_directory(built: Path, tmp_path: Path) -> None:
    """Read as an immutable snapshot (the store's read-only path), the report written elsewhere."""
    state = tmp_path / "state"
    state.mkdir()
    conn = sqlite3.connect(built)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    shutil.copy(built, state / "kretain.db")
    state.chmod(0o555)
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: a 0555 directory does not stop root")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    out = tmp_path / "report.html"
    try:
        result = subprocess.run(
            [*prefix, sys.executable, "-c", "from kretain.cli import cli; cli()",
             "--db", str(state / "kretain.db"), "report", "--out", str(out)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        state.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert "read-only" in result.stderr and "Traceback" not in result.stderr
    assert 'data-figure="headline.audited" data-value="16"' in out.read_text(encoding="utf-8")


def _bench():  # type: ignore[no-untyped-def]
    path = Path(__file__).resolve().parents[2] / "bench" / "report.py"
    spec = importlib.util.spec_from_file_location("bench_report", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ctrl_c_stops_the_report_and_writes_nothing(tmp_path: Path) -> None:
    """The flag Ctrl-C sets (query.sigint_stops_queries) stops the next long statement."""
    db = tmp_path / "bench.db"
    _bench().build(db, 30_000)  # its statements run long enough for the progress handler
    out = tmp_path / "report.html"
    options = {"policy": Policy.default(), "fallback_as_of": date(2026, 1, 1)}
    query._stop.set()
    try:
        with pytest.raises(ReportInterrupted) as stopped:
            asyncio.run(write_report(db, out, **options))
    finally:
        query._stop.clear()
    assert stopped.value.exit_code == 130
    assert str(stopped.value) == "report interrupted (Ctrl-C); nothing was written"
    assert not out.exists() and not list(tmp_path.glob(".report.html.*"))
    asyncio.run(write_report(db, out, **options))  # the flag cleared, the same report runs
    assert 'data-figure="headline.audited" data-value="30000"' in out.read_text("utf-8")

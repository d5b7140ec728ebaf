"""The command line end to end: real simulator over loopback, real SQLite, CliRunner."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from kretain.cli import cli
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator

SPEC = PartnerSpec(entries=800, seed=11, burst=30)
AS_OF = datetime.fromtimestamp(SPEC.now, UTC).date().isoformat()


def env_for(sim, secret: str | None = None) -> dict[str, str]:
    return {
        "KALTURA_SERVICE_URL": sim.url,
        "KALTURA_PARTNER_ID": str(sim.partner.spec.partner_id),
        "KALTURA_ADMIN_SECRET": secret or sim.partner.spec.admin_secret,
        "KRETAIN_AS_OF": AS_OF,
    }


def invoke(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, args, env=env or {}, catch_exceptions=False)


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """One audited database shared by the read-only report tests."""
    workdir = tmp_path_factory.mktemp("audited")
    with run_simulator(SPEC) as sim:
        db = workdir / "kretain.db"
        result = invoke(["--db", str(db), "run", "--no-progress"], env_for(sim))
        assert result.exit_code == 0, result.output
        yield sim, db, result


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for name, command in cli.commands.items():
        assert command.help and len(command.help) > 20, name
        assert f"kretain {name}" in readme, f"README does not mention `kretain {name}`"
        assert invoke([name, "--help"]).exit_code == 0


def test_init_writes_a_commented_toml_and_refuses_to_overwrite(tmp_path: Path) -> None:
    result = invoke(["init"])
    assert result.exit_code == 0
    text = (tmp_path / "kretain.toml").read_text()
    assert "[kaltura]" in text and "#" in text
    again = invoke(["init"])
    assert again.exit_code != 0 and "--force" in again.output


def test_run_reports_and_records_the_run(audited) -> None:
    sim, db, result = audited
    assert "run 1: ok" in result.output
    con = sqlite3.connect(db)
    states = dict(con.execute("select state, count(*) from entries group by state"))
    assert states.get("sized", 0) > 50, states
    assert "candidate" not in states  # everything the run could size was sized
    run = con.execute("select status, finished_at from runs where id = 1").fetchone()
    assert run[0] == "ok" and run[1] is not None


def test_status_summary_export_query(audited) -> None:
    sim, db, _ = audited
    status = invoke(["--db", str(db), "status"])
    assert status.exit_code == 0 and "sized" in status.output

    summary = invoke(["--db", str(db), "summary", "--format", "csv"])
    rows = {r["metric"]: r for r in csv.DictReader(io.StringIO(summary.output))}
    con = sqlite3.connect(db)
    in_policy = con.execute(
        "select count(*) from entries where state in ('candidate','sized','downloading',"
        "'archived','backup_failed','delete_failed','deleting','deleted','recycled','stripped')"
    ).fetchone()[0]
    assert int(rows["candidates"]["total"]) == in_policy

    export = invoke(["--db", str(db), "export", "--state", "sized"])
    exported = list(csv.DictReader(io.StringIO(export.output)))
    assert (
        len(exported)
        == con.execute("select count(*) from entries where state = 'sized'").fetchone()[0]
    )
    assert {"policy", "entry_id", "reason", "bytes_saved"} <= set(exported[0])

    owners = invoke(["--db", str(db), "export", "--owners", "--format", "json"])
    by_owner = json.loads(owners.output)
    assert sum(int(o["entries"]) for o in by_owner) == in_policy

    query = invoke(["--db", str(db), "query", "select count(*) as n from entries", "--json"])
    assert (
        json.loads(query.output)[0]["n"]
        == con.execute("select count(*) from entries").fetchone()[0]
    )
    refused = invoke(["--db", str(db), "query", "delete from entries"])
    assert refused.exit_code != 0


def test_second_run_redoes_no_sizing(audited) -> None:
    sim, db, _ = audited
    before = sim.stats.calls.get("flavorasset.list", 0)
    result = invoke(["--db", str(db), "run", "--no-progress"], env_for(sim))
    assert result.exit_code == 0, result.output
    assert sim.stats.calls.get("flavorasset.list", 0) == before


def test_wrong_secret_is_one_clear_line_and_touches_nothing(tmp_path: Path) -> None:
    with run_simulator(PartnerSpec(entries=50, seed=3)) as sim:
        secret = "definitely-wrong-secret-value"
        result = invoke(["run", "--no-progress"], env_for(sim, secret))
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kretain: "), result.output
    assert secret not in result.output
    assert not (tmp_path / "kretain.db").exists()


def test_missing_credentials_fail_before_any_work(tmp_path: Path) -> None:
    result = invoke(["run"], {"KALTURA_PARTNER_ID": "123"})
    assert result.exit_code != 0 and "kretain: " in result.output
    assert not (tmp_path / "kretain.db").exists()


def test_secrets_never_reach_db_logs_or_exports(tmp_path: Path) -> None:
    with run_simulator(PartnerSpec(entries=120, seed=5)) as sim:
        env = env_for(sim)
        result = invoke(["-v", "run", "--no-progress"], env)
        assert result.exit_code == 0, result.output
        export = invoke(["export", "--columns", "full"])
    secret = sim.partner.spec.admin_secret.encode()
    blobs = [result.output.encode(), export.output.encode()]
    blobs += [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert len(blobs) > 3
    for blob in blobs:
        assert secret not in blob
        # No KS either (they start with djJ8 = base64 "v2|").
        assert not re.search(rb"djJ8[A-Za-z0-9_-]{40,}", blob)


def test_retry_resets_exhausted_attempts_and_records_it(tmp_path: Path) -> None:
    import asyncio

    from kretain.store import open_store, transitions
    from kretain.store.models import entry_fields_from_wire
    from kretain.store.states import State

    db = tmp_path / "k.db"

    async def build() -> None:
        wire = {"id": "0_retry001", "status": 2, "createdAt": 1_500_000_000, "plays": 0}
        async with await open_store(db) as store:
            await transitions.admit(
                store,
                [transitions.Admission(entry_fields_from_wire(wire), State.CANDIDATE,
                                       "4-year", "delete_entry", "r")],
                run_id=None,
            )  # fmt: skip
            await transitions.move(store, "0_retry001", State.CANDIDATE, State.SIZED, run_id=1)
            eid, failed = "0_retry001", State.BACKUP_FAILED
            for n in range(5):
                await transitions.move(store, eid, [State.SIZED, failed], "downloading", run_id=1)
                await transitions.move(store, eid, "downloading", failed, run_id=1, error=f"e{n}")

    asyncio.run(build())
    result = invoke(["--db", str(db), "retry", "--stage", "backup"])
    assert result.exit_code == 0 and "backup" in result.output and "1" in result.output
    with sqlite3.connect(db) as con:
        assert con.execute("select backup_attempts from entries").fetchone() == (0,)
        assert con.execute(
            "select outcome, detail from events where kind = 'admin'"
        ).fetchall() == [("attempts_reset", "backup_attempts was 5")]
    again = invoke(["--db", str(db), "retry", "--stage", "backup", "--entry", "0_retry001"])
    assert again.exit_code == 0  # nothing left to reset


def test_kaltura_errors_are_one_line_and_the_client_loads_only_when_needed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import subprocess
    import sys

    import click

    from kretain.cli import _run_async
    from kretain.kaltura.errors import ApiError, ConnectionFailed

    for error, line in (
        (ApiError("INVALID_KS", "Invalid KS"), "Kaltura API error INVALID_KS: Invalid KS"),
        (ConnectionFailed("refused"), "cannot talk to Kaltura: refused"),
    ):

        async def fail(error: Exception = error) -> None:
            raise error

        with pytest.raises(click.exceptions.Exit) as exited:
            _run_async(fail())
        assert exited.value.exit_code == 7, line
        assert capsys.readouterr().err == f"kretain: {line}\n"

    async def other() -> None:
        raise ValueError("not Kaltura's")

    with pytest.raises(ValueError):
        _run_async(other())
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, kretain.cli; print('aiohttp' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "False"  # status, summary, report ... start faster

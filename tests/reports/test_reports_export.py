"""export_entries / export_owners: seed columns, CSV round trip of hostile names, streaming."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
import time
import tracemalloc
from decimal import Decimal
from pathlib import Path

import pytest
from reporthelpers import HOSTILE_NAME, HOSTILE_OWNER, SPECS, created_at

from kretain.output import render, render_to_string
from kretain.reports import (
    ALL_STATES,
    SEED_COLUMNS,
    ReportError,
    export_entries,
    export_owners,
)
from kretain.store import Store, open_store, transitions
from kretain.store.models import entry_fields_from_wire
from kretain.store.states import Action, State

IN_POLICY = {
    "candidate", "sized", "downloading", "archived", "backup_failed", "delete_failed",
    "deleting", "deleted", "recycled", "stripped",
}  # fmt: skip


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


async def test_seed_columns_and_values(ro_store: Store) -> None:
    table = await export_entries(ro_store)
    assert table.headers == list(SEED_COLUMNS)
    assert table.headers == [
        "policy",
        "entry_id",
        "entry_name",
        "media_type",
        "created_on",
        "last_updated",
        "duration_seconds",
        "plays",
        "status",
        "owner",
        "lastPlayedAt",
        "reason",
        "number_of_flavors",
        "bytes_saved",
    ]
    rows = {r["entry_id"]: r for r in parse_csv(render_to_string(table, "csv"))}
    expected = {s.id: s for s in SPECS if s.state in IN_POLICY}
    assert set(rows) == set(expected)
    for entry_id, spec in expected.items():
        row = rows[entry_id]
        assert row["policy"] == spec.policy
        assert row["created_on"] == iso(created_at(spec))
        assert row["last_updated"] == iso(created_at(spec) + 500)
        assert row["lastPlayedAt"] == (
            "" if spec.last_played_at is None else iso(spec.last_played_at)
        )
        assert row["duration_seconds"] == str(spec.duration)
        assert row["plays"] == ("" if spec.plays is None else str(spec.plays))
        assert row["owner"] == (spec.owner or "")
        assert row["bytes_saved"] == ("" if spec.bytes_saved is None else str(spec.bytes_saved))
        flavors = "" if spec.flavors is None else str(len(spec.flavors))
        assert row["number_of_flavors"] == flavors
    assert rows["0_rep00004"]["media_type"] == "YouTube"
    assert rows["0_rep00005"]["media_type"] == "Quiz"
    assert rows["0_rep00006"]["media_type"] == "YouTube Quiz"
    assert rows["0_rep00002"]["media_type"] == "Audio"
    assert rows["0_rep00003"]["media_type"] == "Image"
    assert rows["0_rep00001"]["status"] == "READY"
    assert rows["0_rep00010"]["status"] == "ERROR_CONVERTING"
    assert rows["0_rep00011"]["status"] == "NO_CONTENT"
    # ordered by policy, then creation
    ids = [r[1] for r in (await export_entries(ro_store)).rows]
    want = sorted(expected.values(), key=lambda s: (s.policy, created_at(s)))
    assert ids == [s.id for s in want]


async def test_csv_round_trips_hostile_names(ro_store: Store, built: Path) -> None:
    text = render_to_string(await export_entries(ro_store), "csv", raw_csv=True)
    rows = {r["entry_id"]: r for r in parse_csv(text)}
    assert rows["0_rep00005"]["entry_name"] == HOSTILE_NAME
    # By default the same name reaches a spreadsheet as text, not as a formula.
    escaped = parse_csv(render_to_string(await export_entries(ro_store), "csv"))
    assert {r["entry_id"]: r["entry_name"] for r in escaped}["0_rep00005"] == "'" + HOSTILE_NAME
    assert rows["0_rep00005"]["owner"] == HOSTILE_OWNER
    with sqlite3.connect(built) as conn:
        names = dict(conn.execute("SELECT id, name FROM entries"))
    assert all(rows[i]["entry_name"] == names[i] for i in rows)
    owners = {
        r["owner"]: r for r in parse_csv(render_to_string(await export_owners(ro_store), "csv"))
    }
    assert owners[HOSTILE_OWNER]["entry_ids"] == "0_rep00005"


async def test_table_format_prints_no_control_characters(ro_store: Store) -> None:
    for table in (await export_entries(ro_store), await export_owners(ro_store)):
        text = render_to_string(table, "table")
        assert not [c for c in text if ord(c) < 32 and c != "\n"], table.title
        assert "\x1b" not in text


async def test_full_columns(ro_store: Store, built: Path) -> None:
    table = await export_entries(ro_store, columns="full", states=ALL_STATES)
    with sqlite3.connect(built) as conn:
        schema = [r[1] for r in conn.execute("PRAGMA table_info(entries)")]
        raw = conn.execute("SELECT raw FROM entries WHERE id = '0_rep00001'").fetchone()[0]
    assert table.headers == [c for c in schema if c != "raw"]
    for needed in ("state", "action", "bytes_total", "exempt_by", "last_error"):
        assert needed in table.headers
    rows = {r["id"]: r for r in parse_csv(render_to_string(table, "csv"))}
    assert len(rows) == len(SPECS)
    assert rows["0_rep00014"]["exempt_by"] == "tag:legal"
    assert rows["0_rep00014"]["state"] == "exempt"
    assert rows["0_rep00005"]["last_error"] == "ACTION_BLOCKED: too many deletes"
    assert rows["0_rep00001"]["bytes_total"] == "6000"
    assert rows["0_rep00001"]["created_at"] == iso(created_at(SPECS[0]))
    assert rows["0_rep00001"]["action"] == "delete_flavors"
    assert raw not in render_to_string(
        await export_entries(ro_store, columns="full", states=ALL_STATES), "csv"
    )


async def test_filters(ro_store: Store) -> None:
    table = await export_entries(ro_store, policies=["4-year"], states=["deleted", "archived"])
    assert [r[1] for r in table.rows] == ["0_rep00006", "0_rep00009"]
    table = await export_entries(ro_store, states="kept")
    assert [r[1] for r in table.rows] == ["0_rep00013"]
    with pytest.raises(ReportError, match="unknown state"):
        await export_entries(ro_store, states=["nope"])
    with pytest.raises(ReportError, match="column set"):
        await export_entries(ro_store, columns="wide")  # type: ignore[arg-type]


async def test_owners_grouping(ro_store: Store) -> None:
    table = await export_owners(ro_store)
    assert table.headers == [
        "owner",
        "entries",
        "hours",
        "bytes_saved",
        "human",
        "policies",
        "entry_ids",
    ]
    rows = {r[0]: r for r in table.rows}
    in_policy = [s for s in SPECS if s.state in IN_POLICY]
    assert set(rows) == {s.owner or "" for s in in_policy}
    for owner, row in rows.items():
        mine = sorted((s for s in in_policy if (s.owner or "") == owner), key=created_at)
        seconds = sum(s.duration for s in mine if s.media_type != 2)
        assert row[1] == len(mine)
        assert row[2] == (Decimal(seconds) / 3600).quantize(Decimal("0.01"))
        assert row[3] == sum(s.bytes_saved or 0 for s in mine)
        assert row[5] == "; ".join(sorted({s.policy for s in mine}))
        assert row[6] == " ".join(s.id for s in mine)
    # by hand: alice's kept entry 13 is not in the notice; her 2-year and 4-year ones are
    assert rows["alice"][1:3] == [3, Decimal("1.78")]
    assert rows["alice"][5] == "2-year; 4-year"
    assert rows["alice"][6] == "0_rep00001 0_rep00002 0_rep00009"
    assert rows["alice"][4] == "3.0 TiB"
    assert next(iter(rows)) == ""  # entries without an owner come first, as one row


async def test_owners_pending_only(ro_store: Store) -> None:
    from kretain.reports import PENDING_STATES

    rows = {r[0]: r for r in (await export_owners(ro_store, states=PENDING_STATES)).rows}
    assert rows["alice"][6] == "0_rep00001"  # 2 and 9 are deleted already


async def _many(db_path: Path, n: int) -> None:
    store = await open_store(db_path)
    try:
        batch = []
        for i in range(n):
            obj = {
                "id": f"1_big{i:07d}",
                "name": f"Recording {i} " + "x" * 200,
                "userId": f"user{i % 1000}",
                "type": 1,
                "mediaType": 1,
                "status": 2,
                "createdAt": 1_400_000_000 + i,
                "plays": 0,
                "duration": 60,
            }
            batch.append(
                transitions.Admission(
                    fields=entry_fields_from_wire(obj),
                    state=State.CANDIDATE,
                    policy="4-year",
                    action=Action.DELETE_ENTRY,
                    reason="4-year rule",
                )
            )
        await transitions.admit(store, batch, run_id=None)
    finally:
        await store.close()


async def test_export_streams_rows(db_path: Path) -> None:
    n = 10_000
    await _many(db_path, n)
    store = await open_store(db_path, readonly=True)
    try:
        tracemalloc.start()
        table = await export_entries(store)
        assert iter(table.rows) is table.rows  # an iterator, not a list
        count = 0
        for _ in table.rows:
            count += 1
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert count == n
        # Holding 10k rows of ~300 bytes of text takes about 8 MB.
        assert peak < 2_000_000, peak
    finally:
        await store.close()


async def test_export_while_a_writer_holds_a_transaction(built: Path) -> None:
    writer = await open_store(built)  # takes the kretain lock, like `kretain run`
    reader = await open_store(built, readonly=True)
    try:
        async with writer.transaction() as conn:
            await conn.execute("UPDATE entries SET name = 'uncommitted' WHERE id = '0_rep00001'")
            started = time.monotonic()
            table = await asyncio.wait_for(export_entries(reader), timeout=5)
            out = io.StringIO()
            render(table, "csv", out)
            assert time.monotonic() - started < 3
        rows = {r["entry_id"]: r for r in parse_csv(out.getvalue())}
        assert rows["0_rep00001"]["entry_name"] == "Lecture 1"  # the committed snapshot
    finally:
        await reader.close()
        await writer.close()

"""run_query: reads work (also during a write transaction); anything else is refused."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from pathlib import Path

import pytest

from kretain.output import render_to_string
from kretain.reports import QueryError, ReadOnlyQueryError, ReportError, run_query
from kretain.store import open_store


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def count_entries(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM entries").fetchone()[0]


async def test_select_with_params(built: Path) -> None:
    table = await run_query(
        built, "SELECT id, owner FROM entries WHERE owner = ? ORDER BY id", ["bob"]
    )
    assert table.headers == ["id", "owner"]
    assert list(table.rows) == [("0_rep00003", "bob"), ("0_rep00004", "bob"), ("0_rep00014", "bob")]
    named = await run_query(
        built, "SELECT count(*) AS n FROM entries WHERE state = :s", {"s": "deleted"}
    )
    assert list(named.rows) == [(2,)]


@pytest.mark.parametrize(
    "sql",
    [
        "-- a comment first\nSELECT count(*) FROM entries",
        "/* block */ WITH x AS (SELECT 1 AS a) SELECT a FROM x",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3) "
        "SELECT count(*) FROM c",
        "VALUES (1), (2)",
        "EXPLAIN QUERY PLAN SELECT * FROM entries WHERE state = 'sized'",
        "PRAGMA user_version",
        "PRAGMA table_info(entries)",
        "SELECT name FROM pragma_table_info('entries') LIMIT 1",
        "SELECT value FROM json_each('[1, 2]')",
        "select * from v_state_summary",
        "SELECT 1;",
    ],
)
async def test_reads_are_allowed(built: Path, sql: str) -> None:
    table = await run_query(built, sql)
    assert list(table.rows)


@pytest.mark.parametrize(
    ("sql", "refused"),
    [
        ("INSERT INTO meta (key, value) VALUES ('x', 'y')", "INSERT"),
        ("UPDATE entries SET name = 'x'", "UPDATE"),
        ("DELETE FROM entries", "DELETE"),
        ("REPLACE INTO meta (key, value) VALUES ('x', 'y')", "REPLACE"),
        ("DROP TABLE entries", "DROP"),
        ("CREATE TABLE t (a)", "CREATE"),
        ("CREATE TEMP TABLE t (a)", "CREATE"),
        ("ALTER TABLE entries ADD COLUMN x", "ALTER"),
        ("ATTACH DATABASE 'other.db' AS other", "ATTACH"),
        ("DETACH DATABASE main", "DETACH"),
        ("VACUUM", "VACUUM"),
        ("VACUUM INTO 'copy.db'", "VACUUM"),
        ("BEGIN", "BEGIN"),
        ("REINDEX", "REINDEX"),
        ("ANALYZE", "ANALYZE"),
        ("PRAGMA writable_schema = 1", "writable_schema"),
        ("PRAGMA query_only = 0", "query_only"),
        ("PRAGMA journal_mode = DELETE", "journal_mode"),
        ("PRAGMA user_version = 99", "user_version"),
        ("PRAGMA wal_checkpoint(TRUNCATE)", "wal_checkpoint"),
        ("WITH x AS (SELECT 1) INSERT INTO meta (key, value) SELECT 'k', 'v' FROM x", "INSERT"),
        ("WITH x AS (SELECT 1) DELETE FROM entries", "DELETE"),
        ("", "empty"),
    ],
)
async def test_writes_are_refused(built: Path, tmp_path: Path, sql: str, refused: str) -> None:
    before, entries = digest(built), count_entries(built)
    with pytest.raises(ReadOnlyQueryError, match="only reads") as info:
        table = await run_query(built, sql)
        list(table.rows)
    assert refused.lower() in str(info.value).lower()
    assert digest(built) == before
    assert count_entries(built) == entries
    assert not (tmp_path / "copy.db").exists()
    assert not (tmp_path / "other.db").exists()


async def test_errors_are_one_clear_line(built: Path, tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="one statement"):
        await run_query(built, "SELECT 1; DELETE FROM entries")
    assert count_entries(built) == 16
    with pytest.raises(QueryError, match="no such table"):
        await run_query(built, "SELECT * FROM nope")
    with pytest.raises(QueryError, match="syntax error"):
        await run_query(built, "SELECT FROM WHERE")
    with pytest.raises(QueryError, match="bindings"):
        await run_query(built, "SELECT ?", [])
    with pytest.raises(ReportError, match="no database"):
        await run_query(tmp_path / "missing.db", "SELECT 1")
    assert not (tmp_path / "missing.db").exists()


async def test_query_while_a_writer_holds_a_transaction(built: Path) -> None:
    with sqlite3.connect(built) as plain:
        flavors = plain.execute("SELECT count(*) FROM assets WHERE kind = 'flavor'").fetchone()[0]
    assert flavors > 0
    writer = await open_store(built)  # holds the kretain lock, like `kretain run`
    try:
        async with writer.transaction() as conn:
            await conn.execute("DELETE FROM assets")
            await conn.execute("UPDATE entries SET state_changed_at = 0")
            started = time.monotonic()
            table = await asyncio.wait_for(
                run_query(built, "SELECT count(*) FROM assets WHERE kind = 'flavor'"), timeout=5
            )
            rows = list(table.rows)
            assert time.monotonic() - started < 3
            assert rows == [(flavors,)]  # the committed state, not the pending delete
    finally:
        await writer.close()


async def test_rendered_query_output(built: Path) -> None:
    table = await run_query(built, "SELECT name FROM entries WHERE id = '0_rep00005'")
    text = render_to_string(table, "table")
    assert "\x1b" not in text and "\r" not in text

"""Migrations: schema.sql == the migration chain; old databases migrate; newer ones refuse."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from kretain.errors import SchemaVersionError
from kretain.store import migrations, open_store
from kretain.store.migrations import SCHEMA_VERSION, migrate, schema_sql, split_sql

REPO = Path(__file__).resolve().parents[2]


def schema_of(path: Path) -> dict[str, object]:
    """Everything that defines a schema, normalised so two routes can be compared."""
    conn = sqlite3.connect(path)
    try:
        out: dict[str, object] = {}
        objects = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ).fetchall()
        for kind, name, table, sql in objects:
            if kind == "table":
                out[f"table {name}"] = conn.execute(f"PRAGMA table_xinfo({name})").fetchall()
                out[f"fks {name}"] = conn.execute(f"PRAGMA foreign_key_list({name})").fetchall()
            elif kind == "index":
                cols = conn.execute(f"PRAGMA index_xinfo({name})").fetchall()
                unique = [r for r in conn.execute(f"PRAGMA index_list({table})") if r[1] == name]
                partial = " WHERE " in (sql or "").upper()
                out[f"index {name}"] = (table, cols, unique[0][2], partial)
            else:  # views and triggers: compare their SQL, whitespace-normalised
                out[f"{kind} {name}"] = " ".join((sql or "").split())
        out["user_version"] = conn.execute("PRAGMA user_version").fetchone()[0]
        return out
    finally:
        conn.close()


async def test_schema_sql_equals_migration_chain(tmp_path: Path) -> None:
    fresh, chained = tmp_path / "fresh.db", tmp_path / "chain.db"
    async with aiosqlite.connect(fresh, isolation_level=None) as conn:
        assert await migrate(conn) == SCHEMA_VERSION  # blank -> schema.sql
    async with aiosqlite.connect(chained, isolation_level=None) as conn:
        assert await migrate(conn, target=1) == 1  # forces the step-by-step route
        assert await migrate(conn) == SCHEMA_VERSION
    a, b = schema_of(fresh), schema_of(chained)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key], key
    assert a["user_version"] == SCHEMA_VERSION == len(migrations.MIGRATIONS)


def test_top_level_schema_is_a_copy_of_the_packaged_one() -> None:
    packaged = (REPO / "kretain" / "schema.sql").read_text(encoding="utf-8")
    assert (REPO / "schema.sql").read_text(encoding="utf-8") == packaged
    assert schema_sql() == packaged


def test_split_sql_keeps_triggers_whole() -> None:
    statements = split_sql(schema_sql())
    triggers = [s for s in statements if s.startswith("CREATE TRIGGER")]
    assert len(triggers) == 2
    assert all(t.rstrip(";").endswith("END") for t in triggers)


async def test_old_version_database_migrates_and_keeps_rows(db_path: Path) -> None:
    async with aiosqlite.connect(db_path, isolation_level=None) as conn:
        await migrate(conn, target=1)
        await conn.execute(
            "INSERT INTO entries (id, created_at, state, state_changed_at, discovered_at, status)"
            " VALUES ('0_old00001', 1500000000, 'kept', 1, 1, '2')"
        )
        cols = [r[1] async for r in await conn.execute("PRAGMA table_info(entries)")]
        assert "exempt_by" not in cols
    store = await open_store(db_path)
    try:
        assert await migrations.schema_version(store.conn) == SCHEMA_VERSION
        row = await store.fetchone("SELECT state, exempt_by, gone_at FROM entries")
        assert tuple(row) == ("kept", None, None)
        assert tuple(await store.fetchone("SELECT count(*) FROM discovery_windows")) == (0,)
    finally:
        await store.close()


async def test_v3_assets_survive_keying_by_entry(db_path: Path) -> None:
    async with aiosqlite.connect(db_path, isolation_level=None) as conn:
        await migrate(conn, target=3)
        await conn.execute(
            "INSERT INTO entries (id, created_at, state, state_changed_at, discovered_at)"
            " VALUES ('0_old00001', 1500000000, 'archived', 1, 1)"
        )
        await conn.execute(
            "INSERT INTO assets (id, entry_id, kind, is_source, size_bytes, archive_path,"
            " bytes_done, sha256, backup_state, raw)"
            " VALUES ('0_src00001', '0_old00001', 'flavor', 1, 4096, 'p/0_old00001/s.mp4',"
            " 4096, 'ab12', 'verified', '{}')"
        )
    store = await open_store(db_path)
    try:
        rows = await store.fetchall("SELECT * FROM assets")
        assert [dict(r) for r in rows] == [
            {
                "id": "0_src00001", "entry_id": "0_old00001", "owner_entry_id": None,
                "kind": "flavor", "is_source": 1, "flavor_params_id": None, "status": None,
                "size_bytes": 4096, "file_ext": None, "language": None, "tags": None,
                "raw": "{}", "archive_path": "p/0_old00001/s.mp4", "bytes_done": 4096,
                "sha256": "ab12", "verified_at": None, "backup_state": "verified",
                "store_checksum": None, "removed_at": None,
            }
        ]  # fmt: skip
        plan = await store.fetchall(
            "EXPLAIN QUERY PLAN SELECT * FROM assets WHERE entry_id = ?", ("x",)
        )
        assert "assets_key" in " ".join(str(r[-1]) for r in plan)
    finally:
        await store.close()


async def test_v4_failed_rows_become_backup_failed_and_nothing_cascades(db_path: Path) -> None:
    async with aiosqlite.connect(db_path, isolation_level=None) as conn:
        await conn.execute("PRAGMA foreign_keys = ON")  # as open_store has it
        await migrate(conn, target=4)
        await conn.executescript(
            "INSERT INTO entries (id, created_at, state, state_changed_at, discovered_at,"
            " action, attempts, last_error, lease_owner, lease_from_state)"
            " VALUES ('0_fail0001', 1500000000, 'failed', 1, 1, 'delete_entry', 3, 'HTTP 500',"
            " NULL, NULL),"
            " ('0_lease001', 1500000000, 'downloading', 1, 1, 'delete_entry', 0, NULL, 7,"
            " 'failed'),"
            " ('0_err00001', 1500000000, 'error', 1, 1, 'delete_flavors', 2, 'timeout', NULL,"
            " NULL);"
            "INSERT INTO assets (id, entry_id, kind, size_bytes)"
            " VALUES ('0_src00001', '0_fail0001', 'flavor', 10);"
            "INSERT INTO events (time, entry_id, kind, outcome) VALUES (1, '0_fail0001', 'state',"
            " 'moved');"
        )
        assert await migrate(conn) == SCHEMA_VERSION
        rows = await (
            await conn.execute(
                "SELECT id, state, attempts, backup_attempts, delete_attempts, last_error,"
                " lease_from_state FROM entries ORDER BY id"
            )
        ).fetchall()
        assert [tuple(r) for r in rows] == [
            ("0_err00001", "error", 2, 0, 0, "timeout", None),
            ("0_fail0001", "backup_failed", 0, 3, 0, "HTTP 500", None),
            ("0_lease001", "downloading", 0, 0, 0, None, "backup_failed"),
        ]
        # Rebuilding entries must not have cascaded into assets, and history is intact.
        assert (await (await conn.execute("SELECT count(*) FROM assets")).fetchone())[0] == 1
        assert (await (await conn.execute("SELECT count(*) FROM events")).fetchone())[0] == 1
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            await conn.execute("DELETE FROM events")
        assert (await (await conn.execute("PRAGMA foreign_keys")).fetchone())[0] == 1


async def test_newer_database_is_refused(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaVersionError, match="newer than this kretain"):
        await open_store(db_path)
    with pytest.raises(SchemaVersionError):
        await open_store(db_path, readonly=True)


async def test_failed_migration_rolls_back_with_its_version(db_path: Path) -> None:
    async with aiosqlite.connect(db_path, isolation_level=None) as conn:
        await migrate(conn, target=1)

        async def broken(c: aiosqlite.Connection) -> None:
            await c.execute("CREATE TABLE half_done (x)")
            raise RuntimeError("boom")

        migrations.MIGRATIONS.append(broken)
        try:
            with pytest.raises(RuntimeError):
                await migrate(conn, target=len(migrations.MIGRATIONS))
        finally:
            migrations.MIGRATIONS.pop()
        # The real migrations committed one by one; the broken step left nothing behind.
        assert await migrations.schema_version(conn) == SCHEMA_VERSION
        names = [r[0] async for r in await conn.execute("SELECT name FROM sqlite_master")]
        assert "half_done" not in names

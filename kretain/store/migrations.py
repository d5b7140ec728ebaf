"""Schema migrations, tracked by ``PRAGMA user_version``.

Functions:
    migrate(conn) -> int            bring an open (write) connection to SCHEMA_VERSION
    schema_version(conn) -> int     the database's user_version
    check_opening(conn) -> int      refuse a database kretain did not create; its user_version
    opening_problem(version, tables, *, readonly) -> str | None   the same check, pure
    schema_sql() -> str             the packaged kretain/schema.sql (the full current schema)
    split_sql(script) -> list[str]  split a script into complete statements

A blank database is created from schema.sql in one transaction. A database at version N < latest
runs migrations N+1..latest in order, each in ONE transaction with its user_version bump, so a
SIGKILL mid-migration leaves the previous version intact. A migration's position in MIGRATIONS is
its version: append new ones, never reorder or edit shipped ones, and update schema.sql to match
(tests/store/test_migrations.py compares the two).

Before migrating, the database must be kretain's: blank (user_version 0, no tables) or at a
version >= 1 with kretain's core tables. user_version 0 with tables, or a known version without
those tables, is another application's SQLite file, and kretain never adds its schema to it. A
version newer than this code is "newer" (SchemaVersionError) unless none of its tables is ours.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Collection
from importlib import resources

import aiosqlite

from kretain.errors import SchemaVersionError, StoreError

__all__ = [
    "KRETAIN_TABLES",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "check_opening",
    "migrate",
    "opening_problem",
    "schema_sql",
    "schema_version",
    "split_sql",
]

Migration = Callable[[aiosqlite.Connection], Awaitable[None]]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration; its 1-based position is its version."""
    MIGRATIONS.append(fn)
    return fn


def split_sql(script: str) -> list[str]:
    """Split ``script`` into complete statements (triggers keep their inner semicolons)."""
    statements: list[str] = []
    current = ""
    for piece in script.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            text = "\n".join(
                line for line in current.splitlines() if not line.strip().startswith("--")
            ).strip()
            if text and text != ";":
                statements.append(text)
            current = ""
    if current.strip(" \n;"):
        statements.append(current.rstrip(";"))
    return statements


async def _run_script(conn: aiosqlite.Connection, script: str) -> None:
    for statement in split_sql(script):
        await conn.execute(statement)


@migration
async def m001_initial(conn: aiosqlite.Connection) -> None:
    """Entries, assets, append-only events, runs, meta and the summary view."""
    await _run_script(
        conn,
        """
        CREATE TABLE entries (
            id TEXT PRIMARY KEY, partner_id INTEGER, name TEXT, owner TEXT, creator_id TEXT,
            media_type INTEGER, entry_type TEXT, source_type TEXT, external_source_type TEXT,
            status TEXT, created_at INTEGER NOT NULL, updated_at INTEGER, last_played_at INTEGER,
            plays INTEGER, duration INTEGER, parent_id TEXT, root_entry_id TEXT,
            capabilities TEXT, categories TEXT, categories_ids TEXT, tags TEXT,
            display_in_search INTEGER, raw TEXT,
            is_quiz INTEGER NOT NULL DEFAULT 0, is_external INTEGER NOT NULL DEFAULT 0,
            policy TEXT, action TEXT CHECK (action IN ('delete_entry', 'delete_flavors')),
            reason TEXT,
            state TEXT NOT NULL CHECK (state IN ('candidate', 'sized', 'downloading',
                'archived', 'deleting', 'deleted', 'exempt', 'kept', 'error', 'failed', 'gone')),
            state_changed_at INTEGER NOT NULL, discovered_at INTEGER NOT NULL,
            sized_at INTEGER, archived_at INTEGER, deleted_at INTEGER,
            attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
            lease_owner INTEGER, lease_expires_at INTEGER, lease_from_state TEXT,
            bytes_total INTEGER, bytes_saved INTEGER, asset_count INTEGER,
            last_seen_run INTEGER, refreshed_at INTEGER
        );
        CREATE INDEX entries_state ON entries (state, action);
        CREATE INDEX entries_policy ON entries (policy);
        CREATE INDEX entries_owner ON entries (owner);
        CREATE INDEX entries_lease ON entries (lease_expires_at) WHERE lease_owner IS NOT NULL;
        CREATE TABLE assets (
            id TEXT PRIMARY KEY,
            entry_id TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
            owner_entry_id TEXT,
            kind TEXT NOT NULL CHECK (kind IN ('flavor', 'caption', 'attachment', 'thumb')),
            is_source INTEGER NOT NULL DEFAULT 0, flavor_params_id INTEGER, status TEXT,
            size_bytes INTEGER NOT NULL DEFAULT 0, file_ext TEXT, language TEXT, tags TEXT,
            raw TEXT, archive_path TEXT, bytes_done INTEGER NOT NULL DEFAULT 0, sha256 TEXT,
            verified_at INTEGER,
            backup_state TEXT NOT NULL DEFAULT 'pending' CHECK (backup_state IN ('pending',
                'partial', 'done', 'verified', 'failed', 'skipped'))
        );
        CREATE INDEX assets_entry ON assets (entry_id);
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, run_id INTEGER,
            entry_id TEXT, asset_id TEXT, kind TEXT NOT NULL CHECK (kind IN ('state', 'api')),
            from_state TEXT, to_state TEXT, action TEXT, outcome TEXT, detail TEXT
        );
        CREATE INDEX events_entry ON events (entry_id);
        CREATE INDEX events_run ON events (run_id);
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN
            SELECT RAISE(ABORT, 'events are append-only');
        END;
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN
            SELECT RAISE(ABORT, 'events are append-only');
        END;
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT, started_at INTEGER NOT NULL,
            finished_at INTEGER, command TEXT NOT NULL, args TEXT,
            status TEXT NOT NULL DEFAULT 'running', counts TEXT, pid INTEGER, as_of TEXT
        );
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
        CREATE VIEW v_state_summary AS
        SELECT state, policy, action, count(*) AS entries,
               coalesce(sum(bytes_saved), 0) AS bytes_saved,
               coalesce(sum(bytes_total), 0) AS bytes_total
        FROM entries
        GROUP BY state, policy, action;
        """,
    )


@migration
async def m002_discovery_and_exemptions(conn: aiosqlite.Connection) -> None:
    """Resumable discovery windows; gone/exemption/delete-mode columns on entries."""
    await _run_script(
        conn,
        """
        ALTER TABLE entries ADD COLUMN gone_at INTEGER;
        ALTER TABLE entries ADD COLUMN exempt_by TEXT;
        ALTER TABLE entries ADD COLUMN delete_mode TEXT
            CHECK (delete_mode IN ('delete', 'recycle'));
        CREATE TABLE discovery_windows (
            id INTEGER PRIMARY KEY AUTOINCREMENT, generation INTEGER NOT NULL,
            scope TEXT NOT NULL DEFAULT 'default', lo INTEGER NOT NULL, hi INTEGER NOT NULL,
            split_field TEXT NOT NULL DEFAULT 'createdAt', cursor_created_at INTEGER,
            seen_ids_at_cursor TEXT NOT NULL DEFAULT '[]', total_count INTEGER,
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'done', 'failed')),
            pages INTEGER NOT NULL DEFAULT 0, updated_at INTEGER
        );
        CREATE UNIQUE INDEX discovery_windows_key
            ON discovery_windows (generation, scope, lo, hi);
        """,
    )


@migration
async def m003_claim_indexes(conn: aiosqlite.Connection) -> None:
    """Index claims by (state[, action]) in createdAt order, so a claim never sorts the table."""
    await _run_script(
        conn,
        """
        DROP INDEX entries_state;
        CREATE INDEX entries_state ON entries (state, action, created_at, id);
        CREATE INDEX entries_claim ON entries (state, created_at, id);
        """,
    )


@migration
async def m004_assets_keyed_by_entry(conn: aiosqlite.Connection) -> None:
    """Key assets by (entry_id, id): one compact unique index instead of the id primary key
    and the entry_id index, so sizing updates two B-trees per asset, not three."""
    cols = (
        "id, entry_id, owner_entry_id, kind, is_source, flavor_params_id, status, size_bytes, "
        "file_ext, language, tags, raw, archive_path, bytes_done, sha256, verified_at, "
        "backup_state"
    )
    await _run_script(
        conn,
        f"""
        CREATE TABLE assets_v4 (
            id TEXT NOT NULL,
            entry_id TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
            owner_entry_id TEXT,
            kind TEXT NOT NULL CHECK (kind IN ('flavor', 'caption', 'attachment', 'thumb')),
            is_source INTEGER NOT NULL DEFAULT 0, flavor_params_id INTEGER, status TEXT,
            size_bytes INTEGER NOT NULL DEFAULT 0, file_ext TEXT, language TEXT, tags TEXT,
            raw TEXT, archive_path TEXT, bytes_done INTEGER NOT NULL DEFAULT 0, sha256 TEXT,
            verified_at INTEGER,
            backup_state TEXT NOT NULL DEFAULT 'pending' CHECK (backup_state IN ('pending',
                'partial', 'done', 'verified', 'failed', 'skipped'))
        );
        INSERT INTO assets_v4 ({cols}) SELECT {cols} FROM assets ORDER BY rowid;
        DROP TABLE assets;
        ALTER TABLE assets_v4 RENAME TO assets;
        CREATE UNIQUE INDEX assets_key ON assets (entry_id, id);
        """,
    )


_V5_ENTRIES = """
CREATE TABLE entries_v5 (
    id TEXT PRIMARY KEY, partner_id INTEGER, name TEXT, owner TEXT, creator_id TEXT,
    media_type INTEGER, entry_type TEXT, source_type TEXT, external_source_type TEXT,
    status TEXT, created_at INTEGER NOT NULL, updated_at INTEGER, last_played_at INTEGER,
    plays INTEGER, duration INTEGER, parent_id TEXT, root_entry_id TEXT, capabilities TEXT,
    categories TEXT, categories_ids TEXT, tags TEXT, display_in_search INTEGER, raw TEXT,
    is_quiz INTEGER NOT NULL DEFAULT 0, is_external INTEGER NOT NULL DEFAULT 0,
    policy TEXT, action TEXT CHECK (action IN ('delete_entry', 'delete_flavors')),
    reason TEXT,
    state TEXT NOT NULL CHECK (state IN ('candidate', 'sized', 'downloading', 'archived',
        'deleting', 'deleted', 'recycled', 'stripped', 'restoring', 'restored', 'exempt',
        'kept', 'error', 'backup_failed', 'delete_failed', 'gone')),
    state_changed_at INTEGER NOT NULL, discovered_at INTEGER NOT NULL,
    sized_at INTEGER, archived_at INTEGER, deleted_at INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    backup_attempts INTEGER NOT NULL DEFAULT 0,
    delete_attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT, lease_owner INTEGER, lease_expires_at INTEGER, lease_from_state TEXT,
    bytes_total INTEGER, bytes_saved INTEGER, asset_count INTEGER, last_seen_run INTEGER,
    refreshed_at INTEGER, gone_at INTEGER, exempt_by TEXT,
    delete_mode TEXT CHECK (delete_mode IN ('delete', 'recycle')),
    archive_uri TEXT, recycled_at INTEGER, purge_at INTEGER, stripped_at INTEGER,
    bytes_freed INTEGER, held_reason TEXT, held_at INTEGER, notified_at INTEGER,
    restored_at INTEGER, new_entry_id TEXT
)
"""
_V4_ENTRY_COLUMNS = (
    "id, partner_id, name, owner, creator_id, media_type, entry_type, source_type, "
    "external_source_type, status, created_at, updated_at, last_played_at, plays, duration, "
    "parent_id, root_entry_id, capabilities, categories, categories_ids, tags, "
    "display_in_search, raw, is_quiz, is_external, policy, action, reason, state, "
    "state_changed_at, discovered_at, sized_at, archived_at, deleted_at, attempts, last_error, "
    "lease_owner, lease_expires_at, lease_from_state, bytes_total, bytes_saved, asset_count, "
    "last_seen_run, refreshed_at, gone_at, exempt_by, delete_mode"
)


@migration
async def m005_stage_failures_and_delete(conn: aiosqlite.Connection) -> None:
    """Failures per stage (backup_failed / delete_failed, each with its own attempts), the
    delete and restore states and columns, and more event kinds. Changing a CHECK means
    rebuilding entries and events; migrate() runs every step with foreign keys off, so
    dropping the old entries table cannot cascade into assets."""
    # Every `failed` row so far is a failed backup: only the backup stage wrote that state.
    select = _V4_ENTRY_COLUMNS.replace(
        " state, ", " CASE state WHEN 'failed' THEN 'backup_failed' ELSE state END, "
    ).replace(
        " lease_from_state, ",
        " CASE lease_from_state WHEN 'failed' THEN 'backup_failed' ELSE lease_from_state END, ",
    )
    await _run_script(
        conn,
        f"""
        DROP VIEW v_state_summary;
        {_V5_ENTRIES};
        INSERT INTO entries_v5 ({_V4_ENTRY_COLUMNS}, backup_attempts)
            SELECT {select}, CASE state WHEN 'failed' THEN attempts ELSE 0 END
            FROM entries ORDER BY rowid;
        UPDATE entries_v5 SET attempts = 0 WHERE state = 'backup_failed';
        DROP TABLE entries;
        ALTER TABLE entries_v5 RENAME TO entries;
        CREATE INDEX entries_state ON entries (state, action, created_at, id);
        CREATE INDEX entries_claim ON entries (state, created_at, id);
        CREATE INDEX entries_policy ON entries (policy);
        CREATE INDEX entries_owner ON entries (owner);
        CREATE INDEX entries_lease ON entries (lease_expires_at) WHERE lease_owner IS NOT NULL;
        CREATE VIEW v_state_summary AS
        SELECT state, policy, action, count(*) AS entries,
               coalesce(sum(bytes_saved), 0) AS bytes_saved,
               coalesce(sum(bytes_total), 0) AS bytes_total
        FROM entries
        GROUP BY state, policy, action;
        ALTER TABLE assets ADD COLUMN store_checksum TEXT;
        ALTER TABLE assets ADD COLUMN removed_at INTEGER;
        CREATE TABLE events_v5 (
            id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, run_id INTEGER,
            entry_id TEXT, asset_id TEXT,
            kind TEXT NOT NULL CHECK (kind IN ('state', 'api', 'intent', 'notice', 'admin')),
            from_state TEXT, to_state TEXT, action TEXT, outcome TEXT, detail TEXT
        );
        INSERT INTO events_v5 SELECT * FROM events ORDER BY id;
        DROP TABLE events;
        ALTER TABLE events_v5 RENAME TO events;
        CREATE INDEX events_entry ON events (entry_id);
        CREATE INDEX events_run ON events (run_id);
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN
            SELECT RAISE(ABORT, 'events are append-only');
        END;
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN
            SELECT RAISE(ABORT, 'events are append-only');
        END;
        """,
    )
    async with conn.execute("PRAGMA foreign_key_check") as cur:
        broken = await cur.fetchall()
    if broken:
        raise SchemaVersionError(f"migration 5 left {len(broken)} dangling references")


@migration
async def m006_restore(conn: aiosqlite.Connection) -> None:
    """Restores: exemptions held in the database, each restore's progress and the objects it
    made in Kaltura. New tables only: existing rows are untouched."""
    await _run_script(
        conn,
        """
        CREATE TABLE exemptions (
            entry_id TEXT PRIMARY KEY, reason TEXT NOT NULL, created_at INTEGER NOT NULL,
            run_id INTEGER, restored_from TEXT
        );
        CREATE TABLE restores (
            entry_id TEXT PRIMARY KEY REFERENCES entries (id) ON DELETE CASCADE,
            mode TEXT NOT NULL CHECK (mode IN ('recycle_bin', 'archive', 'flavors')),
            started_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, finished_at INTEGER,
            run_id INTEGER, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT
        );
        CREATE TABLE restore_objects (
            entry_id TEXT NOT NULL REFERENCES restores (entry_id) ON DELETE CASCADE,
            old_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('entry', 'child', 'flavor', 'caption',
                'attachment', 'thumb')),
            owner_old_id TEXT, new_id TEXT, token_id TEXT, step TEXT NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (entry_id, old_id)
        );
        """,
    )


SCHEMA_VERSION = len(MIGRATIONS)


def schema_sql() -> str:
    """The packaged full current schema (kretain/schema.sql)."""
    return resources.files("kretain").joinpath("schema.sql").read_text(encoding="utf-8")


async def schema_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


# Created by the first migration and by schema.sql; every kretain database has them.
KRETAIN_TABLES = ("entries", "events", "meta", "runs")
USER_TABLES_SQL = (
    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
)


def opening_problem(version: int, tables: Collection[str], *, readonly: bool) -> str | None:
    """Why a database with this user_version and these tables is no kretain database, or None.

    readonly: a blank database is then a problem too (there is nothing to report on).
    """
    names = sorted(tables)
    if version == 0 and not names:
        if readonly:
            return "is empty: not a kretain database yet (`kretain run` creates one)"
        return None
    if version > SCHEMA_VERSION:
        # A newer kretain may have other tables; only a file with none of ours is foreign.
        foreign = bool(names) and not set(KRETAIN_TABLES) & set(names)
    else:
        foreign = version == 0 or not set(KRETAIN_TABLES) <= set(names)
    if foreign:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        return (
            f"is an SQLite database of another application (tables: {shown or 'none'}), "
            "not a kretain database; kretain leaves it alone"
        )
    return None


async def check_opening(conn: aiosqlite.Connection, *, readonly: bool = False) -> int:
    """Raise StoreError unless the database is kretain's (or blank); return its user_version."""
    version = await schema_version(conn)
    async with conn.execute(USER_TABLES_SQL) as cur:
        tables = [row[0] for row in await cur.fetchall()]
    problem = opening_problem(version, tables, readonly=readonly)
    if problem is not None:
        async with conn.execute("PRAGMA database_list") as cur:
            files = {row[1]: row[2] for row in await cur.fetchall()}
        raise StoreError(f"{files.get('main') or 'the database'} {problem}")
    return version


async def _is_blank(conn: aiosqlite.Connection) -> bool:
    async with conn.execute("SELECT count(*) FROM sqlite_master") as cur:
        row = await cur.fetchone()
    return row is not None and row[0] == 0


async def _apply(conn: aiosqlite.Connection, body: Callable[[], Awaitable[None]], version: int):
    # The connection is in autocommit mode; this transaction covers the DDL and the bump.
    await conn.execute("BEGIN IMMEDIATE")
    try:
        await body()
        await conn.execute(f"PRAGMA user_version = {int(version)}")
    except BaseException:
        await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")


async def migrate(conn: aiosqlite.Connection, *, target: int = SCHEMA_VERSION) -> int:
    """Bring the database to ``target`` (default: latest) and return the version reached.

    Raises SchemaVersionError when the database is newer than this code, StoreError when it is
    another application's (see the module docstring).
    """
    current = await check_opening(conn)
    if current > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"database schema version {current} is newer than this kretain supports "
            f"({SCHEMA_VERSION}); upgrade kretain"
        )
    if current == 0 and target == SCHEMA_VERSION and await _is_blank(conn):
        await _apply(conn, lambda: _run_script(conn, schema_sql()), SCHEMA_VERSION)
        return SCHEMA_VERSION
    # Foreign keys off while migrating (a no-op inside a transaction, so set it here):
    # rebuilding a parent table must not cascade deletes into its children.
    async with conn.execute("PRAGMA foreign_keys") as cur:
        row = await cur.fetchone()
    fk_on = bool(row and row[0])
    if fk_on:
        await conn.execute("PRAGMA foreign_keys = OFF")
    try:
        for version in range(current + 1, target + 1):
            step = MIGRATIONS[version - 1]
            await _apply(conn, lambda step=step: step(conn), version)
    finally:
        if fk_on:
            await conn.execute("PRAGMA foreign_keys = ON")
    return max(current, target)

"""Reads and non-state writes of the store. State moves live in transitions.py, not here.

Functions (async; ``store`` is a :class:`kretain.store.db.Store`):
  entries
    get_entry(store, entry_id) -> EntryRow | None
    entries_in_state(store, state, *, action=None, limit=None) -> list[EntryRow]
    refresh_entries(store, fields_list, *, run_id, now=None) -> list[str]
        overwrite metadata of KNOWN entries (e.g. the re-fetch before a delete); returns the ids
        that are not in the store (new entries enter only through transitions.admit)
  assets
    replace_assets(store, entry_id, assets, *, now=None) -> None
    replace_assets_many(store, {entry_id: assets}, *, now=None) -> None   (one transaction)
        make the stored asset set of ``entry_id`` equal ``assets`` (dicts from
        models.asset_fields_from_wire); keeps backup progress of unchanged assets, resets it when
        an asset's size changed; updates the entry's asset_count, bytes_total, bytes_saved
    refresh_entries_job(...), replace_assets_job(...)
        the same writes as jobs for Store.write, so a caller can make several one transaction
    assets_of(store, entry_id) -> list[AssetRow]
    update_asset_backup(store, asset, *, archive_path=..., bytes_done=..., sha256=...,
                        verified_at=..., backup_state=...) -> None   (only the given columns;
        ``asset`` is an AssetRow or its key, (entry_id, asset_id))
  reports
    counts_by_state(store) -> dict[str, int]
    status_rows(store) -> list[StatusRow]      entries and bytes by state, policy and action
  runs
    start_run(store, command, args, *, as_of=None, pid=None, now=None) -> int   (secrets dropped)
    finish_run(store, run_id, status, counts, *, now=None) -> None
    get_run(store, run_id) -> RunRow | None
    recent_runs(store, limit=10) -> list[RunRow]
  discovery windows
    save_window(store, window, *, now=None) -> DiscoveryWindow      (insert or update; sets id)
    load_windows(store, generation, *, scope=None, status=None) -> list[DiscoveryWindow]
  meta
    get_meta(store, key) -> str | None;  set_meta(store, key, value) -> None
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kretain.errors import StoreError
from kretain.store.db import Store
from kretain.store.db import now as _wall_now
from kretain.store.models import (
    ASSET_METADATA_COLUMNS,
    ENTRY_METADATA_COLUMNS,
    AssetRow,
    DiscoveryWindow,
    EntryRow,
    RunRow,
    scrub_secrets,
)
from kretain.store.states import Action, AssetBackupState, State
from kretain.store.transitions import BYTES_SAVED_SQL, Job, as_write

__all__ = [
    "StatusRow",
    "assets_of",
    "counts_by_state",
    "entries_in_state",
    "finish_run",
    "get_entry",
    "get_meta",
    "get_run",
    "load_windows",
    "recent_runs",
    "refresh_entries",
    "refresh_entries_job",
    "replace_assets",
    "replace_assets_job",
    "replace_assets_many",
    "save_window",
    "set_meta",
    "start_run",
    "status_rows",
    "update_asset_backup",
]


async def get_entry(store: Store, entry_id: str) -> EntryRow | None:
    row = await store.fetchone("SELECT * FROM entries WHERE id = ?", (entry_id,))
    return EntryRow.from_row(row) if row else None


async def entries_in_state(
    store: Store,
    state: State | str,
    *,
    action: Action | str | None = None,
    limit: int | None = None,
) -> list[EntryRow]:
    sql = "SELECT * FROM entries WHERE state = ?"
    params: list[Any] = [str(State(state))]
    if action is not None:
        sql += " AND action = ?"
        params.append(str(Action(action)))
    sql += " ORDER BY created_at, id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [EntryRow.from_row(r) for r in await store.fetchall(sql, params)]


def refresh_entries_job(
    fields_list: Sequence[Mapping[str, Any]], *, run_id: int | None, now=None
) -> Job[list[str]]:
    """Overwrite the metadata of KNOWN entries; returns the ids not in the store."""
    when = _wall_now() if now is None else now
    cols = [c for c in ENTRY_METADATA_COLUMNS if c != "id"]
    ids = [f["id"] for f in fields_list]

    def write(conn: sqlite3.Connection) -> list[str]:
        known: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = conn.execute(
                f"SELECT id FROM entries WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            known.update(r[0] for r in rows)
        conn.executemany(
            f"UPDATE entries SET {', '.join(f'{c} = ?' for c in cols)}, "
            "last_seen_run = ?, refreshed_at = ? WHERE id = ?",
            [
                [*(f[c] for c in cols), run_id, when, f["id"]]
                for f in fields_list
                if f["id"] in known
            ],
        )
        return [i for i in ids if i not in known]

    return write


# ---- assets -------------------------------------------------------------------------------

_BACKUP_RESET = (
    "archive_path = CASE WHEN assets.size_bytes = excluded.size_bytes THEN assets.archive_path "
    "ELSE NULL END, "
    "bytes_done = CASE WHEN assets.size_bytes = excluded.size_bytes THEN assets.bytes_done "
    "ELSE 0 END, "
    "sha256 = CASE WHEN assets.size_bytes = excluded.size_bytes THEN assets.sha256 ELSE NULL END, "
    "verified_at = CASE WHEN assets.size_bytes = excluded.size_bytes THEN assets.verified_at "
    "ELSE NULL END, "
    "backup_state = CASE WHEN assets.size_bytes = excluded.size_bytes THEN assets.backup_state "
    "ELSE 'pending' END"
)


async def replace_assets(
    store: Store, entry_id: str, assets: Sequence[Mapping[str, Any]], *, now: int | None = None
) -> None:
    await replace_assets_many(store, {entry_id: assets}, now=now)


def replace_assets_job(
    assets_by_entry: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    now: int | None = None,
    update_totals: bool = True,
) -> Job[None]:
    """replace_assets for many entries in one transaction and a handful of statements.

    update_totals=False leaves asset_count, bytes_total and bytes_saved to the caller, which
    sets them in the same statement as its state move (one row rewrite instead of two).
    """
    cols = ["entry_id", *ASSET_METADATA_COLUMNS]
    meta = [c for c in ASSET_METADATA_COLUMNS if c != "id"]
    entry_ids = list(assets_by_entry)
    for entry_id, assets in assets_by_entry.items():
        ids = [a["id"] for a in assets]
        if len(set(ids)) != len(ids):
            raise StoreError(f"entry {entry_id}: duplicate asset ids in one replace")
    when = _wall_now() if now is None else now

    def write(conn: sqlite3.Connection) -> None:
        for start in range(0, len(entry_ids), 500):
            chunk = entry_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found = {
                r[0] for r in conn.execute(f"SELECT id FROM entries WHERE id IN ({marks})", chunk)
            }
            missing = [i for i in chunk if i not in found]
            if missing:
                raise StoreError(f"entry {missing[0]} is not in the store")
        # SET expressions see the old row, so the reset compares the old size with the new one.
        conn.executemany(
            f"INSERT INTO assets ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
            f"ON CONFLICT (entry_id, id) DO UPDATE SET {_BACKUP_RESET}, "
            + ", ".join(f"{c} = excluded.{c}" for c in meta),
            [
                (entry_id, *(a[c] for c in ASSET_METADATA_COLUMNS))
                for entry_id, assets in assets_by_entry.items()
                for a in assets
            ],
        )
        # Assets that are gone: everything of these entries not in this replace.
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS _keep_assets (id TEXT PRIMARY KEY)")
        conn.execute("DELETE FROM _keep_assets")
        conn.executemany(
            "INSERT OR IGNORE INTO _keep_assets (id) VALUES (?)",
            [(a["id"],) for assets in assets_by_entry.values() for a in assets],
        )
        conn.executemany(
            "DELETE FROM assets WHERE entry_id = ? AND id NOT IN (SELECT id FROM _keep_assets)",
            [(entry_id,) for entry_id in entry_ids],
        )
        if not update_totals:
            return
        conn.executemany(
            "UPDATE entries SET asset_count = (SELECT count(*) FROM assets WHERE entry_id = ?1), "
            "bytes_total = (SELECT coalesce(sum(size_bytes), 0) FROM assets WHERE entry_id = ?1), "
            f"refreshed_at = ?2, bytes_saved = {BYTES_SAVED_SQL} WHERE id = ?1",
            [(entry_id, when) for entry_id in entry_ids],
        )

    return write


refresh_entries = as_write(refresh_entries_job)
replace_assets_many = as_write(replace_assets_job)


async def assets_of(store: Store, entry_id: str) -> list[AssetRow]:
    rows = await store.fetchall(
        "SELECT * FROM assets WHERE entry_id = ? ORDER BY owner_entry_id IS NOT NULL, "
        "owner_entry_id, kind, is_source DESC, id",
        (entry_id,),
    )
    return [AssetRow.from_row(r) for r in rows]


_UNSET: Any = object()


async def update_asset_backup(
    store: Store,
    asset: AssetRow | tuple[str, str],
    *,
    archive_path: str | None = _UNSET,
    bytes_done: int = _UNSET,
    sha256: str | None = _UNSET,
    verified_at: int | None = _UNSET,
    backup_state: AssetBackupState | str = _UNSET,
) -> None:
    values = {
        "archive_path": archive_path,
        "bytes_done": bytes_done,
        "sha256": sha256,
        "verified_at": verified_at,
        "backup_state": backup_state,
    }
    given = {k: v for k, v in values.items() if v is not _UNSET}
    if "backup_state" in given:
        given["backup_state"] = str(AssetBackupState(given["backup_state"]))
    if not given:
        return
    entry_id, asset_id = (asset.entry_id, asset.id) if isinstance(asset, AssetRow) else asset
    async with store.transaction() as conn:
        cur = await conn.execute(
            f"UPDATE assets SET {', '.join(f'{k} = ?' for k in given)} "
            "WHERE entry_id = ? AND id = ?",
            [*given.values(), entry_id, asset_id],
        )
        if cur.rowcount == 0:
            raise StoreError(f"asset {asset_id} of entry {entry_id} is not in the store")


# ---- reports ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusRow:
    state: State
    policy: str | None
    action: str | None
    entries: int
    bytes_saved: int
    bytes_total: int


async def counts_by_state(store: Store) -> dict[str, int]:
    rows = await store.fetchall("SELECT state, count(*) FROM entries GROUP BY state")
    return {r[0]: r[1] for r in rows}


async def status_rows(store: Store) -> list[StatusRow]:
    rows = await store.fetchall(
        "SELECT state, policy, action, entries, bytes_saved, bytes_total FROM v_state_summary "
        "ORDER BY state, policy IS NULL, policy, action"
    )
    return [StatusRow(State(r[0]), r[1], r[2], int(r[3]), int(r[4]), int(r[5])) for r in rows]


# ---- runs ---------------------------------------------------------------------------------


async def start_run(
    store: Store,
    command: str,
    args: Mapping[str, Any],
    *,
    as_of: str | None = None,
    pid: int | None = None,
    now: int | None = None,
) -> int:
    """Record a run; keys that look secret (secret, token, ks, password) are dropped from args."""
    when = _wall_now() if now is None else now
    async with store.transaction() as conn:
        cur = await conn.execute(
            "INSERT INTO runs (started_at, command, args, status, pid, as_of) "
            "VALUES (?, ?, ?, 'running', ?, ?)",
            (
                when,
                command,
                json.dumps(scrub_secrets(dict(args)), sort_keys=True, default=str),
                os.getpid() if pid is None else pid,
                as_of,
            ),
        )
        run_id = cur.lastrowid
    assert run_id is not None
    return int(run_id)


async def finish_run(
    store: Store, run_id: int, status: str, counts: Mapping[str, Any], *, now: int | None = None
) -> None:
    when = _wall_now() if now is None else now
    async with store.transaction() as conn:
        await conn.execute(
            "UPDATE runs SET finished_at = ?, status = ?, counts = ? WHERE id = ?",
            (when, status, json.dumps(dict(counts), sort_keys=True, default=str), run_id),
        )


async def get_run(store: Store, run_id: int) -> RunRow | None:
    row = await store.fetchone("SELECT * FROM runs WHERE id = ?", (run_id,))
    return RunRow.from_row(row) if row else None


async def recent_runs(store: Store, limit: int = 10) -> list[RunRow]:
    rows = await store.fetchall("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,))
    return [RunRow.from_row(r) for r in rows]


# ---- discovery windows --------------------------------------------------------------------

_WINDOW_COLS = (
    "generation",
    "scope",
    "lo",
    "hi",
    "split_field",
    "cursor_created_at",
    "seen_ids_at_cursor",
    "total_count",
    "status",
    "pages",
    "updated_at",
)


async def save_window(
    store: Store, window: DiscoveryWindow, *, now: int | None = None
) -> DiscoveryWindow:
    """Insert (id None) or update the window; keyed also by (generation, scope, lo, hi)."""
    if window.status not in ("pending", "done", "failed"):
        raise StoreError(f"bad discovery window status {window.status!r}")
    window.updated_at = _wall_now() if now is None else now
    values = [
        json.dumps(list(window.seen_ids_at_cursor))
        if c == "seen_ids_at_cursor"
        else getattr(window, c)
        for c in _WINDOW_COLS
    ]
    async with store.transaction() as conn:
        if window.id is None:
            updates = ", ".join(f"{c} = excluded.{c}" for c in _WINDOW_COLS[4:])
            await conn.execute(
                f"INSERT INTO discovery_windows ({', '.join(_WINDOW_COLS)}) "
                f"VALUES ({', '.join('?' * len(_WINDOW_COLS))}) "
                f"ON CONFLICT (generation, scope, lo, hi) DO UPDATE SET {updates}",
                values,
            )
            row = await store.fetchone(
                "SELECT id FROM discovery_windows WHERE generation = ? AND scope = ? "
                "AND lo = ? AND hi = ?",
                (window.generation, window.scope, window.lo, window.hi),
            )
            window.id = int(row[0])
        else:
            cur = await conn.execute(
                f"UPDATE discovery_windows SET {', '.join(f'{c} = ?' for c in _WINDOW_COLS)} "
                "WHERE id = ?",
                [*values, window.id],
            )
            if cur.rowcount == 0:
                raise StoreError(f"discovery window {window.id} is not in the store")
    return window


async def load_windows(
    store: Store, generation: int, *, scope: str | None = None, status: str | None = None
) -> list[DiscoveryWindow]:
    sql = "SELECT * FROM discovery_windows WHERE generation = ?"
    params: list[Any] = [generation]
    if scope is not None:
        sql += " AND scope = ?"
        params.append(scope)
    if status is not None:
        sql += " AND status = ?"
        params.append(status)
    rows = await store.fetchall(sql + " ORDER BY lo, hi, id", params)
    return [DiscoveryWindow.from_row(r) for r in rows]


# ---- meta ---------------------------------------------------------------------------------


async def get_meta(store: Store, key: str) -> str | None:
    row = await store.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
    return row[0] if row else None


async def set_meta(store: Store, key: str, value: str | None) -> None:
    async with store.transaction() as conn:
        await conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

"""Reads and non-state writes of the store. State moves live in transitions.py, not here.

Functions (async; ``store`` is a :class:`kretain.store.db.Store`):
  entries
    get_entry(store, entry_id) -> EntryRow | None
    entries_in_state(store, state, *, action=None, limit=None) -> list[EntryRow]
    entries_after(store, state, after_id, limit) -> list[EntryRow]     keyset paging by id
    archive_uris(store, state) -> set[str | None]   the archives rows in a state went to
    refresh_entries(store, fields_list, *, run_id, now=None) -> list[str]
        overwrite metadata of KNOWN entries (e.g. the re-fetch before a delete); returns the ids
        that are not in the store (new entries enter only through transitions.admit)
  assets
    replace_assets(store, entry_id, assets, *, now=None) -> None
        make the stored asset set of ``entry_id`` equal ``assets`` (dicts from
        models.asset_columns); keeps backup progress of unchanged assets, resets it when
        an asset's size changed; sets the entry's asset_count, bytes_total, bytes_saved
    replace_assets_many(store, {entry_id: assets}, *, now=None) -> None   (one transaction)
        the same for many entries, leaving the totals to the caller
    refresh_entries_job(...), replace_assets_job(...)
        the same writes as jobs for Store.write, so a caller can make several one transaction
    assets_of(store, entry_id) -> list[AssetRow]
    mark_removed(store, entry_id, asset_ids, when) -> None     assets kretain deleted
    set_held(store, {entry_id: reason | None}, when) -> None   the delete plan's hold reasons
    unfinished_backups(store, heading) -> list[AssetRow]   files begun in the archive for
        rows no longer on their way there (their half-written files can go)
    update_asset_backup(store, asset, *, archive_path=..., bytes_done=..., sha256=...,
                        verified_at=..., backup_state=..., store_checksum=...) -> None
        (only the given columns; ``asset`` is an AssetRow or its key, (entry_id, asset_id))
  reports
    counts_by_state(store) -> dict[str, int]
    count_exhausted(store, state, max_attempts, *, action=None) -> int
    status_rows(store) -> list[StatusRow]      entries and bytes by state, policy and action
    carried_out(store) -> [(state, entries, bytes_freed, last_at, next_purge)]
  runs
    start_run(store, command, args, *, as_of=None, pid=None, now=None) -> int   (secrets dropped)
    finish_run(store, run_id, status, counts, *, now=None) -> None
    get_run(store, run_id) -> RunRow | None
    recent_runs(store, limit=10) -> list[RunRow]
    running_runs(store, *, except_id=None) -> list[int]
  discovery
    seed_window, unfinished_windows, window_counts, save_window_cursor, fail_window,
    split_window      discovery's windows and cursors
    states_of(store, ids) -> {id: State};  unseen_since(store, states, first_run) -> rows
  meta
    get_meta(store, key) -> str | None;  set_meta(store, key, value | None);  set_meta_many
  restores and exemptions (kretain restore)
    restore_selection(store, *, ids=None, states=(), owners=(), policies=()) -> [EntryRow]
    get_restore / start_restore / fail_restore / finish_restore     one restore's progress
    restore_objects(store, entry_id) -> {old id: RestoreObject};  save_restore_object(...);
    forget_restore_objects(...)      what a restore made in Kaltura, step by step
    upload_intents(store, entry_id, asset_id, token_id) -> [chunk details]
    add_exemptions / lift_exemptions / exemptions    exemptions held in the database
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kretain import rules
from kretain.errors import StoreError
from kretain.store.db import Store
from kretain.store.db import now as _wall_now
from kretain.store.models import (
    ASSET_METADATA_COLUMNS,
    ENTRY_METADATA_COLUMNS,
    AssetRow,
    EntryRow,
    RunRow,
    scrub_secrets,
)
from kretain.store.states import ATTEMPTS_COLUMN, Action, AssetBackupState, State
from kretain.store.transitions import Job, as_write

__all__ = [
    "RESTORABLE_STATES",
    "ExemptionRow",
    "RestoreObject",
    "RestoreRow",
    "StatusRow",
    "add_exemptions",
    "archive_uris",
    "assets_of",
    "carried_out",
    "count_exhausted",
    "counts_by_state",
    "due_by_owner",
    "due_later",
    "entries_after",
    "entries_in_state",
    "exemptions",
    "fail_restore",
    "fail_window",
    "finish_restore",
    "finish_run",
    "forget_restore_objects",
    "get_entry",
    "get_meta",
    "get_restore",
    "get_run",
    "lift_exemptions",
    "mark_removed",
    "recent_runs",
    "refresh_entries",
    "refresh_entries_job",
    "replace_assets",
    "replace_assets_job",
    "replace_assets_many",
    "restore_objects",
    "restore_selection",
    "running_runs",
    "save_restore_object",
    "save_window_cursor",
    "seed_window",
    "set_held",
    "set_meta",
    "set_meta_many",
    "split_window",
    "start_restore",
    "start_run",
    "states_of",
    "status_rows",
    "unfinished_backups",
    "unfinished_windows",
    "unseen_since",
    "update_asset_backup",
    "upload_intents",
    "window_counts",
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


async def entries_after(
    store: Store, state: State | str, after_id: str, limit: int
) -> list[EntryRow]:
    """A page of rows in ``state`` with ids after ``after_id``, in id order (keyset paging)."""
    rows = await store.fetchall(
        "SELECT * FROM entries WHERE state = ? AND id > ? ORDER BY id LIMIT ?",
        (str(State(state)), after_id, limit),
    )
    return [EntryRow.from_row(r) for r in rows]


async def due_later(store: Store, after_id: str, limit: int) -> list[EntryRow]:
    """Rows the policy wants acted on that the delete stage cannot take yet (not sized, a
    lookup failed, not backed up or a backup failed or running), in id order."""
    rows = await store.fetchall(
        "SELECT * FROM entries WHERE id > ? AND action IS NOT NULL AND state IN "
        "('candidate', 'error', 'downloading', 'backup_failed', 'sized') ORDER BY id LIMIT ?",
        (after_id, limit),
    )
    return [EntryRow.from_row(r) for r in rows]


async def due_by_owner(store: Store) -> AsyncIterator[tuple[str | None, list[EntryRow]]]:
    """Every entry the policy will act on and kretain has not yet (an action, in a live state),
    grouped by owner, oldest first within an owner."""
    rows = await store.fetchall(
        "SELECT * FROM entries WHERE action IS NOT NULL AND state IN ('candidate', 'sized', "
        "'downloading', 'archived', 'backup_failed', 'delete_failed', 'deleting', 'error') "
        "ORDER BY coalesce(owner, ''), created_at, id"
    )
    group: list[EntryRow] = []
    for raw in rows:
        row = EntryRow.from_row(raw)
        if group and (group[0].owner or "") != (row.owner or ""):
            yield group[0].owner, group
            group = []
        group.append(row)
    if group:
        yield group[0].owner, group


async def archive_uris(store: Store, state: State | str) -> set[str | None]:
    """The archives rows in ``state`` were backed up to (None: not recorded)."""
    rows = await store.fetchall(
        "SELECT DISTINCT archive_uri FROM entries WHERE state = ?", (str(State(state)),)
    )
    return {r[0] for r in rows}


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
    "store_checksum = CASE WHEN assets.size_bytes = excluded.size_bytes "
    "THEN assets.store_checksum ELSE NULL END, "
    "backup_state = CASE WHEN assets.size_bytes = excluded.size_bytes THEN assets.backup_state "
    "ELSE 'pending' END"
)


async def replace_assets(
    store: Store, entry_id: str, assets: Sequence[Mapping[str, Any]], *, now: int | None = None
) -> None:
    """Make the entry's stored assets equal ``assets`` (asset column dicts) and set its
    asset_count, bytes_total and bytes_saved by the rulebook, in one transaction."""
    when = _wall_now() if now is None else now

    def write(conn: sqlite3.Connection) -> None:
        replace_assets_job({entry_id: assets}, now=when)(conn)
        row = conn.execute("SELECT action FROM entries WHERE id = ?", (entry_id,)).fetchone()
        stored = [
            AssetRow.from_row(r)
            for r in conn.execute(
                "SELECT * FROM assets WHERE entry_id = ? AND removed_at IS NULL", (entry_id,)
            )
        ]
        saved = rules.bytes_freed_by(
            row["action"], stored, source_known=rules.sources_known(stored)
        )
        conn.execute(
            "UPDATE entries SET asset_count = ?, bytes_total = ?, bytes_saved = ?, "
            "refreshed_at = ? WHERE id = ?",
            (len(stored), sum(a.size_bytes for a in stored), saved, when, entry_id),
        )

    await store.write(write)


def replace_assets_job(
    assets_by_entry: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    now: int | None = None,
) -> Job[None]:
    """Make the stored asset set of each entry equal the given one, in one transaction and a
    handful of statements. Backup progress of an asset is kept unless its size changed.
    The entries' asset_count, bytes_total and bytes_saved are the caller's (sizing sets them
    in the same statement as its state move: one row rewrite instead of two)."""
    cols = ["entry_id", *ASSET_METADATA_COLUMNS]
    meta = [c for c in ASSET_METADATA_COLUMNS if c != "id"]
    entry_ids = list(assets_by_entry)
    for entry_id, assets in assets_by_entry.items():
        ids = [a["id"] for a in assets]
        if len(set(ids)) != len(ids):
            raise StoreError(f"entry {entry_id}: duplicate asset ids in one replace")

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
        # A flavor kretain deleted (removed_at) stays on record: a restore rebuilds it.
        conn.executemany(
            "DELETE FROM assets WHERE entry_id = ? AND removed_at IS NULL "
            "AND id NOT IN (SELECT id FROM _keep_assets)",
            [(entry_id,) for entry_id in entry_ids],
        )

    return write


refresh_entries = as_write(refresh_entries_job)
replace_assets_many = as_write(replace_assets_job)


async def mark_removed(
    store: Store, entry_id: str, asset_ids: Sequence[str], when: int | None
) -> None:
    """Record assets kretain deleted from Kaltura (a stripped flavor); None clears the mark
    (a flavor rebuilt by a restore)."""
    async with store.transaction() as conn:
        await conn.executemany(
            "UPDATE assets SET removed_at = ? WHERE entry_id = ? AND id = ?",
            [(when, entry_id, a) for a in asset_ids],
        )


async def removed_flavors(store: Store, entry_ids: Sequence[str]) -> dict[str, list[AssetRow]]:
    """The flavors kretain removed (``removed_at`` set) of each of these entries that has
    any, whatever the entry's state now."""
    out: dict[str, list[AssetRow]] = {}
    for start in range(0, len(entry_ids), 500):
        chunk = list(entry_ids[start : start + 500])
        marks = ", ".join("?" for _ in chunk)
        rows = await store.fetchall(
            f"SELECT * FROM assets WHERE entry_id IN ({marks}) AND kind = 'flavor' "
            "AND removed_at IS NOT NULL ORDER BY entry_id, id",
            chunk,
        )
        for r in rows:
            asset = AssetRow.from_row(r)
            out.setdefault(asset.entry_id, []).append(asset)
    return out


async def set_held(store: Store, reasons: Mapping[str, str | None], when: int) -> None:
    """Why the delete stage's last plan held each row back (None: it did not)."""
    async with store.transaction() as conn:
        await conn.executemany(
            "UPDATE entries SET held_reason = ?, held_at = ? WHERE id = ?",
            [(why, when if why else None, entry_id) for entry_id, why in reasons.items()],
        )


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
    store_checksum: str | None = _UNSET,
) -> None:
    values = {
        "archive_path": archive_path,
        "bytes_done": bytes_done,
        "sha256": sha256,
        "verified_at": verified_at,
        "backup_state": backup_state,
        "store_checksum": store_checksum,
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


async def record_backup_progress(
    store: Store, progress: Sequence[tuple[AssetRow | tuple[str, str], int]]
) -> None:
    """How far files still being written got: ``(asset, bytes held durably)`` each, marked
    partial. A file recorded as finished meanwhile (verified, failed, skipped) is left as it
    is: progress read before a file ended must never undo its verification."""
    if not progress:
        return
    keys = [(done, *((a.entry_id, a.id) if isinstance(a, AssetRow) else a)) for a, done in progress]
    await store.executemany(
        "UPDATE assets SET bytes_done = ?, backup_state = 'partial' "
        "WHERE entry_id = ? AND id = ? AND backup_state IN ('pending', 'partial')",
        keys,
    )


# ---- reports ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusRow:
    state: State
    policy: str | None
    action: str | None
    entries: int
    bytes_saved: int
    bytes_total: int


async def unfinished_backups(
    store: Store, heading: Sequence[State | str], limit: int = 10_000
) -> list[AssetRow]:
    """Assets with a file begun in the archive (``archive_path`` set) but not verified, of
    rows in no state of ``heading`` (the states from which a backup may still come)."""
    marks = ", ".join("?" for _ in heading)
    rows = await store.fetchall(
        "SELECT a.* FROM assets a JOIN entries e ON e.id = a.entry_id "
        "WHERE a.archive_path IS NOT NULL AND a.backup_state IN ('pending', 'partial', 'failed') "
        f"AND e.state NOT IN ({marks}) ORDER BY a.entry_id, a.id LIMIT ?",
        [*(str(State(h)) for h in heading), limit],
    )
    return [AssetRow.from_row(r) for r in rows]


async def count_exhausted(
    store: Store, state: State, max_attempts: int, *, action: Action | None = None
) -> int:
    """Rows in a failure state whose counter reached ``max_attempts``: no stage retries them
    until ``kretain retry`` resets the counter."""
    counter = ATTEMPTS_COLUMN[state]
    sql = f"SELECT count(*) FROM entries WHERE state = ? AND {counter} >= ?"
    params: list[Any] = [str(state), max_attempts]
    if action is not None:
        sql += " AND action = ?"
        params.append(str(action))
    row = await store.fetchone(sql, params)
    return int(row[0])


async def counts_by_state(store: Store) -> dict[str, int]:
    rows = await store.fetchall("SELECT state, count(*) FROM entries GROUP BY state")
    return {r[0]: r[1] for r in rows}


async def status_rows(store: Store) -> list[StatusRow]:
    rows = await store.fetchall(
        "SELECT state, policy, action, entries, bytes_saved, bytes_total FROM v_state_summary "
        "ORDER BY state, policy IS NULL, policy, action"
    )
    return [StatusRow(State(r[0]), r[1], r[2], int(r[3]), int(r[4]), int(r[5])) for r in rows]


async def carried_out(store: Store) -> list[tuple[str, int, int, int | None, int | None]]:
    """(state, entries, bytes freed, last done at, next bin purge) for deleted, recycled and
    stripped rows."""
    rows = await store.fetchall(
        "SELECT state, count(*), coalesce(sum(bytes_freed), 0), "
        "max(coalesce(deleted_at, recycled_at, stripped_at)), "
        "min(CASE WHEN state = 'recycled' THEN purge_at END) FROM entries "
        "WHERE state IN ('deleted', 'recycled', 'stripped') GROUP BY state ORDER BY state"
    )
    return [(r[0], int(r[1]), int(r[2]), r[3], r[4]) for r in rows]


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


async def running_runs(store: Store, *, except_id: int | None = None) -> list[int]:
    """Runs still marked running (other than ``except_id``): with the process lock held,
    they are runs that died."""
    rows = await store.fetchall(
        "SELECT id FROM runs WHERE status = 'running' AND id != ? ORDER BY id",
        (except_id if except_id is not None else -1,),
    )
    return [int(r[0]) for r in rows]


async def recent_runs(store: Store, limit: int = 10) -> list[RunRow]:
    rows = await store.fetchall("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,))
    return [RunRow.from_row(r) for r in rows]


# ---- discovery windows --------------------------------------------------------------------
# Discovery's createdAt windows and their cursors (kretain/workers/discover.py drives them).


async def seed_window(
    store: Store, generation: int, scope: str, lo: int, hi: int, now: int
) -> None:
    """The first window of a listing pass, unless the generation has one for it already."""
    async with store.transaction() as conn:
        found = await (
            await conn.execute(
                "SELECT 1 FROM discovery_windows WHERE generation = ? AND scope = ?",
                (generation, scope),
            )
        ).fetchone()
        if found is None:
            await conn.execute(
                "INSERT INTO discovery_windows (generation, scope, lo, hi, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (generation, scope, lo, hi, now),
            )


async def unfinished_windows(store: Store, generation: int) -> list[Any]:
    """Windows of the generation not yet done (failed ones are tried again), in created order."""
    return await store.fetchall(
        "SELECT id, scope, lo, hi, split_field, cursor_created_at, seen_ids_at_cursor, pages, "
        "total_count FROM discovery_windows WHERE generation = ? AND status != 'done' "
        "ORDER BY lo, id",
        (generation,),
    )


async def window_counts(store: Store, generation: int) -> tuple[int, int]:
    """(windows, windows done) of a generation; split parents are not counted."""
    row = await store.fetchone(
        "SELECT count(*), coalesce(sum(status = 'done'), 0) FROM discovery_windows "
        "WHERE generation = ? AND split_field != 'split'",
        (generation,),
    )
    return int(row[0]), int(row[1])


async def save_window_cursor(
    store: Store,
    window_id: int,
    *,
    cursor_created_at: int | None,
    seen_ids: Sequence[str],
    split_field: str,
    total_count: int | None,
    done: bool,
    pages: int,
    now: int,
) -> None:
    """A window's cursor after a page (inside the page's transaction, so they agree)."""
    async with store.transaction() as conn:
        await conn.execute(
            "UPDATE discovery_windows SET cursor_created_at = ?, seen_ids_at_cursor = ?, "
            "split_field = ?, total_count = coalesce(total_count, ?), status = ?, pages = ?, "
            "updated_at = ? WHERE id = ?",
            (
                cursor_created_at,
                json.dumps(list(seen_ids)),
                split_field,
                total_count,
                "done" if done else "pending",
                pages,
                now,
                window_id,
            ),
        )


async def fail_window(store: Store, window_id: int, now: int) -> None:
    async with store.transaction() as conn:
        await conn.execute(
            "UPDATE discovery_windows SET status = 'failed', updated_at = ? WHERE id = ?",
            (now, window_id),
        )


async def split_window(
    store: Store,
    window_id: int,
    generation: int,
    scope: str,
    halves: Sequence[tuple[int, int]],
    total_count: int | None,
    pages: int,
    now: int,
) -> list[tuple[int, tuple[int, int]]]:
    """Replace a window over the cap by its halves; returns (id, (lo, hi)) of halves created."""
    created: list[tuple[int, tuple[int, int]]] = []
    async with store.transaction() as conn:
        await conn.execute(
            "UPDATE discovery_windows SET status = 'done', split_field = 'split', "
            "total_count = ?, pages = ?, updated_at = ? WHERE id = ?",
            (total_count, pages, now, window_id),
        )
        for lo, hi in halves:
            cur = await conn.execute(
                "INSERT INTO discovery_windows (generation, scope, lo, hi, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (generation, scope, lo, hi) DO NOTHING",
                (generation, scope, lo, hi, now),
            )
            if cur.lastrowid and cur.rowcount:
                created.append((cur.lastrowid, (lo, hi)))
    return created


async def states_of(store: Store, entry_ids: Sequence[str]) -> dict[str, State]:
    """The current state of each known id (unknown ids are absent)."""
    out: dict[str, State] = {}
    ids = list(entry_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = await store.fetchall(
            f"SELECT id, state FROM entries WHERE id IN ({','.join('?' * len(chunk))})", chunk
        )
        out.update({r[0]: State(r[1]) for r in rows})
    return out


async def unseen_since(store: Store, states: Sequence[State], first_run: int) -> list[EntryRow]:
    """Top-level rows in ``states`` not seen by any run since ``first_run`` (id order)."""
    marks = ",".join("?" * len(states))
    rows = await store.fetchall(
        f"SELECT * FROM entries WHERE state IN ({marks}) AND parent_id IS NULL "
        "AND (last_seen_run IS NULL OR last_seen_run < ?) ORDER BY id",
        (*map(str, states), first_run),
    )
    return [EntryRow.from_row(r) for r in rows]


# ---- meta ---------------------------------------------------------------------------------


async def get_meta(store: Store, key: str) -> str | None:
    row = await store.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
    return row[0] if row else None


async def set_meta(store: Store, key: str, value: str | None) -> None:
    """Set a meta key (None removes it)."""
    await set_meta_many(store, {key: value})


async def set_meta_many(store: Store, values: Mapping[str, str | None]) -> None:
    async with store.transaction() as conn:
        for key, value in values.items():
            if value is None:
                await conn.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                await conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )


# ---- restores and exemptions --------------------------------------------------------------
# kretain restore's bookkeeping (kretain/workers/restore.py): which rows a restore may take,
# each restore's progress and the objects it made in Kaltura, and the exemptions it records.

RESTORABLE_STATES: tuple[State, ...] = (State.DELETED, State.RECYCLED, State.STRIPPED)
_ADMIN_EVENT_SQL = (
    "INSERT INTO events (time, run_id, entry_id, asset_id, kind, from_state, to_state, action,"
    " outcome, detail) VALUES (?, ?, ?, NULL, 'admin', NULL, NULL, NULL, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class RestoreRow:
    entry_id: str
    mode: str  # recycle_bin | archive | flavors
    started_at: int
    updated_at: int
    finished_at: int | None
    run_id: int | None
    attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class RestoreObject:
    """What a restore made for one original object: the entry, a child, or an asset."""

    entry_id: str
    old_id: str
    kind: str
    owner_old_id: str | None
    new_id: str | None
    token_id: str | None
    step: str
    updated_at: int


@dataclass(frozen=True, slots=True)
class ExemptionRow:
    entry_id: str
    reason: str
    created_at: int
    run_id: int | None
    restored_from: str | None


async def restore_selection(
    store: Store,
    *,
    ids: Sequence[str] | None = None,
    states: Sequence[State | str] = (),
    owners: Sequence[str] = (),
    policies: Sequence[str] = (),
) -> list[EntryRow]:
    """Rows a restore is asked about. ``ids``: those rows in any state (the caller says why
    one cannot be restored); otherwise the rows in ``states`` (default: deleted, recycled,
    stripped) of the given owners (case-insensitive) and rules. Oldest deleted first."""
    where: list[str] = []
    params: list[Any] = []
    if ids is not None:
        out: list[EntryRow] = []
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            rows = await store.fetchall(
                f"SELECT * FROM entries WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
            out += [EntryRow.from_row(r) for r in rows]
        order = {i: n for n, i in enumerate(unique)}
        return sorted(out, key=lambda r: order[r.id])
    chosen = [str(State(s)) for s in states] or [str(s) for s in RESTORABLE_STATES]
    where.append(f"state IN ({','.join('?' * len(chosen))})")
    params += chosen
    if owners:
        where.append(f"lower(owner) IN ({','.join('?' * len(owners))})")
        params += [o.lower() for o in owners]
    if policies:
        where.append(f"policy IN ({','.join('?' * len(policies))})")
        params += list(policies)
    rows = await store.fetchall(
        f"SELECT * FROM entries WHERE {' AND '.join(where)} "
        "ORDER BY coalesce(deleted_at, recycled_at, stripped_at, state_changed_at), id",
        params,
    )
    return [EntryRow.from_row(r) for r in rows]


async def get_restore(store: Store, entry_id: str) -> RestoreRow | None:
    row = await store.fetchone("SELECT * FROM restores WHERE entry_id = ?", (entry_id,))
    return RestoreRow(**dict(row)) if row else None


async def start_restore(
    store: Store, entry_id: str, mode: str, *, run_id: int | None, now: int | None = None
) -> None:
    """Begin (or continue) the restore of ``entry_id`` by ``mode``; progress already recorded
    is kept."""
    when = _wall_now() if now is None else now
    async with store.transaction() as conn:
        await conn.execute(
            "INSERT INTO restores (entry_id, mode, started_at, updated_at, run_id) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (entry_id) DO UPDATE SET mode = excluded.mode, "
            "updated_at = excluded.updated_at, run_id = excluded.run_id, finished_at = NULL",
            (entry_id, mode, when, when, run_id),
        )


async def fail_restore(store: Store, entry_id: str, error: str, *, now: int | None = None) -> None:
    """A restore run that failed or refused: one more attempt and the reason."""
    when = _wall_now() if now is None else now
    async with store.transaction() as conn:
        await conn.execute(
            "UPDATE restores SET attempts = attempts + 1, last_error = ?, updated_at = ? "
            "WHERE entry_id = ?",
            (error[:2000], when, entry_id),
        )


async def finish_restore(store: Store, entry_id: str, *, now: int | None = None) -> None:
    when = _wall_now() if now is None else now
    async with store.transaction() as conn:
        await conn.execute(
            "UPDATE restores SET finished_at = ?, updated_at = ?, last_error = NULL "
            "WHERE entry_id = ?",
            (when, when, entry_id),
        )


async def restore_objects(store: Store, entry_id: str) -> dict[str, RestoreObject]:
    """old id -> what the restore of ``entry_id`` made for it so far."""
    rows = await store.fetchall(
        "SELECT * FROM restore_objects WHERE entry_id = ? ORDER BY rowid", (entry_id,)
    )
    return {r["old_id"]: RestoreObject(**dict(r)) for r in rows}


async def save_restore_object(
    store: Store,
    entry_id: str,
    old_id: str,
    kind: str,
    step: str,
    *,
    owner_old_id: str | None = None,
    new_id: str | None = _UNSET,
    token_id: str | None = _UNSET,
    now: int | None = None,
) -> None:
    """Record a step of the restore of one original object (new_id / token_id only when
    given; an omitted one keeps its value)."""
    when = _wall_now() if now is None else now
    sets = ["step = excluded.step", "updated_at = excluded.updated_at"]
    if new_id is not _UNSET:
        sets.append("new_id = excluded.new_id")
    if token_id is not _UNSET:
        sets.append("token_id = excluded.token_id")
    async with store.transaction() as conn:
        await conn.execute(
            "INSERT INTO restore_objects (entry_id, old_id, kind, owner_old_id, new_id, "
            "token_id, step, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            f"ON CONFLICT (entry_id, old_id) DO UPDATE SET {', '.join(sets)}",
            (
                entry_id,
                old_id,
                kind,
                owner_old_id,
                None if new_id is _UNSET else new_id,
                None if token_id is _UNSET else token_id,
                step,
                when,
            ),
        )


async def forget_restore_objects(store: Store, entry_id: str, old_ids: Sequence[str]) -> None:
    """Drop the records of objects that no longer exist in Kaltura (made again next)."""
    async with store.transaction() as conn:
        await conn.executemany(
            "DELETE FROM restore_objects WHERE entry_id = ? AND old_id = ?",
            [(entry_id, o) for o in old_ids],
        )


async def upload_intents(
    store: Store, entry_id: str, asset_id: str, token_id: str
) -> list[dict[str, Any]]:
    """The chunks announced for ``token_id`` (the JSON details of the uploadtoken.upload
    intents of that asset), oldest first."""
    rows = await store.fetchall(
        "SELECT detail FROM events WHERE kind = 'intent' AND entry_id = ? AND asset_id = ? "
        "AND action = 'uploadtoken.upload' ORDER BY id",
        (entry_id, asset_id),
    )
    out = []
    for (detail,) in rows:
        doc = rules.raw_json(detail)
        if doc.get("token") == token_id:
            out.append(dict(doc))
    return out


async def add_exemptions(
    store: Store,
    exempt: Mapping[str, tuple[str, str | None]],
    *,
    run_id: int | None,
    now: int | None = None,
) -> None:
    """Record exemptions: entry id -> (reason, the entry it was restored from or None); one
    admin event each. An entry already exempt keeps its first record."""
    when = _wall_now() if now is None else now
    async with store.transaction() as conn:
        for entry_id, (reason, source) in exempt.items():
            cur = await conn.execute(
                "INSERT INTO exemptions (entry_id, reason, created_at, run_id, restored_from) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (entry_id) DO NOTHING",
                (entry_id, reason, when, run_id, source),
            )
            if cur.rowcount:
                await conn.execute(_ADMIN_EVENT_SQL, (when, run_id, entry_id, "exempted", reason))


async def lift_exemptions(
    store: Store, entry_ids: Sequence[str], *, run_id: int | None, now: int | None = None
) -> list[str]:
    """Remove database exemptions (``kretain unexempt``); one admin event each. Returns the
    ids that had one."""
    when = _wall_now() if now is None else now
    lifted: list[str] = []
    async with store.transaction() as conn:
        for entry_id in dict.fromkeys(entry_ids):
            row = await (
                await conn.execute("SELECT reason FROM exemptions WHERE entry_id = ?", (entry_id,))
            ).fetchone()
            if row is None:
                continue
            await conn.execute("DELETE FROM exemptions WHERE entry_id = ?", (entry_id,))
            await conn.execute(
                _ADMIN_EVENT_SQL, (when, run_id, entry_id, "exemption_lifted", row[0])
            )
            lifted.append(entry_id)
    return lifted


async def exemptions(store: Store) -> list[ExemptionRow]:
    rows = await store.fetchall("SELECT * FROM exemptions ORDER BY created_at, entry_id")
    return [ExemptionRow(**dict(r)) for r in rows]

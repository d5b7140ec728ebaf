"""The ONLY writer of `entries.state`. Every move appends an `events` row in the same transaction.

Functions (all async; ``store`` is a writable :class:`kretain.store.db.Store`; ``now`` defaults to
the wall clock, in Unix seconds):

    admit(store, admissions, *, run_id, now=None) -> AdmitResult
        Insert new entries (with their first state) or refresh known ones, re-classifying rows
        that are not in flight. Idempotent: admitting the same data twice changes nothing more.
    move(store, entry_id, from_states, to_state, *, run_id, reason=None, error=None,
         updates=None, lease_owner=None, now=None) -> None
        One guarded move. Raises StateConflictError if the row is not in ``from_states`` (or not
        leased by ``lease_owner`` when given), IllegalTransitionError if states.ALLOWED forbids it.
    move_many(store, entry_ids, from_states, to_state, *, run_id, reason=None, updates=None,
              strict=False, now=None) -> list[str]
        Batched move in one transaction. Returns the ids that did NOT move (not found or in
        another state). strict=True raises StateConflictError instead and moves nothing.
    claim(store, from_state, to_state, limit, run_id, lease_seconds, *, action=None,
          max_attempts=None, entry_ids=None, now=None) -> list[EntryRow]
        Atomically pick up to ``limit`` unleased (or lease-expired) rows in ``from_state`` (a
        state or a collection of states), oldest created first, move them to ``to_state`` and
        stamp lease_owner/lease_expires_at/lease_from_state. from == to is a pure lease (no event).
        ``max_attempts`` skips rows whose failure counter for their state (states.ATTEMPTS_COLUMN)
        has reached it.
    renew_leases(store, entry_ids, run_id, lease_seconds, *, now=None) -> int
    release_expired(store, now=None) -> int
        Rows whose lease expired go back to lease_from_state (event outcome "lease_expired").
        Never rows in `deleting`: the delete stage resolves those with Kaltura first.
    release_run(store, run_id, *, now=None) -> int
        Same for every lease held by ``run_id`` (clean shutdown, or crash recovery at start-up).
    release(store, entry_ids, run_id, *, now=None) -> int
        Same for the given rows, when ``run_id`` still holds them (a worker loop's own rows).
    reset_attempts(store, entry_ids, state, *, run_id, now=None) -> int
        Give exhausted rows in a failure state a fresh start (``kretain retry``; an event each).
    record_intent(store, *, run_id, call, entry_id, asset_id=None, detail=None, now=None)
        Before a call that changes Kaltura: an "intent" event, committed first.
    record_api_event(store, *, run_id, call, outcome, entry_id=None, asset_id=None,
                     detail=None, now=None) -> None
        Log an API call that changed (or tried to change) something: call="baseentry.delete",
        outcome="ok" | an error code | "not_found" ...; it resolves the call's intent.
    unresolved_intents(store, entry_ids) -> {entry_id: [(call, asset_id)]}
    intents_since_entering(store, entry_ids, state) -> {entry_id: [(call, asset_id, answered)]}

Moves clear the lease. ``error=`` sets last_error and increments the attempts counter of the
target state (attempts for error, backup_attempts for backup_failed, delete_attempts for
delete_failed); reaching the state a stage exists for resets that stage's counter and last_error
(sized: attempts, archived: backup_attempts, deleted/recycled/stripped: delete_attempts).
``updates`` may set only the columns in UPDATABLE_COLUMNS (checked, so no caller can write
`state` through it).

Every committed move is also one INFO line in the run log (``entry moved``), written after the
transaction commits (see db.Store.after_commit), so the JSON log holds one line per entry that
changed state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from kretain.errors import IllegalTransitionError, StateConflictError, StoreError
from kretain.store.db import Store, after_commit
from kretain.store.db import now as _wall_now
from kretain.store.models import ENTRY_METADATA_COLUMNS, EntryRow
from kretain.store.states import (
    ALLOWED,
    ATTEMPTS_COLUMN,
    FINISHED,
    STATE_TIMESTAMP,
    Action,
    State,
    check_move,
)

T = TypeVar("T")
P = ParamSpec("P")
Job = Callable[[sqlite3.Connection], T]  # a write for Store.write

__all__ = [
    "UPDATABLE_COLUMNS",
    "Admission",
    "AdmitResult",
    "Job",
    "admit",
    "as_write",
    "claim",
    "count_claimable",
    "intents_since_entering",
    "move",
    "move_many",
    "move_many_job",
    "record_api_event",
    "record_intent",
    "record_notices",
    "release",
    "release_expired",
    "release_run",
    "renew_leases",
    "reset_attempts",
    "unresolved_intents",
]

# Columns a move may update alongside the state.
UPDATABLE_COLUMNS = frozenset(
    {
        "policy",
        "action",
        "reason",
        "exempt_by",
        "bytes_total",
        "bytes_saved",
        "asset_count",
        "delete_mode",
        "last_error",
        "refreshed_at",
        "last_seen_run",
        "archive_uri",
        "purge_at",
        "recycled_at",  # cleared when a restore takes the entry out of the recycle bin
        "bytes_freed",
        "held_reason",
        "held_at",
        "notified_at",
        "new_entry_id",
    }
)

_CHUNK = 500  # ids per IN (...) list
# Reaching these states ends the stage that could fail on the way: its counter starts over.
_STAGE_DONE: dict[State, str] = {
    State.SIZED: "attempts",
    State.ARCHIVED: "backup_attempts",
    State.DELETED: "delete_attempts",
    State.RECYCLED: "delete_attempts",
    State.STRIPPED: "delete_attempts",
}
# Rows a worker holds (leased) or that kretain finished: discovery never re-classifies them.
_IN_FLIGHT = frozenset({State.DOWNLOADING, State.DELETING, State.RESTORING}) | FINISHED
# Rows with work done for their action (sizes, an archive, a failed attempt): a new action
# means that work no longer fits, so they start over as candidates.
_PROGRESSED = frozenset({State.SIZED, State.ARCHIVED, State.BACKUP_FAILED, State.DELETE_FAILED})
_RECHECK_TO_CANDIDATE = frozenset({State.KEPT, State.EXEMPT, State.ERROR, State.GONE})


def _states(states: State | str | Iterable[State | str]) -> tuple[State, ...]:
    if isinstance(states, str):
        return (State(states),)
    out = tuple(State(s) for s in states)
    if not out:
        raise ValueError("at least one from-state is required")
    return out


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _check_updates(updates: Mapping[str, Any] | None) -> dict[str, Any]:
    upd = dict(updates or {})
    bad = set(upd) - UPDATABLE_COLUMNS
    if bad:
        raise StoreError(f"columns not updatable by a move: {sorted(bad)}")
    if "action" in upd and upd["action"] is not None:
        upd["action"] = str(Action(upd["action"]))
    return upd


def _check_row_updates(
    row_updates: Mapping[str, Mapping[str, Any]] | None,
    ids: Sequence[str],
    upd: Mapping[str, Any],
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    if not row_updates:
        return {}, []
    per_row = {i: _check_updates(u) for i, u in row_updates.items()}
    cols = sorted(next(iter(per_row.values())))
    if any(sorted(u) != cols for u in per_row.values()):
        raise StoreError("row_updates must set the same columns for every row")
    if set(cols) & set(upd):
        raise StoreError("a column is in both updates and row_updates")
    missing = [i for i in ids if i not in per_row]
    if missing:
        raise StoreError(f"row_updates has no values for {missing[0]}")
    return per_row, cols


def _set_clause(
    to_state: State, upd: Mapping[str, Any], error: str | None, when: int
) -> tuple[str, list]:
    to = str(to_state)
    # Staying put (error -> error) keeps state_changed_at and the per-state timestamp.
    sets = [
        "state_changed_at = CASE WHEN state = ? THEN state_changed_at ELSE ? END",
        "state = ?",
        "lease_owner = NULL",
        "lease_expires_at = NULL",
        "lease_from_state = NULL",
    ]
    params: list[Any] = [to, when, to]
    column = STATE_TIMESTAMP.get(to_state)
    if column:
        sets.insert(0, f"{column} = CASE WHEN state = ? THEN {column} ELSE ? END")
        params[:0] = [to, when]
    if error is not None:
        counter = ATTEMPTS_COLUMN.get(to_state)
        if counter is not None:
            sets.append(f"{counter} = {counter} + 1")
        sets.append("last_error = ?")
        params.append(error)
    elif to_state in _STAGE_DONE:
        sets.append(f"{_STAGE_DONE[to_state]} = 0")
        sets.append("last_error = NULL")
    for name, value in upd.items():  # names checked against UPDATABLE_COLUMNS
        sets.append(f"{name} = ?")
        params.append(value)
    return ", ".join(sets), params


def _current_rows(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for chunk in _chunks(list(ids)):
        rows = conn.execute(
            "SELECT id, state, action, lease_owner FROM entries "
            f"WHERE id IN ({_marks(len(chunk))})",
            chunk,
        ).fetchall()
        found.update({r["id"]: r for r in rows})
    return found


_EVENT_SQL = (
    "INSERT INTO events (time, run_id, entry_id, asset_id, kind, from_state, to_state, action,"
    " outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _write_events(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Append state events, and hand them to the run log once the transaction commits."""
    if not rows:
        return
    conn.executemany(_EVENT_SQL, rows)
    after_commit(conn, rows)


def move_many_job(
    entry_ids: Sequence[str],
    from_states: State | str | Iterable[State | str],
    to_state: State | str,
    *,
    run_id: int | None,
    reason: str | None = None,
    error: str | None = None,
    updates: Mapping[str, Any] | None = None,
    row_updates: Mapping[str, Mapping[str, Any]] | None = None,
    lease_owner: int | None = None,
    strict: bool = False,
    now: int | None = None,
) -> Job[list[str]]:
    """Move every row in ``entry_ids`` that is in ``from_states`` to ``to_state``.

    ``updates`` are set on every row; ``row_updates`` maps each id to its own values for the
    same columns (e.g. sizes), so a batch is still one statement.
    Returns the ids that did not move. With strict=True a mismatch raises StateConflictError
    and the whole batch is rolled back. IllegalTransitionError is raised before any write when a
    from-state cannot reach to_state. (As a job: checked now, written when the job runs.)
    """
    froms = _states(from_states)
    to = State(to_state)
    for f in froms:
        check_move(f, to)
    upd = _check_updates(updates)
    when = _wall_now() if now is None else now
    ids = list(dict.fromkeys(entry_ids))
    set_sql, set_params = _set_clause(to, upd, error, when)
    per_row, row_cols = _check_row_updates(row_updates, ids, upd)
    if row_cols:
        set_sql += "".join(f", {c} = ?" for c in row_cols)

    def write(conn: sqlite3.Connection) -> list[str]:
        current = _current_rows(conn, ids)
        movable = [
            i
            for i in ids
            if i in current
            and current[i]["state"] in froms
            and (lease_owner is None or current[i]["lease_owner"] == lease_owner)
        ]
        moving = set(movable)
        skipped = [i for i in ids if i not in moving]
        if skipped and strict:
            shown = ", ".join(
                f"{i} ({current[i]['state'] if i in current else 'missing'})" for i in skipped[:5]
            )
            raise StateConflictError(
                f"{len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'} not in "
                f"{'/'.join(froms)} (wanted -> {to}): {shown}",
                skipped,
            )
        if not movable:
            return skipped
        guard = _marks(len(froms))
        conn.executemany(
            f"UPDATE entries SET {set_sql} WHERE id = ? AND state IN ({guard})",
            [
                (*set_params, *(per_row[i][c] for c in row_cols), i, *map(str, froms))
                for i in movable
            ],
        )
        action_after = upd.get("action", ...)
        _write_events(
            conn,
            [
                (
                    when,
                    run_id,
                    i,
                    None,
                    "state",
                    current[i]["state"],
                    str(to),
                    current[i]["action"] if action_after is ... else action_after,
                    "moved",
                    error if error is not None else reason,
                )
                for i in movable
            ],
        )
        return skipped

    return write


def as_write(job: Callable[P, Job[T]]) -> Callable[Concatenate[Store, P], Awaitable[T]]:
    """The async form of a job builder: ``await f(store, ...)`` writes ``job(...)`` as its
    own transaction (or inside the caller's open one)."""

    async def write(store: Store, *args: P.args, **kwargs: P.kwargs) -> T:
        return await store.write(job(*args, **kwargs))

    write.__doc__ = job.__doc__
    write.__name__ = job.__name__.removesuffix("_job")
    return write


move_many = as_write(move_many_job)


async def move(
    store: Store,
    entry_id: str,
    from_states: State | str | Iterable[State | str],
    to_state: State | str,
    *,
    run_id: int | None,
    reason: str | None = None,
    error: str | None = None,
    updates: Mapping[str, Any] | None = None,
    lease_owner: int | None = None,
    now: int | None = None,
) -> None:
    """One guarded move; raises StateConflictError when the row is not where the caller thinks."""
    await move_many(
        store,
        [entry_id],
        from_states,
        to_state,
        run_id=run_id,
        reason=reason,
        error=error,
        updates=updates,
        lease_owner=lease_owner,
        strict=True,
        now=now,
    )


async def claim(
    store: Store,
    from_state: State | str | Iterable[State | str],
    to_state: State | str,
    limit: int,
    run_id: int,
    lease_seconds: int,
    *,
    action: Action | str | None = None,
    max_attempts: int | None = None,
    policies: Collection[str] | None = None,
    entry_ids: Collection[str] | None = None,
    now: int | None = None,
) -> list[EntryRow]:
    """Lease up to ``limit`` rows: move them from_state -> to_state stamped with ``run_id``.

    Skips rows leased by anyone whose lease has not expired. ``action`` restricts to rows with
    that action; ``max_attempts`` skips rows whose failure counter for their state has reached
    it (the retry limit of a stage; states.ATTEMPTS_COLUMN); ``policies`` restricts to rows of
    those rules; ``entry_ids`` to those rows (at most 500). A named row this run already
    leases may be claimed again by it (a lease becoming a move keeps the state it was first
    claimed from).
    Returns the claimed rows as they are after the move.
    """
    froms = _states(from_state)
    to = State(to_state)
    for f in froms:
        if f != to:
            check_move(f, to)
    if limit <= 0:
        return []
    when = _wall_now() if now is None else now
    where, params = _claimable(
        froms, action, max_attempts, when, policies, entry_ids, own_run=run_id
    )

    def write(conn: sqlite3.Connection) -> list[Any]:
        rows = conn.execute(
            f"SELECT id, state, action FROM entries WHERE {' AND '.join(where)} "
            "ORDER BY created_at, id LIMIT ?",
            [*params, limit],
        ).fetchall()
        if not rows:
            return []
        column = STATE_TIMESTAMP.get(to)
        stamp = f", {column} = :now" if column else ""
        conn.executemany(
            "UPDATE entries SET lease_from_state = CASE WHEN state = :to THEN "
            "coalesce(lease_from_state, state) ELSE state END, state = :to, "
            "state_changed_at = CASE WHEN state = :to THEN state_changed_at ELSE :now END, "
            f"lease_owner = :run, lease_expires_at = :exp{stamp} WHERE id = :id",
            [
                {"to": str(to), "now": when, "run": run_id, "exp": when + lease_seconds, "id": r[0]}
                for r in rows
            ],
        )
        moved = [r for r in rows if r["state"] != str(to)]
        if moved:
            _write_events(
                conn,
                [
                    (
                        when,
                        run_id,
                        r["id"],
                        None,
                        "state",
                        r["state"],
                        str(to),
                        r["action"],
                        "claimed",
                        None,
                    )
                    for r in moved
                ],
            )
        ids = [r["id"] for r in rows]
        return conn.execute(
            f"SELECT * FROM entries WHERE id IN ({_marks(len(ids))}) ORDER BY created_at, id", ids
        ).fetchall()

    return [EntryRow.from_row(r) for r in await store.write(write)]


def _claimable(
    froms: Sequence[State],
    action: Action | str | None,
    max_attempts: int | None,
    when: int,
    policies: Collection[str] | None = None,
    entry_ids: Collection[str] | None = None,
    own_run: int | None = None,
) -> tuple[list[str], list[Any]]:
    """The WHERE terms (and parameters) of rows a claim may take."""
    where = [f"state IN ({_marks(len(froms))})", "(lease_owner IS NULL OR lease_expires_at <= ?)"]
    params: list[Any] = [*map(str, froms), when]
    if entry_ids is not None and own_run is not None:
        # Named rows this run already leases may move on under the same lease.
        where[1] = "(lease_owner IS NULL OR lease_expires_at <= ? OR lease_owner = ?)"
        params.append(own_run)
    if entry_ids is not None:
        ids = list(entry_ids)
        if len(ids) > _CHUNK:
            raise StoreError(f"a claim names at most {_CHUNK} entries, got {len(ids)}")
        where.append(f"id IN ({_marks(len(ids))})")
        params += ids
    if action is not None:
        where.append("action = ?")
        params.append(str(Action(action)))
    if policies is not None:
        names = sorted(policies)
        where.append(f"policy IN ({_marks(len(names))})" if names else "0")
        params += names
    if max_attempts is not None:
        for state in froms:
            counter = ATTEMPTS_COLUMN.get(state)
            if counter is not None:
                where.append(f"(state != ? OR {counter} < ?)")
                params += [str(state), max_attempts]
    return where, params


async def count_claimable(
    store: Store,
    from_state: State | str | Iterable[State | str],
    *,
    action: Action | str | None = None,
    max_attempts: int | None = None,
    policies: Collection[str] | None = None,
    entry_ids: Collection[str] | None = None,
    now: int | None = None,
) -> int:
    """How many rows a claim with these arguments could take now (a stage's total)."""
    when = _wall_now() if now is None else now
    where, params = _claimable(_states(from_state), action, max_attempts, when, policies, entry_ids)
    row = await store.fetchone(f"SELECT count(*) FROM entries WHERE {' AND '.join(where)}", params)
    return int(row[0])


async def renew_leases(
    store: Store,
    entry_ids: Sequence[str],
    run_id: int,
    lease_seconds: int,
    *,
    now: int | None = None,
) -> int:
    """Extend leases held by ``run_id`` (heartbeat for long downloads). Returns rows renewed."""
    when = _wall_now() if now is None else now
    count = 0
    async with store.transaction() as conn:
        for chunk in _chunks(list(entry_ids)):
            cur = await conn.execute(
                f"UPDATE entries SET lease_expires_at = ? WHERE lease_owner = ? "
                f"AND id IN ({_marks(len(chunk))})",
                [when + lease_seconds, run_id, *chunk],
            )
            count += cur.rowcount
    return count


async def _release(store: Store, where: str, params: Sequence[Any], when: int, why: str) -> int:
    # Rows in `deleting` stay: a call that changes Kaltura may have gone through, so only the
    # delete stage's resolution (which asks Kaltura) may move them on.
    def write(conn: sqlite3.Connection) -> int:
        rows = conn.execute(
            "SELECT id, state, action, lease_owner, lease_from_state FROM entries "
            f"WHERE ({where}) AND state != 'deleting'",
            params,
        ).fetchall()
        for r in rows:
            back = State(r["lease_from_state"] or r["state"])
            if back != State(r["state"]) and back not in ALLOWED[State(r["state"])]:
                raise IllegalTransitionError(f"lease release {r['state']} -> {back} not allowed")
        conn.executemany(
            "UPDATE entries SET state = coalesce(lease_from_state, state), "
            "state_changed_at = CASE WHEN lease_from_state IS NULL OR lease_from_state = state "
            "THEN state_changed_at ELSE ? END, "
            "lease_owner = NULL, lease_expires_at = NULL, lease_from_state = NULL WHERE id = ?",
            [(when, r["id"]) for r in rows],
        )
        _write_events(
            conn,
            [
                (
                    when,
                    r["lease_owner"],
                    r["id"],
                    None,
                    "state",
                    r["state"],
                    r["lease_from_state"] or r["state"],
                    r["action"],
                    why,
                    f"lease of run {r['lease_owner']} released",
                )
                for r in rows
                if (r["lease_from_state"] or r["state"]) != r["state"]
            ],
        )
        return len(rows)

    return await store.write(write)


async def release_expired(store: Store, now: int | None = None) -> int:
    """Return rows whose lease expired to the state they were claimed from. Returns the count."""
    when = _wall_now() if now is None else now
    return await _release(
        store, "lease_owner IS NOT NULL AND lease_expires_at <= ?", [when], when, "lease_expired"
    )


async def release_run(store: Store, run_id: int, *, now: int | None = None) -> int:
    """Return every row leased by ``run_id`` to the state it was claimed from."""
    when = _wall_now() if now is None else now
    return await _release(store, "lease_owner = ?", [run_id], when, "lease_released")


async def release(
    store: Store, entry_ids: Collection[str], run_id: int, *, now: int | None = None
) -> int:
    """Return the given rows that ``run_id`` still leases to the state they were claimed from."""
    when = _wall_now() if now is None else now
    ids = list(entry_ids)
    released = 0
    for chunk in _chunks(ids):
        released += await _release(
            store,
            f"lease_owner = ? AND id IN ({_marks(len(chunk))})",
            [run_id, *chunk],
            when,
            "lease_released",
        )
    return released


async def reset_attempts(
    store: Store,
    entry_ids: Collection[str] | None,
    state: State | str,
    *,
    run_id: int | None,
    now: int | None = None,
) -> list[str]:
    """Reset the failure counter of rows in ``state`` (a failure state; all of them when
    ``entry_ids`` is None), so the stage tries them again. One admin event per row."""
    failing = State(state)
    counter = ATTEMPTS_COLUMN.get(failing)
    if counter is None:
        raise StoreError(f"{failing} has no attempts counter")
    when = _wall_now() if now is None else now

    def write(conn: sqlite3.Connection) -> list[str]:
        if entry_ids is None:
            rows = conn.execute(
                f"SELECT id, action, {counter} FROM entries WHERE state = ? AND {counter} > 0",
                (str(failing),),
            ).fetchall()
        else:
            rows = []
            for chunk in _chunks(list(entry_ids)):
                rows += conn.execute(
                    f"SELECT id, action, {counter} FROM entries WHERE state = ? "
                    f"AND {counter} > 0 AND id IN ({_marks(len(chunk))})",
                    (str(failing), *chunk),
                ).fetchall()
        conn.executemany(
            f"UPDATE entries SET {counter} = 0 WHERE id = ?", [(r["id"],) for r in rows]
        )
        conn.executemany(
            _EVENT_SQL,
            [
                (when, run_id, r["id"], None, "admin", str(failing), str(failing), r["action"],
                 "attempts_reset", f"{counter} was {r[2]}")
                for r in rows
            ],
        )  # fmt: skip
        return [r["id"] for r in rows]

    return await store.write(write)


async def record_api_event(
    store: Store,
    *,
    run_id: int | None,
    call: str,
    outcome: str,
    entry_id: str | None = None,
    asset_id: str | None = None,
    detail: str | None = None,
    now: int | None = None,
) -> None:
    """Append an `events` row of kind "api" (call like "flavorasset.delete"; never a secret):
    the outcome of a call, which also resolves its intent (see record_intent)."""
    when = _wall_now() if now is None else now
    async with store.transaction() as conn:
        await conn.execute(
            _EVENT_SQL, (when, run_id, entry_id, asset_id, "api", None, None, call, outcome, detail)
        )


async def record_intent(
    store: Store,
    *,
    run_id: int | None,
    call: str,
    entry_id: str,
    asset_id: str | None = None,
    detail: str | None = None,
    now: int | None = None,
) -> None:
    """Append a kind "intent" event BEFORE a call that changes Kaltura, committed before the
    call is sent: a run that starts after a crash finds the intents without an outcome
    (unresolved_intents) and asks Kaltura what happened before anything else."""
    when = _wall_now() if now is None else now
    async with store.transaction() as conn:
        await conn.execute(
            _EVENT_SQL,
            (when, run_id, entry_id, asset_id, "intent", None, None, call, "intent", detail),
        )


async def record_notices(
    store: Store,
    entry_ids: Collection[str],
    *,
    run_id: int | None,
    detail: str | None = None,
    now: int | None = None,
) -> None:
    """Stamp ``notified_at`` on entries their owner was just told about (first notice only:
    the notice period counts from it), with a kind "notice" event each."""
    when = _wall_now() if now is None else now
    ids = list(entry_ids)

    def write(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "UPDATE entries SET notified_at = ? WHERE id = ? AND notified_at IS NULL",
            [(when, i) for i in ids],
        )
        conn.executemany(
            _EVENT_SQL,
            [(when, run_id, i, None, "notice", None, None, None, "notified", detail) for i in ids],
        )

    await store.write(write)


async def unresolved_intents(
    store: Store, entry_ids: Collection[str]
) -> dict[str, list[tuple[str, str | None]]]:
    """entry id -> [(call, asset id)] of intents with no later outcome event for the same
    call and asset: calls that may or may not have reached Kaltura."""
    ids = list(entry_ids)
    out: dict[str, list[tuple[str, str | None]]] = {}
    for chunk in _chunks(ids):
        rows = await store.fetchall(
            "SELECT i.entry_id, i.action, i.asset_id FROM events i "
            f"WHERE i.kind = 'intent' AND i.entry_id IN ({_marks(len(chunk))}) "
            "AND NOT EXISTS (SELECT 1 FROM events o WHERE o.kind = 'api' AND o.id > i.id "
            "AND o.entry_id = i.entry_id AND o.action = i.action "
            "AND o.asset_id IS i.asset_id) ORDER BY i.id",
            chunk,
        )
        for r in rows:
            out.setdefault(r[0], []).append((r[1], r[2]))
    return out


async def intents_since_entering(
    store: Store, entry_ids: Collection[str], state: State | str
) -> dict[str, list[tuple[str, str | None, bool]]]:
    """entry id -> [(call, asset id, answered)] of the intents recorded since the row last
    moved into ``state``, oldest first; ``answered`` when an outcome event followed. A run
    can stop between recording an answer and the move it leads to, so whoever resolves a
    stopped row needs the answered calls as well as the open ones."""
    ids = list(entry_ids)
    out: dict[str, list[tuple[str, str | None, bool]]] = {}
    for chunk in _chunks(ids):
        rows = await store.fetchall(
            "SELECT i.entry_id, i.action, i.asset_id, EXISTS (SELECT 1 FROM events o "
            "WHERE o.kind = 'api' AND o.id > i.id AND o.entry_id = i.entry_id "
            "AND o.action = i.action AND o.asset_id IS i.asset_id) FROM events i "
            f"WHERE i.kind = 'intent' AND i.entry_id IN ({_marks(len(chunk))}) "
            "AND i.id > coalesce((SELECT max(m.id) FROM events m WHERE m.kind = 'state' "
            "AND m.entry_id = i.entry_id AND m.to_state = ?), 0) ORDER BY i.id",
            [*chunk, str(State(state))],
        )
        for r in rows:
            out.setdefault(r[0], []).append((r[1], r[2], bool(r[3])))
    return out


# ---- admission (discovery) ----------------------------------------------------------------


class _DecisionLike(Protocol):
    rule: str | None
    action: str | None
    reason: str
    exempt_by: str | None

    @property
    def incomplete(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Admission:
    """What discovery learned about one entry: its metadata and the state the policy wants."""

    fields: Mapping[str, Any]  # from models.entry_fields_from_wire
    state: State  # CANDIDATE, KEPT, EXEMPT or ERROR
    policy: str | None = None
    action: Action | None = None
    reason: str | None = None
    exempt_by: str | None = None

    @classmethod
    def from_decision(cls, fields: Mapping[str, Any], decision: _DecisionLike) -> Admission:
        """candidate when the decision has an action; exempt when an exemption applied;
        error when data was incomplete (fail closed, retried next run); kept otherwise."""
        if decision.action is not None:
            state = State.CANDIDATE
        elif decision.exempt_by:
            state = State.EXEMPT
        elif decision.incomplete:
            state = State.ERROR
        else:
            state = State.KEPT
        return cls(
            fields=fields,
            state=state,
            policy=decision.rule,
            action=Action(decision.action) if decision.action else None,
            reason=decision.reason,
            exempt_by=decision.exempt_by,
        )


@dataclass(slots=True)
class AdmitResult:
    inserted: int = 0
    refreshed: int = 0
    moves: dict[str, int] = field(default_factory=dict)  # "kept->candidate": n
    in_flight: list[str] = field(default_factory=list)  # known rows left alone (leased/deleted)


_META_COLS = [c for c in ENTRY_METADATA_COLUMNS if c != "id"]


def _target_for(
    current: State, wanted: State, current_action: str | None, wanted_action: str | None
) -> State:
    """Where a known row should go when the policy now says ``wanted``: a qualifying row keeps
    its progress unless its action changed (then its sizes or archive no longer fit)."""
    if wanted == State.CANDIDATE:
        if current in _RECHECK_TO_CANDIDATE:
            return State.CANDIDATE
        if current in _PROGRESSED and current_action != wanted_action:
            return State.CANDIDATE
        return current
    return wanted


async def admit(
    store: Store, admissions: Collection[Admission], *, run_id: int | None, now: int | None = None
) -> AdmitResult:
    """Insert or refresh entries from discovery in one transaction (see module docstring).

    Known rows a worker holds (downloading, deleting, restoring) or that kretain finished
    (deleted, recycled, stripped, restored) keep their state, policy and action; only metadata
    is refreshed (the delete stage re-checks right before acting). Qualifying rows already in
    progress (sized, archived, backup_failed, delete_failed) keep their progress, unless their
    action changed: they go back to candidate and are sized again. bytes_saved is sizing's
    (kretain.rules.bytes_freed_by): 0 for a row that no longer has an action, NULL until a
    re-classified row is sized again.
    """
    when = _wall_now() if now is None else now
    result = AdmitResult()
    items = {a.fields["id"]: a for a in admissions}  # last one wins within a batch
    for a in items.values():
        if a.state not in (State.CANDIDATE, State.KEPT, State.EXEMPT, State.ERROR):
            raise StoreError(f"admit cannot place entry {a.fields['id']} in {a.state}")

    def write(conn: sqlite3.Connection) -> None:
        current = _current_rows(conn, list(items))
        new = [a for i, a in items.items() if i not in current]
        insert_cols = [
            *ENTRY_METADATA_COLUMNS,
            "policy",
            "action",
            "reason",
            "exempt_by",
            "state",
            "state_changed_at",
            "discovered_at",
            "last_seen_run",
            "refreshed_at",
        ]
        conn.executemany(
            f"INSERT INTO entries ({', '.join(insert_cols)}) VALUES ({_marks(len(insert_cols))})",
            [
                (
                    *(a.fields[c] for c in ENTRY_METADATA_COLUMNS),
                    a.policy,
                    a.action and str(a.action),
                    a.reason,
                    a.exempt_by,
                    str(a.state),
                    when,
                    when,
                    run_id,
                    when,
                )
                for a in new
            ],
        )
        _write_events(
            conn,
            [
                (
                    when,
                    run_id,
                    a.fields["id"],
                    None,
                    "state",
                    None,
                    str(a.state),
                    a.action and str(a.action),
                    "admitted",
                    a.reason,
                )
                for a in new
            ],
        )
        result.inserted = len(new)

        meta_sql = ", ".join(f"{c} = ?" for c in _META_COLS)
        refresh_only: list[tuple] = []
        reclassify: list[tuple] = []
        events: list[tuple] = []
        for entry_id, a in items.items():
            if entry_id not in current:
                continue
            meta = [a.fields[c] for c in _META_COLS]
            cur_state = State(current[entry_id]["state"])
            if cur_state in _IN_FLIGHT:
                result.in_flight.append(entry_id)
                refresh_only.append((*meta, run_id, when, entry_id))
                continue
            new_action = a.action and str(a.action)
            target = _target_for(cur_state, a.state, current[entry_id]["action"], new_action)
            moved = target != cur_state
            if moved:
                check_move(cur_state, target)
                key = f"{cur_state}->{target}"
                result.moves[key] = result.moves.get(key, 0) + 1
                events.append(
                    (
                        when,
                        run_id,
                        entry_id,
                        None,
                        "state",
                        str(cur_state),
                        str(target),
                        a.action and str(a.action),
                        "reclassified",
                        a.reason,
                    )
                )
            ts_col = STATE_TIMESTAMP.get(target)
            reclassify.append(
                (
                    *meta,
                    run_id,
                    when,
                    a.policy,
                    a.action and str(a.action),
                    a.reason,
                    a.exempt_by,
                    str(target),
                    when if moved else None,
                    str(target) if (moved and ts_col) else None,
                    when,
                    new_action,
                    int(moved and target == State.CANDIDATE),
                    int(moved),
                    int(moved),
                    int(moved),
                    entry_id,
                )
            )
        conn.executemany(
            f"UPDATE entries SET {meta_sql}, last_seen_run = ?, refreshed_at = ? WHERE id = ?",
            refresh_only,
        )
        conn.executemany(
            f"UPDATE entries SET {meta_sql}, last_seen_run = ?, refreshed_at = ?, policy = ?, "
            "action = ?, reason = ?, exempt_by = ?, state = ?, "
            "state_changed_at = coalesce(?, state_changed_at), "
            "gone_at = CASE WHEN ? = 'gone' THEN ? ELSE gone_at END, "
            "bytes_saved = CASE WHEN ? IS NULL THEN (CASE WHEN asset_count IS NULL THEN NULL "
            "ELSE 0 END) WHEN ? THEN NULL ELSE bytes_saved END, "
            # A verdict that moves the row ends any worker's lease on it: the worker's own
            # move then finds the row elsewhere and leaves it, and no release undoes it.
            "lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END, "
            "lease_expires_at = CASE WHEN ? THEN NULL ELSE lease_expires_at END, "
            "lease_from_state = CASE WHEN ? THEN NULL ELSE lease_from_state END WHERE id = ?",
            reclassify,
        )
        _write_events(conn, events)
        result.refreshed = sum(1 for i in items if i in current)

    await store.write(write)
    return result

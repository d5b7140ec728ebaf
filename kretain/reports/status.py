"""`kretain status`: where every entry stands, what went wrong, and what the last run did.

Names:
    status_report(store, *, runs=1) -> list[Table]     (async; three small tables)

Tables, in order (each has a title; all are small, so rows are lists):
  1. "Entries by state": state, policy, action, entries, bytes_saved, saved, bytes_total, total
     - one row per (state, policy, action) in lifecycle order, then an "all" row. bytes_* are
     exact sums of the sized entries; saved/total are the same in binary units (humanize).
  2. "Carried out": done, entries, bytes_freed, freed, last, bin empties
     - deleted / recycled / stripped: how many, the bytes freed (recycled: freed when the
     recycle bin empties), when the last one was done, and for recycled entries the next date
     the bin empties (until then they can be restored from the bin). Empty before any delete.
  3. "Errors": state, error, entries, max_attempts, example
     - rows in state error, backup_failed or delete_failed, grouped by the error's prefix
     (the text before the first ":" of last_error, or its first 60 characters), most frequent
     first, with one entry id to look at (`kretain query` or the events table tell the rest).
  4. "Last run" (or "Last N runs"): run, command, status, started, finished, as_of, counts
     - times ISO 8601 UTC; counts is the run's JSON counts as "key=value" pairs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import humanize

from kretain.output import Table
from kretain.store import queries
from kretain.store.db import Store
from kretain.store.states import ATTEMPTS_COLUMN, State

__all__ = ["ERROR_PREFIX_CHARS", "status_report"]

ERROR_PREFIX_CHARS = 60
_ORDER = {s: i for i, s in enumerate(State)}

# The failure counter of each failure state (states.ATTEMPTS_COLUMN), as SQL.
_ATTEMPTS = (
    "CASE state "
    + " ".join(f"WHEN '{state}' THEN {column}" for state, column in ATTEMPTS_COLUMN.items())
    + " END"
)
_FAILING = ", ".join(f"'{state}'" for state in ATTEMPTS_COLUMN)

_ERRORS_SQL = f"""
SELECT state, error, count(*) AS entries, max(attempts), min(id)
FROM (
    SELECT state, id, {_ATTEMPTS} AS attempts,
           trim(CASE WHEN instr(coalesce(last_error, ''), ':') BETWEEN 2 AND {ERROR_PREFIX_CHARS}
                     THEN substr(last_error, 1, instr(last_error, ':') - 1)
                     ELSE substr(coalesce(last_error, '(no message)'), 1, {ERROR_PREFIX_CHARS})
                END) AS error
    FROM entries WHERE state IN ({_FAILING})
)
GROUP BY state, error
ORDER BY entries DESC, state, error
"""


def _iso(ts: int | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _size(n: int) -> str:
    return humanize.naturalsize(n, binary=True)


def _counts_text(counts: Mapping[str, Any] | None) -> str:
    """A run's counts as "key=value" pairs. Nested per-stage counts (a `kretain run`'s
    {"stages": {"size": {...}}}) become "size: sized=450056 batches=3001", zeros left out,
    so the row stays readable."""
    if not counts:
        return ""
    flat: list[str] = []
    staged: list[str] = []

    def numbers(values: Mapping[str, Any]) -> str:
        return " ".join(
            f"{k}={v}" for k, v in values.items() if isinstance(v, int | str) and v not in (0, "")
        )

    for key, value in counts.items():
        if isinstance(value, Mapping):
            subs = {k: v for k, v in value.items() if isinstance(v, Mapping)}
            for name, inner in subs.items():
                staged.append(f"{name}: {numbers(inner)}")
            if len(subs) < len(value) and (text := numbers(value)):
                staged.append(f"{key}: {text}")
        elif isinstance(value, list):
            if value:
                flat.append(f"{key}={len(value)}")
        else:
            flat.append(f"{key}={value}")
    return "; ".join(p for p in (", ".join(flat), *staged) if p)


async def status_report(store: Store, *, runs: int = 1) -> list[Table]:
    """Four tables an admin reads at a glance: states, what was carried out, errors, last
    run(s)."""
    status = sorted(
        await queries.status_rows(store),
        key=lambda r: (_ORDER[r.state], r.policy is None, r.policy or "", r.action or ""),
    )
    rows: list[list[Any]] = [
        [
            str(r.state),
            r.policy,
            r.action,
            r.entries,
            r.bytes_saved,
            _size(r.bytes_saved),
            r.bytes_total,
            _size(r.bytes_total),
        ]
        for r in status
    ]
    entries = sum(r.entries for r in status)
    saved = sum(r.bytes_saved for r in status)
    total = sum(r.bytes_total for r in status)
    rows.append(["all", None, None, entries, saved, _size(saved), total, _size(total)])
    by_state = Table(
        headers=[
            "state",
            "policy",
            "action",
            "entries",
            "bytes_saved",
            "saved",
            "bytes_total",
            "total",
        ],
        rows=rows,
        title="Entries by state",
    )

    error_rows = [list(r) for r in await store.fetchall(_ERRORS_SQL)]
    errors = Table(
        headers=["state", "error", "entries", "max_attempts", "example"],
        rows=error_rows,
        title="Errors",
    )

    recent = await queries.recent_runs(store, limit=max(1, runs))
    run_rows = [
        [
            r.id,
            r.command,
            r.status,
            _iso(r.started_at),
            _iso(r.finished_at),
            r.as_of,
            _counts_text(r.counts),
        ]
        for r in recent
    ]
    last = Table(
        headers=["run", "command", "status", "started", "finished", "as_of", "counts"],
        rows=run_rows,
        title="Last run" if runs <= 1 else f"Last {runs} runs",
    )
    done = Table(
        headers=["done", "entries", "bytes_freed", "freed", "last", "bin empties"],
        rows=[
            [state, n, freed, _size(freed), _iso(last), _iso(purge)]
            for state, n, freed, last, purge in await queries.carried_out(store)
        ],
        title="Carried out (deleted, recycled, stripped)",
    )
    return [by_state, done, errors, last]

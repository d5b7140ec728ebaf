"""CSV-ready exports: one row per entry, or one row per owner (mail merge).

Names (async; ``store`` is an open :class:`kretain.store.db.Store`, read-only is enough):
    export_entries(store, *, states=None, policies=None, columns="seed") -> Table
    export_owners(store, *, states=None, policies=None) -> Table
    SEED_COLUMNS

``states=None`` means IN_POLICY_STATES (every entry the policy acts on; see summary.py); pass
ALL_STATES for the whole inventory. ``policies=None`` means any rule (and rows without one).

Rows are streamed from a cursor on a separate read-only connection to the same file (the Table's
``rows`` is a plain iterator, so output.render writes them as they come and a million rows never
sit in memory). The cursor reads one consistent snapshot even while a run writes. The iterator
closes its connection when exhausted; errors in the selection raise before the first row.

Columns
  seed: policy, entry_id, entry_name, media_type, created_on, last_updated, duration_seconds,
        plays, status, owner, lastPlayedAt, reason, number_of_flavors, bytes_saved
        - the seed's candidate CSV plus its flavor step. Dates are ISO 8601 UTC
        ("2019-05-01T12:00:00Z"); lastPlayedAt is empty when never played. media_type uses the
        seed's labels: "YouTube Quiz" / "YouTube" / "Quiz" for external/quiz entries, else Video,
        Audio, Image (other values as their number). status is the KalturaEntryStatus name
        (READY, ERROR_CONVERTING ...) or the raw value. number_of_flavors (children included) and
        bytes_saved are empty until the entry was sized.
        Exports that include `restored` rows add new_entry_id (the entry a restore re-created).
  full: every `entries` column except `raw` (which is the whole wire object), in schema order;
        the *_at columns as ISO 8601 UTC.
Rows are ordered by policy, created_at, id.

Owners (mail merge): owner, entries, hours, bytes_saved, human, policies, entry_ids
    hours: duration of the owner's entries, images excluded, two decimals; bytes_saved: exact
    sum of known sizes; human: the same, binary units; policies: rule names joined by "; ";
    entry_ids: ids joined by spaces, oldest first. Entries without an owner form the row with
    an empty owner. Ordered by owner.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterator, Sequence
from decimal import Decimal
from typing import Any, Literal

import humanize

from kretain.output import Table
from kretain.reports.query import ReportError, open_readonly, stream
from kretain.reports.summary import check_states, two_places
from kretain.rules import ENTRY_STATUS_NAMES
from kretain.store.db import Store
from kretain.store.states import State

__all__ = ["FULL_EXCLUDED", "OWNER_COLUMNS", "SEED_COLUMNS", "export_entries", "export_owners"]

SEED_COLUMNS: tuple[str, ...] = (
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
)
OWNER_COLUMNS: tuple[str, ...] = (
    "owner",
    "entries",
    "hours",
    "bytes_saved",
    "human",
    "policies",
    "entry_ids",
)
FULL_EXCLUDED = frozenset({"raw"})

_ISO = "'%Y-%m-%dT%H:%M:%SZ'"
_MEDIA_NAMES = {1: "Video", 2: "Image", 5: "Audio", 201: "Live stream"}


def _iso(column: str) -> str:
    return f"strftime({_ISO}, {column}, 'unixepoch')"


def _case(column: str, mapping: dict[Any, str]) -> str:
    whens = " ".join(f"WHEN {_sql_literal(k)} THEN {_sql_literal(v)}" for k, v in mapping.items())
    return f"CASE {column} {whens} ELSE CAST({column} AS TEXT) END"


def _sql_literal(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


_SEED_SELECT = f"""
    e.policy,
    e.id,
    e.name,
    CASE WHEN e.is_external AND e.is_quiz THEN 'YouTube Quiz'
         WHEN e.is_external THEN 'YouTube'
         WHEN e.is_quiz THEN 'Quiz'
         ELSE {_case("e.media_type", _MEDIA_NAMES)} END,
    {_iso("e.created_at")},
    {_iso("e.updated_at")},
    e.duration,
    e.plays,
    {_case("e.status", ENTRY_STATUS_NAMES)},
    e.owner,
    {_iso("e.last_played_at")},
    e.reason,
    CASE WHEN e.asset_count IS NULL THEN NULL ELSE
        (SELECT count(*) FROM assets a WHERE a.entry_id = e.id AND a.kind = 'flavor') END,
    e.bytes_saved
"""


def _where(
    states: Collection[str] | None, policies: Collection[str] | None
) -> tuple[str, list[Any]]:
    chosen = check_states(states)
    sql = f"WHERE e.state IN ({','.join('?' * len(chosen))})"
    params: list[Any] = list(chosen)
    if policies is not None:
        names = [policies] if isinstance(policies, str) else list(policies)
        if not names:
            raise ReportError("no policies selected")
        sql += f" AND e.policy IN ({','.join('?' * len(names))})"
        params += names
    return sql, params


def _full_select(columns: Sequence[str]) -> str:
    return ",\n".join(
        f'{_iso(f"e.{c}")} AS "{c}"' if c.endswith("_at") else f'e."{c}"' for c in columns
    )


async def export_entries(
    store: Store,
    *,
    states: Collection[str] | None = None,
    policies: Collection[str] | None = None,
    columns: Literal["seed", "full"] = "seed",
) -> Table:
    """One row per entry in ``states`` (None = IN_POLICY_STATES) and ``policies`` (None = any).

    Streams: ``rows`` is an iterator over a cursor (see the module docstring).
    """
    if columns not in ("seed", "full"):
        raise ReportError(f"unknown column set {columns!r} (seed or full)")
    where, params = _where(states, policies)
    conn = open_readonly(store.path)
    try:
        if columns == "seed":
            headers = list(SEED_COLUMNS)
            select = _SEED_SELECT
            if str(State.RESTORED) in check_states(states):
                # A re-created entry has a new id: show it beside the old one.
                headers.append("new_entry_id")
                select += ", e.new_entry_id"
        else:
            names = [r[1] for r in conn.execute("PRAGMA table_info(entries)")]
            headers = [c for c in names if c not in FULL_EXCLUDED]
            select = _full_select(headers)
    except BaseException:
        conn.close()
        raise
    sql = f"SELECT {select} FROM entries e {where} ORDER BY e.policy, e.created_at, e.id"
    _, rows = stream(conn, sql, params)
    return Table(headers=headers, rows=rows, title=f"Entries ({columns} columns)")


def _owner_rows(rows: Iterator[Sequence[Any]]) -> Iterator[list[Any]]:
    for owner, group in itertools.groupby(rows, key=lambda r: r[0]):
        count = seconds = saved = 0
        policies: set[str] = set()
        ids: list[str] = []
        for _, entry_id, policy, duration, bytes_saved in group:
            count += 1
            seconds += duration
            saved += bytes_saved
            if policy is not None:
                policies.add(policy)
            ids.append(entry_id)
        yield [
            owner,
            count,
            two_places(Decimal(seconds) / 3600),
            saved,
            humanize.naturalsize(saved, binary=True),
            "; ".join(sorted(policies)),
            " ".join(ids),
        ]


async def export_owners(
    store: Store,
    *,
    states: Collection[str] | None = None,
    policies: Collection[str] | None = None,
) -> Table:
    """One row per owner of the selected entries (mail merge); streamed, grouped by owner."""
    where, params = _where(states, policies)
    conn = open_readonly(store.path)
    # Images have no running time; unknown sizes add 0 (the summary counts them separately).
    sql = (
        "SELECT coalesce(e.owner, ''), e.id, e.policy, "
        "CASE WHEN e.media_type IS 2 THEN 0 ELSE coalesce(e.duration, 0) END, "
        f"coalesce(e.bytes_saved, 0) FROM entries e {where} "
        "ORDER BY coalesce(e.owner, ''), e.created_at, e.id"
    )
    _, rows = stream(conn, sql, params)
    return Table(headers=list(OWNER_COLUMNS), rows=_owner_rows(rows), title="Owners")

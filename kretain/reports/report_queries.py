"""The SQL behind `kretain report`: a few GROUP BY queries over the state database.

Names (async; ``store`` is an open read-only :class:`kretain.store.db.Store`):
    read_cube(store) -> list[CubeRow]            every entry, grouped (one scan of `entries`)
    read_owners(store, limit=20) -> list[OwnerRow]   in-policy storage by owner, largest first
    read_timeline(store) -> Timeline             entries the delete stage finished, by period
    read_runs(store) -> (last run | None, as_of of the latest run that recorded one | None)
    HELD_PREFIX_CHARS

The cube holds one row per (state, policy, action, creation year, held-back reason, partner,
backed up or not):
every chart of the report except the owners and the timeline is a sum over its rows, so the
`entries` table (whose rows carry the whole wire object) is scanned once for all of them.
Python only adds up these few hundred groups; nothing is read per entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from kretain.reports.status import ERROR_PREFIX_CHARS
from kretain.reports.summary import IN_POLICY_STATES
from kretain.store import queries
from kretain.store.db import Store
from kretain.store.models import RunRow
from kretain.store.states import FINISHED, State

__all__ = [
    "HELD_PREFIX_CHARS",
    "REMOVED_STATES",
    "CubeRow",
    "OwnerRow",
    "Timeline",
    "TimelineRow",
    "read_cube",
    "read_owners",
    "read_runs",
    "read_timeline",
]

HELD_PREFIX_CHARS = ERROR_PREFIX_CHARS
# What the delete stage leaves behind: the entry (or its flavors) is gone from Kaltura.
REMOVED_STATES: tuple[str, ...] = (State.DELETED, State.RECYCLED, State.STRIPPED)
assert set(REMOVED_STATES) <= FINISHED
_MEDIA_IMAGE = 2


def _marks(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


# held: the reason's prefix before ":" (like status.py's error groups), else its first
# HELD_PREFIX_CHARS characters, so free-text reasons still fall into few groups.
_CUBE_SQL = f"""
SELECT state, policy, action,
       CAST(strftime('%Y', created_at, 'unixepoch') AS INTEGER) AS year,
       CASE WHEN held_reason IS NULL THEN NULL
            WHEN instr(held_reason, ':') BETWEEN 2 AND {HELD_PREFIX_CHARS}
            THEN trim(substr(held_reason, 1, instr(held_reason, ':') - 1))
            ELSE trim(substr(held_reason, 1, {HELD_PREFIX_CHARS})) END AS held,
       partner_id,
       archived_at IS NOT NULL AS backed_up,
       count(*),
       coalesce(sum(bytes_saved), 0),
       coalesce(sum(bytes_saved IS NULL), 0),
       coalesce(sum(bytes_freed), 0)
FROM entries
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""


@dataclass(frozen=True, slots=True)
class CubeRow:
    state: str
    policy: str | None
    action: str | None
    year: int
    held: str | None  # held-back reason prefix, or None
    partner_id: int | None
    backed_up: bool  # archived_at is set: a backup was completed (kept if verify demotes it)
    entries: int
    bytes_saved: int  # unknown sizes add 0 (see unsized)
    unsized: int
    bytes_freed: int

    @property
    def in_policy(self) -> bool:
        return self.state in IN_POLICY_STATES


async def read_cube(store: Store) -> list[CubeRow]:
    rows = await store.fetchall(_CUBE_SQL)
    return [
        CubeRow(
            state=r[0],
            policy=r[1],
            action=r[2],
            year=int(r[3]),
            held=r[4] or None,
            partner_id=r[5],
            backed_up=bool(r[6]),
            entries=int(r[7]),
            bytes_saved=int(r[8]),
            unsized=int(r[9]),
            bytes_freed=int(r[10]),
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class OwnerRow:
    owner: str | None
    entries: int
    seconds: int  # running time, images excluded (as the summary counts it)
    bytes_saved: int


_OWNERS_SQL = f"""
SELECT owner, count(*),
       coalesce(sum(CASE WHEN media_type IS {_MEDIA_IMAGE} THEN 0
                    ELSE coalesce(duration, 0) END), 0),
       coalesce(sum(bytes_saved), 0) AS saved
FROM entries
WHERE state IN ({_marks(IN_POLICY_STATES)})
GROUP BY owner
ORDER BY saved DESC, count(*) DESC, owner IS NULL, owner
LIMIT ?
"""


async def read_owners(store: Store, limit: int = 20) -> list[OwnerRow]:
    """The ``limit`` owners with the most in-policy storage (entries without an owner form one
    group, owner None). Ties: more entries first, then by name."""
    rows = await store.fetchall(_OWNERS_SQL, (limit,))
    return [OwnerRow(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows]


@dataclass(frozen=True, slots=True)
class TimelineRow:
    period: str  # ISO date: the day, or the Monday of the week, or the 1st of the month
    to_state: str
    entries: int
    bytes_freed: int


@dataclass(frozen=True, slots=True)
class Timeline:
    unit: str  # "day" | "week" | "month"
    first: str | None  # first and last period holding a finished delete
    last: str | None
    rows: list[TimelineRow]


# The delete stage finishing an entry: a state event out of `deleting` into a removed state.
# A recycled entry whose bin is emptied later (recycled -> deleted) is not counted again.
_FINISH_WHERE = f"""
v.kind = 'state' AND v.from_state = '{State.DELETING}'
AND v.to_state IN ({_marks(REMOVED_STATES)})
"""
_PERIOD_SQL = {
    "day": "date(v.time, 'unixepoch')",
    # Monday of the event's week ('weekday 0' moves on to Sunday, then back six days).
    "week": "date(v.time, 'unixepoch', 'weekday 0', '-6 days')",
    "month": "date(v.time, 'unixepoch', 'start of month')",
}
DAYS_BY_DAY = 92  # a longer span is drawn by week,
DAYS_BY_WEEK = 2 * 366  # and a longer one still by month


async def read_timeline(store: Store) -> Timeline:
    """Entries the delete stage finished, per period and state reached, with the bytes the
    stage recorded as freed for them (`entries.bytes_freed`)."""
    span = await store.fetchone(
        f"SELECT min(v.time), max(v.time) FROM events v WHERE {_FINISH_WHERE}"
    )
    if span is None or span[0] is None:
        return Timeline("day", None, None, [])
    days = (int(span[1]) - int(span[0])) / 86_400
    unit = "day" if days <= DAYS_BY_DAY else "week" if days <= DAYS_BY_WEEK else "month"
    period = _PERIOD_SQL[unit]
    rows = await store.fetchall(
        f"SELECT {period} AS period, v.to_state, count(*), coalesce(sum(e.bytes_freed), 0) "
        f"FROM events v LEFT JOIN entries e ON e.id = v.entry_id WHERE {_FINISH_WHERE} "
        "GROUP BY 1, 2 ORDER BY 1, 2"
    )
    out = [TimelineRow(r[0], r[1], int(r[2]), int(r[3])) for r in rows]
    return Timeline(unit, out[0].period, out[-1].period, out)


async def read_runs(store: Store) -> tuple[RunRow | None, str | None]:
    """The latest run (any command that wrote), and the as-of date of the latest run that
    recorded one (the date the policy judged the entries at)."""
    recent = await queries.recent_runs(store, limit=1)
    row = await store.fetchone(
        "SELECT as_of FROM runs WHERE as_of IS NOT NULL ORDER BY id DESC LIMIT 1"
    )
    return (recent[0] if recent else None), (row[0] if row else None)

"""The SQL behind `kretain report` (the cube, the runs) and the figures made from grouped rows.

Names (async; ``store`` is an open read-only :class:`kretain.store.db.Store`):
    table_halves(store) -> async context manager: [store, a second connection], each reading
                           half of `entries`, at one committed state
    read_cube(store) -> list[CubeRow]            every entry, grouped (one pass)
    read_partner(store) -> int | None            the partner id of the entries
    read_runs(store) -> (last run | None, as_of of the latest run that recorded one | None)
    top_owners(groups, limit=20) -> list[OwnerRow]   in-policy storage by owner, largest first
                                                 (from summary.read_owner_groups)
    timeline(cube) -> Timeline                   removals per day, week or month (from the cube)
    HELD_PREFIX_CHARS, REMOVED_STATES

The report reads the table in two passes: summary.py's GROUP BY rule and owner (the seed's
table, the headline, media types and the owners) and the cube here, each in two halves at once
(table_halves).

The cube holds one row per (state, policy, action, creation year, held-back reason, backed up
or not, day removed, recycled first): every figure of the report that is not the summary's is a
sum over its rows. Python only adds up these groups (a few thousand at most); nothing is read
per entry.

When removals happened comes from the per-state timestamps (deleted_at, recycled_at,
stripped_at): transitions.py stamps them in the same statement that writes the move's event,
with the same time, so they say what the events say (the tests check the two agree) without
reading the events table, which grows by several rows per entry and run.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from kretain.reports.query import PROGRESS_STEPS
from kretain.reports.status import ERROR_PREFIX_CHARS
from kretain.reports.summary import IN_POLICY_STATES, OwnerGroup, sequential_reads
from kretain.store import queries
from kretain.store.db import Store, open_store
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
    "read_partner",
    "read_runs",
    "table_halves",
    "timeline",
    "top_owners",
]

HELD_PREFIX_CHARS = ERROR_PREFIX_CHARS
# What the delete stage leaves behind: the entry (or its flavors) is gone from Kaltura.
REMOVED_STATES: tuple[str, ...] = (State.DELETED, State.RECYCLED, State.STRIPPED)
assert set(REMOVED_STATES) <= FINISHED
DAY = 86_400
_MEDIA_IMAGE = 2


def _marks(values: Iterable[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


SNAPSHOT_TRIES = 20


async def _begin_read(store: Store) -> None:
    """BEGIN, and a read that fixes the snapshot the transaction sees."""
    await store.fetchall("BEGIN")
    await store.fetchall("SELECT 1 FROM main.meta LIMIT 1")


async def _same_snapshot(store: Store, twin: Store) -> bool:
    """Begin a read transaction on each, on the same committed state; False (and neither
    begun) when a writer kept committing in between for SNAPSHOT_TRIES tries."""
    for _ in range(SNAPSHOT_TRIES):
        before = (await twin.fetchone("PRAGMA data_version"))[0]
        await _begin_read(store)
        await _begin_read(twin)
        if (await twin.fetchone("PRAGMA data_version"))[0] == before:
            return True
        await twin.fetchall("COMMIT")
        await store.fetchall("COMMIT")
    return False


async def _halves(store: Store) -> list[tuple[int, int]]:
    """Two rowid ranges that split `entries` in about equal halves (none: an empty table)."""
    first, last = await store.fetchone("SELECT min(rowid), max(rowid) FROM main.entries")
    if first is None:
        return []
    middle = (first + last) // 2
    return [(first, middle), (middle + 1, last)]


@contextlib.asynccontextmanager
async def table_halves(
    store: Store, *, progress: Callable[[], bool] | None = None
) -> AsyncIterator[list[Store]]:
    """Connections that together read `entries` once, at one committed state, each a part of
    it front to back (sequential_reads): ``store`` the first half of the rows by rowid, and a
    second read-only connection the rest. Passes over them run at once, each on its own core
    (SQLite runs a statement on the calling thread, and Python's sqlite3 lets go of the GIL
    while it runs); the results of the parts add up to those of the table.

    One committed state: the second connection reads PRAGMA data_version, the first begins,
    then the second; if the second's data_version inside its transaction is the one it read
    before, no write was committed in between, so both see what the first sees. A commit in
    that gap means another try; after SNAPSHOT_TRIES (a writer committing without pause)
    ``store`` alone reads the whole table. ``progress``: the second connection's progress
    handler (Ctrl-C, see query.sigint_stops_queries).
    """
    twin = await open_store(store.path, readonly=True)
    try:
        if progress is not None:
            handler = progress
            await twin.run_sync(lambda conn: conn.set_progress_handler(handler, PROGRESS_STEPS))
        both = await _same_snapshot(store, twin)
        if not both:
            await _begin_read(store)
        try:
            halves = await _halves(store) if both else []
            if halves:
                async with sequential_reads(store, halves[0]), sequential_reads(twin, halves[1]):
                    yield [store, twin]
            else:
                async with sequential_reads(store):
                    yield [store]
        finally:
            if both:
                await twin.fetchall("COMMIT")
            await store.fetchall("COMMIT")
    finally:
        await twin.close()


_REMOVED_AT = (
    "CASE state WHEN 'stripped' THEN stripped_at WHEN 'recycled' THEN recycled_at "
    "WHEN 'deleted' THEN coalesce(recycled_at, deleted_at) END"
)
# The cube's groups. SQLite's GROUP BY sorts every row before it adds them up, which at a
# million rows costs more than reading them; here each row is added to its group where it
# stands, in a temporary table keyed by the group (an upsert: a hash aggregate, in effect),
# about twice as fast. The key cannot hold NULL (NULLs never conflict), so "none" is '' for
# text, 0 for the year and -1 for the day. The columns that tell most groups apart come first.
_CUBE_TABLE = """
CREATE TEMP TABLE report_cube (
    removed_day INTEGER NOT NULL, year INTEGER NOT NULL, state TEXT NOT NULL,
    policy TEXT NOT NULL, action TEXT NOT NULL, held TEXT NOT NULL,
    backed_up INTEGER NOT NULL, recycled_first INTEGER NOT NULL,
    entries INTEGER NOT NULL, bytes_saved INTEGER NOT NULL, unsized INTEGER NOT NULL,
    bytes_freed INTEGER NOT NULL,
    PRIMARY KEY (removed_day, year, state, policy, action, held, backed_up, recycled_first)
) WITHOUT ROWID
"""
# held: the reason's prefix before ":" (like status.py's error groups), else its first
# HELD_PREFIX_CHARS characters, so free-text reasons still fall into few groups. Year only for
# the candidates (the charts by year show them), so the other rows make few groups.
# "WHERE true" is SQLite's way of telling the upsert's ON from a join's.
_CUBE_FILL = f"""
INSERT INTO temp.report_cube
SELECT coalesce({_REMOVED_AT} / {DAY}, -1),
       CASE WHEN state IN ({_marks(IN_POLICY_STATES)})
            THEN CAST(strftime('%Y', created_at, 'unixepoch') AS INTEGER) ELSE 0 END,
       state,
       coalesce(policy, ''),
       coalesce(action, ''),
       CASE WHEN held_reason IS NULL THEN ''
            WHEN instr(held_reason, ':') BETWEEN 2 AND {HELD_PREFIX_CHARS}
            THEN trim(substr(held_reason, 1, instr(held_reason, ':') - 1))
            ELSE trim(substr(held_reason, 1, {HELD_PREFIX_CHARS})) END,
       archived_at IS NOT NULL,
       state = 'deleted' AND recycled_at IS NOT NULL,
       1, coalesce(bytes_saved, 0), bytes_saved IS NULL, coalesce(bytes_freed, 0)
FROM entries WHERE true
ON CONFLICT (removed_day, year, state, policy, action, held, backed_up, recycled_first)
DO UPDATE SET entries = entries + 1,
              bytes_saved = bytes_saved + excluded.bytes_saved,
              unsized = unsized + excluded.unsized,
              bytes_freed = bytes_freed + excluded.bytes_freed
"""


@dataclass(frozen=True, slots=True)
class CubeRow:
    state: str
    policy: str | None
    action: str | None
    year: int | None  # creation year (UTC), for candidates only
    held: str | None  # held-back reason prefix, or None
    backed_up: bool  # archived_at is set: a backup was completed (kept if verify demotes it)
    removed_day: int | None  # Unix day the entry left Kaltura (removed states only)
    recycled_first: bool  # deleted when Kaltura's recycle bin emptied: removed as recycled
    entries: int
    bytes_saved: int  # unknown sizes add 0 (see unsized)
    unsized: int
    bytes_freed: int

    @property
    def in_policy(self) -> bool:
        return self.state in IN_POLICY_STATES

    @property
    def removed_as(self) -> str | None:
        """How the delete stage removed it: deleted, recycled or stripped (None: not removed)."""
        if self.state not in REMOVED_STATES:
            return None
        return State.RECYCLED if self.recycled_first else self.state


async def read_cube(store: Store) -> list[CubeRow]:
    """Every entry, grouped (see CubeRow); one pass over `entries`."""
    await store.fetchall(_CUBE_TABLE)
    try:
        await store.fetchall(_CUBE_FILL)
        rows = await store.fetchall(
            "SELECT state, policy, action, year, held, backed_up, removed_day, recycled_first, "
            "entries, bytes_saved, unsized, bytes_freed FROM temp.report_cube"
        )
    finally:
        await store.fetchall("DROP TABLE temp.report_cube")
    return [
        CubeRow(
            state=r[0],
            policy=r[1] or None,
            action=r[2] or None,
            year=int(r[3]) or None,
            held=r[4] or None,
            backed_up=bool(r[5]),
            removed_day=None if r[6] < 0 else int(r[6]),
            recycled_first=bool(r[7]),
            entries=int(r[8]),
            bytes_saved=int(r[9]),
            unsized=int(r[10]),
            bytes_freed=int(r[11]),
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class OwnerRow:
    owner: str | None
    entries: int
    seconds: int  # running time, images excluded (as the summary counts it)
    bytes_saved: int


def top_owners(groups: Iterable[OwnerGroup], limit: int = 20) -> list[OwnerRow]:
    """The ``limit`` owners with the most storage in ``groups`` (summary.read_owner_groups of
    the in-policy states), their rules added up; entries without an owner form one group,
    owner None. Ties: more entries first, then by name."""
    by_owner: dict[str | None, list[int]] = defaultdict(lambda: [0, 0, 0])
    for g in groups:
        total = by_owner[g.owner]
        total[0] += g.entries
        total[1] += g.seconds
        total[2] += g.bytes_saved
    rows = [OwnerRow(owner, n, seconds, saved) for owner, (n, seconds, saved) in by_owner.items()]
    rows.sort(key=lambda o: (-o.bytes_saved, -o.entries, o.owner is None, o.owner or ""))
    return rows[:limit]


async def read_partner(store: Store) -> int | None:
    """The partner id of the entries (a database holds one partner's): the first row's."""
    row = await store.fetchone("SELECT partner_id FROM main.entries LIMIT 1")
    return None if row is None or row[0] is None else int(row[0])


async def read_runs(store: Store) -> tuple[RunRow | None, str | None]:
    """The latest run (any command that wrote), and the as-of date of the latest run that
    recorded one (the date the policy judged the entries at)."""
    recent = await queries.recent_runs(store, limit=1)
    row = await store.fetchone(
        "SELECT as_of FROM runs WHERE as_of IS NOT NULL ORDER BY id DESC LIMIT 1"
    )
    return (recent[0] if recent else None), (row[0] if row else None)


@dataclass(frozen=True, slots=True)
class TimelineRow:
    period: str  # ISO date: the day, or the Monday of the week, or the 1st of the month
    removed_as: str  # deleted | recycled | stripped
    entries: int
    bytes_freed: int


@dataclass(frozen=True, slots=True)
class Timeline:
    unit: str  # "day" | "week" | "month"
    first: str | None  # the first and last period holding a removal
    last: str | None
    rows: list[TimelineRow]


DAYS_BY_DAY = 92  # a longer span is drawn by week,
DAYS_BY_WEEK = 2 * 366  # and a longer one still by month


def _period(day: date, unit: str) -> date:
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day


def timeline(cube: Iterable[CubeRow]) -> Timeline:
    """Entries the delete stage removed, per period (UTC) and how, with the bytes it recorded
    as freed (`entries.bytes_freed`). The unit grows with the span so a chart stays readable."""
    days: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in cube:
        if r.removed_day is not None and r.removed_as is not None:
            days[(r.removed_day, r.removed_as)][0] += r.entries
            days[(r.removed_day, r.removed_as)][1] += r.bytes_freed
    if not days:
        return Timeline("day", None, None, [])
    span = max(d for d, _ in days) - min(d for d, _ in days)
    unit = "day" if span <= DAYS_BY_DAY else "week" if span <= DAYS_BY_WEEK else "month"
    periods: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (day, how), (n, freed) in days.items():
        key = (_period(date(1970, 1, 1) + timedelta(days=day), unit).isoformat(), how)
        periods[key][0] += n
        periods[key][1] += freed
    rows = [TimelineRow(p, how, n, b) for (p, how), (n, b) in sorted(periods.items())]
    return Timeline(unit, rows[0].period, rows[-1].period, rows)

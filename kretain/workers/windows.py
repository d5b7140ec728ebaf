"""Pure planning for discovery: listing passes, created-time windows, and cursors.

No I/O here. discover.py sends the requests these functions describe and feeds
the answers back; everything in this module is a plain value, so a window's
progress can be saved as JSON next to the entries it produced and resumed later.

Why this shape (kaltura-api.md §3.6): entry lists stop at row 10,000 and
``totalCount`` is the true count. So the created-time range of each listing
*pass* is split into windows holding fewer than :data:`CAP` matches (the probe is
the window's first page), and inside a window we never page by ``pageIndex``:
each request is ``pageIndex=1`` with ``createdAtGreaterThanOrEqual=<cursor>``
ordered ``+createdAt``, de-duplicating by id at the cursor second (never
``cursor+1``, which skips ties). A second holding more entries than one page is
listed on its own, ordered ``+updatedAt`` with an updatedAt cursor; an
updatedAt second holding more than a page is paged by ``pageIndex`` when it has
fewer than :data:`CAP` rows, else it is reported as a discovery error.

Functions:
- :func:`listing_passes` — the filters discovery sends, from the policy's bounds.
- :func:`split_window` — halve a created-time range.
- :func:`request_for` — the filter and pageIndex of a window's next request.
- :func:`advance` — fold one answered page into the cursor -> :class:`Step`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

from kretain.rules import ENTRY_READY, MODERATION_STATUSES_WIRE, NON_READY_STATUSES

CAP = 10_000
PAGE_SIZE = 500

# Absolute times must exceed this: the server reads |v| <= 315,360,000 as "now + v"
# (kaltura-api.md §1.3), so a lower bound of 0 would mean "created from now on".
EPOCH_FLOOR = 315_360_001
# Media clips and external (YouTube) media. Live entries are out of scope.
ENTRY_TYPES = "1,externalMedia.externalMedia"


class Mode(StrEnum):
    CREATED = "created"  # cursor on createdAt over the window
    UPDATED = "updated"  # one createdAt second, cursor on updatedAt
    PAGED = "paged"  # one (createdAt, updatedAt) second, pageIndex paging


@dataclass(frozen=True)
class ListingPass:
    """One server-side listing: a name, its created bound and the filter it always sends."""

    name: str
    created_before: int
    filter: dict[str, str]


def listing_passes(
    ready: tuple[int, int | None] | None,
    nonready: tuple[int, int | None] | None,
    nonready_statuses: str = ",".join(NON_READY_STATUSES),
) -> list[ListingPass]:
    """The passes discovery runs, from the policy's widest bounds per kind of entry.

    ``ready`` / ``nonready`` are ``(created_before, played_before | None)`` (None:
    no rule for that kind, no pass). READY entries are filtered on play as well
    (``...OrNull`` keeps the never played); non-ready entries on creation only,
    because their play data must not hide them. The filter objectType must be the
    media filter, otherwise the server silently ignores every ``lastPlayedAt*`` field.
    """

    def base(created_before: int) -> dict[str, str]:
        return {
            "objectType": "KalturaMediaEntryFilter",
            "typeIn": ENTRY_TYPES,
            "createdAtLessThanOrEqual": str(created_before),
            "moderationStatusIn": MODERATION_STATUSES_WIRE,
        }

    out = []
    if ready is not None:
        created, played = ready
        f = {**base(created), "statusIn": ENTRY_READY}
        if played is not None:
            f["lastPlayedAtLessThanOrEqualOrNull"] = str(played)
        out.append(ListingPass("ready", created, f))
    if nonready is not None:
        created = nonready[0]
        out.append(
            ListingPass("nonready", created, {**base(created), "statusIn": nonready_statuses})
        )
    return out


@dataclass(frozen=True)
class Cursor:
    """Progress inside one window; JSON round-trips through :meth:`to_json`."""

    mode: Mode = Mode.CREATED
    created: int | None = None  # createdAt cursor second (None: not started)
    # ids already taken at second ``created`` (kept while that second is sub-listed)
    seen: tuple[str, ...] = ()
    updated: int | None = None  # updatedAt cursor inside second ``created``
    seen_updated: tuple[str, ...] = ()  # ids already taken at ``updated``
    page: int = 1  # next pageIndex in PAGED mode

    @property
    def started(self) -> bool:
        return self.created is not None

    def to_json(self) -> str:
        d = asdict(self)
        d["mode"] = str(self.mode)
        d["seen"] = list(self.seen)
        d["seen_updated"] = list(self.seen_updated)
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> Cursor:
        if not text:
            return cls()
        d = json.loads(text)
        if isinstance(d, list):  # a bare list of ids at the cursor second
            return cls(seen=tuple(d))
        return cls(
            mode=Mode(d.get("mode", "created")),
            created=d.get("created"),
            seen=tuple(d.get("seen") or ()),
            updated=d.get("updated"),
            seen_updated=tuple(d.get("seen_updated") or ()),
            page=int(d.get("page") or 1),
        )


def split_window(lo: int, hi: int) -> list[tuple[int, int]]:
    """Halve ``[lo, hi]`` (inclusive seconds). A single second cannot be split."""
    if hi <= lo:
        return [(lo, hi)]
    mid = lo + (hi - lo) // 2
    return [(lo, mid), (mid + 1, hi)]


def request_for(
    base: dict[str, str], lo: int, hi: int, cursor: Cursor
) -> tuple[dict[str, str], int]:
    """The filter and pageIndex of the window's next request."""
    f = dict(base)
    lo = max(lo, EPOCH_FLOOR)
    if cursor.mode is Mode.CREATED:
        start = lo if cursor.created is None else cursor.created
        f["createdAtGreaterThanOrEqual"] = str(start)
        f["createdAtLessThanOrEqual"] = str(hi)
        f["orderBy"] = "+createdAt"
        return f, 1
    assert cursor.created is not None
    f["createdAtGreaterThanOrEqual"] = str(cursor.created)
    f["createdAtLessThanOrEqual"] = str(cursor.created)
    f["orderBy"] = "+updatedAt"
    f.pop("updatedAtGreaterThanOrEqual", None)
    if cursor.updated is not None:
        f["updatedAtGreaterThanOrEqual"] = str(cursor.updated)
    if cursor.mode is Mode.UPDATED:
        return f, 1
    assert cursor.updated is not None
    f["updatedAtLessThanOrEqual"] = str(cursor.updated)
    return f, cursor.page


@dataclass(frozen=True)
class Row:
    """What the cursor needs from one listed entry (parsed by the caller)."""

    id: str
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class Step:
    """The outcome of folding one page into a window's cursor.

    ``take`` are the ids of the page to record (new at the boundary second);
    ``cursor`` is where the next request starts; ``done`` ends the window;
    ``error`` describes entries that cannot be listed (never silent).
    """

    take: tuple[str, ...]
    cursor: Cursor
    done: bool = False
    error: str | None = None
    unlisted: int = 0
    mode_changed: bool = False


class UnorderedPage(ValueError):
    """The server returned a page that is not in the order we asked for."""


def _check(rows: list[Row], key: str, low: int | None, high: int | None) -> None:
    """Refuse a page out of order or outside the requested range: cursor paging
    over such answers would skip entries or loop forever."""
    prev: int | None = None
    for r in rows:
        v = getattr(r, key)
        if (low is not None and v < low) or (high is not None and v > high):
            raise UnorderedPage(f"entry {r.id}: {key} {v} outside the requested [{low}, {high}]")
        if prev is not None and v < prev:
            raise UnorderedPage(f"page not ordered by {key}: {prev} before {v} (entry {r.id})")
        prev = v


def advance(
    cursor: Cursor,
    lo: int,
    hi: int,
    rows: list[Row],
    total_count: int,
    *,
    returned: int | None = None,
    page_size: int = PAGE_SIZE,
) -> Step:
    """Fold one answered page into ``cursor``.

    ``rows`` are the page's entries in server order (all of them, including
    those seen before); ``returned`` is the number of objects the page held
    (defaults to ``len(rows)``; larger when some objects were unreadable).
    Raises :class:`UnorderedPage` when the server broke the requested order or
    range, because cursor paging would then skip entries.
    """
    full = (len(rows) if returned is None else returned) >= page_size
    if cursor.mode is Mode.CREATED:
        start = lo if cursor.created is None else cursor.created
        _check(rows, "created_at", start, hi)
        if full and rows and rows[0].created_at == rows[-1].created_at:
            # A whole page in one second: list that second on its own, ordered by
            # updatedAt. This page is dropped; the sub-listing returns it again.
            # Ids already taken at that second (from earlier pages) stay in ``seen``.
            second = rows[0].created_at
            keep = cursor.seen if second == cursor.created else ()
            return Step((), Cursor(mode=Mode.UPDATED, created=second, seen=keep), mode_changed=True)
        seen = set(cursor.seen)
        take = tuple(r.id for r in rows if r.id not in seen)
        if not full or not rows:
            return Step(take, replace(cursor, created=start), done=True)
        last = rows[-1].created_at
        at_last = tuple(r.id for r in rows if r.created_at == last)
        return Step(take, Cursor(mode=Mode.CREATED, created=last, seen=at_last))

    assert cursor.created is not None
    second = cursor.created
    if cursor.mode is Mode.UPDATED:
        _check(rows, "created_at", second, second)
        _check(rows, "updated_at", cursor.updated, None)
        if full and rows and rows[0].updated_at == rows[-1].updated_at:
            u = rows[0].updated_at
            keep = cursor.seen_updated if u == cursor.updated else ()
            nxt = Cursor(Mode.PAGED, second, cursor.seen, u, keep, page=1)
            return Step((), nxt, mode_changed=True)
        seen = {*cursor.seen, *cursor.seen_updated}
        take = tuple(r.id for r in rows if r.id not in seen)
        if not full or not rows:
            return _after_second(second, hi, take)
        last = rows[-1].updated_at
        at_last = tuple(r.id for r in rows if r.updated_at == last)
        return Step(take, Cursor(Mode.UPDATED, second, cursor.seen, last, at_last))

    # PAGED: one (createdAt, updatedAt) second by pageIndex, bounded by the cap.
    assert cursor.updated is not None
    _check(rows, "created_at", second, second)
    _check(rows, "updated_at", cursor.updated, cursor.updated)
    seen = {*cursor.seen, *cursor.seen_updated}
    take = tuple(r.id for r in rows if r.id not in seen)
    error = None
    unlisted = 0
    if total_count >= CAP and cursor.page == 1:
        unlisted = total_count - CAP
        error = (
            f"{total_count} entries share createdAt {second} and updatedAt {cursor.updated}: "
            f"only {CAP} can be listed, {unlisted} could not be listed"
        )
    if full and cursor.page * page_size < min(total_count, CAP):
        return Step(take, replace(cursor, page=cursor.page + 1), error=error, unlisted=unlisted)
    nxt = Cursor(Mode.UPDATED, second, cursor.seen, cursor.updated + 1)
    return Step(take, nxt, error=error, unlisted=unlisted, mode_changed=True)


def _after_second(second: int, hi: int, take: tuple[str, ...]) -> Step:
    if second >= hi:
        return Step(take, Cursor(mode=Mode.CREATED, created=second), done=True, mode_changed=True)
    # Every entry of ``second`` is listed, so the window goes on at the next second.
    return Step(take, Cursor(mode=Mode.CREATED, created=second + 1), mode_changed=True)


def needs_split(lo: int, hi: int, total_count: int) -> bool:
    """A window's probe says split when it reaches the cap and spans > 1 second."""
    return total_count >= CAP and hi > lo


def rows_of(objects: list[dict[str, Any]]) -> list[Row]:
    """Best-effort cursor rows from wire objects (entries lacking times are skipped)."""
    out: list[Row] = []
    for o in objects:
        try:
            out.append(Row(str(o["id"]), int(o["createdAt"]), int(o.get("updatedAt") or 0)))
        except (KeyError, TypeError, ValueError):
            continue
    return out

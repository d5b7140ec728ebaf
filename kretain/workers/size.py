"""Sizing: which flavor is the source, what an action frees, and the sizing worker.

    await size(store, client, run_id=run, concurrency=4, progress=fn) -> SizeResult

Functions:
- :func:`size` — claim candidate rows in batches and size them (see its docstring).
- :func:`choose_source` — index of an entry's source flavor among its flavors.
- :func:`size_entry` — checked asset columns plus bytes_total / bytes_saved of one
  entry and its multi-stream children.

Rules (issue 3 §5): bytes = ``sizeInBytes``, or ``size`` x 1024 when that is 0.
The source flavor is the one with ``isOriginal``, else ``flavorParamsId`` 0, else
the ``source`` tag, else the largest: exactly one per entry (and one per child).
``delete_entry`` frees every asset of the entry and of its children;
``delete_flavors`` frees every flavor except each entry's source.
Malformed assets raise :class:`kretain.errors.InvalidEntryData`: the caller fails
the entry closed instead of sizing it with partial data.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import structlog

from kretain.errors import InvalidEntryData
from kretain.kaltura.client import (
    ALL_LIVE_STATUSES,
    ALL_MODERATION_STATUSES,
    ASSET_SERVICES,
    Call,
    KalturaClient,
)
from kretain.kaltura.errors import ApiError, InvalidResponse, KalturaError
from kretain.kaltura.models import parse_list_response
from kretain.kaltura.retry import decide
from kretain.policy import Policy, evaluate, facts_from_fields
from kretain.store import queries, transitions
from kretain.store.db import Store
from kretain.store.db import now as wall_now
from kretain.store.models import (
    EntryRow,
    asset_fields_from_wire,
    bytes_saved_for,
    entry_fields_from_wire,
)
from kretain.store.states import Action, State
from kretain.workers.offload import OffloadPool

log = structlog.get_logger("kretain.size")

PAGE_SIZE = 500
_ID_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")

ASSET_KINDS = ("flavor", "caption", "attachment", "thumb")


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    return isinstance(value, str) and value.strip().lower() in ("1", "true")


def _tags(value: Any) -> set[str]:
    if not isinstance(value, str):
        return set()
    return {t.strip().lower() for t in value.split(",") if t.strip()}


def choose_source(flavors: Sequence[Mapping[str, Any]], sizes: Sequence[int]) -> int | None:
    """Index of the source flavor: isOriginal, then flavorParamsId 0, then the
    ``source`` tag, then the largest. None when there are no flavors."""
    if not flavors:
        return None
    tests = (
        lambda f: _truthy(f.get("isOriginal")),
        lambda f: str(f.get("flavorParamsId")).strip() == "0",
        lambda f: "source" in _tags(f.get("tags")),
    )
    for test in tests:
        hits = [i for i, f in enumerate(flavors) if test(f)]
        if hits:
            return max(hits, key=lambda i: sizes[i])
    return max(range(len(flavors)), key=lambda i: sizes[i])


@dataclass(frozen=True)
class SizedEntry:
    """Asset columns (``assets`` table, minus entry_id) and the entry's totals."""

    entry_id: str
    assets: list[dict[str, Any]]
    bytes_total: int
    bytes_saved: int
    children: tuple[str, ...]

    @property
    def asset_count(self) -> int:
        return len(self.assets)


def size_entry(
    entry_id: str,
    action: str,
    assets_by_owner: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]],
    children: Sequence[str] = (),
) -> SizedEntry:
    """Size one entry from its wire assets and its children's.

    ``assets_by_owner`` maps the entry id and each child id to ``(kind, wire asset)``
    pairs. Raises InvalidEntryData for a malformed asset or an asset that names
    another entry.
    """
    if action not in ("delete_entry", "delete_flavors"):
        raise InvalidEntryData(f"entry {entry_id}: nothing to size for action {action!r}")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for owner in (entry_id, *children):
        pairs = assets_by_owner.get(owner, ())
        cols: list[dict[str, Any]] = []
        for kind, wire in pairs:
            col = asset_fields_from_wire(
                kind, wire, owner_entry_id=None if owner == entry_id else owner
            )
            if str(wire.get("entryId")) != owner:
                raise InvalidEntryData(
                    f"entry {entry_id}: asset {col['id']} belongs to {wire.get('entryId')!r}"
                )
            if col["id"] in seen:
                continue  # the same asset twice (overlapping pages): count it once
            seen.add(col["id"])
            cols.append({**col, "_wire": wire})
        flavors = [c for c in cols if c["kind"] == "flavor"]
        src = choose_source([c["_wire"] for c in flavors], [c["size_bytes"] for c in flavors])
        for i, c in enumerate(flavors):
            c["is_source"] = int(i == src)
        for c in cols:
            del c["_wire"]
            rows.append(c)
    total = sum(c["size_bytes"] for c in rows)
    return SizedEntry(entry_id, rows, total, bytes_saved_for(action, rows), tuple(children))


# ---- the sizing worker ----------------------------------------------------------------------

# Entries per multirequest: one idIn refresh, four asset lists and one children lookup per
# entry. The client sends multirequests as JSON bodies, which PHP parses without the
# max_input_vars cap on form fields, so a batch can hold the full 150 ids an IN list keeps.
BATCH_SIZE = 150
MAX_BATCH_SIZE = 150
LEASE_SECONDS = 900
MAX_SIZE_ATTEMPTS = 5  # error rows (from a failed lookup) are retried up to this many times

Progress = Callable[..., None] | None


@dataclass
class SizeResult:
    """What one size() call did."""

    claimed: int = 0
    sized: int = 0
    kept: int = 0  # played (or no longer qualifying) since discovery
    exempt: int = 0
    gone: int = 0
    errors: int = 0  # lookups failed or data malformed: state error, retried next run
    batches: int = 0
    requests: int = 0  # HTTP requests (a multirequest counts once)
    calls: int = 0  # API calls inside them
    bytes_saved: int = 0
    problems: list[str] = field(default_factory=list)

    def as_counts(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "problems"}


class _Failed(Exception):
    """A sub-request needed by an entry failed; the entry goes to error with this reason."""


async def size(
    store: Store,
    client: KalturaClient,
    *,
    run_id: int,
    concurrency: int = 4,
    progress: Progress = None,
    policy: Policy | None = None,
    as_of: date | None = None,
    batch_size: int = BATCH_SIZE,
    lease_seconds: int = LEASE_SECONDS,
    retry_errors: bool = True,
    pool: OffloadPool | None = None,
) -> SizeResult:
    """Size every ``candidate`` row (and ``error`` rows that failed a sizing lookup).

    ``pool`` (an OffloadPool) runs the batches' pure-Python checks away from the event
    loop; without one they run in a thread.
    ``retry_errors=False`` leaves the error rows alone: a caller that calls size() again
    and again in one run (while discovery is still listing) retries them only once.

    Per batch ONE multirequest refreshes the entries (baseEntry.list idIn), lists their
    flavors, captions, attachments and thumbnails (entryIdIn) and their multi-stream
    children (parentEntryIdEqual per entry); follow-up multirequests fetch further
    pages and the children's assets. An entry played since discovery moves to kept
    (with ``policy``/``as_of`` given, the full policy is re-evaluated instead); an entry
    Kaltura no longer returns moves to gone; any failed sub-request or malformed asset
    moves the entry to error (fail closed). Assets are stored and the row moves to
    sized in one transaction. ``progress(event, **counts)``: ``size.batch``, ``size.done``.
    """
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be 1..{MAX_BATCH_SIZE}")
    result = SizeResult()
    await transitions.release_expired(store)
    before = client.stats.requests
    lock = asyncio.Lock()  # one claim at a time: batches never overlap
    held: set[str] = set()

    retrying = retry_errors  # first the error rows of earlier runs, then the candidates

    async def claim() -> list[EntryRow]:
        nonlocal retrying
        async with lock:
            rows: list[EntryRow] = []
            # Rows whose sizing lookup failed in an earlier run (error with an action). A row
            # failing again keeps its lease until the end, so it is not retried twice here.
            for action in (Action.DELETE_ENTRY, Action.DELETE_FLAVORS):
                if not retrying or len(rows) >= batch_size:
                    break
                rows += await transitions.claim(
                    store,
                    State.ERROR,
                    State.ERROR,
                    batch_size - len(rows),
                    run_id,
                    lease_seconds,
                    action=action,
                    max_attempts=MAX_SIZE_ATTEMPTS,
                )
            if not rows:
                retrying = False  # candidates that fail now wait for the next run
                rows = await transitions.claim(
                    store, State.CANDIDATE, State.CANDIDATE, batch_size, run_id, lease_seconds
                )
            held.update(r.id for r in rows)
            return rows

    async def worker() -> None:
        while True:
            rows = await claim()
            if not rows:
                return
            result.claimed += len(rows)
            await _size_batch(store, client, rows, run_id, result, policy, as_of, pool)
            result.batches += 1
            if progress is not None:
                progress(
                    "size.batch",
                    sized=result.sized,
                    kept=result.kept,
                    errors=result.errors,
                    gone=result.gone,
                    bytes_saved=result.bytes_saved,
                )

    tasks = [asyncio.create_task(worker()) for _ in range(max(1, concurrency))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:  # one worker failed: stop the others before handing leases back
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    finally:
        # Rows still leased (an error row that failed again, or a crash of a batch) are
        # handed back at once rather than when the lease runs out.
        await transitions.renew_leases(store, sorted(held), run_id, 0)
        await transitions.release_expired(store)
    result.requests = client.stats.requests - before
    if progress is not None:
        progress("size.done", **result.as_counts())
    log.info("size finished", **result.as_counts())
    return result


# ---- one batch ------------------------------------------------------------------------------


def _pager(page: int) -> dict[str, Any]:
    return {"objectType": "KalturaFilterPager", "pageSize": PAGE_SIZE, "pageIndex": page}


def _entry_filter(**extra: str) -> dict[str, Any]:
    return {
        "objectType": "KalturaBaseEntryFilter",
        "statusIn": ALL_LIVE_STATUSES,
        "moderationStatusIn": ALL_MODERATION_STATUSES,
        **extra,
    }


Builder = Callable[[int], Call]


class _Lists:
    """List calls paged to completion over as few multirequests as possible.

    Each list is keyed; round 1 asks page 1 of every new list, the next round every
    missing page of the lists whose totalCount exceeds what came back. A list is
    complete when the distinct ids it returned equal its totalCount; anything else
    (an API error, a malformed answer, a count that does not add up) is a failure.
    """

    def __init__(self) -> None:
        self.builders: dict[Any, Builder] = {}
        self.objects: dict[Any, dict[str, dict[str, Any]]] = {}
        self.total: dict[Any, int] = {}
        self.asked: dict[Any, int] = {}  # pages requested so far
        self.failed: dict[Any, str] = {}

    def add(self, key: Any, builder: Builder) -> None:
        self.builders[key] = builder
        self.objects[key] = {}
        self.asked[key] = 0

    def next_calls(self) -> list[tuple[Any, Call]]:
        out: list[tuple[Any, Call]] = []
        for key, build in self.builders.items():
            if key in self.failed:
                continue
            if self.asked[key] == 0:
                out.append((key, build(1)))
                self.asked[key] = 1
                continue
            pages = -(-self.total[key] // PAGE_SIZE)
            if len(self.objects[key]) < self.total[key] and self.asked[key] < pages:
                out.extend((key, build(p)) for p in range(self.asked[key] + 1, pages + 1))
                self.asked[key] = pages
        return out

    def feed(self, key: Any, what: str, item: Any) -> None:
        if key in self.failed:
            return
        if isinstance(item, ApiError):
            self.failed[key] = f"{what} failed: {item.code} {item}"
            return
        try:
            page = parse_list_response(item, what)
        except InvalidResponse as exc:
            self.failed[key] = f"{what}: malformed answer: {exc}"
            return
        self.total[key] = max(self.total.get(key, 0), page.total_count)
        for obj in page.objects:
            self.objects[key][obj["id"]] = obj

    def result(self, key: Any) -> list[dict[str, Any]]:
        """The complete list, or _Failed."""
        if key in self.failed:
            raise _Failed(self.failed[key])
        got = len(self.objects[key])
        if got != self.total.get(key, 0):
            raise _Failed(f"{key[0]} list returned {got} of {self.total.get(key, 0)} objects")
        return list(self.objects[key].values())


async def _run_lists(
    client: KalturaClient, lists: _Lists, result: SizeResult, after_round: Callable[[], None]
) -> None:
    """Send rounds of multirequests until every list is complete or failed."""
    while True:
        pending = lists.next_calls()
        if not pending:
            after_round()
            pending = lists.next_calls()
            if not pending:
                return
        items = await _multi(client, [c for _, c in pending], result)
        for (key, call), item in zip(pending, items, strict=True):
            lists.feed(key, f"{call[0]}.{call[1]}", item)
        after_round()


async def _multi(client: KalturaClient, calls: Sequence[Call], result: SizeResult) -> list[Any]:
    """One multirequest; items failing with a retryable error are re-sent (within budget).

    A transport failure that outlives the client's retries fails every item."""
    policy = client.config.retry_policy()
    out: list[Any] = [None] * len(calls)
    todo = list(range(len(calls)))
    attempt = 0
    while todo:
        try:
            items = await client.multirequest([calls[i] for i in todo])
        except KalturaError as exc:
            err = exc if isinstance(exc, ApiError) else ApiError(type(exc).__name__, str(exc))
            for i in todo:
                out[i] = err
            return out
        result.calls += len(todo)
        retry: list[int] = []
        delay = 0.0
        attempt += 1
        for i, item in zip(todo, items, strict=True):
            out[i] = item
            if isinstance(item, ApiError):
                d = decide(item, attempt, policy)
                if d.retry and not d.renew_session:
                    retry.append(i)
                    delay = max(delay, d.delay)
        if retry:
            log.debug("size: retrying failed sub-requests", count=len(retry), delay=delay)
            await asyncio.sleep(delay)
        todo = retry
    return out


async def _size_batch(
    store: Store,
    client: KalturaClient,
    rows: Sequence[EntryRow],
    run_id: int,
    result: SizeResult,
    policy: Policy | None,
    as_of: date | None,
    pool: OffloadPool | None,
) -> None:
    ids = [r.id for r in rows]
    joined = ",".join(ids)
    lists = _Lists()
    lists.add(
        ("entries",),
        lambda p: ("baseentry", "list", {"filter": _entry_filter(idIn=joined), "pager": _pager(p)}),
    )
    for kind in ASSET_KINDS:
        service, ftype = ASSET_SERVICES[kind]
        lists.add(
            (kind, "parents"),
            lambda p, s=service, t=ftype: (
                s,
                "list",
                {"filter": {"objectType": t, "entryIdIn": joined}, "pager": _pager(p)},
            ),
        )
    for entry_id in ids:
        lists.add(
            ("children", entry_id),
            lambda p, e=entry_id: (
                "baseentry",
                "list",
                {"filter": _entry_filter(parentEntryIdEqual=e), "pager": _pager(p)},
            ),
        )
    children: dict[str, list[str]] = {}
    child_fail: dict[str, str] = {}

    def add_children() -> None:
        """Once every children list is complete, list the children's assets too."""
        if (
            children
            or child_fail
            or any(
                k[0] == "children" and k not in lists.total and k not in lists.failed
                for k in lists.builders
            )
        ):
            return
        for entry_id in ids:
            try:
                kids = lists.result(("children", entry_id))
            except _Failed as exc:
                child_fail[entry_id] = str(exc)
                continue
            found = [k["id"] for k in kids if k.get("parentEntryId") == entry_id]
            if len(found) != len(kids):
                child_fail[entry_id] = "children list returned entries of another parent"
            children[entry_id] = [c for c in found if _ID_RE.match(str(c))]
        all_kids = ",".join(c for kids in children.values() for c in kids)
        if not all_kids:
            return
        for kind in ASSET_KINDS:
            service, ftype = ASSET_SERVICES[kind]
            lists.add(
                (kind, "children"),
                lambda p, s=service, t=ftype: (
                    s,
                    "list",
                    {"filter": {"objectType": t, "entryIdIn": all_kids}, "pager": _pager(p)},
                ),
            )

    await _run_lists(client, lists, result, add_children)
    failed = _batch_failures(lists, ids, children, child_fail)
    entries = (
        {}
        if ("entries",) in lists.failed
        else {e["id"]: e for e in lists.objects[("entries",)].values() if e["id"] in set(ids)}
    )
    by_owner: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for kind in ASSET_KINDS:
        for side in ("parents", "children"):
            for obj in lists.objects.get((kind, side), {}).values():
                by_owner.setdefault(str(obj.get("entryId")), []).append((kind, obj))
    await _apply(
        store, rows, entries, by_owner, children, failed, run_id, result, policy, as_of, pool
    )


def _batch_failures(
    lists: _Lists,
    ids: Sequence[str],
    children: Mapping[str, list[str]],
    child_fail: Mapping[str, str],
) -> dict[str, str]:
    """entry id -> why its data is incomplete (fail closed)."""
    failed: dict[str, str] = dict(child_fail)
    whole: str | None = None
    for key in [("entries",), *((k, "parents") for k in ASSET_KINDS)]:
        try:
            lists.result(key)
        except _Failed as exc:
            whole = whole or str(exc)
    for entry_id in ids:
        if whole:
            failed.setdefault(entry_id, whole)
    if any(children.values()):
        for kind in ASSET_KINDS:
            try:
                lists.result((kind, "children"))
            except _Failed as exc:
                for entry_id, kids in children.items():
                    if kids:
                        failed.setdefault(entry_id, f"children's assets: {exc}")
    return failed


async def _apply(
    store: Store,
    rows: Sequence[EntryRow],
    entries: Mapping[str, dict[str, Any]],
    by_owner: Mapping[str, list[tuple[str, dict[str, Any]]]],
    children: Mapping[str, list[str]],
    failed: Mapping[str, str],
    run_id: int,
    result: SizeResult,
    policy: Policy | None,
    as_of: date | None,
    pool: OffloadPool | None,
) -> None:
    """Write the batch's outcome as one transaction in one hop to the database thread.

    Outcomes and every write's parameters are computed first, outside the store's write
    lock: only SQLite's own work happens while it is held. Sized entries (nearly all of a
    batch) are written with one statement of each kind; the rare errors, gone, kept and
    exempt entries one by one. No move is strict: a row that discovery, listing at the same
    time, reclassified (played since) keeps discovery's verdict.
    """
    now = wall_now()
    # In a worker thread: this is ~100 ms of pure Python per batch, and on the event loop
    # it would stall every other task behind it.
    args = (rows, entries, by_owner, children, failed, policy, as_of)
    if pool is None:
        computed = await asyncio.to_thread(outcomes_of, *args)
    else:
        computed = await pool.run(outcomes_of, *args)
    outcomes = list(zip(rows, computed, strict=True))
    jobs: list[transitions.Job[Any]] = []
    sized_fields: list[dict[str, Any]] = []
    sized_assets: dict[str, list[dict[str, Any]]] = {}
    groups: dict[str, tuple[dict[str, Any], list[EntryRow]]] = {}
    totals: dict[str, dict[str, Any]] = {}

    def move(row: EntryRow, to: State, **details: Any) -> None:
        jobs.append(
            transitions.move_many_job(
                [row.id], row.state, to, run_id=run_id, lease_owner=run_id, now=now, **details
            )
        )

    for row, outcome in outcomes:
        kind, detail = outcome[0], outcome[1]
        if kind == "error":
            result.errors += 1
            if row.state != State.ERROR:
                move(row, State.ERROR, error=detail)
            continue
        if kind == "gone":
            result.gone += 1
            move(row, State.GONE, reason=detail)
            continue
        fields = outcome[2]
        if kind in ("kept", "exempt"):
            setattr(result, kind, getattr(result, kind) + 1)
            jobs.append(queries.refresh_entries_job([fields], run_id=run_id, now=now))
            move(row, State(kind), reason=detail,
                 updates={"reason": detail, "action": None, **outcome[3]})  # fmt: skip
            continue
        sized: SizedEntry = outcome[3]
        sized_fields.append(fields)
        sized_assets[row.id] = sized.assets
        totals[row.id] = {
            "asset_count": sized.asset_count,
            "bytes_total": sized.bytes_total,
            "bytes_saved": sized.bytes_saved,
            "refreshed_at": now,
        }
        updates = outcome[4]
        key = json.dumps([str(row.state), updates], sort_keys=True, default=str)
        groups.setdefault(key, (updates, []))[1].append(row)
        result.sized += 1
        result.bytes_saved += sized.bytes_saved
    if sized_fields:
        # Rewrite an entry's metadata only when Kaltura changed it since it was stored
        # (updatedAt moves with metadata; plays and last play do not move updatedAt).
        stored = {r.id: r for r in rows}
        changed = [
            f
            for f in sized_fields
            if (f["updated_at"], f["last_played_at"], f["plays"], f["status"])
            != (
                stored[f["id"]].updated_at,
                stored[f["id"]].last_played_at,
                stored[f["id"]].plays,
                stored[f["id"]].status,
            )
        ]
        if changed:
            jobs.append(queries.refresh_entries_job(changed, run_id=run_id, now=now))
        jobs.append(queries.replace_assets_job(sized_assets, now=now, update_totals=False))
        # One rewrite per entry: the state move carries the totals (the same rule as
        # transitions.BYTES_SAVED_SQL, computed in Python by size_entry).
        for updates, group in groups.values():
            jobs.append(
                transitions.move_many_job(
                    [r.id for r in group],
                    group[0].state,
                    State.SIZED,
                    run_id=run_id,
                    reason="sized",
                    updates=updates or None,
                    row_updates={r.id: totals[r.id] for r in group},
                    lease_owner=run_id,
                    now=now,
                )
            )
    if jobs:
        await store.write(lambda conn: [job(conn) for job in jobs])


def outcomes_of(
    rows: Sequence[EntryRow],
    entries: Mapping[str, dict[str, Any]],
    by_owner: Mapping[str, list[tuple[str, dict[str, Any]]]],
    children: Mapping[str, list[str]],
    failed: Mapping[str, str],
    policy: Policy | None,
    as_of: date | None,
) -> list[tuple[Any, ...]]:
    """_outcome of every row (a module-level function, so a process pool can run it)."""
    return [_outcome(row, entries, by_owner, children, failed, policy, as_of) for row in rows]


def _outcome(
    row: EntryRow,
    entries: Mapping[str, dict[str, Any]],
    by_owner: Mapping[str, list[tuple[str, dict[str, Any]]]],
    children: Mapping[str, list[str]],
    failed: Mapping[str, str],
    policy: Policy | None,
    as_of: date | None,
) -> tuple[Any, ...]:
    """("error", why) | ("gone", why) | ("kept"|"exempt", why, fields, updates)
    | ("sized", why, fields, SizedEntry, updates)."""
    if row.id in failed:
        return ("error", failed[row.id])
    wire = entries.get(row.id)
    if wire is None:
        return ("gone", "not returned by baseEntry.list idIn: gone from Kaltura")
    try:
        fields = entry_fields_from_wire(wire)
    except InvalidEntryData as exc:
        return ("error", f"invalid data from Kaltura: {exc}")
    action = row.action
    updates: dict[str, Any] = {}
    if policy is not None and as_of is not None:
        decision = evaluate(facts_from_fields(fields), policy, as_of)
        if decision.action is None:
            if decision.incomplete:
                return ("error", decision.reason)
            state = "exempt" if decision.exempt_by else "kept"
            why = _played_since(row, fields) or decision.reason
            return (state, why, fields, {"policy": decision.rule, "exempt_by": decision.exempt_by})
        action = Action(decision.action)
        new = {"policy": decision.rule, "action": str(action), "reason": decision.reason}
        # Only a changed classification is written; unchanged rows move together in one batch.
        if (row.policy, row.action, row.reason) != (new["policy"], new["action"], new["reason"]):
            updates = new
    elif (why := _played_since(row, fields)) is not None:
        return ("kept", why, fields, {"policy": None})
    if action is None:
        return ("error", "no action recorded for this entry")
    try:
        sized = size_entry(row.id, str(action), by_owner, children.get(row.id, ()))
    except InvalidEntryData as exc:
        return ("error", f"malformed asset: {exc}")
    return ("sized", "", fields, sized, updates)


def _played_since(row: EntryRow, fields: Mapping[str, Any]) -> str | None:
    played = fields.get("last_played_at")
    if not played or (row.last_played_at is not None and played <= row.last_played_at):
        return None
    day = datetime.fromtimestamp(played, UTC).date().isoformat()
    return f"played {day} since the audit"

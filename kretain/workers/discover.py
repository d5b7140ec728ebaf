"""Discovery: list every entry the policy may touch, past the 10,000-row cap, resumably.

    await discover(store, client, policy, as_of=date, run_id=run, concurrency=4, progress=fn)
        -> DiscoverResult

A *generation* is one complete listing of the partner. Its state lives in the
``meta`` table (keys ``discovery.*``) and in ``discovery_windows``; a killed run
resumes the incomplete generation, a finished one makes the next call start a
new generation (a refresh of everything known).

1. Passes (windows.listing_passes): READY entries filtered server-side on the
   widest created and played bounds of the policy, non-ready entries on the
   created bound only. Every entry returned is re-checked locally (the server
   silently ignores fields it does not know).
2. Each pass's created range is split into windows under the cap; windows run
   concurrently; inside a window the cursor of windows.advance is followed. A
   page's entries and the window's new cursor are written in ONE transaction,
   so a SIGKILL resumes exactly after the last saved page.
3. Entries: wire data checked (store.models.entry_fields_from_wire; hostile data
   -> state error with the reason), policy evaluated, admitted (transitions.admit)
   as candidate / exempt / kept / error.
4. When every window is done, known rows not seen in this generation's listing
   are re-fetched by id (<= 150 per call): refreshed (kept with "played ... since
   the audit" when a play moved them out), or gone when Kaltura no longer has them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import structlog

from kretain import rules
from kretain.errors import InvalidEntryData
from kretain.kaltura.errors import KalturaError
from kretain.policy import Policy, evaluate, facts_from_fields
from kretain.rules import NON_READY_STATUSES
from kretain.store import queries, transitions
from kretain.store.db import Store
from kretain.store.db import now as wall_now
from kretain.store.models import ENTRY_METADATA_COLUMNS, EntryRow, entry_fields_from_wire
from kretain.store.states import ALLOWED, State
from kretain.workers.context import RunContext
from kretain.workers.windows import (
    EPOCH_FLOOR,
    PAGE_SIZE,
    Cursor,
    ListingPass,
    Mode,
    UnorderedPage,
    advance,
    listing_passes,
    needs_split,
    request_for,
    rows_of,
    split_window,
)

log = structlog.get_logger("kretain.discover")

Progress = Callable[..., None] | None

ID_BATCH = 150  # Sphinx keeps only the first 150 values of an IN list
# Known rows discovery re-checks when the listing did not return them. Rows a worker holds
# (downloading, deleting) or finished (deleted, gone) are left to their workers.
REFETCH_STATES = (
    State.CANDIDATE,
    State.SIZED,
    State.EXEMPT,
    State.KEPT,
    State.ERROR,
    State.ARCHIVED,
    State.BACKUP_FAILED,
    State.DELETE_FAILED,
)
_K_GEN = "discovery.generation"
_K_STATE = "discovery.generation.state"  # "running" | "done"
_K_FIRST_RUN = "discovery.generation.first_run"
_K_BOUNDS = "discovery.generation.bounds"
_K_AS_OF = "discovery.generation.as_of"
_K_SUB = "discovery.window.{}.cursor"  # full cursor of a window listing one second


@dataclass
class DiscoverResult:
    """What one discover() call did (counts are of this call, not cumulative)."""

    generation: int
    resumed: bool
    complete: bool = False
    windows: int = 0  # windows of the generation (split parents excluded)
    windows_done: int = 0
    pages: int = 0  # list requests made by this call
    listed: int = 0  # entries taken from listing pages
    candidates: int = 0
    exempt: int = 0
    kept: int = 0
    errors: int = 0  # entries recorded in state error (bad data, incomplete facts)
    refreshed: int = 0  # known rows re-fetched by id
    gone: int = 0
    unlisted: int = 0  # entries the API could not list (reported in problems)
    problems: list[str] = field(default_factory=list)

    def as_counts(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "problems"}


@dataclass
class _Window:
    id: int
    scope: str
    lo: int
    hi: int
    cursor: Cursor
    pages: int
    total_count: int | None


class _Run:
    """Shared state of one discover() call."""

    def __init__(
        self,
        ctx: RunContext,
        generation: int,
        passes: Mapping[str, ListingPass],
        result: DiscoverResult,
    ) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.client = ctx.client
        self.policy = ctx.policy
        self.as_of = ctx.as_of
        self.run_id = ctx.run_id
        self.generation = generation
        self.passes = passes
        self.result = result
        self.queue: asyncio.Queue[_Window | None] = asyncio.Queue()
        self.failed = False
        self.crash: BaseException | None = None

    def emit(self, event: str, **counts: Any) -> None:
        self.ctx.emit(event, **counts)


# ---- public entry point -------------------------------------------------------------------


async def discover(ctx: RunContext, *, concurrency: int = 4) -> DiscoverResult:
    """Run (or resume) one discovery generation; see the module docstring.

    ``ctx.progress(event, **counts)`` is called with events ``discover.start``,
    ``discover.page``, ``discover.refresh``, ``discover.done``. API failures that outlive
    the client's retries leave the generation incomplete (``complete`` False, ``problems``
    says why); the next call resumes it.
    """
    store = ctx.store
    passes = {p.name: p for p in passes_for(ctx.policy, ctx.as_of)}
    bounds = json.dumps({n: p.filter for n, p in passes.items()}, sort_keys=True)
    generation, resumed = await _begin_generation(store, ctx.run_id, bounds, ctx.as_of)
    result = DiscoverResult(generation=generation, resumed=resumed)
    run = _Run(ctx, generation, passes, result)
    await _seed_windows(run)
    pending = await _load_windows(run)
    run.emit("discover.start", generation=generation, resumed=int(resumed), windows=len(pending))
    for w in pending:
        run.queue.put_nowait(w)
    workers = [asyncio.create_task(_worker(run)) for _ in range(max(1, concurrency))]
    try:
        await run.queue.join()
    finally:
        for _ in workers:
            run.queue.put_nowait(None)
        await asyncio.gather(*workers, return_exceptions=True)
    if run.crash is not None:
        raise run.crash
    counts = await queries.window_counts(store, generation)
    result.windows, result.windows_done = counts
    if result.windows_done == result.windows and not run.failed:
        await _refresh_unseen(run, concurrency)
    if not run.failed and result.windows_done == result.windows:
        await queries.set_meta_many(store, {_K_STATE: "done"})
        result.complete = True
    run.emit("discover.done", **result.as_counts())
    ctx.outcome("discover", **result.as_counts())
    return result


# ---- generations and windows --------------------------------------------------------------


async def _begin_generation(
    store: Store, run_id: int, bounds: str, as_of: date
) -> tuple[int, bool]:
    """Resume the running generation if it used the same bounds, else start the next."""
    current = await queries.get_meta(store, _K_GEN)
    state = await queries.get_meta(store, _K_STATE)
    if (
        current is not None
        and state == "running"
        and await queries.get_meta(store, _K_BOUNDS) == bounds
    ):
        return int(current), True
    generation = int(current or 0) + 1
    await queries.set_meta_many(
        store,
        {
            _K_GEN: str(generation),
            _K_STATE: "running",
            _K_FIRST_RUN: str(run_id),
            _K_BOUNDS: bounds,
            _K_AS_OF: as_of.isoformat() if isinstance(as_of, date) else str(as_of),
        },
    )
    return generation, False


def passes_for(policy: Policy, as_of: date) -> list[ListingPass]:
    """The listing passes for ``policy`` at ``as_of`` (no pass for a kind no rule covers)."""

    def bounds(ready: bool) -> tuple[int, int | None] | None:
        try:
            return policy.listing_bounds(as_of, ready=ready)
        except ValueError:  # no rule for that kind of entry
            return None

    statuses = ",".join(policy.non_ready_statuses() or NON_READY_STATUSES)
    return listing_passes(bounds(True), bounds(False), statuses)


async def _seed_windows(run: _Run) -> None:
    for name, listing in run.passes.items():
        await queries.seed_window(
            run.store, run.generation, name, EPOCH_FLOOR, listing.created_before, wall_now()
        )


async def _load_windows(run: _Run) -> list[_Window]:
    """Pending windows (failed ones are retried) of the generation, with their cursors."""
    rows = await queries.unfinished_windows(run.store, run.generation)
    out = []
    for r in rows:
        sub = await queries.get_meta(run.store, _K_SUB.format(r["id"]))
        if r["split_field"] != "createdAt" and sub:
            cursor = Cursor.from_json(sub)
        else:
            seen = json.loads(r["seen_ids_at_cursor"] or "[]")
            cursor = Cursor(created=r["cursor_created_at"], seen=tuple(seen))
        out.append(
            _Window(r["id"], r["scope"], r["lo"], r["hi"], cursor, r["pages"], r["total_count"])
        )
    return out


async def _save_window(store: Store, w: _Window, step_done: bool, now: int) -> None:
    """Persist a window's cursor (call inside the page's transaction)."""
    c = w.cursor
    mode = {Mode.CREATED: "createdAt", Mode.UPDATED: "updatedAt", Mode.PAGED: "updatedAt"}[c.mode]
    await queries.save_window_cursor(
        store,
        w.id,
        cursor_created_at=c.created,
        seen_ids=list(c.seen),
        split_field=mode,
        total_count=w.total_count,
        done=step_done,
        pages=w.pages,
        now=now,
    )
    # A window listing one second keeps its full cursor (updatedAt, page) in meta.
    await queries.set_meta(
        store, _K_SUB.format(w.id), None if c.mode is Mode.CREATED else c.to_json()
    )


# ---- listing --------------------------------------------------------------------------------


async def _worker(run: _Run) -> None:
    while True:
        w = await run.queue.get()
        try:
            if w is None:
                return
            await _run_window(run, w)
        except KalturaError as exc:
            run.failed = True
            msg = f"window {w.scope} [{w.lo}, {w.hi}] stopped: {type(exc).__name__}: {exc}"
            run.result.problems.append(msg)
            log.warning("discover window stopped", window=w.id, error=str(exc))
        except UnorderedPage as exc:
            run.failed = True
            run.result.problems.append(f"window {w.scope} [{w.lo}, {w.hi}] failed: {exc}")
            await queries.fail_window(run.store, w.id, wall_now())
        except Exception as exc:  # a bug or a store failure: stop, and say so
            run.failed = True
            run.crash = run.crash or exc
            log.exception("discover window crashed", window=w.id)
        finally:
            run.queue.task_done()


async def _run_window(run: _Run, w: _Window) -> None:
    listing = run.passes[w.scope]
    while True:
        flt, page_index = request_for(listing.filter, w.lo, w.hi, w.cursor)
        page = await run.client.list_entries(flt, page_index, PAGE_SIZE, service="baseentry")
        run.result.pages += 1
        w.pages += 1
        rows = rows_of(page.objects)
        fresh = w.cursor == Cursor() and w.total_count is None
        if fresh:
            w.total_count = page.total_count
        if fresh and needs_split(max(w.lo, EPOCH_FLOOR), w.hi, page.total_count):
            await _split(run, w, rows[0].created_at if rows else w.lo)
            return
        step = advance(w.cursor, w.lo, w.hi, rows, page.total_count, returned=len(page.objects))
        take = set(step.take)
        parsed = {r.id for r in rows}
        objects = [o for o in page.objects if o["id"] in take or o["id"] not in parsed]
        w.cursor = step.cursor
        if step.error:
            run.result.unlisted += step.unlisted
            run.result.problems.append(f"window {w.scope} [{w.lo}, {w.hi}]: {step.error}")
            log.error("discover: entries cannot be listed", window=w.id, detail=step.error)
        await _store_page(run, w, objects, step.done, step.error)
        run.emit(
            "discover.page",
            pages=run.result.pages,
            listed=run.result.listed,
            candidates=run.result.candidates,
            window=w.id,
        )
        if step.done:
            return


async def _split(run: _Run, w: _Window, first_created: int) -> None:
    """Replace a window over the cap by its two halves (the probe page is dropped)."""
    lo = max(w.lo, first_created, EPOCH_FLOOR)
    halves = split_window(lo, w.hi)
    now = wall_now()
    created = await queries.split_window(
        run.store, w.id, run.generation, w.scope, halves, w.total_count, w.pages, now
    )
    children = [_Window(i, w.scope, a, b, Cursor(), 0, None) for i, (a, b) in created]
    log.debug("discover window split", window=w.id, total=w.total_count, halves=halves)
    for c in children:
        run.queue.put_nowait(c)


async def _store_page(
    run: _Run, w: _Window, objects: Sequence[dict[str, Any]], done: bool, error: str | None
) -> None:
    admissions, bad = _admissions(run, objects)
    now = wall_now()
    async with run.store.transaction():
        if admissions:
            await transitions.admit(run.store, admissions, run_id=run.run_id, now=now)
        await _record_bad(run, bad, now)
        if error:
            await transitions.record_api_event(
                run.store,
                run_id=run.run_id,
                call="baseentry.list",
                outcome="unlisted",
                detail=error,
                now=now,
            )
        await _save_window(run.store, w, done, now)
    _count(run.result, admissions, bad)
    run.result.listed += len(objects)


# ---- entries --------------------------------------------------------------------------------


def _count(result: DiscoverResult, admissions: Sequence[Any], bad: Sequence[Any]) -> None:
    for a in admissions:
        if a.state == State.CANDIDATE:
            result.candidates += 1
        elif a.state == State.EXEMPT:
            result.exempt += 1
        elif a.state == State.KEPT:
            result.kept += 1
        else:
            result.errors += 1
    result.errors += len(bad)


def _admissions(
    run: _Run, objects: Sequence[Mapping[str, Any]]
) -> tuple[list[transitions.Admission], list[tuple[str, dict[str, Any], str]]]:
    """Check and evaluate wire entries -> (admissions, [(id, minimal fields, why)] for bad data)."""
    out: list[transitions.Admission] = []
    bad: list[tuple[str, dict[str, Any], str]] = []
    for obj in objects:
        try:
            fields = entry_fields_from_wire(obj)
        except InvalidEntryData as exc:
            entry_id = obj.get("id")
            if rules.is_valid_id(entry_id):
                bad.append((entry_id, _minimal_fields(obj), f"invalid data from Kaltura: {exc}"))
            else:
                log.warning("discover: entry with an unusable id skipped", id=repr(entry_id)[:60])
            continue
        if fields["parent_id"]:
            continue  # a multi-stream child is sized and deleted with its parent
        decision = evaluate(facts_from_fields(fields), run.policy, run.as_of)
        out.append(transitions.Admission.from_decision(fields, decision))
    return out, bad


def _minimal_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Columns for an entry whose wire data failed the checks: only what is safe to keep."""
    fields: dict[str, Any] = dict.fromkeys(ENTRY_METADATA_COLUMNS)
    created = obj.get("createdAt")
    fields.update(
        id=obj["id"],
        created_at=created if isinstance(created, int) and created >= 0 else 0,
        is_quiz=0,
        is_external=0,
    )
    return fields


async def _record_bad(run: _Run, bad: Sequence[tuple[str, dict[str, Any], str]], now: int) -> None:
    """Entries whose data failed the checks go to state error (never candidates)."""
    if not bad:
        return
    known = await queries.states_of(run.store, [entry_id for entry_id, _, _ in bad])
    new = []
    for entry_id, fields, why in bad:
        state = known.get(entry_id)
        if state is None:
            new.append(transitions.Admission(fields=fields, state=State.ERROR, reason=why))
        elif state != State.ERROR and State.ERROR in ALLOWED[state]:
            # Keep the row's last good metadata; only the state and the reason change.
            await transitions.move(
                run.store, entry_id, state, State.ERROR, run_id=run.run_id, error=why, now=now
            )
    if new:
        await transitions.admit(run.store, new, run_id=run.run_id, now=now)


# ---- refresh of rows the listing did not return ---------------------------------------------


async def _refresh_unseen(run: _Run, concurrency: int) -> None:
    first_run = int(await queries.get_meta(run.store, _K_FIRST_RUN) or run.run_id)
    rows = await queries.unseen_since(run.store, REFETCH_STATES, first_run)
    if not rows:
        return
    batches = [rows[i : i + ID_BATCH] for i in range(0, len(rows), ID_BATCH)]
    slots = asyncio.Semaphore(max(1, concurrency))

    async def one(batch: Sequence[EntryRow]) -> None:
        async with slots:
            try:
                found = await run.client.get_entries([r.id for r in batch])
            except KalturaError as exc:
                run.failed = True
                run.result.problems.append(f"refresh of {len(batch)} known entries: {exc}")
                return
        await _apply_refresh(run, batch, found)
        run.emit("discover.refresh", refreshed=run.result.refreshed, gone=run.result.gone)

    await asyncio.gather(*(one(b) for b in batches))


async def _apply_refresh(
    run: _Run, batch: Sequence[EntryRow], found: Mapping[str, Mapping[str, Any]]
) -> None:
    """Re-evaluate known rows on their fresh data (rules.recheck) and record the verdicts."""
    admissions: list[transitions.Admission] = []
    bad: list[tuple[str, dict[str, Any], str]] = []
    gone: list[tuple[EntryRow, str]] = []
    for row in batch:
        check = rules.recheck(row, found.get(row.id), run.policy, run.as_of)
        if check.verdict == rules.Verdict.GONE:
            gone.append((row, check.reason))
        elif check.fields is None:  # the fresh object could not be read
            bad.append((row.id, _minimal_fields(found[row.id]), check.reason))
        elif not check.fields["parent_id"]:
            admissions.append(_admission(check))
    now = wall_now()
    async with run.store.transaction():
        if admissions:
            await transitions.admit(run.store, admissions, run_id=run.run_id, now=now)
        await _record_bad(run, bad, now)
        for state, why in {(r.state, why) for r, why in gone}:
            await transitions.move_many(
                run.store,
                [r.id for r, reason in gone if r.state == state and reason == why],
                state,
                State.GONE,
                run_id=run.run_id,
                reason=why,
                updates={"last_seen_run": run.run_id, "refreshed_at": now, "reason": why},
                now=now,
            )
    run.result.refreshed += len(batch)
    run.result.gone += len(gone)
    _count(run.result, admissions, bad)


def _admission(check: rules.Recheck) -> transitions.Admission:
    """What a re-check says, as an admission (a kept row carries the check's reason, e.g.
    "played <date> since ...", in rules.recheck's words)."""
    assert check.fields is not None and check.decision is not None
    admission = transitions.Admission.from_decision(check.fields, check.decision)
    if check.verdict == rules.Verdict.KEPT:
        return dataclasses.replace(admission, policy=None, reason=check.reason)
    return admission

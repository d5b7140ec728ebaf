"""Sizing: what each candidate holds and what its action frees, in batched multirequests.

    result = await size(ctx, options=SizeOptions(), retry_errors=True, pool=None)

Per batch of up to 150 entries (an IN list keeps 150 ids), ONE multirequest asks for:
a fresh ``baseEntry.list idIn`` (an entry played since discovery drops out), the flavor,
caption, attachment and thumbnail lists by ``entryIdIn``, and ``parentEntryIdEqual`` for
each entry's multi-stream children; follow-up rounds fetch further pages and the
children's assets. Then, for each entry (kretain.rules does the deciding):

- the policy is re-evaluated on the fresh data (rules.recheck): gone, kept (played since),
  exempt, error (unreadable data) or still qualifying;
- a qualifying entry's assets are checked (rules.parse_asset), its source flavor found per
  owner (rules.find_source: an unknown source is recorded, never guessed) and its bytes
  counted (rules.bytes_freed_by); the row moves to ``sized`` with its assets, in one
  transaction per batch.

One broken entry must not hide its batch (kretain.workers.lookup isolates failing entries by
bisecting the failing lists): only the entries whose data cannot be fetched end in ``error``,
each with its own reason. When Kaltura cannot be reached at all, that is not the entries'
fault: the stage stops, the batch's rows go back untouched and the run reports it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import structlog

from kretain import rules
from kretain.errors import InvalidEntryData
from kretain.policy import Policy
from kretain.store import queries, transitions
from kretain.store.db import now as wall_now
from kretain.store.models import EntryRow, asset_columns, parse_asset
from kretain.store.states import State
from kretain.workers.claims import ClaimLoop, ClaimPhase
from kretain.workers.context import RunContext
from kretain.workers.lookup import (
    MAX_BATCH_SIZE,
    BatchData,
    KalturaUnreachable,
    LookupStats,
    fetch_batch,
)
from kretain.workers.offload import OffloadPool

__all__ = [
    "Outcome",
    "SizeOptions",
    "SizeResult",
    "SizedEntry",
    "outcome_of",
    "size",
    "size_entry",
]

log = structlog.get_logger("kretain.size")


@dataclass(frozen=True)
class SizeOptions:
    concurrency: int = 4
    batch_size: int = MAX_BATCH_SIZE
    lease_seconds: int = 900
    max_attempts: int = 5  # runs an entry in error is retried before it waits for `retry`

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH_SIZE}")


@dataclass
class SizeResult:
    """What one size() call did."""

    claimed: int = 0
    sized: int = 0
    kept: int = 0  # played (or no longer qualifying) since discovery
    exempt: int = 0
    gone: int = 0
    errors: int = 0  # lookups failed or data malformed: state error, retried next run
    source_unknown: int = 0  # sized, but no flavor can be named the source
    batches: int = 0
    splits: int = 0  # failing lists split in two to isolate broken entries
    requests: int = 0  # HTTP requests (a multirequest counts once)
    calls: int = 0  # API calls inside them
    bytes_saved: int = 0
    stopped: str | None = None  # why the stage stopped early (Kaltura unreachable)
    problems: list[str] = field(default_factory=list)

    def as_counts(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("problems", "stopped")}


# ---- one entry's sizes (pure) ---------------------------------------------------------------


@dataclass(frozen=True)
class SizedEntry:
    """Asset columns (``assets`` table, minus entry_id) and the entry's totals."""

    entry_id: str
    assets: list[dict[str, Any]]
    bytes_total: int
    bytes_saved: int
    children: tuple[str, ...]
    unknown_sources: tuple[str, ...] = ()  # owners with flavors but no recognisable source

    @property
    def asset_count(self) -> int:
        return len(self.assets)

    @property
    def source_known(self) -> bool:
        return not self.unknown_sources


def size_entry(
    entry_id: str,
    action: str,
    assets_by_owner: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]],
    children: Sequence[str] = (),
) -> SizedEntry:
    """Size one entry from its wire assets and its children's (``assets_by_owner`` maps the
    entry id and each child id to ``(kind, wire asset)`` pairs). Raises InvalidEntryData
    for a malformed asset or one that names another entry."""
    if action not in ("delete_entry", "delete_flavors"):
        raise InvalidEntryData(f"entry {entry_id}: nothing to size for action {action!r}")
    columns: list[dict[str, Any]] = []
    seen: set[str] = set()
    unknown: list[str] = []
    for owner in (entry_id, *children):
        parsed: list[rules.Asset] = []
        for kind, wire in assets_by_owner.get(owner, ()):
            asset = parse_asset(kind, wire, owner=owner)
            if asset.id not in seen:  # the same asset on two pages counts once
                seen.add(asset.id)
                parsed.append(asset)
        flavors = [a for a in parsed if a.kind == "flavor"]
        pick = rules.find_source(flavors)
        if flavors and not pick.known:
            unknown.append(owner)
        source_id = flavors[pick.index].id if pick.index is not None else None
        columns += [
            asset_columns(a, top_entry=entry_id, is_source=a.id == source_id) for a in parsed
        ]
    saved = rules.bytes_freed_by(action, [_Sized(c) for c in columns], source_known=not unknown)
    return SizedEntry(
        entry_id,
        columns,
        sum(c["size_bytes"] for c in columns),
        saved,
        tuple(children),
        tuple(unknown),
    )


class _Sized:
    """An asset column dict seen through the rulebook's asset protocol."""

    __slots__ = ("is_source", "kind", "size_bytes")

    def __init__(self, columns: Mapping[str, Any]) -> None:
        self.kind: str = columns["kind"]
        self.is_source = bool(columns["is_source"])
        self.size_bytes: int = columns["size_bytes"]


# ---- deciding (pure; may run in a worker process) -------------------------------------------

OutcomeKind = Literal["sized", "kept", "exempt", "gone", "error"]


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    reason: str
    fields: dict[str, Any] | None = None  # the fresh entry as columns
    sized: SizedEntry | None = None
    updates: dict[str, Any] = field(default_factory=dict)  # classification columns to write


def outcome_of(row: EntryRow, data: BatchData, policy: Policy, as_of: date) -> Outcome:
    """What sizing does with one row, from its batch's data."""
    if row.id in data.failed:
        return Outcome("error", data.failed[row.id])
    check = rules.recheck(row, data.entries.get(row.id), policy, as_of)
    if check.verdict == rules.Verdict.GONE:
        return Outcome("gone", check.reason)
    if check.verdict == rules.Verdict.ERROR:
        return Outcome("error", check.reason)
    if check.verdict in (rules.Verdict.KEPT, rules.Verdict.EXEMPT):
        updates = {"reason": check.reason, "action": None, "policy": check.rule,
                   "exempt_by": check.decision.exempt_by if check.decision else None}  # fmt: skip
        return Outcome(check.verdict.value, check.reason, check.fields, updates=updates)  # type: ignore[arg-type]
    assert check.action is not None and check.fields is not None
    new = {"policy": check.rule, "action": check.action, "reason": check.reason}
    # Only a changed classification is written; unchanged rows move together in one batch.
    changed = (row.policy, row.action, row.reason) != (new["policy"], new["action"], new["reason"])
    try:
        sized = size_entry(row.id, check.action, data.by_owner, data.children.get(row.id, ()))
    except InvalidEntryData as exc:
        return Outcome("error", f"malformed asset: {exc}")
    return Outcome("sized", "sized", check.fields, sized, new if changed else {})


def outcomes_of(
    rows: Sequence[EntryRow], data: BatchData, policy: Policy, as_of: date
) -> list[Outcome]:
    """outcome_of for a batch (module level, so a worker process can run it)."""
    return [outcome_of(row, data, policy, as_of) for row in rows]


# ---- writing a batch ------------------------------------------------------------------------


def _changed(fields: Mapping[str, Any], stored: EntryRow) -> bool:
    """Kaltura changed the entry since it was stored (updatedAt moves with metadata; plays
    and the last play do not move updatedAt)."""
    return (fields["updated_at"], fields["last_played_at"], fields["plays"], fields["status"]) != (
        stored.updated_at,
        stored.last_played_at,
        stored.plays,
        stored.status,
    )


def _sized_reason(sized: SizedEntry) -> str:
    if sized.source_known:
        return "sized"
    return "sized; source flavor unknown for " + ", ".join(sized.unknown_sources)


async def _write_batch(
    ctx: RunContext, rows: Sequence[EntryRow], outcomes: Sequence[Outcome], result: SizeResult
) -> list[str]:
    """Write a batch's outcomes as ONE transaction in one hop to the database thread.

    Every write's parameters are built first, outside the store's write lock. No move is
    strict: a row that discovery (listing at the same time) re-classified keeps its verdict.
    Returns the ids left as they were (none: every row moves, an error row onto itself).
    """
    now = wall_now()
    run_id = ctx.run_id
    jobs: list[transitions.Job[Any]] = []
    refreshed: list[dict[str, Any]] = []
    sized_assets: dict[str, list[dict[str, Any]]] = {}
    groups: dict[str, tuple[dict[str, Any], str, list[EntryRow]]] = {}
    totals: dict[str, dict[str, Any]] = {}

    moves: list[transitions.Job[list[str]]] = []

    def move(row: EntryRow, to: State, **details: Any) -> None:
        moves.append(
            transitions.move_many_job(
                [row.id], row.state, to, run_id=run_id, lease_owner=run_id, now=now, **details
            )
        )

    for row, out in zip(rows, outcomes, strict=True):
        if out.kind == "error":
            result.errors += 1
            move(row, State.ERROR, error=out.reason)  # onto itself too: one more attempt
            continue
        if out.kind == "gone":
            result.gone += 1
            move(row, State.GONE, reason=out.reason)
            continue
        assert out.fields is not None
        if out.kind in ("kept", "exempt"):
            setattr(result, out.kind, getattr(result, out.kind) + 1)
            refreshed.append(out.fields)
            move(row, State(out.kind), reason=out.reason, updates=out.updates)
            continue
        assert out.sized is not None
        if _changed(out.fields, row):
            refreshed.append(out.fields)
        sized_assets[row.id] = out.sized.assets
        totals[row.id] = {
            "asset_count": out.sized.asset_count,
            "bytes_total": out.sized.bytes_total,
            "bytes_saved": out.sized.bytes_saved,
            "refreshed_at": now,
        }
        why = _sized_reason(out.sized)
        key = json.dumps([str(row.state), out.updates, why], sort_keys=True, default=str)
        groups.setdefault(key, (out.updates, why, []))[2].append(row)
        result.sized += 1
        result.source_unknown += not out.sized.source_known
        result.bytes_saved += out.sized.bytes_saved
    if refreshed:
        jobs.insert(0, queries.refresh_entries_job(refreshed, run_id=run_id, now=now))
    if sized_assets:
        jobs.append(queries.replace_assets_job(sized_assets, now=now))
        # One rewrite per entry: the state move carries the totals.
        for updates, why, group in groups.values():
            moves.append(
                transitions.move_many_job(
                    [r.id for r in group],
                    group[0].state,
                    State.SIZED,
                    run_id=run_id,
                    reason=why,
                    updates=updates or None,
                    row_updates={r.id: totals[r.id] for r in group},
                    lease_owner=run_id,
                    now=now,
                )
            )
    if not jobs and not moves:
        return []
    results = await ctx.store.write(lambda conn: ([job(conn) for job in jobs],
                                                  [job(conn) for job in moves]))  # fmt: skip
    return [entry_id for skipped in results[1] for entry_id in skipped]


# ---- the stage ------------------------------------------------------------------------------


async def size(
    ctx: RunContext,
    *,
    options: SizeOptions | None = None,
    retry_errors: bool = True,
    pool: OffloadPool | None = None,
) -> SizeResult:
    """Size every ``candidate`` row, first retrying ``error`` rows of earlier runs that have
    an action (a failed sizing lookup) and fewer than ``max_attempts`` failures.

    ``retry_errors=False`` leaves the error rows alone: a caller that calls size() again and
    again in one run (while discovery is still listing) retries them once. ``pool`` runs
    the batches' pure-Python checks away from the event loop (else a thread).
    ``ctx.progress`` gets ``size.batch`` events and ``size.done``.
    """
    opts = options or SizeOptions()
    result = SizeResult()
    before = ctx.client.stats.requests
    stats = LookupStats()
    phases = [ClaimPhase((State.CANDIDATE,), State.CANDIDATE)]
    if retry_errors:
        # Only error rows with an action failed a sizing lookup (the rest failed the policy).
        phases.insert(
            0,
            ClaimPhase((State.ERROR,), State.ERROR, max_attempts=opts.max_attempts, up_front=True),
        )
    loop = ClaimLoop(
        ctx,
        phases,
        batch_size=opts.batch_size,
        concurrency=opts.concurrency,
        lease_seconds=opts.lease_seconds,
    )

    async def handle(batch: list[EntryRow]) -> Iterable[str] | None:
        # Error rows without an action failed the policy, not a sizing lookup: discovery
        # re-evaluates those. They stay leased (not retried twice) and go back at the end.
        rows = [r for r in batch if r.state != State.ERROR or r.action is not None]
        others = [r.id for r in batch if r not in rows]
        if not rows:
            return others
        try:
            data = await fetch_batch(ctx.client, [r.id for r in rows], stats)
        except KalturaUnreachable as exc:
            if result.stopped is None:
                result.stopped = f"sizing stopped: Kaltura could not be reached: {exc}"
                result.problems.append(result.stopped)
                log.error("size.stopped", error=str(exc))
            loop.stop.set()
            return [r.id for r in rows]  # handed back untouched, no attempt charged
        args = (rows, data, ctx.policy, ctx.as_of)
        if pool is None:  # ~100 ms of pure Python per batch: not on the event loop
            outcomes = await asyncio.to_thread(outcomes_of, *args)
        else:
            outcomes = await pool.run(outcomes_of, *args)
        kept = [*others, *await _write_batch(ctx, rows, outcomes, result)]
        result.batches += 1
        ctx.emit(
            "size.batch",
            sized=result.sized,
            kept=result.kept,
            errors=result.errors,
            gone=result.gone,
            bytes_saved=result.bytes_saved,
        )
        return kept

    result.claimed = await loop.run(handle)
    result.calls, result.splits = stats.calls, stats.splits
    result.requests = ctx.client.stats.requests - before
    ctx.emit("size.done", **result.as_counts())
    return result

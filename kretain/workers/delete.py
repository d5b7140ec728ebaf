"""The delete stage: carry out the policy (delete entries, strip flavors, or recycle).

    result = await delete(ctx, options=DeleteOptions(act=False))     # the plan only
    result = await delete(ctx, options=DeleteOptions(act=True, ...))  # the plan, then act

Which rows are due: ``delete_entry`` rows in ``archived`` (their rule needs a backup) or
``sized`` (a rule with ``backup = false``), ``delete_flavors`` rows in ``sized``, and
``delete_failed`` rows with fewer than ``max_attempts`` failures. Rows not due yet (not
sized, not backed up, backup failed) are listed in the plan as held back, with why.

Right before acting, in batches of up to 150 (one batched lookup, kretain.workers.lookup,
which isolates a broken entry instead of failing its batch), each row is re-checked
(kretain.rules.recheck, with the run's as-of and exemptions read from Kaltura now): gone
(not deleted by kretain: ``gone``), played since / no longer under the same rule (``kept``),
exempt now (``exempt``), or a failed lookup (held: not acted on in this run). Then:

- a notice period (``notice_days``) not over yet holds the row back;
- delete_entry with a backup: the archive (an ArchiveTarget: a directory or an S3 bucket
  prefix) must be the configured one, the entry's assets must still be the ones backed up (a
  caption added since means size and back up again), and every archived file must be there
  with its recorded size and sha256, read back and re-hashed now through the target, and
  entry.json must be there (kretain.workers.verify.check_archive). A copy that fails goes
  back for a new backup (``sized``); it is not deleted in this run. A store that does not
  answer holds the row back; an archive that cannot be read at all stops the stage;
- delete_flavors: the flavors are read again and each owner's source found again
  (rules.find_source): an unknown or not-READY source, or nothing else to delete, holds the
  entry back. The source is never deleted, nor any flavor of an entry held back.

Acting (``act=True`` only): each call is paced by a WindowLimiter per action (at most
``rate`` calls in any ``window`` seconds; slower for the rest of the run after
ACTION_BLOCKED, which also waits out the window before that call is retried). Before each
call an intent event is committed and the row moved to ``deleting``; after it, the outcome.
The client sends a changing call once (KalturaClient.mutate); a lost answer (timeout, 5xx)
is retried once here, and ENTRY_ID_NOT_FOUND / FLAVOR_ASSET_ID_NOT_FOUND after an intent
means done. If the answer is lost twice, or the re-send gets an error, Kaltura is asked: a
row is recorded deleted only when Kaltura no longer has it. A run that starts after a crash
first resolves rows left in ``deleting`` the same way (:func:`resolve_interrupted`), before
anything else.

``max_deletes`` / ``max_delete_bytes`` stop the stage cleanly before the cap is passed. In
recycle mode FEATURE_RECYCLE_BIN_DISABLED stops the stage with one clear message. The plan
(every row considered, with its decision and reason) is written as CSV to ``plan_path``.
"""

from __future__ import annotations

import asyncio
import csv
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import structlog

from kretain import rules
from kretain.archive import ArchiveRequestFailed, ArchiveTarget
from kretain.errors import ArchiveUnavailable, KretainError, StateConflictError
from kretain.kaltura.errors import ApiError, NotFound, RateLimited, TransportError
from kretain.output import csv_cell
from kretain.store import queries, transitions
from kretain.store.db import now as wall_now
from kretain.store.models import EntryRow
from kretain.store.states import Action, State
from kretain.workers.claims import ClaimLoop, ClaimPhase
from kretain.workers.context import RunContext
from kretain.workers.lookup import (
    MAX_BATCH_SIZE,
    BatchData,
    KalturaUnreachable,
    fetch_batch,
    recycled_ids,
)
from kretain.workers.ratelimit import WindowLimiter
from kretain.workers.size import size_entry
from kretain.workers.verify import check_archive, demote

__all__ = [
    "PLAN_COLUMNS",
    "DeleteOptions",
    "DeleteResult",
    "delete",
    "plan_path_for",
    "resolve_interrupted",
]

log = structlog.get_logger("kretain.delete")

DELETE_CALL = "baseentry.delete"
RECYCLE_CALL = "baseentry.recycle"
FLAVOR_CALL = "flavorasset.delete"
PLAN_COLUMNS = (
    "entry_id",
    "name",
    "owner",
    "policy",
    "action",
    "decision",
    "reason",
    "bytes",
    "created_at",
    "last_played_at",
    "notified_at",
    "outcome",
)


class Act(StrEnum):
    DELETE = "delete"
    RECYCLE = "recycle"
    STRIP = "strip"


@dataclass(frozen=True)
class DeleteOptions:
    act: bool = False  # False: the plan only, nothing changes in Kaltura
    mode: Literal["delete", "recycle"] = "delete"
    max_deletes: int | None = None  # entries acted on (deleted, recycled or stripped)
    max_delete_bytes: int | None = None
    rate: int = 35  # calls per window, per action
    window: float = 10.0
    recycle_retention_days: int = 30
    notice_days: int = 0
    archive: ArchiveTarget | None = None  # None: no archive, so no row that needs one is deleted
    plan_path: Path | None = None
    concurrency: int = 3  # batches in flight: some re-check and hash while others act
    batch_size: int = MAX_BATCH_SIZE
    lease_seconds: int = 900
    max_attempts: int = 5
    blocked_attempts: int = 12  # ACTION_BLOCKED answers one call may get before it fails
    act_concurrency: int = 16  # entries acted on at once within a batch
    hash_concurrency: int = 2


@dataclass
class DeleteResult:
    """What one delete() call found and did."""

    dry_run: bool
    considered: int = 0  # rows re-checked against Kaltura
    planned: int = 0  # rows the policy still wants acted on
    planned_bytes: int = 0
    deleted: int = 0
    recycled: int = 0
    stripped: int = 0
    flavors_deleted: int = 0
    bytes_freed: int = 0  # recycled entries count too: freed when the bin empties
    held: int = 0
    kept: int = 0
    exempt: int = 0
    gone: int = 0
    back_up_again: int = 0  # the archive check failed: to sized, backed up again
    size_again: int = 0  # the assets changed since the backup: to candidate
    failed: int = 0
    exhausted: int = 0
    lookup_failed: int = 0
    stopped: str | None = None  # why the stage stopped early
    stopped_by_error: bool = False  # False: a cap was reached (a clean stop)
    plan_path: str | None = None
    by_rule: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # -> [n, bytes]
    held_reasons: Counter[str] = field(default_factory=Counter)
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_counts(self) -> dict[str, Any]:
        skip = {"by_rule", "held_reasons", "calls", "problems", "stopped", "plan_path", "dry_run",
                "stopped_by_error"}  # fmt: skip
        return {k: v for k, v in self.__dict__.items() if k not in skip}


def plan_path_for(db: Path, run_id: int) -> Path:
    return Path(db).parent / "kretain-plans" / f"plan-{run_id}.csv"


# ---- deciding ---------------------------------------------------------------------------------


@dataclass
class _Line:
    """One row of the plan."""

    row: EntryRow
    decision: str  # delete | recycle | strip | held | kept | exempt | gone | back up again ...
    reason: str
    bytes: int = 0
    act: Act | None = None
    victims: list[rules.Asset] = field(default_factory=list)
    move_to: State | None = None
    updates: dict[str, Any] = field(default_factory=dict)
    outcome: str = ""
    sized_assets: list[dict[str, Any]] | None = None  # fresh asset columns (strips)

    @property
    def category(self) -> str:
        return self.reason.split(":", 1)[0]


def _held(row: EntryRow, why: str) -> _Line:
    return _Line(row, "held", why)


def _owners_flavors(row: EntryRow, data: BatchData) -> dict[str, list[rules.Asset]]:
    owners: dict[str, list[rules.Asset]] = {o: [] for o in (row.id, *data.children.get(row.id, []))}
    for owner, kind, wire in data.wire_assets(row.id):
        if kind == "flavor":
            owners[owner].append(rules.parse_asset(kind, wire, owner=owner))
    return owners


def _strip_plan(row: EntryRow, data: BatchData) -> _Line:
    """Every non-source flavor of the entry and its children, or why none may go."""
    try:
        owners = _owners_flavors(row, data)
    except rules.WireValueError as exc:
        return _held(row, f"lookup failed: malformed flavor: {exc}")
    victims: list[rules.Asset] = []
    for owner, flavors in owners.items():
        if not flavors:
            continue
        pick = rules.find_source(flavors)
        if pick.index is None:
            return _held(row, f"source unknown: no flavor of {owner} is marked as the source")
        source = flavors[pick.index]
        if source.status != rules.ENTRY_READY:
            return _held(row, f"source not ready: {source.id} has status {source.status}")
        victims += [f for i, f in enumerate(flavors) if i != pick.index]
    if not victims:
        return _held(row, "nothing to strip: no flavor but the source")
    line = _Line(row, Act.STRIP.value, "strip every flavor but the source", act=Act.STRIP)
    line.victims = victims
    line.bytes = sum(v.size_bytes for v in victims)
    return line


# ---- the stage --------------------------------------------------------------------------------


class _Stage:
    def __init__(self, ctx: RunContext, opts: DeleteOptions, result: DeleteResult) -> None:
        self.ctx = ctx
        self.opts = opts
        self.result = result
        self.now = wall_now()
        self.uri = opts.archive.uri if opts.archive is not None else None
        self.limiters = {
            call: WindowLimiter(opts.rate, opts.window)
            for call in (DELETE_CALL, RECYCLE_CALL, FLAVOR_CALL)
        }
        self.stop = asyncio.Event()
        self.caps = asyncio.Lock()
        self.reserved_entries = 0
        self.reserved_bytes = 0
        self.hashing = asyncio.Semaphore(max(1, opts.hash_concurrency))
        self.plan = _PlanWriter(opts.plan_path)
        self.total = 0  # rows due when the stage started (progress)

    # -- one batch --------------------------------------------------------------------------
    async def batch(self, rows: list[EntryRow]) -> list[str]:
        """Re-check a batch, record the plan, act on what still qualifies. Returns the ids
        left as they were (held rows go back at the end of the stage)."""
        try:
            data = await fetch_batch(self.ctx.client, [r.id for r in rows])
        except KalturaUnreachable as exc:
            self._halt(f"delete stage stopped: Kaltura could not be reached: {exc}", error=True)
            return [r.id for r in rows]
        intents = await transitions.unresolved_intents(self.ctx.store, [r.id for r in rows])
        lines = await asyncio.gather(*(self._decide(r, data, intents) for r in rows))
        await self._record_decisions(lines)
        if self.opts.act:
            # Several calls in flight, so network latency does not hold the pace below the
            # rate; the limiters, not this, decide how many calls a window gets.
            slots = asyncio.Semaphore(max(1, self.opts.act_concurrency))

            async def act(line: _Line) -> None:
                async with slots:
                    if self.stop.is_set():
                        line.outcome = "not acted on: the stage stopped"
                        return
                    await self._act(line, data)

            await asyncio.gather(*(act(ln) for ln in lines if ln.act is not None))
        self.plan.write(lines)
        self._emit()
        # Rows still leased (held back, or left by a dry run) go back when the stage ends;
        # rows the stage moved carry no lease any more, so handing them back is a no-op.
        return [r.id for r in rows]

    async def _decide(
        self, row: EntryRow, data: BatchData, intents: dict[str, list[tuple[str, str | None]]]
    ) -> _Line:
        self.result.considered += 1
        if row.id in data.failed:
            self.result.lookup_failed += 1
            return _held(row, f"lookup failed: {data.failed[row.id]}")
        check = rules.recheck(
            row, data.entries.get(row.id), self.ctx.policy, self.ctx.as_of, same_rule=True
        )
        if check.verdict == rules.Verdict.GONE:
            calls = [call for call, _ in intents.get(row.id, [])]
            if calls:  # our own call went through before a crash
                fresh = data.entries.get(row.id)
                if fresh is not None and rules.in_recycle_bin(fresh):
                    line = _Line(row, "recycled", "recycled by kretain (the answer was lost)")
                    line.move_to = State.RECYCLED
                else:
                    line = _Line(row, "deleted", "deleted by kretain (the answer was lost)")
                    line.move_to = State.DELETED
                line.updates["delete_mode"] = "recycle" if RECYCLE_CALL in calls else "delete"
                return line
            line = _Line(row, "gone", check.reason, move_to=State.GONE)
            return line
        if check.verdict == rules.Verdict.ERROR:
            self.result.lookup_failed += 1
            return _held(row, f"lookup failed: {check.reason}")
        if check.verdict in (rules.Verdict.KEPT, rules.Verdict.EXEMPT):
            state = State(check.verdict.value)
            exempt_by = check.decision.exempt_by if check.decision else None
            return _Line(
                row,
                state.value,
                check.reason,
                move_to=state,
                updates={"action": None, "policy": check.rule, "exempt_by": exempt_by},
            )
        if self.opts.notice_days > 0:
            due = (row.notified_at or 0) + self.opts.notice_days * 86_400
            if row.notified_at is None or due > self.now:
                when = rules.day(due) if row.notified_at is not None else "no notice sent yet"
                return _held(row, f"notice not yet due: {when}")
        if row.action == Action.DELETE_FLAVORS:
            line = _strip_plan(row, data)
            if line.act is not None:
                try:
                    line.sized_assets = size_entry(
                        row.id, str(row.action), data.by_owner, data.children.get(row.id, ())
                    ).assets
                except KretainError as exc:
                    return _held(row, f"lookup failed: {exc}")
            return line
        return await self._entry_plan(row, data)

    async def _entry_plan(self, row: EntryRow, data: BatchData) -> _Line:
        mode = Act.RECYCLE if self.opts.mode == "recycle" else Act.DELETE
        stored = await queries.assets_of(self.ctx.store, row.id)
        if self.ctx.policy.needs_backup(row.policy):
            if self.opts.archive is None:
                return _held(row, "archive not verified: no archive is configured")
            if row.archive_uri != self.uri:
                where = row.archive_uri or "an unrecorded archive"
                return _held(row, f"archive not verified: backed up to {where}")
            if data.assets_changed(row.id, stored):
                return _Line(
                    row,
                    "size again",
                    "assets changed since the backup: size and back up again first",
                    move_to=State.CANDIDATE,
                )
            try:
                async with self.hashing:
                    found = await check_archive(
                        self.opts.archive, row, stored, self.ctx.client.config.partner_id, True
                    )
            except ArchiveRequestFailed as exc:
                return _held(row, f"archive not verified: the store did not answer: {exc}")
            except ArchiveUnavailable as exc:
                self._halt(f"delete stage stopped: {exc}", error=True)
                return _held(row, f"archive not verified: {exc}")
            if found.reasons:
                why = "archive check failed: " + "; ".join(found.reasons)
                line = _Line(row, "back up again", why)
                line.move_to = State.SIZED
                line.updates = {"_found": found, "_assets": stored}
                return line
        line = _Line(row, mode.value, f"{mode.value} the entry: {row.reason or row.policy}")
        line.act = mode
        line.bytes = sum(a.size_bytes for a in stored) or int(row.bytes_saved or 0)
        return line

    async def _record_decisions(self, lines: Sequence[_Line]) -> None:
        """Held reasons, and the moves a re-check calls for (only when acting: a plan changes
        nothing but the held reasons)."""
        r = self.result
        for line in lines:
            if line.act is not None:
                r.planned += 1
                r.planned_bytes += line.bytes
                key = (str(line.row.policy), line.decision)
                tally = r.by_rule.setdefault(key, [0, 0])
                tally[0] += 1
                tally[1] += line.bytes
            elif line.decision == "held":
                r.held += 1
                r.held_reasons[line.category] += 1
        await queries.set_held(
            self.ctx.store,
            {ln.row.id: ln.reason if ln.decision == "held" else None for ln in lines},
            self.now,
        )
        if not self.opts.act:
            return
        for line in lines:
            if line.move_to is None:
                continue
            await self._apply_move(line)

    async def _apply_move(self, line: _Line) -> None:
        r, row = self.result, line.row
        try:
            if line.move_to == State.SIZED and "_found" in line.updates:
                assert self.opts.archive is not None  # only a checked archive finds damage
                await demote(
                    self.ctx.store,
                    self.opts.archive,
                    row,
                    line.updates["_assets"],
                    line.updates["_found"],
                    self.ctx.client.config.partner_id,
                    self.ctx.run_id,
                    by="delete stage",
                    reasons=[line.reason],
                    lease_owner=self.ctx.run_id,
                )
                r.back_up_again += 1
            elif line.move_to in (State.DELETED, State.RECYCLED):
                await self._begin(row)
                await self._finish(row, line.move_to, line.reason, int(row.bytes_saved or 0),
                                   mode=line.updates["delete_mode"])  # fmt: skip
                if line.move_to == State.RECYCLED:
                    r.recycled += 1
                else:
                    r.deleted += 1
            else:
                await transitions.move(
                    self.ctx.store,
                    row.id,
                    row.state,
                    line.move_to,  # type: ignore[arg-type]
                    run_id=self.ctx.run_id,
                    reason=line.reason,
                    updates={"reason": line.reason, **line.updates},
                    lease_owner=self.ctx.run_id,
                )
                name = {State.CANDIDATE: "size_again"}.get(line.move_to, str(line.move_to))
                setattr(r, name, getattr(r, name) + 1)
            line.outcome = line.decision
        except StateConflictError as exc:
            r.problems.append(f"{row.id}: {exc}")
        except (ArchiveRequestFailed, ArchiveUnavailable) as exc:
            # The damaged copy could not be taken out yet; the row stays where it is and
            # fails the same check next run (it is not deleted in this one).
            r.problems.append(f"{row.id}: archive check failed, not cleaned up: {exc}")

    # -- acting -----------------------------------------------------------------------------
    async def _reserve(self, line: _Line) -> bool:
        """Count the entry against the caps, or stop the stage before a cap is passed."""
        async with self.caps:
            o = self.opts
            if o.max_deletes is not None and self.reserved_entries >= o.max_deletes:
                self._halt(f"--max-deletes {o.max_deletes} reached: stopped; run again for more")
                return False
            if (
                o.max_delete_bytes is not None
                and self.reserved_bytes + line.bytes > o.max_delete_bytes
            ):
                self._halt(
                    f"--max-delete-bytes {o.max_delete_bytes:,} would be exceeded by "
                    f"{line.row.id} ({line.bytes:,} bytes): stopped; run again for more"
                )
                return False
            self.reserved_entries += 1
            self.reserved_bytes += line.bytes
            return True

    async def _unreserve(self, line: _Line) -> None:
        async with self.caps:
            self.reserved_entries -= 1
            self.reserved_bytes -= line.bytes

    async def _act(self, line: _Line, data: BatchData) -> None:
        if not await self._reserve(line):
            line.outcome = "not acted on: " + (self.result.stopped or "stopped")
            return
        row = line.row
        try:
            await self._begin(row)
            if line.act == Act.STRIP:
                done = await self._strip(line)
            else:
                done = await self._delete_entry(line)
        except StateConflictError as exc:
            self.result.problems.append(f"{row.id}: {exc}")
            done = False
        if not done:
            await self._unreserve(line)

    async def _begin(self, row: EntryRow) -> None:
        """Move the (leased) row to ``deleting``, remembering where it came from."""
        begun = await transitions.claim(
            self.ctx.store,
            row.state,
            State.DELETING,
            1,
            self.ctx.run_id,
            self.opts.lease_seconds,
            entry_ids=[row.id],
        )
        if not begun:
            raise StateConflictError(f"{row.id} is no longer {row.state}", [row.id])

    async def _delete_entry(self, line: _Line) -> bool:
        row = line.row
        recycle = line.act == Act.RECYCLE
        call = RECYCLE_CALL if recycle else DELETE_CALL
        send = self.ctx.client.recycle_entry if recycle else self.ctx.client.delete_entry
        outcome = await self._send(call, lambda: send(row.id), row.id)
        if outcome == "unknown":
            outcome = await self._look_up_entry(row.id, recycle)
        if outcome in ("ok", "not_found", "gone"):
            to = State.RECYCLED if recycle and outcome == "ok" else State.DELETED
            why = {"ok": f"{to} by kretain", "not_found": "already gone at the call (not found)",
                   "gone": "deleted by kretain (the answer was lost)"}[outcome]  # fmt: skip
            await self._finish(row, to, why, line.bytes)
            if to == State.RECYCLED:
                self.result.recycled += 1
            else:
                self.result.deleted += 1
            self.result.bytes_freed += line.bytes
            line.outcome = str(to)
            return True
        if outcome == "recycle disabled":
            await self._back(row, "the partner's recycle bin is disabled")
            self._halt(
                "recycle mode needs the partner's recycle bin (FEATURE_RECYCLE_BIN_DISABLED): "
                "nothing was recycled; enable the bin or use --mode delete",
                error=True,
            )
            line.outcome = "not acted on: recycle bin disabled"
            return False
        if outcome == "present":
            await self._back(row, "the answer was lost and Kaltura still has the entry")
            line.outcome = "not acted on: the answer was lost"
            return False
        await self._fail(row, outcome)
        line.outcome = f"failed: {outcome}"
        return False

    async def _strip(self, line: _Line) -> bool:
        row = line.row
        if line.sized_assets is not None:  # the flavors kretain deletes are on record
            await queries.replace_assets_many(self.ctx.store, {row.id: line.sized_assets})
        freed = 0
        for victim in line.victims:
            outcome = await self._send(
                FLAVOR_CALL, lambda v=victim: self.ctx.client.delete_flavor(v.id), row.id, victim.id
            )
            if outcome == "unknown":
                outcome = await self._look_up_flavor(row, victim)
            if outcome in ("ok", "not_found", "gone"):
                await queries.mark_removed(self.ctx.store, row.id, [victim.id], wall_now())
                freed += victim.size_bytes
                self.result.flavors_deleted += 1
                continue
            if outcome == "present":
                await self._back(row, f"the answer was lost; flavor {victim.id} is still there")
                line.outcome = "not acted on: the answer was lost"
                return False
            await self._fail(row, f"flavor {victim.id}: {outcome}")
            line.outcome = f"failed: flavor {victim.id}: {outcome}"
            return False
        # The row counts every flavor removed, earlier runs' too (a strip stopped part-way).
        total = rules.bytes_stripped(await queries.assets_of(self.ctx.store, row.id))
        await self._finish(row, State.STRIPPED, f"{len(line.victims)} flavors deleted", total)
        self.result.stripped += 1
        self.result.bytes_freed += freed
        line.outcome = "stripped"
        return True

    async def _send(
        self,
        call: str,
        send: Callable[[], Awaitable[Any]],
        entry_id: str,
        asset_id: str | None = None,
    ) -> str:
        """One paced call with its intent and outcome events: "ok", "not_found", "unknown"
        (the answer was lost, and the re-send's did not settle it: lost too, or an error),
        "recycle disabled", or an error code (failed)."""
        store, run_id = self.ctx.store, self.ctx.run_id
        limiter = self.limiters[call]
        await transitions.record_intent(
            store, run_id=run_id, call=call, entry_id=entry_id, asset_id=asset_id
        )
        lost = blocked = 0
        while True:
            try:
                async with limiter.slot():
                    await send()
                outcome = "ok"
            except NotFound:
                outcome = "not_found"
            except RateLimited:
                blocked += 1
                wait = limiter.blocked()
                if blocked <= self.opts.blocked_attempts:
                    await asyncio.sleep(wait)
                    continue
                outcome = "ACTION_BLOCKED"
            except TransportError as exc:
                lost += 1
                log.warning("delete.answer_lost", call=call, entry_id=entry_id, error=str(exc))
                if lost == 1:
                    continue  # the call may have been applied: once more, then ask
                return "unknown"
            except ApiError as exc:
                if lost:
                    # An error answer to the re-send says nothing about the send whose answer
                    # was lost: it may have deleted the entry (or flavor). Ask Kaltura, as
                    # after two lost answers. Recorded as a failure, a deleted entry became
                    # "gone" in the next run (not restorable) and a deleted flavor was never
                    # marked removed (never rebuilt by a restore).
                    log.warning("delete.resend_failed", call=call, entry_id=entry_id,
                                error=exc.code)  # fmt: skip
                    return "unknown"
                outcome = exc.code
            await transitions.record_api_event(
                store, run_id=run_id, call=call, outcome=outcome, entry_id=entry_id,
                asset_id=asset_id,
            )  # fmt: skip
            if outcome == "FEATURE_RECYCLE_BIN_DISABLED":
                return "recycle disabled"
            return outcome

    async def _look_up_entry(self, entry_id: str, recycle: bool) -> str:
        """After a lost answer the re-send did not settle: "gone" (Kaltura no longer has it,
        or has it in the bin when recycling), "present", or "unknown" when the lookup fails
        too."""
        try:
            found = await self.ctx.client.get_entries([entry_id])
            binned = await recycled_ids(self.ctx.client, [entry_id]) if recycle else set()
        except Exception as exc:  # a lookup that fails decides nothing: leave it in deleting
            log.warning("delete.lookup_failed", entry_id=entry_id, error=str(exc))
            return "unknown"
        call = RECYCLE_CALL if recycle else DELETE_CALL
        if entry_id in binned or entry_id not in found:
            outcome = "ok" if entry_id in binned else "gone"
            await transitions.record_api_event(
                self.ctx.store, run_id=self.ctx.run_id, call=call,
                outcome=f"{outcome} (answer lost; looked up)", entry_id=entry_id,
            )  # fmt: skip
            return outcome
        await transitions.record_api_event(
            self.ctx.store, run_id=self.ctx.run_id, call=call,
            outcome="not applied (answer lost; looked up)", entry_id=entry_id,
        )  # fmt: skip
        return "present"

    async def _look_up_flavor(self, row: EntryRow, victim: rules.Asset) -> str:
        try:
            page = await self.ctx.client.list_assets(
                "flavor", [victim.owner], 1, extra_filter={"idEqual": victim.id}
            )
        except Exception as exc:
            log.warning("delete.lookup_failed", entry_id=row.id, error=str(exc))
            return "unknown"
        present = any(a.get("id") == victim.id for a in page.objects)
        await transitions.record_api_event(
            self.ctx.store, run_id=self.ctx.run_id, call=FLAVOR_CALL,
            outcome="not applied (answer lost; looked up)" if present else
            "gone (answer lost; looked up)", entry_id=row.id, asset_id=victim.id,
        )  # fmt: skip
        return "present" if present else "gone"

    async def _finish(
        self, row: EntryRow, to: State, why: str, freed: int, *, mode: str | None = None
    ) -> None:
        """``mode``: the call that was made, when it is not the one ``to`` implies (a recycle
        whose entry was purged from the bin before its lost answer was resolved)."""
        updates: dict[str, Any] = {"bytes_freed": freed, "held_reason": None}
        if to in (State.DELETED, State.RECYCLED):
            updates["delete_mode"] = mode or ("recycle" if to == State.RECYCLED else "delete")
        if to == State.RECYCLED:
            updates["purge_at"] = wall_now() + self.opts.recycle_retention_days * 86_400
        await transitions.move(
            self.ctx.store, row.id, State.DELETING, to, run_id=self.ctx.run_id, reason=why,
            updates=updates,
        )  # fmt: skip

    async def _back(self, row: EntryRow, why: str) -> None:
        """Nothing was done to the entry: back to where it was, no attempt counted."""
        await transitions.move(
            self.ctx.store, row.id, State.DELETING, row.state, run_id=self.ctx.run_id, reason=why
        )

    async def _fail(self, row: EntryRow, why: str) -> None:
        await transitions.move(
            self.ctx.store,
            row.id,
            State.DELETING,
            State.DELETE_FAILED,
            run_id=self.ctx.run_id,
            error=why[:1000],
        )
        self.result.failed += 1
        self.result.problems.append(f"{row.id}: delete failed: {why}")

    def _halt(self, why: str, *, error: bool = False) -> None:
        if self.result.stopped is None:
            self.result.stopped = why
            self.result.stopped_by_error = error
            # A cap reached is the plan working (the command prints it); an error is a warning.
            (log.warning if error else log.info)("delete.stopped", reason=why)
        self.stop.set()

    def _emit(self) -> None:
        r = self.result
        self.ctx.emit("delete.batch", done=r.considered, total=self.total, **r.as_counts())


class _PlanWriter:
    """The plan as CSV, a batch at a time (formula-safe: it is opened in spreadsheets)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fh = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115
            self._csv = csv.writer(self._fh)
            self._csv.writerow(PLAN_COLUMNS)

    def write(self, lines: Iterable[_Line]) -> None:
        if self._fh is None:
            return
        for ln in lines:
            r = ln.row
            self._csv.writerow(
                csv_cell(v)
                for v in (
                    r.id, r.name, r.owner, r.policy, r.action, ln.decision, ln.reason, ln.bytes,
                    _iso(r.created_at), _iso(r.last_played_at), _iso(r.notified_at), ln.outcome,
                )
            )  # fmt: skip
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _iso(ts: int | None) -> str:
    return rules.day(ts) if ts else ""


async def _not_due(ctx: RunContext, stage: _Stage) -> None:
    """Rows the policy wants acted on that are not due yet: in the plan, held back."""
    backup_rules = ctx.policy.backup_rules()
    reasons = {
        State.CANDIDATE: "not sized yet",
        State.ERROR: "lookup failed: the last sizing lookup failed",
        State.DOWNLOADING: "archive not verified: a backup is running",
        State.BACKUP_FAILED: "archive not verified: the backup failed",
        State.SIZED: "archive not verified: not backed up yet",
    }
    after = ""
    while True:
        rows = await queries.due_later(ctx.store, after, 500)
        if not rows:
            return
        after = rows[-1].id
        lines = []
        for row in rows:
            if row.state == State.SIZED and (
                row.action != Action.DELETE_ENTRY or row.policy not in backup_rules
            ):
                continue
            why = reasons[row.state]
            if row.state == State.BACKUP_FAILED and row.last_error:
                why += f" ({row.last_error[:120]})"
            lines.append(_held(row, why))
        stage.result.held += len(lines)
        for line in lines:
            stage.result.held_reasons[line.category] += 1
        stage.plan.write(lines)


async def delete(ctx: RunContext, *, options: DeleteOptions | None = None) -> DeleteResult:
    """Plan (and with ``act``, carry out) the policy's deletes; see the module docstring."""
    opts = options or DeleteOptions()
    result = DeleteResult(dry_run=not opts.act)
    result.plan_path = str(opts.plan_path) if opts.plan_path else None
    stage = _Stage(ctx, opts, result)
    backup_rules = ctx.policy.backup_rules()
    no_backup = tuple(
        r.name
        for r in ctx.policy.rules
        if r.action == "delete_entry" and r.name not in backup_rules
    )
    # Entry deletes and flavor strips are paced by different limiters: two claim loops let
    # both run at their own rate at the same time instead of one after the other.
    loops = [
        ClaimLoop(
            ctx,
            [
                ClaimPhase(
                    (State.DELETE_FAILED,),
                    State.DELETE_FAILED,
                    action=Action.DELETE_ENTRY,
                    max_attempts=opts.max_attempts,
                    up_front=True,
                ),
                ClaimPhase(
                    (State.ARCHIVED,),
                    State.ARCHIVED,
                    action=Action.DELETE_ENTRY,
                    policies=backup_rules,
                ),
                ClaimPhase(
                    (State.SIZED,), State.SIZED, action=Action.DELETE_ENTRY, policies=no_backup
                ),
            ],
            batch_size=opts.batch_size,
            concurrency=max(1, opts.concurrency),
            lease_seconds=opts.lease_seconds,
            stop=stage.stop,
        ),
        ClaimLoop(
            ctx,
            [
                ClaimPhase(
                    (State.DELETE_FAILED,),
                    State.DELETE_FAILED,
                    action=Action.DELETE_FLAVORS,
                    max_attempts=opts.max_attempts,
                    up_front=True,
                ),
                ClaimPhase((State.SIZED,), State.SIZED, action=Action.DELETE_FLAVORS),
            ],
            batch_size=opts.batch_size,
            concurrency=max(1, opts.concurrency),
            lease_seconds=opts.lease_seconds,
            stop=stage.stop,
        ),
    ]
    stage.total = sum([await loop.pending() for loop in loops])
    try:
        await _not_due(ctx, stage)
        await asyncio.gather(*(loop.run(stage.batch) for loop in loops))
    finally:
        stage.plan.close()
    result.exhausted = await queries.count_exhausted(
        ctx.store, State.DELETE_FAILED, opts.max_attempts
    )
    for call, limiter in stage.limiters.items():
        if limiter.stats.calls:
            result.calls[call] = {
                "calls": limiter.stats.calls,
                "blocked": limiter.stats.blocked,
                "configured": f"{limiter.configured} per {opts.window:g} s",
                "limit_now": limiter.limit,
                "per_window": limiter.stats.per_window(opts.window),
            }
    if result.stopped:
        result.problems.append(result.stopped)
    ctx.emit("delete.done", **result.as_counts())
    ctx.outcome("delete", **result.as_counts())
    return result


# ---- after a crash ----------------------------------------------------------------------------


async def resolve_interrupted(ctx: RunContext, *, recycle_retention_days: int = 30) -> int:
    """Rows left in ``deleting`` by a run that stopped mid-call: ask Kaltura what happened,
    record it, and move them on. A row whose lookup fails stays (next run). Returns how many
    rows were resolved."""
    resolved = 0
    while True:
        rows = [
            r
            for r in await queries.entries_in_state(ctx.store, State.DELETING, limit=10_000)
            if r.lease_owner != ctx.run_id
        ]
        if not rows:
            return resolved
        batch = rows[:MAX_BATCH_SIZE]
        try:
            data = await fetch_batch(ctx.client, [r.id for r in batch])
            binned = await recycled_ids(ctx.client, [r.id for r in batch])
        except Exception as exc:  # nothing is decided on a failed lookup
            log.warning("delete.resolve_failed", error=str(exc))
            return resolved
        intents = await transitions.intents_since_entering(
            ctx.store, [r.id for r in batch], State.DELETING
        )
        progressed = 0
        for row in batch:
            if row.id in data.failed:
                continue
            progressed += 1
            await _resolve_one(ctx, row, data, binned, intents.get(row.id, []),
                               recycle_retention_days)  # fmt: skip
            resolved += 1
        if not progressed:
            return resolved


async def _resolve_one(
    ctx: RunContext,
    row: EntryRow,
    data: BatchData,
    binned: set[str],
    intents: list[tuple[str, str | None, bool]],
    retention_days: int,
) -> None:
    """``intents``: the calls announced since the row moved into ``deleting``, answered or
    not (a stop can fall between an answer and the move it leads to); only the unanswered
    ones get an outcome event here."""
    store, run_id = ctx.store, ctx.run_id

    async def outcome(call: str, what: str, asset_id: str | None = None) -> None:
        await transitions.record_api_event(
            store,
            run_id=run_id,
            call=call,
            outcome=f"{what} (resolved after a stop)",
            entry_id=row.id,
            asset_id=asset_id,
        )

    async def move(to: State, why: str, **updates: Any) -> None:
        await transitions.move(
            store, row.id, State.DELETING, to, run_id=run_id, reason=why, updates=updates or None
        )

    back = State(row.lease_from_state or State.SIZED)
    if row.action == Action.DELETE_FLAVORS:
        live = {wire.get("id") for _, kind, wire in data.wire_assets(row.id) if kind == "flavor"}
        removed = [a for call, a, _ in intents if call == FLAVOR_CALL and a and a not in live]
        for call, asset_id, answered in intents:
            if not answered:
                await outcome(call, "gone" if asset_id in removed else "not applied", asset_id)
        if removed:
            await queries.mark_removed(store, row.id, removed, wall_now())
        assets = await queries.assets_of(store, row.id)
        left = [
            a
            for a in assets
            if a.kind == "flavor" and not a.is_source and a.removed_at is None and a.id in live
        ]
        if row.id in data.entries and not left:
            freed = rules.bytes_stripped(assets)
            await move(State.STRIPPED, "stripped (resolved after a stop)", bytes_freed=freed)
        else:
            await move(back, "strip not finished: the next run goes on")
        return
    fresh = data.entries.get(row.id)
    applied = row.id in binned or fresh is None or str(fresh.get("status")) == rules.ENTRY_DELETED
    for call, _, answered in intents:
        if not answered:
            await outcome(call, "applied" if applied else "not applied")
    if not intents:  # stopped before the call was even announced: nothing was sent
        if fresh is None:
            await move(State.GONE, rules.GONE_REASON)
        else:
            await move(back, "no call was made before the stop")
    elif row.id in binned:
        purge = wall_now() + retention_days * 86_400
        await move(
            State.RECYCLED,
            "recycled (resolved after a stop)",
            delete_mode="recycle",
            purge_at=purge,
            bytes_freed=row.bytes_saved,
        )
    elif applied:
        mode = "recycle" if any(call == RECYCLE_CALL for call, _, _ in intents) else "delete"
        await move(
            State.DELETED,
            "deleted (resolved after a stop)",
            delete_mode=mode,
            bytes_freed=row.bytes_saved,
        )
    else:
        await move(back, "the delete did not happen (resolved after a stop)")

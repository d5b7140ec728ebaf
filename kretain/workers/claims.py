"""The one claim / lease / heartbeat loop every worker stage runs.

    loop = ClaimLoop(ctx, [ClaimPhase((State.BACKUP_FAILED,), State.DOWNLOADING, up_front=True,
                                      max_attempts=5),
                           ClaimPhase((State.SIZED,), State.DOWNLOADING, action=...)],
                     batch_size=1, concurrency=2, lease_seconds=300)
    await loop.run(handle)          # handle(rows) advances a batch of leased rows and returns
                                    # the ids it did NOT move away (None: it moved them all)

- Phases are claimed in order. A phase marked ``up_front`` (the retries of an earlier run)
  is leased whole at the start, so a row that fails again in this run is not picked twice.
- ``concurrency`` workers each take ``batch_size`` rows at a time and call ``handle``.
  Claims are serialised, so batches never overlap.
- A heartbeat renews the leases of every row the loop still holds (and calls ``on_beat``,
  e.g. to record how far downloads got), so a long file never loses its row.
- However the loop ends (done, an exception, a cancel, ``stop`` set), the rows it still
  holds go back to the state they were claimed from, shielded from a second Ctrl-C. A row
  ``handle`` did not move away (a lookup that failed again) stays leased until then.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

import structlog

from kretain.store import transitions
from kretain.store.models import EntryRow
from kretain.store.states import Action, State
from kretain.workers.context import RunContext

__all__ = ["MAX_UP_FRONT", "ClaimLoop", "ClaimPhase"]

log = structlog.get_logger("kretain.claims")

Handler = Callable[[list[EntryRow]], Awaitable[Iterable[str] | None]]

MAX_UP_FRONT = 10_000  # retries leased at the start of one run; the rest wait for the next


@dataclass(frozen=True)
class ClaimPhase:
    states: tuple[State, ...]
    to_state: State  # the same state: a pure lease
    action: Action | None = None
    max_attempts: int | None = None
    up_front: bool = False
    policies: tuple[str, ...] | None = None  # only rows of these rules
    # Only these rows (at most 500): a restore's. Read at each claim, so the caller may
    # narrow it as rows are handled.
    entry_ids: Collection[str] | None = None


class ClaimLoop:
    def __init__(
        self,
        ctx: RunContext,
        phases: Sequence[ClaimPhase],
        *,
        batch_size: int,
        concurrency: int,
        lease_seconds: int,
        stop: asyncio.Event | None = None,
        on_beat: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if batch_size < 1 or concurrency < 1 or lease_seconds < 1:
            raise ValueError("batch_size, concurrency and lease_seconds must be >= 1")
        self.ctx = ctx
        self.phases = list(phases)
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.stop = stop or asyncio.Event()
        self.on_beat = on_beat
        self.held: set[str] = set()  # every row this loop leased and has not handed back
        self.claimed = 0
        self.released = 0  # rows handed back unfinished at the end
        self._queue: list[EntryRow] = []
        self._next_phase = 0
        self._lock = asyncio.Lock()

    async def run(self, handle: Handler) -> int:
        """Claim and handle batches until no phase has rows left (or ``stop`` is set).
        Returns how many rows were claimed."""
        store = self.ctx.store
        await transitions.release_expired(store)
        beat = asyncio.create_task(self._heartbeat())
        try:
            await self._lease_up_front()
            async with asyncio.TaskGroup() as group:
                for _ in range(self.concurrency):
                    group.create_task(self._worker(handle))
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            await asyncio.shield(self._hand_back())
        return self.claimed

    async def _worker(self, handle: Handler) -> None:
        while not self.stop.is_set():
            rows = await self._next_batch()
            if not rows:
                return
            kept = await handle(rows)
            # Rows the handler moved carry no lease any more; the rest stay held.
            self.held.difference_update({r.id for r in rows} - set(kept or ()))

    async def pending(self) -> int:
        """Rows the loop's phases could claim now: the stage's total, for progress."""
        total = 0
        for phase in self.phases:
            total += await transitions.count_claimable(
                self.ctx.store,
                phase.states,
                action=phase.action,
                max_attempts=phase.max_attempts,
                policies=phase.policies,
                entry_ids=phase.entry_ids,
            )
        return total

    async def _lease_up_front(self) -> None:
        for phase in self.phases:
            if phase.up_front:
                rows = await self._claim(phase, MAX_UP_FRONT)
                self._queue.extend(rows)

    async def _next_batch(self) -> list[EntryRow]:
        async with self._lock:
            if self._queue:
                batch, self._queue = (
                    self._queue[: self.batch_size],
                    self._queue[self.batch_size :],
                )
                return batch
            while self._next_phase < len(self.phases):
                phase = self.phases[self._next_phase]
                if not phase.up_front and not self.stop.is_set():
                    rows = await self._claim(phase, self.batch_size)
                    if rows:
                        return rows
                self._next_phase += 1
            return []

    async def _claim(self, phase: ClaimPhase, limit: int) -> list[EntryRow]:
        rows = await transitions.claim(
            self.ctx.store,
            phase.states,
            phase.to_state,
            limit,
            self.ctx.run_id,
            self.lease_seconds,
            action=phase.action,
            max_attempts=phase.max_attempts,
            policies=phase.policies,
            entry_ids=phase.entry_ids,
        )
        self.held.update(r.id for r in rows)
        self.claimed += len(rows)
        return rows

    async def _heartbeat(self) -> None:
        interval = max(0.5, self.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.beat()
            except Exception as exc:  # a missed beat is retried at the next interval
                log.warning("heartbeat failed", error=str(exc))

    async def beat(self) -> None:
        """Renew the leases this loop holds; then the stage's own bookkeeping."""
        if self.held:
            await transitions.renew_leases(
                self.ctx.store, sorted(self.held), self.ctx.run_id, self.lease_seconds
            )
        if self.on_beat is not None:
            await self.on_beat()

    async def _hand_back(self) -> None:
        if self.on_beat is not None:
            with contextlib.suppress(Exception):
                await self.on_beat()
        if self.held:
            self.released += await transitions.release(self.ctx.store, self.held, self.ctx.run_id)
            self.held.clear()

"""Pacing for the calls that change Kaltura: at most N calls of an action in any W seconds.

    limiter = WindowLimiter(35, 10.0)          # one per action (baseEntry.delete, ...)
    async with limiter.slot():                  # around each call, its answer included
        await send()
    await asyncio.sleep(limiter.blocked())      # after ACTION_BLOCKED; then retry that call

Kaltura counts an action's calls in a fixed window that starts at the first call and blocks
the rest with ACTION_BLOCKED (the blocked calls count too). The server counts a call at some
moment between its sending and its answer, and that moment moves with network and server
load. So a call is sent only once W seconds have passed since the ANSWER of the call N places
before it (and of every earlier one): then no two calls N apart can be counted in one window,
whatever the server's window boundaries and however late or early each call is counted. A
sliding log of send times alone (or a token bucket, which allows a burst of N right after N
calls) is blocked whenever the load delays one call's counting more than another's. The
price is one round trip per window.

When the partner's real limit is lower than configured, ``blocked()`` lowers this limiter's
rate for the rest of the run and pauses every caller until the server's window has passed
(W plus jitter): the next calls go at the lower rate instead of hammering (the old scripts'
busy loop re-queued at once). The new limit is one below the calls the server had just let
through in a window (at most one below the old limit), so a real limit far below the
configured rate is found at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

__all__ = ["LimiterStats", "WindowLimiter"]

JITTER = 0.2  # extra wait after ACTION_BLOCKED, as a fraction of the window


@dataclass
class _Call:
    sent: float
    answered: float | None = None  # None while the call is in flight
    settled: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class LimiterStats:
    calls: int = 0  # calls let through (a retried call counts each time)
    blocked: int = 0  # ACTION_BLOCKED answers reported
    first: float | None = None
    last: float | None = None
    limits: list[int] = field(default_factory=list)  # the limit after each slowdown
    # Each call sent a limit's worth of calls after another: the limit then, and the time
    # between the two. Calls go in bursts (a window's worth at once is allowed), so the span
    # from the first call to the last misstates a run's pace by up to a window; a limit of
    # calls per such gap does not.
    recent: deque[float] = field(default_factory=deque)
    paced_calls: int = 0
    paced_seconds: float = 0.0

    def note(self, now: float, limit: int) -> None:
        self.calls += 1
        self.first = now if self.first is None else self.first
        self.last = now
        self.recent.append(now)
        while len(self.recent) > limit + 1:
            self.recent.popleft()
        if len(self.recent) == limit + 1:
            self.paced_calls += limit
            self.paced_seconds += now - self.recent[0]

    def per_window(self, window: float) -> float | None:
        """Calls achieved per window: the limit per the time from a call to the call a limit
        later, over the run; a run of no more than a limit's worth of calls: its calls per
        its span (a run shorter than a window: its calls)."""
        if self.first is None or self.last is None or not self.calls:
            return None
        if self.paced_seconds > 0:
            return self.paced_calls / self.paced_seconds * window
        span = self.last - self.first
        return float(self.calls) if span < window else (self.calls - 1) / span * window


class WindowLimiter:
    def __init__(
        self,
        limit: int,
        window: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.configured = limit
        self.window = window
        self.stats = LimiterStats()
        self._clock = clock
        self._rand = rand
        self._calls: deque[_Call] = deque()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for this call's turn, count it, and note when its answer (or error) came:
        wrap the call itself, so the next calls are spaced from its answer."""
        call = await self._take_turn()
        try:
            yield
        finally:
            call.answered = self._clock()
            call.settled.set()

    async def _take_turn(self) -> _Call:
        async with self._lock:  # FIFO: waiters keep their order
            while True:
                now = self._clock()
                # Calls answered a window ago or more no longer hold anyone back.
                calls = self._calls
                while (
                    calls
                    and calls[0].answered is not None
                    and (calls[0].answered <= now - self.window)
                ):
                    calls.popleft()
                wait = self._paused_until - now
                if wait <= 0 and len(calls) >= self.limit:
                    earlier = [calls[i] for i in range(len(calls) - self.limit + 1)]
                    in_flight = next((c for c in earlier if c.answered is None), None)
                    if in_flight is not None:
                        await in_flight.settled.wait()
                        continue
                    wait = max(c.answered or 0.0 for c in earlier) + self.window - now
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            call = _Call(now)
            calls.append(call)
            self.stats.note(now, self.limit)
            return call

    def blocked(self) -> float:
        """The server said ACTION_BLOCKED: lower the rate, pause everyone for a window (plus
        jitter), and return how long the caller should wait before it retries its call."""
        self.stats.blocked += 1
        now = self._clock()
        recent = sum(1 for c in self._calls if c.sent > now - self.window)
        self.limit = max(1, min(self.limit - 1, recent - 1))
        self.stats.limits.append(self.limit)
        wait = self.window * (1 + JITTER * self._rand())
        self._paused_until = max(self._paused_until, now + wait)
        return wait

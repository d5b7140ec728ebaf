"""Pacing for the calls that change Kaltura: at most N calls of an action in any W seconds.

    limiter = WindowLimiter(35, 10.0)          # one per action (baseEntry.delete, ...)
    await limiter.acquire()                     # before each call
    await asyncio.sleep(limiter.blocked())      # after ACTION_BLOCKED; then retry that call

Kaltura counts an action's calls in a fixed window that starts at the first call and blocks
the rest with ACTION_BLOCKED (the blocked calls count too). A sliding log of the last N
calls keeps EVERY window of W seconds at N calls or fewer, so whatever the server's window
boundaries are, a configured rate at or below the partner's limit is never blocked; a plain
token bucket would allow a burst of N right after N calls and be blocked.

When the partner's real limit is lower than configured, ``blocked()`` lowers this limiter's
rate for the rest of the run and pauses every caller until the server's window has passed
(W plus jitter): the next calls go at the lower rate instead of hammering (the old scripts'
busy loop re-queued at once). The new limit is one below the calls the server had just let
through in a window (at most one below the old limit): a real limit far below the configured
rate is found at once, and a block caused by a call arriving late (network or server jitter)
costs one call per window, not a fifth of the rate.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["LimiterStats", "WindowLimiter"]

JITTER = 0.2  # extra wait after ACTION_BLOCKED, as a fraction of the window
# Calls reach the server a little later or sooner than they leave (queues, jitter): spacing
# them by a window this much longer keeps the server's count under the limit too.
MARGIN = 0.02


@dataclass
class LimiterStats:
    calls: int = 0  # calls let through (a retried call counts each time)
    blocked: int = 0  # ACTION_BLOCKED answers reported
    first: float | None = None
    last: float | None = None
    limits: list[int] = field(default_factory=list)  # the limit after each slowdown

    def per_window(self, window: float) -> float | None:
        """Calls achieved per window from the first call to the last (a run shorter than a
        window: its calls)."""
        if self.first is None or self.last is None or not self.calls:
            return None
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
        self._times: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until a call keeps every window at ``limit`` calls or fewer; count it."""
        async with self._lock:  # FIFO: waiters keep their order
            while True:
                now = self._clock()
                span = self.window * (1 + MARGIN)
                while self._times and self._times[0] <= now - span:
                    self._times.popleft()
                wait = self._paused_until - now
                if wait <= 0 and len(self._times) >= self.limit:
                    wait = self._times[0] + span - now
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            self._times.append(now)
            s = self.stats
            s.calls += 1
            s.first = now if s.first is None else s.first
            s.last = now

    def blocked(self) -> float:
        """The server said ACTION_BLOCKED: lower the rate, pause everyone for a window (plus
        jitter), and return how long the caller should wait before it retries its call."""
        self.stats.blocked += 1
        now = self._clock()
        recent = sum(1 for t in self._times if t > now - self.window * (1 + MARGIN))
        self.limit = max(1, min(self.limit - 1, recent - 1))
        self.stats.limits.append(self.limit)
        wait = self.window * (1 + JITTER * self._rand())
        self._paused_until = max(self._paused_until, now + wait)
        return wait

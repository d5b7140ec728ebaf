"""WindowLimiter: never more than N calls in any W seconds; ACTION_BLOCKED slows and pauses."""

from __future__ import annotations

import asyncio

from kretain.workers.ratelimit import WindowLimiter


class Clock:
    """Virtual time: asyncio.sleep is patched to advance it, so the test takes no time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_no_window_ever_holds_more_than_the_limit(monkeypatch) -> None:
    clock = Clock()
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        clock.now += max(seconds, 0.0)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    limiter = WindowLimiter(35, 10.0, clock=clock)
    times: list[float] = []

    async def caller() -> None:
        for _ in range(50):
            await limiter.acquire()
            times.append(clock.now)
            clock.now += 0.01  # a call takes a little time

    await asyncio.gather(*(caller() for _ in range(4)))
    times.sort()
    assert len(times) == 200
    # Any window of 10 s, wherever it starts (Kaltura's starts at its first call).
    assert max(sum(1 for t in times if s <= t < s + 10.0) for s in times) <= 35
    # ... and close to the limit: 200 calls at 35 per 10 s need about 57 s.
    assert times[-1] < 60.0
    assert limiter.stats.per_window(10.0) > 0.95 * 35


async def test_blocked_lowers_the_rate_and_pauses_every_caller(monkeypatch) -> None:
    clock = Clock()
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        clock.now += max(seconds, 0.0)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    limiter = WindowLimiter(1000, 10.0, clock=clock, rand=lambda: 0.5)
    for _ in range(36):  # the partner's real limit is 35 per window: the 36th is blocked
        await limiter.acquire()
    wait = limiter.blocked()
    assert wait == 11.0 and limiter.limit == 35 and limiter.stats.blocked == 1
    await limiter.acquire()  # waits out the pause: no call inside the server's window
    assert clock.now >= 11.0
    # A late call that lands in the server's window costs one call per window, no more.
    for _ in range(34):
        await limiter.acquire()
    assert limiter.blocked() == 11.0 and limiter.limit == 34
    for _ in range(40):
        limiter.blocked()
    assert limiter.limit == 1  # never below one call per window

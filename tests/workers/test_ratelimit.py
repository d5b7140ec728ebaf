"""WindowLimiter: never more than N calls in any W seconds, wherever in its round trip the
server counts each call; ACTION_BLOCKED slows and pauses."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from kretain.workers.ratelimit import WindowLimiter


class Clock:
    """Virtual time: asyncio.sleep is patched to advance it, so the test takes no time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        clock.now += max(seconds, 0.0)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    return clock


def most_in_a_window(counted: list[float], window: float) -> int:
    """The most calls a fixed window of the server's could count, wherever it starts."""
    counted = sorted(counted)
    return max(sum(1 for t in counted if s <= t < s + window) for s in counted)


async def test_no_window_ever_holds_more_than_the_limit(clock: Clock) -> None:
    limiter = WindowLimiter(35, 10.0, clock=clock)
    sent: list[float] = []

    async def caller() -> None:
        for _ in range(50):
            async with limiter.slot():
                sent.append(clock.now)
                await asyncio.sleep(0.01)  # a call takes a little time

    await asyncio.gather(*(caller() for _ in range(4)))
    assert len(sent) == 200
    assert most_in_a_window(sent, 10.0) <= 35
    # ... and close to the limit: 200 calls at 35 per 10 s need about 57 s.
    assert sent[-1] < 60.0
    assert limiter.stats.per_window(10.0) > 0.95 * 35


async def test_late_and_early_counting_never_overfills_a_window() -> None:
    """Real time, 16 callers, round trips of 0 to 40 ms, and the server counting each call at
    a random moment of its round trip: never more than the limit in any window. (Spacing send
    times by a fixed margin instead, as this limiter once did, let 24 calls into a window of
    20 here: calls counted late bunch up with calls counted early.)"""
    rng = random.Random(7)
    limiter = WindowLimiter(20, 0.2)
    counted: list[float] = []

    async def caller() -> None:
        for _ in range(20):
            trip = rng.uniform(0.0, 0.04)
            async with limiter.slot():
                counted.append(time.monotonic() + rng.uniform(0.0, trip))
                await asyncio.sleep(trip)

    await asyncio.gather(*(caller() for _ in range(16)))
    assert len(counted) == 320
    assert most_in_a_window(counted, 0.2) <= 20
    # The price is one round trip (20 ms on average here) per window of 200 ms.
    assert limiter.stats.per_window(0.2) > 0.8 * 20


async def test_a_call_in_flight_holds_back_the_call_a_limit_later(clock: Clock) -> None:
    limiter = WindowLimiter(2, 1.0, clock=clock)
    sent: list[float] = []

    async def call(seconds: float) -> None:
        async with limiter.slot():
            sent.append(clock.now)
            await asyncio.sleep(seconds)

    slow = asyncio.create_task(call(5.0))  # answered at 5.0
    await asyncio.sleep(0)
    await call(0.0)
    await call(0.0)  # two places after the slow one: a window after its answer
    await slow
    assert sent[2] >= 6.0


async def test_blocked_lowers_the_rate_and_pauses_every_caller(clock: Clock) -> None:
    limiter = WindowLimiter(1000, 10.0, clock=clock, rand=lambda: 0.5)
    for _ in range(36):  # the partner's real limit is 35 per window: the 36th is blocked
        async with limiter.slot():
            pass
    wait = limiter.blocked()
    assert wait == 11.0 and limiter.limit == 35 and limiter.stats.blocked == 1
    async with limiter.slot():  # waits out the pause: no call inside the server's window
        assert clock.now >= 11.0
    # A block with fewer calls than the limit in the window costs one call, no more.
    for _ in range(34):
        async with limiter.slot():
            pass
    assert limiter.blocked() == 11.0 and limiter.limit == 34
    for _ in range(40):
        limiter.blocked()
    assert limiter.limit == 1  # never below one call per window


async def test_the_rate_achieved_is_not_inflated_by_bursts(clock: Clock) -> None:
    """Instant calls go a window's worth at a time: 10 at 0 s, 10 at 1 s, 5 at 2 s. From
    the first call to the last that is 24 calls in 2 s (12 per window, above the limit the
    server enforced); a limit of calls per the gap from a call to the call a limit later
    says what was achieved: 10 per window."""
    limiter = WindowLimiter(10, 1.0, clock=clock)
    sent: list[float] = []
    for _ in range(25):
        async with limiter.slot():
            sent.append(clock.now)
    assert sent[9] == 0.0 and sent[10] == 1.0 and sent[24] == 2.0
    assert limiter.stats.per_window(1.0) == 10.0

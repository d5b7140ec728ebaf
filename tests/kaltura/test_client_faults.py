"""Retries, timeouts, rate limits and concurrency against the simulator's faults."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from clienthelpers import config

from kretain.kaltura import (
    HTTPStatusError,
    InvalidResponse,
    KalturaClient,
    RequestTimeout,
    ServerError,
)


async def first_ids(client: KalturaClient, n: int) -> list[str]:
    return [e["id"] for e in (await client.list_entries({"typeIn": "1"}, 1, n)).objects]


@pytest.mark.parametrize("fault", ["http_500", "http_502", "http_503", "internal_error"])
async def test_transient_faults_are_retried(simulator, fault: str) -> None:
    async with KalturaClient(config(simulator, max_attempts=10)) as client:
        ids = await first_ids(client, 20)
        setattr(simulator.knobs, fault, 0.3)
        entries = await asyncio.gather(*(client.get_entry(i) for i in ids))
        stats = client.stats
    assert [e["id"] for e in entries] == ids
    injected = simulator.stats.faults[fault]
    assert injected > 0
    assert stats.retries == injected  # every injected fault cost exactly one retry
    expected_code = "INTERNAL_SERVERL_ERROR" if fault == "internal_error" else "HTTPStatusError"
    assert stats.retries_by_code[expected_code] == injected


async def test_fail_next_internal_error_then_success(simulator) -> None:
    async with KalturaClient(config(simulator)) as client:
        entry_id = (await first_ids(client, 1))[0]
        simulator.knobs.fail_next("baseentry.get", "INTERNAL_SERVERL_ERROR", 2)
        entry = await client.get_entry(entry_id)
        assert entry["id"] == entry_id
        assert client.stats.retries_by_code["INTERNAL_SERVERL_ERROR"] == 2
    simulator.knobs.fail_next("baseentry.get", "LOCK_TIMED_OUT", 3)
    async with KalturaClient(config(simulator, max_attempts=3)) as client:
        with pytest.raises(ServerError) as info:  # the budget (3 attempts) runs out
            await client.get_entry(entry_id)
    assert info.value.code == "LOCK_TIMED_OUT"
    assert simulator.stats.calls["baseentry.get"] == 3 + 3


async def test_non_json_answer_is_http_status_error_or_invalid(simulator) -> None:
    async with KalturaClient(config(simulator, max_attempts=1)) as client:
        await client.ks()
        simulator.knobs.http_502 = 1.0
        with pytest.raises(HTTPStatusError) as info:
            await client.list_entries({}, 1, 1)
        assert info.value.status == 502
        simulator.knobs.http_502 = 0.0
        simulator.knobs.truncate = 1.0
        with pytest.raises(InvalidResponse):
            await client.list_entries({}, 1, 1)


async def test_truncated_body_retried_then_ok(simulator) -> None:
    async with KalturaClient(config(simulator)) as client:
        await client.ks()
        simulator.knobs.truncate = 1.0
        task = asyncio.create_task(client.list_entries({}, 1, 5))
        await _wait_for(lambda: simulator.stats.faults["truncate"] >= 2)
        simulator.knobs.truncate = 0.0
        page = await task
    assert len(page.objects) == 5
    assert client.stats.retries_by_code["InvalidResponse"] >= 2


async def test_hang_times_out_and_is_retried(simulator) -> None:
    simulator.knobs.hang_seconds = 3.0
    cfg = config(simulator, timeout=5.0, read_timeout=0.3)
    async with KalturaClient(cfg) as client:
        await client.ks()
        simulator.knobs.hang = 1.0
        task = asyncio.create_task(client.list_entries({}, 1, 5))
        await _wait_for(lambda: simulator.stats.faults["hang"] >= 1)
        simulator.knobs.hang = 0.0
        page = await task
        assert len(page.objects) == 5
        assert client.stats.retries_by_code["RequestTimeout"] >= 1
    simulator.knobs.hang = 1.0
    async with KalturaClient(dataclasses.replace(cfg, max_attempts=2)) as client:
        started = time.monotonic()
        with pytest.raises(RequestTimeout):
            await client.ks()
        assert time.monotonic() - started < 2.0


async def test_action_blocked_waits_out_the_window(simulator) -> None:
    simulator.knobs.rate_limits = {"baseentry.get": (2, 1.0)}
    async with KalturaClient(config(simulator, rate_limit_window=1.0)) as client:
        ids = await first_ids(client, 5)
        started = time.monotonic()
        got = await asyncio.gather(*(client.get_entry(i) for i in ids))
        elapsed = time.monotonic() - started
        stats = client.stats
    assert [g["id"] for g in got] == ids
    assert elapsed >= 1.0  # 5 calls at 2 per 1 s window need at least one full wait
    assert stats.rate_limited_waits >= 3
    assert stats.retries_by_code["ACTION_BLOCKED"] == stats.rate_limited_waits


async def test_mutations_are_sent_once_and_the_caller_decides(simulator) -> None:
    from kretain.kaltura.errors import HTTPStatusError, NotFound, RateLimited

    simulator.knobs.rate_limits = {"baseentry.delete": (1, 60.0)}
    async with KalturaClient(config(simulator)) as client:
        first, second, third = await first_ids(client, 3)
        await client.delete_entry(first)
        with pytest.raises(RateLimited):  # not retried underneath: the stage paces
            await client.delete_entry(second)
        simulator.knobs.rate_limits = {}
        simulator.knobs.lose_next("baseEntry.delete")
        with pytest.raises(HTTPStatusError):  # applied, but the answer was lost
            await client.delete_entry(third)
        with pytest.raises(NotFound):  # so a repeat finds it gone
            await client.delete_entry(third)
        assert client.stats.retries == 0
    calls = [(m["id"], m["outcome"], m["answer_lost"]) for m in simulator.mutations]
    assert calls == [
        (first, "ok", False),
        (second, "ACTION_BLOCKED", False),
        (third, "ok", True),
        (third, "ENTRY_ID_NOT_FOUND", False),
    ]


async def test_concurrency_limit(simulator) -> None:
    async with KalturaClient(config(simulator, max_concurrency=3)) as client:
        ids = await first_ids(client, 9)
        simulator.knobs.latency_ms = 250
        started = time.monotonic()
        await asyncio.gather(*(client.get_entry(i) for i in ids))
        limited = time.monotonic() - started
    async with KalturaClient(config(simulator, max_concurrency=9)) as client:
        await client.ks()
        started = time.monotonic()
        await asyncio.gather(*(client.get_entry(i) for i in ids))
        wide = time.monotonic() - started
    assert limited >= 0.75  # 9 calls, 3 at a time, 250 ms each: at least 3 waves
    assert wide < limited


async def test_requests_per_second_limit(simulator) -> None:
    async with KalturaClient(config(simulator, max_requests_per_second=10.0)) as client:
        ids = await first_ids(client, 10)  # session.start + list: 2 requests
        before = simulator.stats.api_requests
        started = time.monotonic()
        await asyncio.gather(*(client.get_entry(i) for i in ids))
        elapsed = time.monotonic() - started
    assert simulator.stats.api_requests - before == 10
    assert elapsed >= 0.85  # 10 requests at 10/s after the bucket drained: ~1 s


async def _wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)

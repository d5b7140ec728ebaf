"""The memory all the sinks of one S3 target hold together is bounded (max_buffer_bytes),
however many files stream at once; waiting for it never deadlocks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from s3_support import pseudo_random, sha, write_all

from kretain.archive.s3 import S3Target, _Budget

MiB = 1 << 20
PART = 5 << 20


async def test_concurrent_files_share_the_budget_and_all_complete(
    make_s3: Callable[..., S3Target],
) -> None:
    files = {
        f"1/0_m{i}/flavor-0_m{i}.mp4": pseudo_random(3 * PART + i * 777, seed=i) for i in range(4)
    }
    files["1/0_small/caption-0_s.srt"] = b"a caption\n" * 50
    async with make_s3(max_buffer_bytes=2 * PART) as target:
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, target.buffers.used)
                await asyncio.sleep(0.001)

        async def one(rel: str, data: bytes) -> str | None:
            sink = await target.open_sink(rel, expected_size=len(data))
            await write_all(sink, data, chunk=MiB)
            return (await sink.commit()).sha256

        watcher = asyncio.create_task(watch())
        try:
            shas = await asyncio.wait_for(
                asyncio.gather(*(one(rel, data) for rel, data in files.items())), timeout=120
            )
        finally:
            watcher.cancel()
        assert shas == [sha(d) for d in files.values()]
        assert 0 < peak <= 2 * PART
        assert target.buffers.used == 0  # every reservation given back
        for rel, data in files.items():
            assert await target.sha256(rel) == sha(data)


async def test_a_small_file_reserves_only_its_size(make_s3: Callable[..., S3Target]) -> None:
    async with make_s3(max_buffer_bytes=PART) as target:
        sink = await target.open_sink("1/0_c/caption-0_c.srt", expected_size=1000)
        await sink.write(b"x" * 10)
        assert target.buffers.used == 1000
        await sink.write(b"y" * 990)
        await sink.commit()
        assert target.buffers.used == 0
        # A suspended or discarded sink gives its reservation back too.
        for finish in ("suspend", "discard"):
            sink = await target.open_sink(f"1/0_c/thumb-0_{finish}.jpg", expected_size=3 * MiB)
            await sink.write(b"z" * MiB)
            assert target.buffers.used == 3 * MiB
            await getattr(sink, finish)()
            assert target.buffers.used == 0


async def test_budget_waits_in_order_and_cancelled_waiters_leave_nothing() -> None:
    budget = _Budget(10)
    assert await budget.take(6) == 6
    second = asyncio.create_task(budget.take(6))
    third = asyncio.create_task(budget.take(4))  # would fit, but waits its turn
    await asyncio.sleep(0)
    assert not second.done() and not third.done()
    third.cancel()
    with pytest.raises(asyncio.CancelledError):
        await third
    budget.release(6)
    assert await second == 6 and budget.used == 6
    budget.release(6)
    assert await budget.take(50) == 10 == budget.used  # capped at the whole budget

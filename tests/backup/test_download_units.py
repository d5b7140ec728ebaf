"""Pure parts of kretain.workers.download: size checks, URL redaction, retry classes,
and the shared bandwidth token bucket (real clock, small numbers)."""

from __future__ import annotations

import asyncio
import errno
import time
from pathlib import Path

import pytest

from kretain.workers.download import (
    DestinationExists,
    DiskFull,
    DownloadConnectionError,
    DownloadHTTPError,
    DownloadTimeout,
    EmptyBody,
    KalturaServeError,
    RateLimiter,
    SizeMismatch,
    TruncatedDownload,
    check_size,
    is_retryable,
    part_path,
    redact_url,
)


def test_check_size_exact_bytes() -> None:
    check_size(1000, 1000, 1)
    with pytest.raises(SizeMismatch):
        check_size(999, 1000, 1)
    with pytest.raises(SizeMismatch):
        check_size(1001, 1000, None)


def test_check_size_falls_back_to_kb_within_one_kb() -> None:
    # sizeInBytes 0 means unknown: use size (KB, rounded) +- 1 KB.
    check_size(10 * 1024, 0, 10)
    check_size(10 * 1024 - 1023, None, 10)
    check_size(10 * 1024 + 1024, 0, 10)
    with pytest.raises(SizeMismatch):
        check_size(10 * 1024 - 1025, 0, 10)
    with pytest.raises(SizeMismatch):
        check_size(12 * 1024, 0, 10)
    check_size(5, None, None)  # nothing known: only Content-Length can be checked


def test_redact_url_hides_ks_and_query() -> None:
    url = "https://cdn.example/p/1/sp/100/download/entry_id/0_a/flavor/0_f/ks/djJ8MTIzfABC/a.mp4"
    assert redact_url(url) == (
        "https://cdn.example/p/1/sp/100/download/entry_id/0_a/flavor/0_f/ks/***/a.mp4"
    )
    assert redact_url("http://u:pw@h:8080/x?ks=SECRET&token=T#frag") == "http://h:8080/x"
    err = DownloadHTTPError(500, url="http://h/serve/ks/SECRETKS/x?ks=SECRET2")
    assert "SECRET" not in str(err) and "SECRET" not in (err.url or "")


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (DownloadHTTPError(500), True),
        (DownloadHTTPError(503), True),
        (DownloadHTTPError(429), True),
        (DownloadHTTPError(404), False),
        (DownloadHTTPError(403), False),
        (KalturaServeError(57, "rate limited"), True),
        (KalturaServeError(6, "flavor not found"), False),
        (KalturaServeError(1, "entry not found"), False),
        (EmptyBody("x"), True),
        (TruncatedDownload(1, 2), True),
        (SizeMismatch("x", actual=1, expected=2), False),
        (DownloadTimeout("x"), True),
        (DownloadConnectionError("x"), True),
        (DiskFull(Path("/x")), False),
        (DestinationExists("x"), False),
        (ValueError("x"), False),
        (OSError(errno.EIO, "io"), False),
    ],
)
def test_is_retryable(exc: BaseException, retryable: bool) -> None:
    assert is_retryable(exc) is retryable


def test_disk_full_message_is_clear() -> None:
    e = DiskFull(Path("/a/b.mp4.part"), needed=10, free=3)
    assert "need 10 bytes, 3 available" in str(e)


def test_part_path() -> None:
    assert part_path(Path("/a/flavor-0_x.mp4")) == Path("/a/flavor-0_x.mp4.part")


def test_rate_limiter_rejects_nonpositive_rate() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)


async def test_rate_limiter_caps_shared_throughput() -> None:
    rate = 4_000_000  # bytes/s
    bucket = RateLimiter(rate, burst=500_000)
    took: list[int] = []

    async def consumer() -> None:
        for _ in range(10):
            await bucket.acquire(100_000)
            took.append(100_000)

    t0 = time.monotonic()
    await asyncio.gather(*(consumer() for _ in range(3)))
    elapsed = time.monotonic() - t0
    # 3 MB at 4 MB/s with a 0.5 MB burst: at least (3 - 0.5) / 4 = 0.625 s.
    assert sum(took) == 3_000_000
    assert elapsed >= 0.6
    assert elapsed < 2.0


async def test_rate_limiter_allows_acquire_larger_than_burst() -> None:
    bucket = RateLimiter(1_000_000, burst=10_000)
    t0 = time.monotonic()
    await bucket.acquire(10_000)  # the burst: immediate
    assert time.monotonic() - t0 < 0.05
    await bucket.acquire(200_000)  # into debt: ~0.2 s
    elapsed = time.monotonic() - t0
    assert 0.18 <= elapsed < 1.0


async def test_rate_limiter_idle_time_refills_only_up_to_burst() -> None:
    bucket = RateLimiter(1_000_000, burst=50_000)
    await asyncio.sleep(0.1)  # would be 100 KB of credit without the cap
    t0 = time.monotonic()
    await bucket.acquire(150_000)  # 50 KB burst, 100 KB debt -> ~0.1 s
    assert time.monotonic() - t0 >= 0.09

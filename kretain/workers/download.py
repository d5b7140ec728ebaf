"""Verified, resumable download of one asset into the archive.

``download_to_sink`` streams a URL into any archive sink (:class:`kretain.archive.FileSink`:
a local ``.part``, an S3 multipart upload) in constant memory, resumes from what the sink
already holds with ``Range``, checks the byte count against what Kaltura said the asset
holds, and only then commits the sink (the sink verifies and places the file).
``download_to`` is the same for a local path: ``<dest>.part``, fsync, rename (a convenience
for one file; the workers open a sink on their ArchiveTarget and call download_to_sink). Neither
retries: they raise a named :class:`DownloadError` and the caller asks
:func:`is_retryable`. What the sink holds is kept whenever its bytes are a valid prefix
(truncation, timeouts, connection loss, disk full) so the next attempt resumes.

Error tree::

    DownloadError                 (.retryable, .url redacted)
     +-- DownloadHTTPError        non-2xx status (5xx/408/429 retryable)
     +-- KalturaServeError        X-Kaltura: error-<n> header (57 rate limited retryable)
     +-- EmptyBody                no bytes at all                      (retryable)
     +-- TruncatedDownload        fewer bytes than Content-Length      (retryable)
     +-- SizeMismatch             complete body of the wrong size      (not retryable)
     +-- ResumeMismatch           resumed bytes do not line up         (retryable, .part dropped)
     +-- TooManyRedirects         redirect loop                        (not retryable)
     +-- DownloadTimeout          overall or idle timeout              (retryable)
     +-- DownloadConnectionError  connect/reset/protocol failure       (retryable)
     +-- PartFileBusy             another download holds the .part     (retryable)
     +-- DestinationExists        final file already there             (not retryable)
     +-- DiskFull                 ENOSPC/EDQUOT or not enough room     (not retryable)
     +-- ArchiveRequestFailed     the archive store failed a request   (retryable unless the
                                  store called the request itself wrong)

The last four are raised by sinks, so they are defined in :mod:`kretain.archive.errors` and
re-exported here. A sink may also raise ``ArchiveUnavailable`` (not a DownloadError: the
archive as a whole is unusable, so the caller should stop rather than fail the file).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from kretain.archive.errors import (
    ArchiveRequestFailed,
    ArchiveUnavailable,
    DestinationExists,
    DiskFull,
    DownloadError,
    PartFileBusy,
    redact_url,
)
from kretain.archive.local import DEFAULT_MIN_FREE_BYTES, LocalFS, LocalTarget, part_path
from kretain.archive.target import FileSink

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MIN_FREE_BYTES",
    "ArchiveRequestFailed",
    "DestinationExists",
    "DiskFull",
    "DownloadConnectionError",
    "DownloadError",
    "DownloadHTTPError",
    "DownloadResult",
    "DownloadTimeout",
    "EmptyBody",
    "KalturaServeError",
    "LocalFS",
    "PartFileBusy",
    "RateLimiter",
    "ResumeMismatch",
    "SizeMismatch",
    "TooManyRedirects",
    "TruncatedDownload",
    "check_size",
    "download_to",
    "download_to_sink",
    "expected_total",
    "is_retryable",
    "part_path",
    "redact_url",
]

MiB = 1 << 20
DEFAULT_CHUNK_SIZE = 1 * MiB
DEFAULT_IDLE_TIMEOUT = 120.0
DEFAULT_CONNECT_TIMEOUT = 30.0
# Re-check free space after this many bytes (other downloads share the disk).
DISK_CHECK_EVERY = 64 * MiB
# Kaltura's `size` is whole KB (rounded up); accept this much slack around size*1024.
KB_TOLERANCE = 1024
# X-Kaltura error numbers worth another attempt: 57 rate limited; 7/31 invalid/expired KS
# in the URL (the caller fetches a fresh URL for each attempt).
RETRYABLE_KALTURA_ERRORS = frozenset({7, 31, 57})

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)
_X_KALTURA = re.compile(r"error-(-?\d+)", re.IGNORECASE)


# ---------------------------------------------------------------------------- errors


class DownloadHTTPError(DownloadError):
    def __init__(self, status: int, *, url: str | None = None, retry_after: float | None = None):
        self.status = status
        self.retry_after = retry_after
        self.retryable = status >= 500 or status in (408, 429)
        super().__init__(f"HTTP {status} while downloading", url=url)


class KalturaServeError(DownloadError):
    """The serve endpoint's error signal: empty body plus ``X-Kaltura: error-<n>``."""

    def __init__(self, code: int, text: str, *, url: str | None = None) -> None:
        self.code = code
        self.text = text
        self.retryable = code in RETRYABLE_KALTURA_ERRORS
        super().__init__(f"Kaltura serve error {code}: {text or 'no description'}", url=url)


class EmptyBody(DownloadError):
    retryable = True


class TruncatedDownload(DownloadError):
    retryable = True

    def __init__(self, received: int, expected: int, *, url: str | None = None) -> None:
        self.received = received
        self.expected = expected
        super().__init__(f"body ended after {received} of {expected} bytes", url=url)


class SizeMismatch(DownloadError):
    def __init__(self, message: str, *, actual: int, expected: int, url: str | None = None):
        self.actual = actual
        self.expected = expected
        super().__init__(message, url=url)


class ResumeMismatch(DownloadError):
    retryable = True


class TooManyRedirects(DownloadError):
    pass


class DownloadTimeout(DownloadError):
    retryable = True


class DownloadConnectionError(DownloadError):
    retryable = True


def is_retryable(exc: BaseException) -> bool:
    """Whether another attempt (with a fresh URL) may succeed. Unknown errors: no."""
    if isinstance(exc, DownloadError):
        return exc.retryable
    return False


# ------------------------------------------------------------------- rate limiter


class RateLimiter:
    """A shared token bucket in bytes per second, for all downloads of a run.

    ``acquire(n)`` may take more than ``burst`` at once (the bucket goes into debt and
    the caller sleeps it off), so chunk size and rate need not be tuned together.
    Waiters are served one at a time, in arrival order.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0 bytes/s")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate)
        self._clock = clock
        self._tokens = self.burst
        self._last = clock()
        self._lock = asyncio.Lock()

    async def acquire(self, n: int) -> None:
        if n <= 0:
            return
        async with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            if self._tokens < 0:
                await asyncio.sleep(-self._tokens / self.rate)


# ------------------------------------------------------------------------ download


@dataclass(frozen=True)
class DownloadResult:
    path: Path | None  # the final file for a local download; None for other stores
    bytes: int
    sha256: str
    resumed_from: int  # bytes reused from what the sink held (0 = fresh download)
    store_checksum: str | None = None  # the store's own checksum (S3 ChecksumSHA256)


def expected_total(expected_bytes: int | None, expected_kb: int | None) -> int | None:
    """The exact size when Kaltura gave one (sizeInBytes > 0), else None."""
    return expected_bytes if expected_bytes and expected_bytes > 0 else None


def check_size(
    actual: int, expected_bytes: int | None, expected_kb: int | None, *, url: str | None = None
) -> None:
    """Raise SizeMismatch unless ``actual`` fits sizeInBytes (exact) or size in KB (±1 KB)."""
    if expected_bytes and expected_bytes > 0:
        if actual != expected_bytes:
            raise SizeMismatch(
                f"got {actual} bytes, asset has sizeInBytes {expected_bytes}",
                actual=actual,
                expected=expected_bytes,
                url=url,
            )
    elif expected_kb and expected_kb > 0:
        approx = expected_kb * 1024
        if abs(actual - approx) > KB_TOLERANCE:
            raise SizeMismatch(
                f"got {actual} bytes, asset size is {expected_kb} KB",
                actual=actual,
                expected=approx,
                url=url,
            )


@dataclass
class _Plan:
    start: int  # offset in the file where the body's first byte goes
    total: int | None  # the full file size the server declared, if any
    body_length: int | None  # Content-Length of this response, if any


async def download_to(
    http: aiohttp.ClientSession,
    url: str,
    dest: Path,
    *,
    expected_bytes: int | None,
    expected_kb: int | None,
    bandwidth: RateLimiter | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
    timeout: float | None = None,
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
    overwrite: bool = False,
    fs: LocalFS | None = None,
) -> DownloadResult:
    """Download ``url`` to the local file ``dest`` and verify it (``download_to_sink`` with
    a local sink on ``<dest>.part``).

    ``expected_bytes`` is the asset's sizeInBytes (exact when > 0); ``expected_kb`` its
    ``size`` (KB), used only when sizeInBytes is unknown. ``min_free_bytes`` is the margin
    kept free on the disk beyond the rest of this file. ``timeout`` bounds the whole call
    (None = no bound; large files at low bandwidth need hours); ``idle_timeout`` bounds
    each wait for data. ``dest``'s directory is created if missing.
    """
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise DestinationExists(f"{dest} already exists; refusing to overwrite")
    dest.parent.mkdir(parents=True, exist_ok=True)
    target = LocalTarget(dest.parent, min_free_bytes=min_free_bytes, fs=fs)
    try:
        sink = await target.open_sink_at(
            dest, expected_size=expected_total(expected_bytes, expected_kb)
        )
    except ArchiveUnavailable as exc:
        # Callers of this path-based API have always seen the OSError itself.
        if isinstance(exc.__cause__, OSError):
            raise exc.__cause__ from None
        raise
    result = await download_to_sink(
        http,
        url,
        sink,
        expected_bytes=expected_bytes,
        expected_kb=expected_kb,
        bandwidth=bandwidth,
        chunk_size=chunk_size,
        timeout=timeout,
        idle_timeout=idle_timeout,
    )
    return dataclasses.replace(result, path=dest)


async def download_to_sink(
    http: aiohttp.ClientSession,
    url: str,
    sink: FileSink,
    *,
    expected_bytes: int | None,
    expected_kb: int | None,
    bandwidth: RateLimiter | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: float | None = None,
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
) -> DownloadResult:
    """Stream ``url`` into ``sink`` from ``sink.offset`` on, verify the size, commit.

    The sink is finished when this returns or raises: committed on success; on failure
    suspended (what it holds is a valid prefix, resumed by the next sink for the same
    file), or discarded when the bytes belong to the wrong file (SizeMismatch). Sizes and
    timeouts as in :func:`download_to`; free space is the sink's business
    (``ensure_room``: local sinks raise DiskFull).
    """
    try:
        try:
            async with asyncio.timeout(timeout):
                resumed_from = await _fetch(
                    http,
                    url,
                    sink,
                    expected_bytes=expected_bytes,
                    expected_kb=expected_kb,
                    bandwidth=bandwidth,
                    chunk_size=max(1, chunk_size),
                    idle_timeout=idle_timeout,
                )
        except TimeoutError as exc:
            raise DownloadTimeout(f"download timed out after {sink.offset} bytes", url=url) from exc
        except aiohttp.ClientPayloadError as exc:
            raise TruncatedDownload(sink.offset, -1, url=url) from exc
        except aiohttp.TooManyRedirects as exc:
            raise TooManyRedirects("too many redirects", url=url) from exc
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise DownloadConnectionError(
                f"connection failed after {sink.offset} bytes: {type(exc).__name__}", url=url
            ) from exc
        if sink.offset == 0:
            raise EmptyBody("server sent no bytes", url=url)
        check_size(sink.offset, expected_bytes, expected_kb, url=url)
        stored = await sink.commit()
    except SizeMismatch:
        # The bytes are the wrong file (or the metadata changed): nothing to resume.
        await asyncio.shield(sink.discard())
        raise
    except BaseException:
        await asyncio.shield(sink.suspend())
        raise
    assert stored.sha256 is not None  # a committed sink always knows it
    return DownloadResult(
        path=getattr(sink, "dest", None),
        bytes=stored.size,
        sha256=stored.sha256,
        resumed_from=resumed_from,
        store_checksum=stored.store_checksum,
    )


async def _fetch(
    http: aiohttp.ClientSession,
    url: str,
    sink: FileSink,
    *,
    expected_bytes: int | None,
    expected_kb: int | None,
    bandwidth: RateLimiter | None,
    chunk_size: int,
    idle_timeout: float | None,
) -> int:
    """Fill ``sink`` with the whole body; returns how many bytes were reused."""
    exact = expected_total(expected_bytes, expected_kb)
    resumed_from = sink.offset
    client_timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=DEFAULT_CONNECT_TIMEOUT, sock_read=idle_timeout
    )
    restarted = False
    while True:
        # A sink already as long as the file: ask for its last byte again, which proves the
        # server still has a file of that size and that the byte matches.
        last = b""
        if exact is not None and sink.offset == exact and sink.offset > 0:
            last = await sink.last_byte() or b""
        overlap = len(last)
        range_start = sink.offset - overlap
        headers = {"Accept-Encoding": "identity"}
        if sink.offset > 0:
            headers["Range"] = f"bytes={range_start}-"
        async with http.get(url, headers=headers, timeout=client_timeout) as resp:
            _raise_for_kaltura_error(resp, url)
            if resp.status == 416 and sink.offset > 0 and not restarted:
                # What the sink holds is longer than the file (or equal to it): start over.
                await sink.reset()
                resumed_from, restarted = 0, True
                continue
            if not 200 <= resp.status < 300:
                raise DownloadHTTPError(resp.status, url=url, retry_after=_retry_after(resp))
            plan = _plan(resp, range_start if sink.offset > 0 else 0, url)
            if plan is None:
                # Mismatched Content-Range: discard this answer and fetch the whole file.
                if restarted:
                    raise ResumeMismatch("server answered a different range", url=url)
                await sink.reset()
                resumed_from, restarted = 0, True
                continue
            if plan.start == 0 and sink.offset > 0:
                # 200 to a Range request: the server ignored Range; take the full body.
                await sink.reset()
                resumed_from, overlap = 0, 0
            if plan.total == 0:
                raise EmptyBody("server sent an empty file", url=url)
            if plan.total is not None:
                check_size(plan.total, expected_bytes, expected_kb, url=url)
            expected_last = last if overlap else b""
            await _check_room(sink, plan.total or exact)
            declared = plan.total or (
                plan.start + plan.body_length if plan.body_length is not None else -1
            )
            try:
                received = await _stream(
                    resp, sink, plan, url, expected_last, bandwidth, chunk_size, exact
                )
            except aiohttp.ClientPayloadError as exc:
                # Connection closed before Content-Length was reached; the prefix is kept.
                raise TruncatedDownload(sink.offset, declared, url=url) from exc
            if plan.body_length is not None and received < plan.body_length:
                raise TruncatedDownload(sink.offset, declared, url=url)
            return resumed_from


async def _stream(
    resp: aiohttp.ClientResponse,
    sink: FileSink,
    plan: _Plan,
    url: str,
    expected_last: bytes,
    bandwidth: RateLimiter | None,
    chunk_size: int,
    exact: int | None,
) -> int:
    """Copy the body into ``sink`` in chunks; returns the body bytes received.

    ``expected_last`` (resume overlap) is compared with the body's first byte, which is
    not written again. On a network failure the buffered bytes are still written, since
    they are a valid prefix the next attempt can resume from.
    """
    received = 0
    since_check = 0
    buf = bytearray()
    skip = len(expected_last)
    total = plan.total or exact
    try:
        async for data in resp.content.iter_any():
            received += len(data)
            if skip:
                if data[:1] != expected_last:
                    await sink.reset()  # the file changed since
                    raise ResumeMismatch("server file differs from the .part", url=url)
                data, skip = data[1:], 0
            buf += data
            if len(buf) >= chunk_size:
                if bandwidth is not None:
                    await bandwidth.acquire(len(buf))
                chunk, buf = buf, bytearray()
                await sink.write(chunk)
                since_check += len(chunk)
                if since_check >= DISK_CHECK_EVERY:
                    since_check = 0
                    await _check_room(sink, total)
    except (aiohttp.ClientError, TimeoutError, ConnectionError, asyncio.CancelledError):
        if buf:
            with contextlib.suppress(OSError, DownloadError, ArchiveUnavailable):
                await asyncio.shield(sink.write(buf))
        raise
    if buf:
        if bandwidth is not None:
            await bandwidth.acquire(len(buf))
        await sink.write(buf)
    return received


def _plan(resp: aiohttp.ClientResponse, asked_start: int, url: str) -> _Plan | None:
    length = resp.content_length
    if resp.status == 206:
        m = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
        if not m or int(m.group(1)) != asked_start:
            return None
        total = None if m.group(3) == "*" else int(m.group(3))
        return _Plan(start=asked_start, total=total, body_length=length)
    if resp.status == 200:
        return _Plan(start=0, total=length, body_length=length)
    raise EmptyBody(f"HTTP {resp.status} carries no file", url=url)


def _raise_for_kaltura_error(resp: aiohttp.ClientResponse, url: str) -> None:
    header = resp.headers.get("X-Kaltura", "")
    m = _X_KALTURA.search(header)
    if m:
        raise KalturaServeError(
            int(m.group(1)), resp.headers.get("X-Kaltura-App", "")[:200], url=url
        )


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    value = resp.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


async def _check_room(sink: FileSink, total: int | None) -> None:
    await sink.ensure_room(max(0, total - sink.offset) if total is not None else 0)

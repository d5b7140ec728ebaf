"""Verified, resumable download of one asset into the archive.

``download_to`` streams a URL into ``<dest>.part`` in constant memory while hashing it,
resumes an existing ``.part`` with ``Range``, checks the byte count against what Kaltura
said the asset holds, and only then fsyncs and renames the file into place. It never
retries: it raises a named :class:`DownloadError` and the caller asks
:func:`is_retryable`. The ``.part`` is kept whenever its bytes are a valid prefix
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
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from kretain import archive

MiB = 1 << 20
DEFAULT_CHUNK_SIZE = 1 * MiB
DEFAULT_MIN_FREE_BYTES = 256 * MiB
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


class DownloadError(Exception):
    """A download that did not produce a verified file. ``url`` is already redacted."""

    retryable: bool = False

    def __init__(self, message: str, *, url: str | None = None) -> None:
        self.url = redact_url(url) if url else None
        super().__init__(f"{message} ({self.url})" if self.url else message)


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


class PartFileBusy(DownloadError):
    retryable = True


class DestinationExists(DownloadError):
    pass


class DiskFull(DownloadError):
    """Not enough room for the rest of the file (or the disk filled up while writing).

    The ``.part`` is kept; free some space (or lower the margin) and run again to resume.
    """

    def __init__(self, path: Path, *, needed: int | None = None, free: int | None = None):
        self.path = path
        self.needed = needed
        self.free = free
        if needed is not None and free is not None:
            msg = f"not enough free space for {path}: need {needed} bytes, {free} available"
        else:
            msg = f"disk full while writing {path}"
        super().__init__(msg)


def is_retryable(exc: BaseException) -> bool:
    """Whether another attempt (with a fresh URL) may succeed. Unknown errors: no."""
    if isinstance(exc, DownloadError):
        return exc.retryable
    return False


def redact_url(url: str) -> str:
    """The URL without query string, fragment, credentials, or ``/ks/<value>`` segments:
    download URLs may carry a KS, which must not reach logs or the database."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return "<unparseable url>"
    segments = parts.path.split("/")
    for i in range(len(segments) - 1):
        if segments[i].lower() == "ks" and segments[i + 1]:
            segments[i + 1] = "***"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, "/".join(segments), "", ""))


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


# ------------------------------------------------------------------ file-system seam


class LocalFS:
    """The file-system calls ``download_to`` makes, gathered so tests can inject
    failures (e.g. a write raising ENOSPC) while still using real files."""

    def write(self, fd: int, data: memoryview) -> int:
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def free_bytes(self, path: Path) -> int:
        return archive.free_bytes(path)


# ------------------------------------------------------------------------ download


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    bytes: int
    sha256: str
    resumed_from: int  # bytes reused from an existing .part (0 = fresh download)


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


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


class _Part:
    """The open ``.part`` file: an exclusive lock, the running hash and length."""

    def __init__(self, path: Path, fs: LocalFS) -> None:
        self.path = path
        self.fs = fs
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self.fd)
            raise PartFileBusy(f"{path} is being written by another download") from exc
        self.length = 0
        self.hasher = hashlib.sha256()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # also drops the flock
            self.fd = -1

    def load(self, keep: int | None) -> None:
        """Hash the bytes already there (at most ``keep``; the rest is cut off)."""
        size = os.fstat(self.fd).st_size
        if keep is not None and size > keep:
            os.ftruncate(self.fd, keep)
            size = keep
        self.hasher = hashlib.sha256()
        pos = 0
        while pos < size:
            block = os.pread(self.fd, min(8 * MiB, size - pos), pos)
            if not block:  # shrank under us; keep what we hashed
                os.ftruncate(self.fd, pos)
                break
            self.hasher.update(block)
            pos += len(block)
        self.length = pos

    def reset(self) -> None:
        os.ftruncate(self.fd, 0)
        self.length = 0
        self.hasher = hashlib.sha256()

    def last_byte(self) -> bytes:
        return os.pread(self.fd, 1, self.length - 1)

    def append(self, data: bytes | bytearray) -> None:
        """Write at the end and hash. If a write fails part-way (ENOSPC), the bytes that
        did reach the file are kept and hashed, and anything past them is cut off, so
        the .part stays an exact prefix to resume from."""
        view = memoryview(data)
        done = 0
        try:
            while done < len(view):
                os.lseek(self.fd, self.length + done, os.SEEK_SET)
                written = self.fs.write(self.fd, view[done:])
                if written <= 0:
                    raise OSError(errno.EIO, "short write")
                done += written
        finally:
            self.hasher.update(view[:done])
            self.length += done
            if done < len(view):
                with contextlib.suppress(OSError):
                    os.ftruncate(self.fd, self.length)


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
    """Download ``url`` to ``dest`` and verify it; see the module docstring.

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
    fs = fs or LocalFS()
    part = await asyncio.to_thread(_Part, part_path(dest), fs)
    try:
        try:
            async with asyncio.timeout(timeout):
                resumed_from = await _fetch(
                    http,
                    url,
                    part,
                    expected_bytes=expected_bytes,
                    expected_kb=expected_kb,
                    bandwidth=bandwidth,
                    chunk_size=max(1, chunk_size),
                    min_free_bytes=min_free_bytes,
                    idle_timeout=idle_timeout,
                )
        except TimeoutError as exc:
            raise DownloadTimeout(f"download timed out after {part.length} bytes", url=url) from exc
        except aiohttp.ClientPayloadError as exc:
            raise TruncatedDownload(part.length, -1, url=url) from exc
        except aiohttp.TooManyRedirects as exc:
            raise TooManyRedirects("too many redirects", url=url) from exc
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise DownloadConnectionError(
                f"connection failed after {part.length} bytes: {type(exc).__name__}", url=url
            ) from exc
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(part.path) from exc
            raise
        if part.length == 0:
            raise EmptyBody("server sent no bytes", url=url)
        check_size(part.length, expected_bytes, expected_kb, url=url)
        await asyncio.to_thread(_finalize, part, dest)
    except SizeMismatch:
        # The bytes are the wrong file (or the metadata changed): nothing to resume.
        part.close()
        with contextlib.suppress(FileNotFoundError):
            part.path.unlink()
        raise
    finally:
        part.close()
    return DownloadResult(
        path=dest, bytes=part.length, sha256=part.hasher.hexdigest(), resumed_from=resumed_from
    )


def _finalize(part: _Part, dest: Path) -> None:
    try:
        part.fs.fsync(part.fd)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(part.path) from exc
        raise
    os.replace(part.path, dest)
    archive.fsync_dir(dest.parent)


async def _fetch(
    http: aiohttp.ClientSession,
    url: str,
    part: _Part,
    *,
    expected_bytes: int | None,
    expected_kb: int | None,
    bandwidth: RateLimiter | None,
    chunk_size: int,
    min_free_bytes: int,
    idle_timeout: float | None,
) -> int:
    """Fill ``part`` with the whole body; returns how many bytes were reused."""
    exact = expected_total(expected_bytes, expected_kb)
    await asyncio.to_thread(part.load, exact)
    resumed_from = part.length
    client_timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=DEFAULT_CONNECT_TIMEOUT, sock_read=idle_timeout
    )
    restarted = False
    while True:
        # A .part already as long as the file: ask for its last byte again, which proves
        # the server still has a file of that size and that the byte matches.
        overlap = 1 if exact is not None and part.length == exact and part.length > 0 else 0
        range_start = part.length - overlap
        headers = {"Accept-Encoding": "identity"}
        if part.length > 0:
            headers["Range"] = f"bytes={range_start}-"
        async with http.get(url, headers=headers, timeout=client_timeout) as resp:
            _raise_for_kaltura_error(resp, url)
            if resp.status == 416 and part.length > 0 and not restarted:
                # Our .part is longer than the file (or equal to it): start over.
                await asyncio.to_thread(part.reset)
                resumed_from, restarted = 0, True
                continue
            if not 200 <= resp.status < 300:
                raise DownloadHTTPError(resp.status, url=url, retry_after=_retry_after(resp))
            plan = _plan(resp, range_start if part.length > 0 else 0, url)
            if plan is None:
                # Mismatched Content-Range: discard this answer and fetch the whole file.
                if restarted:
                    raise ResumeMismatch("server answered a different range", url=url)
                await asyncio.to_thread(part.reset)
                resumed_from, restarted = 0, True
                continue
            if plan.start == 0 and part.length > 0:
                # 200 to a Range request: the server ignored Range; take the full body.
                await asyncio.to_thread(part.reset)
                resumed_from, overlap = 0, 0
            if plan.total == 0:
                raise EmptyBody("server sent an empty file", url=url)
            if plan.total is not None:
                check_size(plan.total, expected_bytes, expected_kb, url=url)
            expected_last = await asyncio.to_thread(part.last_byte) if overlap else b""
            await _check_room(part, plan.total or exact, min_free_bytes)
            declared = plan.total or (
                plan.start + plan.body_length if plan.body_length is not None else -1
            )
            try:
                received = await _stream(
                    resp,
                    part,
                    plan,
                    url,
                    expected_last,
                    bandwidth,
                    chunk_size,
                    min_free_bytes,
                    exact,
                )
            except aiohttp.ClientPayloadError as exc:
                # Connection closed before Content-Length was reached; the prefix is kept.
                raise TruncatedDownload(part.length, declared, url=url) from exc
            if plan.body_length is not None and received < plan.body_length:
                raise TruncatedDownload(part.length, declared, url=url)
            return resumed_from
            return resumed_from


async def _stream(
    resp: aiohttp.ClientResponse,
    part: _Part,
    plan: _Plan,
    url: str,
    expected_last: bytes,
    bandwidth: RateLimiter | None,
    chunk_size: int,
    min_free_bytes: int,
    exact: int | None,
) -> int:
    """Copy the body into ``part`` in chunks; returns the body bytes received.

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
                    await asyncio.to_thread(part.reset)  # the file changed since
                    raise ResumeMismatch("server file differs from the .part", url=url)
                data, skip = data[1:], 0
            buf += data
            if len(buf) >= chunk_size:
                if bandwidth is not None:
                    await bandwidth.acquire(len(buf))
                chunk, buf = buf, bytearray()
                await asyncio.to_thread(part.append, chunk)
                since_check += len(chunk)
                if since_check >= DISK_CHECK_EVERY:
                    since_check = 0
                    await _check_room(part, total, min_free_bytes)
    except (aiohttp.ClientError, TimeoutError, ConnectionError, asyncio.CancelledError):
        if buf:
            with contextlib.suppress(OSError):
                await asyncio.shield(asyncio.to_thread(part.append, buf))
        raise
    if buf:
        if bandwidth is not None:
            await bandwidth.acquire(len(buf))
        await asyncio.to_thread(part.append, buf)
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


async def _check_room(part: _Part, total: int | None, min_free_bytes: int) -> None:
    remaining = max(0, total - part.length) if total is not None else 0
    needed = remaining + max(0, min_free_bytes)
    free = await asyncio.to_thread(part.fs.free_bytes, part.path.parent)
    if free < needed:
        raise DiskFull(part.path, needed=needed, free=free)

"""The archive in an S3 bucket (AWS or any S3-compatible store): ``S3Target``.

Layout: the local layout's relative names under ``<prefix>/``, ``entry.json`` included.

Client: aiobotocore (aiohttp underneath, like the rest of kretain), with botocore's own
signing, credential chain (environment, shared config/profile, container or instance role)
and bounded "standard" retries for 5xx, throttling and connection errors. Credentials are
never passed to kretain code, stored or logged: botocore's loggers are held at WARNING (at
DEBUG they print request headers, session tokens included) and the resolved secret key and
token are registered with kretain's log redaction as a second guard.

Writing a file (``S3Sink``):
- Bytes are buffered one part at a time (8 MiB, grown for large files so a file stays under
  10,000 parts; for an unknown size the part size doubles every 1,000 parts), in place in
  one buffer per part (sent from there in 1 MiB writes, never copied whole), and each full
  part is sent with UploadPart while the next fills, at most ``max_inflight_parts`` at once
  per file. A file smaller than one part is sent with a single PutObject at commit.
- Memory is bounded per target, however many files stream at once: every part being filled
  or in flight holds a share of ``max_buffer_bytes`` (32 MiB), reserved when the part is
  begun (a small file reserves only its size) and given back once the part is stored. A
  sink that finds the budget spent waits before taking more bytes from its source; a
  waiting sink holds no buffer, and parts in flight need nothing to finish, so the waits
  always end.
- The sha256 of the whole file is computed on the way. Every part (and every PutObject)
  carries its own ``x-amz-checksum-sha256``; the store refuses a part whose bytes do not
  match (BadDigest). Multipart uploads are created with ChecksumAlgorithm=SHA256, so the
  object gets a composite ``ChecksumSHA256`` ("<base64>-N"), which commit checks against
  the part digests and returns as ``store_checksum``.
- Where the full sha256 is kept: single-PUT objects carry it as metadata
  (``x-amz-meta-sha256``), so ``stat`` reports it. A multipart upload's metadata is fixed
  when it is created, before the hash is known, and rewriting it would mean a server-side
  copy of the whole object; so for multipart objects the full sha256 lives only where the
  caller records it (kretain's database and entry.json), and ``stat().sha256`` is None.
- Resume after a crash: beside the upload, ``<key>.part`` is a small JSON object listing
  the parts stored so far with their sha256 (it plays the role of the local ``.part``).
  It is needed because CompleteMultipartUpload must name every part's checksum and not
  every store returns them from ListParts (SeaweedFS does not; AWS does). It is rewritten
  after parts complete, at most every ``parts/1000`` seconds so large files do not pay
  for it, and on ``suspend``. A new sink for the key finds the unfinished upload
  (ListMultipartUploads, the manifest's upload first, else the newest; others are
  aborted), lists its parts, keeps the contiguous run from part 1 whose sizes and ETags
  match the manifest, and sets ``offset`` to their total (less the last part if that
  would already be the whole file, so the source is still asked for something).
- The sha256 of a resumed file cannot continue the dead process's hasher: after
  CompleteMultipartUpload the object is streamed back once and hashed. Those bytes come
  from the archive store, not from Kaltura.
- ``suspend`` keeps the upload (and sends the buffered bytes as a part when there are at
  least 5 MiB); ``discard`` aborts it.

Errors: missing bucket, refused credentials, access denied, no credentials and an
unreachable endpoint raise ArchiveUnavailable (one line: URI, endpoint, the store's error
code); a request that still fails after the retries raises ArchiveRequestFailed.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import logging
import re
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import structlog
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore import exceptions as bx
from botocore.handlers import convert_body_to_file_like_object

from kretain import log as klog
from kretain.archive import layout
from kretain.archive.errors import (
    ArchiveRequestFailed,
    ArchiveUnavailable,
    PartFileBusy,
    redact_url,
)
from kretain.archive.target import ArchiveTarget, StoredFile
from kretain.errors import ConfigError

__all__ = [
    "DEFAULT_PART_SIZE",
    "MANIFEST_SUFFIX",
    "S3Sink",
    "S3Target",
    "check_bucket_name",
    "composite_checksum",
    "part_size_for",
]

log = structlog.get_logger("kretain.archive")

MiB = 1 << 20
GiB = 1 << 30
MIN_PART = 5 * MiB  # S3's smallest part (all but the last)
MAX_PART = 5 * GiB
DEFAULT_PART_SIZE = 8 * MiB
DEFAULT_BUFFER_BYTES = 32 * MiB  # parts held in memory by all the sinks of one target
SEND_SLICE = 1 * MiB  # a part goes to the socket this much at a time
PART_BUDGET = 9_000  # parts a file of known size is cut into at most (S3 allows 10,000)
MANIFEST_SUFFIX = ".part"
MANIFEST_FORMAT = "kretain-upload/1"
META_SHA256 = "sha256"  # x-amz-meta-sha256: full-file sha256 of single-PUT objects
READ_CHUNK = 1 * MiB
HASH_BATCH = 8 * MiB

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidSecurity",
        "MissingSecurityHeader",
    }
)
_ACCESS_CODES = frozenset({"AccessDenied", "AllAccessDisabled", "AccountProblem"})
_REGION_CODES = frozenset(
    {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"}
)
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# Worth another attempt of the file (botocore already retried the request itself).
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "BadDigest",
        "InvalidDigest",
        "XAmzContentSHA256Mismatch",
        "IncompleteBody",
        "NoSuchUpload",
        "InvalidPart",
    }
)


def _quiet_aws_loggers() -> None:
    """botocore logs request headers (session tokens included) at DEBUG: keep its loggers
    at WARNING whatever the root level is."""
    for name in ("botocore", "aiobotocore", "s3transfer", "urllib3"):
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


_quiet_aws_loggers()


def check_bucket_name(bucket: str) -> str:
    """``bucket`` if it is a valid S3 bucket name, else ConfigError."""
    if not isinstance(bucket, str) or not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ConfigError(f"not a valid S3 bucket name: {str(bucket)[:70]!r}")
    return bucket


def part_size_for(size: int | None, base: int = DEFAULT_PART_SIZE) -> int:
    """The part size for a file of ``size`` bytes: ``base``, grown in whole MiB so the file
    fits in PART_BUDGET parts."""
    if not size or size <= 0:
        return base
    need = -(-size // PART_BUDGET)
    need = -(-need // MiB) * MiB
    return min(MAX_PART, max(base, need))


def composite_checksum(part_digests: list[bytes]) -> str:
    """S3's composite ChecksumSHA256 of a multipart object: base64(sha256(d1 + d2 ...))-N."""
    joined = hashlib.sha256(b"".join(part_digests)).digest()
    return f"{_b64(joined)}-{len(part_digests)}"


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


class _PartBody(bytearray):
    """The bytes of one part, filled in place. Sent by :class:`_PartPayload`."""


class _PartPayload(aiohttp.payload.BytesPayload):
    """How aiohttp sends a part: in slices of a memoryview, waiting for the socket between
    them. A plain bytearray body would be copied whole twice while it is sent (once cut to
    its Content-Length, once into the event loop's transport buffer)."""

    def __init__(self, value: _PartBody, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("content_type", "application/octet-stream")
        # Payload's own __init__: BytesPayload's warns about any body over 1 MiB.
        aiohttp.payload.Payload.__init__(self, value, *args, **kwargs)
        self._size = len(value)

    async def write(self, writer: Any) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        view = memoryview(self._value)
        if content_length is not None:
            view = view[:content_length]
        for start in range(0, len(view), SEND_SLICE):
            await writer.write(view[start : start + SEND_SLICE])


aiohttp.payload.register_payload(_PartPayload, _PartBody)


class _Budget:
    """Bytes the sinks of one target may hold in memory at once; first come, first served."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiting: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    async def take(self, n: int) -> int:
        """Reserve ``n`` bytes (at most the whole budget), waiting until they are free."""
        n = max(0, min(n, self.limit))
        if not self._waiting and self.used + n <= self.limit:
            self.used += n
            return n
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((n, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release(n)  # granted just as it was cancelled: give it back
            else:
                with contextlib.suppress(ValueError):
                    self._waiting.remove((n, granted))
                self._grant()
            raise
        return n

    def release(self, n: int) -> None:
        self.used = max(0, self.used - n)
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self.used + self._waiting[0][0] <= self.limit:
            n, granted = self._waiting.popleft()
            if granted.done():
                continue
            self.used += n
            granted.set_result(None)


class _NotFound(Exception):
    """The key (or upload) does not exist; callers turn it into None or FileNotFoundError."""


@dataclass(frozen=True)
class _Part:
    number: int
    size: int
    etag: str
    checksum: str  # base64 sha256 of the part


# Keys with an open sink in this process: (endpoint, bucket, key).
_WRITING: set[tuple[str | None, str, str]] = set()


class S3Target(ArchiveTarget):
    """The archive under ``s3://bucket/prefix`` (see the module docstring).

    ``endpoint_url`` for S3-compatible stores (path-style addressing is used then);
    ``region`` and ``profile`` as in the AWS CLI (None: from the environment/config).
    ``max_attempts`` bounds botocore's retries of one request. ``max_buffer_bytes`` bounds
    the memory all its sinks hold together (parts being filled or sent). The client is
    created on first use; close it with ``aclose()`` or ``async with``.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        max_attempts: int = 5,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        part_size: int = DEFAULT_PART_SIZE,
        max_inflight_parts: int = 2,
        max_pool_connections: int = 16,
        max_buffer_bytes: int = DEFAULT_BUFFER_BYTES,
    ) -> None:
        self.bucket = check_bucket_name(bucket)
        self.prefix = prefix.strip("/")
        if self.prefix:
            layout.check_rel(self.prefix)
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        if self.endpoint_url and "@" in (self.endpoint_url.split("//", 1)[-1].split("/")[0]):
            raise ConfigError("the S3 endpoint URL must not contain credentials")
        self.region = region
        self.profile = profile
        self.max_attempts = max(1, max_attempts)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        if not MIN_PART <= part_size <= MAX_PART:
            raise ValueError(f"part_size must be between {MIN_PART} and {MAX_PART} bytes")
        self.part_size = part_size
        self.max_inflight_parts = max(1, max_inflight_parts)
        self.max_pool_connections = max_pool_connections
        self.buffers = _Budget(max(MIN_PART, max_buffer_bytes))
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._client_lock = asyncio.Lock()
        self._bucket_seen = False

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def __repr__(self) -> str:
        return f"S3Target({self._where()})"

    def _where(self) -> str:
        if self.endpoint_url:
            return f"{self.uri} at {redact_url(self.endpoint_url)}"
        return self.uri

    async def aclose(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    # ---- the client and error translation ---------------------------------------------------
    async def _get_client(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._client_lock:
            if self._client is None:
                self._client = await self._make_client()
        return self._client

    async def _make_client(self) -> Any:
        try:
            session = AioSession(profile=self.profile) if self.profile else AioSession()
            credentials = await session.get_credentials()
            if credentials is None:
                raise ArchiveUnavailable(
                    self._where(),
                    "no AWS credentials found (environment, shared config or profile, "
                    "instance role)",
                )
            frozen = await credentials.get_frozen_credentials()
            klog.register_secret(frozen.secret_key)
            klog.register_secret(frozen.token)
            config = AioConfig(
                region_name=self.region,
                signature_version="s3v4",
                retries={"mode": "standard", "total_max_attempts": self.max_attempts},
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                max_pool_connections=self.max_pool_connections,
                s3={
                    "addressing_style": "path" if self.endpoint_url else "auto",
                    # Every upload carries its own signed x-amz-checksum-sha256, which the
                    # store checks: hashing each body once more for the signature
                    # (botocore's default without TLS, or without a checksum it knows
                    # of) would cost a SHA-256 pass over every byte on both sides.
                    "payload_signing_enabled": False,
                },
                # Checksums are ours to choose (SHA-256, sent explicitly): no default CRC32.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                user_agent_extra="kretain",
            )
            stack = contextlib.AsyncExitStack()
            client = await stack.enter_async_context(
                session.create_client("s3", endpoint_url=self.endpoint_url, config=config)
            )
            # botocore wraps a bytes Body in BytesIO, which aiohttp then copies whole
            # (getbuffer on a shared buffer); sent as bytes, a part is never copied.
            for op in ("UploadPart", "PutObject"):
                client.meta.events.unregister(
                    f"before-parameter-build.s3.{op}", convert_body_to_file_like_object
                )
        except ArchiveUnavailable:
            raise
        except (bx.ProfileNotFound, bx.ConfigNotFound) as exc:
            raise ArchiveUnavailable(self._where(), f"AWS profile problem: {exc}") from None
        except (bx.NoCredentialsError, bx.PartialCredentialsError) as exc:
            raise ArchiveUnavailable(
                self._where(), f"incomplete AWS credentials ({type(exc).__name__})"
            ) from None
        except bx.BotoCoreError as exc:
            raise ArchiveUnavailable(
                self._where(), f"cannot set up the S3 client ({type(exc).__name__})"
            ) from None
        self._stack = stack
        return client

    def _translate(self, exc: BaseException, op: str, what: str) -> BaseException:
        """The kretain error for a botocore/aiohttp failure of ``op`` on ``what``."""
        where = self._where()
        if isinstance(exc, bx.ClientError):
            error = exc.response.get("Error") or {}
            code = str(error.get("Code") or "")
            status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
            if code == "NoSuchBucket":
                return ArchiveUnavailable(where, f"bucket {self.bucket!r} does not exist")
            if code in _CREDENTIAL_CODES:
                return ArchiveUnavailable(where, f"the store refused the credentials ({code})")
            if code in _ACCESS_CODES or status == 403:
                return ArchiveUnavailable(where, f"access denied ({code or 'HTTP 403'})")
            if code in _REGION_CODES or status == 301:
                return ArchiveUnavailable(where, f"wrong region or endpoint ({code or status})")
            if code in _MISSING_CODES:
                return _NotFound(what)
            retryable = code in _TRANSIENT_CODES or status >= 500 or status == 429
            label = code or f"HTTP {status}"
            return ArchiveRequestFailed(
                f"{op} {what} in {where} failed: {label}", code=label, retryable=retryable
            )
        if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
            return ArchiveUnavailable(where, "no usable AWS credentials")
        if isinstance(exc, bx.CredentialRetrievalError):
            return ArchiveUnavailable(where, "AWS credentials could not be retrieved")
        if isinstance(
            exc,
            bx.EndpointConnectionError | bx.ConnectTimeoutError | bx.ProxyConnectionError,
        ):
            return ArchiveUnavailable(where, f"cannot connect ({type(exc).__name__})")
        if isinstance(exc, bx.SSLError):
            return ArchiveUnavailable(where, "TLS handshake failed")
        if isinstance(exc, bx.NoRegionError):
            return ArchiveUnavailable(where, "no AWS region configured")
        if isinstance(
            exc,
            bx.ReadTimeoutError
            | bx.ConnectionClosedError
            | bx.ResponseStreamingError
            | bx.HTTPClientError
            | bx.IncompleteReadError
            | aiohttp.ClientError
            | ConnectionError
            | TimeoutError,
        ):
            name = type(exc).__name__
            return ArchiveRequestFailed(f"{op} {what} in {where} failed: {name}", code=name)
        if isinstance(exc, bx.BotoCoreError):
            name = type(exc).__name__
            return ArchiveRequestFailed(
                f"{op} {what} in {where} failed: {name}", code=name, retryable=False
            )
        return exc

    def _raise(self, exc: BaseException, op: str, what: str) -> None:
        mapped = self._translate(exc, op, what)
        if mapped is exc:
            raise exc
        # Credential and bucket errors carry the store's response (request ids, string to
        # sign): one line is enough.
        raise mapped from (None if isinstance(mapped, ArchiveUnavailable) else exc)

    async def _call(self, op: str, what: str, **kwargs: Any) -> dict[str, Any]:
        client = await self._get_client()
        try:
            result: dict[str, Any] = await getattr(client, op)(Bucket=self.bucket, **kwargs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._raise(exc, op, what)
            raise  # unreachable: _raise always raises
        return result

    async def _confirm_bucket(self) -> None:
        """A HEAD answering 404 does not say whether the key or the bucket is missing; make
        sure it is the key (once per target) so a wrong bucket never looks like lost files."""
        if self._bucket_seen:
            return
        try:
            await self._call("head_bucket", self.bucket)
        except _NotFound:
            raise ArchiveUnavailable(
                self._where(), f"bucket {self.bucket!r} does not exist"
            ) from None
        self._bucket_seen = True

    def key(self, rel_path: str) -> str:
        rel = layout.check_rel(rel_path)
        return f"{self.prefix}/{rel}" if self.prefix else rel

    async def _uploads(self, prefix: str) -> AsyncIterator[dict[str, Any]]:
        client = await self._get_client()
        pages = client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        try:
            async for page in pages:
                self._bucket_seen = True
                for upload in page.get("Uploads") or []:
                    yield upload
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._raise(exc, "list uploads", prefix or "/")

    async def _parts(self, key: str, upload_id: str) -> AsyncIterator[dict[str, Any]]:
        client = await self._get_client()
        pages = client.get_paginator("list_parts").paginate(
            Bucket=self.bucket, Key=key, UploadId=upload_id
        )
        try:
            async for page in pages:
                for part in page.get("Parts") or []:
                    yield part
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._raise(exc, "list parts", key)

    async def _abort(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(_NotFound):
            try:
                await self._call("abort_multipart_upload", key, Key=key, UploadId=upload_id)
            except ArchiveRequestFailed as exc:
                if exc.code != "NoSuchUpload":
                    raise

    async def _put(self, key: str, data: bytes | bytearray, **extra: Any) -> dict[str, Any]:
        digest = hashlib.sha256(data).digest()
        return await self._call(
            "put_object",
            key,
            Key=key,
            Body=data,
            ContentLength=len(data),
            ChecksumSHA256=_b64(digest),
            **extra,
        )

    async def _delete_key(self, key: str) -> None:
        with contextlib.suppress(_NotFound):
            await self._call("delete_object", key, Key=key)

    async def _get_bytes(self, key: str, limit: int = 64 * MiB) -> bytes | None:
        try:
            resp = await self._call("get_object", key, Key=key)
        except _NotFound:
            return None
        body = resp["Body"]
        try:
            if int(resp.get("ContentLength") or 0) > limit:
                raise ArchiveRequestFailed(
                    f"{key} in {self._where()} is too large to load",
                    code="TooLarge",
                    retryable=False,
                )
            return bytes(await body.read())
        except (ArchiveRequestFailed, asyncio.CancelledError):
            raise
        except Exception as exc:
            self._raise(exc, "read", key)
            raise
        finally:
            body.close()

    # ---- ArchiveTarget ----------------------------------------------------------------------
    async def check_writable(self) -> None:
        try:
            # A GET with an error body: names a missing bucket or refused credentials, and
            # needs a permission resume needs anyway.
            await self._call("list_multipart_uploads", self.uri, MaxUploads=1, Prefix=self.prefix)
            self._bucket_seen = True
            marker = self.key(f".kretain-probe-{secrets.token_hex(6)}")
            await self._put(marker, b"kretain write probe\n")
            await self._delete_key(marker)
        except ArchiveRequestFailed as exc:
            raise ArchiveUnavailable(self._where(), f"test write failed ({exc.code})") from None
        except _NotFound:
            raise ArchiveUnavailable(self._where(), "test write failed (not found)") from None

    async def check_readable(self) -> None:
        try:
            # A GET with an error body (a HEAD has none): names a missing bucket or refused
            # credentials, and needs only the permission to list, as a read-only role has.
            await self._call("list_objects_v2", self.uri, MaxKeys=1, Prefix=self.prefix)
        except ArchiveRequestFailed as exc:
            raise ArchiveUnavailable(self._where(), f"cannot list it ({exc.code})") from None
        except _NotFound:
            raise ArchiveUnavailable(
                self._where(), f"bucket {self.bucket!r} does not exist"
            ) from None
        self._bucket_seen = True

    def entry_prefix(self, partner_id: int, entry_id: str) -> str:
        return layout.entry_rel(partner_id, entry_id)

    async def open_sink(
        self, rel_path: str, *, expected_size: int | None, size_hint: int | None = None
    ) -> S3Sink:
        key = self.key(rel_path)
        slot = (self.endpoint_url, self.bucket, key)
        if slot in _WRITING:
            raise PartFileBusy(f"{self.uri}/{rel_path} is being written by another download")
        _WRITING.add(slot)
        try:
            sink = S3Sink(self, rel_path, key, expected_size, size_hint)
            await sink._resume()
        except BaseException:
            _WRITING.discard(slot)
            raise
        return sink

    async def stat(self, rel_path: str) -> StoredFile | None:
        key = self.key(rel_path)
        try:
            head = await self._call("head_object", rel_path, Key=key, ChecksumMode="ENABLED")
        except _NotFound:
            await self._confirm_bucket()
            return None
        meta = head.get("Metadata") or {}
        sha = meta.get(META_SHA256)
        return StoredFile(
            int(head.get("ContentLength") or 0),
            sha if isinstance(sha, str) and len(sha) == 64 else None,
            head.get("ChecksumSHA256"),
        )

    async def read(self, rel_path: str, *, start: int = 0) -> AsyncGenerator[bytes, None]:
        key = self.key(rel_path)
        extra = {"Range": f"bytes={start}-"} if start > 0 else {}
        try:
            resp = await self._call("get_object", rel_path, Key=key, **extra)
        except _NotFound:
            raise FileNotFoundError(f"{self.uri}/{rel_path}") from None
        except ArchiveRequestFailed as exc:
            if exc.code == "InvalidRange":
                return  # start is at (or past) the end: nothing to read
            raise
        body = resp["Body"]
        try:
            while True:
                try:
                    chunk = await body.read(READ_CHUNK)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._raise(exc, "read", rel_path)
                    raise
                if not chunk:
                    break
                yield chunk
        finally:
            body.close()

    async def sha256(self, rel_path: str) -> str:
        hasher = hashlib.sha256()
        batch = bytearray()
        async with contextlib.aclosing(self.read(rel_path)) as stream:
            async for chunk in stream:
                batch += chunk
                if len(batch) >= HASH_BATCH:
                    block, batch = batch, bytearray()
                    await asyncio.to_thread(hasher.update, block)
        await asyncio.to_thread(hasher.update, batch)
        return hasher.hexdigest()

    async def put_json(self, rel_path: str, doc: dict[str, Any]) -> None:
        data = layout.dump_json(doc)
        await self._put(
            self.key(rel_path),
            data,
            ContentType="application/json",
            Metadata={META_SHA256: hashlib.sha256(data).hexdigest()},
        )

    async def get_json(self, rel_path: str) -> dict[str, Any] | None:
        data = await self._get_bytes(self.key(rel_path))
        if data is None:
            return None
        return layout.load_json(data, f"{self.uri}/{rel_path}")

    async def delete(self, rel_path: str) -> None:
        await self._delete_key(self.key(rel_path))

    async def free_bytes(self) -> int | None:
        return None

    async def abort_abandoned(
        self, keep: Collection[str], *, prefix: str = "", older_than: float = 0.0
    ) -> int:
        base = self.key(prefix) + "/" if prefix else self.key("x")[:-1]  # "<prefix>/" or ""
        keep_keys = {self.key(rel) for rel in keep}
        now = datetime.now(UTC)
        stale: list[tuple[str, str]] = []
        async for upload in self._uploads(base):
            key, upload_id = upload.get("Key"), upload.get("UploadId")
            if not key or not upload_id or key in keep_keys:
                continue
            if (self.endpoint_url, self.bucket, key) in _WRITING:
                continue
            started = upload.get("Initiated")
            young = isinstance(started, datetime) and (now - started).total_seconds() < older_than
            if older_than > 0 and young:
                continue
            stale.append((key, upload_id))
        for key, upload_id in stale:
            await self._abort(key, upload_id)
            await self._delete_key(key + MANIFEST_SUFFIX)
        if stale:
            log.info("archive.aborted_uploads", uri=self.uri, count=len(stale))
        return len(stale)


class S3Sink:
    """One file streaming into S3 (see the module docstring). Made by S3Target.open_sink."""

    def __init__(
        self,
        target: S3Target,
        rel_path: str,
        key: str,
        expected_size: int | None,
        size_hint: int | None,
    ) -> None:
        self.target = target
        self.rel_path = rel_path
        self.key = key
        self.manifest_key = key + MANIFEST_SUFFIX
        self.expected_size = expected_size if expected_size and expected_size > 0 else None
        estimate = self.expected_size or (size_hint if size_hint and size_hint > 0 else None)
        self._fixed_part = part_size_for(estimate, target.part_size) if estimate else None
        self.upload_id: str | None = None
        self._parts: dict[int, _Part] = {}
        self._next = 1
        # The part being filled, in place; sent as it is (never copied) once full. ``_held``:
        # the bytes of the target's buffer budget reserved for it.
        self._buf = _PartBody()
        self._fill = 0
        self._held = 0
        self._written = 0
        self._hasher: Any = hashlib.sha256()  # None once resumed: a dead hasher can't go on
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(target.max_inflight_parts)
        self._failure: BaseException | None = None
        self._manifest_lock = asyncio.Lock()
        self._manifest_at = 0.0
        self._has_manifest = False
        self._finished = False
        self.resumed_from = 0  # bytes found stored by an earlier writer
        self.bytes_sent = 0  # bytes of file data this sink sent to the store

    # ---- FileSink -----------------------------------------------------------------------
    @property
    def offset(self) -> int:
        return self._written

    @property
    def durable(self) -> int:
        total, n = 0, 1
        while n in self._parts:
            total += self._parts[n].size
            n += 1
        return total

    @property
    def parts_stored(self) -> int:
        return len(self._parts)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check()
        view = memoryview(data).cast("B")
        while len(view):
            size = self._part_size(self._next)
            if not self._held:
                await self._begin_part(size)
            take = view[: size - self._fill]
            self._buf[self._fill : self._fill + len(take)] = take
            self._fill += len(take)
            self._written += len(take)
            view = view[len(take) :]
            if self._fill >= size:
                await self._ship()

    async def last_byte(self) -> bytes | None:
        return bytes(self._buf[self._fill - 1 : self._fill]) if self._fill else None

    async def ensure_room(self, remaining: int) -> None:
        return None  # no practical limit

    async def reset(self) -> None:
        if self._finished:
            raise RuntimeError(f"sink for {self.key} is already finished")
        await self._cancel_tasks()
        upload_id, self.upload_id = self.upload_id, None
        self._parts.clear()
        self._next = 1
        self._drop_buffer()
        self._written = 0
        self._hasher = hashlib.sha256()
        self._failure = None
        self.resumed_from = 0
        if upload_id is not None:
            await self.target._abort(self.key, upload_id)
        if self._has_manifest:
            await self.target._delete_key(self.manifest_key)
            self._has_manifest = False

    async def commit(self) -> StoredFile:
        self._check()
        try:
            if self.upload_id is None and not self._parts:
                result = await self._commit_single()
            else:
                result = await self._commit_multipart()
        except BaseException:
            # The upload (if any) stays for a later resume, its part list brought up to date;
            # this sink is done.
            await self._cancel_tasks()
            if self.upload_id is not None and self._parts:
                with contextlib.suppress(Exception):
                    await self._save_manifest(force=True)
            self._finish()
            raise
        self._finish()
        return result

    async def suspend(self) -> None:
        if self._finished:
            return
        try:
            if self._failure is None and self._fill >= MIN_PART:
                await self._ship()  # a valid part: keep it rather than fetch it again
            await self._drain()
            if self.upload_id is not None and self._parts:
                await self._save_manifest(force=True)
        except Exception as exc:
            log.warning("archive.suspend_failed", uri=self.target.uri, key=self.key, error=str(exc))
        finally:
            await self._cancel_tasks()
            self._finish()

    async def discard(self) -> None:
        if self._finished:
            return
        try:
            await self._cancel_tasks()
            if self.upload_id is not None:
                await self.target._abort(self.key, self.upload_id)
            await self.target._delete_key(self.manifest_key)
        except Exception as exc:
            log.warning("archive.discard_failed", uri=self.target.uri, key=self.key, error=str(exc))
        finally:
            self._finish()

    # ---- internals ------------------------------------------------------------------------
    def _check(self) -> None:
        if self._finished:
            raise RuntimeError(f"sink for {self.key} is already finished")
        if self._failure is not None:
            raise self._failure

    def _finish(self) -> None:
        self._finished = True
        self._drop_buffer()
        _WRITING.discard((self.target.endpoint_url, self.target.bucket, self.key))

    def _part_size(self, number: int) -> int:
        if self._fixed_part is not None:
            return self._fixed_part
        # Unknown size: double every 1,000 parts, so 10,000 parts reach past 5 TB.
        return min(MAX_PART, self.target.part_size << min((number - 1) // 1000, 10))

    async def _begin_part(self, size: int) -> None:
        """Reserve memory for the next part (a file of known size needs no more than what is
        left of it) and make its buffer."""
        want = size
        if self.expected_size is not None:
            want = max(1, min(size, self.expected_size - self._written))
        self._held = await self.target.buffers.take(want)
        self._buf = _PartBody(want)
        self._fill = 0

    def _take_buffer(self) -> tuple[bytearray, int]:
        """The part filled so far and the memory reserved for it; a new part starts empty.
        The caller gives the reservation back once the bytes are no longer held."""
        part, held = self._buf, self._held
        del part[self._fill :]
        self._buf, self._fill, self._held = _PartBody(), 0, 0
        return part, held

    def _drop_buffer(self) -> None:
        _part, held = self._take_buffer()
        self.target.buffers.release(held)

    def _digest(self, data: bytes | bytearray) -> bytes:
        if self._hasher is not None:
            self._hasher.update(data)
        return hashlib.sha256(data).digest()

    async def _ship(self) -> None:
        """Send the buffer as the next part, in the background (bounded in-flight parts)."""
        part, held = self._take_buffer()
        number = self._next
        self._next += 1
        try:
            digest = await asyncio.to_thread(self._digest, part)
            if self.upload_id is None:
                created = await self.target._call(
                    "create_multipart_upload",
                    self.rel_path,
                    Key=self.key,
                    ChecksumAlgorithm="SHA256",
                )
                self.upload_id = created["UploadId"]
            await self._slots.acquire()
        except BaseException:
            self.target.buffers.release(held)
            raise
        if self._failure is not None:
            self._slots.release()
            self.target.buffers.release(held)
            raise self._failure
        task = asyncio.create_task(self._send_part(number, part, digest, held))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_part(self, number: int, part: bytearray, digest: bytes, held: int) -> None:
        """Upload one part; its slot and its memory are given back however it ends."""
        checksum = _b64(digest)
        try:
            resp = await self.target._call(
                "upload_part",
                self.rel_path,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=part,
                ContentLength=len(part),
                ChecksumSHA256=checksum,
            )
            echoed = resp.get("ChecksumSHA256")
            if echoed and echoed != checksum:
                raise ArchiveRequestFailed(
                    f"store reported a different checksum for part {number} of {self.key}",
                    code="ChecksumMismatch",
                )
            self._parts[number] = _Part(number, len(part), resp["ETag"], checksum)
            self.bytes_sent += len(part)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if self._failure is None:
                self._failure = exc
            return
        finally:
            self._slots.release()
            del part  # sent: don't hold it while the part list is written
            self.target.buffers.release(held)
        try:
            await self._save_manifest()
        except ArchiveRequestFailed as exc:  # only costs a re-upload after a crash
            log.warning(
                "archive.manifest_failed", uri=self.target.uri, key=self.key, error=str(exc)
            )

    async def _save_manifest(self, *, force: bool = False) -> None:
        async with self._manifest_lock:
            # Rewriting a list of N parts every N/1000 s keeps its cost at ~80 KB/s at most.
            if not force and time.monotonic() - self._manifest_at < len(self._parts) / 1000:
                return
            if self._finished and not force:
                return
            doc = {
                "format": MANIFEST_FORMAT,
                "key": self.key,
                "upload_id": self.upload_id,
                "parts": [
                    [p.number, p.size, p.etag, p.checksum] for _, p in sorted(self._parts.items())
                ],
            }
            await self.target._put(self.manifest_key, layout.dump_json(doc))
            self._has_manifest = True
            self._manifest_at = time.monotonic()

    async def _drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _commit_single(self) -> StoredFile:
        data, held = self._take_buffer()
        try:
            digest = await asyncio.to_thread(self._digest, data)
            sha = self._hasher.hexdigest()
            checksum = _b64(digest)
            resp = await self.target._put(self.key, data, Metadata={META_SHA256: sha})
        finally:
            self.target.buffers.release(held)
        store = resp.get("ChecksumSHA256")
        if store and store != checksum:
            raise ArchiveRequestFailed(
                f"store reported a different checksum for {self.key}", code="ChecksumMismatch"
            )
        self.bytes_sent += len(data)
        if self._has_manifest:
            with contextlib.suppress(ArchiveRequestFailed):
                await self.target._delete_key(self.manifest_key)
        return StoredFile(len(data), sha, store)

    async def _commit_multipart(self) -> StoredFile:
        if self._fill:
            part, held = self._take_buffer()
            number = self._next
            self._next += 1
            try:
                digest = await asyncio.to_thread(self._digest, part)
                await self._slots.acquire()
            except BaseException:
                self.target.buffers.release(held)
                raise
            await self._send_part(number, part, digest, held)
        await self._drain()
        if self._failure is not None:
            raise self._failure
        numbers = sorted(self._parts)
        if numbers != list(range(1, self._next)):
            raise ArchiveRequestFailed(f"parts missing for {self.key}", code="InvalidPart")
        parts = [self._parts[n] for n in numbers]
        resp = await self.target._call(
            "complete_multipart_upload",
            self.rel_path,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={
                "Parts": [
                    {"PartNumber": p.number, "ETag": p.etag, "ChecksumSHA256": p.checksum}
                    for p in parts
                ]
            },
        )
        expected = composite_checksum([base64.b64decode(p.checksum) for p in parts])
        store = resp.get("ChecksumSHA256")
        if store and store.split("-")[0] != expected.split("-")[0]:
            raise ArchiveRequestFailed(
                f"store's checksum of {self.key} does not match its parts", code="ChecksumMismatch"
            )
        head = await self.target._call("head_object", self.rel_path, Key=self.key)
        if int(head.get("ContentLength") or -1) != self._written:
            raise ArchiveRequestFailed(
                f"{self.key} holds {head.get('ContentLength')} bytes, {self._written} were sent",
                code="SizeMismatch",
            )
        with contextlib.suppress(ArchiveRequestFailed):
            await self.target._delete_key(self.manifest_key)
        if self._hasher is not None:
            sha = self._hasher.hexdigest()
        else:
            sha = await self.target.sha256(self.rel_path)  # resumed: read it back once
        return StoredFile(self._written, sha, store or expected)

    async def _resume(self) -> None:
        """Pick up an unfinished upload of this key (see the module docstring)."""
        t = self.target
        uploads = [u async for u in t._uploads(self.key) if u.get("Key") == self.key]
        manifest = await self._load_manifest()
        ids = {u["UploadId"] for u in uploads}
        chosen: str | None = None
        if manifest is not None and manifest["upload_id"] in ids:
            chosen = manifest["upload_id"]
        elif uploads:
            chosen = max(
                uploads, key=lambda u: u.get("Initiated") or datetime.min.replace(tzinfo=UTC)
            )["UploadId"]
        for upload in uploads:
            if upload["UploadId"] != chosen:
                await t._abort(self.key, upload["UploadId"])
        if manifest is not None and manifest["upload_id"] != chosen:
            await t._delete_key(self.manifest_key)
            manifest = None
        self._has_manifest = manifest is not None
        if chosen is None:
            return
        listed = {int(p["PartNumber"]): p async for p in t._parts(self.key, chosen)}
        recorded: dict[int, tuple[int, str, str]] = (
            {n: (size, etag, checksum) for n, size, etag, checksum in manifest["parts"]}
            if manifest is not None
            else {}
        )
        kept: list[_Part] = []
        total = 0
        number = 1
        while number in listed:
            part = listed[number]
            size, etag = int(part.get("Size") or 0), str(part.get("ETag") or "")
            checksum = part.get("ChecksumSHA256")
            record = recorded.get(number)
            if record is not None:
                if record[0] != size or record[1] != etag or (checksum and checksum != record[2]):
                    break  # replaced after the manifest was written
                checksum = record[2]
            if not checksum or size < MIN_PART:
                break
            kept.append(_Part(number, size, etag, checksum))
            total += size
            number += 1
        # Leave the source something to send: its answer proves it still has the file.
        while kept and self.expected_size is not None and total >= self.expected_size:
            total -= kept.pop().size
        if not kept:
            # Nothing usable: start clean (a small file can then go in one PUT).
            await t._abort(self.key, chosen)
            if self._has_manifest:
                await t._delete_key(self.manifest_key)
                self._has_manifest = False
            return
        self.upload_id = chosen
        self._parts = {p.number: p for p in kept}
        self._next = len(kept) + 1
        self._written = total
        self.resumed_from = total
        self._hasher = None
        log.info("archive.resume", uri=t.uri, key=self.key, parts=len(kept), offset=total)

    async def _load_manifest(self) -> dict[str, Any] | None:
        data = await self.target._get_bytes(self.manifest_key)
        if data is None:
            return None
        try:
            doc = layout.load_json(data, self.manifest_key)
            parts = [
                (int(n), int(size), str(etag), str(checksum))
                for n, size, etag, checksum in doc["parts"]
            ]
            if doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("upload_id"), str):
                raise ValueError("not a kretain upload manifest")
        except (ValueError, KeyError, TypeError):
            return None  # unusable: the parts it would vouch for are sent again
        return {"upload_id": doc["upload_id"], "parts": parts}

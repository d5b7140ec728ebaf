"""Where archived files go: the ArchiveTarget interface and ``open_target``.

    target = open_target("/srv/archive")                  # LocalTarget
    target = open_target("s3://bucket/prefix", endpoint_url=..., region=...)  # S3Target
    async with target:
        await target.check_writable()                     # ArchiveUnavailable if not
        prefix = target.entry_prefix(partner_id, entry_id)        # "1234/0_abc"
        sink = await target.open_sink(f"{prefix}/flavor-0_x.mp4", expected_size=n)
        ...  # sink.offset is the resume point; write(), then commit() or suspend()
        await target.put_json(f"{prefix}/entry.json", doc)

Relative paths (``rel_path``) use ``/`` and the names of :mod:`kretain.archive.layout`; a
target refuses any that would leave its root or prefix. Missing files: ``stat`` and
``get_json`` return None, ``read`` and ``sha256`` raise FileNotFoundError, ``delete`` does
nothing. Errors: see :mod:`kretain.archive.errors`.

A sink writes one file and is finished by exactly one of ``commit`` (the file is in place,
verified by size and sha256), ``suspend`` (stop, keep what is stored for a later resume) or
``discard`` (drop everything). Only one sink per file at a time: a second gets PartFileBusy.
``kretain.workers.download.download_to_sink`` finishes the sink it is given.

For workers: ArchiveUnavailable (exit 7) means stop the stage, as on a full disk; the
per-file errors are DownloadErrors with ``retryable``. Record the commit's sha256 (and the
store checksum) yourself: for multipart S3 objects ``stat`` cannot report the sha256, but
its ``store_checksum`` changes if the object is replaced, so comparing it is a cheap check.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable
from urllib.parse import unquote, urlsplit

from kretain.archive.errors import redact_url
from kretain.errors import ConfigError

__all__ = ["ArchiveTarget", "FileSink", "StoredFile", "open_target", "opened", "parse_s3_uri"]


@dataclass(frozen=True)
class StoredFile:
    """A file as the archive holds it.

    ``sha256``: hex digest of the whole file when known (a sink's commit always knows it; an
    S3 ``stat`` knows it for objects written in one PUT, from their metadata).
    ``store_checksum``: the store's own checksum, as the store reports it (S3
    ``ChecksumSHA256``: base64 of the SHA-256, or of the part digests with ``-N`` for N
    parts); None for local files.
    """

    size: int
    sha256: str | None
    store_checksum: str | None


@runtime_checkable
class FileSink(Protocol):
    """A resumable writer for one file."""

    @property
    def offset(self) -> int:
        """Bytes in the file so far: at open, the resume point (what a previous writer left
        and this one keeps); then it grows with every write. Ask the source for the rest."""
        ...

    @property
    def durable(self) -> int:
        """Bytes that would survive a crash now (local: the .part; S3: stored parts)."""
        ...

    async def write(self, data: bytes | bytearray | memoryview) -> None: ...

    async def last_byte(self) -> bytes | None:
        """The file's last byte so far (to check a resumed source lines up), or None when
        the store cannot say without fetching it."""
        ...

    async def ensure_room(self, remaining: int) -> None:
        """Raise DiskFull unless ``remaining`` more bytes fit (plus the target's margin)."""
        ...

    async def reset(self) -> None:
        """Drop everything written (the source ignored Range, or changed): offset 0."""
        ...

    async def commit(self) -> StoredFile:
        """Put the file in place and return its size, sha256 and store checksum."""
        ...

    async def suspend(self) -> None:
        """Stop and keep what is stored, for the next open_sink to resume. Never raises an
        archive error (it runs on failure paths); problems are logged."""
        ...

    async def discard(self) -> None:
        """Stop and drop everything stored for this file."""
        ...


@runtime_checkable
class ArchiveTarget(Protocol):
    """An archive: a local directory or an S3 bucket prefix. Use ``async with`` (or
    ``aclose()``) so network clients are closed."""

    @property
    def uri(self) -> str:
        """``file:///abs/path`` or ``s3://bucket/prefix``; never credentials."""
        ...

    # The two targets subclass this protocol for these two: entering opens nothing (a client
    # is made on first use), leaving closes what was opened.
    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None: ...

    async def check_writable(self) -> None:
        """Write and delete a small marker; raise ArchiveUnavailable (one line) if that fails."""
        ...

    async def check_readable(self) -> None:
        """Raise ArchiveUnavailable (one line) unless the archive is there to be read: the
        directory exists; the bucket exists and the credentials may list it. Writes nothing."""
        ...

    def entry_prefix(self, partner_id: int, entry_id: str) -> str:
        """``<partnerId>/<entryId>`` with the layout's safe names, relative to the target."""
        ...

    async def open_sink(
        self, rel_path: str, *, expected_size: int | None, size_hint: int | None = None
    ) -> FileSink:
        """A sink for ``rel_path``, resuming what an earlier writer left.

        ``expected_size``: the exact size when known (a longer leftover is cut to it).
        ``size_hint``: an estimate when the exact size is unknown (S3 picks its part size).
        """
        ...

    async def stat(self, rel_path: str) -> StoredFile | None: ...

    def read(self, rel_path: str, *, start: int = 0) -> AsyncIterator[bytes]:
        """The file's bytes from ``start``, in chunks, in constant memory."""
        ...

    async def sha256(self, rel_path: str) -> str:
        """Hex SHA-256 of the stored bytes (reads the whole file)."""
        ...

    async def put_json(self, rel_path: str, doc: dict[str, Any]) -> None:
        """Write a JSON document atomically (readers see the old or the new one)."""
        ...

    async def get_json(self, rel_path: str) -> dict[str, Any] | None: ...

    async def delete(self, rel_path: str) -> None: ...

    async def free_bytes(self) -> int | None:
        """Room left for the archive; None when the store has no practical limit (S3)."""
        ...

    async def abort_abandoned(
        self, keep: Collection[str], *, prefix: str = "", older_than: float = 0.0
    ) -> int:
        """Drop unfinished files under ``prefix`` whose rel_path is not in ``keep`` and that
        were started more than ``older_than`` seconds ago: local ``.part`` files, S3
        multipart uploads (and their part lists). Returns how many were dropped. Files
        being written by this process are never dropped."""
        ...


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ("bucket", "some/prefix"). ConfigError if malformed."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or parts.query or parts.fragment or "@" in parts.netloc:
        # Not echoed: whatever sits before "@" or after "?" may be a key or a signature.
        raise ConfigError(
            "not an archive URI of the form s3://bucket/prefix (no credentials, query or "
            "fragment; credentials come from the AWS environment)"
        )
    bucket = parts.netloc
    prefix = parts.path.strip("/")
    from kretain.archive.s3 import check_bucket_name

    check_bucket_name(bucket)
    return bucket, prefix


def open_target(
    uri_or_path: str | Path,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    **options: Any,
) -> ArchiveTarget:
    """``s3://bucket/prefix`` -> S3Target; ``file:///path`` or a plain path -> LocalTarget.

    ``endpoint_url`` and ``region`` apply to S3 only (an S3-compatible store: SeaweedFS,
    MinIO, Ceph ...). ``options`` go to the target's constructor. Nothing is contacted here.
    """
    from kretain.archive.local import LocalTarget

    if isinstance(uri_or_path, Path):
        return LocalTarget(uri_or_path, **options)
    text = str(uri_or_path).strip()
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    if scheme == "s3":
        from kretain.archive.s3 import S3Target

        bucket, prefix = parse_s3_uri(text)
        return S3Target(bucket, prefix, endpoint_url=endpoint_url, region=region, **options)
    if scheme == "file":
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"file archive URIs must be local: {redact_url(text)[:80]!r}")
        return LocalTarget(Path(unquote(parts.path)), **options)
    if scheme:
        raise ConfigError(
            f"unsupported archive URI {redact_url(text)[:80]!r}: use a path or s3://bucket/prefix"
        )
    if not text:
        raise ConfigError("the archive must be a path or s3://bucket/prefix")
    return LocalTarget(Path(text), **options)


@contextlib.asynccontextmanager
async def opened(
    archive: ArchiveTarget | str | Path, **options: Any
) -> AsyncIterator[ArchiveTarget]:
    """``archive`` as a target: a target is used as it is (its owner closes it); a path or
    URI is opened with :func:`open_target` (``options`` as there) and closed on exit."""
    if isinstance(archive, str | Path):
        async with open_target(archive, **options) as target:
            yield target
    else:
        yield archive

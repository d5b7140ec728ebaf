"""Errors raised by archive targets.

A target raises two kinds of error. One is about the archive as a whole and stops a stage;
the other is about one file, and the caller may retry that file::

    KretainError
     +-- ArchiveUnavailable       exit 7: the archive cannot be written or read at all
                                  (read-only or missing directory, permission denied, disk
                                  full on mkdir/entry.json, wrong or missing S3 credentials,
                                  missing bucket, endpoint unreachable)
    DownloadError                 one file did not reach the archive verified (.retryable)
     +-- DiskFull                 local: ENOSPC/EDQUOT or not enough room  (not retryable)
     +-- PartFileBusy             another writer holds the same file        (retryable)
     +-- DestinationExists        final file already there                  (not retryable)
     +-- ArchiveRequestFailed     the store failed one request after its retries: 5xx,
                                  throttling, a dropped connection, a refused checksum

``ArchiveUnavailable`` is the one class of :mod:`kretain.errors` (re-exported here), so the
CLI and the workers see the same error whichever part of kretain raised it.
``DownloadError`` and the file-level classes live here because sinks raise them;
``kretain.workers.download`` re-exports them with the rest of its error tree, so both
``except DownloadError`` and ``is_retryable`` see them. ``ArchiveUnavailable`` is deliberately
not a DownloadError nor an OSError: a worker must not count it against one entry (every entry
would fail for the same reason) but stop, like on a full disk.

Messages are one line. They name the archive by its URI (``file:///...`` or
``s3://bucket/prefix``) and, for S3, the endpoint without credentials; never a key or token.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from kretain.errors import ArchiveUnavailable

__all__ = [
    "ArchiveRequestFailed",
    "ArchiveUnavailable",
    "DestinationExists",
    "DiskFull",
    "DownloadError",
    "PartFileBusy",
    "redact_url",
]


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


class DownloadError(Exception):
    """A file that did not reach the archive verified. ``url`` is already redacted."""

    retryable: bool = False

    def __init__(self, message: str, *, url: str | None = None) -> None:
        self.url = redact_url(url) if url else None
        super().__init__(f"{message} ({self.url})" if self.url else message)


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


class ArchiveRequestFailed(DownloadError):
    """The store failed a request for one file after its own bounded retries.

    ``code`` is the store's error code (``SlowDown``, ``InternalError``, ``BadDigest`` ...) or
    the exception class name for a network failure. Retryable unless the store said the
    request itself is wrong.
    """

    def __init__(self, message: str, *, code: str, retryable: bool = True) -> None:
        self.code = code
        self.retryable = retryable
        super().__init__(message)

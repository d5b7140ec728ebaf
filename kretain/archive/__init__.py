"""The archive: its layout and where it is kept.

    layout.py   names: ``<partnerId>/<entryId>/<kind>-<assetId>.<ext>`` and ``entry.json``,
                safe paths, atomic JSON files, free space
    target.py   the ArchiveTarget / FileSink interface, StoredFile, open_target(), opened()
    local.py    LocalTarget: a directory (.part files, flock, fsync, rename)
    s3.py       S3Target: a bucket prefix on S3 or an S3-compatible store (aiobotocore)
    errors.py   ArchiveUnavailable (exit 7) and the per-file errors sinks raise
    testing.py  a SeaweedFS server on loopback, for tests and benchmarks

Every name of the former ``kretain.archive`` module is still importable from here.
``S3Target`` is imported on first use, so local-only runs never load aiobotocore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kretain.archive.errors import (
    ArchiveRequestFailed,
    ArchiveUnavailable,
    DestinationExists,
    DiskFull,
    DownloadError,
    PartFileBusy,
)
from kretain.archive.layout import (
    ASSET_KINDS,
    ENTRY_JSON,
    ArchivePathError,
    AssetKind,
    asset_filename,
    check_rel,
    dump_json,
    entry_dir,
    entry_rel,
    free_bytes,
    fsync_dir,
    load_json,
    read_entry_json,
    rel_dir,
    safe_component,
    safe_join,
    sanitize_extension,
    write_json_atomic,
)
from kretain.archive.local import LocalFS, LocalSink, LocalTarget
from kretain.archive.target import ArchiveTarget, FileSink, StoredFile, open_target, opened

if TYPE_CHECKING:
    from kretain.archive.s3 import S3Sink, S3Target

__all__ = [
    "ASSET_KINDS",
    "ENTRY_JSON",
    "ArchivePathError",
    "ArchiveRequestFailed",
    "ArchiveTarget",
    "ArchiveUnavailable",
    "AssetKind",
    "DestinationExists",
    "DiskFull",
    "DownloadError",
    "FileSink",
    "LocalFS",
    "LocalSink",
    "LocalTarget",
    "PartFileBusy",
    "S3Sink",
    "S3Target",
    "StoredFile",
    "asset_filename",
    "check_rel",
    "dump_json",
    "entry_dir",
    "entry_rel",
    "free_bytes",
    "fsync_dir",
    "load_json",
    "open_target",
    "opened",
    "read_entry_json",
    "rel_dir",
    "safe_component",
    "safe_join",
    "sanitize_extension",
    "write_json_atomic",
]


def __getattr__(name: str) -> Any:
    if name in ("S3Target", "S3Sink"):
        from kretain.archive import s3

        return getattr(s3, name)
    raise AttributeError(f"module 'kretain.archive' has no attribute {name!r}")

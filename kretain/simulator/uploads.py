"""Uploaded files on disk: request file parts, upload-token files and their chunks.

A file part of a multipart request is streamed to a temp file by the wire layer
(:class:`UploadedFile`); handlers move it where it belongs (``os.replace`` on the
same file system, so even a file of several GB moves at once) or leave it to be
removed when the request ends.

An upload token's data is one file; chunks that cannot be appended yet are parked
beside it as ``<file>.chunk.<resumeAt>`` and appended once the file reaches their
offset, as kUploadTokenMgr does (alpha/apps/kaltura/lib/kUploadTokenMgr.php).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass

COPY_BUFFER = 1 << 20
_CHUNK_MARK = ".chunk."


@dataclass
class UploadedFile:
    """One file part of a request, already on disk (PHP's ``$_FILES`` entry)."""

    path: str
    filename: str  # as sent; "" means the part named no file (PHP: UPLOAD_ERR_NO_FILE)
    size: int
    content_type: str | None = None

    @property
    def ok(self) -> bool:
        """A real upload: a file name was given and the data is still there."""
        return bool(self.filename) and os.path.exists(self.path)

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def extension(name: str | None) -> str:
    """PHP's ``strtolower(pathinfo($name, PATHINFO_EXTENSION))`` ("" when none)."""
    base = os.path.basename(name or "")
    stem, dot, ext = base.rpartition(".")
    return ext.lower() if dot and (stem or ext) and base not in (".", "..") else ""


def file_size(path: str | None) -> int:
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


def chunk_path(target: str, offset: int) -> str:
    return f"{target}{_CHUNK_MARK}{offset}"


def park_chunk(source: str, target: str, offset: int) -> None:
    """Keep a chunk for later (a chunk parked at the same offset is replaced)."""
    os.replace(source, chunk_path(target, offset))


def write_at(target: str, source: str, offset: int) -> int:
    """Write ``source`` into ``target`` at ``offset`` (overwriting), remove it; new end."""
    with open(target, "r+b") as out, open(source, "rb") as src:
        out.seek(offset)
        shutil.copyfileobj(src, out, COPY_BUFFER)
        end = out.tell()
    os.unlink(source)
    return end


def append_end(target: str, source: str) -> int:
    """Append ``source`` at the end of ``target`` (resumeAt -1); the new size."""
    return write_at(target, source, file_size(target))


def parked_chunks(target: str) -> list[tuple[int, str]]:
    """(offset, path) of the chunks parked for ``target``, by offset."""
    folder, base = os.path.split(target)
    prefix = base + _CHUNK_MARK
    out: list[tuple[int, str]] = []
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(folder or "."):
            if name.startswith(prefix) and name[len(prefix) :].isdigit():
                out.append((int(name[len(prefix) :]), os.path.join(folder, name)))
    return sorted(out)


def append_next_chunks(target: str, limit: int = 10) -> int:
    """Append parked chunks that start exactly at the file's end (up to ``limit``).

    The server does this before placing a non-final chunk (syncAppendAvailableChunks).
    """
    size = file_size(target)
    for _ in range(limit):
        nxt = chunk_path(target, size)
        if not os.path.exists(nxt):
            break
        size = write_at(target, nxt, size)
    return size


def append_available_chunks(target: str) -> int:
    """Append every parked chunk that starts within or at the end of the file and
    enlarges it, repeatedly (appendChunks; a chunk at offset 0 always applies)."""
    size = file_size(target)
    while True:
        for offset, path in parked_chunks(target):
            length = file_size(path)
            if offset == 0 or offset <= size < offset + length:
                size = max(size, write_at(target, path, offset))
                break
        else:
            return size


def remove_token_files(target: str | None) -> None:
    """The token's file and every chunk parked for it."""
    if not target:
        return
    for _, path in parked_chunks(target):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target)

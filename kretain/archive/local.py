"""The archive as a local directory: ``LocalTarget(root)``.

A file is written to ``<name>.part`` under an exclusive flock (a second writer gets
PartFileBusy), hashed as it is written, fsynced and renamed into place on commit, then the
directory is fsynced. A ``.part`` left by a crash is the resume point: opening a sink hashes
what is there (cut to the expected size), and writing continues at its end. Free space is
checked on request (``ensure_room``) against ``min_free_bytes``; ENOSPC/EDQUOT while writing
raise DiskFull and keep the bytes that did reach the disk, so the ``.part`` stays an exact
prefix. JSON documents are written with temp file + fsync + rename.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
import time
from collections.abc import AsyncGenerator, Collection
from pathlib import Path
from typing import Any

from kretain.archive import layout
from kretain.archive.errors import ArchiveUnavailable, DiskFull, PartFileBusy
from kretain.archive.target import ArchiveTarget, StoredFile

__all__ = ["DEFAULT_MIN_FREE_BYTES", "LocalFS", "LocalSink", "LocalTarget", "part_path"]

MiB = 1 << 20
DEFAULT_MIN_FREE_BYTES = 256 * MiB
READ_BLOCK = 1 * MiB
HASH_BLOCK = 8 * MiB
# The archive as a whole is unusable (rather than one file failing) on these.
_UNAVAILABLE = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR}
)


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


class LocalFS:
    """The file-system calls a local sink makes, gathered so tests can inject failures (e.g.
    a write raising ENOSPC) while still using real files."""

    def write(self, fd: int, data: memoryview) -> int:
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def free_bytes(self, path: Path) -> int:
        return layout.free_bytes(path)


class LocalSink:
    """One ``.part`` being written (see the module docstring). Blocking work runs in threads."""

    def __init__(self, dest: Path, fs: LocalFS, min_free_bytes: int) -> None:
        self.dest = dest
        self.path = part_path(dest)
        self.fs = fs
        self.min_free_bytes = min_free_bytes
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self.fd)
            raise PartFileBusy(f"{self.path} is being written by another download") from exc
        self.length = 0
        self.hasher = hashlib.sha256()

    # ---- FileSink ---------------------------------------------------------------------
    @property
    def offset(self) -> int:
        return self.length

    @property
    def durable(self) -> int:
        return self.length

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await asyncio.to_thread(self._append, data)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(self.path) from exc
            raise

    async def last_byte(self) -> bytes | None:
        if self.length == 0:
            return None
        return await asyncio.to_thread(os.pread, self.fd, 1, self.length - 1)

    async def ensure_room(self, remaining: int) -> None:
        needed = max(0, remaining) + max(0, self.min_free_bytes)
        free = await asyncio.to_thread(self.fs.free_bytes, self.path.parent)
        if free < needed:
            raise DiskFull(self.path, needed=needed, free=free)

    async def reset(self) -> None:
        await asyncio.to_thread(self._truncate)

    async def commit(self) -> StoredFile:
        try:
            await asyncio.to_thread(self._finalize)
        finally:
            self.close()
        return StoredFile(self.length, self.hasher.hexdigest(), None)

    async def suspend(self) -> None:
        self.close()

    async def discard(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # ---- blocking parts (threads) ---------------------------------------------------------
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
            block = os.pread(self.fd, min(HASH_BLOCK, size - pos), pos)
            if not block:  # shrank under us; keep what we hashed
                os.ftruncate(self.fd, pos)
                break
            self.hasher.update(block)
            pos += len(block)
        self.length = pos

    def _truncate(self) -> None:
        os.ftruncate(self.fd, 0)
        self.length = 0
        self.hasher = hashlib.sha256()

    def _append(self, data: bytes | bytearray | memoryview) -> None:
        """Write at the end and hash. If a write fails part-way (ENOSPC), the bytes that did
        reach the file are kept and hashed, and anything past them is cut off, so the .part
        stays an exact prefix to resume from."""
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

    def _finalize(self) -> None:
        try:
            self.fs.fsync(self.fd)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(self.path) from exc
            raise
        os.replace(self.path, self.dest)
        layout.fsync_dir(self.dest.parent)


class LocalTarget(ArchiveTarget):
    """The archive in a directory (see the module docstring).

    ``min_free_bytes`` is the margin ``ensure_room`` keeps free beyond the rest of a file;
    ``fs`` is the file-system seam tests use to inject failures.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
        fs: LocalFS | None = None,
    ) -> None:
        # Resolved: the uri recorded on archived rows has always named the real directory.
        self.root = Path(root).expanduser().resolve()
        self.min_free_bytes = min_free_bytes
        self.fs = fs or LocalFS()

    @property
    def uri(self) -> str:
        return self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalTarget({self.uri})"

    async def aclose(self) -> None:
        return None

    def path_of(self, rel_path: str) -> Path:
        """The absolute path of ``rel_path``; ArchivePathError if it would leave the root."""
        return layout.safe_join(self.root, *layout.check_rel(rel_path).split("/"))

    def _unavailable(self, exc: OSError, what: str) -> ArchiveUnavailable:
        reason = exc.strerror or type(exc).__name__
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            reason = "disk full"
        return ArchiveUnavailable(self.uri, f"cannot {what}: {reason}")

    # ---- ArchiveTarget ----------------------------------------------------------------------
    async def check_writable(self) -> None:
        def probe() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            marker = self.root / f".kretain-probe-{secrets.token_hex(6)}"
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, b"kretain write probe\n")
                os.fsync(fd)
            finally:
                os.close(fd)
                with contextlib.suppress(FileNotFoundError):
                    marker.unlink()

        try:
            await asyncio.to_thread(probe)
        except OSError as exc:
            raise self._unavailable(exc, "write a test file") from exc

    async def check_readable(self) -> None:
        if not await asyncio.to_thread(self.root.is_dir):
            raise ArchiveUnavailable(self.uri, "does not exist (or is not a directory)")

    def entry_prefix(self, partner_id: int, entry_id: str) -> str:
        rel = layout.entry_rel(partner_id, entry_id)
        self.path_of(rel)  # refuses a symlink out of the root
        return rel

    async def open_sink(
        self, rel_path: str, *, expected_size: int | None, size_hint: int | None = None
    ) -> LocalSink:
        return await self.open_sink_at(self.path_of(rel_path), expected_size=expected_size)

    async def open_sink_at(self, dest: Path, *, expected_size: int | None) -> LocalSink:
        """A sink for the file ``dest`` as given (``download_to``'s path-based API)."""

        def open_() -> LocalSink:
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                if exc.errno in _UNAVAILABLE:
                    raise self._unavailable(exc, f"create {dest.parent}") from exc
                raise
            try:
                sink = LocalSink(dest, self.fs, self.min_free_bytes)
            except OSError as exc:
                if exc.errno in _UNAVAILABLE:
                    raise self._unavailable(exc, f"create {part_path(dest)}") from exc
                raise
            try:
                sink.load(expected_size if expected_size and expected_size > 0 else None)
            except BaseException:
                sink.close()
                raise
            return sink

        return await asyncio.to_thread(open_)

    async def stat(self, rel_path: str) -> StoredFile | None:
        path = self.path_of(rel_path)
        try:
            st = await asyncio.to_thread(path.stat)
        except FileNotFoundError:
            return None
        return StoredFile(st.st_size, None, None)

    async def read(self, rel_path: str, *, start: int = 0) -> AsyncGenerator[bytes, None]:
        path = self.path_of(rel_path)
        fh = await asyncio.to_thread(open, path, "rb")
        try:
            if start:
                await asyncio.to_thread(fh.seek, start)
            while block := await asyncio.to_thread(fh.read, READ_BLOCK):
                yield block
        finally:
            fh.close()

    async def sha256(self, rel_path: str) -> str:
        path = self.path_of(rel_path)

        def digest() -> str:
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                while block := fh.read(HASH_BLOCK):
                    h.update(block)
            return h.hexdigest()

        return await asyncio.to_thread(digest)

    async def put_json(self, rel_path: str, doc: dict[str, Any]) -> None:
        path = self.path_of(rel_path)
        try:
            await asyncio.to_thread(layout.write_json_atomic, path, doc)
        except OSError as exc:
            if exc.errno in _UNAVAILABLE:
                raise self._unavailable(exc, f"write {path}") from exc
            raise

    async def get_json(self, rel_path: str) -> dict[str, Any] | None:
        path = self.path_of(rel_path)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None
        return layout.load_json(data, str(path))

    async def delete(self, rel_path: str) -> None:
        path = self.path_of(rel_path)
        await asyncio.to_thread(path.unlink, missing_ok=True)

    async def free_bytes(self) -> int | None:
        return await asyncio.to_thread(layout.free_bytes, self.root)

    async def abort_abandoned(
        self, keep: Collection[str], *, prefix: str = "", older_than: float = 0.0
    ) -> int:
        """Remove ``.part`` files (and temp files of interrupted JSON writes) under
        ``prefix`` that are not for a path in ``keep``, are older than ``older_than``
        seconds, and are not locked by a writer right now."""
        top = self.path_of(prefix) if prefix else self.root
        keep_set = frozenset(keep)
        cutoff = time.time() - older_than

        def sweep() -> int:
            removed = 0
            for dirpath, _dirs, files in os.walk(top):
                for name in files:
                    is_part = name.endswith(".part")
                    is_tmp = name.startswith(".") and name.endswith(".tmp")
                    if not (is_part or is_tmp):
                        continue
                    path = Path(dirpath) / name
                    rel = path.relative_to(self.root).as_posix()
                    if is_part and rel.removesuffix(".part") in keep_set:
                        continue
                    if _remove_if_idle(path, cutoff):
                        removed += 1
            return removed

        if not await asyncio.to_thread(top.exists):
            return 0
        return await asyncio.to_thread(sweep)


def _remove_if_idle(path: Path, cutoff: float) -> bool:
    """Unlink ``path`` unless it changed after ``cutoff`` or a writer holds its flock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        if os.fstat(fd).st_mtime > cutoff:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # being written now
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)

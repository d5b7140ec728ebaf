"""Opening the state database: one writer process, WAL, explicit write transactions.

Functions and classes:
    open_store(path, *, readonly=False, migrate=True) -> Store     (async)
    Store.transaction() -> async context manager yielding the connection (BEGIN IMMEDIATE)
    Store.write(fn, *args) -> fn(conn, *args) as one transaction in one database-thread job
    Store.run_sync(fn, *args) -> fn(conn, *args) in one job (inside a transaction)
    Store.fetchall(sql, params=()) / Store.fetchone(sql, params=())  -> sqlite3.Row(s)
    Store.close()                                                   (async; also `async with`)
    lock_path(db_path) -> Path                                      the sidecar "<db>.lock"
    now() -> int                                                    Unix seconds

A writing open takes an exclusive ``fcntl.flock`` on ``<db>.lock`` (which holds "pid since") before
touching SQLite; a second kretain process gets StoreLockedError naming the holder. The path is
resolved first, so a symlink to a held database meets the same lock file. The OS drops
the lock when the holder dies, even by SIGKILL, so a killed run never blocks the next one.
Readonly opens (status/query/export) take no lock and open SQLite with ``mode=ro``.

Writes go through ``Store.transaction()``: BEGIN IMMEDIATE (take the write lock up front, so a
transaction never fails half-way on SQLITE_BUSY), COMMIT on success, ROLLBACK on any exception.
Concurrent tasks sharing one Store are serialised by an asyncio.Lock; a transaction opened inside
another one in the same task joins it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fcntl
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from kretain.errors import SchemaVersionError, StoreError, StoreLockedError
from kretain.store import migrations

T = TypeVar("T")

__all__ = ["BUSY_TIMEOUT_MS", "Store", "lock_path", "now", "open_store"]

BUSY_TIMEOUT_MS = 10_000

_in_transaction: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "kretain_store_tx", default=None
)


CACHE_KIB = 128 * 1024  # SQLite page cache of a writing connection


def now() -> int:
    return int(time.time())


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


def _take_lock(db_path: Path) -> int:
    """flock the sidecar lock file; return its fd, or raise StoreLockedError naming the holder."""
    path = lock_path(db_path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            text = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
        finally:
            os.close(fd)
        pid = int(text[0]) if text and text[0].isdigit() else None
        since = text[1] if len(text) > 1 else None
        raise StoreLockedError(str(db_path), pid, since) from None
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {stamp}\n".encode(), 0)
    return fd


def _one_transaction(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn, *args)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


class Store:
    """An open state database. Build with :func:`open_store`."""

    def __init__(
        self, path: Path, conn: aiosqlite.Connection, *, readonly: bool, lock_fd: int | None
    ) -> None:
        self.path = path
        self.conn = conn
        self.readonly = readonly
        self._lock_fd = lock_fd
        self._write_lock = None if readonly else asyncio.Lock()
        self._closed = False

    def __repr__(self) -> str:
        mode = "ro" if self.readonly else "rw"
        return f"Store({str(self.path)!r}, {mode})"

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error).

        Re-entering in the SAME task joins the open transaction. Other tasks wait for it, so do
        not await tasks that write to this store from inside a transaction.
        """
        if self.readonly or self._write_lock is None:
            raise StoreError(f"database {self.path} was opened read-only")
        me = (id(self), id(asyncio.current_task()))
        if _in_transaction.get() == me:
            yield self.conn  # nested: join the outer transaction
            return
        async with self._write_lock:
            token = _in_transaction.set(me)
            try:
                try:
                    # Inside the try: if we are cancelled while BEGIN is queued, it still runs
                    # on aiosqlite's thread, and must be rolled back.
                    await self.conn.execute("BEGIN IMMEDIATE")
                    yield self.conn
                    await self.conn.execute("COMMIT")
                except BaseException:
                    await self._rollback_quietly()
                    raise
            finally:
                _in_transaction.reset(token)

    async def _rollback_quietly(self) -> None:
        # Statements run in order on one thread, so this follows whatever was queued before it.
        try:
            await asyncio.shield(self.conn.execute("ROLLBACK"))
        except sqlite3.OperationalError:
            pass  # no transaction active: BEGIN failed, or a cancelled COMMIT went through

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(sqlite3_connection, *args)`` on the database thread as ONE job.

        A write made of several statements then costs one hop to the database thread and
        back instead of one per statement. That matters inside ``transaction()``: the
        transaction holds the store's write lock for every hop, and each hop also waits for
        a busy event loop. Use it for multi-statement writes, inside a transaction.
        """
        # aiosqlite's own sqlite3 connection, touched only on its thread (inside fn).
        raw = self.conn._conn
        return await self.conn._execute(fn, raw, *args)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(sqlite3_connection, *args)`` as ONE write transaction in ONE hop.

        BEGIN IMMEDIATE, ``fn`` and COMMIT (ROLLBACK if ``fn`` or COMMIT raises) run back to
        back on the database thread, so the write lock is held only while SQLite works, never
        while a busy event loop gets round to the next statement: the hot writers (claims,
        sizing, discovery pages) use it. Inside ``transaction()`` it joins that transaction.
        A caller cancelled while its job runs does not stop it: the job commits or rolls
        back whole, as a transaction does, only the caller does not see which.
        """
        if self.readonly or self._write_lock is None:
            raise StoreError(f"database {self.path} was opened read-only")
        if _in_transaction.get() == (id(self), id(asyncio.current_task())):
            return await self.run_sync(fn, *args)
        async with self._write_lock:
            return await self.run_sync(_one_transaction, fn, *args)

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        async with self.conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        async with self.conn.execute(sql, params) as cur:
            return await cur.fetchone()

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """executemany inside one transaction (joins the caller's if one is open)."""
        async with self.transaction() as conn:
            await conn.executemany(sql, rows)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self.conn.close()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = None

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def open_store(
    path: str | os.PathLike[str], *, readonly: bool = False, migrate: bool = True
) -> Store:
    """Open (and for writing, lock, create and migrate) the database at ``path``.

    readonly=True: the file must exist; no lock is taken; SQLite opens with mode=ro.
    Raises StoreLockedError when another process holds the database for writing,
    StoreError when a readonly database is missing, SchemaVersionError when it is too new.
    """
    # Resolved, so that every name of one file (a symlink, "a/../b") takes the same lock file.
    db_path = Path(path).expanduser().resolve()
    if readonly:
        if not db_path.exists():
            raise StoreError(f"no kretain database at {db_path}")
        conn = await aiosqlite.connect(
            f"{db_path.as_uri()}?mode=ro", uri=True, isolation_level=None
        )
        conn.row_factory = sqlite3.Row
        try:
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            version = await migrations.schema_version(conn)
            if version > migrations.SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"database schema version {version} is newer than this kretain supports "
                    f"({migrations.SCHEMA_VERSION}); upgrade kretain"
                )
        except BaseException:
            await conn.close()
            raise
        return Store(db_path, conn, readonly=True, lock_fd=None)

    if not db_path.parent.is_dir():
        raise StoreError(f"directory {db_path.parent} does not exist (database {db_path})")
    lock_fd = _take_lock(db_path)
    try:
        conn = await aiosqlite.connect(str(db_path), isolation_level=None)
    except BaseException:
        os.close(lock_fd)
        raise
    conn.row_factory = sqlite3.Row
    try:
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA foreign_keys = ON")
        # NORMAL is durable against process crashes (SIGKILL) in WAL mode.
        await conn.execute("PRAGMA synchronous = NORMAL")
        # A million-entry audit inserts assets in random key order; the default 2 MiB page
        # cache turns that into disk reads. 128 MiB keeps it in memory, within budget.
        await conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        await conn.execute("PRAGMA temp_store = MEMORY")
        # Checkpoint every ~32 MiB of WAL instead of 4 MiB: each checkpoint syncs the file,
        # and a sizing run writes gigabytes.
        await conn.execute("PRAGMA wal_autocheckpoint = 8192")
        await conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")  # indexes of 1M rows stay hot
        if migrate:
            await migrations.migrate(conn)
    except BaseException:
        await conn.close()
        os.close(lock_fd)
        raise
    return Store(db_path, conn, readonly=False, lock_fd=lock_fd)

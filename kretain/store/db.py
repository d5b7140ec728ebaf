"""Opening the state database: one writer process, WAL, explicit write transactions.

Functions and classes:
    open_store(path, *, readonly=False, migrate=True) -> Store     (async)
    Store.transaction() -> async context manager yielding the connection (BEGIN IMMEDIATE)
    Store.write(fn, *args) -> fn(conn, *args) as one transaction in one database-thread job
    Store.run_sync(fn, *args) -> fn(conn, *args) in one job (inside a transaction)
    Store.fetchall(sql, params=()) / Store.fetchone(sql, params=())  -> sqlite3.Row(s)
    Store.close()                                                   (async; also `async with`)
    lock_path(db_path) -> Path                                      the sidecar "<db>.lock"
    readonly_source(db_path) -> ReadonlySource(uri, note)           checked read-only open (sync)
    now() -> int                                                    Unix seconds

A writing open takes an exclusive ``fcntl.flock`` on ``<db>.lock`` (which holds "pid since") before
touching SQLite; a second kretain process gets StoreLockedError naming the holder. The path is
resolved first, so a symlink to a held database meets the same lock file. The OS drops
the lock when the holder dies, even by SIGKILL, so a killed run never blocks the next one.
Readonly opens (status/query/export) take no lock and open SQLite with ``mode=ro``.

Paths that cannot hold a kretain database are refused with one line (StoreError) before SQLite
sees them: a directory, a file that is not SQLite, an empty file (read-only), another
application's SQLite database (migrations.check_opening), a directory where the lock file or
SQLite's -wal/-shm cannot be created. A WAL database in a directory the reader cannot write to
(and with no -shm file there) cannot be opened with ``mode=ro`` alone; when it has no unmerged
-wal file, no writer can be using it, so it is read with ``immutable=1`` and ``Store.note`` says
so (see :func:`readonly_source`).

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
import stat
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import structlog

from kretain.errors import SchemaVersionError, StoreError, StoreLockedError
from kretain.store import migrations

T = TypeVar("T")

__all__ = [
    "BUSY_TIMEOUT_MS",
    "ReadonlySource",
    "Store",
    "lock_path",
    "now",
    "open_store",
    "readonly_source",
]

BUSY_TIMEOUT_MS = 10_000

_in_transaction: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "kretain_store_tx", default=None
)


CACHE_KIB = 128 * 1024  # SQLite page cache of a writing connection


def now() -> int:
    return int(time.time())


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


SQLITE_HEADER = b"SQLite format 3\x00"
# SQLite's answers when it cannot create -shm (read-only directory or file system).
_NO_SHM_CODES = frozenset({sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY_DIRECTORY})


def _check_path(db_path: Path, *, readonly: bool) -> None:
    """Refuse, in one line, a path that cannot hold a kretain database (before SQLite opens it:
    SQLite would create files beside a directory, or fail later with a vaguer message)."""
    parent = db_path.parent
    if not parent.exists():
        raise StoreError(f"directory {parent} does not exist (database {db_path})")
    if not parent.is_dir():
        raise StoreError(f"{parent} is not a directory (database {db_path})")
    if not db_path.exists():
        if readonly:
            raise StoreError(f"no kretain database at {db_path}")
        return
    if db_path.is_dir():
        raise StoreError(f"{db_path} is a directory, not a database file")
    if not stat.S_ISREG(db_path.stat().st_mode):
        raise StoreError(f"{db_path} is not a regular file")
    try:
        with db_path.open("rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StoreError(f"cannot read {db_path}: {exc.strerror}") from None
    if head and head != SQLITE_HEADER:
        raise StoreError(f"{db_path} is not a kretain database (not an SQLite file)")
    if not head and readonly:
        raise StoreError(
            f"{db_path} is empty: not a kretain database yet (`kretain run` creates one)"
        )


def _dir_hint(db_path: Path) -> str:
    if os.access(db_path.parent, os.W_OK):
        return ""
    return (
        f" ({db_path.parent} is not writable: a writer needs to create {db_path.name}-wal, "
        f"{db_path.name}-shm and {lock_path(db_path).name} there)"
    )


@dataclass(frozen=True)
class ReadonlySource:
    """How to open a checked database read-only: the SQLite URI, and a note for the user."""

    uri: str
    note: str | None = None


def _inspect(uri: str) -> tuple[int, list[str]]:
    """(user_version, table names) read through a short-lived connection."""
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = [row[0] for row in conn.execute(migrations.USER_TABLES_SQL)]
    finally:
        conn.close()
    return version, tables


def _probe(uri: str, db_path: Path) -> None:
    version, tables = _inspect(uri)
    problem = migrations.opening_problem(version, tables, readonly=True)
    if problem is not None:
        raise StoreError(f"{db_path} {problem}")
    if version > migrations.SCHEMA_VERSION:
        raise SchemaVersionError(
            f"database schema version {version} is newer than this kretain supports "
            f"({migrations.SCHEMA_VERSION}); upgrade kretain"
        )


def readonly_source(path: str | os.PathLike[str]) -> ReadonlySource:
    """Check that ``path`` is a kretain database and say how to open it read-only.

    Raises StoreError (one line) for anything that is not a readable kretain database,
    SchemaVersionError when it is newer than this code.
    """
    db_path = Path(path).expanduser().resolve()
    _check_path(db_path, readonly=True)
    uri = f"{db_path.as_uri()}?mode=ro"
    try:
        _probe(uri, db_path)
        return ReadonlySource(uri)
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode not in _NO_SHM_CODES:
            raise StoreError(f"cannot read {db_path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot read {db_path}: {exc}") from None
    # No -shm, and none can be created here. Without a -wal either, every commit is in the
    # file and no writer is active (a writer keeps -shm), so an immutable read is exact.
    wal = db_path.with_name(db_path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StoreError(
            f"cannot read {db_path}: its directory is read-only and {wal.name} holds commits "
            "not yet merged into it; copy the database with its -wal file somewhere writable"
        )
    uri = f"{db_path.as_uri()}?mode=ro&immutable=1"
    try:
        _probe(uri, db_path)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot read {db_path}: {exc}") from None
    note = f"{db_path.parent} is read-only; reading {db_path.name} as a snapshot (immutable)"
    return ReadonlySource(uri, note)


def _refuse_foreign(db_path: Path) -> None:
    """Refuse another application's database before taking the lock, so that no lock file is
    left beside its data. The check under the lock (migrations.check_opening) has the last word.
    """
    if not db_path.exists() or db_path.stat().st_size == 0:
        return
    try:
        version, tables = _inspect(f"{db_path.as_uri()}?mode=ro")
    except sqlite3.Error:
        return  # reported by the open under the lock, with the directory hint
    problem = migrations.opening_problem(version, tables, readonly=False)
    if problem is not None:
        raise StoreError(f"{db_path} {problem}")


def _take_lock(db_path: Path) -> int:
    """flock the sidecar lock file; return its fd, or raise StoreLockedError naming the holder."""
    path = lock_path(db_path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(
            f"cannot create the lock file {path}: {exc.strerror}{_dir_hint(db_path)}"
        ) from None
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


# State events a transaction wrote, by connection, handed to the run log after COMMIT (and
# dropped on ROLLBACK): a log line never tells of a move that did not happen.
_outbox: dict[int, list[tuple[Any, ...]]] = {}
_moves_log = structlog.get_logger("kretain.entries")


def after_commit(conn: sqlite3.Connection, events: Sequence[tuple[Any, ...]]) -> None:
    """Queue ``events`` rows (time, run_id, entry_id, asset_id, kind, from, to, action,
    outcome, detail) to be logged once the current transaction on ``conn`` commits."""
    _outbox.setdefault(id(conn), []).extend(events)


def _log_committed(events: list[tuple[Any, ...]]) -> None:
    for _time, run_id, entry_id, _asset, _kind, before, after, action, outcome, detail in events:
        _moves_log.info(
            "entry moved",
            run_id=run_id,
            entry_id=entry_id,
            from_state=before,
            to_state=after,
            action=action,
            outcome=outcome,
            detail=detail,
        )


def _one_transaction(
    conn: sqlite3.Connection, fn: Callable[..., T], *args: Any
) -> tuple[T, list[tuple[Any, ...]]]:
    _outbox.pop(id(conn), None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn, *args)
        conn.execute("COMMIT")
    except BaseException:
        _outbox.pop(id(conn), None)
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result, _outbox.pop(id(conn), [])


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
        self.note: str | None = None  # for the user: how a read-only open had to be made

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
            raw = id(self.conn._conn)
            try:
                try:
                    # Inside the try: if we are cancelled while BEGIN is queued, it still runs
                    # on aiosqlite's thread, and must be rolled back.
                    _outbox.pop(raw, None)
                    await self.conn.execute("BEGIN IMMEDIATE")
                    yield self.conn
                    await self.conn.execute("COMMIT")
                except BaseException:
                    _outbox.pop(raw, None)
                    await self._rollback_quietly()
                    raise
            finally:
                _in_transaction.reset(token)
            _log_committed(_outbox.pop(raw, []))

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
            result, events = await self.run_sync(_one_transaction, fn, *args)
        _log_committed(events)
        return result

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

    readonly=True: the file must exist; no lock is taken; SQLite opens with mode=ro (or
    immutable, see the module docstring).
    Raises StoreLockedError when another process holds the database for writing, StoreError
    (one line) when the path cannot be a kretain database, SchemaVersionError when too new.
    """
    # Resolved, so that every name of one file (a symlink, "a/../b") takes the same lock file.
    db_path = Path(path).expanduser().resolve()
    if readonly:
        source = readonly_source(db_path)
        conn = await aiosqlite.connect(source.uri, uri=True, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except BaseException:
            await conn.close()
            raise
        store = Store(db_path, conn, readonly=True, lock_fd=None)
        store.note = source.note
        return store

    _check_path(db_path, readonly=False)
    _refuse_foreign(db_path)
    lock_fd = _take_lock(db_path)
    try:
        conn = await aiosqlite.connect(str(db_path), isolation_level=None)
    except BaseException:
        os.close(lock_fd)
        raise
    conn.row_factory = sqlite3.Row
    try:
        # Before any PRAGMA that writes (journal_mode changes the file header).
        await migrations.check_opening(conn)
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
    except BaseException as exc:
        await conn.close()
        os.close(lock_fd)
        if isinstance(exc, sqlite3.DatabaseError):
            message = f"cannot open {db_path} for writing: {exc}{_dir_hint(db_path)}"
            raise StoreError(message) from None
        raise
    return Store(db_path, conn, readonly=False, lock_fd=lock_fd)

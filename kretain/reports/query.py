"""Read-only SQL over the state database, safe to run while `kretain run` writes to it.

Names:
    run_query(db_path, sql, params=()) -> Table        (async; rows streamed from a cursor)
    open_readonly(db_path) -> sqlite3.Connection       mode=ro URI, query_only=1
    connect_readonly(db_path) -> (connection, note)    the same, with the immutable-open note
    stream(conn, sql, params=(), convert=None) -> Iterator[tuple]
        execute now (errors surface at once), then yield rows lazily; closes ``conn`` at the end
    sigint_stops_queries() -> context manager: Ctrl-C stops the running statement
    ReportError > QueryError > ReadOnlyQueryError   (exit code 1, one line for the user)
                  QueryError > QueryInterrupted      (exit code 130)

Three independent guards keep `kretain query` from writing: the file is opened with
``file:...?mode=ro`` (SQLite itself refuses writes), ``PRAGMA query_only = 1``, and an
authorizer that allows only reads (SELECT, table/column reads, functions, recursive CTEs and a
list of read-only PRAGMAs). The statement must also start with SELECT, WITH, VALUES, EXPLAIN or
PRAGMA: VACUUM INTO writes a new file without any authorizer action of its own. The authorizer
gives the user a clear "refused: INSERT into entries" instead of SQLite's "not authorized".

Ctrl-C: inside :func:`sigint_stops_queries` (the CLI's query and export), SIGINT sets a flag
that SQLite's progress handler reads every PROGRESS_STEPS virtual-machine steps, so a statement
stops within milliseconds with QueryInterrupted (exit 130) instead of running to its end: Python
runs signal handlers only between bytecodes, never inside sqlite3_step, but the progress handler
is Python code run from inside it. A second Ctrl-C raises KeyboardInterrupt as usual.

Readers never block on a writer in WAL mode, so a report or query sees the last committed state
while a run holds a write transaction (a consistent snapshot for the whole streamed result).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from kretain.errors import KretainError, StoreError
from kretain.output import Table
from kretain.store.db import readonly_source

__all__ = [
    "QueryError",
    "QueryInterrupted",
    "ReadOnlyQueryError",
    "ReportError",
    "connect_readonly",
    "open_readonly",
    "run_query",
    "sigint_stops_queries",
    "stream",
]

BUSY_TIMEOUT_S = 10.0

Params = Sequence[Any] | Mapping[str, Any]


class ReportError(KretainError):
    """A report cannot be produced as asked (unknown state name, missing database ...)."""


class QueryError(ReportError):
    """The SQL given to `kretain query` failed (syntax, unknown table, bad parameters)."""


class ReadOnlyQueryError(QueryError):
    """The SQL would write, attach, or change a setting; `kretain query` only reads."""


class QueryInterrupted(QueryError):
    """Ctrl-C stopped the statement (see sigint_stops_queries)."""

    exit_code = 130

    def __init__(self) -> None:
        super().__init__("query interrupted (Ctrl-C)")


PROGRESS_STEPS = 100_000  # SQLite VM steps between looks at the stop flag (well under 1 ms)
_stop = threading.Event()


@contextlib.contextmanager
def sigint_stops_queries() -> Iterator[None]:
    """While active (main thread only), Ctrl-C stops the running read-only statement; the
    reader then raises QueryInterrupted. A second Ctrl-C raises KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum: int, frame: Any) -> None:
        if _stop.is_set():
            raise KeyboardInterrupt
        _stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _stop.clear()


def _interrupted(exc: sqlite3.Error) -> bool:
    return _stop.is_set() and isinstance(exc, sqlite3.OperationalError)


# PRAGMAs that may be read (no argument) and those whose argument only names what to read.
_READ_PRAGMAS = frozenset(
    {
        "application_id",
        "auto_vacuum",
        "busy_timeout",
        "cache_size",
        "collation_list",
        "compile_options",
        "data_version",
        "database_list",
        "encoding",
        "foreign_keys",
        "freelist_count",
        "function_list",
        "journal_mode",
        "module_list",
        "page_count",
        "page_size",
        "pragma_list",
        "query_only",
        "schema_version",
        "synchronous",
        "table_list",
        "temp_store",
        "user_version",
    }
)
_ARG_PRAGMAS = frozenset(
    {
        "foreign_key_check",
        "foreign_key_list",
        "index_info",
        "index_list",
        "index_xinfo",
        "integrity_check",
        "quick_check",
        "table_info",
        "table_list",
        "table_xinfo",
    }
)
_ALLOWED_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
_ACTION_NAMES = {
    getattr(sqlite3, f"SQLITE_{name.replace(' ', '_')}"): name
    for name in (
        "CREATE INDEX",
        "CREATE TABLE",
        "CREATE TEMP INDEX",
        "CREATE TEMP TABLE",
        "CREATE TEMP TRIGGER",
        "CREATE TEMP VIEW",
        "CREATE TRIGGER",
        "CREATE VIEW",
        "DELETE",
        "DROP INDEX",
        "DROP TABLE",
        "DROP TEMP INDEX",
        "DROP TEMP TABLE",
        "DROP TEMP TRIGGER",
        "DROP TEMP VIEW",
        "DROP TRIGGER",
        "DROP VIEW",
        "INSERT",
        "PRAGMA",
        "READ",
        "SELECT",
        "TRANSACTION",
        "UPDATE",
        "ATTACH",
        "DETACH",
        "ALTER TABLE",
        "REINDEX",
        "ANALYZE",
        "CREATE VTABLE",
        "DROP VTABLE",
        "FUNCTION",
        "SAVEPOINT",
        "RECURSIVE",
    )
}
_FIRST_WORDS = ("SELECT", "WITH", "VALUES", "EXPLAIN", "PRAGMA")
# Leading whitespace and comments, then the first keyword.
_LEAD_RE = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*([A-Za-z]*)", re.DOTALL)


def _describe(action: int, arg1: str | None, arg2: str | None) -> str:
    name = _ACTION_NAMES.get(action, f"action {action}")
    if action == sqlite3.SQLITE_PRAGMA:
        return f"PRAGMA {arg1} = {arg2}" if arg2 is not None else f"PRAGMA {arg1}"
    if action in (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_DELETE):
        return f"{name} {'into' if action == sqlite3.SQLITE_INSERT else 'from'} {arg1}"
    if action == sqlite3.SQLITE_UPDATE:
        return f"UPDATE of {arg1}"
    return f"{name} {arg1}" if arg1 else name


def _authorizer(refused: list[str]) -> Callable[..., int]:
    def check(action: int, arg1: str | None, arg2: str | None, db: str | None, src: Any) -> int:
        if action in _ALLOWED_ACTIONS:
            return sqlite3.SQLITE_OK
        # Eponymous virtual tables (json_each, pragma_table_info) make SQLite check this while
        # connecting them; mode=ro and query_only still stop any real schema write.
        if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master" and db == "main":
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA:
            name = (arg1 or "").lower()
            if (arg2 is None and name in _READ_PRAGMAS) or name in _ARG_PRAGMAS:
                return sqlite3.SQLITE_OK
        refused.append(_describe(action, arg1, arg2))
        return sqlite3.SQLITE_DENY

    return check


def open_readonly(db_path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A read-only connection: mode=ro URI, query_only, busy timeout. Raises ReportError."""
    return connect_readonly(db_path)[0]


def connect_readonly(db_path: str | os.PathLike[str]) -> tuple[sqlite3.Connection, str | None]:
    """open_readonly, plus the note for the user when the open had to be immutable (a database
    in a read-only directory, see kretain.store.db.readonly_source)."""
    path = Path(db_path).expanduser().absolute()
    if not path.exists():
        raise ReportError(f"no database at {path}")
    try:
        source = readonly_source(path)
    except StoreError as exc:
        raise ReportError(str(exc)) from None
    try:
        conn = sqlite3.connect(
            source.uri,
            uri=True,
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,
            check_same_thread=False,  # rows may be rendered on another thread than opened them
        )
        conn.execute("PRAGMA query_only = 1")
        conn.set_progress_handler(_stop.is_set, PROGRESS_STEPS)
    except sqlite3.Error as exc:
        raise ReportError(f"cannot open {path} read-only: {exc}") from exc
    return conn, source.note


def _rows(
    conn: sqlite3.Connection,
    cur: sqlite3.Cursor,
    convert: Callable[[tuple[Any, ...]], Sequence[Any]] | None,
) -> Iterator[Sequence[Any]]:
    try:
        while True:
            try:
                batch = cur.fetchmany(500)
            except sqlite3.Error as exc:
                if _interrupted(exc):
                    raise QueryInterrupted() from None
                raise QueryError(f"query failed while reading rows: {exc}") from exc
            if not batch:
                return
            for row in batch:
                yield convert(row) if convert else row
    finally:
        conn.close()


def stream(
    conn: sqlite3.Connection,
    sql: str,
    params: Params = (),
    convert: Callable[[tuple[Any, ...]], Sequence[Any]] | None = None,
) -> tuple[list[str], Iterator[Sequence[Any]]]:
    """Run ``sql`` now and return (headers, rows); the rows iterator closes ``conn`` when done.

    Errors in the SQL raise here, before any row is consumed; only the rows are lazy, so a
    million-row export never sits in memory.
    """
    try:
        cur = conn.execute(sql, params)
    except BaseException:
        conn.close()
        raise
    headers = [d[0] for d in cur.description or ()]
    return headers, _rows(conn, cur, convert)


def _check_first_word(sql: str) -> None:
    match = _LEAD_RE.match(sql)
    word = (match.group(1) if match else "").upper()
    if word not in _FIRST_WORDS:
        shown = word or sql.strip()[:20] or "(empty)"
        raise ReadOnlyQueryError(
            f"kretain query only reads: {shown} is refused (start with {', '.join(_FIRST_WORDS)})"
        )


async def run_query(
    db_path: str | os.PathLike[str], sql: str, params: Params = (), *, title: str | None = None
) -> Table:
    """Run one read-only statement against the database at ``db_path``; rows are streamed.

    ``params`` binds ``?`` placeholders (a sequence) or ``:name`` ones (a mapping).
    Raises ReadOnlyQueryError for anything that is not a read, QueryError for other SQL errors.
    Works while another process holds a write transaction (WAL readers do not wait).
    """
    _check_first_word(sql)
    conn, note = connect_readonly(db_path)
    refused: list[str] = []
    conn.set_authorizer(_authorizer(refused))
    try:
        headers, rows = stream(conn, sql, params)
    except sqlite3.ProgrammingError as exc:
        raise QueryError(f"query not run: {exc}") from exc
    except sqlite3.Error as exc:
        if _interrupted(exc):
            raise QueryInterrupted() from None
        if refused:
            raise ReadOnlyQueryError(f"kretain query only reads: refused {refused[0]}") from exc
        if "readonly" in str(exc) or "read-only" in str(exc):  # mode=ro / query_only caught it
            raise ReadOnlyQueryError(f"kretain query only reads: {exc}") from exc
        raise QueryError(f"query failed: {exc}") from exc
    return Table(headers=headers, rows=rows, title=title, notes=[note] if note else [])

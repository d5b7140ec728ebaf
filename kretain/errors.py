"""User-facing kretain errors, each with the process exit code the CLI uses.

The CLI turns any :class:`KretainError` into one line on stderr and ``exit(err.exit_code)``;
anything else is a bug and gets a traceback. Kaltura API/transport errors live in
``kretain.kaltura.errors``; this tree is for configuration, the state store and input data.

    KretainError                      exit 1
     ├── ConfigError                  exit 3   bad/missing settings, kretain.toml, credentials
     ├── InvalidEntryData             exit 6   wire data that cannot be stored (no id/createdAt ...)
     ├── ArchiveUnavailable           exit 7   the archive cannot be written (read-only, no room,
     │                                         permission denied, missing bucket ...)
     └── StoreError                   exit 5   the SQLite state store
          ├── StoreLockedError        exit 4   another kretain process holds the database
          ├── SchemaVersionError      exit 5   database written by a newer kretain
          ├── IllegalTransitionError  exit 5   a move not in states.ALLOWED (a bug)
          └── StateConflictError      exit 5   guarded move found rows in another state

Exit code 2 is click's usage error and is not used here.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ArchiveUnavailable",
    "ConfigError",
    "IllegalTransitionError",
    "InvalidEntryData",
    "KretainError",
    "SchemaVersionError",
    "StateConflictError",
    "StoreError",
    "StoreLockedError",
]


class KretainError(Exception):
    """Base of every error kretain reports to the user without a traceback."""

    exit_code: int = 1


class ConfigError(KretainError):
    """Settings are missing or malformed; the message is one line naming the setting."""

    exit_code = 3


class InvalidEntryData(KretainError):
    """A Kaltura object lacks a field kretain needs, or carries a value of the wrong type."""

    exit_code = 6


class ArchiveUnavailable(KretainError):
    """The archive as a whole cannot be used: the stage stops and no entry is charged for it
    (the environment is not the entry's fault).

    ``ArchiveUnavailable(message)``, or ``ArchiveUnavailable(uri, problem)`` as the archive
    targets raise it: "archive <uri> is unavailable: <problem>" (``uri`` and ``problem`` kept).
    """

    exit_code = 7

    def __init__(self, uri_or_message: str, problem: str | None = None) -> None:
        self.uri = uri_or_message if problem is not None else None
        self.problem = problem
        if problem is not None:
            super().__init__(f"archive {uri_or_message} is unavailable: {problem}")
        else:
            super().__init__(uri_or_message)


class StoreError(KretainError):
    """The state database cannot be used as asked."""

    exit_code = 5


class StoreLockedError(StoreError):
    """A second kretain process tried to open a database another one holds for writing."""

    exit_code = 4

    def __init__(self, path: str, pid: int | None, since: str | None) -> None:
        who = f"kretain pid {pid}" if pid is not None else "another kretain process"
        when = f" since {since}" if since else ""
        super().__init__(f"database {path} is in use by {who}{when}")
        self.path = path
        self.pid = pid
        self.since = since


class SchemaVersionError(StoreError):
    """The database schema is newer than this kretain understands."""


class IllegalTransitionError(StoreError):
    """A state move that ``kretain.store.states.ALLOWED`` does not permit."""


class StateConflictError(StoreError):
    """A guarded move found some rows outside the expected from-state(s); nothing moved."""

    def __init__(self, message: str, entry_ids: Sequence[str]) -> None:
        super().__init__(message)
        self.entry_ids = list(entry_ids)

"""Entry states and the table of allowed moves.

Names:
    State                      StrEnum, values stored verbatim in entries.state
    Action                     StrEnum: delete_entry | delete_flavors
    AssetBackupState           StrEnum stored in assets.backup_state
    ALLOWED                    dict[State, frozenset[State]]: from-state -> states it may move to
    TERMINAL                   states no worker leaves on its own (deleted)
    STATE_TIMESTAMP            state -> per-state timestamp column stamped on arrival
    is_allowed(a, b) -> bool
    check_move(a, b)           raises IllegalTransitionError

Life of a row (``action`` decides the path):

    delete_entry:   candidate -> sized -> downloading -> archived -> deleting -> deleted
    delete_flavors: candidate -> sized -> deleting -> deleted          (no backup needed)

    side states: exempt (an exemption applies), kept (no longer qualifies; reason recorded),
    error (a lookup failed; fail closed, retried next run), failed (backup/delete failed;
    attempts + last_error, retried up to a limit), gone (vanished from Kaltura).

Workers claim rows with a lease (candidate/sized/failed -> downloading/deleting); when a lease
expires the row returns to ``lease_from_state`` (see transitions.release_expired), which is why
downloading -> sized/failed and deleting -> sized/archived/failed are allowed.
"""

from __future__ import annotations

from enum import StrEnum

from kretain.errors import IllegalTransitionError

__all__ = [
    "ALLOWED",
    "STATE_TIMESTAMP",
    "TERMINAL",
    "Action",
    "AssetBackupState",
    "State",
    "check_move",
    "is_allowed",
]


class State(StrEnum):
    CANDIDATE = "candidate"
    SIZED = "sized"
    DOWNLOADING = "downloading"
    ARCHIVED = "archived"
    DELETING = "deleting"
    DELETED = "deleted"
    EXEMPT = "exempt"
    KEPT = "kept"
    ERROR = "error"
    FAILED = "failed"
    GONE = "gone"


class Action(StrEnum):
    DELETE_ENTRY = "delete_entry"  # back up, then delete the entry (children cascade)
    DELETE_FLAVORS = "delete_flavors"  # delete every flavor but the source; no backup


class AssetBackupState(StrEnum):
    PENDING = "pending"
    PARTIAL = "partial"  # bytes_done > 0, download interrupted; resume with Range
    DONE = "done"  # all bytes written, not yet checked
    VERIFIED = "verified"  # size (and sha256 when known) checked; verified_at set
    FAILED = "failed"
    SKIPPED = "skipped"  # not backed up on purpose (e.g. kind excluded by settings)


S = State
# Side states reachable from any "live" state: re-evaluation and lookups can always send a row
# to kept/exempt/error/gone (fail closed).
_SIDE = frozenset({S.KEPT, S.EXEMPT, S.ERROR, S.GONE})

ALLOWED: dict[State, frozenset[State]] = {
    S.CANDIDATE: frozenset({S.SIZED, S.DOWNLOADING, S.DELETING}) | _SIDE,
    S.SIZED: frozenset({S.CANDIDATE, S.DOWNLOADING, S.DELETING}) | _SIDE,
    S.DOWNLOADING: frozenset({S.ARCHIVED, S.FAILED, S.SIZED, S.CANDIDATE}) | _SIDE,
    S.ARCHIVED: frozenset({S.DELETING, S.SIZED}) | _SIDE,
    S.DELETING: frozenset({S.DELETED, S.FAILED, S.ARCHIVED, S.SIZED, S.CANDIDATE}) | _SIDE,
    S.DELETED: frozenset(),
    S.EXEMPT: frozenset({S.CANDIDATE, S.KEPT, S.ERROR, S.GONE}),
    S.KEPT: frozenset({S.CANDIDATE, S.EXEMPT, S.ERROR, S.GONE}),
    S.ERROR: frozenset({S.CANDIDATE, S.SIZED, S.KEPT, S.EXEMPT, S.GONE}),
    S.FAILED: frozenset({S.DOWNLOADING, S.DELETING, S.SIZED, S.ARCHIVED}) | _SIDE,
    S.GONE: frozenset({S.CANDIDATE, S.KEPT, S.EXEMPT, S.ERROR}),
}

TERMINAL: frozenset[State] = frozenset({S.DELETED})

# Per-state timestamp columns stamped when a row arrives in that state.
STATE_TIMESTAMP: dict[State, str] = {
    S.SIZED: "sized_at",
    S.ARCHIVED: "archived_at",
    S.DELETED: "deleted_at",
    S.GONE: "gone_at",
}


def is_allowed(from_state: State | str, to_state: State | str) -> bool:
    """True for a move in ALLOWED, and for staying put in any non-terminal state (re-recording
    an error or failure, or updating fields: the event is still written)."""
    a, b = State(from_state), State(to_state)
    return b in ALLOWED[a] or (a == b and a not in TERMINAL)


def check_move(from_state: State | str, to_state: State | str) -> None:
    """Raise IllegalTransitionError unless from_state -> to_state is in ALLOWED."""
    if not is_allowed(from_state, to_state):
        raise IllegalTransitionError(f"state move {from_state} -> {to_state} is not allowed")

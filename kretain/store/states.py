"""Entry states and the table of allowed moves.

Names:
    State                      StrEnum, values stored verbatim in entries.state
    Action                     StrEnum: delete_entry | delete_flavors
    AssetBackupState           StrEnum stored in assets.backup_state
    ALLOWED                    dict[State, frozenset[State]]: from-state -> states it may move to
    FINISHED                   what kretain did in Kaltura: deleted, recycled, stripped, restored
    ATTEMPTS_COLUMN            failing state -> the attempts column it charges
    STATE_TIMESTAMP            state -> per-state timestamp column stamped on arrival
    is_allowed(a, b) -> bool
    check_move(a, b)           raises IllegalTransitionError

Life of a row (``action`` decides the path):

    delete_entry:   candidate -> sized -> downloading -> archived -> deleting -> deleted | recycled
                    (a rule that needs no backup: candidate -> sized -> deleting -> ...)
    delete_flavors: candidate -> sized -> deleting -> stripped     (the source stays; no backup)
    restore:        deleted | recycled | stripped -> restoring -> restored (or kept / exempt)

    side states: exempt (an exemption applies), kept (no longer qualifies; reason recorded),
    error (a lookup failed; fail closed, retried next run), gone (vanished from Kaltura),
    backup_failed / delete_failed (that stage failed for this entry: its own attempts counter
    and last_error; retried up to a limit, never by another stage).

Workers claim rows with a lease (e.g. sized -> downloading); when a lease expires the row
returns to ``lease_from_state`` (see transitions.release_expired), which is why every leased
state may move back to the states it is claimed from.
"""

from __future__ import annotations

from enum import StrEnum

from kretain.errors import IllegalTransitionError

__all__ = [
    "ALLOWED",
    "ATTEMPTS_COLUMN",
    "FINISHED",
    "STATE_TIMESTAMP",
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
    DELETED = "deleted"  # baseEntry.delete done
    RECYCLED = "recycled"  # baseEntry.recycle done: in Kaltura's recycle bin until purge_at
    STRIPPED = "stripped"  # every non-source flavor deleted; the entry stays
    RESTORING = "restoring"
    RESTORED = "restored"  # re-created from the archive (new_entry_id) or flavors rebuilt
    EXEMPT = "exempt"
    KEPT = "kept"
    ERROR = "error"
    BACKUP_FAILED = "backup_failed"
    DELETE_FAILED = "delete_failed"
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
    S.DOWNLOADING: frozenset({S.ARCHIVED, S.BACKUP_FAILED, S.SIZED, S.CANDIDATE}) | _SIDE,
    S.ARCHIVED: frozenset({S.DELETING, S.SIZED, S.CANDIDATE}) | _SIDE,
    S.DELETING: frozenset(
        {S.DELETED, S.RECYCLED, S.STRIPPED, S.DELETE_FAILED, S.ARCHIVED, S.SIZED, S.CANDIDATE}
    )
    | _SIDE,
    # A recycled entry whose bin was emptied is deleted; one restored goes through restoring.
    S.DELETED: frozenset({S.RESTORING}),
    S.RECYCLED: frozenset({S.DELETED, S.RESTORING}),
    S.STRIPPED: frozenset({S.RESTORING}),
    S.RESTORING: frozenset(
        {S.RESTORED, S.KEPT, S.EXEMPT, S.DELETED, S.RECYCLED, S.STRIPPED, S.ERROR}
    ),
    S.RESTORED: frozenset(),
    # Kept or exempt after a strip that did not finish (flavors removed): its restore.
    S.EXEMPT: frozenset({S.CANDIDATE, S.KEPT, S.ERROR, S.GONE, S.RESTORING}),
    S.KEPT: frozenset({S.CANDIDATE, S.EXEMPT, S.ERROR, S.GONE, S.RESTORING}),
    S.ERROR: frozenset({S.CANDIDATE, S.SIZED, S.KEPT, S.EXEMPT, S.GONE}),
    S.BACKUP_FAILED: frozenset({S.DOWNLOADING, S.SIZED, S.ARCHIVED, S.CANDIDATE}) | _SIDE,
    S.DELETE_FAILED: frozenset({S.DELETING, S.ARCHIVED, S.SIZED, S.CANDIDATE}) | _SIDE,
    S.GONE: frozenset({S.CANDIDATE, S.KEPT, S.EXEMPT, S.ERROR}),
}

# States a row never leaves by itself, and that discovery never re-classifies: what kretain
# did to the entry in Kaltura (only an explicit restore moves them on).
FINISHED: frozenset[State] = frozenset({S.DELETED, S.RECYCLED, S.STRIPPED, S.RESTORED})

# Per-state timestamp columns stamped when a row arrives in that state.
STATE_TIMESTAMP: dict[State, str] = {
    S.SIZED: "sized_at",
    S.ARCHIVED: "archived_at",
    S.DELETED: "deleted_at",
    S.RECYCLED: "recycled_at",
    S.STRIPPED: "stripped_at",
    S.RESTORED: "restored_at",
    S.GONE: "gone_at",
}

# The attempts counter a failure in each state charges (failed lookups charge `attempts`).
ATTEMPTS_COLUMN: dict[State, str] = {
    S.ERROR: "attempts",
    S.BACKUP_FAILED: "backup_attempts",
    S.DELETE_FAILED: "delete_attempts",
}


def is_allowed(from_state: State | str, to_state: State | str) -> bool:
    """True for a move in ALLOWED, and for staying put in any state that is not finished
    (re-recording an error or failure, or updating fields: the event is still written)."""
    a, b = State(from_state), State(to_state)
    return b in ALLOWED[a] or (a == b and a not in FINISHED)


def check_move(from_state: State | str, to_state: State | str) -> None:
    """Raise IllegalTransitionError unless from_state -> to_state is in ALLOWED."""
    if not is_allowed(from_state, to_state):
        raise IllegalTransitionError(f"state move {from_state} -> {to_state} is not allowed")

"""kretain's state store: every entry is a row in SQLite that moves through states.

Modules (each docstring lists its functions):
    db           open_store(path, *, readonly=False) -> Store; Store.transaction(); the writer lock
    migrations   schema versions via PRAGMA user_version; kretain/schema.sql is the current schema
    states       State, Action, AssetBackupState, ALLOWED moves
    transitions  the only writer of state: admit, move, move_many, claim, leases, events
    queries      reads and non-state writes: assets, runs, discovery windows, status counts
    models       EntryRow/AssetRow/RunRow, wire -> column conversion
"""

from kretain.store.db import Store, open_store
from kretain.store.models import AssetRow, EntryRow, RunRow
from kretain.store.states import ALLOWED, Action, AssetBackupState, State

__all__ = [
    "ALLOWED",
    "Action",
    "AssetBackupState",
    "AssetRow",
    "EntryRow",
    "RunRow",
    "State",
    "Store",
    "open_store",
]

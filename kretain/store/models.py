"""Typed rows of the state store and the checked conversion of wire objects into columns.

Names:
    EntryRow.from_row(row) -> EntryRow          a frozen view of one `entries` row
    AssetRow.from_row(row) -> AssetRow
    RunRow.from_row(row) -> RunRow
    entry_fields_from_wire(obj) -> dict          wire entry -> `entries` metadata columns
    parse_asset(kind, obj, *, owner=None) -> rules.Asset   (errors as InvalidEntryData)
    asset_columns(asset, *, top_entry, is_source) -> dict  a parsed asset -> `assets` columns
    scrub_secrets(obj) -> obj                    drop ks/secret/token keys, mask /ks/<x> in URLs
    ENTRY_METADATA_COLUMNS, ASSET_METADATA_COLUMNS

The checks themselves are kretain.rules' (one rulebook); this module maps them to columns.
Wire data is hostile until checked: a missing id or createdAt, an id that is not a plain Kaltura
id, or a field of the wrong type raises InvalidEntryData with one clear line; nothing is guessed.
In particular a malformed lastPlayedAt is an error, never "never played".
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from kretain import rules
from kretain.errors import InvalidEntryData
from kretain.store.states import Action, AssetBackupState, State

__all__ = [
    "ASSET_METADATA_COLUMNS",
    "ENTRY_METADATA_COLUMNS",
    "AssetRow",
    "EntryRow",
    "RunRow",
    "asset_columns",
    "entry_fields_from_wire",
    "parse_asset",
    "scrub_secrets",
]

QUIZ_CAPABILITY = "quiz.quiz"
EXTERNAL_MEDIA_TYPE = "externalMedia.externalMedia"
_SECRET_KEY_RE = re.compile(r"(^ks$|secret|token|password|privileges)", re.IGNORECASE)
_KS_IN_URL_RE = re.compile(r"(/ks/)[^/?#]+|([?&]ks=)[^&#]+", re.IGNORECASE)

# Metadata columns of `entries` that entry_fields_from_wire fills (and an upsert may overwrite).
ENTRY_METADATA_COLUMNS: tuple[str, ...] = (
    "id",
    "partner_id",
    "name",
    "owner",
    "creator_id",
    "media_type",
    "entry_type",
    "source_type",
    "external_source_type",
    "status",
    "created_at",
    "updated_at",
    "last_played_at",
    "plays",
    "duration",
    "parent_id",
    "root_entry_id",
    "capabilities",
    "categories",
    "categories_ids",
    "tags",
    "display_in_search",
    "raw",
    "is_quiz",
    "is_external",
)

ASSET_METADATA_COLUMNS: tuple[str, ...] = (
    "id",
    "owner_entry_id",
    "kind",
    "is_source",
    "flavor_params_id",
    "status",
    "size_bytes",
    "file_ext",
    "language",
    "tags",
    "raw",
)


def _field(obj: Mapping[str, Any], read: Any, name: str, **kw: Any) -> Any:
    """``read(obj[name])`` with the entry's id in the error (one clear line)."""
    try:
        return read(obj.get(name), name, **kw)
    except rules.WireValueError as exc:
        obj_id = obj.get("id")
        who = f"entry {obj_id}" if rules.is_valid_id(obj_id) else "object"
        raise InvalidEntryData(f"{who}: {exc}") from None


def _check_id(value: Any, what: str) -> str:
    try:
        return rules.check_id(value, what)
    except rules.WireValueError as exc:
        raise InvalidEntryData(str(exc)) from None


@functools.lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    return _SECRET_KEY_RE.search(key) is not None


def scrub_secrets(obj: Any) -> Any:
    """A copy of ``obj`` without secret-looking keys, and with KS values in URLs masked."""
    if isinstance(obj, Mapping):
        return {str(k): scrub_secrets(v) for k, v in obj.items() if not _secret_key(str(k))}
    if isinstance(obj, list | tuple):
        return [scrub_secrets(v) for v in obj]
    if isinstance(obj, str) and "ks" in obj.lower():
        return _KS_IN_URL_RE.sub(lambda m: (m.group(1) or m.group(2)) + "REDACTED", obj)
    return obj


# Anything in serialized JSON that scrub_secrets could change: a secret-looking key or a KS
# in a URL. Most objects have neither, and the recursive scrub is the costliest step of
# storing an asset, so it runs only when one of these substrings is present.
_MAYBE_SECRET = ('"ks"', "secret", "token", "password", "privileges", "/ks/", "ks=")


def _raw_json(obj: Mapping[str, Any]) -> str:
    text = json.dumps(obj, ensure_ascii=False, default=str)
    lowered = text.lower()
    if not any(marker in lowered for marker in _MAYBE_SECRET):
        return text
    return json.dumps(scrub_secrets(obj), ensure_ascii=False, default=str)


def _csv_has(value: str | None, item: str) -> bool:
    return value is not None and item in {p.strip() for p in value.split(",")}


def entry_fields_from_wire(obj: Any) -> dict[str, Any]:
    """Check and convert one wire entry (dict with Kaltura names) into `entries` columns.

    Raises InvalidEntryData (one line) when id or createdAt is missing or anything is mistyped.
    ``plays`` stays None when the object carries no play data (non-playable types): policy then
    treats last play as unknown (fail closed) rather than "never played".
    A lastPlayedAt of 0 is Kaltura's stored NULL and becomes None (never played).
    """
    if not isinstance(obj, Mapping):
        raise InvalidEntryData(f"entry must be an object, got {type(obj).__name__}")
    entry_id = _check_id(obj.get("id"), "entry")
    for name in ("parentEntryId", "rootEntryId"):
        if obj.get(name) not in (None, ""):
            _check_id(obj.get(name), f"entry {entry_id} {name}")
    wint, wstr, wenum = rules.wire_int, rules.wire_str, rules.wire_enum
    entry_type = _field(obj, wenum, "type")
    capabilities = _field(obj, wstr, "capabilities")
    created = _field(obj, wint, "createdAt", time=True)
    if created is None:
        raise InvalidEntryData(f"entry {entry_id}: field 'createdAt' must be present, got None")
    status = _field(obj, wenum, "status")
    if status is None:
        raise InvalidEntryData(f"entry {entry_id}: field 'status' must be present, got None")
    return {
        "id": entry_id,
        "partner_id": _field(obj, wint, "partnerId"),
        "name": _field(obj, wstr, "name"),
        "owner": _field(obj, wstr, "userId"),
        "creator_id": _field(obj, wstr, "creatorId"),
        "media_type": _field(obj, wint, "mediaType"),
        "entry_type": entry_type,
        "source_type": _field(obj, wenum, "sourceType"),
        "external_source_type": _field(obj, wenum, "externalSourceType"),
        "status": status,
        "created_at": created,
        "updated_at": _field(obj, wint, "updatedAt", time=True),
        "last_played_at": _field(obj, wint, "lastPlayedAt", time=True) or None,
        "plays": _field(obj, wint, "plays"),
        "duration": _field(obj, wint, "duration"),
        "parent_id": _field(obj, wstr, "parentEntryId") or None,
        "root_entry_id": _field(obj, wstr, "rootEntryId") or None,
        "capabilities": capabilities,
        "categories": _field(obj, wstr, "categories"),
        "categories_ids": _field(obj, wstr, "categoriesIds"),
        "tags": _field(obj, wstr, "tags"),
        "display_in_search": _field(obj, wint, "displayInSearch"),
        "raw": _raw_json(obj),
        "is_quiz": int(_csv_has(capabilities, QUIZ_CAPABILITY)),
        "is_external": int(
            entry_type == EXTERNAL_MEDIA_TYPE
            or obj.get("objectType") == "KalturaExternalMediaEntry"
        ),
    }


def parse_asset(kind: str, obj: Any, *, owner: str | None = None) -> rules.Asset:
    """rules.parse_asset with errors as InvalidEntryData (one clear line)."""
    try:
        return rules.parse_asset(kind, obj, owner=owner)
    except rules.WireValueError as exc:
        raise InvalidEntryData(str(exc)) from None


def asset_columns(asset: rules.Asset, *, top_entry: str, is_source: bool) -> dict[str, Any]:
    """`assets` metadata columns of a parsed asset filed under ``top_entry``; its owner is
    recorded only when a child entry owns it. ``is_source`` comes from rules.find_source
    over the owner's flavors, never from one asset alone."""
    return {
        "id": asset.id,
        "owner_entry_id": None if asset.owner == top_entry else asset.owner,
        "kind": asset.kind,
        "is_source": int(is_source),
        "flavor_params_id": asset.flavor_params_id,
        "status": asset.status,
        "size_bytes": asset.size_bytes,
        "file_ext": asset.file_ext,
        "language": asset.language,
        "tags": asset.tags_text,
        "raw": _raw_json(asset.raw),
    }


def _row_dict(row: sqlite3.Row | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(row, sqlite3.Row):
        # By position: a Row looks a name up by scanning its columns, so name by name
        # costs columns^2 compares (a claim of 150 entries spent ~10 ms here).
        return dict(zip(row.keys(), row, strict=True))
    return dict(row)


@dataclass(frozen=True, slots=True)
class EntryRow:
    """One row of `entries`. ``raw`` is the JSON text of the last fetched wire object."""

    id: str
    created_at: int
    state: State
    state_changed_at: int
    discovered_at: int
    partner_id: int | None = None
    name: str | None = None
    owner: str | None = None
    creator_id: str | None = None
    media_type: int | None = None
    entry_type: str | None = None
    source_type: str | None = None
    external_source_type: str | None = None
    status: str | None = None
    updated_at: int | None = None
    last_played_at: int | None = None
    plays: int | None = None
    duration: int | None = None
    parent_id: str | None = None
    root_entry_id: str | None = None
    capabilities: str | None = None
    categories: str | None = None
    categories_ids: str | None = None
    tags: str | None = None
    display_in_search: int | None = None
    raw: str | None = field(default=None, repr=False)
    is_quiz: bool = False
    is_external: bool = False
    policy: str | None = None
    action: Action | None = None
    reason: str | None = None
    sized_at: int | None = None
    archived_at: int | None = None
    deleted_at: int | None = None
    gone_at: int | None = None
    attempts: int = 0
    backup_attempts: int = 0
    delete_attempts: int = 0
    last_error: str | None = None
    lease_owner: int | None = None
    lease_expires_at: int | None = None
    lease_from_state: State | None = None
    bytes_total: int | None = None
    bytes_saved: int | None = None
    asset_count: int | None = None
    last_seen_run: int | None = None
    refreshed_at: int | None = None
    exempt_by: str | None = None
    delete_mode: str | None = None
    archive_uri: str | None = None
    recycled_at: int | None = None
    purge_at: int | None = None
    stripped_at: int | None = None
    bytes_freed: int | None = None
    held_reason: str | None = None
    held_at: int | None = None
    notified_at: int | None = None
    restored_at: int | None = None
    new_entry_id: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row | Mapping[str, Any]) -> EntryRow:
        # Keys become the dataclass's own field-name strings: keyword arguments then match
        # their parameters by identity, not by comparing ~50 strings against ~50 names.
        known = _ENTRY_ROW_FIELDS
        d = {known[k]: v for k, v in _row_dict(row).items() if k in known}
        d["state"] = State(d["state"])
        if d.get("action") is not None:
            d["action"] = Action(d["action"])
        if d.get("lease_from_state") is not None:
            d["lease_from_state"] = State(d["lease_from_state"])
        d["is_quiz"] = bool(d.get("is_quiz"))
        d["is_external"] = bool(d.get("is_external"))
        return cls(**d)

    def wire(self) -> dict[str, Any]:
        """The last fetched wire object (for entry.json), {} if none was stored."""
        return json.loads(self.raw) if self.raw else {}


_ENTRY_ROW_FIELDS = {f.name: f.name for f in fields(EntryRow)}


@dataclass(frozen=True, slots=True)
class AssetRow:
    id: str
    entry_id: str
    kind: str
    owner_entry_id: str | None = None
    is_source: bool = False
    flavor_params_id: int | None = None
    status: str | None = None
    size_bytes: int = 0
    file_ext: str | None = None
    language: str | None = None
    tags: str | None = None
    raw: str | None = field(default=None, repr=False)
    archive_path: str | None = None
    bytes_done: int = 0
    sha256: str | None = None
    verified_at: int | None = None
    backup_state: AssetBackupState = AssetBackupState.PENDING
    store_checksum: str | None = None
    removed_at: int | None = None

    @property
    def owner(self) -> str:
        """The entry that owns the asset: a multi-stream child, or the row's entry."""
        return self.owner_entry_id or self.entry_id

    def wire(self) -> dict[str, Any]:
        """The asset's last fetched wire object ({} if none was stored)."""
        return dict(rules.raw_json(self.raw))

    @property
    def updated_at(self) -> int | None:
        """Kaltura's updatedAt of the asset (from its wire object), when readable."""
        value = self.wire().get("updatedAt")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @classmethod
    def from_row(cls, row: sqlite3.Row | Mapping[str, Any]) -> AssetRow:
        d = _row_dict(row)
        d["is_source"] = bool(d.get("is_source"))
        d["backup_state"] = AssetBackupState(d.get("backup_state") or "pending")
        return cls(**d)


@dataclass(frozen=True, slots=True)
class RunRow:
    id: int
    started_at: int
    command: str
    status: str
    finished_at: int | None = None
    args: dict[str, Any] | None = None
    counts: dict[str, Any] | None = None
    pid: int | None = None
    as_of: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row | Mapping[str, Any]) -> RunRow:
        d = _row_dict(row)
        d["args"] = json.loads(d["args"]) if d.get("args") else None
        d["counts"] = json.loads(d["counts"]) if d.get("counts") else None
        return cls(**d)

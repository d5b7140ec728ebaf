"""Typed rows of the state store and the checked conversion of wire objects into columns.

Names:
    EntryRow.from_row(row) -> EntryRow          a frozen view of one `entries` row
    AssetRow.from_row(row) -> AssetRow
    RunRow.from_row(row) -> RunRow
    DiscoveryWindow (dataclass)                  one createdAt window of discovery
    entry_fields_from_wire(obj) -> dict          wire entry -> `entries` metadata columns
    asset_fields_from_wire(kind, obj, *, owner_entry_id=None) -> dict
                                                 wire asset -> `assets` metadata columns
    bytes_saved_for(action, assets) -> int       what an action frees (flavors only, like the seed)
    scrub_secrets(obj) -> obj                    drop ks/secret/token keys, mask /ks/<x> in URLs
    ENTRY_METADATA_COLUMNS, ASSET_METADATA_COLUMNS

Wire data is hostile until checked: a missing id or createdAt, an id that is not a plain Kaltura
id, or a field of the wrong type raises InvalidEntryData with one clear line; nothing is guessed.
In particular a malformed lastPlayedAt is an error, never "never played".
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from kretain.errors import InvalidEntryData
from kretain.store.states import Action, AssetBackupState, State

__all__ = [
    "ASSET_METADATA_COLUMNS",
    "ENTRY_METADATA_COLUMNS",
    "AssetRow",
    "DiscoveryWindow",
    "EntryRow",
    "RunRow",
    "asset_fields_from_wire",
    "bytes_saved_for",
    "entry_fields_from_wire",
    "scrub_secrets",
]

QUIZ_CAPABILITY = "quiz.quiz"
EXTERNAL_MEDIA_TYPE = "externalMedia.externalMedia"
ASSET_KINDS = ("flavor", "caption", "attachment", "thumb")

_ID_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_MAX_TIME = 1 << 40  # far beyond any real Unix time; rejects garbage like 1e300
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


def _bad(obj_id: Any, name: str, value: Any, expected: str) -> InvalidEntryData:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    who = f"entry {obj_id}" if isinstance(obj_id, str) and _ID_RE.match(obj_id) else "object"
    return InvalidEntryData(f"{who}: field {name!r} must be {expected}, got {shown}")


def _int(obj: Mapping[str, Any], name: str, *, required: bool = False, time: bool = False):
    value = obj.get(name)
    if value is None or value == "":
        if required:
            raise _bad(obj.get("id"), name, value, "present")
        return None
    if isinstance(value, bool):
        raise _bad(obj.get("id"), name, value, "an integer")
    if isinstance(value, int):
        out = value
    elif isinstance(value, float) and value.is_integer():
        out = int(value)
    elif isinstance(value, str) and re.fullmatch(r"-?\d{1,19}", value.strip()):
        out = int(value.strip())
    else:
        raise _bad(obj.get("id"), name, value, "an integer")
    if time and not (0 <= out < _MAX_TIME):
        raise _bad(obj.get("id"), name, value, "a Unix time")
    if not time and abs(out) >= 1 << 63:
        raise _bad(obj.get("id"), name, value, "a 64-bit integer")
    return out


def _str(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _bad(obj.get("id"), name, value, "a string")
    return str(value)


def _enum(obj: Mapping[str, Any], name: str) -> str | None:
    """Core enums arrive as ints, plugin enums as strings; store both as text."""
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _bad(obj.get("id"), name, value, "an enum value")
    return str(value).strip()


def _bool(obj: Mapping[str, Any], name: str) -> bool:
    value = obj.get(name)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "0", "false", ""):
        return value.strip().lower() in ("1", "true")
    raise _bad(obj.get("id"), name, value, "a boolean")


def _check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        shown = repr(value)[:60]
        raise InvalidEntryData(f"{what} has a missing or malformed id: {shown}")
    return value


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
    last_played = _int(obj, "lastPlayedAt", time=True)
    entry_type = _enum(obj, "type")
    capabilities = _str(obj, "capabilities")
    fields_ = {
        "id": entry_id,
        "partner_id": _int(obj, "partnerId"),
        "name": _str(obj, "name"),
        "owner": _str(obj, "userId"),
        "creator_id": _str(obj, "creatorId"),
        "media_type": _int(obj, "mediaType"),
        "entry_type": entry_type,
        "source_type": _enum(obj, "sourceType"),
        "external_source_type": _enum(obj, "externalSourceType"),
        "status": _enum(obj, "status"),
        "created_at": _int(obj, "createdAt", required=True, time=True),
        "updated_at": _int(obj, "updatedAt", time=True),
        "last_played_at": last_played or None,
        "plays": _int(obj, "plays"),
        "duration": _int(obj, "duration"),
        "parent_id": _str(obj, "parentEntryId") or None,
        "root_entry_id": _str(obj, "rootEntryId") or None,
        "capabilities": capabilities,
        "categories": _str(obj, "categories"),
        "categories_ids": _str(obj, "categoriesIds"),
        "tags": _str(obj, "tags"),
        "display_in_search": _int(obj, "displayInSearch"),
        "raw": _raw_json(obj),
        "is_quiz": int(_csv_has(capabilities, QUIZ_CAPABILITY)),
        "is_external": int(
            entry_type == EXTERNAL_MEDIA_TYPE
            or obj.get("objectType") == "KalturaExternalMediaEntry"
        ),
    }
    if fields_["status"] is None:
        raise _bad(entry_id, "status", None, "present")
    return fields_


def asset_fields_from_wire(
    kind: str, obj: Any, *, owner_entry_id: str | None = None
) -> dict[str, Any]:
    """Check and convert one wire asset into `assets` metadata columns.

    size_bytes = sizeInBytes when > 0, else size (KB) x 1024. is_source = isOriginal, or
    flavorParamsId 0 on a flavor. ``owner_entry_id`` is set when a child entry owns the asset.
    """
    if kind not in ASSET_KINDS:
        raise InvalidEntryData(f"unknown asset kind {kind!r}")
    if not isinstance(obj, Mapping):
        raise InvalidEntryData(f"{kind} asset must be an object, got {type(obj).__name__}")
    asset_id = _check_id(obj.get("id"), f"{kind} asset")
    size_in_bytes = _int(obj, "sizeInBytes") or 0
    size_kb = obj.get("size")
    if size_kb is not None and (isinstance(size_kb, bool) or not isinstance(size_kb, int | float)):
        size_kb = _int(obj, "size")
    if size_in_bytes < 0 or (size_kb is not None and size_kb < 0):
        raise _bad(asset_id, "size", size_kb, "a non-negative size")
    size_bytes = size_in_bytes if size_in_bytes > 0 else int((size_kb or 0) * 1024)
    flavor_params_id = _int(obj, "flavorParamsId")
    language = _str(obj, "languageCode") or _str(obj, "language")
    return {
        "id": asset_id,
        "owner_entry_id": owner_entry_id,
        "kind": kind,
        "is_source": int(kind == "flavor" and (_bool(obj, "isOriginal") or flavor_params_id == 0)),
        "flavor_params_id": flavor_params_id,
        "status": _enum(obj, "status"),
        "size_bytes": size_bytes,
        "file_ext": _str(obj, "fileExt"),
        "language": language,
        "tags": _str(obj, "tags"),
        "raw": _raw_json(obj),
    }


def bytes_saved_for(action: str | None, assets: Iterable[Mapping[str, Any] | AssetRow]) -> int:
    """Bytes an action frees, children's assets included (transitions.BYTES_SAVED_SQL in SQL).

    delete_entry: every asset (flavors, captions, attachments, thumbnails);
    delete_flavors: every non-source flavor; no action: 0.
    """
    if action is None:
        return 0
    total = 0
    for a in assets:
        kind = a["kind"] if isinstance(a, Mapping) else a.kind
        is_source = a["is_source"] if isinstance(a, Mapping) else a.is_source
        size = a["size_bytes"] if isinstance(a, Mapping) else a.size_bytes
        if action == Action.DELETE_FLAVORS and (kind != "flavor" or is_source):
            continue
        total += int(size or 0)
    return total


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


@dataclass(slots=True)
class DiscoveryWindow:
    """One createdAt window [lo, hi] of a discovery generation, with its resume cursor.

    ``seen_ids_at_cursor``: ids already stored whose createdAt == cursor_created_at, so the next
    page (createdAtGreaterThanOrEqual=cursor) can skip them. ``id`` None = not saved yet.
    """

    generation: int
    lo: int
    hi: int
    scope: str = "default"
    split_field: str = "createdAt"
    cursor_created_at: int | None = None
    seen_ids_at_cursor: list[str] = field(default_factory=list)
    total_count: int | None = None
    status: str = "pending"  # pending | done | failed
    pages: int = 0
    updated_at: int | None = None
    id: int | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row | Mapping[str, Any]) -> DiscoveryWindow:
        d = _row_dict(row)
        d["seen_ids_at_cursor"] = list(json.loads(d.get("seen_ids_at_cursor") or "[]"))
        return cls(**d)

"""The rulebook: kretain's business rules over parsed Kaltura data, each written once. Pure.

Every stage that decides something about an entry or an asset asks this module, so the
audit, the backup, verify, the delete stage and restore can never disagree:

    ids            is_valid_id(value), check_id(value, what)
    wire values    wire_int / wire_str / wire_enum / wire_bool (raise WireValueError)
    statuses       ENTRY_READY, ENTRY_DELETED, ENTRY_STATUS_NAMES, NON_READY_STATUSES,
                   LIVE_STATUSES_WIRE, MODERATION_STATUSES_WIRE, asset_readiness(...)
    assets         Asset (a parsed wire asset), parse_asset(kind, wire, owner=...),
                   asset_bytes(size_in_bytes, size_kb), expected_size(wire, stored)
    the source     find_source(flavors) -> SourcePick: isOriginal, then flavorParamsId 0,
                   then the ``source`` tag; otherwise the source is UNKNOWN (never "the
                   largest": a flavor strip refuses such an entry, a backup keeps the largest
                   ready flavor and says it stands in)
    bytes          bytes_freed_by(action, assets, source_known=...): what an action frees;
                   sources_known(assets)
    archives       archive_plan(assets, now): which assets an entry's archive holds
    plays          played_since(stored, fresh) -> the newer play, or None
    re-evaluation  recheck(stored, fresh_wire, policy, as_of) -> Recheck: still qualifies /
                   kept (with reason) / exempt / gone / error
    restore        restore_plan(entry_json, id) -> RestorePlan; entry_for_add / asset_for_add
                   (what media.add and <kind>.add may carry: ENTRY_RESTORED_FIELDS, ENTRY_NOT_SENT),
                   restore_reference, restore_note, not_recreatable, in_recycle_bin,
                   is_default_thumb, upload_chunks, RESTORED_EXEMPTION, RESTORED_TAG

"Fail closed" is the common thread: a value that cannot be read, a lookup that failed or a
source that cannot be named never makes an entry act-able.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kretain.policy import Decision, Policy

__all__ = [
    "ANY_DISPLAY_IN_SEARCH_WIRE",
    "ASSET_KINDS",
    "ASSET_RESTORED_FIELDS",
    "ENTRY_DELETED",
    "ENTRY_NOT_SENT",
    "ENTRY_NO_CONTENT",
    "ENTRY_READY",
    "ENTRY_RESTORED_FIELDS",
    "ENTRY_STATUS_NAMES",
    "LIVE_STATUSES_WIRE",
    "MODERATION_STATUSES_WIRE",
    "NON_READY_STATUSES",
    "RESTORED_EXEMPTION",
    "RESTORED_TAG",
    "STUCK_AFTER_DAYS",
    "UNKNOWN_SOURCE",
    "ArchivePlan",
    "Asset",
    "PlannedFile",
    "Readiness",
    "Recheck",
    "RestoreFile",
    "RestorePlan",
    "SourceBasis",
    "SourcePick",
    "Verdict",
    "WireValueError",
    "archive_plan",
    "asset_bytes",
    "asset_for_add",
    "asset_readiness",
    "bytes_freed_by",
    "bytes_stripped",
    "check_id",
    "entry_for_add",
    "expected_size",
    "find_source",
    "in_recycle_bin",
    "is_default_thumb",
    "is_valid_id",
    "not_recreatable",
    "parse_asset",
    "played_since",
    "recheck",
    "restore_note",
    "restore_plan",
    "restore_reference",
    "sources_known",
    "upload_chunks",
    "wire_bool",
    "wire_enum",
    "wire_int",
    "wire_str",
]


# ---- ids ------------------------------------------------------------------------------------

# A Kaltura object id as kretain keeps it: it goes into comma lists, URLs and file names.
_ID = re.compile(r"[A-Za-z0-9_]{1,64}")


def is_valid_id(value: Any) -> bool:
    """True for a plain Kaltura id (letters, digits, underscore; at most 64)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def check_id(value: Any, what: str) -> str:
    """``value`` if it is a valid id, else WireValueError naming ``what``."""
    if not is_valid_id(value):
        raise WireValueError(f"{what} has a missing or malformed id: {repr(value)[:60]}")
    return value


# ---- wire values ----------------------------------------------------------------------------


class WireValueError(ValueError):
    """A value from the API that kretain cannot read; the message names the field."""


_MAX_TIME = 1 << 40  # far beyond any real Unix time; rejects garbage like 1e300
_INT_TEXT = re.compile(r"-?\d{1,19}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bad(name: str, value: Any, expected: str) -> WireValueError:
    return WireValueError(f"field {name!r} must be {expected}, got {_shown(value)}")


def wire_int(value: Any, name: str, *, time: bool = False) -> int | None:
    """An int from 12, "12" or 12.0; None (or "") stays None. Booleans, text and
    out-of-range values raise WireValueError. ``time``: a Unix time (0 .. 2**40)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _bad(name, value, "an integer")
    if isinstance(value, int):
        out = value
    elif isinstance(value, float) and value.is_integer():
        out = int(value)
    elif isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        out = int(value.strip())
    else:
        raise _bad(name, value, "an integer")
    if time and not 0 <= out < _MAX_TIME:
        raise _bad(name, value, "a Unix time")
    if not time and abs(out) >= 1 << 63:
        raise _bad(name, value, "a 64-bit integer")
    return out


def wire_str(value: Any, name: str) -> str | None:
    """A string (numbers accepted, as text); None stays None; anything else is an error."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _bad(name, value, "a string")
    return str(value)


def wire_enum(value: Any, name: str) -> str | None:
    """Core enums arrive as ints, plugin enums as strings; both are kept as stripped text."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _bad(name, value, "an enum value")
    return str(value).strip()


def wire_bool(value: Any, name: str) -> bool:
    """true/false, 1/0, "1"/"0", "true"/"false" ("" and None are false)."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "0", "false", ""):
        return value.strip().lower() in ("1", "true")
    raise _bad(name, value, "a boolean")


# ---- statuses -------------------------------------------------------------------------------

ENTRY_READY = "2"
ENTRY_DELETED = "3"
ENTRY_NO_CONTENT = "7"  # media.add made it; no source attached yet
# KalturaEntryStatus names, for reasons and reports.
ENTRY_STATUS_NAMES: dict[str, str] = {
    "-2": "ERROR_IMPORTING",
    "-1": "ERROR_CONVERTING",
    "0": "IMPORT",
    "1": "PRECONVERT",
    "2": "READY",
    "3": "DELETED",
    "4": "PENDING",
    "5": "MODERATE",
    "6": "BLOCKED",
    "7": "NO_CONTENT",
}
# Every entry status except READY and DELETED, plus the virus-scan plugin's values.
NON_READY_STATUSES: tuple[str, ...] = (
    "-2",
    "-1",
    "0",
    "1",
    "4",
    "5",
    "6",
    "7",
    "virusScan.Infected",
    "virusScan.ScanFailure",
)
# Every status an entry that still exists can have: what a lookup by id must ask for, since
# Kaltura lists only READY entries unless told otherwise.
LIVE_STATUSES_WIRE = ",".join(("-2", "-1", "0", "1", ENTRY_READY, *NON_READY_STATUSES[4:]))
# Every moderation status: by default Kaltura hides pending (1) and rejected (3) entries.
MODERATION_STATUSES_WIRE = "1,2,3,4,5,6"

ASSET_KINDS: tuple[str, ...] = ("flavor", "caption", "attachment", "thumb")
# Asset statuses with a downloadable file (a flavor being exported still has its file) and
# statuses that will never have one.
_FETCHABLE = {"flavor": frozenset({2, 9})}
_FETCHABLE_OTHER = frozenset({2})
_NEVER = {"flavor": frozenset({-1, 4})}  # ERROR, NOT_APPLICABLE
_NEVER_OTHER = frozenset({-1})
# A non-ready asset untouched this long has no file and never will (a caption queued years
# ago must not block its entry's backup forever).
STUCK_AFTER_DAYS = 30


class Readiness(StrEnum):
    READY = "ready"  # its file can be downloaded now
    NEVER = "never"  # it will never have a file (ERROR, NOT_APPLICABLE, stuck)
    WAITING = "waiting"  # it may still become ready: fail closed, try again later


def asset_readiness(
    kind: str, status: str | int | None, updated_at: int | None, now: int
) -> Readiness:
    """Whether an asset's file can be fetched; ``updated_at`` tells a stuck asset."""
    try:
        code: int | None = int(str(status).strip())
    except (TypeError, ValueError):
        code = None
    if code in _FETCHABLE.get(kind, _FETCHABLE_OTHER):
        return Readiness.READY
    if code in _NEVER.get(kind, _NEVER_OTHER):
        return Readiness.NEVER
    if updated_at is not None and now - updated_at >= STUCK_AFTER_DAYS * 86_400:
        return Readiness.NEVER
    return Readiness.WAITING


# ---- assets ---------------------------------------------------------------------------------


def asset_bytes(size_in_bytes: Any, size_kb: Any) -> int:
    """An asset's bytes: ``sizeInBytes`` when > 0 (0 means unknown), else ``size`` (KB,
    possibly fractional) x 1024. Negative or unreadable sizes raise WireValueError."""
    exact = wire_int(size_in_bytes, "sizeInBytes") or 0
    kb: float | int | None
    if isinstance(size_kb, float) and not isinstance(size_kb, bool):
        kb = size_kb
    else:
        kb = wire_int(size_kb, "size")
    if exact < 0 or (kb is not None and kb < 0):
        raise _bad("size", size_kb if exact >= 0 else size_in_bytes, "a non-negative size")
    return exact if exact > 0 else int((kb or 0) * 1024)


def expected_size(wire: Mapping[str, Any], stored: int) -> tuple[int | None, int | None]:
    """What a downloaded file of the asset must hold: (exact bytes, when ``sizeInBytes`` > 0;
    the KB figure, when given). Unreadable values count as not given; a wire object with
    neither figure falls back to the ``stored`` size as exact."""
    size_in_bytes, size_kb = wire.get("sizeInBytes"), wire.get("size")
    if size_in_bytes is None and size_kb is None:
        return (stored or None), None

    def number(value: Any) -> int | None:
        if isinstance(value, bool):
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            return None

    exact = number(size_in_bytes)
    return (exact if exact and exact > 0 else None), number(size_kb)


@dataclass(frozen=True, slots=True)
class Asset:
    """One asset as Kaltura describes it, checked. ``owner`` is the entry that owns it
    (a multi-stream child owns its own assets); ``raw`` is its wire object."""

    id: str
    kind: str
    owner: str
    size_bytes: int
    status: str | None = None
    is_original: bool = False
    flavor_params_id: int | None = None
    tags: tuple[str, ...] = ()
    file_ext: str | None = None
    language: str | None = None
    updated_at: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def tags_text(self) -> str | None:
        return ",".join(self.tags) if self.tags else None


def parse_asset(kind: str, wire: Any, *, owner: str | None = None) -> Asset:
    """Check one wire asset. ``owner`` (when given) must be the asset's ``entryId``: an
    asset that names another entry is refused, never filed under the wrong one."""
    if kind not in ASSET_KINDS:
        raise WireValueError(f"unknown asset kind {kind!r}")
    if not isinstance(wire, Mapping):
        raise WireValueError(f"{kind} asset must be an object, got {type(wire).__name__}")
    asset_id = check_id(wire.get("id"), f"{kind} asset")
    entry_id = wire.get("entryId")
    if owner is not None and str(entry_id) != owner:
        raise WireValueError(f"{kind} asset {asset_id} belongs to {_shown(entry_id)}, not {owner}")
    tags = wire_str(wire.get("tags"), "tags")
    return Asset(
        id=asset_id,
        kind=kind,
        owner=owner if owner is not None else check_id(entry_id, f"{kind} asset {asset_id} entry"),
        size_bytes=asset_bytes(wire.get("sizeInBytes"), wire.get("size")),
        status=wire_enum(wire.get("status"), "status"),
        is_original=wire_bool(wire.get("isOriginal"), "isOriginal"),
        flavor_params_id=wire_int(wire.get("flavorParamsId"), "flavorParamsId"),
        tags=tuple(t.strip() for t in (tags or "").split(",") if t.strip()),
        file_ext=wire_str(wire.get("fileExt"), "fileExt"),
        language=wire_str(wire.get("languageCode"), "languageCode")
        or wire_str(wire.get("language"), "language"),
        updated_at=wire_int(wire.get("updatedAt"), "updatedAt", time=True),
        raw=wire,
    )


# ---- the source flavor ----------------------------------------------------------------------


class SourceBasis(StrEnum):
    """How the source flavor was recognised, strongest first."""

    IS_ORIGINAL = "isOriginal"
    PARAMS_ZERO = "flavorParamsId 0"
    SOURCE_TAG = "source tag"


class _FlavorLike(Protocol):
    @property
    def is_original(self) -> bool: ...
    @property
    def flavor_params_id(self) -> int | None: ...
    @property
    def tags(self) -> tuple[str, ...]: ...
    @property
    def size_bytes(self) -> int: ...


@dataclass(frozen=True, slots=True)
class SourcePick:
    """The source among one owner's flavors: ``index`` into the list given, or None when it
    cannot be named (``basis`` None: UNKNOWN)."""

    index: int | None
    basis: SourceBasis | None

    @property
    def known(self) -> bool:
        return self.index is not None


_SOURCE_TESTS: tuple[tuple[SourceBasis, Any], ...] = (
    (SourceBasis.IS_ORIGINAL, lambda f: f.is_original),
    (SourceBasis.PARAMS_ZERO, lambda f: f.flavor_params_id == 0),
    (SourceBasis.SOURCE_TAG, lambda f: any(t.lower() == "source" for t in f.tags)),
)


def find_source(flavors: Sequence[_FlavorLike]) -> SourcePick:
    """The source flavor of ONE owner (an entry or a multi-stream child): the first test
    that any flavor passes decides (isOriginal, then flavorParamsId 0, then the ``source``
    tag); among several that pass it, the largest. When no flavor passes any test the
    source is unknown: nothing is guessed."""
    for basis, test in _SOURCE_TESTS:
        hits = [i for i, f in enumerate(flavors) if test(f)]
        if hits:
            return SourcePick(max(hits, key=lambda i: flavors[i].size_bytes), basis)
    return SourcePick(None, None)


# ---- bytes ----------------------------------------------------------------------------------


class _SizedAsset(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def is_source(self) -> bool: ...
    @property
    def size_bytes(self) -> int: ...


class _OwnedAsset(_SizedAsset, Protocol):
    @property
    def owner(self) -> str: ...


def sources_known(assets: Iterable[_OwnedAsset]) -> bool:
    """True when every owner (the entry, each child) that has flavors has its source marked."""
    with_flavors: set[str] = set()
    with_source: set[str] = set()
    for a in assets:
        if a.kind == "flavor":
            with_flavors.add(a.owner)
            if a.is_source:
                with_source.add(a.owner)
    return with_flavors <= with_source


def bytes_freed_by(action: str | None, assets: Iterable[_SizedAsset], *, source_known: bool) -> int:
    """Bytes an action frees, children's assets included.

    delete_entry: every asset (flavors, captions, attachments, thumbnails).
    delete_flavors: every flavor but each owner's source; 0 when some owner's source is
    unknown, since the delete stage then refuses the entry. No action: 0.
    """
    if action is None:
        return 0
    if action == "delete_entry":
        return sum(int(a.size_bytes or 0) for a in assets)
    if action == "delete_flavors":
        if not source_known:
            return 0
        return sum(int(a.size_bytes or 0) for a in assets if a.kind == "flavor" and not a.is_source)
    raise ValueError(f"unknown action {action!r}")


class _RemovableAsset(_SizedAsset, Protocol):
    @property
    def removed_at(self) -> int | None: ...


def bytes_stripped(assets: Iterable[_RemovableAsset]) -> int:
    """Bytes a strip has freed so far: the flavors kretain deleted (``removed_at``), over every
    run that worked on the entry."""
    return sum(int(a.size_bytes or 0) for a in assets if a.kind == "flavor" and a.removed_at)


# ---- what an archive holds -----------------------------------------------------------------


class _ArchivableAsset(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def is_source(self) -> bool: ...
    @property
    def status(self) -> str | None: ...
    @property
    def size_bytes(self) -> int: ...
    @property
    def updated_at(self) -> int | None: ...


@dataclass(frozen=True)
class PlannedFile:
    """One file of an entry's archive. ``stands_in_for``: the id of the source flavor this
    flavor replaces when the source can never be downloaded, or ``"unknown source"`` when no
    flavor of its owner can be named the source (the largest ready flavor is kept then)."""

    asset: Any
    stands_in_for: str | None = None


@dataclass(frozen=True)
class ArchivePlan:
    fetch: list[PlannedFile]
    skipped: list[tuple[Any, str]]  # not archived on purpose (non-source flavors)
    unavailable: list[tuple[Any, str]]  # can never be downloaded (recorded, not blocking)
    waiting: list[tuple[Any, str]]  # not ready yet: the entry cannot be archived now


UNKNOWN_SOURCE = "unknown source"


def _unavailable_reason(a: _ArchivableAsset, now: int) -> str:
    try:
        code: int | None = int(str(a.status).strip())
    except (TypeError, ValueError):
        code = None
    if code not in _NEVER.get(a.kind, _NEVER_OTHER) and a.updated_at is not None:
        return f"status {a.status} since {day(a.updated_at)}: no file"
    return f"status {a.status}: can never be downloaded"


def archive_plan(assets: Sequence[_ArchivableAsset], now: int) -> ArchivePlan:
    """Which of an entry's assets (children's included) its archive holds.

    Per owner: the source flavor (as sizing marked it), every caption, attachment and
    thumbnail; other flavors are skipped. A source that can never be downloaded is replaced
    by the largest READY flavor of the same owner; an owner without a recognisable source
    keeps its largest READY flavor, marked as standing in. Assets that can never have a file
    are listed as unavailable; assets that may still become ready make the entry wait.
    """
    fetch: list[PlannedFile] = []
    skipped: list[tuple[Any, str]] = []
    unavailable: list[tuple[Any, str]] = []
    waiting: list[tuple[Any, str]] = []

    def readiness(a: _ArchivableAsset) -> Readiness:
        return asset_readiness(a.kind, a.status, a.updated_at, now)

    def place(a: _ArchivableAsset, stands_in_for: str | None = None) -> None:
        state = readiness(a)
        if state == Readiness.READY:
            fetch.append(PlannedFile(a, stands_in_for))
        elif state == Readiness.NEVER:
            unavailable.append((a, _unavailable_reason(a, now)))
        else:
            waiting.append((a, f"{a.kind} {a.id} not ready (status {a.status})"))

    owners: dict[str, list[_ArchivableAsset]] = {}
    for a in assets:
        if a.kind == "flavor":
            owners.setdefault(a.owner, []).append(a)
    for flavors in owners.values():
        sources = [f for f in flavors if f.is_source]
        source = sources[0] if sources else None
        ready = sorted(
            (f for f in flavors if f is not source and readiness(f) == Readiness.READY),
            key=lambda f: f.size_bytes,
        )
        stand_in: tuple[_ArchivableAsset, str] | None = None
        if source is None:
            if ready:
                stand_in = (ready[-1], UNKNOWN_SOURCE)
        elif readiness(source) == Readiness.NEVER:
            unavailable.append((source, f"source flavor {_unavailable_reason(source, now)}"))
            if ready:
                stand_in = (ready[-1], source.id)
        else:
            place(source)
        for f in flavors:
            if f is source:
                continue
            if stand_in is not None and f is stand_in[0]:
                fetch.append(PlannedFile(f, stand_in[1]))
            else:
                skipped.append((f, "not the source flavor"))
    for a in assets:
        if a.kind != "flavor":
            place(a)
    return ArchivePlan(fetch, skipped, unavailable, waiting)


# ---- plays ----------------------------------------------------------------------------------


def played_since(stored: int | None, fresh: int | None) -> int | None:
    """The fresh last-play time when it is newer than the stored one, else None.

    A stored None means "never played": any play at all is newer. 0 is Kaltura's stored
    NULL (never played)."""
    if not fresh:
        return None
    if stored is not None and fresh <= stored:
        return None
    return fresh


def day(ts: int) -> str:
    """YYYY-MM-DD (UTC) of a Unix time."""
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


# ---- re-evaluation --------------------------------------------------------------------------


class Verdict(StrEnum):
    QUALIFIES = "qualifies"  # the policy still wants the action
    KEPT = "kept"  # no rule matches now (played since, changed status ...)
    EXEMPT = "exempt"  # an exemption applies now
    GONE = "gone"  # Kaltura no longer has the entry
    ERROR = "error"  # the fresh data cannot be read: fail closed


@dataclass(frozen=True, slots=True)
class Recheck:
    """What fresh Kaltura data says about a stored row.

    ``fields``: the fresh data as `entries` columns (None for gone, or unreadable data);
    ``decision``: the policy's decision (None for gone/error before evaluation)."""

    verdict: Verdict
    reason: str
    fields: dict[str, Any] | None = None
    decision: Decision | None = None

    @property
    def acts(self) -> bool:
        return self.verdict == Verdict.QUALIFIES

    @property
    def rule(self) -> str | None:
        return self.decision.rule if self.decision is not None else None

    @property
    def action(self) -> str | None:
        return self.decision.action if self.decision is not None else None


class _StoredEntry(Protocol):
    @property
    def last_played_at(self) -> int | None: ...
    @property
    def policy(self) -> str | None: ...


GONE_REASON = "not returned by Kaltura (looked up by id): gone"
IN_BIN_REASON = "in Kaltura's recycle bin, put there by someone else: gone when the bin empties"


def recheck(
    stored: _StoredEntry,
    fresh: Mapping[str, Any] | None,
    policy: Policy,
    as_of: date | datetime | int,
    *,
    same_rule: bool = False,
) -> Recheck:
    """Re-evaluate a stored row against Kaltura's fresh object for it (None: not found).

    ``same_rule``: the row only still qualifies if the SAME rule matches (the delete stage
    acts on what was planned, backed up and noticed; a row now under another rule is kept
    and goes round again).
    """
    from kretain.errors import InvalidEntryData
    from kretain.policy import evaluate, facts_from_fields
    from kretain.store.models import entry_fields_from_wire

    if fresh is None:
        return Recheck(Verdict.GONE, GONE_REASON)
    try:
        fields = entry_fields_from_wire(fresh)
    except InvalidEntryData as exc:
        return Recheck(Verdict.ERROR, f"invalid data from Kaltura: {exc}")
    if fields["status"] == ENTRY_DELETED:
        return Recheck(Verdict.GONE, "deleted in Kaltura (status DELETED)", fields)
    if in_recycle_bin(fresh):  # a later list shows it again if someone takes it out
        return Recheck(Verdict.GONE, IN_BIN_REASON, fields)
    decision = evaluate(facts_from_fields(fields), policy, as_of)
    played = played_since(stored.last_played_at, fields["last_played_at"])
    if decision.action is None:
        if decision.incomplete:
            return Recheck(Verdict.ERROR, decision.reason, fields, decision)
        if decision.exempt_by:
            return Recheck(Verdict.EXEMPT, decision.reason, fields, decision)
        why = f"played {day(played)} since the audit" if played else decision.reason
        return Recheck(Verdict.KEPT, why, fields, decision)
    if same_rule and stored.policy is not None and decision.rule != stored.policy:
        why = f"now under rule {decision.rule}, planned under {stored.policy}: {decision.reason}"
        return Recheck(Verdict.KEPT, why, fields, decision)
    return Recheck(Verdict.QUALIFIES, decision.reason, fields, decision)


def raw_json(value: Any) -> Mapping[str, Any]:
    """A stored raw JSON text (or an already parsed object) as a mapping; {} when unusable."""
    if isinstance(value, Mapping):
        return value
    try:
        parsed = json.loads(value) if value else {}
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


# ---- restore --------------------------------------------------------------------------------
# What `kretain restore` may send to Kaltura and how it recognises what it made. The field
# lists follow the server's API objects (api_v3/lib/types/entry/KalturaBaseEntry.php,
# KalturaPlayableEntry.php, KalturaMediaEntry.php; plugins' caption and attachment assets).

RESTORED_EXEMPTION = "restored"  # Decision.exempt_by of entries a restore brought back
RESTORED_TAG = "kretain-restored"  # added to every re-created entry, so KMC can find them
MEDIA_CLIP = "1"
ENTRY_RECYCLED = -2  # displayInSearch of an entry in the recycle bin
# Every displayInSearch value (RECYCLED, SYSTEM, NONE, PARTNER_ONLY, KALTURA_NETWORK): a lookup
# that must also see recycled entries and multi-stream children asks for all of them.
ANY_DISPLAY_IN_SEARCH_WIRE = "-2,-1,0,1,2"
DISPLAY_SYSTEM = -1  # displayInSearch of a multi-stream child

# Read-only on the server (@readonly), so media.add refuses them and a re-created entry gets new
# values: the entry's id, status, times, plays, last played and sizes (the README's Restore
# section lists them; the simulator enforces them as the server does, in
# kretain/simulator/ingest.py). restore sends only ENTRY_RESTORED_FIELDS below, so none of
# them is ever sent; the originals stay in kretain's database (the old row), in the archive's
# entry.json, and in the note restore_note() appends to the description.
# Settable, and sent as they were (userId and creatorId keep the owner and the creator;
# accessControlId, scheduling, entitled users and categories keep who may see the entry: a
# restore must not widen access, so Kaltura refusing one of them fails the restore).
ENTRY_RESTORED_FIELDS: tuple[str, ...] = (
    "name",
    "description",
    "tags",
    "adminTags",
    "categories",
    "userId",
    "creatorId",
    "mediaType",
    "partnerData",
    "licenseType",
    "accessControlId",
    "startDate",
    "endDate",
    "groupId",
    "partnerSortValue",
    "entitledUsersEdit",
    "entitledUsersPublish",
    "entitledUsersView",
    "application",
    "applicationVersion",
    "creditUserName",
    "creditUrl",
    "searchProviderType",
    "searchProviderId",
    "sourceVersion",
    "blockAutoTranscript",
)
# Settable but not sent, and why (the originals stay in entry.json).
ENTRY_NOT_SENT: dict[str, str] = {
    "conversionProfileId": "the partner's current default conversion profile applies",
    "conversionQuality": "the partner's current default conversion profile applies",
    "templateEntryId": "it names another entry, which may be gone",
    "redirectEntryId": "it names another entry (often the deleted one itself)",
    "operationAttributes": "clip/trim settings would cut the restored source again",
    "msDuration": "Kaltura measures the restored content",
    "sourceType": "a restored entry is a file upload",
    "categoriesIds": "categories are sent by full name",
    "displayInSearch": "only a child's SYSTEM value (-1) is sent",
}
# What a child of a multi-stream entry may not carry (ASSIGNING_INFO_TO_ENTRY_WITH_PARENT_...).
_CHILD_FORBIDDEN = ("categories", "categoriesIds", "accessControlId", "startDate", "endDate")
# Asset fields sent on add, per kind. Not sent: ids, sizes, status, version and times
# (read-only), fileExt (Kaltura takes it from the uploaded file's name), captionParamsId and
# thumbParamsId (a new entry's own thumbnails and captions may hold those params already),
# and a caption's parentId (it names an asset of the deleted entry).
ASSET_RESTORED_FIELDS: dict[str, tuple[str, ...]] = {
    "caption": (
        "tags",
        "partnerData",
        "language",
        "label",
        "format",
        "isDefault",
        "accuracy",
        "displayOnPlayer",
    ),
    "attachment": ("tags", "partnerData", "filename", "title", "format"),
    "thumb": ("tags", "partnerData"),
}
DEFAULT_THUMB_TAG = "default_thumb"  # how the server marks the entry's default thumbnail


def restore_reference(entry_wire: Mapping[str, Any], old_id: str) -> str:
    """The referenceId a re-created entry gets, and how a lost ``media.add`` is found again
    (list by referenceId): the original's own referenceId when it had one (integrations
    key on it), else ``kretain-restore-<old id>``."""
    ref = entry_wire.get("referenceId")
    if isinstance(ref, str) and len(ref.strip()) >= 2:
        return ref
    return f"kretain-restore-{old_id}"


def not_recreatable(entry_wire: Mapping[str, Any]) -> str | None:
    """Why an entry cannot be re-created with media.add + an upload, or None when it can."""
    etype = str(entry_wire.get("type", "")).strip()
    if etype == MEDIA_CLIP:
        return None
    if entry_wire.get("objectType") == "KalturaExternalMediaEntry" or "external" in etype.lower():
        return (
            "an external (YouTube) entry has no file to upload; re-create it by hand from "
            "the metadata in its entry.json"
        )
    return f"entry type {etype or 'unknown'} is not a media clip; only media clips are re-created"


def in_recycle_bin(entry_wire: Mapping[str, Any]) -> bool:
    """Kaltura still holds the entry in its recycle bin (``baseEntry.restoreRecycled`` can
    bring it back): displayInSearch RECYCLED and not deleted."""
    try:
        shown = int(entry_wire.get("displayInSearch"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return shown == ENTRY_RECYCLED and str(entry_wire.get("status")) != ENTRY_DELETED


def restore_note(old_id: str, entry_wire: Mapping[str, Any], restored_on: int) -> str:
    """The note a re-created entry's description ends with: what Kaltura would not let a
    client carry over (the original id, creation date and plays)."""

    def read(name: str, time: bool) -> int | None:
        try:
            return wire_int(entry_wire.get(name), name, time=time)
        except WireValueError:
            return None

    created, played = read("createdAt", True), read("lastPlayedAt", True)
    plays = read("plays", False)
    facts = [f"created {day(created)}" if created else "creation date unknown"]
    facts.append(f"last played {day(played)}" if played else "never played")
    if plays is not None:
        facts.append(f"{plays} plays")
    return f"[Restored by kretain on {day(restored_on)} from entry {old_id} ({', '.join(facts)}).]"


def entry_for_add(
    entry_wire: Mapping[str, Any],
    *,
    old_id: str,
    reference_id: str,
    restored_on: int,
    parent_id: str | None = None,
) -> dict[str, Any]:
    """The fields ``media.add`` gets to re-create ``entry_wire`` (a child of ``parent_id``
    when given): ENTRY_RESTORED_FIELDS as they were, the referenceId, the restore tag and
    the description note."""
    out: dict[str, Any] = {}
    for name in ENTRY_RESTORED_FIELDS:
        value = entry_wire.get(name)
        if value is None or value == "" or isinstance(value, dict | list):
            continue
        if parent_id is not None and name in _CHILD_FORBIDDEN:
            continue
        out[name] = value
    tags = [t.strip() for t in str(out.get("tags") or "").split(",") if t.strip()]
    if RESTORED_TAG not in tags:
        tags.append(RESTORED_TAG)
    out["tags"] = ",".join(tags)
    note = restore_note(old_id, entry_wire, restored_on)
    description = str(out.get("description") or "")
    out["description"] = f"{description}\n\n{note}" if description else note
    out["referenceId"] = reference_id
    if parent_id is not None:
        out["parentEntryId"] = parent_id
        out["displayInSearch"] = DISPLAY_SYSTEM
    out.setdefault("mediaType", 1)
    return out


def asset_for_add(kind: str, asset_wire: Mapping[str, Any]) -> dict[str, Any]:
    """The fields ``<kind>Asset.add`` gets to re-create an archived asset. A thumbnail's
    default mark is not sent as a tag: the restore sets it with thumbAsset.setAsDefault
    once the thumbnails are in, as the server moves that tag itself."""
    out: dict[str, Any] = {}
    for name in ASSET_RESTORED_FIELDS[kind]:
        value = asset_wire.get(name)
        if value is None or value == "" or isinstance(value, dict | list):
            continue
        out[name] = value
    if kind == "thumb" and "tags" in out:
        kept = [t.strip() for t in str(out["tags"]).split(",") if t.strip() != DEFAULT_THUMB_TAG]
        out["tags"] = ",".join(t for t in kept if t)
        if not out["tags"]:
            del out["tags"]
    return out


def is_default_thumb(asset_wire: Mapping[str, Any]) -> bool:
    tags = wire_str(asset_wire.get("tags"), "tags") or ""
    return DEFAULT_THUMB_TAG in {t.strip() for t in tags.split(",")}


def upload_chunks(size: int, chunk_size: int) -> list[tuple[int, int]]:
    """(offset, length) of each chunk of a file of ``size`` bytes; a single empty chunk for
    an empty file (Kaltura still needs one final upload)."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    if size <= 0:
        return [(0, 0)]
    return [(off, min(chunk_size, size - off)) for off in range(0, size, chunk_size)]


@dataclass(frozen=True, slots=True)
class RestoreFile:
    """One archived file of an entry.json: what it is and how to check it."""

    asset_id: str
    owner: str  # the original entry or child that owned it
    kind: str
    file: str  # its name in the entry's archive directory
    size: int
    sha256: str
    wire: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class RestorePlan:
    """What an entry.json lets a restore re-create, per owner (the entry, then each child):
    the source file (None: the entry is re-created without content) and the other files
    (captions, attachments, thumbnails, in that order). ``skipped``: why something listed
    cannot be re-created."""

    entry_id: str
    entry: Mapping[str, Any]
    children: list[tuple[str, Mapping[str, Any]]]
    sources: dict[str, RestoreFile]
    others: dict[str, list[RestoreFile]]
    skipped: list[str]

    @property
    def files(self) -> list[RestoreFile]:
        owners = [self.entry_id, *(c for c, _ in self.children)]
        out: list[RestoreFile] = []
        for owner in owners:
            if owner in self.sources:
                out.append(self.sources[owner])
            out += self.others.get(owner, [])
        return out


_OTHER_ORDER = {"caption": 0, "attachment": 1, "thumb": 2}


def restore_plan(doc: Mapping[str, Any], entry_id: str) -> RestorePlan:
    """Read an entry.json document (written by the backup) into a RestorePlan. Raises
    WireValueError when it does not describe ``entry_id`` or a file entry is unreadable."""
    if doc.get("entry_id") != entry_id:
        raise WireValueError(f"entry.json describes {doc.get('entry_id')!r}, not {entry_id}")
    entry = doc.get("entry")
    if not isinstance(entry, Mapping) or entry.get("id") != entry_id:
        raise WireValueError("entry.json holds no metadata of the entry itself")
    skipped: list[str] = []
    children: list[tuple[str, Mapping[str, Any]]] = []
    for child in doc.get("children") or []:
        cid = child.get("id") if isinstance(child, Mapping) else None
        wire = child.get("entry") if isinstance(child, Mapping) else None
        if not is_valid_id(cid):
            skipped.append(f"a child with a malformed id {cid!r}")
        elif not isinstance(wire, Mapping):
            skipped.append(f"child {cid}: no metadata archived, not re-created")
        else:
            children.append((cid, wire))
    owners = {entry_id, *(c for c, _ in children)}
    sources: dict[str, RestoreFile] = {}
    others: dict[str, list[RestoreFile]] = {}
    for item in doc.get("files") or []:
        if not isinstance(item, Mapping):
            raise WireValueError("entry.json lists a file that is not an object")
        asset_id = check_id(item.get("asset_id"), "archived file")
        owner = item.get("owner_entry_id") or entry_id
        kind = item.get("kind")
        size = wire_int(item.get("size"), "size")
        sha = item.get("sha256")
        name = item.get("file")
        if kind not in ASSET_KINDS or size is None or size < 0:
            raise WireValueError(f"archived file {asset_id}: bad kind or size")
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise WireValueError(f"archived file {asset_id}: no sha256 recorded")
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise WireValueError(f"archived file {asset_id}: bad file name {name!r}")
        if owner not in owners:
            skipped.append(f"{kind} {asset_id}: its owner {owner} is not re-created")
            continue
        wire = item.get("asset") if isinstance(item.get("asset"), Mapping) else {}
        rf = RestoreFile(asset_id, owner, kind, name, size, sha, wire)
        if kind == "flavor":
            if owner in sources and not item.get("is_source"):
                skipped.append(f"flavor {asset_id}: {owner} has its source already")
                continue
            sources[owner] = rf
        else:
            others.setdefault(owner, []).append(rf)
    for files in others.values():
        files.sort(key=lambda f: _OTHER_ORDER[f.kind])
    return RestorePlan(entry_id, entry, children, sources, others, skipped)

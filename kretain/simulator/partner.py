"""The simulated partner: its entries and assets, held in a SQLite file.

CONTRACT (shared by the HTTP layer in server.py/services.py and by tests).
The implementation replaces every ``raise NotImplementedError`` below; the
signatures and semantics are fixed so both halves can be built at once.

Values handed in and out are *wire-shaped*: dicts whose keys are Kaltura wire
names (``createdAt``, ``lastPlayedAt``, ``objectType`` ...), null fields left
out, core enums as ints, plugin enums as strings (``"externalMedia.externalMedia"``,
``"quiz.quiz"``). Filters arrive as the nested dict the wire layer parsed from
``filter:*`` params, values still strings (e.g. ``{"objectType":
"KalturaMediaEntryFilter", "createdAtGreaterThanOrEqual": "1600000000",
"statusIn": "2,-1,7"}``); relative times are NOT yet resolved (the store does
it, with ``now``).

Errors are raised as :class:`kretain.simulator.apierrors.SimApiError`.

The ``entries`` table (read it with :meth:`Partner.sql`; one row per entry,
deleted entries kept with status 3):

- ``idx`` INTEGER PRIMARY KEY: entry index; ``ids.entry_id(idx) == id``
- ``id``, ``partner_id``, ``name``, ``description`` (NULL = none), ``user_id``, ``creator_id``
- ``type`` TEXT: "1" media clip, "5" playlist, "6" data, "7" live,
  "externalMedia.externalMedia" (YouTube); ``media_type`` (1 video, 2 image, 5 audio,
  201 live; NULL for playlist/data), ``source_type`` (1 file, 2 webcam, 32 live,
  37 lecture capture; NULL for external/playlist/data), ``external_source_type``
- ``status`` (-2,-1,0,1,2,4,7; 3 = deleted), ``moderation_status`` (1,2,3,5,6; 4 once
  deleted), ``display_in_search`` (1 normal, -1 multi-stream child, -2 recycled),
  ``prev_display_in_search``, ``recycled_at``, ``deleted_at``
- ``created_at``, ``updated_at``, ``last_played_at`` (NULL = never played), ``plays``,
  ``views``, ``duration`` (s), ``ms_duration``
- ``parent_entry_id`` (multi-stream children), ``root_entry_id`` (= id unless a quiz clone),
  ``capabilities`` ("" or "quiz.quiz"), ``categories`` / ``categories_ids`` (comma-joined
  full names / ids, NULL = none), ``tags`` (comma-joined, NULL = none)
- ``entitled_only`` 0/1: listed only with ``entitled=True`` (disableentitlement)
- asset shape: ``asset_seed``, ``n_flavors``, ``n_captions``, ``n_attachments``,
  ``n_thumbs``, ``asset_traps`` (1 = one asset has a hostile fileExt)

Assets are derived from the shape columns (generator.derive_assets); deleted
flavors live in ``asset_overlay(entry_idx, ordinal, status, deleted_at,
updated_at)``; an entry with status 3 has all its assets deleted.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kretain.simulator import generator, ids
from kretain.simulator.apierrors import SimApiError

AssetKind = Literal["flavor", "caption", "attachment", "thumb"]


@dataclass(frozen=True)
class PartnerSpec:
    """Everything that determines a synthetic partner. Same spec -> same data."""

    partner_id: int = 1_234_567
    admin_secret: str = "sim-admin-secret-0123456789abcdef"
    user_secret: str = "sim-user-secret-0123456789abcdef"
    entries: int = 2_000
    seed: int = 1
    # The partner's "now" when generating (Unix seconds). Entries span ~11 years
    # before it. Default: 2026-11-22T00:00:00Z.
    now: int = 1_795_305_600
    # Entries sharing ONE createdAt second (bulk-upload trap); 0 = none.
    burst: int = 0
    # Include hostile names / extensions / etc.
    traps: bool = True
    # Fraction of entries visible only with the disableentitlement privilege.
    entitled_fraction: float = 0.05
    # Cap on every generated file's size (None: realistic sizes, up to several GB). Tests
    # that download whole archives set it so a run moves megabytes, not gigabytes.
    max_file_bytes: int | None = None
    # FEATURE_RECYCLE_BIN partner feature.
    recycle_bin: bool = False
    # App tokens: (id, token, hashType, sessionType|None, sessionPrivileges|None, status)
    app_tokens: tuple[tuple[str, str, str, int | None, str | None, int], ...] = field(
        default=(("0_apptok01", "app-token-secret-value", "SHA256", 2, "disableentitlement", 2),)
    )


# ---------------------------------------------------------------------------
# Storage

ENTRY_COLUMNS: tuple[str, ...] = (
    *generator.ROW_COLUMNS,
    "recycled_at",
    "prev_display_in_search",
    "deleted_at",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE entries (
    idx INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    partner_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    user_id TEXT,
    creator_id TEXT,
    type TEXT NOT NULL,
    media_type INTEGER,
    source_type INTEGER,
    status INTEGER NOT NULL,
    moderation_status INTEGER NOT NULL,
    display_in_search INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_played_at INTEGER,
    plays INTEGER NOT NULL,
    views INTEGER NOT NULL,
    duration INTEGER NOT NULL,
    ms_duration INTEGER NOT NULL,
    parent_entry_id TEXT,
    root_entry_id TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    categories TEXT,
    categories_ids TEXT,
    tags TEXT,
    external_source_type TEXT,
    entitled_only INTEGER NOT NULL,
    asset_seed INTEGER NOT NULL,
    n_flavors INTEGER NOT NULL,
    n_captions INTEGER NOT NULL,
    n_attachments INTEGER NOT NULL,
    n_thumbs INTEGER NOT NULL,
    asset_traps INTEGER NOT NULL,
    recycled_at INTEGER,
    prev_display_in_search INTEGER,
    deleted_at INTEGER
);
CREATE TABLE asset_overlay (
    entry_idx INTEGER NOT NULL,
    ordinal INTEGER NOT NULL,
    status INTEGER NOT NULL,
    deleted_at INTEGER,
    updated_at INTEGER,
    PRIMARY KEY (entry_idx, ordinal)
) WITHOUT ROWID;
"""

# Built after the bulk insert (faster than maintaining them row by row).
_INDEXES = (
    "CREATE INDEX entries_created ON entries(created_at)",
    "CREATE INDEX entries_updated ON entries(updated_at)",
    "CREATE INDEX entries_last_played ON entries(last_played_at)",
    # Covering index for the default list predicates: COUNT(*) never touches rows.
    "CREATE INDEX entries_status_created ON entries(status, created_at, display_in_search,"
    " moderation_status, last_played_at, entitled_only, type)",
    "CREATE INDEX entries_parent ON entries(parent_entry_id) WHERE parent_entry_id IS NOT NULL",
)

_BATCH = 20_000
_MAX_IN = 150  # SphinxCriterion::MAX_IN_VALUES
_MAX_ASSET_ENTRIES = 500  # entryIdIn cut in filterEntriesByPartnerOrKalturaNetwork
_MAX_MATCHES = 10_000
_MAX_PAGE = 500
_DEFAULT_PAGE = 30
_MAX_RELATIVE = 315_360_000
_MEDIA_TYPES = {1, 2, 5, 201, 202, 203, 204}
_MEDIA_TYPE_IN_DEFAULT = ("1", "7", "8", generator.EXTERNAL_TYPE)

# filter objectType (lower-cased) -> level: 0 base, 1 playable, 2 media
_PLAYABLE_FILTERS = {"kalturaplayableentryfilter"}
_MEDIA_FILTERS = {
    "kalturamediaentryfilter",
    "kalturamediaentryfilterforplaylist",
    "kalturaexternalmediaentryfilter",
    "kalturaliveentryfilter",
    "kalturalivestreamentryfilter",
    "kalturalivechannelfilter",
}
_ORDER_BASE = {"createdAt": "created_at", "updatedAt": "updated_at", "name": "name"}
_ORDER_PLAYABLE = {
    "lastPlayedAt": "last_played_at",
    "plays": "plays",
    "views": "views",
    "duration": "duration",
}
_ORDER_MEDIA = {"mediaType": "media_type"}

_ASSET_FILTER_CLASS = {
    "flavor": "KalturaFlavorAssetFilter",
    "caption": "KalturaCaptionAssetFilter",
    "attachment": "KalturaAttachmentAssetFilter",
    "thumb": "KalturaThumbAssetFilter",
}
_ASSET_NOT_FOUND = {
    "flavor": "FLAVOR_ASSET_ID_NOT_FOUND",
    "caption": "CAPTION_ASSET_ID_NOT_FOUND",
    "attachment": "ATTACHMENT_ASSET_ID_NOT_FOUND",
    "thumb": "THUMB_ASSET_ID_NOT_FOUND",
}
_ASSET_OBJECT_TYPE = {
    "flavor": "KalturaFlavorAsset",
    "caption": "KalturaCaptionAsset",
    "attachment": "KalturaAttachmentAsset",
    "thumb": "KalturaThumbAsset",
}
_INT_RE = re.compile(r"\s*([+-]?\d+)")


def php_int(value: Any) -> int:
    """PHP's (int) cast of a string: leading integer, else 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    match = _INT_RE.match(str(value))
    return int(match.group(1)) if match else 0


def _csv(value: Any, limit: int | None = _MAX_IN) -> list[str]:
    items = [v.strip() for v in str(value).split(",")]
    items = [v for v in items if v]
    return items[:limit] if limit is not None else items


def _int_list(value: Any, limit: int | None = _MAX_IN) -> list[int]:
    # Non-numeric values (plugin enums we do not model) match nothing.
    return [int(v) for v in _csv(value, limit) if re.fullmatch(r"[+-]?\d+", v)]


def _placeholders(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _clean_filter(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Drop null/empty values and ``x__null`` markers (both mean 'not set')."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key.endswith("__null") or value is None or isinstance(value, Mapping):
            continue
        if isinstance(value, str) and value == "":
            continue
        out[key] = value
    return out


def _pager(pager: Mapping[str, Any]) -> tuple[int, int]:
    size_raw = pager.get("pageSize")
    size = _DEFAULT_PAGE if size_raw in (None, "") else php_int(size_raw)
    size = max(0, min(size, _MAX_PAGE))
    index_raw = pager.get("pageIndex")
    index = 1 if index_raw in (None, "") else php_int(index_raw)
    return size, max(index, 1)


def _resolve_time(value: Any, now: int) -> int:
    """kTime::getRelativeTime: small magnitudes are relative to now; 0 and -1 literal."""
    v = php_int(value)
    if v in (0, -1):
        return v
    return now + v if abs(v) <= _MAX_RELATIVE else v


_ASSET_CACHE_ENTRIES = 2_000  # entries whose derived assets are kept


class Partner:
    """One partner's data in a SQLite file; thread-safe for the server's use."""

    spec: PartnerSpec

    def __init__(self, spec: PartnerSpec, path: str, conn: sqlite3.Connection, temp: bool) -> None:
        self.spec = spec
        self.path = path
        self._conn = conn
        self._temp = temp
        self._lock = threading.RLock()
        self._dirty = self._meta("dirty") == "1"
        # Derived assets of recently listed entries: one sizing multirequest lists the same
        # entryIdIn for four asset kinds. Bounded; emptied by every mutation.
        self._asset_cache: collections.OrderedDict[int, list[generator.Asset]] = (
            collections.OrderedDict()
        )
        # The partner's clock for mutations; never before the generation's "now".
        self.clock: Callable[[], int] = lambda: max(int(time.time()), spec.now)

    # ---- lifecycle ---------------------------------------------------------
    @classmethod
    def create(
        cls, spec: PartnerSpec, path: str | None = None, *, keep_changes: bool = False
    ) -> Partner:
        """Generate (or reopen a cached generation of) the partner.

        ``path`` None -> a temp file removed on close(). Must handle 1,000,000
        entries in bounded memory (streamed generation, batched inserts).
        A cached file is reused only when it holds a complete generation of the
        same spec and has not been mutated since (``keep_changes`` True reuses
        a mutated one too, e.g. to restart a simulator over the same state).
        """
        temp = path is None
        if path is None:
            fd, path = tempfile.mkstemp(prefix="kretain-sim-", suffix=".sqlite")
            os.close(fd)
            os.unlink(path)
        digest = generator.spec_hash(spec)
        if not (os.path.exists(path) and _reusable(path, digest, keep_changes)):
            _generate(spec, path, digest)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA cache_size=-32768")
        return cls(spec, path, conn, temp)

    def close(self) -> None:
        with self._lock:
            if self._conn is None:
                return
            self._conn.close()
            self._conn = None  # type: ignore[assignment]
            if self._temp:
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.path + suffix)

    def __enter__(self) -> Partner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- entries -----------------------------------------------------------
    def list_entries(
        self,
        filter: Mapping[str, Any],
        pager: Mapping[str, Any],
        *,
        service: Literal["baseentry", "media"],
        entitled: bool,
        now: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """baseEntry.list / media.list semantics -> (objects, totalCount).

        Defaults (status READY, moderation, displayInSearch, media filter typeIn),
        unknown fields/orderBy ignored, relative times, IN lists cut to 150,
        pager default 30 clamp 500, offset>=10000 -> QUERY_EXCEEDED_MAX_MATCHES_ALLOWED,
        true totalCount. ``entitled`` False hides entitlement-restricted entries.
        """
        where, params, order = _entry_query(filter, service=service, entitled=entitled, now=now)
        size, index = _pager(pager)
        offset = (index - 1) * size
        if offset >= _MAX_MATCHES:
            raise SimApiError("QUERY_EXCEEDED_MAX_MATCHES_ALLOWED")
        limit = min(size, _MAX_MATCHES - offset)
        cols = ",".join(ENTRY_COLUMNS)
        with self._lock:
            rows: list[tuple[Any, ...]] = []
            if limit > 0:
                rows = self._conn.execute(
                    f"SELECT {cols} FROM entries WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
                    (*params, limit, offset),
                ).fetchall()
            if len(rows) < size and (rows or offset == 0):
                # Sphinx path: a short, non-empty page reports offset + rows (and an empty
                # first page has nothing to count).
                total = offset + len(rows)
            else:
                total = self._conn.execute(
                    f"SELECT COUNT(*) FROM entries WHERE {where}", params
                ).fetchone()[0]
        return [generator.entry_wire(dict(zip(ENTRY_COLUMNS, r, strict=True))) for r in rows], total

    def get_entry(self, entry_id: str, *, entitled: bool = True) -> dict[str, Any]:
        """baseEntry.get; ENTRY_ID_NOT_FOUND for missing or deleted."""
        with self._lock:
            row = self._live_row(entry_id)
        if not entitled and row["entitled_only"]:
            raise SimApiError("ENTRY_ID_NOT_FOUND", entry_id)
        return generator.entry_wire(row)

    def delete_entry(self, entry_id: str, *, media_only: bool, now: int | None = None) -> None:
        """baseEntry.delete (media_only False) / media.delete (type 1 only).

        Children cascade; assets marked deleted; repeat -> ENTRY_ID_NOT_FOUND.
        """
        when = self.clock() if now is None else now
        with self._lock:
            row = self._live_row(entry_id)
            if media_only and row["type"] != "1":
                raise SimApiError("ENTRY_ID_NOT_FOUND", entry_id)
            self._mark_dirty()
            pending = [row["id"]]
            with self._tx():
                while pending:
                    eid = pending.pop()
                    self._conn.execute(
                        "UPDATE entries SET status = 3, moderation_status = 4, deleted_at = ?,"
                        " updated_at = MAX(updated_at, ?) WHERE idx = ? AND status != 3",
                        (when, when, ids.entry_index(eid)),
                    )
                    pending.extend(
                        r[0]
                        for r in self._conn.execute(
                            "SELECT id FROM entries WHERE parent_entry_id = ? AND status != 3",
                            (eid,),
                        )
                    )

    def recycle_entry(self, entry_id: str, *, now: int | None = None) -> dict[str, Any]:
        """baseEntry.recycle: displayInSearch -2, previous value kept, recycledAt set."""
        if not self.spec.recycle_bin:
            raise SimApiError("FEATURE_RECYCLE_BIN_DISABLED")
        when = self.clock() if now is None else now
        with self._lock:
            row = self._live_row(entry_id)
            if row["display_in_search"] == -2:
                raise SimApiError("INVALID_ENTRY_STATUS_FOR_RECYCLE", entry_id)
            self._mark_dirty()
            self._conn.execute(
                "UPDATE entries SET prev_display_in_search = display_in_search,"
                " display_in_search = -2, recycled_at = ?, updated_at = MAX(updated_at, ?)"
                " WHERE idx = ?",
                (when, when, row["idx"]),
            )
            return generator.entry_wire(self._live_row(entry_id))

    def restore_recycled_entry(self, entry_id: str, *, now: int | None = None) -> dict[str, Any]:
        """baseEntry.restoreRecycled: the previous displayInSearch comes back."""
        if not self.spec.recycle_bin:
            raise SimApiError("FEATURE_RECYCLE_BIN_DISABLED")
        when = self.clock() if now is None else now
        with self._lock:
            row = self._live_row(entry_id)
            if row["display_in_search"] != -2:
                raise SimApiError("INVALID_ENTRY_STATUS_FOR_RESTORE", entry_id)
            self._mark_dirty()
            self._conn.execute(
                "UPDATE entries SET display_in_search = COALESCE(prev_display_in_search, 1),"
                " prev_display_in_search = NULL, recycled_at = NULL,"
                " updated_at = MAX(updated_at, ?) WHERE idx = ?",
                (when, row["idx"]),
            )
            return generator.entry_wire(self._live_row(entry_id))

    # ---- assets ------------------------------------------------------------
    def list_assets(
        self,
        kind: AssetKind,
        filter: Mapping[str, Any],
        pager: Mapping[str, Any],
        *,
        entitled: bool = True,
    ) -> tuple[list[dict[str, Any]], int]:
        """flavorAsset/caption/attachment/thumb list: entryIdEqual or entryIdIn
        mandatory (PROPERTY_VALIDATION_CANNOT_BE_NULL), deleted hidden, default
        page 30, exact totalCount."""
        f = _clean_filter(filter)
        cls_name = _ASSET_FILTER_CLASS[kind]
        if "entryIdEqual" not in f and "entryIdIn" not in f:
            raise SimApiError(
                "PROPERTY_VALIDATION_CANNOT_BE_NULL",
                f"{cls_name}::entryIdEqual/{cls_name}::entryIdIn",
            )
        wanted: list[str] | None = None
        if "entryIdIn" in f:
            wanted = _csv(f["entryIdIn"], _MAX_ASSET_ENTRIES)
        if "entryIdEqual" in f:
            eq = str(f["entryIdEqual"]).strip()
            wanted = [eq] if wanted is None or eq in wanted else []
        indices = sorted({i for i in (ids.entry_index(e) for e in wanted or []) if i is not None})
        size, page = _pager(pager)
        matches = [a for a in self._assets_for(indices, entitled) if a.kind == kind]
        matches = [a for a in matches if _asset_matches(a, f)]
        start = (page - 1) * size
        objects = [_asset_object(kind, a.wire) for a in matches[start : start + size]]
        return objects, len(matches)

    def get_asset(self, kind: AssetKind, asset_id: str) -> dict[str, Any]:
        """<X>_ASSET_ID_NOT_FOUND when missing or deleted."""
        return _asset_object(kind, self._find_asset(kind, asset_id).wire)

    def delete_flavor(self, asset_id: str, *, now: int | None = None) -> None:
        """flavorAsset.delete: no source protection; repeat -> FLAVOR_ASSET_ID_NOT_FOUND."""
        when = self.clock() if now is None else now
        with self._lock:
            asset = self._find_asset("flavor", asset_id)
            ref = ids.asset_ref(asset_id)
            assert ref is not None  # _find_asset validated it
            self._mark_dirty()
            self._conn.execute(
                "INSERT OR REPLACE INTO asset_overlay VALUES (?, ?, 3, ?, ?)",
                (ref[0], asset.ordinal, when, when),
            )

    def asset_content(self, asset_id: str) -> tuple[int, int]:
        """(size_in_bytes_of_the_file, content_seed) for the serve endpoint.

        The size is the file's true size, also when the wire ``sizeInBytes`` is 0.
        Raises the kind's <X>_ASSET_ID_NOT_FOUND for missing or deleted assets.
        """
        asset = self._find_asset(asset_kind(asset_id) or "flavor", asset_id)
        return asset.true_size, asset.content_seed

    # ---- test hooks and ground truth --------------------------------------
    def set_last_played(self, entry_id: str, when: int, plays_delta: int = 1) -> None:
        """Simulate a play (tests: 'played during discovery').

        Like Kaltura's KAVA sync, this does not bump updatedAt.
        """
        with self._lock:
            row = self._live_row(entry_id)
            self._mark_dirty()
            self._conn.execute(
                "UPDATE entries SET last_played_at = ?, plays = plays + ?, views = views + ?"
                " WHERE idx = ?",
                (when, plays_delta, plays_delta, row["idx"]),
            )

    def add_entries(self, count: int, *, created_at: int | None = None) -> list[str]:
        """Add new entries (a later run must discover them). Returns ids.

        Ordinary entries (no multi-stream children), never played; all share
        ``created_at`` (default: the partner clock).
        """
        created = self.clock() if created_at is None else created_at
        with self._lock:
            start = (self._conn.execute("SELECT MAX(idx) FROM entries").fetchone()[0] or 0) + 1
            gen = generator.EntryGenerator(self.spec, rng_seed=self.spec.seed * 1_000_003 + start)
            gen.now = max(self.spec.now, created + 1)
            rows = list(gen.rows(start, count, created_at=created, plain=True))
            self._mark_dirty()
            marks = ",".join("?" * len(generator.ROW_COLUMNS))
            with self._tx():
                self._conn.executemany(
                    f"INSERT INTO entries ({','.join(generator.ROW_COLUMNS)}) VALUES ({marks})",
                    rows,
                )
        return [r[1] for r in rows]

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read-only SQL over the ``entries`` table (ground truth for tests)."""
        with self._lock:
            self._conn.execute("PRAGMA query_only = ON")
            try:
                return self._conn.execute(query, params).fetchall()
            finally:
                self._conn.execute("PRAGMA query_only = OFF")

    def assets_of(self, entry_id: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Every asset (all kinds, wire-shaped, plus key ``kind``) of one entry.

        Unknown ids raise ENTRY_ID_NOT_FOUND; a deleted entry has no assets
        unless ``include_deleted`` (then they all show status 3).
        """
        index = ids.entry_index(entry_id)
        with self._lock:
            row = self._row(index) if index else None
            if row is None:
                raise SimApiError("ENTRY_ID_NOT_FOUND", entry_id)
            if row["status"] == 3 and not include_deleted:
                return []
            assets = self._derive(row, self._overlay([row["idx"]]))
        out = []
        for a in assets:
            if a.wire["status"] == 3 and not include_deleted:
                continue
            out.append({**_asset_object(a.kind, a.wire), "kind": a.kind})
        return out

    # ---- internals -----------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _mark_dirty(self) -> None:
        self._asset_cache.clear()
        if not self._dirty:
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('dirty', '1')")
            self._dirty = True

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _row(self, index: int) -> dict[str, Any] | None:
        cols = ",".join(ENTRY_COLUMNS)
        row = self._conn.execute(f"SELECT {cols} FROM entries WHERE idx = ?", (index,)).fetchone()
        return dict(zip(ENTRY_COLUMNS, row, strict=True)) if row else None

    def _live_row(self, entry_id: str) -> dict[str, Any]:
        index = ids.entry_index(entry_id)
        row = self._row(index) if index else None
        if row is None or row["status"] == 3 or row["id"] != entry_id:
            raise SimApiError("ENTRY_ID_NOT_FOUND", entry_id)
        return row

    def _overlay(self, indices: Sequence[int]) -> dict[tuple[int, int], tuple[int, int, int]]:
        out: dict[tuple[int, int], tuple[int, int, int]] = {}
        for start in range(0, len(indices), 500):
            part = list(indices[start : start + 500])
            for idx, ordinal, status, deleted_at, updated_at in self._conn.execute(
                "SELECT entry_idx, ordinal, status, deleted_at, updated_at FROM asset_overlay"
                f" WHERE entry_idx IN ({_placeholders(part)})",
                part,
            ):
                out[(idx, ordinal)] = (status, deleted_at, updated_at)
        return out

    def _derive(
        self, row: Mapping[str, Any], overlay: Mapping[tuple[int, int], tuple[int, int, int]]
    ) -> list[generator.Asset]:
        assets = generator.derive_assets([row[c] for c in generator.SHAPE_COLUMNS])
        cap = self.spec.max_file_bytes
        if cap is not None:
            assets = [generator.capped(a, cap) for a in assets]
        for a in assets:
            over = overlay.get((row["idx"], a.ordinal))
            if row["status"] == 3:
                # The entry's deletion deleted every asset with it.
                a.wire.update(status=3, deletedAt=row["deleted_at"])
            elif over is not None:
                status, deleted_at, updated_at = over
                a.wire.update(status=status, updatedAt=updated_at)
                if deleted_at is not None:
                    a.wire["deletedAt"] = deleted_at
        return assets

    def _assets_for(self, indices: Sequence[int], entitled: bool) -> list[generator.Asset]:
        if not indices:
            return []
        cols = ",".join(ENTRY_COLUMNS)
        extra = "" if entitled else " AND entitled_only = 0"
        out: list[generator.Asset] = []
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {cols} FROM entries WHERE idx IN ({_placeholders(indices)})"
                f" AND status != 3{extra} ORDER BY idx",
                list(indices),
            ).fetchall()
            cache = self._asset_cache
            missing = [r[0] for r in rows if r[0] not in cache]
            overlay = self._overlay(missing) if missing else {}
            for r in rows:
                idx = r[0]
                derived = cache.get(idx)
                if derived is None:
                    row = dict(zip(ENTRY_COLUMNS, r, strict=True))
                    derived = [a for a in self._derive(row, overlay) if a.wire["status"] != 3]
                    cache[idx] = derived
                    if len(cache) > _ASSET_CACHE_ENTRIES:
                        cache.popitem(last=False)
                else:
                    cache.move_to_end(idx)
                out.extend(derived)
        return out

    def _find_asset(self, kind: str, asset_id: str) -> generator.Asset:
        ref = ids.asset_ref(asset_id)
        error = SimApiError(_ASSET_NOT_FOUND[kind], asset_id)
        if ref is None or ref[1] not in ids.KIND_RANGES[kind]:
            raise error
        with self._lock:
            row = self._row(ref[0])
            if row is None or row["status"] == 3:
                raise error
            assets = self._derive(row, self._overlay([ref[0]]))
        for a in assets:
            if a.ordinal == ref[1] and a.wire["status"] != 3:
                return a
        raise error


def asset_kind(asset_id: str) -> AssetKind | None:
    """The kind an asset id encodes (None when it is not one of ours)."""
    ref = ids.asset_ref(asset_id)
    return ids.kind_of(ref[1]) if ref else None  # type: ignore[return-value]


def _asset_object(kind: str, wire: Mapping[str, Any]) -> dict[str, Any]:
    return {**wire, "objectType": _ASSET_OBJECT_TYPE[kind]}


def _asset_matches(asset: generator.Asset, f: Mapping[str, Any]) -> bool:
    w = asset.wire
    if "statusEqual" in f and w["status"] != php_int(f["statusEqual"]):
        return False
    if "statusIn" in f and w["status"] not in _int_list(f["statusIn"], None):
        return False
    if "statusNotIn" in f and w["status"] in _int_list(f["statusNotIn"], None):
        return False
    if "idEqual" in f and w["id"] != str(f["idEqual"]).strip():
        return False
    if "idIn" in f and w["id"] not in _csv(f["idIn"], None):
        return False
    if asset.kind == "flavor":
        if "flavorParamsIdEqual" in f and w["flavorParamsId"] != php_int(f["flavorParamsIdEqual"]):
            return False
        if "flavorParamsIdIn" in f and w["flavorParamsId"] not in _int_list(f["flavorParamsIdIn"]):
            return False
    if asset.kind in ("caption", "attachment"):
        if "formatEqual" in f and w["format"] != str(f["formatEqual"]).strip():
            return False
        if "formatIn" in f and w["format"] not in _csv(f["formatIn"], None):
            return False
    return True


def _filter_level(object_type: Any, service: str) -> int:
    name = str(object_type or "").strip().lower()
    if service == "media":
        # media.list declares KalturaMediaEntryFilter: a base or playable
        # objectType is not a subclass of it, so the declared class wins.
        return 2
    if name in _MEDIA_FILTERS:
        return 2
    if name in _PLAYABLE_FILTERS:
        return 1
    return 0


def _entry_query(
    raw: Mapping[str, Any], *, service: str, entitled: bool, now: int
) -> tuple[str, list[Any], str]:
    """WHERE clause, its params and ORDER BY for an entry list filter."""
    f = _clean_filter(raw)
    level = _filter_level(raw.get("objectType"), service)
    where: list[str] = []
    params: list[Any] = []

    def add(clause: str, *values: Any) -> None:
        where.append(clause)
        params.extend(values)

    def add_in(column: str, values: Sequence[Any], negate: bool = False) -> None:
        op = "NOT IN" if negate else "IN"
        add(f"{column} {op} ({_placeholders(values)})", *values)

    # ---- ids ------------------------------------------------------------
    if "idEqual" in f:
        add("idx = ?", ids.entry_index(str(f["idEqual"]).strip()) or 0)
    if "idIn" in f:
        add_in("idx", [i for i in map(ids.entry_index, _csv(f["idIn"])) if i is not None])
    if "idNotIn" in f:
        add_in("idx", [i for i in map(ids.entry_index, _csv(f["idNotIn"])) if i is not None], True)

    # ---- status ---------------------------------------------------------------
    status_given = any(k in f for k in ("statusEqual", "statusIn", "statusNotEqual", "statusNotIn"))
    shows_deleted = False
    if "statusEqual" in f:
        value = php_int(f["statusEqual"])
        add("status = ?", value)
        shows_deleted = value == 3
    if "statusNotEqual" in f:
        add("status != ?", php_int(f["statusNotEqual"]))
    if "statusIn" in f:
        values = _int_list(f["statusIn"])
        add_in("status", values)
        shows_deleted = shows_deleted or 3 in values
    if "statusNotIn" in f:
        add_in("status", _int_list(f["statusNotIn"]), True)
    if not status_given and "idEqual" not in f:
        add("status = 2")
    if not shows_deleted:
        add("status != 3")

    # ---- moderation / display / entitlement ------------------------------------
    if "moderationStatusEqual" in f:
        add("moderation_status = ?", php_int(f["moderationStatusEqual"]))
    if "moderationStatusIn" in f:
        add_in("moderation_status", _int_list(f["moderationStatusIn"]))
    if "moderationStatusNotIn" in f:
        add_in("moderation_status", _int_list(f["moderationStatusNotIn"]), True)
    moderation_keys = ("moderationStatusEqual", "moderationStatusIn", "moderationStatusNotIn")
    if not any(k in f for k in moderation_keys) and "idEqual" not in f:
        add("moderation_status NOT IN (1, 3)")
    if "displayInSearchEqual" in f:
        add("display_in_search = ?", php_int(f["displayInSearchEqual"]))
    if "displayInSearchIn" in f:
        add_in("display_in_search", _int_list(f["displayInSearchIn"]))
    lifts = ("parentEntryIdEqual", "idIn", "idEqual", "displayInSearchEqual", "displayInSearchIn")
    if not any(k in f for k in lifts):
        add("display_in_search NOT IN (-2, -1)")
    if not entitled:
        add("entitled_only = 0")

    # ---- type ---------------------------------------------------------------------
    if "typeEqual" in f:
        add("type = ?", str(f["typeEqual"]).strip())
    if "typeIn" in f:
        add_in("type", _csv(f["typeIn"]))
    elif service == "media":
        add_in("type", list(_MEDIA_TYPE_IN_DEFAULT))

    # ---- relations, owners, categories, tags ----------------------------------------
    for key, column in (
        ("parentEntryIdEqual", "parent_entry_id"),
        ("rootEntryIdEqual", "root_entry_id"),
        ("userIdEqual", "user_id"),
        ("creatorIdEqual", "creator_id"),
    ):
        if key in f:
            add(f"{column} = ?", str(f[key]).strip())
    if "rootEntryIdIn" in f:
        add_in("root_entry_id", _csv(f["rootEntryIdIn"]))
    if "userIdIn" in f:
        add_in("user_id", _csv(f["userIdIn"]))
    if "isRoot" in f:
        add("root_entry_id = id" if php_int(f["isRoot"]) == 1 else "root_entry_id != id")
    if "categoriesIdsMatchOr" in f:
        cats = _csv(f["categoriesIdsMatchOr"])
        clause = " OR ".join(["(',' || categories_ids || ',') LIKE ?"] * len(cats)) or "0"
        add(f"({clause})", *(f"%,{c},%" for c in cats))
    if "tagsMultiLikeOr" in f:
        tags = _csv(f["tagsMultiLikeOr"])
        clause = " OR ".join(["tags LIKE ? ESCAPE '\\'"] * len(tags)) or "0"
        add(f"({clause})", *(f"%{_like_escape(t)}%" for t in tags))

    # ---- times -----------------------------------------------------------------------
    for key, op, column in (
        ("createdAtGreaterThanOrEqual", ">=", "created_at"),
        ("createdAtLessThanOrEqual", "<=", "created_at"),
        ("updatedAtGreaterThanOrEqual", ">=", "updated_at"),
        ("updatedAtLessThanOrEqual", "<=", "updated_at"),
    ):
        if key in f:
            add(f"{column} {op} ?", _resolve_time(f[key], now))
    if level >= 1:
        # Only KalturaPlayableEntryFilter and subclasses know these fields.
        if "lastPlayedAtGreaterThanOrEqual" in f:
            add("last_played_at >= ?", _resolve_time(f["lastPlayedAtGreaterThanOrEqual"], now))
        if "lastPlayedAtLessThanOrEqual" in f:
            add("last_played_at <= ?", _resolve_time(f["lastPlayedAtLessThanOrEqual"], now))
        if "lastPlayedAtLessThanOrEqualOrNull" in f:
            value = _resolve_time(f["lastPlayedAtLessThanOrEqualOrNull"], now)
            add("(last_played_at IS NULL OR last_played_at <= ?)", value)
        for key, op in (
            ("durationLessThan", "<"),
            ("durationGreaterThan", ">"),
            ("durationLessThanOrEqual", "<="),
            ("durationGreaterThanOrEqual", ">="),
        ):
            if key in f:
                add(f"duration {op} ?", php_int(f[key]))
    if level >= 2:
        if "mediaTypeEqual" in f:
            raw_value = str(f["mediaTypeEqual"]).strip()
            if not re.fullmatch(r"[+-]?\d+", raw_value) or int(raw_value) not in _MEDIA_TYPES:
                raise SimApiError(
                    "INVALID_ENUM_VALUE", raw_value, "mediaTypeEqual", "KalturaMediaType"
                )
            add("media_type = ?", int(raw_value))
        if "mediaTypeIn" in f:
            add_in("media_type", _int_list(f["mediaTypeIn"]))
        if "sourceTypeEqual" in f:
            add("source_type = ?", php_int(f["sourceTypeEqual"]))
        if "sourceTypeIn" in f:
            add_in("source_type", _int_list(f["sourceTypeIn"]))

    return " AND ".join(where) or "1", params, _order_by(f.get("orderBy"), level)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _order_by(value: Any, level: int) -> str:
    """Known orderBy items; unknown ones dropped; ties broken by idx (stable)."""
    allowed = dict(_ORDER_BASE)
    if level >= 1:
        allowed.update(_ORDER_PLAYABLE)
    if level >= 2:
        allowed.update(_ORDER_MEDIA)
    items: list[str] = []
    first_dir = "ASC"
    seen: set[str] = set()
    for item in _csv(value or "", None):
        sign, name = item[0], item[1:]
        if sign not in "+-" or name not in allowed or allowed[name] in seen:
            continue
        direction = "ASC" if sign == "+" else "DESC"
        if not items:
            first_dir = direction
        seen.add(allowed[name])
        items.append(f"{allowed[name]} {direction}")
    return ", ".join([*items, f"idx {first_dir}"])


# ---------------------------------------------------------------------------
# Generation


def _reusable(path: str, digest: str, keep_changes: bool) -> bool:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    if meta.get("spec_hash") != digest or meta.get("complete") != "1":
        return False
    return keep_changes or meta.get("dirty") != "1"


def _generate(spec: PartnerSpec, path: str, digest: str) -> None:
    """Stream a fresh generation into ``path`` (via a partial file, then rename)."""
    partial = path + ".partial"
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial + suffix)
    conn = sqlite3.connect(partial, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-65536")
        conn.execute("PRAGMA page_size=8192")
        conn.executescript(_SCHEMA)
        gen = generator.EntryGenerator(spec)
        rows = gen.rows(1, spec.entries)
        marks = ",".join("?" * len(generator.ROW_COLUMNS))
        insert = f"INSERT INTO entries ({','.join(generator.ROW_COLUMNS)}) VALUES ({marks})"
        conn.execute("BEGIN")
        while batch := list(itertools.islice(rows, _BATCH)):
            conn.executemany(insert, batch)
        for statement in _INDEXES:
            conn.execute(statement)
        conn.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [
                ("spec_hash", digest),
                ("generator_version", str(generator.GENERATOR_VERSION)),
                ("entries", str(spec.entries)),
            ],
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA analysis_limit=2000")
        conn.execute("ANALYZE")
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('complete', '1')")
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix)
    os.replace(partial, path)

"""What clients add to the simulated partner: upload tokens, new entries, asset content.

A mixin of :class:`kretain.simulator.partner.Partner` (it uses the partner's
connection, lock and asset derivation). Semantics follow Kaltura's server:

- ``uploadToken.*``: api_v3/services/UploadTokenService.php and
  alpha/apps/kaltura/lib/kUploadTokenMgr.php (statuses PENDING 0, PARTIAL 1, FULL 2,
  CLOSED 3, TIMED_OUT 4, DELETED 5; chunks appended by ``resumeAt``, others parked).
  The final chunk's size check does not wait (the server retries for up to 45 s).
- ``media.add`` / ``media.addContent``: api_v3/services/MediaService.php,
  api_v3/lib/KalturaEntryService.php, api_v3/lib/types/entry/KalturaBaseEntry.php.
  Conversion is instant: content attached from a FULL token makes a READY source
  flavor (flavorParamsId 0, isOriginal, tags "source") and a READY entry.
- caption/attachment/thumb ``add`` + ``setContent``, ``thumbAsset.setAsDefault``:
  plugins/content/caption/base/services/CaptionAssetService.php,
  plugins/content/attachment/services/AttachmentAssetService.php,
  api_v3/services/ThumbAssetService.php, kBusinessConvertDL::setAsDefaultThumbAsset.
- ``flavorAsset.convert``: api_v3/services/FlavorAssetService.php convertAction and
  kBusinessPreConvertDL::decideAddEntryFlavor; the flavor is READY at once, its bytes
  generated (a stand-in for a transcode of the source).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from kretain.simulator import generator, ids, uploads
from kretain.simulator.apierrors import SimApiError
from kretain.simulator.uploads import UploadedFile

if TYPE_CHECKING:
    from kretain.simulator.partner import PartnerSpec

# KalturaUploadTokenStatus
TOKEN_PENDING, TOKEN_PARTIAL, TOKEN_FULL, TOKEN_CLOSED, TOKEN_TIMED_OUT, TOKEN_DELETED = range(6)
# Asset statuses used here (flavor, caption, attachment and thumb share these values).
QUEUED, READY, DELETED, IMPORTING = 0, 2, 3, 7
ENTRY_IMPORT, ENTRY_READY, ENTRY_NO_CONTENT = 0, 2, 7
DEFAULT_THUMB_TAG = "default_thumb"
# upload_token_max_resume_time default: a PARTIAL token idle this long takes no more chunks.
MAX_RESUME_SECONDS = 604_800
# The core class names an upload token reports as attachedObjectType.
_CORE_CLASS = {
    "flavor": "flavorAsset",
    "caption": "CaptionAsset",
    "attachment": "AttachmentAsset",
    "thumb": "thumbAsset",
}

_ASSET_CLASS = {
    "flavor": "KalturaFlavorAsset",
    "caption": "KalturaCaptionAsset",
    "attachment": "KalturaAttachmentAsset",
    "thumb": "KalturaThumbAsset",
}
_NOT_FOUND = {
    "flavor": "FLAVOR_ASSET_ID_NOT_FOUND",
    "caption": "CAPTION_ASSET_ID_NOT_FOUND",
    "attachment": "ATTACHMENT_ASSET_ID_NOT_FOUND",
    "thumb": "THUMB_ASSET_ID_NOT_FOUND",
}
# Entry types each asset service accepts (getEnabledMediaTypes of each service).
_MEDIA_TYPES_OF = ("1", generator.EXTERNAL_TYPE)
_ASSET_ENTRY_TYPES = {
    "caption": _MEDIA_TYPES_OF,
    "attachment": (*_MEDIA_TYPES_OF, "7", "-1", "10"),
    "thumb": (*_MEDIA_TYPES_OF, "7", "-1", "10"),
}
# CaptionPlugin::getCaptionNamesByTypes: the extension of a caption file sent without one.
_CAPTION_EXT = {"1": "srt", "2": "dfxp", "3": "vtt", "4": "cap", "5": "scc"}
_LANGUAGE_CODES = {
    "English": "en",
    "Spanish": "es",
    "French": "fr",
    "German": "de",
    "Chinese": "zh",
    "Arabic": "ar",
    "Hebrew": "he",
    "Japanese": "ja",
    "Italian": "it",
    "Portuguese": "pt",
    "Russian": "ru",
    "Korean": "ko",
    "Dutch": "nl",
}
_MEDIA_TYPES = (1, 2, 5, 201, 202, 203, 204)

# ---- object fields a client may send ---------------------------------------------
# Read-only fields (a value set on insert -> PROPERTY_VALIDATION_NOT_UPDATABLE), in the
# order of KalturaBaseEntry, KalturaPlayableEntry and KalturaMediaEntry.
ENTRY_READONLY: tuple[str, ...] = (
    "id",
    "partnerId",
    "status",
    "moderationStatus",
    "moderationCount",
    "createdAt",
    "updatedAt",
    "rank",
    "totalRank",
    "votes",
    "downloadUrl",
    "searchText",
    "version",
    "thumbnailUrl",
    "replacingEntryId",
    "replacedEntryId",
    "replacementStatus",
    "rootEntryId",
    "capabilities",
    "defaultLanguage",
    "responseLanguage",
    "plays",
    "views",
    "lastPlayedAt",
    "width",
    "height",
    "duration",
    "durationType",
    "mediaDate",
    "dataUrl",
    "flavorParamsIds",
    "isTrimDisabled",
)
# Settable fields the entries table has no column for: kept in entry_extra, typed.
_ENTRY_EXTRA_INT = (
    "licenseType",
    "conversionProfileId",
    "accessControlId",
    "startDate",
    "endDate",
    "groupId",
    "partnerSortValue",
    "conversionQuality",
    "searchProviderType",
)
_ENTRY_EXTRA_STR = (
    "referenceId",
    "partnerData",
    "adminTags",
    "creditUserName",
    "creditUrl",
    "templateEntryId",
    "redirectEntryId",
    "application",
    "applicationVersion",
    "entitledUsersEdit",
    "entitledUsersPublish",
    "entitledUsersView",
    "sourceVersion",
    "searchProviderId",
)
_ASSET_READONLY = (
    "id",
    "entryId",
    "partnerId",
    "version",
    "size",
    "createdAt",
    "updatedAt",
    "deletedAt",
    "description",
    "sizeInBytes",
)
_KIND_READONLY = {
    "caption": ("languageCode", "status"),
    "attachment": ("status",),
    "thumb": ("width", "height", "status"),
}
_ASSET_STR = ("tags", "fileExt", "partnerData", "partnerDescription", "actualSourceAssetParamsIds")
_KIND_STR = {
    "caption": ("language", "label", "format", "source", "parentId", "associatedTranscriptIds"),
    "attachment": ("filename", "title", "format"),
    "thumb": (),
}
_KIND_INT = {
    "caption": ("captionParamsId", "accuracy", "usage"),
    "attachment": (),
    "thumb": ("thumbParamsId",),
}
_TOKEN_READONLY = (
    "id",
    "partnerId",
    "userId",
    "status",
    "uploadedFileSize",
    "createdAt",
    "updatedAt",
    "uploadUrl",
    "attachedObjectType",
    "attachedObjectId",
)
_TOKEN_COLUMNS = (
    "id, status, user_id, file_name, file_size, auto_finalize, uploaded_file_size, temp_path,"
    " object_type, object_id, created_at, updated_at"
)
# Resource classes the simulator does not ingest (the server's core class in the error).
_OTHER_RESOURCES = (
    "kalturaurlresource",
    "kalturaremotestorageresource",
    "kalturaremotestorageresources",
    "kalturaserverfileresource",
    "kalturaentryresource",
    "kalturaassetresource",
    "kalturafilesyncresource",
    "kalturaassetsparamsresourcecontainers",
    "kalturaassetparamsresourcecontainer",
    "kalturaoperationresource",
    "kalturaoperationresources",
    "kalturaliveentryresource",
    "kalturawebcamtokenresource",
    "kalturadropfolderfileresource",
)


class StoredRow(NamedTuple):
    """One ``stored_assets`` row."""

    num: int
    entry_idx: int
    gen_ordinal: int | None
    kind: str
    wire: str
    content_path: str | None
    content_size: int | None
    content_seed: int | None


def stored_asset(row: StoredRow, base: generator.Asset | None = None) -> generator.Asset:
    """The asset a stored row describes: an added asset, or ``base`` with its override."""
    patch = json.loads(row.wire)
    if row.content_path is not None:
        content = (row.content_size or 0, -1, row.content_path)
    elif row.content_seed is not None:
        content = (row.content_size or 0, row.content_seed, None)
    elif base is not None:
        content = (base.true_size, base.content_seed, base.content_path)
    else:
        content = (0, -1, None)
    size, seed, path = content
    if base is None:
        return generator.Asset(
            ids.ORDINALS_PER_ENTRY, row.kind, patch, size, seed, path, num=row.num
        )
    return generator.Asset(base.ordinal, base.kind, {**base.wire, **patch}, size, seed, path)


def php_bool(value: Any, default: bool) -> bool:
    """KalturaRequestDeserializer's bool: "false" (any case) is false, else PHP truthiness."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value)
    if text.strip().lower() == "false":
        return False
    return text not in ("", "0")


def nullable_bool(value: Any) -> bool | None:
    """KalturaNullableBoolean: -1 null, 0 false, 1 true ("true"/"false" accepted)."""
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    return None


def _int(value: Any) -> int:
    from kretain.simulator.partner import php_int

    return php_int(value)


def _kb(size: int) -> int:
    return math.ceil(size / 1024)


def _readonly_check(obj: Mapping[str, Any], cls: str, names: Sequence[str]) -> None:
    for name in names:
        if obj.get(name) not in (None, ""):
            raise SimApiError("PROPERTY_VALIDATION_NOT_UPDATABLE", f"{cls}::{name}")


def _tags(text: Any) -> list[str]:
    return [t.strip() for t in str(text or "").split(",") if t.strip()]


def _clean(wire: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in wire.items() if v is not None}


class IngestMixin:
    """Partner methods for what clients add. See the module docstring."""

    # Provided by Partner.
    spec: PartnerSpec
    content_dir: str
    clock: Callable[[], int]
    _conn: sqlite3.Connection
    _lock: threading.RLock
    _stored_count: int
    _extra_idx: set[int]
    _token_locks: dict[str, threading.Lock]

    if TYPE_CHECKING:

        def _mark_dirty(self) -> None: ...
        def _tx(self) -> contextlib.AbstractContextManager[None]: ...
        def _row(self, index: int) -> dict[str, Any] | None: ...
        def _live_row(self, entry_id: str) -> dict[str, Any]: ...
        def _wire(self, row: Mapping[str, Any]) -> dict[str, Any]: ...
        def _find_asset(self, kind: str, asset_id: str) -> generator.Asset: ...
        def _stored_rows(self, indices: Sequence[int]) -> dict[int, list[StoredRow]]: ...
        def _overlay(self, indices: Sequence[int]) -> dict[tuple[int, int], Any]: ...
        def _derive(
            self,
            row: Mapping[str, Any],
            overlay: Mapping[tuple[int, int], Any],
            stored: Sequence[StoredRow] = (),
        ) -> list[generator.Asset]: ...

    # ---- upload tokens ------------------------------------------------------------
    def add_upload_token(
        self, token: Mapping[str, Any], *, user_id: str, now: int
    ) -> dict[str, Any]:
        """uploadToken.add: a PENDING token; ``fileName``, ``fileSize``, ``autoFinalize``
        may be set (autoFinalize needs fileSize: UPLOAD_TOKEN_MISSING_FILE_SIZE)."""
        _readonly_check(token, "KalturaUploadToken", _TOKEN_READONLY)
        auto = nullable_bool(token.get("autoFinalize"))
        size_raw = token.get("fileSize")
        file_size = float(size_raw) if _is_number(size_raw) else None
        if auto and file_size is None:
            raise SimApiError("UPLOAD_TOKEN_MISSING_FILE_SIZE")
        name = token.get("fileName")
        token_id = f"0_{secrets.token_hex(16)}"
        with self._lock:
            self._mark_dirty()
            self._conn.execute(
                f"INSERT INTO upload_tokens ({_TOKEN_COLUMNS})"
                " VALUES (?, 0, ?, ?, ?, ?, NULL, NULL, NULL, NULL, ?, ?)",
                (
                    token_id,
                    user_id,
                    name if isinstance(name, str) and name else None,
                    file_size,
                    None if auto is None else int(auto),
                    now,
                    now,
                ),
            )
            return self._token_wire(self._token_row(token_id, None))

    def get_upload_token(self, token_id: str, *, user_id: str | None = None) -> dict[str, Any]:
        """uploadToken.get; UPLOAD_TOKEN_NOT_FOUND when missing, deleted or (for a user
        session, ``user_id`` set) another user's."""
        with self._lock:
            return self._token_wire(self._token_row(token_id, user_id))

    def list_upload_tokens(
        self,
        filter: Mapping[str, Any],
        pager: Mapping[str, Any],
        *,
        user_id: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """uploadToken.list: deleted tokens hidden; idEqual/idIn, userIdEqual,
        statusEqual/statusIn, fileNameEqual, fileSizeEqual; orderBy ±createdAt."""
        from kretain.simulator.partner import _clean_filter, _csv, _int_list, _pager

        f = _clean_filter(filter)
        where, params = ["status != 5"], []
        if user_id is not None:
            where.append("user_id = ?")
            params.append(user_id)
        for key, column in (
            ("idEqual", "id"),
            ("userIdEqual", "user_id"),
            ("fileNameEqual", "file_name"),
        ):
            if key in f:
                where.append(f"{column} = ?")
                params.append(str(f[key]))
        if "fileSizeEqual" in f and _is_number(f["fileSizeEqual"]):
            where.append("file_size = ?")
            params.append(float(f["fileSizeEqual"]))
        if "statusEqual" in f:
            where.append("status = ?")
            params.append(_int(f["statusEqual"]))
        for key, column, values in (
            ("idIn", "id", _csv(f.get("idIn", ""), None)),
            ("statusIn", "status", _int_list(f.get("statusIn", ""), None)),
        ):
            if key in f:
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                params.extend(values)
        order = "created_at DESC, rowid DESC" if f.get("orderBy") == "-createdAt" else "rowid"
        size, index = _pager(pager)
        clause = " AND ".join(where)
        with self._lock:
            total = self._conn.execute(
                f"SELECT COUNT(*) FROM upload_tokens WHERE {clause}", params
            ).fetchone()[0]
            rows = self._conn.execute(
                f"SELECT {_TOKEN_COLUMNS} FROM upload_tokens WHERE {clause}"
                f" ORDER BY {order} LIMIT ? OFFSET ?",
                (*params, size, (index - 1) * size),
            ).fetchall()
        return [self._token_wire(r) for r in rows], total

    def delete_upload_token(
        self, token_id: str, *, user_id: str | None = None, now: int | None = None
    ) -> None:
        """uploadToken.delete: status DELETED (then not found); its data is removed."""
        when = self.clock() if now is None else now
        with self._token_lock(token_id), self._lock:
            row = self._token_row(token_id, user_id)
            self._mark_dirty()
            self._conn.execute(
                "UPDATE upload_tokens SET status = 5, updated_at = ? WHERE id = ?",
                (when, token_id),
            )
            uploads.remove_token_files(row[7])

    def upload_to_token(
        self,
        token_id: str,
        file: UploadedFile,
        *,
        resume: bool = False,
        final_chunk: bool = True,
        resume_at: int = -1,
        user_id: str | None = None,
        now: int | None = None,
    ) -> dict[str, Any]:
        """uploadToken.upload (kUploadTokenMgr::uploadFileToToken).

        - ``resume`` false: the file replaces whatever the token held.
        - ``resume`` true, ``resumeAt`` -1: appended at the end.
        - ``resume`` true, non-final chunk: chunks parked at the file's end are appended
          first; then the chunk is written at ``resumeAt`` when resumeAt <= size <
          resumeAt + length, else parked until the file reaches it.
        - ``resume`` true, final chunk, ``resumeAt`` > 0: parked, every chunk that fits
          is appended; a size other than resumeAt + length ->
          UPLOAD_TOKEN_CANNOT_MATCH_EXPECTED_SIZE (retry once the missing chunks are in).
          With ``autoFinalize`` the expected size is the token's ``fileSize``.
        Final -> FULL (and a resource waiting for the token gets its content); else
        PARTIAL. An empty non-final chunk with resumeAt > 0 is dismissed. A PARTIAL
        token not updated for 7 days -> UPLOAD_PASSED_MAX_RESUME_TIME_ALLOWED.
        """
        when = self.clock() if now is None else now
        with self._token_lock(token_id):
            with self._lock:
                row = self._token_row(token_id, user_id)
            status, file_name, file_size, auto = row[1], row[3], row[4], row[5]
            target = row[7]
            if status == TOKEN_PARTIAL and row[11] < when - MAX_RESUME_SECONDS:
                raise SimApiError("UPLOAD_PASSED_MAX_RESUME_TIME_ALLOWED", MAX_RESUME_SECONDS)
            if status not in (TOKEN_PENDING, TOKEN_PARTIAL):
                raise SimApiError("UPLOAD_TOKEN_INVALID_STATUS_FOR_UPLOAD")
            file_name = file_name or file.filename
            length = uploads.file_size(file.path)
            if length == 0 and not final_chunk and resume_at > 0:
                return self.get_upload_token(token_id)
            final = final_chunk
            if resume:
                if not target or not os.path.exists(target):
                    raise SimApiError("UPLOAD_TOKEN_CANNOT_RESUME")
                size = self._resume_chunk(target, file, resume_at, final, auto, file_size)
            else:
                ext = uploads.extension(file.filename)
                if ext in ("", "tmp") and file_name:
                    ext = uploads.extension(file_name) or ext
                new_target = os.path.join(self._dir("uploads"), f"{token_id}.{ext or 'noex'}")
                if target and target != new_target:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(target)
                os.replace(file.path, new_target)
                target, size = new_target, uploads.file_size(new_target)
                if auto and file_size is not None and size == file_size:
                    final = True
            if resume and auto and file_size is not None and size == file_size:
                final = True
            with self._lock:
                self._mark_dirty()
                current = self._token_row(token_id, None)[1]
                if current not in (TOKEN_PENDING, TOKEN_PARTIAL):
                    raise SimApiError("UPLOAD_TOKEN_INVALID_STATUS_FOR_UPLOAD")
                self._conn.execute(
                    "UPDATE upload_tokens SET status = ?, file_name = ?, uploaded_file_size = ?,"
                    " temp_path = ?, updated_at = ? WHERE id = ?",
                    (
                        TOKEN_FULL if final else TOKEN_PARTIAL,
                        file_name,
                        size,
                        target,
                        when,
                        token_id,
                    ),
                )
                if final:
                    self._upload_finished(token_id, when)
                return self._token_wire(self._token_row(token_id, None))

    def _resume_chunk(
        self,
        target: str,
        file: UploadedFile,
        resume_at: int,
        final: bool,
        auto: int | None,
        file_size: float | None,
    ) -> int:
        length = uploads.file_size(file.path)
        if resume_at == -1:
            return uploads.append_end(target, file.path)
        verify = final and resume_at > 0
        expected = resume_at + length
        if auto and file_size is not None:
            parked = sum(uploads.file_size(p) for _, p in uploads.parked_chunks(target))
            if uploads.file_size(target) + parked + length >= file_size:
                verify, expected = True, int(file_size)
        if not verify:
            size = uploads.append_next_chunks(target)
            if 0 <= resume_at <= size < resume_at + length:
                return uploads.write_at(target, file.path, resume_at)
            uploads.park_chunk(file.path, target, resume_at)
            return size
        uploads.park_chunk(file.path, target, resume_at)
        size = uploads.append_available_chunks(target)
        if size != expected:
            raise SimApiError("UPLOAD_TOKEN_CANNOT_MATCH_EXPECTED_SIZE")
        return size

    def upload_token_file(self, token_id: str) -> str | None:
        """Where the token's data is on disk (tests), None when it holds none."""
        with self._lock:
            row = self._conn.execute(
                "SELECT temp_path FROM upload_tokens WHERE id = ?", (token_id,)
            ).fetchone()
        return row[0] if row else None

    # ---- entries ------------------------------------------------------------------
    def add_media_entry(
        self,
        entry: Mapping[str, Any],
        *,
        ks_user: str = "",
        is_admin: bool = True,
        now: int | None = None,
    ) -> dict[str, Any]:
        """media.add: a new media-clip entry in status NO_CONTENT (7), createdAt = now.

        Sets name (default "<partnerId>_<now>"), description, tags, categories or
        categoriesIds, userId (default: the session's user), creatorId, mediaType
        (mandatory), sourceType, parentEntryId (not validated on insert, as the
        server; no categories/scheduling/access control with it), displayInSearch
        (1, -1 SYSTEM for a child, -2), msDuration, and the fields in
        ``_ENTRY_EXTRA_*`` (referenceId, partnerData, ...). A read-only field
        (ENTRY_READONLY: createdAt, plays, lastPlayedAt, status, ...) ->
        PROPERTY_VALIDATION_NOT_UPDATABLE.
        """
        when = self.clock() if now is None else now
        cls = "KalturaMediaEntry"

        def text(name: str) -> str | None:
            value = entry.get(name)
            return value if isinstance(value, str) and value != "" else None

        media_raw = text("mediaType")
        if media_raw is None:
            raise SimApiError("PROPERTY_VALIDATION_CANNOT_BE_NULL", f"{cls}::mediaType")
        media_type = _int(media_raw)
        if not media_raw.strip().lstrip("-").isdigit() or media_type not in _MEDIA_TYPES:
            raise SimApiError("INVALID_ENUM_VALUE", media_raw, "mediaType", "KalturaMediaType")
        user = text("userId")
        if not is_admin and user is not None and user.lower() != ks_user.lower():
            raise SimApiError("INVALID_KS", "", "-4", "INVALID_TYPE")
        categories, categories_ids = self._categories(text("categories"), text("categoriesIds"))
        parent = text("parentEntryId")
        scheduling = ("accessControlId", "startDate", "endDate")
        if parent and (categories or categories_ids or any(text(k) for k in scheduling)):
            raise SimApiError("ASSIGNING_INFO_TO_ENTRY_WITH_PARENT_IS_FORBIDDEN", parent)
        reference = text("referenceId")
        if reference is not None and len(reference) < 2:
            raise SimApiError("PROPERTY_VALIDATION_MIN_LENGTH", f"{cls}::referenceId", "2")
        display = 1
        if text("displayInSearch") is not None:
            display = _int(text("displayInSearch"))
            if display not in (-2, -1, 0, 1, 2):
                raise SimApiError(
                    "INVALID_ENUM_VALUE",
                    text("displayInSearch"),
                    "displayInSearch",
                    "KalturaEntryDisplayInSearchType",
                )
            if display not in (-2, -1, 1):
                raise SimApiError("ENTRY_DISPLAY_IN_SEARCH_VALUE_NOT_ALLOWED", display)
        _readonly_check(entry, cls, ENTRY_READONLY)

        extra: dict[str, Any] = {}
        for name in _ENTRY_EXTRA_STR:
            if text(name) is not None:
                extra[name] = text(name)
        for name in _ENTRY_EXTRA_INT:
            if text(name) is not None:
                extra[name] = _int(text(name))
        if text("blockAutoTranscript") is not None:
            extra["blockAutoTranscript"] = php_bool(text("blockAutoTranscript"), False)
        ms = _int(text("msDuration")) if text("msDuration") else 0
        owner = user if user is not None else ks_user
        values = {
            "name": text("name") or f"{self.spec.partner_id}_{when}",
            "description": text("description"),
            "user_id": owner,
            "creator_id": text("creatorId") or owner,
            "media_type": media_type,
            "source_type": _int(text("sourceType")) if text("sourceType") else 1,
            "display_in_search": display,
            "parent_entry_id": parent,
            "categories": categories,
            "categories_ids": categories_ids,
            "tags": text("tags"),
            "ms_duration": ms,
            "duration": (ms + 500) // 1000,
        }
        with self._lock:
            self._mark_dirty()
            with self._tx():
                idx = (self._conn.execute("SELECT MAX(idx) FROM entries").fetchone()[0] or 0) + 1
                eid = ids.entry_id(idx)
                row = {
                    "idx": idx,
                    "id": eid,
                    "partner_id": self.spec.partner_id,
                    "type": "1",
                    "status": ENTRY_NO_CONTENT,
                    "moderation_status": 6,  # AUTO_APPROVED: the partner moderates nothing
                    "created_at": when,
                    "updated_at": when,
                    "last_played_at": None,
                    "plays": 0,
                    "views": 0,
                    "root_entry_id": eid,
                    "capabilities": "",
                    "external_source_type": None,
                    "entitled_only": 0,
                    "asset_seed": 0,
                    "n_flavors": 0,
                    "n_captions": 0,
                    "n_attachments": 0,
                    "n_thumbs": 0,
                    "asset_traps": 0,
                    "recycled_at": None,
                    "prev_display_in_search": None,
                    "deleted_at": None,
                    **values,
                }
                columns = ",".join(row)
                self._conn.execute(
                    f"INSERT INTO entries ({columns}) VALUES ({','.join('?' * len(row))})",
                    tuple(row.values()),
                )
                self._conn.execute(
                    "INSERT INTO entry_extra VALUES (?, ?, ?)", (idx, reference, json.dumps(extra))
                )
            self._extra_idx.add(idx)
            return self._wire(self._live_row(eid))

    def _categories(self, names: str | None, id_list: str | None) -> tuple[str | None, str | None]:
        known = generator.categories(self.spec)
        by_id = {str(i): n for i, n in known}
        by_name = {n: str(i) for i, n in known}
        if id_list is not None and names is None:
            picked = [c.strip() for c in id_list.split(",") if c.strip()]
            for cat in picked:
                if cat not in by_id:
                    raise SimApiError("CATEGORY_NOT_FOUND", cat)
            return ",".join(by_id[c] for c in picked) or None, ",".join(picked) or None
        if names is None:
            return None, None
        picked = [c.strip() for c in names.split(",") if c.strip()]
        found = [by_name[c] for c in picked if c in by_name]
        return ",".join(picked) or None, ",".join(found) or None

    def add_content(
        self, entry_id: str, resource: Mapping[str, Any] | None, *, now: int | None = None
    ) -> dict[str, Any]:
        """media.addContent: only for a media clip in NO_CONTENT (else
        ENTRY_ALREADY_WITH_CONTENT). A FULL token (or a KalturaStringResource) gives
        the entry a READY source flavor holding the bytes, and the entry turns READY;
        the token is CLOSED. A token not FULL yet: the entry turns IMPORT (0) with a
        source flavor IMPORTING (7) that gets the bytes when the token's final chunk
        arrives. Image entries get a source flavor too (the real server keeps an
        image as entry data)."""
        when = self.clock() if now is None else now
        with self._lock:
            row = self._live_row(entry_id)
            if row["type"] != "1":
                raise SimApiError("ENTRY_ID_NOT_FOUND", entry_id)
            if row["status"] != ENTRY_NO_CONTENT:
                raise SimApiError("ENTRY_ALREADY_WITH_CONTENT")
            if not resource:
                return self._wire(row)
            source = self._resource(resource, "KalturaResource")
            self._mark_dirty()
            wire = self._new_asset_wire("flavor", row, when)
            wire.update(
                flavorParamsId=generator.SOURCE_FLAVOR_PARAMS_ID,
                isOriginal=True,
                isWeb=False,
                tags="source",
                bitrate=0,
                width=0,
                height=0,
                frameRate=0.0,
                containerFormat="",
                videoCodecId="",
            )
            num = self._insert_stored(row["idx"], None, "flavor", wire)
            asset = self._find_asset("flavor", ids.stored_asset_id(num))
            ready = self._apply_source(source, asset, row, when)
            status = ENTRY_READY if ready else ENTRY_IMPORT
            self._conn.execute(
                "UPDATE entries SET status = ?, updated_at = ? WHERE idx = ?",
                (status, when, row["idx"]),
            )
            return self._wire(self._live_row(entry_id))

    # ---- assets ---------------------------------------------------------------------
    def add_asset(
        self, kind: str, entry_id: str, asset: Mapping[str, Any], *, now: int | None = None
    ) -> dict[str, Any]:
        """caption/attachment/thumb ``add``: a QUEUED asset without content.

        Captions of a multi-stream child go to its parent; captions need a video or
        audio media entry. ``captionParamsId``/``thumbParamsId`` already used on the
        entry -> CAPTION_ASSET_ALREADY_EXISTS / THUMB_ASSET_ALREADY_EXISTS."""
        when = self.clock() if now is None else now
        cls = _ASSET_CLASS[kind]
        with self._lock:
            row = self._live_row(entry_id)
            if kind == "caption" and row["parent_entry_id"]:
                entry_id = row["parent_entry_id"]
                row = self._live_row(entry_id)
            self._check_entry_for(kind, row, entry_id)
            params_key = {"caption": "captionParamsId", "thumb": "thumbParamsId"}.get(kind)
            params_id = _int(asset.get(params_key)) if params_key and asset.get(params_key) else 0
            if params_key and params_id:
                for other in self._live_assets(row, kind):
                    if other.wire.get(params_key) == params_id:
                        code = f"{kind.upper()}_ASSET_ALREADY_EXISTS"
                        raise SimApiError(code, other.wire["id"], params_id)
            _readonly_check(asset, cls, (*_ASSET_READONLY, *_KIND_READONLY[kind]))
            wire = self._new_asset_wire(kind, row, when)
            for name in (*_ASSET_STR, *_KIND_STR[kind]):
                value = asset.get(name)
                if isinstance(value, str) and value != "":
                    wire[name] = value
            for name in _KIND_INT[kind]:
                value = asset.get(name)
                if value not in (None, ""):
                    wire[name] = _int(value)
            if kind == "caption":
                wire.setdefault("format", "1")  # KalturaCaptionAsset::toInsertableObject
                default = nullable_bool(asset.get("isDefault"))
                wire["isDefault"] = bool(default)
                if "displayOnPlayer" in asset:
                    wire["displayOnPlayer"] = php_bool(asset.get("displayOnPlayer"), True)
                code = _LANGUAGE_CODES.get(str(wire.get("language", "")))
                if code:
                    wire["languageCode"] = code
            if kind == "thumb":
                wire.update(thumbParamsId=params_id, width=0, height=0)
            self._mark_dirty()
            num = self._insert_stored(row["idx"], None, kind, wire)
            return self._object(kind, self._find_asset(kind, ids.stored_asset_id(num)).wire)

    def set_asset_content(
        self,
        kind: str,
        asset_id: str,
        resource: Mapping[str, Any],
        *,
        now: int | None = None,
    ) -> dict[str, Any]:
        """caption/attachment/thumb ``setContent``: READY with the given bytes (a FULL
        token or a KalturaStringResource); a token not FULL yet -> IMPORTING until
        its last chunk arrives. Works on generated assets too (their bytes replaced).
        A thumbnail tagged default_thumb, or the first one of a NO_CONTENT entry,
        becomes the entry's default."""
        when = self.clock() if now is None else now
        with self._lock:
            asset = self._find_asset(kind, asset_id)
            row = self._row(self._entry_idx_of(asset))
            assert row is not None  # _find_asset checked the entry is live
            if kind == "caption":
                self._check_entry_for(kind, row, row["id"])
            source = self._resource(resource, "KalturaContentResource")
            self._mark_dirty()
            self._apply_source(source, asset, row, when)
            asset = self._find_asset(kind, asset_id)
            if kind == "thumb" and asset.wire["status"] == READY:
                thumbs = self._live_assets(row, "thumb")
                tagged = DEFAULT_THUMB_TAG in _tags(asset.wire.get("tags"))
                has_default = any(DEFAULT_THUMB_TAG in _tags(t.wire.get("tags")) for t in thumbs)
                first = row["status"] == ENTRY_NO_CONTENT and len(thumbs) == 1 and not has_default
                if tagged or first:
                    self.set_default_thumb(asset_id, now=when)
                    asset = self._find_asset(kind, asset_id)
            return self._object(kind, asset.wire)

    def set_default_thumb(self, asset_id: str, *, now: int | None = None) -> None:
        """thumbAsset.setAsDefault: this thumbnail gets the default_thumb tag, the
        entry's other thumbnails lose it."""
        when = self.clock() if now is None else now
        with self._lock:
            target = self._find_asset("thumb", asset_id)
            row = self._row(self._entry_idx_of(target))
            assert row is not None
            self._mark_dirty()
            for thumb in self._live_assets(row, "thumb"):
                tags = _tags(thumb.wire.get("tags"))
                if thumb.wire["id"] == asset_id and DEFAULT_THUMB_TAG not in tags:
                    tags.append(DEFAULT_THUMB_TAG)
                elif thumb.wire["id"] != asset_id and DEFAULT_THUMB_TAG in tags:
                    tags.remove(DEFAULT_THUMB_TAG)
                else:
                    continue
                self._save_asset(row["idx"], thumb, {"tags": ",".join(tags), "updatedAt": when})

    def set_default_caption(self, asset_id: str, *, now: int | None = None) -> None:
        """captionAsset.setAsDefault: isDefault on this caption, off on the entry's others."""
        when = self.clock() if now is None else now
        with self._lock:
            target = self._find_asset("caption", asset_id)
            row = self._row(self._entry_idx_of(target))
            assert row is not None
            self._check_entry_for("caption", row, row["id"])
            self._mark_dirty()
            for caption in self._live_assets(row, "caption"):
                wanted = caption.wire["id"] == asset_id
                if bool(caption.wire.get("isDefault")) != wanted:
                    self._save_asset(row["idx"], caption, {"isDefault": wanted, "updatedAt": when})

    def convert_flavor(
        self, entry_id: str, flavor_params_id: Any, *, now: int | None = None
    ) -> None:
        """flavorAsset.convert: (re)make the flavor of ``flavorParamsId`` from the source.

        Errors as convertAction: ENTRY_ID_NOT_FOUND, FLAVOR_PARAMS_ID_NOT_FOUND,
        INVALID_ENTRY_STATUS (entry not ERROR_CONVERTING/PRECONVERT/READY),
        ORIGINAL_FLAVOR_ASSET_IS_MISSING (no READY source). The source params (0) make
        nothing, silently. An existing live flavor of those params is reused (same id,
        version + 1), else a new flavor is made; either way READY at once, its bytes
        generated (min(1, bitrate / 4000) of the source's size). Returns None."""
        when = self.clock() if now is None else now
        params_id = _int(flavor_params_id)
        with self._lock:
            row = self._live_row(entry_id)
            params = generator.FLAVOR_PARAMS.get(params_id)
            if params is None:
                raise SimApiError("FLAVOR_PARAMS_ID_NOT_FOUND", flavor_params_id)
            if row["status"] not in (-1, 1, 2):
                raise SimApiError("INVALID_ENTRY_STATUS")
            flavors = self._live_assets(row, "flavor")
            source = next((f for f in flavors if f.wire.get("isOriginal")), None)
            if source is None or source.wire.get("status") != READY:
                raise SimApiError("ORIGINAL_FLAVOR_ASSET_IS_MISSING")
            if params_id == generator.SOURCE_FLAVOR_PARAMS_ID:
                return
            width, height, bitrate, tags = params
            existing = next(
                (
                    f
                    for f in flavors
                    if f.wire.get("flavorParamsId") == params_id and not f.wire.get("isOriginal")
                ),
                None,
            )
            version = int((existing.wire.get("version") or 0) if existing else 0) + 1
            size = max(1, int(source.true_size * min(1.0, bitrate / 4000)))
            if self.spec.max_file_bytes is not None:
                size = min(size, self.spec.max_file_bytes)
            seed = _seed(row["idx"], params_id, version)
            patch = {
                "status": READY,
                "version": version,
                "updatedAt": when,
                "size": _kb(size),
                "sizeInBytes": size,
            }
            self._mark_dirty()
            if existing is not None:
                self._save_asset(row["idx"], existing, patch, content=(None, size, seed))
                return
            wire = self._new_asset_wire("flavor", row, when)
            wire.update(patch)
            wire.update(
                flavorParamsId=params_id,
                isOriginal=False,
                isWeb=True,
                fileExt="mp3" if row["media_type"] == 5 else "mp4",
                tags=tags,
                bitrate=bitrate,
                width=width,
                height=height,
                frameRate=0.0 if row["media_type"] == 5 else 30.0,
                containerFormat="mp3" if row["media_type"] == 5 else "isom",
                videoCodecId="" if row["media_type"] == 5 else "avc1",
            )
            self._insert_stored(row["idx"], None, "flavor", wire, content=(None, size, seed))

    def added_entries(self) -> list[str]:
        """Ids of the entries media.add created, oldest first (tests)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT e.id FROM entry_extra x JOIN entries e ON e.idx = x.idx ORDER BY x.idx"
            ).fetchall()
        return [r[0] for r in rows]

    # ---- internals ------------------------------------------------------------------
    def _dir(self, name: str) -> str:
        path = os.path.join(self.content_dir, name)
        os.makedirs(path, exist_ok=True)
        return path

    def incoming_dir(self) -> str:
        """Where request file parts are streamed to (same file system as the content)."""
        return self._dir("incoming")

    @contextlib.contextmanager
    def _token_lock(self, token_id: str) -> Iterator[None]:
        # Chunk files are appended outside the partner lock, one upload per token at a time.
        with self._lock:
            lock = self._token_locks.setdefault(token_id, threading.Lock())
        with lock:
            yield

    def _token_row(self, token_id: str, user_id: str | None) -> tuple[Any, ...]:
        row = self._conn.execute(
            f"SELECT {_TOKEN_COLUMNS} FROM upload_tokens WHERE id = ? AND status != 5",
            (str(token_id),),
        ).fetchone()
        if row is None or (user_id is not None and row[2] != user_id):
            raise SimApiError("UPLOAD_TOKEN_NOT_FOUND")
        return tuple(row)

    def _token_wire(self, row: Sequence[Any]) -> dict[str, Any]:
        (
            token_id,
            status,
            user,
            name,
            size,
            auto,
            uploaded,
            _path,
            otype,
            oid,
            created,
            updated,
        ) = row
        return _clean(
            {
                "id": token_id,
                "partnerId": self.spec.partner_id,
                "userId": user,
                "status": status,
                "fileName": name,
                "fileSize": _number(size),
                "uploadedFileSize": _number(uploaded),
                "createdAt": created,
                "updatedAt": updated,
                "autoFinalize": auto,
                "attachedObjectType": otype,
                "attachedObjectId": oid,
                "objectType": "KalturaUploadToken",
            }
        )

    def _resource(self, resource: Mapping[str, Any], declared: str) -> tuple[str, Any]:
        """("token", token row) or ("string", bytes) for a content resource."""
        name = str(resource.get("objectType") or "")
        low = name.lower()
        if low == "kalturauploadedfiletokenresource":
            token = resource.get("token")
            if not isinstance(token, str) or not token:
                raise SimApiError("PROPERTY_VALIDATION_CANNOT_BE_NULL", f"{name}::token")
            return "token", self._token_row(token, None)
        if low == "kalturastringresource":
            content = resource.get("content")
            if not isinstance(content, str) or content == "":
                raise SimApiError("PROPERTY_VALIDATION_CANNOT_BE_NULL", f"{name}::content")
            return "string", content.encode("utf-8")
        if low in _OTHER_RESOURCES:
            raise SimApiError("RESOURCE_TYPE_NOT_SUPPORTED", "k" + name[len("Kaltura") :])
        raise SimApiError("OBJECT_TYPE_ABSTRACT", declared)

    def _apply_source(
        self, source: tuple[str, Any], asset: generator.Asset, row: Mapping[str, Any], when: int
    ) -> bool:
        """Give ``asset`` the resource's bytes; False when they are still to come."""
        kind, value = source
        if kind == "string":
            path = os.path.join(self._dir("assets"), secrets.token_hex(12))
            with open(path, "wb") as f:
                f.write(value)
            self._attach_file(asset, row, path, "", when)
            return True
        token_id, status, target = value[0], value[1], value[7]
        if status == TOKEN_FULL and target and os.path.exists(target):
            ext = uploads.extension(target)
            self._attach_file(asset, row, target, ext, when)
            self._conn.execute(
                "UPDATE upload_tokens SET status = 3, temp_path = NULL, updated_at = ?"
                " WHERE id = ?",
                (when, token_id),
            )
            return True
        # Not uploaded yet: attached, to be completed by the token's final chunk.
        self._save_asset(row["idx"], asset, {"status": IMPORTING, "updatedAt": when})
        self._conn.execute(
            "UPDATE upload_tokens SET object_type = ?, object_id = ?, updated_at = ? WHERE id = ?",
            (_CORE_CLASS[asset.kind], asset.wire["id"], when, token_id),
        )
        return False

    def _attach_file(
        self, asset: generator.Asset, row: Mapping[str, Any], source: str, ext: str, when: int
    ) -> None:
        """Move ``source`` in as the asset's content; READY, sizes, fileExt, version."""
        path = os.path.join(self._dir("assets"), secrets.token_hex(12))
        os.replace(source, path)
        size = uploads.file_size(path)
        if ext == "noex":
            ext = ""
        if asset.kind == "caption" and not ext:
            ext = _CAPTION_EXT.get(str(asset.wire.get("format")), "")
        patch: dict[str, Any] = {
            "status": READY,
            "size": _kb(size),
            "sizeInBytes": size,
            "version": int(asset.wire.get("version") or 0) + 1,
            "updatedAt": when,
        }
        if ext or asset.kind == "thumb":
            patch["fileExt"] = ext
        old = asset.content_path
        self._save_asset(row["idx"], asset, patch, content=(path, size, None))
        if old and old != path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(old)

    def _upload_finished(self, token_id: str, when: int) -> None:
        """A FULL token that a resource waits for: the asset gets its bytes
        (kFlowHelper::handleUploadFinished); a source makes its IMPORT entry READY."""
        row = self._token_row(token_id, None)
        if not row[9]:
            return
        asset_id = str(row[9])
        kind = next((k for k, name in _CORE_CLASS.items() if name == row[8]), None)
        if kind is None:
            return
        try:
            asset = self._find_asset(kind, asset_id)
        except SimApiError:
            return
        if asset.wire.get("status") != IMPORTING:
            return
        entry = self._row(self._entry_idx_of(asset))
        assert entry is not None
        self._apply_source(("token", row), asset, entry, when)
        if asset.wire.get("isOriginal") and entry["status"] == ENTRY_IMPORT:
            self._conn.execute(
                "UPDATE entries SET status = 2, updated_at = ? WHERE idx = ?", (when, entry["idx"])
            )

    def _check_entry_for(self, kind: str, row: Mapping[str, Any], entry_id: str) -> None:
        allowed = _ASSET_ENTRY_TYPES[kind]
        bad_type = row["type"] not in allowed
        if kind == "caption":
            bad_type = bad_type or row["media_type"] not in (1, 5)
        if kind == "thumb" and row["type"] == "1":
            bad_type = bad_type or row["media_type"] not in (1, 2, 5, 201)
        if bad_type:
            raise SimApiError("ENTRY_ID_NOT_FOUND", entry_id)

    def _live_assets(self, row: Mapping[str, Any], kind: str) -> list[generator.Asset]:
        idx = row["idx"]
        assets = self._derive(row, self._overlay([idx]), self._stored_rows([idx]).get(idx, []))
        return [a for a in assets if a.kind == kind and a.wire.get("status") != DELETED]

    def _entry_idx_of(self, asset: generator.Asset) -> int:
        index = ids.entry_index(str(asset.wire.get("entryId")))
        assert index is not None
        return index

    def _new_asset_wire(self, kind: str, row: Mapping[str, Any], when: int) -> dict[str, Any]:
        return {
            "entryId": row["id"],
            "partnerId": self.spec.partner_id,
            "version": 0,
            "size": 0,
            "tags": "",
            "fileExt": "",
            "status": QUEUED,
            "createdAt": when,
            "updatedAt": when,
            "description": "",
        }

    def _insert_stored(
        self,
        entry_idx: int,
        ordinal: int | None,
        kind: str,
        wire: dict[str, Any],
        *,
        content: tuple[str | None, int, int | None] | None = None,
    ) -> int:
        path, size, seed = content if content is not None else (None, None, None)
        cur = self._conn.execute(
            "INSERT INTO stored_assets (entry_idx, gen_ordinal, kind, wire, content_path,"
            " content_size, content_seed) VALUES (?, ?, ?, '{}', ?, ?, ?)",
            (entry_idx, ordinal, kind, path, size, seed),
        )
        num = int(cur.lastrowid or 0)
        if ordinal is None:
            wire = {"id": ids.stored_asset_id(num), **wire}
        self._conn.execute(
            "UPDATE stored_assets SET wire = ? WHERE num = ?", (json.dumps(wire), num)
        )
        self._stored_count += 1
        return num

    def _save_asset(
        self,
        entry_idx: int,
        asset: generator.Asset,
        patch: Mapping[str, Any],
        *,
        content: tuple[str | None, int, int | None] | None = None,
    ) -> None:
        """Update an added asset's row, or a derived asset's override row."""
        if asset.num is not None:
            wire = {**asset.wire, **patch}
            if content is None:
                self._conn.execute(
                    "UPDATE stored_assets SET wire = ? WHERE num = ?",
                    (json.dumps(wire), asset.num),
                )
            else:
                self._conn.execute(
                    "UPDATE stored_assets SET wire = ?, content_path = ?, content_size = ?,"
                    " content_seed = ? WHERE num = ?",
                    (json.dumps(wire), *content, asset.num),
                )
            return
        found = self._conn.execute(
            "SELECT num, wire FROM stored_assets WHERE entry_idx = ? AND gen_ordinal = ?",
            (entry_idx, asset.ordinal),
        ).fetchone()
        if found is None:
            self._insert_stored(entry_idx, asset.ordinal, asset.kind, dict(patch), content=content)
            return
        merged = {**json.loads(found[1]), **patch}
        if content is None:
            self._conn.execute(
                "UPDATE stored_assets SET wire = ? WHERE num = ?", (json.dumps(merged), found[0])
            )
        else:
            self._conn.execute(
                "UPDATE stored_assets SET wire = ?, content_path = ?, content_size = ?,"
                " content_seed = ? WHERE num = ?",
                (json.dumps(merged), *content, found[0]),
            )

    @staticmethod
    def _object(kind: str, wire: Mapping[str, Any]) -> dict[str, Any]:
        return {**wire, "objectType": _ASSET_CLASS[kind]}


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _number(value: Any) -> int | float | None:
    if value is None:
        return None
    as_float = float(value)
    return int(as_float) if as_float.is_integer() else as_float


def _seed(idx: int, params_id: int, version: int) -> int:
    digest = hashlib.sha256(f"convert:{idx}:{params_id}:{version}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**62 - 1)

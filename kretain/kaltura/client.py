"""KalturaClient: typed calls over api_v3 with sessions, retries and rate limits.

Every HTTP request (session calls included) passes a concurrency semaphore
(``max_concurrency``) and a global token bucket (``max_requests_per_second``).
Failures are retried per :mod:`kretain.kaltura.retry`; sleeping between attempts
happens outside both limits.

Deletes are not idempotent on the wire: when a delete is retried after an
ambiguous failure (timeout, cut connection) the retry may answer NotFound because
the first attempt did delete. Callers treat NotFound after a delete as "gone".
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import aiohttp
import structlog

from kretain.kaltura.errors import (
    ApiError,
    AuthenticationError,
    InvalidResponse,
    KalturaError,
    api_error_from_wire,
    is_api_exception,
)
from kretain.kaltura.models import ListPage, parse_list_response, require_object
from kretain.kaltura.retry import Category, RetryPolicy, classify, decide
from kretain.kaltura.session import HASH_TYPES, Credentials, SessionManager
from kretain.kaltura.transport import CLIENT_TAG, FilePart, Params, Transport, flatten_params
from kretain.rules import (
    ANY_DISPLAY_IN_SEARCH_WIRE,
    ENTRY_DELETED,
    LIVE_STATUSES_WIRE,
    MODERATION_STATUSES_WIRE,
    is_valid_id,
)

log = structlog.get_logger("kretain.kaltura")

Call = tuple[str, str, Params | None]
AssetKind = Literal["flavor", "caption", "attachment", "thumb"]

ASSET_SERVICES: dict[str, tuple[str, str]] = {
    "flavor": ("flavorasset", "KalturaFlavorAssetFilter"),
    "caption": ("caption_captionasset", "KalturaCaptionAssetFilter"),
    "attachment": ("attachment_attachmentasset", "KalturaAttachmentAssetFilter"),
    "thumb": ("thumbasset", "KalturaThumbAssetFilter"),
}
ENTRY_FILTERS = {"media": "KalturaMediaEntryFilter", "baseentry": "KalturaBaseEntryFilter"}
# What a restore adds: the object class and the parameter name of each asset kind's add.
ASSET_OBJECTS: dict[str, tuple[str, str]] = {
    "caption": ("KalturaCaptionAsset", "captionAsset"),
    "attachment": ("KalturaAttachmentAsset", "attachmentAsset"),
    "thumb": ("KalturaThumbAsset", "thumbAsset"),
}
MAX_PAGE_SIZE = 500  # the server clamps silently; we refuse instead
MAX_ID_IN = 150  # Sphinx keeps only the first 150 values of an IN list
MAX_ENTRY_ID_IN_ASSETS = 500  # asset lists cut entryIdIn to 500 ids
# Every entry status, so get_entries sees entries that are not READY. 3 (DELETED) is
# added only on request.
_SECRET_FIELDS = frozenset({"admin_secret", "app_token"})


@dataclass(frozen=True, repr=False)
class ClientConfig:
    """Connection, credentials and limits. ``repr`` masks the secrets."""

    service_url: str
    partner_id: int
    admin_secret: str | None = None
    user_id: str = ""
    app_token_id: str | None = None
    app_token: str | None = None
    app_token_hash_type: str = "SHA256"
    privileges: str = "disableentitlement"
    session_expiry: int = 86_400
    timeout: float = 120.0  # whole request, seconds
    connect_timeout: float = 15.0
    read_timeout: float | None = 60.0  # gap between bytes
    max_concurrency: int = 8
    max_requests_per_second: float | None = None  # None = unlimited
    max_attempts: int = 5
    rate_limit_window: float = 10.0
    rate_limit_attempts: int = 12
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    verify_tls: bool = True

    def __post_init__(self) -> None:
        if not self.service_url.startswith(("http://", "https://")):
            raise ValueError("service_url must start with http:// or https://")
        has_secret = bool(self.admin_secret)
        has_token = bool(self.app_token_id and self.app_token)
        if has_secret == has_token:
            raise ValueError("give exactly one of admin_secret or (app_token_id and app_token)")
        if self.app_token_hash_type.upper() not in HASH_TYPES:
            raise ValueError(f"app_token_hash_type must be one of {sorted(HASH_TYPES)}")
        if self.max_concurrency < 1 or self.max_attempts < 1 or self.session_expiry < 60:
            raise ValueError("max_concurrency/max_attempts >= 1 and session_expiry >= 60")
        if self.max_requests_per_second is not None and self.max_requests_per_second <= 0:
            raise ValueError("max_requests_per_second must be positive (or None)")

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            shown = "'***'" if f.name in _SECRET_FIELDS and value else repr(value)
            parts.append(f"{f.name}={shown}")
        return f"ClientConfig({', '.join(parts)})"

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            base_delay=self.backoff_base,
            max_delay=self.backoff_max,
            rate_limit_window=self.rate_limit_window,
            rate_limit_attempts=self.rate_limit_attempts,
        )


@dataclass
class ClientStats:
    """Counters for benchmarks and the run summary."""

    requests: int = 0  # HTTP requests sent (a multirequest counts once)
    retries: int = 0
    rate_limited_waits: int = 0
    session_renewals: int = 0
    by_action: Counter[str] = field(default_factory=Counter)  # "service.action" -> requests
    retries_by_code: Counter[str] = field(default_factory=Counter)


class TokenBucket:
    """Global request pacing: ``rate`` tokens/s, bucket of ``burst``; FIFO waiters."""

    def __init__(
        self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:  # holding it while sleeping keeps waiters in order
            while True:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) / self.rate)


def raise_for_items(results: Sequence[Any]) -> list[Any]:
    """Multirequest results, raising the first per-item ApiError."""
    for item in results:
        if isinstance(item, ApiError):
            raise item
    return list(results)


class KalturaClient:
    """Async client; use ``async with KalturaClient(config) as client``."""

    def __init__(self, config: ClientConfig, *, rand: Callable[[], float] = random.random) -> None:
        self.config = config
        self._policy = config.retry_policy()
        self._rand = rand
        self._transport = Transport(
            config.service_url,
            timeout=config.timeout,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            # API calls are bounded by the semaphore; the rest of the pool is for downloads.
            connector_limit=max(config.max_concurrency * 2, 100),
            verify_tls=config.verify_tls,
            client_tag=CLIENT_TAG,
        )
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._bucket = (
            TokenBucket(config.max_requests_per_second)
            if config.max_requests_per_second is not None
            else None
        )
        self._stats = ClientStats()
        self._session = SessionManager(
            Credentials(
                partner_id=config.partner_id,
                admin_secret=config.admin_secret,
                user_id=config.user_id,
                app_token_id=config.app_token_id,
                app_token=config.app_token,
                app_token_hash_type=config.app_token_hash_type,
                privileges=config.privileges,
                expiry=config.session_expiry,
            ),
            self._send_sessionless,
        )

    async def __aenter__(self) -> KalturaClient:
        await self._transport.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._transport.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        """The shared aiohttp session, for downloading asset URLs.

        Its default timeout has no total deadline (a 5 GB file takes a while), only
        ``connect_timeout`` and ``read_timeout`` (longest gap between bytes).
        """
        return self._transport.http

    @property
    def stats(self) -> ClientStats:
        self._stats.session_renewals = self._session.renewals
        return self._stats

    async def ks(self) -> str:
        """The current KS, starting a session if needed (for URLs that need ``/ks/``)."""
        return await self._session.get()

    # ---- generic calls ------------------------------------------------------
    async def call(self, service: str, action: str, params: Params | None = None) -> Any:
        """One API call with the session KS; retried per the retry policy."""
        return await self._with_retries(service, action, params, use_session=True)

    async def mutate(
        self,
        service: str,
        action: str,
        params: Params | None = None,
        *,
        file: FilePart | None = None,
    ) -> Any:
        """A call that changes something, sent ONCE.

        A lost answer (timeout, 5xx, a dropped connection) may mean the change was made,
        and ACTION_BLOCKED needs pacing the caller owns, so both are raised for the caller
        to decide (kretain.workers.delete re-checks before it retries). Only a rejected
        session is renewed and the call re-sent: Kaltura applied nothing then.
        ``file``: the call carries a file part (multipart; see transport.FilePart).
        """
        return await self._with_retries(
            service, action, params, use_session=True, mutating=True, file=file
        )

    async def multirequest(self, calls: Sequence[Call]) -> list[Any | ApiError]:
        """Several calls in one HTTP request; per-item errors are returned, not raised.

        The KS is sent once at the top level (the server copies it into each item).
        Transport failures retry the whole request; items that got INVALID_KS are
        re-sent once after renewing the session (only when no item uses ``{N:result}``
        references, which re-numbering would break). Other per-item errors, including
        ACTION_BLOCKED, come back as ApiError values for the caller to retry; see
        :func:`raise_for_items`.
        """
        if not calls:
            return []
        results = await self._multirequest_once(calls)
        stale = [i for i, r in enumerate(results) if _is_invalid_ks(r)]
        if stale and not _uses_references(calls):
            await self._session.invalidate(self._session.ks, expired=_expired(results[stale[0]]))
            again = await self._multirequest_once([calls[i] for i in stale])
            for index, result in zip(stale, again, strict=True):
                results[index] = result
        return results

    async def _multirequest_once(self, calls: Sequence[Call]) -> list[Any | ApiError]:
        raw = await self._with_retries("multirequest", "", calls, use_session=True)
        if len(raw) != len(calls):
            raise InvalidResponse(f"multirequest sent {len(calls)} calls, got {len(raw)} results")
        return [api_error_from_wire(item) if is_api_exception(item) else item for item in raw]

    # ---- typed helpers ------------------------------------------------------
    async def list_entries(
        self,
        filter: Mapping[str, Any],
        page_index: int,
        page_size: int = MAX_PAGE_SIZE,
        service: Literal["media", "baseentry"] = "media",
    ) -> ListPage:
        """One page of ``media.list`` / ``baseEntry.list``.

        ``filter`` uses wire names; ``objectType`` defaults to the service's filter
        class (send ``KalturaMediaEntryFilter`` to baseentry for lastPlayedAt filters).
        """
        if service not in ENTRY_FILTERS:
            raise ValueError(f"service must be one of {sorted(ENTRY_FILTERS)}")
        params = {
            "filter": {"objectType": ENTRY_FILTERS[service], **filter},
            "pager": _pager(page_index, page_size),
        }
        result = await self.call(service, "list", params)
        return parse_list_response(result, f"{service}.list")

    async def list_assets(
        self,
        kind: AssetKind,
        entry_ids: Sequence[str],
        page_index: int,
        page_size: int = MAX_PAGE_SIZE,
        extra_filter: Mapping[str, Any] | None = None,
    ) -> ListPage:
        """One page of the assets (of one kind) of up to 500 entries."""
        service, filter_type = _asset_service(kind)
        ids = _id_list(entry_ids, MAX_ENTRY_ID_IN_ASSETS)
        params = {
            "filter": {**(extra_filter or {}), "objectType": filter_type, "entryIdIn": ids},
            "pager": _pager(page_index, page_size),
        }
        result = await self.call(service, "list", params)
        return parse_list_response(result, f"{service}.list")

    async def get_entry(self, entry_id: str) -> dict[str, Any]:
        """``baseEntry.get``; NotFound if missing or deleted."""
        result = await self.call("baseentry", "get", {"entryId": _one_id(entry_id)})
        return require_object(result, "baseentry.get")

    async def get_entries(
        self, entry_ids: Sequence[str], *, include_deleted: bool = False
    ) -> dict[str, dict[str, Any]]:
        """Entries by id in any status (``baseEntry.list`` with ``idIn``, 150 per call).

        Ids that do not come back are absent from the result. Deleted entries (status
        3) only with ``include_deleted``.
        """
        unique = list(dict.fromkeys(_one_id(i) for i in entry_ids))
        statuses = LIVE_STATUSES_WIRE + ("," + ENTRY_DELETED if include_deleted else "")
        chunks = [unique[i : i + MAX_ID_IN] for i in range(0, len(unique), MAX_ID_IN)]

        async def one(chunk: list[str]) -> ListPage:
            page_filter = {
                "idIn": ",".join(chunk),
                "statusIn": statuses,
                "moderationStatusIn": MODERATION_STATUSES_WIRE,
            }
            return await self.list_entries(page_filter, 1, MAX_PAGE_SIZE, service="baseentry")

        pages = await asyncio.gather(*(one(c) for c in chunks))
        wanted = set(unique)
        found: dict[str, dict[str, Any]] = {}
        for page in pages:
            for entry in page.objects:
                if entry["id"] in wanted:  # never trust the server to honour idIn
                    found[entry["id"]] = entry
        return found

    async def get_asset_url(self, kind: AssetKind, asset_id: str) -> str:
        """A download URL for an asset (fetch it just before downloading; URLs expire)."""
        service, _ = _asset_service(kind)
        result = await self.call(service, "getUrl", {"id": _one_id(asset_id)})
        if not isinstance(result, str) or not result.startswith(("http://", "https://")):
            raise InvalidResponse(f"{service}.getUrl did not return an http(s) URL")
        return result

    async def delete_entry(self, entry_id: str) -> None:
        """``baseEntry.delete`` (works for every entry type, unlike media.delete; children
        go with their parent). Sent once: see :meth:`mutate`."""
        await self.mutate("baseentry", "delete", {"entryId": _one_id(entry_id)})

    async def recycle_entry(self, entry_id: str) -> dict[str, Any]:
        """``baseEntry.recycle``: into the recycle bin (needs FEATURE_RECYCLE_BIN). Sent once."""
        result = await self.mutate("baseentry", "recycle", {"entryId": _one_id(entry_id)})
        return require_object(result, "baseentry.recycle")

    async def restore_recycled(self, entry_id: str) -> dict[str, Any]:
        """``baseEntry.restoreRecycled``: out of the recycle bin. Sent once."""
        result = await self.mutate("baseentry", "restorerecycled", {"entryId": _one_id(entry_id)})
        return require_object(result, "baseentry.restoreRecycled")

    # ---- restore: uploads and new content (each changing call sent once) --------------
    async def add_upload_token(self, file_name: str, file_size: int) -> dict[str, Any]:
        """``uploadToken.add`` with the file's name and size. Sent once."""
        token = {"objectType": "KalturaUploadToken", "fileName": file_name, "fileSize": file_size}
        result = await self.mutate("uploadtoken", "add", {"uploadToken": token})
        return require_object(result, "uploadToken.add")

    async def get_upload_token(self, token_id: str) -> dict[str, Any]:
        """``uploadToken.get``: its status and ``uploadedFileSize`` (what a resume needs)."""
        result = await self.call("uploadtoken", "get", {"uploadTokenId": _one_id(token_id)})
        return require_object(result, "uploadToken.get")

    async def find_upload_tokens(self, file_name: str) -> list[dict[str, Any]]:
        """Upload tokens named ``file_name`` (not deleted), newest first: how a token whose
        ``add`` lost its answer is found again."""
        params = {
            "filter": {
                "objectType": "KalturaUploadTokenFilter",
                "fileNameEqual": file_name,
                "orderBy": "-createdAt",
            },
            "pager": _pager(1, MAX_PAGE_SIZE),
        }
        result = await self.call("uploadtoken", "list", params)
        return parse_list_response(result, "uploadToken.list").objects

    async def upload_to_token(
        self, token_id: str, part: FilePart, *, resume: bool, resume_at: int, final_chunk: bool
    ) -> dict[str, Any]:
        """``uploadToken.upload`` of one chunk (``part``) at ``resume_at``. Sent once; the
        bytes that went out are hashed in ``part.sha256``."""
        params = {
            "uploadTokenId": _one_id(token_id),
            "resume": resume,
            "resumeAt": resume_at,
            "finalChunk": final_chunk,
        }
        result = await self.mutate("uploadtoken", "upload", params, file=part)
        return require_object(result, "uploadToken.upload")

    async def delete_upload_token(self, token_id: str) -> None:
        """``uploadToken.delete`` (its data is dropped). Sent once."""
        await self.mutate("uploadtoken", "delete", {"uploadTokenId": _one_id(token_id)})

    async def add_media_entry(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        """``media.add``: a new entry (status NO_CONTENT) with the given wire fields. Sent
        once: set a ``referenceId`` to find it again if the answer is lost."""
        result = await self.mutate(
            "media", "add", {"entry": {"objectType": "KalturaMediaEntry", **entry}}
        )
        return require_object(result, "media.add")

    async def add_media_content(self, entry_id: str, token_id: str) -> dict[str, Any]:
        """``media.addContent`` from an upload token: the entry's source. Sent once."""
        resource = {"objectType": "KalturaUploadedFileTokenResource", "token": _one_id(token_id)}
        result = await self.mutate(
            "media", "addContent", {"entryId": _one_id(entry_id), "resource": resource}
        )
        return require_object(result, "media.addContent")

    async def find_entries_by_reference(self, reference_id: str) -> list[dict[str, Any]]:
        """Entries (any status but deleted, children and recycled ones too) whose
        ``referenceId`` is ``reference_id``: how an entry whose ``add`` lost its answer is
        found again."""
        page_filter = {
            "referenceIdEqual": reference_id,
            "statusIn": LIVE_STATUSES_WIRE,
            "moderationStatusIn": MODERATION_STATUSES_WIRE,
            "displayInSearchIn": ANY_DISPLAY_IN_SEARCH_WIRE,
        }
        page = await self.list_entries(page_filter, 1, MAX_PAGE_SIZE, service="baseentry")
        return [e for e in page.objects if e.get("referenceId") == reference_id]

    async def add_asset(
        self, kind: AssetKind, entry_id: str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``<caption|attachment|thumb>.add``: a new asset without content. Sent once."""
        service, _ = _asset_service(kind)
        object_type, param = _asset_object(kind)
        result = await self.mutate(
            service,
            "add",
            {"entryId": _one_id(entry_id), param: {"objectType": object_type, **fields}},
        )
        return require_object(result, f"{service}.add")

    async def set_asset_content(
        self, kind: AssetKind, asset_id: str, token_id: str
    ) -> dict[str, Any]:
        """``<caption|attachment|thumb>.setContent`` from an upload token. Sent once."""
        service, _ = _asset_service(kind)
        _asset_object(kind)
        resource = {"objectType": "KalturaUploadedFileTokenResource", "token": _one_id(token_id)}
        result = await self.mutate(
            service, "setContent", {"id": _one_id(asset_id), "contentResource": resource}
        )
        return require_object(result, f"{service}.setContent")

    async def get_asset(self, kind: AssetKind, asset_id: str) -> dict[str, Any]:
        """``<kind>Asset.get``; NotFound when missing or deleted."""
        service, _ = _asset_service(kind)
        result = await self.call(service, "get", {"id": _one_id(asset_id)})
        return require_object(result, f"{service}.get")

    async def set_default_thumb(self, thumb_asset_id: str) -> None:
        """``thumbAsset.setAsDefault``: the entry's default thumbnail. Sent once."""
        await self.mutate("thumbasset", "setAsDefault", {"thumbAssetId": _one_id(thumb_asset_id)})

    async def convert_flavor(self, entry_id: str, flavor_params_id: int) -> None:
        """``flavorAsset.convert``: (re)make the flavor of ``flavor_params_id`` from the
        entry's source. Sent once."""
        if isinstance(flavor_params_id, bool) or not isinstance(flavor_params_id, int):
            raise ValueError(f"flavor params id must be an int, got {flavor_params_id!r}")
        params = dict(entryId=_one_id(entry_id), flavorParamsId=flavor_params_id)
        await self.mutate("flavorasset", "convert", params)

    async def delete_flavor(self, asset_id: str) -> None:
        """``flavorAsset.delete``. Sent once. The server does not protect the source flavor:
        the caller must find it first (kretain.rules.find_source)."""
        await self.mutate("flavorasset", "delete", {"id": _one_id(asset_id)})

    # ---- plumbing -----------------------------------------------------------
    async def _send_sessionless(self, service: str, action: str, params: dict[str, Any]) -> Any:
        return await self._with_retries(service, action, params, use_session=False)

    async def _with_retries(
        self,
        service: str,
        action: str,
        payload: Any,
        *,
        use_session: bool,
        mutating: bool = False,
        file: FilePart | None = None,
    ) -> Any:
        failures: Counter[Category] = Counter()
        label = f"{service}.{action}" if action else service
        while True:
            ks = await self._session.get() if use_session else None
            try:
                return await self._send_once(service, action, payload, ks, label, file)
            except KalturaError as exc:
                category = classify(exc)
                failures[category] += 1
                decision = decide(exc, failures[category], self._policy, self._rand)
                if not decision.retry or (decision.renew_session and not use_session):
                    raise
                if mutating and not decision.renew_session:
                    raise
                code = exc.code if isinstance(exc, ApiError) else type(exc).__name__
                self._stats.retries += 1
                self._stats.retries_by_code[code] += 1
                if decision.category == "rate_limited":
                    self._stats.rate_limited_waits += 1
                log.warning(
                    "kaltura.retry",
                    call=label,
                    code=code,
                    attempt=failures[category],
                    delay=round(decision.delay, 3),
                )
                if decision.renew_session:
                    await self._session.invalidate(ks, expired=_expired(exc))
                if decision.delay > 0:
                    await asyncio.sleep(decision.delay)

    async def _send_once(
        self,
        service: str,
        action: str,
        payload: Any,
        ks: str | None,
        label: str,
        file: FilePart | None = None,
    ) -> Any:
        async with self._slots:
            if self._bucket is not None:
                await self._bucket.acquire()
            self._stats.requests += 1
            self._stats.by_action[label.lower()] += 1
            if file is not None:
                return await self._transport.upload(service, action, payload, file, ks=ks)
            if service == "multirequest":
                return await self._transport.multirequest(payload, ks=ks)
            return await self._transport.request(service, action, payload, ks=ks)


def _is_invalid_ks(value: Any) -> bool:
    return isinstance(value, AuthenticationError) and value.code == "INVALID_KS"


def _expired(exc: Any) -> bool:
    return isinstance(exc, ApiError) and (
        exc.api_args.get("KSID") == "EXPIRED" or '"EXPIRED"' in exc.message
    )


def _uses_references(calls: Sequence[Call]) -> bool:
    return any("{" in value for _, _, p in calls for _, value in _flat(p))


def _flat(params: Params | None) -> list[tuple[str, str]]:
    return flatten_params(params or {})


def _pager(page_index: int, page_size: int) -> dict[str, Any]:
    if page_index < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_index >= 1 and 1 <= page_size <= {MAX_PAGE_SIZE}")
    return {"objectType": "KalturaFilterPager", "pageIndex": page_index, "pageSize": page_size}


def _asset_service(kind: str) -> tuple[str, str]:
    try:
        return ASSET_SERVICES[kind]
    except KeyError:
        raise ValueError(f"asset kind must be one of {sorted(ASSET_SERVICES)}") from None


def _asset_object(kind: str) -> tuple[str, str]:
    try:
        return ASSET_OBJECTS[kind]
    except KeyError:
        raise ValueError(f"only {sorted(ASSET_OBJECTS)} assets are added this way") from None


def _one_id(value: str) -> str:
    """Ids go into comma lists and URLs: refuse anything that is not a plain id."""
    if not is_valid_id(value):
        raise ValueError(f"bad Kaltura id {value!r:.80}")
    return value


def _id_list(ids: Sequence[str], limit: int) -> str:
    unique = list(dict.fromkeys(_one_id(i) for i in ids))
    if not unique or len(unique) > limit:
        raise ValueError(f"need 1..{limit} ids, got {len(unique)}")
    return ",".join(unique)

"""The simulated api_v3 services: KS checks, rate limits, injected API errors, dispatch.

``Simulator.call(service, action, params, base_url)`` runs ONE API call and returns its
wire-shaped result or raises ``SimApiError``; ``Simulator.multirequest(params, base_url)``
runs every item of a multirequest in order. Partner methods are blocking SQLite calls, so
each HTTP request is ONE job on a small thread pool (a multirequest's items run in that
same job, as one PHP process runs them on a real server) and the event loop keeps
streaming downloads. The checks, counters and mutation log are shared by the pool's
threads, so they run under one lock.

The mutation log (``Simulator.mutations``, ``RunningSimulator.mutations``) gets one
record per call of a mutating route (see ``ROUTES``), whatever its outcome::

    {"time": wall-clock seconds, "monotonic": time.monotonic() at the rate-limit check,
     "service": "baseentry", "action": "delete",      # lower case
     "id": the call's main id (entryId, id, uploadTokenId, ...), else created_id,
     "params": {the id-like and upload params sent, plus "resource:token",
                "contentResource:token", "entry:referenceId", "entry:parentEntryId",
                "uploadToken:fileName" when sent},
     "outcome": "ok" or the API error code (e.g. "ACTION_BLOCKED"),
     "admitted": passed the session and rate-limit checks (counts in the limiter window),
     "answer_lost": the call took effect but its HTTP answer was a bodiless 503,
     "created_id": id of what an add action created (entry, asset, upload token) or None,
     "bytes": size of the uploaded file part (uploadToken.upload) or None}

Lost answers (``Knobs.lost_answer``, ``Knobs.lose_next``): a mutating call that
succeeded can lose its answer. A plain call is answered HTTP 503 without a body. In a
multirequest every item still runs, then the whole HTTP answer is the bodiless 503, so
every item that took effect in it is marked ``answer_lost``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from kretain.simulator import ks as ksmod
from kretain.simulator.apierrors import SimApiError
from kretain.simulator.faults import Knobs, RateLimiter, Stats
from kretain.simulator.ingest import php_bool
from kretain.simulator.partner import AssetKind, Partner
from kretain.simulator.uploads import UploadedFile
from kretain.simulator.wire import resolve_references

log = logging.getLogger(__name__)

SHARED_PARAMS = ("ks", "clientTag", "partnerId")  # a multirequest's items inherit these
DEFAULT_EXPIRY = 86_400
MAX_EXPIRY = 86_400  # partner ksMaxExpiryInSeconds unset -> 86400
# Privileges only the token itself may grant (kSessionUtils::retrieveAllowedAppSessionPrivileges).
SERVER_PRIVILEGES = frozenset(
    {
        "disableentitlement",
        "disableentitlementforentry",
        "enableentitlement",
        "privacycontext",
        "setrole",
        "iprestrict",
        "urirestrict",
        "actionslimit",
        "sessionid",
        "apptoken",
    }
)
_HASHES = {"SHA1": "sha1", "MD5": "md5", "SHA256": "sha256", "SHA512": "sha512"}


@dataclass(frozen=True)
class ServeFile:
    """A serve action's result: ``size`` bytes of the file at ``path``, or (no path)
    of generated content ``seed``."""

    kind: AssetKind
    asset_id: str
    size: int
    seed: int
    file_ext: str = ""
    path: str | None = None


@dataclass
class Exchange:
    """One HTTP request's shared state: whether its answer is lost, its log records."""

    lost: bool = False
    records: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Call:
    service: str  # lower case
    action: str  # lower case
    params: dict[str, Any]
    base_url: str
    ks: ksmod.KsInfo | None = None
    now: int = 0  # for relative times in filters
    mutation_now: int = 0  # stamps what the call changes (createdAt, recycledAt, ...)
    monotonic: float = 0.0
    admitted: bool = False
    created_id: str | None = None

    def param(self, *names: str, required: bool = True) -> str:
        for name in names:
            value = self.params.get(name)
            if isinstance(value, str) and value != "":
                return value
        if required:
            raise SimApiError("MISSING_MANDATORY_PARAMETER", names[0])
        return ""

    def obj(self, name: str) -> dict[str, Any]:
        value = self.params.get(name)
        return value if isinstance(value, dict) else {}

    def required_obj(self, name: str) -> dict[str, Any]:
        value = self.params.get(name)
        if not isinstance(value, dict):
            raise SimApiError("MISSING_MANDATORY_PARAMETER", name)
        return value

    def file(self, name: str) -> UploadedFile:
        """A ``file`` parameter: missing -> MISSING_MANDATORY_PARAMETER, not a real
        upload (a plain field, no file name) -> UPLOAD_ERROR."""
        if name not in self.params:
            raise SimApiError("MISSING_MANDATORY_PARAMETER", name)
        value = self.params[name]
        if not isinstance(value, UploadedFile) or not value.ok:
            raise SimApiError("UPLOAD_ERROR")
        return value

    @property
    def entitled(self) -> bool:
        return self.ks is not None and "disableentitlement" in self.ks.privileges

    @property
    def session_user(self) -> str | None:
        """The user a user session (not admin) is restricted to; None for admins."""
        if self.ks is None or self.ks.is_admin:
            return None
        return self.ks.user_id


Handler = Callable[["Simulator", Call], Any]


@dataclass(frozen=True)
class Route:
    handler: Handler
    needs_ks: bool = True
    mutating: bool = False
    serve: bool = False
    widget_ok: bool = False  # allowed with a widget session (view:*,widget:1)


ASSET_SERVICES: dict[str, tuple[AssetKind, str, str, str]] = {
    # service -> (kind, serve id param, wire service name in URLs, list response type)
    "flavorasset": ("flavor", "flavorAssetId", "flavorAsset", "KalturaFlavorAssetListResponse"),
    "caption_captionasset": (
        "caption",
        "captionAssetId",
        "caption_captionAsset",
        "KalturaCaptionAssetListResponse",
    ),
    "attachment_attachmentasset": (
        "attachment",
        "attachmentAssetId",
        "attachment_attachmentAsset",
        "KalturaAttachmentAssetListResponse",
    ),
    "thumbasset": ("thumb", "thumbAssetId", "thumbAsset", "KalturaThumbAssetListResponse"),
}
_NOT_READY = {
    "flavor": "FLAVOR_ASSET_IS_NOT_READY",
    "caption": "CAPTION_ASSET_IS_NOT_READY",
    "attachment": "ATTACHMENT_ASSET_IS_NOT_READY",
    "thumb": "THUMB_ASSET_IS_NOT_READY",
}


@dataclass
class Simulator:
    partner: Partner
    knobs: Knobs
    stats: Stats
    mutations: list[dict[str, Any]]
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="sim-partner")
    )
    limiter: RateLimiter = field(default_factory=RateLimiter)
    revoked: set[str] = field(default_factory=set)
    _ks_cache: dict[str, ksmod.KsInfo] = field(default_factory=dict)
    _state_lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- KS ------------------------------------------------------------------
    @property
    def partner_id(self) -> int:
        return self.partner.spec.partner_id

    def sign(self, user_id: str, session_type: int, expiry: int, privileges: str) -> str:
        lifetime = expiry if expiry > 0 else DEFAULT_EXPIRY
        lifetime = min(lifetime, MAX_EXPIRY)
        if self.knobs.ks_lifetime is not None:
            lifetime = min(lifetime, self.knobs.ks_lifetime)
        return ksmod.sign_ks_v2(
            self.partner.spec.admin_secret,
            self.partner_id,
            user_id,
            session_type,
            int(time.time()) + lifetime,
            privileges,
        )

    def check_ks(self, ks: str) -> ksmod.KsInfo:
        info = self._ks_cache.get(ks)
        try:
            if info is None:
                info = ksmod.parse_ks(ks, self.partner_id, [self.partner.spec.admin_secret])
                if len(self._ks_cache) > 4096:
                    self._ks_cache.clear()
                self._ks_cache[ks] = info
            ksmod.check_expiry(info)
            if ks in self.revoked:
                raise ksmod.KsError("LOGOUT")
        except ksmod.KsError as exc:
            # The message quirk: the reason name replaces the KS, except for a bad string.
            shown = ks if exc.reason in ("INVALID_STR", "INVALID_PARTNER") else exc.reason
            raise SimApiError("INVALID_KS", shown, "-1", "INVALID_STR") from exc
        return info

    # ---- one API call --------------------------------------------------------
    async def call(
        self,
        service: str,
        action: str,
        params: dict[str, Any],
        base_url: str,
        exchange: Exchange | None = None,
    ) -> Any:
        """One API call, run on the pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor, self.call_sync, service, action, params, base_url, exchange
        )

    async def multirequest(
        self, params: dict[str, Any], base_url: str, exchange: Exchange | None = None
    ) -> Any:
        """Every item of one multirequest, run in order as ONE job on the pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor, self.multirequest_sync, params, base_url, exchange
        )

    def multirequest_sync(
        self, params: dict[str, Any], base_url: str, exchange: Exchange | None = None
    ) -> Any:
        """The items' results (errors in wire form), or the ServeFile of a serve item."""
        shared = {k: params[k] for k in SHARED_PARAMS if isinstance(params.get(k), str)}
        index = 0 if _is_request(params.get("0")) else 1
        results: list[Any] = []
        try:
            while _is_request(params.get(str(index))):
                sub = dict(params[str(index)])
                sub.pop("format", None)
                for key, value in shared.items():
                    sub.setdefault(key, value)
                sub = resolve_references(sub, results)
                try:
                    result = self.call_sync(
                        str(sub["service"]), str(sub["action"]), sub, base_url, exchange
                    )
                except SimApiError as exc:
                    result = exc.to_wire()
                if isinstance(result, ServeFile):
                    return result  # a file anywhere in a multirequest is the whole answer
                results.append(result)
                index += 1
            return results
        finally:
            if exchange is not None and exchange.lost:
                # The whole answer is lost: so is every item's that took effect.
                with self._state_lock:
                    for record in exchange.records:
                        if record["outcome"] == "ok":
                            record["answer_lost"] = True

    def call_sync(
        self,
        service: str,
        action: str,
        params: dict[str, Any],
        base_url: str,
        exchange: Exchange | None = None,
    ) -> Any:
        """One API call on the calling thread (a pool thread)."""
        service, action = service.lower(), action.lower()
        key = f"{service}.{action}"
        with self._state_lock:
            self.stats.calls[key] += 1
        route = ROUTES.get(key)
        if route is None:
            if not any(k.startswith(service + ".") for k in ROUTES):
                raise SimApiError("SERVICE_DOES_NOT_EXISTS", service)
            raise SimApiError("ACTION_DOES_NOT_EXISTS", action, service)
        call = Call(service, action, params, base_url)
        try:
            result = self._run(route, call, key)
        except SimApiError as exc:
            if route.mutating:
                self._log_mutation(call, exc.code, exchange)
            raise
        if route.mutating:
            lost = exchange is not None and self.knobs.take_lost_answer(key)
            if lost:
                assert exchange is not None
                self.stats.faults["lost_answer"] += 1
                exchange.lost = True
            self._log_mutation(call, "ok", exchange, answer_lost=lost)
        return result

    def mutation_now(self) -> int:
        """The simulator's "now" for what calls change: ``knobs.now`` when set, else the
        partner's clock (wall clock, never before the generation's "now")."""
        if self.knobs.now is not None:
            return int(self.knobs.now)
        return self.partner.clock()

    def _run(self, route: Route, call: Call, key: str) -> Any:
        call.mutation_now = self.mutation_now()
        # The recycle bin empties itself as time passes (cheap unless an entry is due).
        self.partner.purge_recycle_bin(call.mutation_now)
        with self._state_lock:
            self._admit(route, call, key)
        try:
            return route.handler(self, call)
        except SimApiError:
            raise
        except Exception:
            log.exception("simulator handler %s failed", key)
            raise SimApiError("INTERNAL_SERVERL_ERROR") from None

    def _admit(self, route: Route, call: Call, key: str) -> None:
        """The session, rate-limit and injected-fault checks before a handler runs."""
        call.monotonic = time.monotonic()
        ks = call.params.get("ks")
        if route.needs_ks:
            if not isinstance(ks, str) or not ks:
                raise SimApiError("MISSING_KS")
            call.ks = self.check_ks(ks)
            if call.ks.privileges.get("widget") == "1" and not route.widget_ok:
                raise SimApiError("SERVICE_FORBIDDEN", f"{call.service}->{call.action}")
        call.now = self._now(call.ks)
        rule = self.knobs.rate_limits.get(key)
        if rule is not None and self.limiter.hit(
            key, int(rule[0]), float(rule[1]), now=call.monotonic
        ):
            raise SimApiError("ACTION_BLOCKED", call.action, call.service)
        call.admitted = True
        failure = self.knobs.take_failure(key)
        if failure is not None:
            self.stats.faults["fail_next"] += 1
            raise SimApiError(failure[0], *failure[1])
        if not route.serve and self.knobs.draw_internal_error():
            self.stats.faults["internal_error"] += 1
            raise SimApiError("INTERNAL_SERVERL_ERROR")

    def _now(self, info: ksmod.KsInfo | None) -> int:
        if self.knobs.now is not None:
            return int(self.knobs.now)
        if info is not None and info.privileges.get("reftime", "").isdigit():
            return int(info.privileges["reftime"])
        return int(time.time())

    def _log_mutation(
        self, call: Call, outcome: str, exchange: Exchange | None, *, answer_lost: bool = False
    ) -> None:
        params: dict[str, str] = {
            k: v for k, v in call.params.items() if isinstance(v, str) and k in _LOGGED_PARAMS
        }
        for name, fields in _LOGGED_OBJECT_FIELDS.items():
            for field_name in fields:
                value = call.obj(name).get(field_name)
                if isinstance(value, str) and value:
                    params[f"{name}:{field_name}"] = value
        upload = call.params.get("fileData")
        created = call.created_id if outcome == "ok" else None
        record = {
            "time": time.time(),
            "monotonic": call.monotonic,
            "service": call.service,
            "action": call.action,
            "id": next((params[k] for k in _ID_PARAMS if k in params), created),
            "params": params,
            "outcome": outcome,
            "admitted": call.admitted,
            "answer_lost": answer_lost,
            "created_id": created,
            "bytes": upload.size if isinstance(upload, UploadedFile) else None,
        }
        with self._state_lock:
            self.mutations.append(record)
            if exchange is not None:
                exchange.records.append(record)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def _is_request(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("service"), str)
        and isinstance(value.get("action"), str)
    )


# ---- handlers ----------------------------------------------------------------


def _session_start(sim: Simulator, call: Call) -> str:
    spec = sim.partner.spec
    pid = call.param("partnerId", required=False)
    secret = call.param("secret", required=False)
    raw_type = call.param("type", required=False) or "0"
    if raw_type not in ("0", "2"):
        raise SimApiError("INVALID_ENUM_VALUE", raw_type, "type", "KalturaSessionType")
    session_type = int(raw_type)
    allowed = {spec.admin_secret} | ({spec.user_secret} if session_type == 0 else set())
    if pid != str(spec.partner_id) or secret not in allowed:
        raise SimApiError("START_SESSION_ERROR", pid)
    expiry = _int(call.param("expiry", required=False), DEFAULT_EXPIRY)
    return sim.sign(
        call.param("userId", required=False),
        session_type,
        expiry,
        call.param("privileges", required=False),
    )


def _start_widget_session(sim: Simulator, call: Call) -> dict[str, Any]:
    widget = call.param("widgetId")
    if widget != f"_{sim.partner_id}":
        raise SimApiError("START_SESSION_ERROR", widget.lstrip("_"))
    expiry = _int(call.param("expiry", required=False), DEFAULT_EXPIRY)
    ks = sim.sign("0", 0, expiry, "view:*,widget:1")
    return {
        "partnerId": sim.partner_id,
        "ks": ks,
        "userId": "0",
        "objectType": "KalturaStartWidgetSessionResponse",
    }


def _session_end(sim: Simulator, call: Call) -> None:
    assert call.ks is not None
    sim.revoked.add(call.ks.ks)


def _apptoken_start(sim: Simulator, call: Call) -> dict[str, Any]:
    assert call.ks is not None
    token_id = call.param("id")
    token = next((t for t in sim.partner.spec.app_tokens if t[0] == token_id), None)
    if token is None:
        raise SimApiError("APP_TOKEN_ID_NOT_FOUND", token_id)
    _, secret, hash_type, token_type, token_privileges, status = token
    if status != 2:
        raise SimApiError("APP_TOKEN_NOT_ACTIVE", token_id)
    algo = _HASHES.get((hash_type or "SHA1").upper(), "sha1")
    expected = hashlib.new(algo, (call.ks.ks + secret).encode()).hexdigest()
    if call.param("tokenHash", required=False).lower() != expected:
        raise SimApiError("INVALID_APP_TOKEN_HASH")
    if token_type is not None:
        session_type = token_type
    else:
        raw = call.param("type", required=False) or "0"
        if raw not in ("0", "2"):
            raise SimApiError("INVALID_ENUM_VALUE", raw, "type", "KalturaSessionType")
        session_type = int(raw)
    granted = ksmod.parse_privileges(token_privileges or "")
    requested = ksmod.parse_privileges(call.param("sessionPrivileges", required=False))
    for name, value in requested.items():
        # Server privileges only when the token already grants them with "*".
        if name in SERVER_PRIVILEGES and granted.get(name) != "*":
            continue
        granted.setdefault(name, value)
    granted["apptoken"] = token_id
    privileges = ",".join(f"{k}:{v}" if v else k for k, v in granted.items())
    user_id = call.param("userId", required=False)
    expiry = _int(call.param("expiry", required=False), DEFAULT_EXPIRY)
    ks = sim.sign(user_id, session_type, expiry, privileges)
    info = ksmod.parse_ks(ks, sim.partner_id, [sim.partner.spec.admin_secret])
    return {
        "ks": ks,
        "sessionType": session_type,
        "partnerId": sim.partner_id,
        "userId": user_id,
        "expiry": info.expiry,
        "privileges": privileges,
        "objectType": "KalturaSessionInfo",
    }


def _ping(sim: Simulator, call: Call) -> bool:
    return True


def _entry_filter(call: Call) -> dict[str, Any]:
    flt = dict(call.obj("filter"))
    info = call.ks
    # A user KS without list:* sees only its own entries.
    if (
        info is not None
        and not info.is_admin
        and info.privileges.get("list") != "*"
        and info.privileges.get("all") != "*"
    ):
        flt["userIdEqual"] = info.user_id
    return flt


def _list_entries(service: str, response_type: str) -> Handler:
    def handler(sim: Simulator, call: Call) -> dict[str, Any]:
        objects, total = sim.partner.list_entries(
            _entry_filter(call),
            call.obj("pager"),
            service=service,  # type: ignore[arg-type]
            entitled=call.entitled,
            now=call.now,
        )
        return {"objects": objects, "totalCount": total, "objectType": response_type}

    return handler


def _get_entry(sim: Simulator, call: Call) -> dict[str, Any]:
    entry_id = call.param("entryId")
    entry = sim.partner.get_entry(entry_id, entitled=call.entitled)
    if call.service == "media" and entry.get("type") != 1:
        raise SimApiError("ENTRY_ID_NOT_FOUND", entry_id)
    return entry


def _delete_entry(sim: Simulator, call: Call) -> None:
    sim.partner.delete_entry(
        call.param("entryId"), media_only=call.service == "media", now=call.mutation_now
    )


def _recycle(sim: Simulator, call: Call) -> dict[str, Any]:
    return sim.partner.recycle_entry(call.param("entryId"), now=call.mutation_now)


def _restore(sim: Simulator, call: Call) -> dict[str, Any]:
    return sim.partner.restore_recycled_entry(call.param("entryId"), now=call.mutation_now)


def _list_assets(sim: Simulator, call: Call) -> dict[str, Any]:
    kind, _, _, response_type = ASSET_SERVICES[call.service]
    if sim.knobs.broken_entries and _names_broken(call.obj("filter"), sim.knobs.broken_entries):
        sim.stats.faults["broken_entry"] += 1
        raise SimApiError("INTERNAL_SERVERL_ERROR")
    objects, total = sim.partner.list_assets(kind, call.obj("filter"), call.obj("pager"))
    return {"objects": objects, "totalCount": total, "objectType": response_type}


def _names_broken(flt: dict[str, Any], broken: set[str]) -> bool:
    named: set[str] = set()
    for key in ("entryIdEqual", "entryIdIn"):
        value = flt.get(key)
        if isinstance(value, str):
            named.update(part.strip() for part in value.split(","))
    return not named.isdisjoint(broken)


def _get_asset(sim: Simulator, call: Call) -> dict[str, Any]:
    kind, id_param, _, _ = ASSET_SERVICES[call.service]
    return sim.partner.get_asset(kind, call.param("id", id_param))


def _get_url(sim: Simulator, call: Call) -> str:
    kind, id_param, wire_service, _ = ASSET_SERVICES[call.service]
    asset_id = call.param("id", id_param)
    asset = sim.partner.get_asset(kind, asset_id)
    ready = (2, 9) if kind == "flavor" else (2,)
    if _int(str(asset.get("status", "")), -99) not in ready:
        raise SimApiError(_NOT_READY[kind], asset_id)
    base = call.base_url.rstrip("/")
    if kind != "flavor":
        return f"{base}/api_v3/index.php/service/{wire_service}/action/serve/{id_param}/{asset_id}"
    pid = sim.partner_id
    entry_id = str(asset.get("entryId", ""))
    ext = str(asset.get("fileExt") or "mp4")
    name = call.obj("options").get("fileName")
    if not isinstance(name, str) or not name:
        try:
            name = str(sim.partner.get_entry(entry_id, entitled=True).get("name", entry_id))
        except SimApiError:
            name = entry_id
    # The name is carried as-is (percent-encoded only so the URL stays one URL);
    # sanitising a file name taken from it is the client's job.
    return (
        f"{base}/p/{pid}/sp/{pid}00/serveFlavor/entryId/{quote(entry_id, safe='')}/v/1"
        f"/flavorId/{quote(asset_id, safe='')}/fileName/{quote(name, safe='')}"
        f"/name/a.{quote(ext, safe='')}"
    )


def serve_asset(sim: Simulator, kind: AssetKind, asset_id: str) -> ServeFile:
    asset = sim.partner.get_asset(kind, asset_id)
    size, seed, path = sim.partner.content_ref(asset_id)
    return ServeFile(kind, asset_id, int(size), int(seed), str(asset.get("fileExt") or ""), path)


def _serve(sim: Simulator, call: Call) -> ServeFile:
    kind, id_param, _, _ = ASSET_SERVICES[call.service]
    return serve_asset(sim, kind, call.param(id_param, "id"))


def _delete_flavor(sim: Simulator, call: Call) -> None:
    sim.partner.delete_flavor(call.param("id"), now=call.mutation_now)


def _convert_flavor(sim: Simulator, call: Call) -> None:
    entry_id = call.param("entryId")
    sim.partner.convert_flavor(entry_id, call.param("flavorParamsId"), now=call.mutation_now)


# ---- uploads and new content ----------------------------------------------------------


def _created(call: Call, result: dict[str, Any]) -> dict[str, Any]:
    call.created_id = result.get("id")
    return result


def _token_add(sim: Simulator, call: Call) -> dict[str, Any]:
    user = call.ks.user_id if call.ks is not None else ""
    token = sim.partner.add_upload_token(
        call.obj("uploadToken"), user_id=user, now=call.mutation_now
    )
    return _created(call, token)


def _token_get(sim: Simulator, call: Call) -> dict[str, Any]:
    return sim.partner.get_upload_token(call.param("uploadTokenId"), user_id=call.session_user)


def _token_list(sim: Simulator, call: Call) -> dict[str, Any]:
    objects, total = sim.partner.list_upload_tokens(
        call.obj("filter"), call.obj("pager"), user_id=call.session_user
    )
    return {"objects": objects, "totalCount": total, "objectType": "KalturaUploadTokenListResponse"}


def _token_delete(sim: Simulator, call: Call) -> None:
    sim.partner.delete_upload_token(
        call.param("uploadTokenId"), user_id=call.session_user, now=call.mutation_now
    )


def _token_upload(sim: Simulator, call: Call) -> dict[str, Any]:
    token_id = call.param("uploadTokenId")
    upload = call.file("fileData")
    resume_at = call.params.get("resumeAt")
    return sim.partner.upload_to_token(
        token_id,
        upload,
        resume=php_bool(call.params.get("resume"), False),
        final_chunk=php_bool(call.params.get("finalChunk"), True),
        resume_at=_php_float_int(resume_at, -1),
        user_id=call.session_user,
        now=call.mutation_now,
    )


def _media_add(sim: Simulator, call: Call) -> dict[str, Any]:
    entry = sim.partner.add_media_entry(
        call.required_obj("entry"),
        ks_user=call.ks.user_id if call.ks is not None else "",
        is_admin=call.ks is not None and call.ks.is_admin,
        now=call.mutation_now,
    )
    return _created(call, entry)


def _media_add_content(sim: Simulator, call: Call) -> dict[str, Any]:
    resource = call.params.get("resource")
    return sim.partner.add_content(
        call.param("entryId"),
        resource if isinstance(resource, dict) else None,
        now=call.mutation_now,
    )


_ASSET_OBJECT_PARAM = {
    "caption_captionasset": "captionAsset",
    "attachment_attachmentasset": "attachmentAsset",
    "thumbasset": "thumbAsset",
}


def _asset_add(sim: Simulator, call: Call) -> dict[str, Any]:
    kind = ASSET_SERVICES[call.service][0]
    entry_id = call.param("entryId")
    asset = call.required_obj(_ASSET_OBJECT_PARAM[call.service])
    return _created(call, sim.partner.add_asset(kind, entry_id, asset, now=call.mutation_now))


def _asset_set_content(sim: Simulator, call: Call) -> dict[str, Any]:
    kind = ASSET_SERVICES[call.service][0]
    asset_id = call.param("id")
    resource = call.required_obj("contentResource")
    return sim.partner.set_asset_content(kind, asset_id, resource, now=call.mutation_now)


def _thumb_set_default(sim: Simulator, call: Call) -> None:
    sim.partner.set_default_thumb(call.param("thumbAssetId"), now=call.mutation_now)


def _caption_set_default(sim: Simulator, call: Call) -> None:
    sim.partner.set_default_caption(call.param("captionAssetId"), now=call.mutation_now)


def _php_float_int(value: Any, default: int) -> int:
    """A ``float`` parameter as PHP casts it, as a whole number (resumeAt)."""
    if not isinstance(value, str) or value.strip() == "":
        return default
    try:
        return int(float(value))
    except ValueError:
        return 0


def _int(value: str, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


ROUTES: dict[str, Route] = {
    "session.start": Route(_session_start, needs_ks=False),
    "session.startwidgetsession": Route(_start_widget_session, needs_ks=False),
    "session.end": Route(_session_end, widget_ok=True),
    "apptoken.startsession": Route(_apptoken_start, widget_ok=True),
    "system.ping": Route(_ping, needs_ks=False),
    "baseentry.list": Route(_list_entries("baseentry", "KalturaBaseEntryListResponse")),
    "baseentry.get": Route(_get_entry),
    "baseentry.delete": Route(_delete_entry, mutating=True),
    "baseentry.recycle": Route(_recycle, mutating=True),
    "baseentry.restorerecycled": Route(_restore, mutating=True),
    "media.list": Route(_list_entries("media", "KalturaMediaListResponse")),
    "media.get": Route(_get_entry),
    "media.delete": Route(_delete_entry, mutating=True),
    "media.add": Route(_media_add, mutating=True),
    "media.addcontent": Route(_media_add_content, mutating=True),
    "flavorasset.delete": Route(_delete_flavor, mutating=True),
    "flavorasset.convert": Route(_convert_flavor, mutating=True),
    "uploadtoken.add": Route(_token_add, mutating=True),
    "uploadtoken.get": Route(_token_get),
    "uploadtoken.list": Route(_token_list),
    "uploadtoken.delete": Route(_token_delete, mutating=True),
    "uploadtoken.upload": Route(_token_upload, mutating=True),
    "thumbasset.setasdefault": Route(_thumb_set_default, mutating=True),
    "caption_captionasset.setasdefault": Route(_caption_set_default, mutating=True),
}
for _svc in ASSET_SERVICES:
    ROUTES[f"{_svc}.list"] = Route(_list_assets)
    ROUTES[f"{_svc}.get"] = Route(_get_asset)
    ROUTES[f"{_svc}.geturl"] = Route(_get_url)
    if _svc != "flavorasset":
        # serve checks no KS here: like serveFlavor, the URL itself is the credential.
        ROUTES[f"{_svc}.serve"] = Route(_serve, needs_ks=False, serve=True)
        ROUTES[f"{_svc}.add"] = Route(_asset_add, mutating=True)
        ROUTES[f"{_svc}.setcontent"] = Route(_asset_set_content, mutating=True)

# Params copied into a mutation record, and the ones that name its main object.
_ID_PARAMS = (
    "entryId",
    "id",
    "uploadTokenId",
    "thumbAssetId",
    "captionAssetId",
    "attachmentAssetId",
    "flavorAssetId",
)
_LOGGED_OBJECT_FIELDS = {
    "resource": ("token",),
    "contentResource": ("token",),
    "entry": ("referenceId", "parentEntryId"),
    "uploadToken": ("fileName",),
}
_LOGGED_PARAMS = frozenset({*_ID_PARAMS, "flavorParamsId", "resume", "finalChunk", "resumeAt"})

"""Exceptions raised by the Kaltura client.

    KalturaError
     ├── TransportError                 the HTTP exchange itself failed
     │    ├── HTTPStatusError(status)     non-200 from a proxy/CDN/WAF (PHP answers 200)
     │    ├── RequestTimeout              connect/read/total timeout
     │    ├── ConnectionFailed            refused, reset, DNS, TLS, server disconnected
     │    └── InvalidResponse             not JSON, HTML error page, truncated, hostile shape
     └── ApiError(code, message, args)  a KalturaAPIException body (HTTP 200)
          ├── AuthenticationError         INVALID_KS, MISSING_KS, START_SESSION_ERROR, APP_TOKEN_*
          ├── PermissionDenied            SERVICE_FORBIDDEN
          ├── NotFound                    ENTRY_ID_NOT_FOUND, *_ASSET_ID_NOT_FOUND
          ├── RateLimited                 ACTION_BLOCKED
          ├── ServerError                 INTERNAL_SERVERL_ERROR (sic), INTERNAL_*, LOCK_TIMED_OUT
          ├── ListCapExceeded             QUERY_EXCEEDED_MAX_MATCHES_ALLOWED (10,000-row cap)
          └── AssetNotReady               *_IS_NOT_READY

aiohttp/asyncio failures are translated into TransportError subclasses in one place
(transport.py) and chained with ``from``. The code -> class table lives here only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class KalturaError(Exception):
    """Base of everything the Kaltura client raises."""


class TransportError(KalturaError):
    """The HTTP request did not produce a usable Kaltura answer."""


class HTTPStatusError(TransportError):
    """A non-200 HTTP status; Kaltura itself answers API errors with 200."""

    def __init__(self, status: int, message: str = "", retry_after: float | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(message or f"HTTP {status}")


class RequestTimeout(TransportError):
    """Connecting or reading the response took longer than configured."""


class ConnectionFailed(TransportError):
    """The connection could not be made or broke before a response arrived."""


class InvalidResponse(TransportError):
    """The body was not valid JSON, or had a shape that cannot be trusted."""


class ApiError(KalturaError):
    """A ``KalturaAPIException`` answer: ``code``, ``message``, ``args``."""

    def __init__(self, code: str, message: str = "", args: Mapping[str, str] | None = None) -> None:
        self.code = code
        self.message = message
        # Named ``args`` on the wire; Exception.args is left alone (set by super()).
        self.api_args: dict[str, str] = dict(args or {})
        super().__init__(f"{code}: {message}" if message else code)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.message, self.api_args))


class AuthenticationError(ApiError):
    """The session could not be started, or the KS was rejected."""


class PermissionDenied(ApiError):
    """The KS role lacks the permission for this service/action."""


class NotFound(ApiError):
    """The entry or asset does not exist (or is already deleted)."""


class RateLimited(ApiError):
    """``ACTION_BLOCKED``: a per-partner rate-limit window is exhausted."""


class ServerError(ApiError):
    """A transient server-side failure; worth retrying with backoff."""


class ListCapExceeded(ApiError):
    """A list page starts at or beyond row 10,000 of the search window."""


class AssetNotReady(ApiError):
    """getUrl on an asset whose status is not READY (or EXPORTING)."""


# The one code -> class table. Exact codes first; suffix/prefix rules below cover
# the per-kind families (FLAVOR_/CAPTION_/THUMB_/ATTACHMENT_ ...).
ERROR_CLASSES: dict[str, type[ApiError]] = {
    "INVALID_KS": AuthenticationError,
    "MISSING_KS": AuthenticationError,
    "START_SESSION_ERROR": AuthenticationError,
    "INVALID_APP_TOKEN_HASH": AuthenticationError,
    "SERVICE_FORBIDDEN": PermissionDenied,
    "ENTRY_ID_NOT_FOUND": NotFound,
    "ACTION_BLOCKED": RateLimited,
    "INTERNAL_SERVERL_ERROR": ServerError,
    "INTERNAL_SERVER_ERROR": ServerError,
    "INTERNAL_DATABASE_ERROR": ServerError,
    "LOCK_TIMED_OUT": ServerError,
    "QUERY_EXCEEDED_MAX_MATCHES_ALLOWED": ListCapExceeded,
}
_PREFIX_CLASSES: tuple[tuple[str, type[ApiError]], ...] = (("APP_TOKEN_", AuthenticationError),)
_SUFFIX_CLASSES: tuple[tuple[str, type[ApiError]], ...] = (
    ("_ASSET_ID_NOT_FOUND", NotFound),
    ("_IS_NOT_READY", AssetNotReady),
)


def error_class_for(code: str) -> type[ApiError]:
    """The most specific ApiError subclass for a Kaltura error code."""
    cls = ERROR_CLASSES.get(code)
    if cls is not None:
        return cls
    for prefix, cls in _PREFIX_CLASSES:
        if code.startswith(prefix):
            return cls
    for suffix, cls in _SUFFIX_CLASSES:
        if code.endswith(suffix):
            return cls
    return ApiError


def is_api_exception(obj: Any) -> bool:
    """True for a decoded JSON value shaped like a KalturaAPIException."""
    return isinstance(obj, dict) and obj.get("objectType") == "KalturaAPIException"


def api_error_from_wire(obj: Any) -> ApiError:
    """Build the mapped ApiError from a decoded ``KalturaAPIException`` object.

    ``args`` is ``[]`` on the wire when empty (PHP's empty array). A body without a
    string ``code`` is not trustworthy and raises InvalidResponse instead.
    """
    if not isinstance(obj, dict):
        raise InvalidResponse(f"API exception is a {type(obj).__name__}, not an object")
    code = obj.get("code")
    if not isinstance(code, str) or not code:
        raise InvalidResponse("API exception without a string 'code'")
    message = obj.get("message", "")
    if not isinstance(message, str):
        message = str(message)
    raw_args = obj.get("args")
    args: dict[str, str] = {}
    if isinstance(raw_args, dict):
        args = {str(k): v if isinstance(v, str) else str(v) for k, v in raw_args.items()}
    elif isinstance(raw_args, list):
        # Kaltura sometimes sends args as a list of {name, value} objects.
        for item in raw_args:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                args[item["name"]] = str(item.get("value", ""))
    return error_class_for(code)(code, message, args)

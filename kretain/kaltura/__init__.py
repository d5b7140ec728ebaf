"""Async Kaltura api_v3 client: sessions, retries, rate limits, typed helpers."""

from kretain.kaltura.client import (
    ASSET_SERVICES,
    AssetKind,
    Call,
    ClientConfig,
    ClientStats,
    KalturaClient,
    raise_for_items,
)
from kretain.kaltura.errors import (
    ApiError,
    AssetNotReady,
    AuthenticationError,
    ConnectionFailed,
    HTTPStatusError,
    InvalidResponse,
    KalturaError,
    ListCapExceeded,
    NotFound,
    PermissionDenied,
    RateLimited,
    RequestTimeout,
    ServerError,
    TransportError,
    api_error_from_wire,
)
from kretain.kaltura.models import ListPage
from kretain.kaltura.retry import RetryDecision, RetryPolicy, decide

__all__ = [
    "ASSET_SERVICES",
    "ApiError",
    "AssetKind",
    "AssetNotReady",
    "AuthenticationError",
    "Call",
    "ClientConfig",
    "ClientStats",
    "ConnectionFailed",
    "HTTPStatusError",
    "InvalidResponse",
    "KalturaClient",
    "KalturaError",
    "ListCapExceeded",
    "ListPage",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "RequestTimeout",
    "RetryDecision",
    "RetryPolicy",
    "ServerError",
    "TransportError",
    "api_error_from_wire",
    "decide",
    "raise_for_items",
]

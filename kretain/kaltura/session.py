"""The Kaltura session (KS): start it, renew it ahead of expiry or when rejected.

Two ways in:
- admin secret: ``session.start`` (type 2 = ADMIN, privileges default
  ``disableentitlement``);
- app token: ``session.startWidgetSession(widgetId=_<pid>)`` then
  ``appToken.startSession(id, tokenHash=hex(HASH(widgetKs + token)))``. HASH is the
  token's own hashType, fixed when the token was created; it cannot be discovered
  without a KS, so it is a setting. We default to SHA256 because Kaltura's app-token
  guide creates tokens with SHA256; tokens created without a hashType use SHA1 and
  need ``app_token_hash_type="SHA1"``.

Renewal: at 80% of the known lifetime, and whenever a call gets INVALID_KS. All
concurrent callers share one renewal (an asyncio.Lock plus a "stale KS" check).
Secrets and every KS obtained are registered with the log redactor.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from kretain.kaltura.errors import ApiError, AuthenticationError, InvalidResponse
from kretain.log import register_secret

HASH_TYPES = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}
RENEW_AT = 0.8  # fraction of the lifetime after which the KS is renewed proactively
SESSION_TYPE_ADMIN = 2

# (service, action, params) -> decoded JSON; the client's limited, retrying sender.
Sender = Callable[[str, str, dict[str, Any]], Awaitable[Any]]

log = structlog.get_logger("kretain.kaltura")


@dataclass(frozen=True)
class Credentials:
    partner_id: int
    admin_secret: str | None = None
    user_id: str = ""
    app_token_id: str | None = None
    app_token: str | None = None
    app_token_hash_type: str = "SHA256"
    privileges: str = "disableentitlement"
    expiry: int = 86_400

    def __repr__(self) -> str:
        return f"Credentials(partner_id={self.partner_id}, app_token_id={self.app_token_id!r})"


def app_token_hash(widget_ks: str, token: str, hash_type: str) -> str:
    """Lowercase hex of HASH(widgetKs + token), as appToken.startSession expects."""
    name = HASH_TYPES.get(hash_type.upper())
    if name is None:
        raise ValueError(f"unsupported app token hash type {hash_type!r}")
    return hashlib.new(name, (widget_ks + token).encode("utf-8")).hexdigest()


class SessionManager:
    """Holds the current KS; ``get()`` returns a fresh one, ``invalidate()`` drops it."""

    def __init__(
        self,
        credentials: Credentials,
        send: Sender,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if credentials.admin_secret is None and not (
            credentials.app_token_id and credentials.app_token
        ):
            raise ValueError("need an admin secret or an app token id and token")
        self._creds = credentials
        self._send = send
        self._clock = clock
        self._lock = asyncio.Lock()
        self._ks: str | None = None
        self._started_at = 0.0
        self._lifetime = float(credentials.expiry)
        self.renewals = 0  # sessions started after the first one
        self.starts = 0
        # Wrong credentials stay wrong: later callers get the same error, no new request.
        self._refused: AuthenticationError | None = None
        register_secret(credentials.admin_secret)
        register_secret(credentials.app_token)

    @property
    def ks(self) -> str | None:
        """The current KS, if any (no network)."""
        return self._ks

    def _fresh(self) -> bool:
        return self._ks is not None and self._clock() - self._started_at < self._lifetime * RENEW_AT

    async def get(self) -> str:
        """A KS that is not near its expiry; starts or renews one if needed."""
        if self._fresh():
            return self._ks  # type: ignore[return-value]
        async with self._lock:
            if self._refused is not None:
                raise self._refused
            if not self._fresh():  # another task may have renewed while we waited
                try:
                    await self._start()
                except AuthenticationError as exc:
                    self._refused = exc
                    raise
            return self._ks  # type: ignore[return-value]

    async def invalidate(self, stale_ks: str | None, *, expired: bool = False) -> None:
        """Drop ``stale_ks`` after INVALID_KS; later ``get()`` calls start a new session.

        If the server says it expired before our renewal point, the real lifetime is
        shorter than we asked for (partner cap): learn it from the KS's age.
        """
        async with self._lock:
            if stale_ks is None or stale_ks != self._ks:
                return  # already replaced by a concurrent renewal
            if expired:
                age = self._clock() - self._started_at
                if 0 < age < self._lifetime:
                    self._lifetime = max(age, 1.0)
            self._ks = None

    async def _start(self) -> None:
        if self._creds.admin_secret is not None:
            ks, lifetime = await self._start_with_secret()
        else:
            ks, lifetime = await self._start_with_app_token()
        register_secret(ks)
        if self.starts:
            self.renewals += 1
        self.starts += 1
        self._ks = ks
        self._started_at = self._clock()
        self._lifetime = min(self._lifetime, lifetime) if self.starts > 1 else lifetime
        log.info(
            "kaltura.session_started",
            partner_id=self._creds.partner_id,
            via="admin_secret" if self._creds.admin_secret is not None else "app_token",
            lifetime=round(self._lifetime),
        )

    async def _start_with_secret(self) -> tuple[str, float]:
        c = self._creds
        params: dict[str, Any] = {
            "secret": c.admin_secret,
            "partnerId": c.partner_id,
            "type": SESSION_TYPE_ADMIN,
            "userId": c.user_id,
            "expiry": c.expiry,
            "privileges": c.privileges,
        }
        try:
            result = await self._send("session", "start", params)
        except AuthenticationError as exc:
            raise AuthenticationError(
                exc.code,
                f"session.start refused for partner {c.partner_id}: wrong admin secret, "
                f"unknown or blocked partner ({exc.code})",
                exc.api_args,
            ) from exc
        return _ks_string(result, "session.start"), float(c.expiry)

    async def _start_with_app_token(self) -> tuple[str, float]:
        c = self._creds
        assert c.app_token_id is not None and c.app_token is not None
        widget = await self._send(
            "session", "startWidgetSession", {"widgetId": f"_{c.partner_id}", "expiry": 3600}
        )
        if not isinstance(widget, dict):
            raise InvalidResponse("session.startWidgetSession: expected an object")
        widget_ks = _ks_string(widget.get("ks"), "session.startWidgetSession")
        register_secret(widget_ks)
        params: dict[str, Any] = {
            "ks": widget_ks,
            "id": c.app_token_id,
            "tokenHash": app_token_hash(widget_ks, c.app_token, c.app_token_hash_type),
            "type": SESSION_TYPE_ADMIN,
            "expiry": c.expiry,
        }
        if c.user_id:
            params["userId"] = c.user_id
        try:
            info = await self._send("apptoken", "startSession", params)
        except ApiError as exc:
            if exc.code.startswith("APP_TOKEN_") or exc.code == "INVALID_APP_TOKEN_HASH":
                hint = (
                    " (check app_token_hash_type matches the token's hashType)"
                    if exc.code == "INVALID_APP_TOKEN_HASH"
                    else ""
                )
                raise AuthenticationError(
                    exc.code,
                    f"appToken.startSession refused token {c.app_token_id!r} for partner "
                    f"{c.partner_id}: {exc.code}{hint}",
                    exc.api_args,
                ) from exc
            raise
        if not isinstance(info, dict):
            raise InvalidResponse("appToken.startSession: expected a KalturaSessionInfo object")
        ks = _ks_string(info.get("ks"), "appToken.startSession")
        lifetime = float(c.expiry)
        expiry = info.get("expiry")
        if isinstance(expiry, int | float) and not isinstance(expiry, bool):
            # Absolute Unix time, possibly cut by the token's sessionDuration.
            remaining = expiry - time.time()
            if remaining > 0:
                lifetime = min(lifetime, remaining)
        return ks, lifetime


def _ks_string(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 8192:
        raise InvalidResponse(f"{what} did not return a KS string")
    if any(ch.isspace() for ch in value):
        raise InvalidResponse(f"{what} returned a KS with whitespace")
    return value

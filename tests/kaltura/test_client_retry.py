"""retry.decide: pure decisions, injected random source, no network."""

from __future__ import annotations

import pytest

from kretain.kaltura.errors import (
    ApiError,
    AuthenticationError,
    ConnectionFailed,
    HTTPStatusError,
    InvalidResponse,
    ListCapExceeded,
    NotFound,
    PermissionDenied,
    RateLimited,
    RequestTimeout,
    ServerError,
)
from kretain.kaltura.retry import RetryPolicy, backoff_delay, classify, decide

POLICY = RetryPolicy(
    max_attempts=4,
    base_delay=1.0,
    max_delay=5.0,
    rate_limit_window=10.0,
    rate_limit_attempts=6,
    rate_limit_jitter=0.2,
)


def one() -> float:
    return 0.999999


def zero() -> float:
    return 0.0


@pytest.mark.parametrize(
    "error",
    [
        HTTPStatusError(500),
        HTTPStatusError(502),
        HTTPStatusError(503),
        HTTPStatusError(504),
        RequestTimeout("t"),
        ConnectionFailed("c"),
        InvalidResponse("cut"),
        ServerError("INTERNAL_SERVERL_ERROR"),
        ServerError("LOCK_TIMED_OUT"),
    ],
)
def test_transient_errors_back_off_exponentially_then_stop(error: Exception) -> None:
    assert classify(error) == "transient"
    ceilings = [decide(error, n, POLICY, one).delay for n in (1, 2, 3)]
    assert ceilings == pytest.approx([1.0, 2.0, 4.0], rel=1e-4)
    assert decide(error, 1, POLICY, zero).delay == 0.0  # full jitter reaches zero
    assert all(decide(error, n, POLICY, one).retry for n in (1, 2, 3))
    last = decide(error, 4, POLICY, one)
    assert not last.retry  # max_attempts counts the first try


def test_backoff_is_capped() -> None:
    assert backoff_delay(10, POLICY, one) == pytest.approx(5.0, rel=1e-4)


@pytest.mark.parametrize(
    "error",
    [
        NotFound("ENTRY_ID_NOT_FOUND"),
        NotFound("FLAVOR_ASSET_ID_NOT_FOUND"),
        PermissionDenied("SERVICE_FORBIDDEN"),
        ListCapExceeded("QUERY_EXCEEDED_MAX_MATCHES_ALLOWED"),
        ApiError("INVALID_ENUM_VALUE"),
        AuthenticationError("START_SESSION_ERROR"),
        AuthenticationError("INVALID_APP_TOKEN_HASH"),
        HTTPStatusError(403),
        HTTPStatusError(404),
        ValueError("not ours"),
    ],
)
def test_permanent_errors_are_not_retried(error: Exception) -> None:
    decision = decide(error, 1, POLICY, one)
    assert not decision.retry
    assert decision.category == "permanent"


def test_rate_limited_waits_at_least_the_window_with_own_budget() -> None:
    err = RateLimited("ACTION_BLOCKED")
    low = decide(err, 1, POLICY, zero)
    high = decide(err, 1, POLICY, one)
    assert low.retry and low.delay == pytest.approx(10.0)
    assert high.delay == pytest.approx(12.0, rel=1e-4)  # window + up to 20% jitter
    # its budget (6) is larger than the transient one (4)
    assert decide(err, 5, POLICY, zero).retry
    assert not decide(err, 6, POLICY, zero).retry


def test_http_429_and_retry_after() -> None:
    d429 = decide(HTTPStatusError(429, retry_after=3.0), 1, POLICY, zero)
    assert d429.category == "rate_limited" and d429.retry and d429.delay == pytest.approx(3.0)
    d429_plain = decide(HTTPStatusError(429), 1, POLICY, zero)
    assert d429_plain.delay == pytest.approx(10.0)
    d503 = decide(HTTPStatusError(503, retry_after=7.0), 1, POLICY, zero)
    assert d503.category == "transient" and d503.delay == pytest.approx(7.0)
    hostile = decide(HTTPStatusError(429, retry_after=1e9), 1, POLICY, zero)
    assert hostile.delay <= 300.0


def test_invalid_ks_renews_once() -> None:
    err = AuthenticationError("INVALID_KS", 'Invalid KS "EXPIRED"')
    first = decide(err, 1, POLICY, one)
    assert first.retry and first.renew_session and first.delay == 0.0
    assert not decide(err, 2, POLICY, one).retry
    assert not decide(AuthenticationError("MISSING_KS"), 1, POLICY, one).retry

"""Pure retry decisions: which failures to retry, and how long to wait first.

No I/O here. The client counts failures per *category* for one logical call and
asks :func:`decide` after each failure; each category has its own budget, so a
call that is rate-limited twice and then times out once is not penalised twice.

- ``transient``: HTTP 5xx (and 408), timeouts, connection failures, invalid/truncated
  bodies, ServerError codes -> exponential backoff with full jitter, ``max_attempts``.
- ``rate_limited``: ACTION_BLOCKED, HTTP 429 -> wait at least the rate-limit window
  (or Retry-After) plus jitter, own larger budget ``rate_limit_attempts``.
- ``session``: INVALID_KS -> renew the KS, retry once, no wait.
- ``permanent``: everything else (NotFound, PermissionDenied, ListCapExceeded, other
  ApiErrors, HTTP 4xx, non-Kaltura exceptions) -> no retry.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from kretain.kaltura.errors import (
    AuthenticationError,
    ConnectionFailed,
    HTTPStatusError,
    InvalidResponse,
    RateLimited,
    RequestTimeout,
    ServerError,
)

Category = Literal["transient", "rate_limited", "session", "permanent"]

# Cap on any server-suggested wait (Retry-After) so a hostile header cannot stall a run.
MAX_SUGGESTED_WAIT = 300.0


@dataclass(frozen=True)
class RetryPolicy:
    """Budgets and delays. ``max_attempts`` counts the first try too."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    rate_limit_window: float = 10.0
    rate_limit_attempts: int = 12
    # Extra random wait on top of the window, as a fraction of it (spreads waiters).
    rate_limit_jitter: float = 0.2
    session_renewals: int = 1


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay: float = 0.0
    category: Category = "permanent"
    renew_session: bool = False


def classify(error: BaseException) -> Category:
    """The retry category of a failure."""
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, HTTPStatusError):
        if error.status == 429:
            return "rate_limited"
        if error.status >= 500 or error.status == 408:
            return "transient"
        return "permanent"
    if isinstance(error, RequestTimeout | ConnectionFailed | InvalidResponse | ServerError):
        return "transient"
    if isinstance(error, AuthenticationError) and error.code == "INVALID_KS":
        return "session"
    return "permanent"


def backoff_delay(attempt: int, policy: RetryPolicy, rand: Callable[[], float]) -> float:
    """Full jitter: uniform in [0, min(max_delay, base * 2**(attempt-1))]."""
    ceiling = min(policy.max_delay, policy.base_delay * 2 ** max(0, attempt - 1))
    return rand() * ceiling


def decide(
    error: BaseException,
    attempt: int,
    policy: RetryPolicy,
    rand: Callable[[], float] = random.random,
) -> RetryDecision:
    """Whether to retry after ``error``; ``attempt`` = failures so far in its category (>= 1).

    ``rand`` returns floats in [0, 1); inject a fixed source in tests.
    """
    category = classify(error)
    if category == "permanent":
        return RetryDecision(False, 0.0, category)
    if category == "session":
        if attempt <= policy.session_renewals:
            return RetryDecision(True, 0.0, category, renew_session=True)
        return RetryDecision(False, 0.0, category)
    if category == "rate_limited":
        if attempt >= policy.rate_limit_attempts:
            return RetryDecision(False, 0.0, category)
        base = policy.rate_limit_window
        suggested = getattr(error, "retry_after", None)
        if suggested is not None:
            base = min(max(suggested, 0.0), MAX_SUGGESTED_WAIT)
        jitter = rand() * policy.rate_limit_jitter * max(base, policy.rate_limit_window)
        return RetryDecision(True, base + jitter, category)
    # transient
    if attempt >= policy.max_attempts:
        return RetryDecision(False, 0.0, category)
    delay = backoff_delay(attempt, policy, rand)
    suggested = getattr(error, "retry_after", None)
    if suggested is not None:  # a 503 with Retry-After: honour it, plus the jitter
        delay += min(max(suggested, 0.0), MAX_SUGGESTED_WAIT)
    return RetryDecision(True, delay, category)

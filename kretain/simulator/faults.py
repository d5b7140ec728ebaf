"""Knobs that make the simulator misbehave on purpose, and the counters it keeps.

``Knobs`` is a plain mutable dataclass: tests change fields while the server
runs (the server reads them on every request, from its own thread; single
attribute reads/writes are atomic under the GIL). Randomised faults draw from
one ``random.Random(fault_seed)`` so a run is repeatable for a given order of
requests.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

HttpFault = Literal["http_500", "http_502", "http_503", "hang", "truncate"]


def _default_rate_limits() -> dict[str, tuple[int, float]]:
    return {"baseentry.delete": (35, 10.0)}


@dataclass
class Knobs:
    # "service.action" (lower case) -> (limit, window seconds); fixed window from first call,
    # blocked calls count too (Kaltura's memcache counter). set_rate_limit() adds one.
    rate_limits: dict[str, tuple[int, float]] = field(default_factory=_default_rate_limits)
    latency_ms: float = 0.0  # added to every API HTTP request
    download_bandwidth: float | None = None  # bytes/s per download
    total_bandwidth: float | None = None  # bytes/s shared by all downloads
    ks_lifetime: int | None = None  # cap on any KS's lifetime, seconds
    ignore_range: bool = False  # answer 200 with the whole file even when Range is sent
    # Fault rates, 0..1.
    http_500: float = 0.0
    http_502: float = 0.0
    http_503: float = 0.0
    hang: float = 0.0
    hang_seconds: float = 30.0
    truncate: float = 0.0
    internal_error: float = 0.0  # per API call: INTERNAL_SERVERL_ERROR
    download_error: float = 0.0  # per download: X-Kaltura error header, empty body
    download_error_code: int = 6  # the <n> in X-Kaltura: error-<n> for injected download errors
    # Per successful mutating call: the change is made, then the answer is lost (HTTP 503,
    # no body; a multirequest loses its whole answer after every item ran).
    lost_answer: float = 0.0
    # "service.action" names lost_answer applies to; None: every mutating action.
    lost_answer_actions: set[str] | None = None
    fault_seed: int = 0
    # Which requests HTTP-level faults (500/502/503/hang/truncate) hit: "all", "api", "download".
    fault_scope: Literal["all", "api", "download"] = "all"
    # Reference "now" for relative times in list filters; None = wall clock.
    now: int | None = None
    # Entries whose data is broken the way production Kaltura's sometimes is: any asset
    # list (flavor, caption, attachment, thumb) whose entryIdEqual/entryIdIn names one of
    # them fails with INTERNAL_SERVERL_ERROR, every time, whatever else it names.
    broken_entries: set[str] = field(default_factory=set)
    _rng: random.Random | None = field(default=None, repr=False, compare=False)
    _fail_next: dict[str, list[list[object]]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _lose_next: Counter[str] = field(default_factory=Counter, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    # ---- test hooks --------------------------------------------------------
    def fail_next(self, service_action: str, code: str, times: int = 1, *args: object) -> None:
        """Make the next ``times`` calls of ``service_action`` fail with API error ``code``."""
        with self._lock:
            self._fail_next.setdefault(service_action.lower(), []).append([code, times, args])

    def take_failure(self, service_action: str) -> tuple[str, tuple[object, ...]] | None:
        with self._lock:
            queue = self._fail_next.get(service_action.lower())
            if not queue:
                return None
            code, remaining, args = queue[0]
            if int(remaining) <= 1:  # type: ignore[call-overload]
                queue.pop(0)
            else:
                queue[0][1] = int(remaining) - 1  # type: ignore[call-overload]
            return str(code), tuple(args)  # type: ignore[arg-type]

    def lose_next(self, service_action: str, times: int = 1) -> None:
        """Make the next ``times`` successful calls of ``service_action`` lose their answer."""
        with self._lock:
            self._lose_next[service_action.lower()] += times

    def take_lost_answer(self, service_action: str) -> bool:
        """Whether this successful mutating call loses its answer (lose_next first)."""
        key = service_action.lower()
        with self._lock:
            if self._lose_next[key] > 0:
                self._lose_next[key] -= 1
                return True
        actions = self.lost_answer_actions
        if actions is not None and key not in {a.lower() for a in actions}:
            return False
        return self._draw(self.lost_answer)

    def set_rate_limit(self, service_action: str, limit: int, window: float = 10.0) -> None:
        """Block ``service_action`` (e.g. "flavorAsset.delete", "baseEntry.recycle",
        "flavorAsset.convert") past ``limit`` calls per ``window`` seconds."""
        self.rate_limits[service_action.lower()] = (int(limit), float(window))

    def clear_faults(self) -> None:
        """Back to a well-behaved server (rate limits kept)."""
        self.http_500 = self.http_502 = self.http_503 = 0.0
        self.hang = self.truncate = self.internal_error = self.download_error = 0.0
        self.lost_answer = 0.0
        self.latency_ms = 0.0
        with self._lock:
            self._fail_next.clear()
            self._lose_next.clear()

    # ---- draws -------------------------------------------------------------
    def _draw(self, rate: float) -> bool:
        if rate <= 0.0:
            return False
        if rate >= 1.0:
            return True
        with self._lock:
            if self._rng is None:
                self._rng = random.Random(self.fault_seed)
            return self._rng.random() < rate

    def pick_http_fault(self, kind: Literal["api", "download"]) -> HttpFault | None:
        if self.fault_scope not in ("all", kind):
            return None
        for name in ("http_500", "http_502", "http_503", "hang", "truncate"):
            if self._draw(getattr(self, name)):
                return name  # type: ignore[return-value]
        return None

    def draw_internal_error(self) -> bool:
        return self._draw(self.internal_error)

    def draw_download_error(self) -> bool:
        return self._draw(self.download_error)


@dataclass
class Stats:
    requests: int = 0  # HTTP requests of any kind
    api_requests: int = 0  # HTTP requests to /api_v3 (a multirequest counts once)
    calls: Counter[str] = field(default_factory=Counter)  # "service.action" per API call
    downloads: int = 0
    bytes_served: int = 0
    faults: Counter[str] = field(default_factory=Counter)  # injected faults by name

    def reset(self) -> None:
        self.requests = self.api_requests = self.downloads = self.bytes_served = 0
        self.calls.clear()
        self.faults.clear()


class RateLimiter:
    """Kaltura's memcache counter: fixed window from the first call; blocked calls count."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str, limit: int, window: float, now: float | None = None) -> bool:
        """Count one call; True when it is over the limit (must be blocked)."""
        t = time.monotonic() if now is None else now
        start, count = self._windows.get(key, (t, 0))
        if t - start >= window:
            start, count = t, 0
        count += 1
        self._windows[key] = (start, count)
        return count > limit


class TokenBucket:
    """Bytes-per-second pacing; one per download or one shared (total_bandwidth)."""

    # Credit a sender may carry when it falls behind (time spent writing a chunk), so the
    # average rate reaches the cap instead of sleeping a full chunk-time after every write.
    BURST_SECONDS = 0.05

    def __init__(self) -> None:
        self._next = time.monotonic()

    async def take(self, nbytes: int, rate: float | None) -> None:
        if not rate or rate <= 0:
            return
        # No await between reading and moving _next: atomic on the event loop.
        now = time.monotonic()
        self._next = max(self._next, now - self.BURST_SECONDS) + nbytes / rate
        delay = self._next - now
        if delay > 0:
            await asyncio.sleep(delay)

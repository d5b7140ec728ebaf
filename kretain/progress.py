"""Progress for long runs: one live line on a terminal, periodic log lines otherwise.

Workers call ``progress(event, **counts)`` (e.g. ``discover.page``, ``size.batch``,
``backup.file``); this module turns those calls into what a person watching sees:
entries done, rate, ETA when a total is known, and API requests per second.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import humanize

# The count that measures "work done" for each stage, and the count that is its total.
_DONE_KEYS = ("listed", "sized", "entries_done", "done", "archived", "checked")
_TOTAL_KEYS = ("total", "expected", "total_count")


@dataclass
class _Stage:
    started: float
    requests: int
    counts: dict[str, Any] = field(default_factory=dict)


class ProgressReporter:
    """Callable handed to workers as ``progress``.

    Stages may run at the same time (sizing takes candidates while discovery still
    lists): each keeps its own counts and clock, and the line shows every active one.
    """

    def __init__(
        self,
        *,
        stream: TextIO | None = None,
        live: bool | None = None,
        interval: float = 10.0,
        requests: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.interval = 0.25 if self.live else interval
        self.requests = requests
        self.clock = clock
        self.active: dict[str, _Stage] = {}
        self.last_emit = 0.0
        self._line_len = 0

    def __call__(self, event: str, **counts: Any) -> None:
        name = event.split(".", 1)[0]
        stage = self.active.get(name)
        if stage is None:
            requests = self.requests() if self.requests is not None else 0
            stage = self.active[name] = _Stage(self.clock(), requests)
        stage.counts.update(counts)
        now = self.clock()
        if event.endswith((".done", ".stop")):
            # The stage's last word gets a line of its own, then leaves the live line.
            self._emit(self._stage_line(name, stage), final=True)
            del self.active[name]
        elif now - self.last_emit >= self.interval:
            self.last_emit = now
            self._emit(self.line(), final=False)

    def line(self) -> str:
        return " | ".join(self._stage_line(n, s) for n, s in self.active.items())

    def _stage_line(self, name: str, stage: _Stage) -> str:
        counts = stage.counts
        elapsed = max(self.clock() - stage.started, 1e-6)
        done_key = next((k for k in _DONE_KEYS if k in counts), None)
        total_key = next((k for k in _TOTAL_KEYS if k in counts), None)
        parts = [f"{name}:"]
        if done_key:
            done = int(counts[done_key] or 0)
            rate = done / elapsed
            parts.append(f"{done_key} {humanize.intcomma(done)}")
            parts.append(f"{rate:,.0f}/s")
            if total_key and counts[total_key]:
                total = int(counts[total_key])
                parts.append(f"of {humanize.intcomma(total)}")
                if rate > 0 and total > done:
                    parts.append(f"ETA {humanize.naturaldelta((total - done) / rate)}")
        others = [
            f"{k} {humanize.naturalsize(v, binary=True) if 'bytes' in k else v}"
            for k, v in counts.items()
            if k not in (done_key, total_key)
            and isinstance(v, int)
            and not isinstance(v, bool)
            and v
        ]
        parts.extend(others[:6])
        if self.requests is not None:
            parts.append(f"{(self.requests() - stage.requests) / elapsed:,.1f} req/s")
        parts.append(f"{humanize.naturaldelta(elapsed)} elapsed")
        return " ".join(parts)

    def _emit(self, text: str, *, final: bool) -> None:
        if self.live:
            pad = max(self._line_len - len(text), 0)
            self.stream.write("\r" + text + " " * pad)
            self._line_len = len(text)
            if final:
                self.finish_line()
            self.stream.flush()
        else:
            # Plain lines, not log records: they must show whatever the log level is.
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.stream.write(f"{stamp} {text}\n")
            self.stream.flush()

    def finish_line(self) -> None:
        if self.live and self._line_len:
            self.stream.write("\n")
            self.stream.flush()
            self._line_len = 0

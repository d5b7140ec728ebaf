"""Progress for long runs: one live line on a terminal, periodic log lines otherwise.

Workers call ``progress(event, **counts)`` (e.g. ``discover.page``, ``size.batch``,
``backup.entry``); this module turns those calls into what a person watching sees:
entries done, rate, ETA when a total is known, and API requests per second.

Event keys read (counts are cumulative for the stage; later values replace earlier ones):
- work done: the first of ``listed``, ``sized``, ``entries_done``, ``done``, ``archived``,
  ``checked`` that the stage's events carry;
- total: the first of ``total``, ``expected``, ``total_count``. With a total the line shows
  "of N" and an ETA from the average rate since the stage started. Today's workers send no
  total (discovery cannot know one; sizing and backup will pass ``total`` = rows to do);
- any other int count is shown by name; keys with ``bytes`` in them in binary units;
- an event ending in ``.done`` or ``.stop`` ends the stage with a line of its own.

On a terminal the line is rewritten in place (``\r``, then clear to the end of the line) and
cut to the terminal's width, read at every render, so it never wraps and scrolls the screen:
details are dropped stage by stage before the text is cut.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import humanize

from kretain.output import display_width

# The count that measures "work done" for each stage, and the count that is its total.
_DONE_KEYS = ("listed", "sized", "entries_done", "done", "archived", "checked")
_TOTAL_KEYS = ("total", "expected", "total_count")
_CLEAR_TO_EOL = "\x1b[K"


def format_eta(seconds: float) -> str:
    """Compact time left: ``45s``, ``3m 20s``, ``1h 05m``, ``2d 03h``."""
    s = max(round(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86_400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86_400}d {s % 86_400 // 3600:02d}h"


def eta_seconds(done: int, total: int, elapsed: float) -> float | None:
    """Seconds left at the average rate so far; None when it cannot be estimated yet."""
    if done <= 0 or elapsed <= 0 or total <= done:
        return None
    return (total - done) / (done / elapsed)


def terminal_columns(stream: TextIO) -> int:
    """Columns of the terminal ``stream`` shows on ($COLUMNS first, as shutil does)."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):  # not a real file (StringIO, pipes)
        return shutil.get_terminal_size().columns


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal cells, ending in "…" when cut."""
    if display_width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = display_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


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
            self._emit(lambda detail: self._stage_line(name, stage, detail), final=True)
            del self.active[name]
        elif now - self.last_emit >= self.interval:
            self.last_emit = now
            self._emit(self.line, final=False)

    def line(self, detail: int = 0) -> str:
        return " | ".join(self._stage_line(n, s, detail) for n, s in self.active.items())

    def _stage_line(self, name: str, stage: _Stage, detail: int = 0) -> str:
        """One stage's text; ``detail`` 0 shows everything, 1 fewer counts, 2 only the
        essentials (done, rate, total, ETA), 3 only done and ETA."""
        counts = stage.counts
        elapsed = max(self.clock() - stage.started, 1e-6)
        done_key = next((k for k in _DONE_KEYS if k in counts), None)
        total_key = next((k for k in _TOTAL_KEYS if k in counts), None)
        parts = [f"{name}:"]
        if done_key:
            done = int(counts[done_key] or 0)
            parts.append(f"{done_key} {humanize.intcomma(done)}")
            if detail < 3:
                parts.append(f"{done / elapsed:,.0f}/s")
            if total_key and counts[total_key]:
                total = int(counts[total_key])
                if detail < 3:
                    parts.append(f"of {humanize.intcomma(total)}")
                eta = eta_seconds(done, total, elapsed)
                if eta is not None:
                    parts.append(f"ETA {format_eta(eta)}")
        if detail >= 2:
            return " ".join(parts)
        others = [
            f"{k} {humanize.naturalsize(v, binary=True) if 'bytes' in k else v}"
            for k, v in counts.items()
            if k not in (done_key, total_key)
            and isinstance(v, int)
            and not isinstance(v, bool)
            and v
        ]
        parts.extend(others[: 6 if detail == 0 else 2])
        if self.requests is not None:
            parts.append(f"{(self.requests() - stage.requests) / elapsed:,.1f} req/s")
        if detail == 0:
            parts.append(f"{humanize.naturaldelta(elapsed)} elapsed")
        return " ".join(parts)

    def _fitted(self, render: Callable[[int], str]) -> str:
        # One cell short of the width: writing the last column makes some terminals wrap.
        width = max(terminal_columns(self.stream) - 1, 10)
        for detail in range(4):
            text = render(detail)
            if display_width(text) <= width:
                return text
        return fit(text, width)

    def _emit(self, render: Callable[[int], str], *, final: bool) -> None:
        if self.live:
            text = self._fitted(render)
            self.stream.write("\r" + text + _CLEAR_TO_EOL)
            self._line_len = len(text)
            if final:
                self.finish_line()
            self.stream.flush()
        else:
            # Plain lines, not log records: they must show whatever the log level is.
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.stream.write(f"{stamp} {render(0)}\n")
            self.stream.flush()

    def finish_line(self) -> None:
        if self.live and self._line_len:
            self.stream.write("\n")
            self.stream.flush()
            self._line_len = 0

"""The live progress line fits the terminal and shows an ETA when a stage knows its total."""

from __future__ import annotations

import io

import pytest

from kretain.output import display_width
from kretain.progress import ProgressReporter, format_eta


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def live_lines(text: str) -> list[str]:
    """What the terminal shows after each \\r: the text up to clear-to-EOL."""
    return [part.split("\x1b[K", 1)[0] for part in text.split("\r") if part]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.4, "0s"), (45, "45s"), (200, "3m 20s"), (3_900, "1h 05m"), (183_600, "2d 03h")],
)
def test_format_eta(seconds: float, shown: str) -> None:
    assert format_eta(seconds) == shown


def test_live_line_is_cut_to_a_narrow_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    out, clock = io.StringIO(), Clock()
    progress = ProgressReporter(stream=out, live=True, clock=clock, requests=lambda: 7)
    progress("discover.page", listed=123_456, candidates=99_999, exempt=12, kept=3_000)
    clock.now += 1
    progress("size.batch", sized=54_321, kept=1, errors=2, bytes_saved=5 * 1024**4)
    clock.now += 1
    progress("discover.done", listed=200_000, candidates=100_000)
    shown = live_lines(out.getvalue())
    assert len(shown) == 3
    for line in shown:
        assert display_width(line.rstrip("\n")) <= 39, line  # never reaches the last column
    assert shown[0].startswith("discover: listed 123,456")
    assert "size:" in shown[1]  # a second stage still shows, in short form
    assert out.getvalue().count("\x1b[K") == 3  # each render clears what the last one left
    assert out.getvalue().endswith("\x1b[K\n")  # a finished stage keeps its own line


def test_width_is_read_at_each_render(monkeypatch: pytest.MonkeyPatch) -> None:
    out, clock = io.StringIO(), Clock()
    progress = ProgressReporter(stream=out, live=True, clock=clock)
    monkeypatch.setenv("COLUMNS", "200")
    progress("discover.page", listed=1, candidates=2, exempt=3, kept=4, errors=5, refreshed=6)
    clock.now += 1
    monkeypatch.setenv("COLUMNS", "30")  # the window was made narrower
    progress("discover.page", listed=2, candidates=2, exempt=3, kept=4, errors=5, refreshed=6)
    wide, narrow = live_lines(out.getvalue())
    assert display_width(wide) > 60 and display_width(narrow) <= 29


def test_eta_per_stage_from_done_and_total() -> None:
    out, clock = io.StringIO(), Clock()
    progress = ProgressReporter(stream=out, live=False, interval=10, clock=clock)
    progress("backup.entry", archived=0, total=1_000)
    clock.now += 20
    progress("backup.entry", archived=100, total=1_000)  # 5/s, 900 left: 3 minutes
    line = out.getvalue().splitlines()[-1]
    assert "archived 100" in line and "of 1,000" in line and "ETA 3m 00s" in line

"""Hand-written inline SVG charts for the HTML report: no script, no web fonts, no network.

Names:
    esc(value) -> str                   text for HTML and SVG: control characters replaced, escaped
    Series(name, color, pattern)        one stacked layer; patterns tell layers apart without colour
    Segment(value, key, tip)            one bar piece: its number, data-figure key, <title> tooltip
    Bar(label, segments, text)          one row (hbars) or column (columns)
    hbars(chart_id, label, series, bars) -> str      horizontal bars, the label above each bar
    columns(chart_id, label, series, bars, axis) -> str   stacked columns with a value axis
    byte_axis(top), count_axis(top) -> (ticks, tick labels)
    PALETTE, PATTERNS, SERIES_COLORS

Charts are drawn in a 480-unit-wide viewBox with 13-unit text and scale with the page (CSS:
width 100%, at most 600 px), so text reads at about 10 px on a phone and 16 px on a desktop.
Every drawn piece carries ``data-figure``/``data-value`` (the same key as its number in the
table beneath the chart) and a ``<title>`` the browser shows as a tooltip. Colours are Okabe
and Ito's colour-blind-safe set; stacked layers also get a pattern; legends name every layer.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import humanize

__all__ = [
    "PALETTE",
    "PATTERNS",
    "SERIES_COLORS",
    "Bar",
    "Segment",
    "Series",
    "byte_axis",
    "columns",
    "count_axis",
    "esc",
    "hbars",
]

# Okabe & Ito (2008), "Color Universal Design".
PALETTE = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "purple": "#CC79A7",
    "green": "#009E73",
    "sky": "#56B4E9",
    "vermillion": "#D55E00",
    "yellow": "#F0E442",
    "black": "#000000",
}
SERIES_COLORS = tuple(
    PALETTE[c] for c in ("blue", "orange", "purple", "green", "sky", "vermillion")
)
PATTERNS = ("solid", "stripes", "dots", "cross", "hlines", "vlines")

WIDTH = 480
FONT = 13
SMALL = 11
INK = "#1f1f1f"
MUTED = "#555555"
GRID = "#d9d9d9"
_JOINERS = frozenset("\u200c\u200d")


def esc(value: object) -> str:
    """``value`` as HTML/SVG text: characters that are not printable (terminal escapes, bidi
    overrides, NUL) become U+FFFD, then & < > " ' are escaped. Entry names and owners come from
    Kaltura users."""
    text = str(value)
    text = "".join(ch if ch.isprintable() or ch in _JOINERS else "\ufffd" for ch in text)
    return html.escape(text, quote=True)


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    pattern: str = "solid"


@dataclass(frozen=True)
class Segment:
    value: int
    key: str | None  # data-figure: the same key as the table cell holding this number
    tip: str  # tooltip


@dataclass(frozen=True)
class Bar:
    label: str
    segments: Sequence[Segment]  # one per series, in series order
    text: str = ""  # shown at the end of the bar (hbars) or above the column (columns)

    @property
    def total(self) -> int:
        return sum(s.value for s in self.segments)


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _pattern(pid: str, series: Series) -> str:
    c = series.color
    bg = f'<rect width="6" height="6" fill="{c}"/>'
    white = 'fill="#ffffff" fill-opacity="0.65"'
    marks = {
        "stripes": f'<rect width="2.2" height="6" {white}/>',
        "dots": f'<circle cx="3" cy="3" r="1.4" {white}/>',
        "cross": f'<rect width="1.6" height="6" {white}/><rect width="6" height="1.6" {white}/>',
        "hlines": f'<rect width="6" height="2" {white}/>',
        "vlines": f'<rect width="2" height="6" {white}/>',
    }[series.pattern]
    turn = ' patternTransform="rotate(45)"' if series.pattern in ("stripes", "cross") else ""
    return (
        f'<pattern id="{pid}" patternUnits="userSpaceOnUse" width="6" height="6"{turn}>'
        f"{bg}{marks}</pattern>"
    )


class _Fills:
    """Fill for each series: its colour, or a pattern drawn in its colour (defined once)."""

    def __init__(self, chart_id: str, series: Sequence[Series]) -> None:
        self.defs: list[str] = []
        self.fill: list[str] = []
        for i, s in enumerate(series):
            if s.pattern == "solid":
                self.fill.append(s.color)
            else:
                pid = f"{chart_id}-p{i}"
                self.defs.append(_pattern(pid, s))
                self.fill.append(f"url(#{pid})")

    def svg(self) -> str:
        return f"<defs>{''.join(self.defs)}</defs>" if self.defs else ""


def _legend(series: Sequence[Series], fills: _Fills, y: float) -> tuple[str, float]:
    """Legend items in rows across the width; returns (svg, height used)."""
    if len(series) < 2:
        return "", 0.0
    parts: list[str] = []
    x, row = 0.0, 0
    for i, s in enumerate(series):
        name = _clip(s.name, 40)
        item = 12 + 5 + len(name) * 7.2 + 16
        if x > 0 and x + item > WIDTH:
            x, row = 0.0, row + 1
        top = y + row * 20
        parts.append(
            f'<rect x="{_num(x)}" y="{_num(top)}" width="12" height="12" fill="{fills.fill[i]}" '
            f'stroke="{INK}" stroke-width="0.6"/>'
            f'<text x="{_num(x + 17)}" y="{_num(top + 10.5)}" font-size="{SMALL + 1}">'
            f"{esc(name)}</text>"
        )
        x += item
    return "".join(parts), (row + 1) * 20 + 6


def _open(chart_id: str, label: str, height: float) -> str:
    h = _num(height)
    return (
        f'<svg class="chart" id="{esc(chart_id)}" '
        f'viewBox="0 0 {WIDTH} {h}" width="{WIDTH}" height="{h}" role="img" '
        f'aria-label="{esc(label)}" font-family="inherit" fill="{INK}">'
    )


def _rect(x: float, y: float, w: float, h: float, fill: str, seg: Segment) -> str:
    key = f' data-figure="{esc(seg.key)}"' if seg.key is not None else ""
    return (
        f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}" fill="{fill}"'
        f'{key} data-value="{seg.value}"><title>{esc(seg.tip)}</title></rect>'
    )


ROW = 38  # one labelled bar: its label, then the bar
BAR = 14


def hbars(chart_id: str, label: str, series: Sequence[Series], bars: Sequence[Bar]) -> str:
    """Horizontal bars, each with its label above it and ``text`` after it; stacked when there
    are several series. Bars share one scale (the largest total fills the width)."""
    fills = _Fills(chart_id, series)
    legend, top = _legend(series, fills, 2)
    height = top + ROW * len(bars) + 2
    room = max([len(b.text) for b in bars] + [4]) * 6.8 + 10  # for the text after the bar
    scale = (WIDTH - room) / max([b.total for b in bars] + [1])
    out = [_open(chart_id, label, height), fills.svg(), legend]
    for n, bar in enumerate(bars):
        y = top + n * ROW
        out.append(
            f'<text x="0" y="{_num(y + 13)}" font-size="{FONT}">{esc(_clip(bar.label, 62))}</text>'
        )
        x = 0.0
        for i, seg in enumerate(bar.segments):
            if seg.value <= 0:
                continue
            w = max(seg.value * scale, 1.0)  # a tiny non-zero value stays visible
            out.append(_rect(x, y + 18, w, BAR, fills.fill[i], seg))
            x += w
        out.append(
            f'<text x="{_num(x + 6)}" y="{_num(y + 29.5)}" font-size="{SMALL + 1}" '
            f'fill="{MUTED}">{esc(bar.text)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


Axis = Callable[[int], tuple[list[int], list[str]]]


def _nice_step(raw: float) -> float:
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def count_axis(top: int, ticks: int = 4) -> tuple[list[int], list[str]]:
    """Round tick values from 0 past ``top`` (about ``ticks`` steps), labelled 1,234."""
    step = max(1, math.ceil(_nice_step(max(top, 1) / ticks)))
    values = list(range(0, max(top, 1) + step, step))
    return values, [f"{v:,}" for v in values]


_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def byte_axis(top: int, ticks: int = 4) -> tuple[list[int], list[str]]:
    """Tick values at round numbers of one binary unit (0, 5 TiB, 10 TiB ...)."""
    top = max(top, 1)
    power = min(int(math.log(top, 1024)) if top >= 1024 else 0, len(_UNITS) - 1)
    unit = 1024**power
    step = _nice_step(top / unit / ticks)
    values: list[int] = []
    v = 0.0
    while True:
        values.append(round(v * unit))
        if v * unit >= top:
            break
        v += step
    labels = [f"{_num(v / unit)} {_UNITS[power]}" if v else "0" for v in values]
    return values, labels


def columns(
    chart_id: str,
    label: str,
    series: Sequence[Series],
    bars: Sequence[Bar],
    axis: Axis,
    *,
    plot_height: float = 200,
) -> str:
    """Stacked columns left to right (years, days ...) with gridlines and a value axis; column
    labels are thinned out to fit, totals shown above the columns when they fit."""
    fills = _Fills(chart_id, series)
    legend, top = _legend(series, fills, 2)
    values, labels = axis(max([b.total for b in bars] + [1]))
    left = max(len(t) for t in labels) * 6.6 + 10
    plot_w = WIDTH - left - 4
    slot = plot_w / max(len(bars), 1)
    # Totals above the columns only when each fits its column's width.
    totals = any(b.text for b in bars) and max(len(b.text) for b in bars) * 6.2 <= slot
    y0 = top + (16 if totals else 6)  # top of the plot
    base = y0 + plot_height
    height = base + 24
    vmax = values[-1] or 1
    out = [_open(chart_id, label, height), fills.svg(), legend]
    for v, text in zip(values, labels, strict=True):
        y = base - v / vmax * plot_height
        out.append(
            f'<line x1="{_num(left)}" x2="{WIDTH}" y1="{_num(y)}" y2="{_num(y)}" '
            f'stroke="{GRID if v else MUTED}" stroke-width="1"/>'
            f'<text x="{_num(left - 6)}" y="{_num(y + 4)}" font-size="{SMALL}" '
            f'text-anchor="end" fill="{MUTED}">{esc(text)}</text>'
        )
    width = max(min(slot * 0.72, 60), 1.0)
    longest = max([len(b.label) for b in bars] + [1])
    every = max(1, math.ceil((longest * 6.4 + 8) / slot))
    for n, bar in enumerate(bars):
        x = left + n * slot + (slot - width) / 2
        y = base
        for i, seg in enumerate(bar.segments):
            if seg.value <= 0:
                continue
            h = max(seg.value / vmax * plot_height, 1.0)
            y -= h
            out.append(_rect(x, y, width, h, fills.fill[i], seg))
        mid = _num(x + width / 2)
        if totals and bar.text:
            out.append(
                f'<text x="{mid}" y="{_num(y - 4)}" font-size="{SMALL - 0.5}" '
                f'text-anchor="middle" fill="{MUTED}">{esc(bar.text)}</text>'
            )
        if n % every == 0:
            out.append(
                f'<text x="{mid}" y="{_num(base + 16)}" font-size="{SMALL}" '
                f'text-anchor="middle">{esc(bar.label)}</text>'
            )
    out.append("</svg>")
    return "".join(out)


def human(n: int) -> str:
    """Bytes in binary units, as the summary shows them (``47.4 TiB``)."""
    return humanize.naturalsize(n, binary=True)

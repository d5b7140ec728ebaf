"""The HTML report in a real browser: headless Chromium (Debian's chromium-headless-shell) lays
out and paints the file at desktop and phone widths, and prints it to PDF.

How: Chromium cannot report layout without a script, and the report has none. So a copy of the
page gets a small script (test only) that writes the laid-out boxes of every chart, bar and
chart text into the DOM, and ``--dump-dom`` returns them. The untouched file is then
screenshotted at the same width, tall enough for the whole page, and the PNG is decoded here
(zlib and the PNG row filters, stdlib only): where the layout says a bar is, the pixels must be
coloured. The same check on a copy whose bars were removed must fail, so the check can fail.

.ci/run installs the browser; without it these tests skip and say how to get it.
"""

from __future__ import annotations

import html as htmllib
import json
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from reporthelpers import ENFORCE_T0, enforce

from kretain.policy import Policy
from kretain.reports import write_report
from kretain.store import open_store, queries

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
BROWSER = next((path for name in BROWSERS if (path := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(
    BROWSER is None,
    reason="headless Chromium not found: apt-get install chromium-headless-shell "
    "(.ci/run installs it)",
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
T0 = ENFORCE_T0 - 86_400
SCALE = 0.5  # device pixels per CSS pixel in screenshots: a quarter of the pixels to decode
CHARTS = {
    "chart-rules",
    "chart-years-entries",
    "chart-years-bytes",
    "chart-owners",
    "chart-media",
    "chart-progress",
    "chart-held",
    "chart-time",
}

LAYOUT_SCRIPT = """<script>
addEventListener('load', () => {
  const box = e => { const r = e.getBoundingClientRect();
    return [r.left + scrollX, r.top + scrollY, r.width, r.height]; };
  const charts = [...document.querySelectorAll('svg.chart')].map(s => ({
    id: s.id, box: box(s), viewBox: s.viewBox.baseVal.width,
    bars: [...s.querySelectorAll('rect[data-value]')].map(box),
    texts: [...s.querySelectorAll('text')].map(box)}));
  const scrolls = [...document.querySelectorAll('.scroll')].map(box);
  const out = {charts, scrolls, inner: innerWidth,
    width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight};
  const pre = document.createElement('pre'); pre.id = 'layout';
  pre.textContent = JSON.stringify(out); document.body.append(pre);
});
</script>"""


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert BROWSER is not None
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    result = subprocess.run(
        [BROWSER, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def layout(page: Path, width: int, tmp: Path, scale: float = 1.0) -> dict[str, Any]:
    copy = tmp / f"layout-{width}-{scale}.html"
    copy.write_text(page.read_text(encoding="utf-8").replace("</head>", LAYOUT_SCRIPT + "</head>"))
    dom = chromium(
        tmp,
        f"--window-size={width},2000",
        f"--force-device-scale-factor={scale}",
        "--dump-dom",
        copy.as_uri(),
    ).stdout
    found = re.search(r'<pre id="layout">(.*?)</pre>', dom, re.S)
    assert found, "the layout script did not run"
    return json.loads(htmllib.unescape(found.group(1)))


@dataclass
class Image:
    width: int
    height: int
    channels: int
    pixels: bytes

    def rgb(self, x: int, y: int) -> tuple[int, int, int]:
        i = (y * self.width + x) * self.channels
        return self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]


def decode_png(data: bytes) -> Image:
    """8-bit RGB or RGBA PNG (what Chromium writes), non-interlaced."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride, bpp = width * channels, channels
    out = bytearray(height * stride)
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, row = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                row[i] = (row[i] + row[i - bpp]) & 255
        elif kind == 2:
            row = bytearray((a + b) & 255 for a, b in zip(row, prev, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                row[i] = (row[i] + ((left + prev[i]) >> 1)) & 255
        elif kind == 4:
            for i in range(stride):
                a = row[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                row[i] = (row[i] + pred) & 255
        out[y * stride : (y + 1) * stride] = row
        prev = row
    return Image(width, height, channels, bytes(out))


def screenshot(page: Path, width: int, height: int, tmp: Path) -> Image:
    png = tmp / f"shot-{page.stem}-{width}.png"
    chromium(
        tmp,
        f"--window-size={width},{height}",
        f"--force-device-scale-factor={SCALE}",
        f"--screenshot={png}",
        page.as_uri(),
    )
    return decode_png(png.read_bytes())


def _pixels(box: list[float], image: Image) -> Iterator[tuple[int, int]]:
    """Device pixels whose centre lies in ``box`` (CSS px); at least the nearest one."""
    left, top, w, h = (v * SCALE for v in box)
    xs = range(max(0, round(left)), min(image.width, max(round(left + w), round(left) + 1)))
    ys = range(max(0, round(top)), min(image.height, max(round(top + h), round(top) + 1)))
    for y in ys:
        for x in xs:
            yield x, y


def coloured(rgb: tuple[int, int, int]) -> bool:
    """Chart ink: the palette's colours (and their patterns) are saturated; text, grid lines
    and the page are black, grey or white."""
    return max(rgb) - min(rgb) > 40


def unpainted_charts(lay: dict[str, Any], image: Image) -> list[str]:
    """Charts whose bars, where the layout puts them, are not mostly coloured pixels."""
    bad = []
    for chart in lay["charts"]:
        spots = {
            p for bar in chart["bars"] if bar[2] > 0 and bar[3] > 0 for p in _pixels(bar, image)
        }
        inked = sum(coloured(image.rgb(x, y)) for x, y in spots)
        if not spots or inked < 0.6 * len(spots):
            bad.append(f"{chart['id']}: {inked} of {len(spots)} bar pixels coloured")
    return bad


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import asyncio

    tmp = tmp_path_factory.mktemp("browser")
    db = tmp / "kretain.db"

    async def make() -> None:
        store = await open_store(db)
        try:
            await enforce(store)
            run_id = await queries.start_run(store, "run", {}, as_of="2025-06-30", now=T0)
            await queries.finish_run(store, run_id, "ok", {}, now=T0 + 90)
        finally:
            await store.close()
        await write_report(
            db, tmp / "report.html", policy=Policy.default(), fallback_as_of=date(2026, 1, 1)
        )

    asyncio.run(make())
    return tmp / "report.html"


@pytest.mark.parametrize("width", [1280, 390])
def test_every_chart_lays_out_and_paints(page: Path, width: int, tmp_path: Path) -> None:
    lay = layout(page, width, tmp_path)
    assert {c["id"] for c in lay["charts"]} == CHARTS
    # Nothing wider than the screen: wide tables scroll inside their own box.
    assert lay["width"] <= lay["inner"] == width
    for box in lay["scrolls"]:
        assert box[0] >= 0 and box[0] + box[2] <= width + 0.5
    for chart in lay["charts"]:
        left, _, w, h = chart["box"]
        assert w > 0 and h > 0 and left >= 0 and left + w <= width + 0.5, chart["id"]
        scale = w / chart["viewBox"]
        # 13-unit chart text: about 10 px on a phone at least, 16 px on a desktop at most
        assert 0.74 <= scale <= 1.26, (chart["id"], scale)
        assert chart["bars"] and all(b[2] > 0 and b[3] > 0 for b in chart["bars"]), chart["id"]
        for text in chart["texts"]:  # no label runs past the chart's edge (it would be cut)
            assert left - 2 <= text[0] and text[0] + text[2] <= left + w + 2, (chart["id"], text)
    # Painting, checked at the screenshot's scale (text metrics, so line heights, depend on it).
    lay = layout(page, width, tmp_path, SCALE)
    image = screenshot(page, width, lay["height"], tmp_path)
    assert image.width == round(width * SCALE)
    assert unpainted_charts(lay, image) == []


def test_the_paint_check_fails_when_bars_do_not_paint(page: Path, tmp_path: Path) -> None:
    lay = layout(page, 1280, tmp_path, SCALE)
    blank = tmp_path / "blank.html"
    text = page.read_text(encoding="utf-8")
    blank.write_text(re.sub(r"<rect[^>]*data-value[^>]*>.*?</rect>", "", text, flags=re.S))
    image = screenshot(blank, 1280, lay["height"], tmp_path)
    assert len(unpainted_charts(lay, image)) == len(CHARTS)


def test_print_starts_each_section_on_a_new_page(tmp_path: Path) -> None:
    """An empty database: every section is a few lines, so the pages can only come from the
    print CSS's page breaks."""
    import asyncio

    db = tmp_path / "kretain.db"
    page = tmp_path / "empty.html"

    async def make() -> None:
        await (await open_store(db)).close()
        await write_report(db, page, policy=Policy.default(), fallback_as_of=date(2026, 1, 1))

    asyncio.run(make())
    pdf = tmp_path / "report.pdf"
    chromium(tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri())
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", data))
    sections = page.read_text(encoding="utf-8").count("<section ")
    # every section starts a page (the last, long, takes two); without the breaks: 4 pages
    assert pages >= sections

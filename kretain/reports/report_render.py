"""The report's small document model, written out as one HTML page or as Markdown.

Names:
    Cell, Table, Card, Cards, Figure, Figures, Para, Items, Heading, Section   (the model)
    to_html(title, meta, sections, footer) -> str
    to_markdown(title, meta, sections, footer) -> str
    md(value) -> str            text safe in Markdown;  text_bar(value, top) -> str
    CSS

report.py decides what the sections say; this module only lays them out, so the HTML page and
the Markdown carry the same text and the same numbers. A number cell with a ``key`` becomes
``data-figure="key" data-value="exact value"`` in HTML (the chart drawing it carries the same
pair). Every text goes through charts.esc (HTML) or md (Markdown): entry owners, rule names
and held-back reasons come from users and settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kretain.reports.charts import esc

__all__ = [
    "CSS",
    "Block",
    "Card",
    "Cards",
    "Cell",
    "Figure",
    "Figures",
    "Heading",
    "Items",
    "Para",
    "Section",
    "Table",
    "md",
    "text_bar",
    "to_html",
    "to_markdown",
]


@dataclass(frozen=True)
class Cell:
    text: str
    key: str | None = None  # data-figure
    value: Any = None  # data-value: the exact number behind the text
    num: bool = False  # a number: right-aligned
    title: str | None = None  # tooltip, e.g. the exact bytes behind "1.2 TiB"


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    total: Sequence[Cell] | None = None
    bar_column: int | None = None  # Markdown: a text bar from this column's values
    numeric: frozenset[int] = frozenset()  # columns whose header is right-aligned


@dataclass(frozen=True)
class Card:
    label: str
    value: Cell
    note: str = ""


@dataclass(frozen=True)
class Cards:
    cards: Sequence[Card]


@dataclass(frozen=True)
class Figure:
    """A chart with the table of its exact numbers beneath it (Markdown: the table only)."""

    svg: str
    table: Table
    caption: str = ""


@dataclass(frozen=True)
class Figures:
    """Figures side by side where the page is wide enough, one above the other elsewhere."""

    figures: Sequence[Figure]


@dataclass(frozen=True)
class Para:
    text: str
    css: str = ""  # "lead" | "warn" | ""


@dataclass(frozen=True)
class Items:
    items: Sequence[str]
    ordered: bool = False


@dataclass(frozen=True)
class Heading:
    text: str


Block = Table | Cards | Figure | Figures | Para | Items | Heading


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)


# ---- HTML ------------------------------------------------------------------------------------

CSS = """
:root{--ink:#1f1f1f;--muted:#555;--line:#d9d9d9;--accent:#0072B2;--warn:#D55E00}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;color:var(--ink);background:#fff;
 font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1080px;margin:0 auto;padding:28px 24px 48px}
h1{font-size:1.75rem;margin:0 0 .3rem;line-height:1.2}
h2{font-size:1.3rem;margin:0 0 .5rem}
h3{font-size:1.05rem;margin:1.4rem 0 .4rem}
p{margin:.4rem 0;max-width:46rem}
.meta{color:var(--muted);margin:.1rem 0}
.lead{font-size:1.05rem;font-weight:600}
.warn{border-left:4px solid var(--warn);padding-left:.6rem}
section{margin-top:2rem;padding-top:1rem;border-top:1px solid var(--line)}
section#headline{border-top:0;margin-top:.8rem;padding-top:0}
.cards{display:grid;gap:12px;margin:.8rem 0;
 grid-template-columns:repeat(auto-fit,minmax(150px,1fr))}
.card{border:1px solid var(--line);border-top:4px solid var(--accent);border-radius:6px;
 padding:10px 12px}
.card .label{font-size:.85rem;color:var(--muted);font-weight:600}
.card .value{display:block;font-size:1.7rem;font-weight:700;line-height:1.25;
 font-variant-numeric:tabular-nums}
.card .note{font-size:.8rem;color:var(--muted)}
figure{margin:.8rem 0 1.2rem;min-width:0}
figcaption{font-weight:600;margin-bottom:.3rem}
.figures{display:grid;gap:8px 28px;
 grid-template-columns:repeat(auto-fit,minmax(min(100%,440px),1fr))}
svg.chart{display:block;width:100%;max-width:600px;height:auto}
.scroll{overflow-x:auto;margin:.6rem 0 0;max-width:100%}
table{border-collapse:collapse;font-size:.88rem}
th,td{padding:4px 9px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap;
 vertical-align:top}
td.text{white-space:normal;min-width:8rem;max-width:22rem;overflow-wrap:anywhere}
th{font-weight:600;background:#f2f2f2}
.num{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:700;border-top:2px solid var(--ink)}
ul,ol{padding-left:1.4rem;max-width:46rem}
li{margin:.2rem 0}
footer{margin-top:2.5rem;color:var(--muted);font-size:.85rem}
@media (max-width:600px){
 body{font-size:14px} main{padding:16px 12px 32px} h1{font-size:1.4rem}
 .card .value{font-size:1.35rem} th,td{padding:3px 6px}
}
@media print{
 @page{margin:14mm}
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 body{font-size:10pt} main{max-width:none;padding:0}
 section{break-before:page;border-top:0;margin-top:0}
 section#headline{break-before:auto}
 svg.chart,.card,tr,li{break-inside:avoid}
 h2,h3,figcaption{break-after:avoid}
 .figures{display:block}
 .scroll{overflow:visible}
 svg.chart{max-width:16cm}
}
"""


def _attrs(cell: Cell, css: str) -> str:
    out = f' class="{css}"' if css else ""
    if cell.key is not None:
        out += f' data-figure="{esc(cell.key)}" data-value="{esc(cell.value)}"'
    if cell.title:
        out += f' title="{esc(cell.title)}"'
    return out


def _html_table(t: Table) -> str:
    head = "".join(
        f'<th{" class=num" if i in t.numeric else ""} scope="col">{esc(h)}</th>'
        for i, h in enumerate(t.headers)
    )

    def row(cells: Sequence[Cell], css: str = "") -> str:
        tds = "".join(
            f"<td{_attrs(c, 'num' if c.num else 'text')}>{esc(c.text)}</td>" for c in cells
        )
        return f"<tr{f' class={css}' if css else ''}>{tds}</tr>"

    body = "".join(row(r) for r in t.rows)
    foot = f"<tfoot>{row(t.total, 'total')}</tfoot>" if t.total else ""
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
        f"{foot}</table></div>"
    )


def _html_block(b: Block) -> str:
    if isinstance(b, Cards):
        cards = "".join(
            f'<div class="card"><div class="label">{esc(c.label)}</div>'
            f"<span{_attrs(c.value, 'value')}>{esc(c.value.text)}</span>"
            f'<div class="note">{esc(c.note)}</div></div>'
            for c in b.cards
        )
        return f'<div class="cards">{cards}</div>'
    if isinstance(b, Table):
        return _html_table(b)
    if isinstance(b, Figure):
        caption = f"<figcaption>{esc(b.caption)}</figcaption>" if b.caption else ""
        return f"<figure>{caption}{b.svg}{_html_table(b.table)}</figure>"
    if isinstance(b, Figures):
        return f'<div class="figures">{"".join(_html_block(f) for f in b.figures)}</div>'
    if isinstance(b, Para):
        return f"<p{f' class={b.css}' if b.css else ''}>{esc(b.text)}</p>"
    if isinstance(b, Items):
        tag = "ol" if b.ordered else "ul"
        return f"<{tag}>{''.join(f'<li>{esc(i)}</li>' for i in b.items)}</{tag}>"
    if isinstance(b, Heading):
        return f"<h3>{esc(b.text)}</h3>"
    raise TypeError(f"unknown block {b!r}")


def to_html(title: str, meta: Sequence[str], sections: Sequence[Section], footer: str) -> str:
    """One page: inline CSS and SVG, no script, no external resource of any kind."""
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f"<header><h1>{esc(title)}</h1>",
        *(f'<p class="meta">{esc(line)}</p>' for line in meta),
        "</header>",
    ]
    for s in sections:
        parts.append(f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>')
        parts.extend(_html_block(b) for b in s.blocks)
        parts.append("</section>")
    parts.append(f"<footer>{esc(footer)}</footer></main></body></html>\n")
    return "\n".join(parts)


# ---- Markdown --------------------------------------------------------------------------------

_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]|<>!"})


def md(value: object) -> str:
    """Text safe in a Markdown paragraph or table cell: line breaks flattened, characters that
    are not printable replaced, & < > and markup characters escaped, so a user's text can make
    no HTML, link, emphasis or extra table column."""
    text = " ".join(str(value).split())
    text = "".join(ch if ch.isprintable() else "\ufffd" for ch in text)
    text = text.replace("&", "&amp;").translate(_MD_SPECIAL)
    return "\\" + text if text[:1] in ("#", "+", "-", "=") else text


_EIGHTHS = " ▏▎▍▌▋▊▉"


def text_bar(value: float, top: float, width: int = 16) -> str:
    """A bar of block characters, ``width`` long at ``top``; a non-zero value always shows."""
    if top <= 0 or value <= 0:
        return ""
    eighths = max(1, round(value / top * width * 8))
    return "█" * (eighths // 8) + (_EIGHTHS[eighths % 8] if eighths % 8 else "")


def _md_table(t: Table) -> list[str]:
    headers = list(t.headers)
    rows = [list(r) for r in t.rows]
    if t.bar_column is not None:
        values = [float(r[t.bar_column].value or 0) for r in rows]
        top = max([*values, 0.0])
        headers.append("")
        for r, v in zip(rows, values, strict=True):
            r.append(Cell(text_bar(v, top)))
    align = [
        "---:" if i in t.numeric and i < len(t.headers) else "---" for i in range(len(headers))
    ]
    lines = ["| " + " | ".join(md(h) for h in headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(md(c.text) for c in r) + " |" for r in rows]
    if t.total:
        cells = [f"**{md(c.text)}**" if c.text else "" for c in t.total]
        cells += [""] * (len(headers) - len(cells))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _md_block(b: Block) -> list[str]:
    if isinstance(b, Cards):
        rows = [[Cell(c.label), c.value, Cell(c.note)] for c in b.cards]
        return _md_table(Table(["figure", "value", "note"], rows, numeric=frozenset({1})))
    if isinstance(b, Table):
        return _md_table(b)
    if isinstance(b, Figure):
        return ([f"**{md(b.caption)}**", ""] if b.caption else []) + _md_table(b.table)
    if isinstance(b, Figures):
        out: list[str] = []
        for f in b.figures:
            out += [""] if out else []  # a blank line between two tables
            out += _md_block(f)
        return out
    if isinstance(b, Para):
        return [md(b.text)]
    if isinstance(b, Items):
        return [f"{i}. {md(t)}" if b.ordered else f"- {md(t)}" for i, t in enumerate(b.items, 1)]
    if isinstance(b, Heading):
        return [f"### {md(b.text)}"]
    raise TypeError(f"unknown block {b!r}")


def to_markdown(title: str, meta: Sequence[str], sections: Sequence[Section], footer: str) -> str:
    """The same sections in Markdown: tables with text bars where the page has charts."""
    out = [f"# {md(title)}", "", *(md(line) + "  " for line in meta), ""]
    for s in sections:
        out += [f"## {md(s.title)}", ""]
        for b in s.blocks:
            out += [*_md_block(b), ""]
    out.append(md(footer))
    return "\n".join(out) + "\n"

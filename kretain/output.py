"""Render a report (headers + rows) as a table, CSV, JSON, JSON lines or Markdown.

Every report command returns a :class:`Table`; one renderer writes it to stdout,
so `status`, `summary`, `export` and `query` share the same output flags.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import click
from wcwidth import wcswidth

FORMATS = ("table", "csv", "json", "nl", "markdown")


@dataclass
class Table:
    headers: list[str]
    rows: Iterable[Sequence[Any]]
    title: str | None = None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"
    # Control characters from hostile entry names must not drive the terminal. Joiners stay:
    # they only glue emoji sequences together (bidi overrides and the like are replaced).
    text = str(value)
    return "".join(ch if ch.isprintable() or ch in _JOINERS else "\ufffd" for ch in text)


_JOINERS = frozenset("\u200c\u200d")


def display_width(text: str) -> int:
    """Terminal cells ``text`` takes: CJK and most emoji take two, combining marks none."""
    width = wcswidth(text)
    return width if width >= 0 else len(text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def render(table: Table, fmt: str, out: TextIO) -> None:
    """Write ``table`` to ``out`` in ``fmt`` (one of FORMATS); rows are streamed."""
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(table.headers)
        for row in table.rows:
            writer.writerow(["" if v is None else v for v in row])
    elif fmt == "nl":
        for row in table.rows:
            out.write(json.dumps(dict(zip(table.headers, row, strict=True)), default=str) + "\n")
    elif fmt == "json":
        out.write("[")
        for i, row in enumerate(table.rows):
            out.write(",\n " if i else "\n ")
            out.write(json.dumps(dict(zip(table.headers, row, strict=True)), default=str))
        out.write("\n]\n")
    elif fmt == "markdown":
        rows = [[_cell(v).replace("|", "\\|") for v in row] for row in table.rows]
        out.write("| " + " | ".join(table.headers) + " |\n")
        out.write("|" + "|".join("---" for _ in table.headers) + "|\n")
        for row in rows:
            out.write("| " + " | ".join(row) + " |\n")
    elif fmt == "table":
        rows = [[_cell(v) for v in row] for row in table.rows]
        widths = [display_width(h) for h in table.headers]
        for row in rows:
            widths = [max(w, display_width(c)) for w, c in zip(widths, row, strict=True)]
        if table.title:
            out.write(table.title + "\n")

        def line(cells: Sequence[str]) -> str:
            return "  ".join(_pad(c, w) for c, w in zip(cells, widths, strict=True)).rstrip()

        out.write(line(table.headers) + "\n")
        out.write(line(["-" * w for w in widths]) + "\n")
        for row in rows:
            out.write(line(row) + "\n")
    else:  # pragma: no cover - click restricts the choice
        raise ValueError(f"unknown format {fmt!r}")


def output_options(default: str = "table") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--format` plus the sqlite-utils style shortcuts `--csv`, `--json`, `--nl`."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        func = click.option("--nl", "fmt", flag_value="nl", help="Newline-delimited JSON.")(func)
        func = click.option("--json", "fmt", flag_value="json", help="Output JSON.")(func)
        func = click.option("--csv", "fmt", flag_value="csv", help="Output CSV.")(func)
        func = click.option(
            "--format",
            "fmt",
            type=click.Choice(FORMATS),
            default=default,
            show_default=True,
            help="Output format.",
        )(func)
        return func

    return decorator


def render_to_string(table: Table, fmt: str) -> str:
    buffer = io.StringIO()
    render(table, fmt, buffer)
    return buffer.getvalue()

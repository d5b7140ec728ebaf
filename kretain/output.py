"""Render a report (headers + rows) as a table, CSV, JSON, JSON lines or Markdown.

Every report command returns a :class:`Table`; one renderer writes it to stdout,
so `status`, `summary`, `export` and `query` share the same output flags.

CSV is opened in spreadsheets, and entry names and owners come from Kaltura users, so every CSV
cell (headers too) goes through :func:`csv_cell` (OWASP "CSV injection"): a TEXT cell starting
with ``=``, ``+``, ``-``, ``@``, TAB or CR gets a leading ``'``, which spreadsheets show as text.
Numbers are left alone: int/float/Decimal values, and text that is a plain decimal number such
as an entry status ``"-1"``, can carry no formula. ``--raw-csv`` (``raw_csv=True``) writes cells
exactly as stored, for programs that read the CSV back.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import click
from wcwidth import wcswidth

FORMATS = ("table", "csv", "json", "nl", "markdown")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


@dataclass
class Table:
    headers: list[str]
    rows: Iterable[Sequence[Any]]
    title: str | None = None
    # Remarks for the person running the command (stderr), never part of the data.
    notes: list[str] = field(default_factory=list)


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


def csv_cell(value: Any) -> Any:
    """``value`` as a CSV cell a spreadsheet will not run as a formula (see module docstring)."""
    if value is None:
        return ""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_PREFIXES)
        and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


def render(table: Table, fmt: str, out: TextIO, *, raw_csv: bool = False) -> None:
    """Write ``table`` to ``out`` in ``fmt`` (one of FORMATS); rows are streamed.

    raw_csv: write CSV cells as stored, without the formula guard (see module docstring).
    """
    if fmt == "csv":
        writer = csv.writer(out)
        cell = (lambda v: "" if v is None else v) if raw_csv else csv_cell
        writer.writerow([cell(h) for h in table.headers])
        for row in table.rows:
            writer.writerow([cell(v) for v in row])
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


RAW_CSV_HELP = (
    "Write CSV cells exactly as stored, without the ' that stops spreadsheets from running "
    "cells starting with = + - @ as formulas (for programs, not spreadsheets)."
)


def output_options(default: str = "table") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--format` plus the sqlite-utils style shortcuts `--csv`, `--json`, `--nl`, and
    `--raw-csv` (the command receives it as ``raw_csv``)."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        func = click.option("--raw-csv", is_flag=True, help=RAW_CSV_HELP)(func)
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


def render_to_string(table: Table, fmt: str, *, raw_csv: bool = False) -> str:
    buffer = io.StringIO()
    render(table, fmt, buffer, raw_csv=raw_csv)
    return buffer.getvalue()

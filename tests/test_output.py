"""output.render: tables by display width, CSV formula neutralising."""

from __future__ import annotations

import csv
import io

from kretain.output import Table, render_to_string


def test_table_columns_align_by_display_width() -> None:
    """CJK takes two cells, a combining accent none, an emoji two (ZWJ family included)."""
    table = Table(
        ["name", "n"],
        [
            ["日本語", 1],
            ["e\u0301te\u0301", 2],  # "été" with combining acute accents
            ["👍", 3],
            ["👨\u200d👩\u200d👧", 4],
            ["plain", 5],
        ],
    )
    assert render_to_string(table, "table").splitlines() == [
        "name    n",
        "------  -",
        "日本語  1",
        "e\u0301te\u0301     2",
        "👍      3",
        "👨\u200d👩\u200d👧      4",
        "plain   5",
    ]


def test_table_still_replaces_control_and_bidi_characters() -> None:
    text = render_to_string(Table(["x"], [["a\x1b[2Jb\u202ec"]]), "table")
    assert "\x1b" not in text and "\u202e" not in text
    assert "a\ufffd[2Jb\ufffdc" in text


FORMULA_ROW = [
    "=SUM(A1)",
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(A1)",
    "\t=1",
    "\r=1",
    "-12",  # text that is a plain negative number (entry status "-1", say): left alone
    "-3.5",
    -7,  # real numbers are never formulas
    -2.5,
    "a=b",
    None,
]


def test_csv_neutralises_formulas_in_text_cells() -> None:
    text = render_to_string(Table([f"c{i}" for i in range(len(FORMULA_ROW))], [FORMULA_ROW]), "csv")
    (row,) = list(csv.reader(io.StringIO(text, newline="")))[1:]
    assert row == [
        "'=SUM(A1)",
        "'+1+cmd|' /C calc'!A0",
        "'-2+3+cmd|' /C calc'!A0",
        "'@SUM(A1)",
        "'\t=1",
        "'\r=1",
        "-12",
        "-3.5",
        "-7",
        "-2.5",
        "a=b",
        "",
    ]


def test_raw_csv_writes_cells_as_stored_and_headers_are_cells_too() -> None:
    table = Table(["=x", "n"], [["=SUM(A1)", -1]])
    assert render_to_string(table, "csv", raw_csv=True) == "=x,n\r\n=SUM(A1),-1\r\n"
    assert render_to_string(table, "csv") == "'=x,n\r\n'=SUM(A1),-1\r\n"
    # Other formats are for programs and people, not spreadsheets: untouched.
    assert '"=SUM(A1)"' in render_to_string(table, "json")

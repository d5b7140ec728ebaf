"""output.render: tables by display width, CSV formula neutralising."""

from __future__ import annotations

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

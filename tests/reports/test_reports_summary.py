"""summary_report against a real store: every cell checked against SPECS and plain SQL."""

from __future__ import annotations

import sqlite3
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import humanize
import pytest
from reporthelpers import SPECS, Spec

from kretain.output import render_to_string
from kretain.reports import IN_POLICY_STATES, ReportError, summary_report
from kretain.store import Store, open_store

IN_POLICY = {
    "candidate",
    "sized",
    "downloading",
    "archived",
    "backup_failed",
    "delete_failed",
    "deleting",
    "deleted",
    "recycled",
    "stripped",
}


def _q(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def expected_column(specs: list[Spec]) -> dict[str, object]:
    """The seed's metrics for ``specs``, computed in plain Python from the spec."""
    seconds = sum(s.duration for s in specs if s.media_type != 2)
    saved = sum(s.bytes_saved or 0 for s in specs)
    return {
        "candidates": len(specs),
        "unique users": len({s.owner for s in specs if s.owner is not None}),
        "unique users (0 plays)": len(
            {s.owner for s in specs if s.owner is not None and not s.plays}
        ),
        "media type: video": sum(s.media_type == 1 for s in specs),
        "media type: audio": sum(s.media_type == 5 for s in specs),
        "media type: image": sum(s.media_type == 2 for s in specs),
        "media subtype: YouTube": sum(s.external and not s.quiz for s in specs),
        "media subtype: Quiz": sum(s.quiz and not s.external for s in specs),
        "media subtype: YouTube Quiz": sum(s.quiz and s.external for s in specs),
        "duration (seconds)": seconds,
        "duration (hours)": _q(Decimal(seconds) / 3600),
        "bytes saved": saved,
        "MB saved": _q(Decimal(saved) / 1024**2),
        "GB saved": _q(Decimal(saved) / 1024**3),
        "TB saved": _q(Decimal(saved) / 1024**4),
        "saved": humanize.naturalsize(saved, binary=True),
        "not sized yet": sum(s.bytes_saved is None for s in specs),
    }


def as_dict(table) -> dict[str, dict[str, object]]:
    rows = list(table.rows)
    return {h: {r[0]: r[i] for r in rows} for i, h in enumerate(table.headers) if i}


async def test_every_cell_matches_the_spec(ro_store: Store) -> None:
    table = await summary_report(ro_store)
    assert table.headers == ["metric", "2-year", "4-year", "non-ready", "6-month", "total"]
    got = as_dict(table)
    in_policy = [s for s in SPECS if s.state in IN_POLICY]
    for rule in ("2-year", "4-year", "non-ready", "6-month"):
        assert got[rule] == expected_column([s for s in in_policy if s.policy == rule]), rule
    assert got["total"] == expected_column(in_policy)


async def test_known_figures(ro_store: Store) -> None:
    """A few numbers worked out by hand, so a shared mistake in spec maths cannot hide."""
    got = as_dict(await summary_report(ro_store))
    assert got["2-year"]["candidates"] == 5
    assert got["total"]["candidates"] == 12  # kept, exempt and error rows excluded
    # alice has entries under 2-year and 4-year: one user in the total, not two.
    assert got["total"]["unique users"] == 6
    assert sum(got[r]["unique users"] for r in ("2-year", "4-year", "non-ready", "6-month")) == 7
    assert got["4-year"]["bytes saved"] == 2 * 1024**3 + 512 * 1024**2 + 4096 + 1_000_000 + (
        3 * 1024**4
    )
    assert got["4-year"]["TB saved"] == Decimal("3.00")
    assert got["2-year"]["bytes saved"] == 2000 + 3000 + 700 + 3 * 1024**2  # sources kept
    assert got["2-year"]["duration (seconds)"] == 3600 + 1800 + 600 + 125  # image excluded
    assert got["total"]["duration (hours)"] == Decimal("4.01")  # 14424 s
    assert got["total"]["saved"] == "3.0 TiB"


async def test_additive_rows_total_is_the_sum_of_rules(ro_store: Store) -> None:
    got = as_dict(await summary_report(ro_store))
    rules = ("2-year", "4-year", "non-ready", "6-month")
    for metric in ("candidates", "media type: video", "duration (seconds)", "bytes saved"):
        assert got["total"][metric] == sum(got[r][metric] for r in rules), metric


async def test_matches_plain_sql(ro_store: Store, built: Path) -> None:
    got = as_dict(await summary_report(ro_store))
    marks = ",".join("?" * len(IN_POLICY_STATES))
    with sqlite3.connect(built) as conn:
        per_rule = conn.execute(
            "SELECT e.policy, count(*), "
            " (SELECT coalesce(sum(a.size_bytes), 0) FROM assets a JOIN entries x "
            "  ON x.id = a.entry_id WHERE x.policy = e.policy AND a.kind = 'flavor' "
            f"  AND x.state IN ({marks}) AND (x.action = 'delete_entry' OR a.is_source = 0)) "
            f"FROM entries e WHERE e.state IN ({marks}) GROUP BY e.policy",
            [*IN_POLICY_STATES, *IN_POLICY_STATES],
        ).fetchall()
    assert {p: (got[p]["candidates"], got[p]["bytes saved"]) for p, _, _ in per_rule} == {
        p: (n, b) for p, n, b in per_rule
    }


async def test_states_parameter_changes_what_counts(ro_store: Store) -> None:
    got = as_dict(await summary_report(ro_store, states=["deleted"]))
    deleted = [s for s in SPECS if s.state == "deleted"]
    assert got["total"] == expected_column(deleted)
    assert got["non-ready"]["candidates"] == 0
    assert "6-month" not in got  # extra rule columns appear only when present


async def test_rule_names_and_unknown_state(ro_store: Store) -> None:
    table = await summary_report(ro_store, rule_names=["4-year"])
    assert table.headers == ["metric", "4-year", "2-year", "6-month", "non-ready", "total"]
    with pytest.raises(ReportError, match="unknown state 'bogus'"):
        await summary_report(ro_store, states=["candidate", "bogus"])


async def test_empty_store_has_the_seed_columns_and_zeros(db_path: Path) -> None:
    store = await open_store(db_path)
    try:
        table = await summary_report(store)
    finally:
        await store.close()
    assert table.headers == ["metric", "2-year", "4-year", "non-ready", "total"]
    rows = list(table.rows)
    assert [r[0] for r in rows][:3] == ["candidates", "unique users", "unique users (0 plays)"]
    assert all(r[1:] == [0, 0, 0, 0] for r in rows if r[0] == "candidates")
    assert rows[-2][1:] == ["0 Bytes"] * 4  # "saved"
    # Two decimals everywhere, the same text in CSV and the table.
    csv_text = render_to_string(table, "csv")
    assert "duration (hours),0.00,0.00,0.00,0.00" in csv_text

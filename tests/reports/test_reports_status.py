"""status_report: states and bytes, errors by prefix, last run — checked against plain SQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reporthelpers import SPECS

from kretain.output import render_to_string
from kretain.reports import status_report
from kretain.store import Store, open_store


async def test_by_state_matches_plain_sql(ro_store: Store, built: Path) -> None:
    by_state, _, _, _ = await status_report(ro_store)
    assert by_state.title == "Entries by state"
    assert by_state.headers == [
        "state",
        "policy",
        "action",
        "entries",
        "bytes_saved",
        "saved",
        "bytes_total",
        "total",
    ]
    rows = list(by_state.rows)
    *groups, total = rows
    with sqlite3.connect(built) as conn:
        want = conn.execute(
            "SELECT state, policy, action, count(*), coalesce(sum(bytes_saved), 0), "
            "coalesce(sum(bytes_total), 0) FROM entries GROUP BY state, policy, action"
        ).fetchall()
    mine = {(r[0], r[1], r[2], r[3], r[4], r[6]) for r in groups}
    assert mine == set(want)
    assert len(groups) == len(want)
    assert total[0] == "all"
    assert total[3] == len(SPECS)
    assert total[4] == sum(r[4] for r in want)
    assert total[6] == sum(r[5] for r in want)
    assert total[5] == "3.0 TiB"
    # lifecycle order, not alphabetical
    states = [r[0] for r in groups]
    assert states.index("candidate") < states.index("sized") < states.index("deleted")


async def test_errors_grouped_by_prefix(ro_store: Store) -> None:
    _, _, errors, _ = await status_report(ro_store)
    assert errors.headers == ["state", "error", "entries", "max_attempts", "example"]
    got = {(r[0], r[1]): (r[2], r[3], r[4]) for r in errors.rows}
    assert got == {
        ("delete_failed", "ACTION_BLOCKED"): (1, 1, "0_rep00005"),
        ("backup_failed", "DownloadHTTPError"): (1, 1, "0_rep00011"),
        ("error", "INVALID_KS"): (1, 1, "0_rep00015"),
        ("error", "(no message)"): (1, 0, "0_rep00016"),
    }


async def test_last_run(ro_store: Store) -> None:
    _, _, _, last = await status_report(ro_store)
    assert last.title == "Last run"
    assert list(last.rows) == [
        [
            1,
            "run",
            "done",
            "1970-01-01T00:16:40Z",
            "1970-01-01T00:18:10Z",
            "2025-01-01",
            "deleted=2, failed=2",
        ]
    ]
    text = "".join(render_to_string(t, "table") for t in await status_report(ro_store))
    assert "s3cret" not in text


async def test_empty_store(db_path: Path) -> None:
    store = await open_store(db_path)
    try:
        by_state, done, errors, last = await status_report(store)
        assert list(done.rows) == []
    finally:
        await store.close()
    assert list(by_state.rows) == [["all", None, None, 0, 0, "0 Bytes", 0, "0 Bytes"]]
    assert list(errors.rows) == []
    assert list(last.rows) == []


def test_run_counts_of_a_pipeline_run_read_as_one_line_per_stage() -> None:
    from kretain.reports.status import _counts_text

    counts = {
        "stages": {
            "discover": {"listed": 30943, "errors": 0, "complete": True},
            "size": {"sized": 29454, "gone": 0},
        },
        "problems": [],
    }
    assert _counts_text(counts) == ("discover: listed=30943 complete=True; size: sized=29454")
    assert _counts_text({"deleted": 2, "problems": ["x"]}) == "deleted=2, problems=1"


async def test_carried_out_counts_match_plain_sql(ro_store: Store, built: Path) -> None:
    _, done, _, _ = await status_report(ro_store)
    got = {r[0]: (r[1], r[2]) for r in done.rows}
    con = sqlite3.connect(built)
    want = {
        s: (n, freed)
        for s, n, freed in con.execute(
            "SELECT state, count(*), coalesce(sum(bytes_freed), 0) FROM entries "
            "WHERE state IN ('deleted', 'recycled', 'stripped') GROUP BY state"
        )
    }
    assert got == want and "deleted" in got

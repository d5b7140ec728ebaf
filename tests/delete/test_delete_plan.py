"""The plan: a dry run changes nothing, held-back rows say why, caps are exact."""

from __future__ import annotations

from delete_support import Setup


def test_a_dry_run_changes_nothing_in_kaltura(setup: Setup) -> None:
    before = setup.states()
    result = setup.run("--delete")
    assert result.exit_code == 0, result.output
    assert setup.sim.mutations == []  # not one call that changes Kaltura
    assert setup.states() == before  # and no entry moved
    assert "dry run: nothing was changed in Kaltura" in result.output
    plan = setup.plan(2)
    decisions = {p["decision"] for p in plan}
    assert {"delete", "strip"} <= decisions
    due = setup.sql(
        "SELECT count(*) FROM entries WHERE (state = 'archived' AND action = 'delete_entry') "
        "OR (state = 'sized' AND action = 'delete_flavors')"
    )[0][0]
    assert len([p for p in plan if p["decision"] in ("delete", "strip", "held")]) >= due
    held = [p for p in plan if p["decision"] == "held"]
    assert all(p["reason"] for p in held)
    stored = dict(setup.sql("SELECT id, held_reason FROM entries WHERE held_reason IS NOT NULL"))
    assert {p["entry_id"] for p in held} >= set(stored)


def test_max_deletes_and_max_delete_bytes_are_exact(setup: Setup) -> None:
    result = setup.run("--delete", "--yes", "--max-deletes", "7")
    assert result.exit_code == 0, result.output
    assert "--max-deletes 7 reached" in result.output
    done = setup.sql(
        "SELECT count(*) FROM entries WHERE state IN ('deleted', 'recycled', 'stripped')"
    )[0][0]
    assert done == 7
    # Bytes (a cap per run, like the count): it stops before the entry that would pass it.
    freed = setup.sql("SELECT coalesce(sum(bytes_freed), 0) FROM entries")[0][0]
    cap = 600_000
    result = setup.run("--delete", "--yes", "--max-delete-bytes", str(cap))
    assert result.exit_code == 0, result.output
    this_run = setup.sql("SELECT coalesce(sum(bytes_freed), 0) FROM entries")[0][0] - freed
    assert 0 < this_run <= cap
    stop = next(line for line in result.output.splitlines() if "would be exceeded" in line)
    needed = int(stop.split("(")[-1].split(" bytes")[0].replace(",", ""))
    assert this_run + needed > cap  # the entry it stopped at would have passed the cap

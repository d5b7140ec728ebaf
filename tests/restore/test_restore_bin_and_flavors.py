"""Recycled entries come back out of the recycle bin (or from the archive once the bin was
emptied); stripped entries get their flavors converted again. Restored entries stay exempt
until `kretain unexempt`."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ctxhelpers import make_ctx
from restore_support import (
    ENTRIES,
    MULTI_STREAM,
    SPEC,
    client_for,
    kretain,
    kretain_child,
    new_run,
    retention_config,
    retention_env,
    retention_run,
    store_at,
)

from kretain import rules
from kretain.reports.report_queries import read_cube, timeline
from kretain.simulator.testing import admitted_times, max_in_window, run_simulator
from kretain.store import queries
from kretain.store.states import State
from kretain.workers.restore import RestoreOptions, restore

EVERYTHING_TOML = """
[[policy.rules]]
name = "everything"
min_age_years = 0
not_played_years = 0
action = "delete_entry"
"""


def row_of(db: Path, entry_id: str) -> Any:
    async def go() -> Any:
        async with store_at(db) as store:
            return await queries.get_entry(store, entry_id)

    return asyncio.run(go())


def events_of(db: Path, entry_id: str) -> list[tuple[str, str | None, str | None]]:
    async def go() -> list[tuple[str, str | None, str | None]]:
        async with store_at(db) as store:
            rows = await store.fetchall(
                "SELECT kind, action, outcome FROM events WHERE entry_id = ? ORDER BY id",
                (entry_id,),
            )
            return [tuple(r) for r in rows]

    return asyncio.run(go())


def calls(sim: Any, service: str, action: str) -> list[dict[str, Any]]:
    return [m for m in sim.mutations if m["service"] == service and m["action"] == action]


def test_recycled_entry_comes_out_of_the_bin_and_stays_exempt_until_lifted(
    tmp_path: Path,
) -> None:
    eid = ENTRIES["image_b"]
    db = tmp_path / "k.db"
    with run_simulator(SPEC) as sim:
        retention_run(sim, db, tmp_path / "archive", [eid], "recycle")
        assert sim.partner.get_entry(eid)["displayInSearch"] == -2
        before = len(sim.mutations)
        dry = kretain(sim, db, "restore", eid)
        assert dry.exit_code == 0 and len(sim.mutations) == before
        assert "would restore from the recycle bin" in dry.stdout
        done = kretain(sim, db, "restore", eid, "--yes")
        assert done.exit_code == 0, done.output
        assert "restored from the recycle bin" in done.stdout
        assert sim.partner.get_entry(eid)["displayInSearch"] == 1  # out of the bin, same id
        assert [m["outcome"] for m in calls(sim, "baseentry", "restorerecycled")] == ["ok"]
        row = row_of(db, eid)
        assert row.state == State.KEPT and row.reason == "restored from the recycle bin"
        assert row.exempt_by == rules.RESTORED_EXEMPTION and row.purge_at is None

        # The next run does not make it a candidate again: the exemption holds...
        (tmp_path / "kretain.toml").write_text(EVERYTHING_TOML)
        audit = kretain(sim, db, "run", "--stage", "audit", "--no-progress")
        assert audit.exit_code == 0, audit.output
        row = row_of(db, eid)
        assert row.state == State.EXEMPT and row.exempt_by == rules.RESTORED_EXEMPTION
        # ...until it is lifted (an admin event); then the policy applies again.
        listed = kretain(sim, db, "unexempt", "--list")
        assert eid in listed.stdout and "restored from the recycle bin" in listed.stdout
        lifted = kretain(sim, db, "unexempt", eid)
        assert lifted.exit_code == 0 and "exemption lifted" in lifted.stdout
        assert ("admin", None, "exemption_lifted") in events_of(db, eid)
        assert kretain(sim, db, "unexempt", eid).exit_code == 1  # nothing left to lift
        audit = kretain(sim, db, "run", "--stage", "audit", "--no-progress")
        assert audit.exit_code == 0, audit.output
        assert row_of(db, eid).state in (State.CANDIDATE, State.SIZED)


def test_an_entry_back_from_the_bin_and_deleted_later_is_reported_as_deleted(
    tmp_path: Path,
) -> None:
    eid = ENTRIES["image_c"]
    db, root = tmp_path / "k.db", tmp_path / "archive"
    with run_simulator(SPEC) as sim:
        retention_run(sim, db, root, [eid], "recycle")
        assert kretain(sim, db, "restore", eid, "--yes").exit_code == 0
        assert kretain(sim, db, "unexempt", eid).exit_code == 0
        # The policy acts on it again, this time in delete mode.
        again = kretain(
            sim, db, "run", "--no-progress", "--delete", "--yes",
            config=tmp_path / "retention.toml", **retention_env(root),
        )  # fmt: skip
        assert again.exit_code == 0, again.output
        row = row_of(db, eid)
        assert row.state == State.DELETED and row.delete_mode == "delete"
        assert sim.partner.sql("SELECT status FROM entries WHERE id = ?", (eid,)) == [(3,)]

        async def removals() -> list[Any]:
            async with store_at(db) as store:
                return timeline(await read_cube(store)).rows

        # The report counts it once, deleted on the day it was deleted (the recycle that
        # the restore undid is not a removal any more).
        [shown] = asyncio.run(removals())
        day = datetime.fromtimestamp(row.deleted_at, UTC).date().isoformat()
        assert (shown.period, shown.removed_as, shown.entries) == (day, "deleted", 1)


def test_a_recycled_entry_needs_no_archive_and_one_already_out_of_the_bin_is_recorded(
    tmp_path: Path,
) -> None:
    binned, taken_out = ENTRIES["image_a"], ENTRIES["image_b"]
    db = tmp_path / "k.db"
    with run_simulator(SPEC) as sim:
        retention_run(sim, db, None, [binned, taken_out], "recycle")  # never backed up
        sim.partner.restore_recycled_entry(taken_out)  # an admin took it out in the KMC
        before = len(sim.mutations)
        dry = kretain(sim, db, "restore", binned, taken_out)
        assert dry.exit_code == 0 and len(sim.mutations) == before
        lines = {x.split()[0]: x for x in dry.stdout.splitlines() if x.startswith("0_")}
        assert "would restore from the recycle bin" in lines[binned]
        assert "would restore from the recycle bin" in lines[taken_out]
        assert "already out of the recycle bin" in lines[taken_out]
        done = kretain(sim, db, "restore", binned, taken_out, "--yes")
        assert done.exit_code == 0, done.output
        assert [m["id"] for m in calls(sim, "baseentry", "restorerecycled")] == [binned]
        for eid in (binned, taken_out):
            assert sim.partner.get_entry(eid)["displayInSearch"] == 1
            row = row_of(db, eid)
            assert row.state == State.KEPT and row.exempt_by == rules.RESTORED_EXEMPTION


def test_a_recycle_whose_answer_was_lost_is_recorded_and_comes_back_from_the_bin(
    tmp_path: Path,
) -> None:
    """baseEntry.recycle is applied but its answer is lost; the re-send is refused
    (INVALID_ENTRY_STATUS_FOR_RECYCLE: the entry is in the bin already). Kaltura is asked,
    so the row is recycled, and the restore takes the entry out of the bin. (Taking the
    refusal for the first call's answer left it in delete_failed: in the bin, yet not
    restorable.)"""
    eid = ENTRIES["image_b"]
    db, root = tmp_path / "k.db", tmp_path / "archive"
    with run_simulator(SPEC) as sim:
        config = retention_config(sim, db, [eid], "recycle")
        env = retention_env(root)
        audit = kretain(sim, db, "run", "--no-progress", config=config, **env)
        assert audit.exit_code == 0, audit.output
        sim.knobs.lose_next("baseEntry.recycle")
        run = kretain(
            sim, db, "run", "--no-progress", "--delete", "--yes", "--mode", "recycle",
            config=config, **env,
        )  # fmt: skip
        assert run.exit_code == 0, run.output
        sent = calls(sim, "baseentry", "recycle")
        assert [(m["outcome"], m["answer_lost"]) for m in sent] == [
            ("ok", True),
            ("INVALID_ENTRY_STATUS_FOR_RECYCLE", False),
        ]
        row = row_of(db, eid)
        assert row.state == State.RECYCLED and row.purge_at is not None
        assert ("api", "baseentry.recycle", "ok (answer lost; looked up)") in events_of(db, eid)
        done = kretain(sim, db, "restore", eid, "--yes")
        assert done.exit_code == 0, done.output
        assert row_of(db, eid).state == State.KEPT
        assert sim.partner.get_entry(eid)["displayInSearch"] == 1


def test_a_lost_answer_on_restore_recycled_is_not_sent_twice(tmp_path: Path) -> None:
    eid = ENTRIES["image_c"]
    db = tmp_path / "k.db"
    with run_simulator(SPEC) as sim:
        retention_run(sim, db, tmp_path / "archive", [eid], "recycle")
        sim.knobs.lose_next("baseEntry.restoreRecycled")
        done = kretain(sim, db, "restore", eid, "--yes")
        assert done.exit_code == 0, done.output
        sent = calls(sim, "baseentry", "restorerecycled")
        assert len(sent) == 1 and sent[0]["answer_lost"]
        assert row_of(db, eid).state == State.KEPT
        events = events_of(db, eid)
        assert ("intent", "baseentry.restorerecycled", "intent") in events
        assert ("api", "baseentry.restorerecycled", "ok") in events  # found out of the bin


def test_an_entry_purged_from_the_bin_is_recreated_from_the_archive(tmp_path: Path) -> None:
    eids = [ENTRIES["audio"], MULTI_STREAM]
    db, root = tmp_path / "k.db", tmp_path / "archive"
    with run_simulator(SPEC) as sim:
        kids = children(sim, MULTI_STREAM)
        retention_run(sim, db, root, eids, "recycle")
        # 31 days later Kaltura's daily cleanup has emptied the bin (children too).
        sim.knobs.now = sim.partner.clock() + 31 * 86_400
        dry = kretain(sim, db, "restore", *eids)
        for eid in eids:
            line = next(x for x in dry.stdout.splitlines() if x.startswith(eid))
            assert "purged from the recycle bin; re-create from" in line
        done = kretain(sim, db, "restore", *eids, "--yes")
        assert done.exit_code == 0, done.output
        for eid in eids:
            row = row_of(db, eid)
            assert row.state == State.RESTORED and row.new_entry_id not in (None, eid)
            assert sim.partner.get_entry(row.new_entry_id)["status"] == 2
            # Out of every bin now: no date until which it could come back from one.
            assert row.purge_at is None
        assert len(children(sim, row_of(db, MULTI_STREAM).new_entry_id)) == len(kids)
        assert calls(sim, "baseentry", "restorerecycled") == []
        export = kretain(sim, db, "export", "--state", "restored")
        table = {r["entry_id"]: r for r in csv.DictReader(io.StringIO(export.stdout))}
        assert {table[eid]["mode"] for eid in eids} == {"recycle"}
        assert {table[eid]["bin_empties"] for eid in eids} == {""}
        assert table[MULTI_STREAM]["new_entry_id"] == row_of(db, MULTI_STREAM).new_entry_id


def stripped_flavors(sim: Any, entry_id: str) -> set[int]:
    return {
        a["flavorParamsId"]
        for a in sim.partner.assets_of(entry_id)
        if a["kind"] == "flavor" and not a.get("isOriginal")
    }


def children(sim: Any, entry_id: str) -> list[str]:
    rows = sim.partner.sql("SELECT id FROM entries WHERE parent_entry_id = ?", (entry_id,))
    return [r[0] for r in rows]


def test_stripped_entries_get_their_flavors_back_children_too(tmp_path: Path) -> None:
    eids = [ENTRIES["captions_emoji"], MULTI_STREAM]
    db = tmp_path / "k.db"
    with run_simulator(SPEC) as sim:
        owners = [*eids, *children(sim, MULTI_STREAM)]
        params = {o: stripped_flavors(sim, o) for o in owners}
        assert len(params[eids[0]]) >= 3 and params[MULTI_STREAM]
        assert sum(1 for o in children(sim, MULTI_STREAM) if params[o]) == 1
        retention_run(sim, db, None, eids, "strip")
        assert all(stripped_flavors(sim, o) == set() for o in owners)

        async def removed() -> dict[str, set[str]]:
            """Owner -> the flavors marked removed (the child's are on its parent's row)."""
            out: dict[str, set[str]] = {}
            async with store_at(db) as store:
                for eid in eids:
                    for a in await queries.assets_of(store, eid):
                        if a.removed_at is not None:
                            out.setdefault(a.owner, set()).add(a.id)
            return out

        marked = asyncio.run(removed())
        assert set(marked) == {o for o in owners if params[o]}
        assert {o: len(ids) for o, ids in marked.items()} == {
            o: len(p) for o, p in params.items() if p
        }
        dry = kretain(sim, db, "restore", "--state", "stripped")
        assert "would rebuild flavors" in dry.stdout
        done = kretain(sim, db, "restore", "--state", "stripped", "--yes")
        assert done.exit_code == 0, done.output
        for owner in owners:
            assert stripped_flavors(sim, owner) == params[owner], owner
            flavors = [a for a in sim.partner.assets_of(owner) if a["kind"] == "flavor"]
            assert all(a["status"] == 2 for a in flavors), owner
        assert len(calls(sim, "flavorasset", "convert")) == sum(len(p) for p in params.values())
        for eid in eids:
            row = row_of(db, eid)
            assert row.state == State.KEPT and row.exempt_by == rules.RESTORED_EXEMPTION
        assert asyncio.run(removed()) == {}
        before = len(sim.mutations)
        again = kretain(sim, db, "restore", *eids, "--yes")
        assert again.exit_code == 0 and len(sim.mutations) == before  # a second time: nothing


def test_flavors_a_stopped_strip_removed_come_back_after_the_entry_was_exempted(
    tmp_path: Path,
) -> None:
    """A strip is killed after its first flavorAsset.delete; before the next run the entry
    is exempted (added to the exempt id list). The next run settles the stopped strip and
    exempts the row, with one flavor removed: `kretain restore ID` converts it again."""
    eid = ENTRIES["captions_emoji"]
    db = tmp_path / "k.db"
    with run_simulator(SPEC) as sim:
        before = stripped_flavors(sim, eid)
        assert len(before) >= 3
        config = retention_config(sim, db, [eid], "strip", backup=False)
        env = retention_env(None)
        audit = kretain(sim, db, "run", "--no-progress", config=config, **env)
        assert audit.exit_code == 0, audit.output
        sim.knobs.set_rate_limit("flavorAsset.delete", 1, 600)  # one call, then blocked
        child = kretain_child(sim, db, "run", "--no-progress", "--delete", "--yes",
                              config=config, **env)  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while len(calls(sim, "flavorasset", "delete")) < 2:  # one done, one blocked
                assert child.poll() is None, child.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the strip never started"
                time.sleep(0.02)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait(timeout=10)
            child.stderr.close()  # type: ignore[union-attr]
        sim.knobs.rate_limits = {}
        gone = before - stripped_flavors(sim, eid)
        assert len(gone) == 1
        others = db.parent / "others.txt"
        others.write_text(others.read_text() + f"{eid}\n")  # exempted since
        settle = kretain(sim, db, "run", "--no-progress", "--delete", config=config, **env)
        assert settle.exit_code == 0, settle.output
        row = row_of(db, eid)
        assert row.state == State.EXEMPT
        dry = kretain(sim, db, "restore", eid)
        assert dry.exit_code == 0 and "would rebuild flavors" in dry.stdout, dry.output
        done = kretain(sim, db, "restore", eid, "--yes")
        assert done.exit_code == 0, done.output
        assert stripped_flavors(sim, eid) == before
        converts = calls(sim, "flavorasset", "convert")
        assert [c["params"].get("flavorParamsId") for c in converts] == [str(p) for p in gone]
        row = row_of(db, eid)
        assert row.state == State.KEPT and row.exempt_by == rules.RESTORED_EXEMPTION
        again = kretain(sim, db, "restore", eid, "--yes")
        assert again.exit_code == 0 and len(calls(sim, "flavorasset", "convert")) == 1


async def _restore_directly(sim: Any, db: Path, ids: list[str], opts: RestoreOptions) -> Any:
    async with store_at(db) as store, client_for(sim) as client:
        ctx = make_ctx(store, client, await new_run(store))
        rows = await queries.restore_selection(store, ids=ids)
        return await restore(ctx, rows, options=opts)


def test_calls_are_paced_per_action_and_action_blocked_slows_down(tmp_path: Path) -> None:
    eids = [ENTRIES["captions_emoji"], ENTRIES["captions_child"]]
    db = tmp_path / "k.db"
    with run_simulator(SPEC) as sim:
        owners = [*eids, *(c for e in eids for c in children(sim, e))]
        wanted = {o: stripped_flavors(sim, o) for o in owners}
        wanted = {o: p for o, p in wanted.items() if p}
        retention_run(sim, db, None, eids, "strip")
        # The partner allows 3 converts in half a second; we ask for 4: blocked, then slower.
        sim.knobs.set_rate_limit("flavorAsset.convert", 3, 0.5)
        result = asyncio.run(
            _restore_directly(sim, db, eids, RestoreOptions(rate=4, window=0.5, concurrency=2))
        )
        assert result.rebuilt == 2 and result.failed == 0, result.problems
        converts = calls(sim, "flavorasset", "convert")
        ok = [m for m in converts if m["outcome"] == "ok"]
        assert any(m["outcome"] == "ACTION_BLOCKED" for m in converts)
        converted = {(m["id"], int(m["params"]["flavorParamsId"])) for m in ok}
        assert len(converted) == len(ok)  # each flavor converted once, blocked calls resent
        assert converted == {(owner, p) for owner in wanted for p in wanted[owner]}
        for owner, params in wanted.items():
            assert stripped_flavors(sim, owner) == params
        assert max_in_window(admitted_times(sim.mutations, "flavorAsset.convert"), 0.5) <= 4

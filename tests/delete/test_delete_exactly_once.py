"""Exactly once under crashes, lost answers and a partner limit below the configured rate."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from delete_support import SPEC, Setup, audited

from kretain.kaltura.client import ClientConfig, KalturaClient
from kretain.simulator.testing import admitted_times, max_in_window, run_simulator
from kretain.store import queries, transitions
from kretain.store.db import open_store
from kretain.store.states import State


def _ok_counts(setup: Setup, action: str) -> Counter[str]:
    return Counter(setup.ok_calls(action))


def _assert_recorded_exactly_once(setup: Setup) -> None:
    """Every delete Kaltura applied is recorded, none twice, none that Kaltura still has."""
    deletes = _ok_counts(setup, "baseentry.delete")
    flavors = _ok_counts(setup, "flavorasset.delete")
    assert deletes and max(deletes.values()) == 1 and max(flavors.values()) == 1
    states = setup.states()
    assert {e for e, s in states.items() if s == "deleted"} == set(deletes)
    for entry_id in deletes:
        assert setup.sim.partner.sql("SELECT status FROM entries WHERE id = ?", (entry_id,)) == [
            (3,)
        ]
    assert "deleting" not in states.values() and "delete_failed" not in states.values()
    removed = {r[0] for r in setup.sql("SELECT id FROM assets WHERE removed_at IS NOT NULL")}
    assert removed == set(flavors)


def test_lost_answers_are_recorded_exactly_once(setup: Setup) -> None:
    setup.sim.knobs.lost_answer = 0.05
    setup.sim.knobs.fault_seed = 3
    result = setup.run("--delete", "--yes")
    assert result.exit_code == 0, result.output
    lost = [m for m in setup.sim.mutations if m["answer_lost"]]
    assert len(lost) >= 3  # the fault did happen
    _assert_recorded_exactly_once(setup)


def test_a_partner_limit_below_the_configured_rate(setup: Setup) -> None:
    # 2-second windows: a loaded test machine delays some calls by a good part of a second,
    # which would blur 1-second windows (Kaltura's are 10 s).
    setup.sim.knobs.set_rate_limit("baseEntry.delete", 10, 2.0)
    result = setup.run(
        "--delete", "--yes", "--max-deletes", "40",
        KRETAIN_DELETE_RATE="13", KRETAIN_DELETE_WINDOW="2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    calls = [
        m for m in setup.sim.mutations if (m["service"], m["action"]) == ("baseentry", "delete")
    ]
    blocked = [m for m in calls if m["outcome"] == "ACTION_BLOCKED"]
    assert len(calls) - len(blocked) >= 20
    assert len(blocked) <= 0.15 * len(calls)  # it slowed down instead of hammering
    assert max_in_window(admitted_times(setup.sim.mutations, "baseEntry.delete"), 2.0) <= 10
    assert "ACTION_BLOCKED" in result.output  # the pace table reports it


def _kretain_process(setup: Setup) -> subprocess.Popen[bytes]:
    env = {**os.environ, **setup.env}
    return subprocess.Popen(
        [sys.executable, "-m", "kretain", "--db", str(setup.db), "run", "--no-progress",
         "--delete", "--yes"],
        env=env, cwd=setup.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_sigkill_at_random_moments_then_runs_until_done(tmp_path: Path) -> None:
    # The reference: the same partner, deleted without interruption.
    with run_simulator(SPEC) as sim:
        reference = audited(sim, tmp_path / "reference")
        assert reference.run("--delete", "--yes").exit_code == 0
        want = reference.states()
    rng = random.Random(7)
    with run_simulator(SPEC) as sim:
        setup = audited(sim, tmp_path / "killed")
        sim.knobs.latency_ms = 100  # deletes take seconds, so kills land in the middle
        kills = 0
        for _ in range(8):
            child = _kretain_process(setup)
            time.sleep(rng.uniform(1.0, 3.5))
            if child.poll() is not None:
                break  # it finished before the kill
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=20)
            kills += 1
        assert kills >= 3
        sim.knobs.latency_ms = 0
        for _ in range(3):  # then runs until done
            result = setup.run("--delete", "--yes")
            assert result.exit_code == 0, result.output
        assert setup.states() == want
        _assert_recorded_exactly_once(setup)


def test_a_stop_between_an_answer_and_its_move(setup: Setup) -> None:
    """Kaltura said ok and the answer is on record, but the run stopped before the row
    moved: the next run must call it deleted (not gone), mark the stripped flavor, and
    finish the strip."""
    whole = setup.sql(
        "SELECT id FROM entries WHERE state = 'archived' AND action = 'delete_entry' LIMIT 1"
    )[0][0]
    # A strip of several flavors: the stopped run removed the first, the next run the rest.
    strip, victim = setup.sql(
        "SELECT e.id, min(a.id) FROM entries e JOIN assets a ON a.entry_id = e.id "
        "WHERE e.state = 'sized' AND e.action = 'delete_flavors' AND a.kind = 'flavor' "
        "AND NOT a.is_source GROUP BY e.id HAVING count(*) >= 2 LIMIT 1"
    )[0]

    async def stop_after_the_answers() -> None:
        store = await open_store(setup.db)
        config = ClientConfig(
            service_url=setup.sim.url,
            partner_id=setup.sim.partner.spec.partner_id,
            admin_secret=setup.sim.partner.spec.admin_secret,
        )
        try:
            async with KalturaClient(config) as client:
                run_id = await queries.start_run(store, "test", {})
                for entry_id, call, send in (
                    (whole, "baseentry.delete", lambda: client.delete_entry(whole)),
                    (strip, "flavorasset.delete", lambda: client.delete_flavor(victim)),
                ):
                    row = await queries.get_entry(store, entry_id)
                    assert row is not None
                    await transitions.move(store, entry_id, row.state, State.DELETING,
                                           run_id=run_id)  # fmt: skip
                    asset = victim if entry_id == strip else None
                    await transitions.record_intent(store, run_id=run_id, call=call,
                                                    entry_id=entry_id, asset_id=asset)  # fmt: skip
                    await send()
                    await transitions.record_api_event(store, run_id=run_id, call=call,
                                                       outcome="ok", entry_id=entry_id,
                                                       asset_id=asset)  # fmt: skip
        finally:
            await store.close()

    asyncio.run(stop_after_the_answers())
    result = setup.run("--delete", "--yes")
    assert result.exit_code == 0, result.output
    assert setup.states()[whole] == "deleted"
    assert setup.sql("SELECT removed_at IS NOT NULL FROM assets WHERE id = ?", (victim,)) == [(1,)]
    assert setup.states()[strip] == "stripped"
    # What the row says it freed counts both runs' flavors.
    assert setup.sql("SELECT bytes_freed FROM entries WHERE id = ?", (strip,)) == setup.sql(
        "SELECT sum(size_bytes) FROM assets WHERE entry_id = ? AND kind = 'flavor' "
        "AND NOT is_source AND removed_at IS NOT NULL",
        (strip,),
    )
    _assert_recorded_exactly_once(setup)

"""discover() against the simulator over real HTTP, with a real SQLite store."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from ctxhelpers import make_ctx
from test_discover_helpers import VISIBLE, YEAR, as_of_ts, client_config, rows_by_state, truth

from kretain.kaltura.client import KalturaClient
from kretain.policy import Policy
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator
from kretain.store import queries
from kretain.store.db import open_store
from kretain.workers.discover import discover

AS_OF = date(2026, 11, 22)


async def _discover(sim, db: Path, *, concurrency=4, progress=None, policy=None, **kw):
    async with await open_store(db) as store:
        run_id = await queries.start_run(store, "discover", {})
        async with KalturaClient(client_config(sim, **kw)) as client:
            ctx = make_ctx(store, client, run_id, policy=policy, progress=progress)
            result = await discover(ctx, concurrency=concurrency)
        rows = await rows_by_state(store)
    return result, rows


async def test_small_partner_exact_set(tmp_path: Path) -> None:
    spec = PartnerSpec(entries=1_500, seed=11, traps=True)
    with run_simulator(spec) as sim:
        want = truth(sim.partner, AS_OF)
        result, rows = await _discover(sim, tmp_path / "k.db")
        got = {i: (r["policy"], r["action"]) for i, r in rows.items() if r["state"] == "candidate"}
        assert result.complete, result.problems
        missing = set(want) - set(got)
        extra = set(got) - set(want)
        assert not missing and not extra, (sorted(missing)[:5], sorted(extra)[:5])
        assert got == want
        assert result.candidates == len(want)
        # Non-ready and never-played candidates are among them.
        nonready = [i for i, (rule, _) in want.items() if rule == "non-ready"]
        assert nonready
        never = {r[0] for r in sim.partner.sql("SELECT id FROM entries WHERE plays = 0")}
        assert never & set(got)
        # Every listing request was a first page (cursor paging, never pageIndex > 1).
        assert sim.stats.calls["baseentry.list"] == result.pages


@pytest.mark.parametrize("concurrency", [1])
async def test_second_call_is_a_refresh(tmp_path: Path, concurrency: int) -> None:
    spec = PartnerSpec(entries=400, seed=5, traps=False)
    with run_simulator(spec) as sim:
        first, _ = await _discover(sim, tmp_path / "k.db", concurrency=concurrency)
        second, rows = await _discover(sim, tmp_path / "k.db", concurrency=concurrency)
        assert first.complete and second.complete
        assert second.generation == first.generation + 1 and not second.resumed
        want = truth(sim.partner, AS_OF)
        got = {i for i, r in rows.items() if r["state"] == "candidate"}
        assert got == set(want)


async def test_played_during_discovery_and_refresh_generation(tmp_path: Path) -> None:
    """Plays between pages: listed entries are caught by the next generation's refresh,
    unlisted ones are never candidates; a deleted entry becomes gone."""
    spec = PartnerSpec(entries=3_000, seed=13, traps=False)
    with run_simulator(spec) as sim:
        want = truth(sim.partner, AS_OF)
        four = sorted(
            (sim.partner.sql("SELECT created_at FROM entries WHERE id = ?", (i,))[0][0], i)
            for i, (rule, _) in want.items()
            if rule != "non-ready"
        )
        early = [i for _, i in four[:3]]  # in the first page of the READY pass
        late = [i for _, i in four[-3:]]  # in its last page
        played_at = as_of_ts(AS_OF) - 86_400
        fired = []

        def progress(event: str, **counts) -> None:
            if event == "discover.page" and not fired:
                fired.append(counts)
                for entry_id in early + late:
                    sim.partner.set_last_played(entry_id, played_at)

        first, rows = await _discover(sim, tmp_path / "k.db", concurrency=1, progress=progress)
        assert fired and first.complete
        assert all(rows[i]["state"] == "candidate" for i in early)
        assert not any(i in rows for i in late)  # played before they were listed
        gone_id = next(i for i in want if i not in early + late)
        sim.partner.delete_entry(gone_id, media_only=False)
        second, rows = await _discover(sim, tmp_path / "k.db", concurrency=1)
        assert second.complete and second.generation == 2
        assert second.refreshed >= len(early) + 1 and second.gone == 1
        for entry_id in early:
            assert rows[entry_id]["state"] == "kept"
            assert rows[entry_id]["reason"] == "played 2026-11-21 since the audit"
        assert rows[gone_id]["state"] == "gone"
        now_truth = truth(sim.partner, AS_OF)
        got = {i for i, r in rows.items() if r["state"] == "candidate"}
        assert got == set(now_truth)


@pytest.fixture(scope="module")
def big_sim():
    """~31k entries, 12,000 of them created in ONE second (a bulk upload)."""
    with run_simulator(PartnerSpec(entries=31_000, seed=3, burst=12_000, traps=True)) as sim:
        yield sim


async def test_big_partner_over_the_cap(big_sim, tmp_path: Path) -> None:
    want = truth(big_sim.partner, AS_OF)
    assert len(want) > 10_000
    result, rows = await _discover(big_sim, tmp_path / "k.db", concurrency=4)
    got = {i: (r["policy"], r["action"]) for i, r in rows.items() if r["state"] == "candidate"}
    assert result.complete and not result.problems
    assert got == want
    # Nothing taken twice: every listed entry is one distinct row.
    assert result.listed == len(rows)


async def test_burst_second_over_the_cap(big_sim, tmp_path: Path) -> None:
    """A rule ignoring plays lists all 12,000 entries of the burst second."""
    from kretain.policy import Rule

    policy = Policy(rules=(Rule("old", "delete_flavors", min_age_years=2, not_played_years=0),))
    t = as_of_ts(AS_OF)
    burst_at, burst_n = big_sim.partner.sql(
        "SELECT created_at, count(*) FROM entries GROUP BY created_at ORDER BY 2 DESC LIMIT 1"
    )[0]
    assert burst_n >= 12_000
    want = {
        r[0]
        for r in big_sim.partner.sql(
            f"SELECT id FROM entries WHERE {VISIBLE} AND status = 2 AND created_at <= ? "
            "AND (last_played_at IS NULL OR last_played_at <= ?)",
            (t - 2 * YEAR, t),
        )
    }
    result, rows = await _discover(big_sim, tmp_path / "k.db", policy=policy)
    got = {i for i, r in rows.items() if r["state"] == "candidate"}
    assert result.complete and not result.problems
    assert got == want
    in_burst = big_sim.partner.sql(
        f"SELECT count(*) FROM entries WHERE {VISIBLE} AND created_at = ?", (burst_at,)
    )[0][0]
    assert len([i for i in got if i in want]) == len(want) and in_burst > 10_000
    assert result.listed == len(rows)


DRIVER = """
import asyncio, os, sys
from datetime import date
from kretain.kaltura.client import ClientConfig, KalturaClient
from kretain.policy import Policy
from kretain.store import queries
from kretain.store.db import open_store
from kretain.workers.context import RunContext
from kretain.workers.discover import discover

url, partner_id, db = sys.argv[1:4]

def progress(event, **counts):
    if event == "discover.page":
        print("page", counts["pages"], flush=True)

async def main():
    async with await open_store(db) as store:
        run_id = await queries.start_run(store, "discover", {})
        config = ClientConfig(
            service_url=url, partner_id=int(partner_id),
            admin_secret=os.environ["KALTURA_ADMIN_SECRET"],
        )
        async with KalturaClient(config) as client:
            ctx = RunContext(store, client, run_id=run_id, policy=Policy.default(),
                             as_of=date(2026, 11, 22), progress=progress)
            await discover(ctx, concurrency=2)
    print("done", flush=True)

asyncio.run(main())
"""


async def test_sigkill_then_resume_requests_no_saved_page_again(big_sim, tmp_path: Path) -> None:
    sim = big_sim
    reference, _ = await _discover(sim, tmp_path / "ref.db", concurrency=2)
    assert reference.complete
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    db = tmp_path / "k.db"
    env = {**os.environ, "KALTURA_ADMIN_SECRET": sim.partner.spec.admin_secret}
    sim.knobs.latency_ms = 40  # keep requests in flight when the kill lands
    proc = subprocess.Popen(
        [sys.executable, str(script), sim.url, str(sim.partner.spec.partner_id), str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        pages_seen = 0
        assert proc.stdout is not None
        for line in proc.stdout:
            pages_seen += line.startswith("page")
            if pages_seen >= 8:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    sim.knobs.latency_ms = 0
    assert pages_seen >= 8, "the driver finished or died before the kill"
    with sqlite3.connect(db) as conn:
        saved = conn.execute("SELECT coalesce(sum(pages), 0) FROM discovery_windows").fetchone()[0]
        done_before = conn.execute(
            "SELECT id, pages FROM discovery_windows WHERE status = 'done'"
        ).fetchall()
        listed_before = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
    assert 0 < saved < reference.pages and listed_before > 0
    calls_before = sim.stats.calls["baseentry.list"]
    resumed, rows = await _discover(sim, db, concurrency=3)
    assert resumed.resumed and resumed.complete and resumed.generation == 1
    # Exactly the pages the killed run had not saved were requested again: the
    # planner is deterministic, so saved + re-requested == an uninterrupted run.
    assert sim.stats.calls["baseentry.list"] - calls_before == resumed.pages
    assert resumed.pages == reference.pages - saved
    with sqlite3.connect(db) as conn:
        for window_id, pages in done_before:
            assert conn.execute(
                "SELECT pages FROM discovery_windows WHERE id = ?", (window_id,)
            ).fetchone() == (pages,)
    got = {i: (r["policy"], r["action"]) for i, r in rows.items() if r["state"] == "candidate"}
    assert got == truth(sim.partner, AS_OF)


async def test_hostile_entry_data_is_recorded_as_error(tmp_path: Path) -> None:
    """Wire entries that fail the checks become state error with the reason (real store)."""
    from kretain.workers import discover as mod

    good = {
        "id": "0_good0001", "objectType": "KalturaMediaEntry", "type": 1, "status": 2,
        "createdAt": 1_500_000_000, "updatedAt": 1_500_000_000, "plays": 0, "mediaType": 1,
    }  # fmt: skip
    hostile = [
        {**good, "id": "0_bad00001", "createdAt": "yesterday"},
        {**good, "id": "0_bad00002", "lastPlayedAt": {"$gt": 0}},
        {**good, "id": "0_bad00003", "status": None},
        {**good, "id": "../../etc/passwd"},  # unusable id: skipped, never stored
    ]
    async with await open_store(tmp_path / "k.db") as store:
        run_id = await queries.start_run(store, "discover", {})
        result = mod.DiscoverResult(generation=1, resumed=False)
        run = mod._Run(make_ctx(store, None, run_id), 1, {}, result)  # type: ignore[arg-type]
        admissions, bad = mod._admissions(run, [good, *hostile])
        async with store.transaction():
            await mod.transitions.admit(store, admissions, run_id=run_id)
            await mod._record_bad(run, bad, 1_800_000_000)
        rows = await rows_by_state(store)
        assert rows["0_good0001"]["state"] == "candidate"
        # A known row turning hostile keeps its last good metadata and goes to error.
        _, bad = mod._admissions(run, [{**good, "createdAt": -5}])
        async with store.transaction():
            await mod._record_bad(run, bad, 1_800_000_001)
        row = await store.fetchone(
            "SELECT state, last_error, created_at FROM entries WHERE id = '0_good0001'"
        )
        assert (row[0], row[2]) == ("error", 1_500_000_000)
        assert "createdAt" in row[1]
    for i in ("0_bad00001", "0_bad00002", "0_bad00003"):
        assert rows[i]["state"] == "error"
        assert rows[i]["reason"].startswith("invalid data from Kaltura")
    assert len(rows) == 4

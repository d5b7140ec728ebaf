"""discover() against the simulator over real HTTP, with a real SQLite store."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from test_discover_helpers import client_config, rows_by_state, truth

from kretain.kaltura.client import KalturaClient
from kretain.policy import Policy
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator
from kretain.store import queries
from kretain.store.db import open_store
from kretain.workers.discover import discover

AS_OF = date(2026, 11, 22)


async def _discover(sim, db: Path, *, concurrency: int = 4, progress=None, **kw):
    async with await open_store(db) as store:
        run_id = await queries.start_run(store, "discover", {})
        async with KalturaClient(client_config(sim, **kw)) as client:
            result = await discover(
                store,
                client,
                Policy.default(),
                as_of=AS_OF,
                run_id=run_id,
                concurrency=concurrency,
                progress=progress,
            )
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

"""size() against the simulator over real HTTP, with a real SQLite store.

Ground truth is computed from the simulator's own assets (Partner.assets_of), the
children from its SQL, and the source flavor from the wire flags.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from ctxhelpers import make_ctx
from test_discover_helpers import as_of_ts, client_config

from kretain.kaltura.client import KalturaClient
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator
from kretain.store import queries
from kretain.store.db import open_store
from kretain.workers.discover import discover
from kretain.workers.size import SizeOptions, size

AS_OF = date(2026, 11, 22)


def _true_bytes(partner, entry_id: str, action: str) -> tuple[int, int, int]:
    """(bytes_total, bytes_saved, asset count) from the simulator's own data."""
    kids = [k for (k,) in partner.sql(
        "SELECT id FROM entries WHERE parent_entry_id = ? AND status != 3", (entry_id,)
    )]  # fmt: skip
    total = saved = count = 0
    for owner in (entry_id, *kids):
        for a in partner.assets_of(owner):
            b = a["sizeInBytes"] if a["sizeInBytes"] > 0 else a["size"] * 1024
            total += b
            count += 1
            is_source = a["kind"] == "flavor" and bool(a.get("isOriginal"))
            if action == "delete_entry" or (a["kind"] == "flavor" and not is_source):
                saved += b
    return total, saved, count


async def _run(sim, db: Path, *, discover_first: bool = True, **size_kw):
    async with await open_store(db) as store:
        run_id = await queries.start_run(store, "run", {})
        async with KalturaClient(client_config(sim)) as client:
            ctx = make_ctx(store, client, run_id)
            if discover_first:
                d = await discover(ctx, concurrency=2)
                assert d.complete, d.problems
            result = await size(ctx, options=SizeOptions(concurrency=2, **size_kw))
        rows = {
            r["id"]: dict(r)
            for r in await store.fetchall(
                "SELECT id, state, action, bytes_total, bytes_saved, asset_count, reason, "
                "last_error FROM entries"
            )
        }
        assets = {
            r["entry_id"]: r[1]
            for r in await store.fetchall("SELECT entry_id, count(*) FROM assets GROUP BY entry_id")
        }
    return result, rows, assets


async def test_sizes_match_ground_truth_to_the_byte(tmp_path: Path) -> None:
    with run_simulator(PartnerSpec(entries=1_200, seed=21, traps=True)) as sim:
        before = sim.stats.api_requests
        result, rows, assets = await _run(sim, tmp_path / "k.db")
        sized = {i: r for i, r in rows.items() if r["state"] == "sized"}
        assert sized and result.sized == len(sized)
        assert not [r for r in rows.values() if r["state"] == "candidate"]
        with_kids = 0
        for entry_id, r in sized.items():
            total, saved, count = _true_bytes(sim.partner, entry_id, r["action"])
            assert (r["bytes_total"], r["bytes_saved"], r["asset_count"]) == (total, saved, count)
            assert assets.get(entry_id, 0) == count
            with_kids += bool(sim.partner.sql(
                "SELECT 1 FROM entries WHERE parent_entry_id = ?", (entry_id,)
            ))  # fmt: skip
        assert with_kids, "the partner should have multi-stream parents among the candidates"
        assert {r["action"] for r in sized.values()} == {"delete_entry", "delete_flavors"}
        assert result.requests <= sim.stats.api_requests - before
        # One multirequest per batch, plus follow-ups only for pages and children.
        assert result.requests <= 3 * result.batches


async def test_failed_lookup_fails_closed_and_a_later_run_sizes(tmp_path: Path) -> None:
    with run_simulator(PartnerSpec(entries=500, seed=22, traps=False)) as sim:
        db = tmp_path / "k.db"
        sim.knobs.fail_next("flavorasset.list", "INTERNAL_SERVERL_ERROR", times=10_000)
        result, rows, assets = await _run(sim, db)
        errors = {i: r for i, r in rows.items() if r["state"] == "error"}
        assert result.sized == 0 and errors and result.errors == len(errors)
        assert not [r for r in rows.values() if r["state"] in ("sized", "candidate")]
        assert all("INTERNAL_SERVERL_ERROR" in (r["last_error"] or "") for r in errors.values())
        assert not assets  # nothing stored from partial data
        sim.knobs.clear_faults()
        again, rows2, _ = await _run(sim, db, discover_first=False)
        assert again.sized == len(errors)
        for entry_id in errors:
            r = rows2[entry_id]
            assert r["state"] == "sized"
            assert r["bytes_saved"] == _true_bytes(sim.partner, entry_id, r["action"])[1]


async def test_played_since_discovery_becomes_kept(tmp_path: Path) -> None:
    with run_simulator(PartnerSpec(entries=400, seed=23, traps=False)) as sim:
        db = tmp_path / "k.db"
        async with await open_store(db) as store:
            run_id = await queries.start_run(store, "run", {})
            async with KalturaClient(client_config(sim)) as client:
                ctx = make_ctx(store, client, run_id)
                await discover(ctx)
                cands = [r[0] for r in await store.fetchall(
                    # Rules about plays: a non-ready entry qualifies however it is played.
                    "SELECT id FROM entries WHERE state = 'candidate' "
                    "AND policy IN ('4-year', '2-year') ORDER BY id LIMIT 3"
                )]  # fmt: skip
                for entry_id in cands:
                    sim.partner.set_last_played(entry_id, as_of_ts(AS_OF) - 86_400)
                result = await size(ctx)
            got = {
                r[0]: (r[1], r[2])
                for r in await store.fetchall(
                    f"SELECT id, state, reason FROM entries WHERE id IN ({','.join('?' * 3)})",
                    cands,
                )
            }
        assert result.kept == 3
        assert got == {i: ("kept", "played 2026-11-21 since the audit") for i in cands}

"""One broken entry must not hide its batch.

Production Kaltura answers INTERNAL_SERVERL_ERROR, every time, to any asset list that names
an entry whose data is broken (the simulator's ``broken_entries`` knob). After ONE run, with
transient errors on top, the entries in ``error`` must be exactly the broken ones, each with
its own reason, and every other qualifying entry sized.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_discover_helpers import truth

from kretain.config import load_settings
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import RunningSimulator, run_simulator
from kretain.store.db import open_store
from kretain.workers.runner import run_pipeline

FAST_RETRIES = {"backoff_base": 0.01, "backoff_max": 0.05}


async def _one_run(sim: RunningSimulator, db: Path) -> dict[str, tuple[str, str | None]]:
    spec = sim.partner.spec
    as_of = "2026-11-22"
    settings = load_settings(
        {"service_url": sim.url, "partner_id": str(spec.partner_id), "db": str(db),
         "as_of": as_of},
        {"KALTURA_ADMIN_SECRET": spec.admin_secret},
        db.parent,
    )  # fmt: skip
    await run_pipeline(settings, stage="audit", client_overrides=FAST_RETRIES)
    async with await open_store(db, readonly=True) as store:
        rows = await store.fetchall("SELECT id, state, last_error FROM entries")
    return {r[0]: (r[1], r[2]) for r in rows}


def _pick(ids: list[str], n: int) -> list[str]:
    """``n`` ids spread over the id order, so they land in different sizing batches."""
    step = max(1, len(ids) // n)
    return ids[::step][:n]


async def _check(spec: PartnerSpec, n_broken: int, transient: float, tmp_path: Path) -> None:
    from datetime import date

    with run_simulator(spec) as sim:
        wanted = truth(sim.partner, date(2026, 11, 22))
        broken = _pick(sorted(wanted), n_broken)
        sim.knobs.broken_entries = set(broken)
        sim.knobs.internal_error = transient
        sim.knobs.fault_seed = 11
        rows = await _one_run(sim, tmp_path / "k.db")
        assert sim.stats.faults["broken_entry"] > 0
    errors = {i for i, (state, _) in rows.items() if state == "error"}
    assert errors == set(broken)
    for entry_id in broken:
        assert "INTERNAL_SERVERL_ERROR" in (rows[entry_id][1] or ""), rows[entry_id]
    sized = {i for i, (state, _) in rows.items() if state == "sized"}
    assert sized == set(wanted) - set(broken)
    print(f"{spec.entries:,} entries, {len(wanted):,} qualifying, {n_broken} broken, "
          f"{transient:.0%} transient errors: one run sized {len(sized):,}, "
          f"{len(errors)} in error")  # fmt: skip


async def test_only_the_broken_entries_end_in_error_after_one_run(tmp_path: Path) -> None:
    spec = PartnerSpec(entries=1_500, seed=31, traps=False)
    await _check(spec, 3, 0.02, tmp_path)


@pytest.mark.slow
async def test_thirty_thousand_entries_five_broken_two_percent_transient(tmp_path: Path) -> None:
    """The README's figure: 30,000+ entries, 5 broken, 2% transient sub-request errors."""
    entries = int(os.environ.get("KRETAIN_BROKEN_PARTNER", "35000"))
    spec = PartnerSpec(entries=entries, seed=41, traps=True)
    await _check(spec, 5, 0.02, tmp_path)

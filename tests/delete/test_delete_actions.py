"""What each action does: strips never touch a source, recycling records when the bin
empties, a disabled bin stops with one clear line, notices hold entries back."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from delete_support import SPEC, Setup, audited

from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator


def _sources(setup: Setup, entry_id: str) -> dict[str, bool]:
    """flavor id -> is the source, for the entry and its children (deleted ones too)."""
    partner = setup.sim.partner
    kids = [r[0] for r in partner.sql("SELECT id FROM entries WHERE parent_entry_id = ?",
                                      (entry_id,))]  # fmt: skip
    out = {}
    for owner in (entry_id, *kids):
        for a in partner.assets_of(owner, include_deleted=True):
            if a["kind"] == "flavor":
                out[a["id"]] = bool(a.get("isOriginal"))
    return out


def test_strips_delete_every_flavor_but_the_source_and_refuse_when_unsure(
    setup: Setup,
) -> None:
    partner = setup.sim.partner
    strips = [r[0] for r in setup.sql(
        "SELECT id FROM entries WHERE state = 'sized' AND action = 'delete_flavors' "
        "AND asset_count > 2 ORDER BY id"
    )]  # fmt: skip
    with_kids = [e for e in strips if partner.sql(
        "SELECT 1 FROM entries WHERE parent_entry_id = ?", (e,))]  # fmt: skip
    unknown, converting = [e for e in strips if e not in with_kids][:2]
    # One entry's source loses every mark that names it; another's source is converting.
    for flavor_id, is_source in _sources(setup, unknown).items():
        if is_source:
            partner.patch_asset(flavor_id, isOriginal=False, flavorParamsId=7, tags="web")
    source = next(f for f, src in _sources(setup, converting).items() if src)
    partner.patch_asset(source, status=1)

    result = setup.run("--delete", "--yes")
    assert result.exit_code == 0, result.output
    deleted = set(setup.ok_calls("flavorasset.delete"))
    every_source = {f for e in strips for f, src in _sources(setup, e).items() if src}
    assert deleted and not deleted & every_source  # no source, ever
    for entry_id in (unknown, converting):
        assert not deleted & set(_sources(setup, entry_id))  # not one flavor of theirs
    held = dict(setup.sql("SELECT id, held_reason FROM entries WHERE held_reason IS NOT NULL"))
    assert held[unknown].startswith("source unknown")
    assert held[converting].startswith("source not ready")
    # Children lose their extra flavors too; their sources stay.
    assert with_kids
    for parent in with_kids:
        flavors = _sources(setup, parent)
        assert {f for f, src in flavors.items() if not src} <= deleted
        assert not {f for f, src in flavors.items() if src} & deleted
    states = setup.states()
    assert all(states[e] == "stripped" for e in with_kids)
    freed = dict(setup.sql("SELECT id, bytes_freed FROM entries WHERE state = 'stripped'"))
    assert all(b > 0 for b in freed.values())


def test_recycle_mode_records_when_the_bin_empties(setup: Setup) -> None:
    before = int(time.time())
    result = setup.run("--delete", "--yes", "--mode", "recycle")
    assert result.exit_code == 0, result.output
    rows = setup.sql(
        "SELECT id, recycled_at, purge_at, delete_mode FROM entries WHERE state = 'recycled'"
    )
    assert rows
    for _, recycled_at, purge_at, mode in rows:
        assert mode == "recycle" and recycled_at >= before
        assert abs(purge_at - (recycled_at + 30 * 86_400)) <= 5
    assert set(setup.ok_calls("baseentry.recycle")) == {r[0] for r in rows}
    assert not setup.ok_calls("baseentry.delete")
    export = setup.kretain("export", "--state", "recycled")
    exported = list(csv.DictReader(io.StringIO(export.output)))
    assert {r["entry_id"] for r in exported} == {r[0] for r in rows}
    assert all(r["mode"] == "recycle" and r["bin_empties"] for r in exported)
    status = setup.kretain("status")
    assert "recycled" in status.output and "bin empties" in status.output


def test_recycle_without_the_partners_bin_is_one_clear_error(tmp_path: Path) -> None:
    spec = PartnerSpec(**{**SPEC.__dict__, "recycle_bin": False})
    with run_simulator(spec) as sim:
        setup = audited(sim, tmp_path)
        result = setup.run("--delete", "--yes", "--mode", "recycle")
        assert result.exit_code == 8
        assert "FEATURE_RECYCLE_BIN_DISABLED" in result.output
        assert not setup.ok_calls("baseentry.recycle") and not setup.ok_calls("baseentry.delete")
        assert setup.sql("SELECT count(*) FROM entries WHERE state = 'deleting'")[0][0] == 0


def test_notice_days_hold_back_entries_not_notified_long_enough(setup: Setup) -> None:
    notice = {"KRETAIN_NOTICE_DAYS": "14"}
    result = setup.run("--delete", "--yes", **notice)
    assert result.exit_code == 0, result.output
    assert not setup.ok_calls("baseentry.delete")  # nobody was told yet
    result = setup.kretain("notify", "--out", str(setup.dir / "notices"))
    assert result.exit_code == 0, result.output
    assert (setup.dir / "notices" / "owners.csv").exists()
    stamped = setup.sql("SELECT count(*) FROM entries WHERE notified_at IS NOT NULL")[0][0]
    assert stamped > 0
    result = setup.run("--delete", "--yes", **notice)
    assert not setup.ok_calls("baseentry.delete")  # told today: 14 days to go
    held = {
        r[0] for r in setup.sql("SELECT held_reason FROM entries WHERE held_reason IS NOT NULL")
    }
    assert any(h.startswith("notice not yet due") for h in held)
    # Fifteen days later (the notice stamps moved back: the clock is the database's).
    setup.sql("UPDATE entries SET notified_at = notified_at - 15 * 86400")
    result = setup.run("--delete", "--yes", **notice)
    assert result.exit_code == 0, result.output
    assert setup.ok_calls("baseentry.delete")

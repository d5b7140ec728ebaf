"""Right before acting: what changed in Kaltura since the audit wins, and a damaged archive
blocks the delete until the entry is backed up again."""

from __future__ import annotations

import time
from pathlib import Path

from delete_support import SPEC, Setup, audited

from kretain import archive
from kretain.simulator.testing import run_simulator


def test_played_tagged_or_categorised_since_the_audit_is_not_touched(tmp_path: Path) -> None:
    (tmp_path / "kretain.toml").write_text(
        '[policy.exemptions]\ntags = ["legal-hold"]\ncategories = ["MediaSpace>Legal"]\n'
    )
    with run_simulator(SPEC) as sim:
        setup = audited(sim, tmp_path)
        played, tagged, filed = (
            r[0]
            for r in setup.sql(
                "SELECT id FROM entries WHERE state = 'archived' AND policy = '4-year' "
                "ORDER BY id LIMIT 3"
            )
        )
        sim.partner.set_last_played(played, int(time.time()) - 3600)
        sim.partner.update_entry(tagged, tags="lecture,Legal-Hold")
        sim.partner.update_entry(filed, categories="MediaSpace>Legal>2019", categories_ids="77")
        result = setup.run("--delete", "--yes")
        assert result.exit_code == 0, result.output
        touched = set(setup.ok_calls("baseentry.delete"))
        assert touched and not {played, tagged, filed} & touched
        states = setup.states()
        assert (states[played], states[tagged], states[filed]) == ("kept", "exempt", "exempt")
        reasons = dict(setup.sql("SELECT id, reason FROM entries"))
        assert "played" in reasons[played] and "since the audit" in reasons[played]
        assert "tag:Legal-Hold" in reasons[tagged] and "category:" in reasons[filed]


def _first_file(setup: Setup, entry_id: str) -> Path:
    doc = archive.read_entry_json(
        archive.entry_dir(setup.dir / "archive", SPEC.partner_id, entry_id)
    )
    return (
        archive.entry_dir(setup.dir / "archive", SPEC.partner_id, entry_id)
        / doc["files"][0]["file"]
    )


def test_a_damaged_archive_blocks_the_delete_until_backed_up_again(setup: Setup) -> None:
    flipped, missing = (
        r[0]
        for r in setup.sql("SELECT id FROM entries WHERE state = 'archived' ORDER BY id LIMIT 2")
    )
    path = _first_file(setup, flipped)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit, same size
    path.write_bytes(bytes(data))
    _first_file(setup, missing).unlink()

    result = setup.run("--delete", "--yes")
    assert result.exit_code == 0, result.output
    deleted = set(setup.ok_calls("baseentry.delete"))
    assert flipped not in deleted and missing not in deleted
    states = setup.states()
    assert (states[flipped], states[missing]) == ("sized", "sized")  # back for a new backup
    why = dict(
        setup.sql("SELECT entry_id, detail FROM events WHERE to_state = 'sized' ORDER BY id")
    )
    assert "sha256 mismatch" in why[flipped] and "missing" in why[missing]

    # The next run backs them up again (fresh, verified copies), then deletes them.
    result = setup.run("--delete", "--yes")
    assert result.exit_code == 0, result.output
    assert {flipped, missing} <= set(setup.ok_calls("baseentry.delete"))
    states = setup.states()
    assert (states[flipped], states[missing]) == ("deleted", "deleted")
    # ... and each was deleted only once its archive was whole again.
    for entry_id in (flipped, missing):
        events = setup.sql(
            "SELECT to_state FROM events WHERE entry_id = ? AND kind = 'state' ORDER BY id",
            (entry_id,),
        )
        order = [e[0] for e in events]
        assert order.index("deleted") > len(order) - 1 - order[::-1].index("archived")


def test_an_entry_someone_put_in_the_recycle_bin_is_left_to_the_bin(tmp_path: Path) -> None:
    with run_simulator(SPEC) as sim:
        setup = audited(sim, tmp_path)
        binned, stripped = (
            setup.sql(
                "SELECT id FROM entries WHERE state = ? AND action = ? ORDER BY id LIMIT 1",
                (state, action),
            )[0][0]
            for state, action in (("archived", "delete_entry"), ("sized", "delete_flavors"))
        )
        for entry_id in (binned, stripped):
            sim.partner.recycle_entry(entry_id, now=int(time.time()))
        for mode in ("recycle", "delete"):
            result = setup.run("--delete", "--yes", "--mode", mode)
            assert result.exit_code == 0, result.output
        calls = [m for m in sim.mutations if m["outcome"] == "ok"]
        assert calls and not [m for m in calls if m["id"] in (binned, stripped)]
        assert not [m for m in sim.mutations if m["outcome"] not in ("ok", None)]
        states, reasons = setup.states(), dict(setup.sql("SELECT id, reason FROM entries"))
        for entry_id in (binned, stripped):
            assert states[entry_id] == "gone" and "recycle bin" in reasons[entry_id]

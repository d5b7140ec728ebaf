"""`kretain run --archive` then `kretain verify`, through the CLI, over real HTTP and files."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from kretain.cli import cli
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator

SPEC = PartnerSpec(entries=160, seed=9, burst=3, max_file_bytes=300_000)


def invoke(args: list[str], env: dict[str, str]):
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def test_run_backs_up_when_an_archive_is_named_and_verify_catches_damage(tmp_path: Path) -> None:
    with run_simulator(SPEC) as sim:
        env = {
            "KALTURA_SERVICE_URL": sim.url,
            "KALTURA_PARTNER_ID": str(SPEC.partner_id),
            "KALTURA_ADMIN_SECRET": SPEC.admin_secret,
            "KRETAIN_AS_OF": datetime.fromtimestamp(SPEC.now, UTC).date().isoformat(),
        }
        audit = invoke(["run", "--no-progress"], env)  # no archive named: audit only
        assert audit.exit_code == 0, audit.output
        con = sqlite3.connect(tmp_path / "kretain.db")
        assert con.execute("select count(*) from entries where state = 'archived'").fetchone() == (
            0,
        )
        result = invoke(["run", "--no-progress", "--archive", "arch"], env)
        assert result.exit_code == 0, result.output
    archived = [
        r[0]
        for r in con.execute(
            "select id from entries where state = 'archived' and action = 'delete_entry'"
        )
    ]
    waiting = con.execute(
        "select count(*) from entries where action = 'delete_entry' and state != 'archived'"
    ).fetchone()[0]
    assert archived and waiting == 0
    assert con.execute(
        "select count(*) from entries where action = 'delete_flavors' and state != 'sized'"
    ).fetchone() == (0,)
    root = tmp_path / "arch" / str(SPEC.partner_id)
    for entry_id in archived:
        meta = json.loads((root / entry_id / "entry.json").read_text())
        for item in meta["files"]:
            path = root / entry_id / item["file"] if "file" in item else None
            assert path is None or path.resolve().is_relative_to(root.resolve())

    clean = invoke(["verify", "--checksums", "--archive", "arch"], {})
    assert clean.exit_code == 0, clean.output

    # Flip one byte of one archived media file: only --checksums can see it.
    victim = next(
        p for p in sorted(root.rglob("*")) if p.is_file() and p.name.startswith("flavor-")
    )
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert invoke(["verify", "--archive", "arch"], {}).exit_code == 0
    damaged = invoke(["verify", "--checksums", "--archive", "arch"], {})
    assert damaged.exit_code != 0
    entry_id = victim.parent.name
    state = con.execute("select state from entries where id = ?", (entry_id,)).fetchone()[0]
    assert state != "archived"

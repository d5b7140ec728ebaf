"""An archive kretain cannot write to is the environment's fault, not the entries'.

`kretain run --archive DIR` against a read-only DIR, five times: each run stops the backup
with one clear line and exit 7, and no entry is charged an attempt, so none is ever given up
on. As root, directory permissions do not stop the process, so it runs without the
capabilities that override them (setpriv).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator

KRETAIN = [sys.executable, "-m", "kretain"]


def _prefix() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a 0555 directory does not stop root")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def test_five_runs_against_a_read_only_archive_charge_no_entry(tmp_path: Path) -> None:
    spec = PartnerSpec(entries=300, seed=9, traps=False)
    archive = tmp_path / "archive"
    archive.mkdir()
    archive.chmod(0o555)
    db = tmp_path / "k.db"
    with run_simulator(spec) as sim:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("KRETAIN_", "KALTURA_"))},
            "KALTURA_SERVICE_URL": sim.url,
            "KALTURA_PARTNER_ID": str(spec.partner_id),
            "KALTURA_ADMIN_SECRET": spec.admin_secret,
            "KRETAIN_AS_OF": "2026-11-22",
        }
        try:
            for _ in range(5):
                done = subprocess.run(
                    [*_prefix(), *KRETAIN, "--db", str(db), "run", "--archive", str(archive),
                     "--no-progress"],
                    capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
                )  # fmt: skip
                assert done.returncode == 7, done.stderr
                errors = [line for line in done.stderr.splitlines() if line.startswith("kretain:")]
                assert len(errors) == 1 and "cannot write to the archive" in errors[0], errors
                assert "Traceback" not in done.stderr
        finally:
            archive.chmod(0o755)
    with sqlite3.connect(db) as conn:
        states = dict(conn.execute("SELECT state, count(*) FROM entries GROUP BY state"))
        charged = conn.execute(
            "SELECT count(*) FROM entries WHERE backup_attempts > 0 OR state = 'backup_failed'"
        ).fetchone()[0]
    assert states.get("sized", 0) > 0 and "downloading" not in states
    assert charged == 0

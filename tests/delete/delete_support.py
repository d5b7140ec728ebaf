"""Helpers of the delete-stage tests: a partner audited and backed up through the CLI."""

from __future__ import annotations

import csv
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from kretain.cli import cli
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import RunningSimulator

# Small files (the archive holds megabytes), a recycle bin, no hostile names: these tests are
# about what gets deleted, not about hostile data (tests/backup covers that).
SPEC = PartnerSpec(entries=300, seed=9, traps=False, recycle_bin=True, max_file_bytes=16 * 1024)
AS_OF = "2026-11-22"


@dataclass
class Setup:
    sim: RunningSimulator
    dir: Path
    env: dict[str, str]

    @property
    def db(self) -> Path:
        return self.dir / "k.db"

    def kretain(self, *args: str, **env: str) -> Result:
        return CliRunner().invoke(
            cli, ["--db", str(self.db), *args], env={**self.env, **env}, catch_exceptions=False
        )

    def run(self, *args: str, **env: str) -> Result:
        return self.kretain("run", "--no-progress", *args, **env)

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as con:
            return con.execute(query, params).fetchall()

    def states(self) -> dict[str, str]:
        return dict(self.sql("SELECT id, state FROM entries"))

    def plan(self, run_id: int) -> list[dict[str, str]]:
        path = self.dir / "kretain-plans" / f"plan-{run_id}.csv"
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    def ok_calls(self, action: str) -> list[str]:
        return [
            m["id"]
            for m in self.sim.mutations
            if f"{m['service']}.{m['action']}" == action and m["outcome"] == "ok"
        ]


def environment(sim: RunningSimulator, archive: Path, **extra: str) -> dict[str, str]:
    spec = sim.partner.spec
    return {
        "KALTURA_SERVICE_URL": sim.url,
        "KALTURA_PARTNER_ID": str(spec.partner_id),
        "KALTURA_ADMIN_SECRET": spec.admin_secret,
        "KRETAIN_AS_OF": AS_OF,
        "KRETAIN_ARCHIVE": str(archive),
        # Fast: the simulator's delete limit is off here; tests/delete/test_delete_rate.py
        # puts one back on purpose.
        "KRETAIN_DELETE_RATE": "1000",
        **extra,
    }


def audited(sim: RunningSimulator, tmp_path: Path, **extra: str) -> Setup:
    sim.knobs.rate_limits = {}
    tmp_path.mkdir(parents=True, exist_ok=True)
    setup = Setup(sim, tmp_path, environment(sim, tmp_path / "archive", **extra))
    result = setup.run()
    assert result.exit_code == 0, result.output
    assert setup.sql("SELECT count(*) FROM entries WHERE state = 'archived'")[0][0] > 0
    return setup

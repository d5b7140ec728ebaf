"""Ctrl-C stops a long `kretain query` at once: exit 130, one line, no traceback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from interrupting import interrupt_when_open

from kretain.store import open_store

KRETAIN = [sys.executable, "-c", "from kretain.cli import cli; cli()"]
# Counting to 10^9 takes SQLite minutes.
LONG_SQL = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "
    "SELECT count(*) FROM c"
)


def make_db(path: Path) -> None:
    async def go() -> None:
        await (await open_store(path)).close()

    asyncio.run(go())


def test_sigint_stops_a_long_query_promptly(tmp_path: Path) -> None:
    db = tmp_path / "kretain.db"
    make_db(db)
    proc = subprocess.Popen(
        [*KRETAIN, "--db", str(db), "query", LONG_SQL],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err, waited = interrupt_when_open(proc, db, timeout=5)
    assert proc.returncode == 130, err
    assert waited < 3, waited
    assert err.splitlines() == ["kretain: query interrupted (Ctrl-C)"], err
    assert out == ""

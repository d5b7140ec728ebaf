"""Ctrl-C stops a long `kretain query` at once: exit 130, one line, no traceback."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def wait_until_open(pid: int, path: Path, timeout: float = 20.0) -> None:
    """Until the process holds the database open (its query is then under way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            targets = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except OSError:
            targets = set()
        if str(path) in targets:
            return
        time.sleep(0.02)
    raise AssertionError("the query never opened the database")


def test_sigint_stops_a_long_query_promptly(tmp_path: Path) -> None:
    db = tmp_path / "kretain.db"
    make_db(db)
    proc = subprocess.Popen(
        [*KRETAIN, "--db", str(db), "query", LONG_SQL],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_open(proc.pid, db)
        time.sleep(1.0)
        assert proc.poll() is None, "the query finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=5)
        waited = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert waited < 3, waited
    assert err.splitlines() == ["kretain: query interrupted (Ctrl-C)"], err
    assert out == ""

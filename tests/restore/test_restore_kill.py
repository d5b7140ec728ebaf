"""SIGKILL in the middle of a 500 MB upload, then a restore that resumes it.

The simulator runs in THIS process (its mutation log, with the bytes of every uploaded
chunk, is ours to read); `kretain restore --yes` runs in a child process, killed with
SIGKILL once a third of the source is on the server. The child caps its own upload speed
(`--bandwidth`, a real option) so the kill lands mid-file on any machine without slowing
the simulator down; the second restore runs at full speed. Everything is real: 500 MB
through HTTP, the archive on disk, SQLite.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from restore_support import cli_env, entry_json, kretain, retention_run, served_sha, store_at

from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator
from kretain.store import queries
from kretain.store.states import State

# Seed 9 holds 0_d42n90sb: one 559 MB source flavor and a thumbnail; the cap makes the
# source exactly 500 MB.
BIG = PartnerSpec(entries=400, seed=9, traps=True, max_file_bytes=500_000_000)
EID = "0_d42n90sb"
SIZE = 500_000_000


def chunks_sent(mutations: list[dict], token: str | None = None) -> list[dict]:
    return [
        m
        for m in mutations
        if m["service"] == "uploadtoken"
        and m["action"] == "upload"
        and m["outcome"] == "ok"
        and (token is None or m["id"] == token)
    ]


def test_sigkill_mid_upload_then_the_upload_resumes(tmp_path: Path) -> None:
    db, root = tmp_path / "k.db", tmp_path / "archive"
    with run_simulator(BIG) as sim:
        retention_run(sim, db, root, [EID])
        source = next(f for f in entry_json(root, BIG.partner_id, EID)["files"] if f["is_source"])
        assert source["size"] == SIZE

        child = subprocess.Popen(
            [sys.executable, "-m", "kretain", "--db", str(db), "restore", EID, "--yes",
             "--bandwidth", "150"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **cli_env(sim)},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 90
            while sum(m["bytes"] for m in chunks_sent(sim.mutations)) < SIZE // 3:
                assert child.poll() is None, child.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the upload never got going"
                time.sleep(0.02)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait(timeout=10)
            child.stderr.close()  # type: ignore[union-attr]
        assert child.returncode == -signal.SIGKILL
        first = chunks_sent(sim.mutations)
        token = first[0]["id"]
        on_server = sim.partner.get_upload_token(token).get("uploadedFileSize", 0)
        assert SIZE // 3 <= on_server < SIZE  # part of the file, and the token kept it

        async def held() -> tuple[State, dict]:
            async with store_at(db) as store:
                row = await queries.get_entry(store, EID)
                assert row is not None
                return row.state, await queries.restore_objects(store, EID)

        state, made = asyncio.run(held())
        assert state == State.RESTORING  # held by the dead run
        assert made[source["asset_id"]].token_id == token  # the token is on record

        start = len(sim.mutations)
        again = kretain(sim, db, "restore", EID, "--yes")
        assert again.exit_code == 0, again.output
        second = chunks_sent(sim.mutations[start:])
        resent = sum(m["bytes"] for m in second if m["id"] == token)
        # Only what the server did not have went out again, into the same token.
        assert resent == SIZE - on_server and resent < SIZE * 3 // 4
        assert sum(m["bytes"] for m in second if m["id"] != token) < 1 << 20  # the thumbnail
        adds = [m for m in sim.mutations if m["service"] == "media" and m["action"] == "add"]
        assert len(adds) == 1  # the entry the killed run made was taken up, not made again

        async def restored() -> str:
            async with store_at(db) as store:
                row = await queries.get_entry(store, EID)
                assert row is not None and row.state == State.RESTORED
                return str(row.new_entry_id)

        new_id = asyncio.run(restored())
        flavor = next(a for a in sim.partner.assets_of(new_id) if a["kind"] == "flavor")
        assert served_sha(sim, flavor["id"]) == (SIZE, source["sha256"])

"""SIGKILL in the middle of a large file, then a run that resumes it.

The simulator runs in THIS process (so its byte counter is ours to read); the backup runs in
a child process that is killed with SIGKILL while the source flavor is half-way through.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_backup_support import (
    ENTRIES,
    SPEC,
    backup_ctx,
    client_for,
    make_sized,
    new_run,
    sha256_of,
    store_at,
    true_sha,
)

from kretain import archive
from kretain.simulator.testing import run_simulator
from kretain.store import queries
from kretain.store.states import AssetBackupState, State
from kretain.workers.backup import backup
from kretain.workers.runner import recover_dead_runs

DRIVER = r"""
import asyncio, sys
from pathlib import Path
from kretain.kaltura.client import ClientConfig, KalturaClient
from kretain.store import queries
from kretain.store.db import open_store
from kretain.workers.backup import BackupOptions, backup
from ctxhelpers import everything, make_ctx

async def main(db, root, url, partner_id, secret):
    config = ClientConfig(service_url=url, partner_id=int(partner_id), admin_secret=secret)
    async with KalturaClient(config) as client, await open_store(db) as store:
        run_id = await queries.start_run(store, "driver", {})
        ctx = make_ctx(store, client, run_id, policy=everything())
        await backup(ctx, archive=Path(root),
                     options=BackupOptions(concurrency=1, file_concurrency=1, lease_seconds=3))

asyncio.run(main(*sys.argv[1:]))
"""


async def test_sigkill_mid_file_then_resume_downloads_only_the_rest(tmp_path: Path) -> None:
    eid = ENTRIES["video"]
    db, root = tmp_path / "k.db", tmp_path / "archive"
    with run_simulator(SPEC) as sim:
        async with store_at(db) as store, client_for(sim) as client:
            await make_sized(store, client, sim, [eid])
            assets = await queries.assets_of(store, eid)
        source = next(a for a in assets if a.kind == "flavor" and a.is_source)
        size, sha = true_sha(sim, source.id)
        assert size > 20 << 20
        part = archive.entry_dir(root, SPEC.partner_id, eid) / (
            archive.asset_filename(source.id, source.file_ext, "flavor") + ".part"
        )

        sim.knobs.download_bandwidth = 8 << 20  # ~4 s for the file: the kill lands mid-file
        child = subprocess.Popen(
            [sys.executable, "-c", DRIVER, str(db), str(root), sim.url,
             str(SPEC.partner_id), SPEC.admin_secret],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not (part.exists() and part.stat().st_size >= size // 3):
                assert child.poll() is None, child.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "the download never got going"
                time.sleep(0.05)
            time.sleep(1.2)  # let the heartbeat record bytes_done once
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait(timeout=10)
            child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        kept = part.stat().st_size
        assert size // 3 <= kept < size

        sim.knobs.download_bandwidth = None
        async with store_at(db) as store, client_for(sim) as client:
            row = await queries.get_entry(store, eid)
            assert row is not None and row.state == State.DOWNLOADING  # held by the dead run
            rows = {a.id: a for a in await queries.assets_of(store, eid)}
            assert rows[source.id].backup_state == AssetBackupState.PARTIAL
            assert 0 < rows[source.id].bytes_done <= kept  # `kretain status` can show progress
            assert not (part.parent / "entry.json").exists()

            run_id = await new_run(store)
            assert await recover_dead_runs(store, run_id) >= 1  # what `kretain run` does first
            assert (await queries.get_entry(store, eid)).state == State.SIZED  # type: ignore[union-attr]
            rest = sum(
                true_sha(sim, a.id)[0]
                for a in rows.values()
                if a.kind != "flavor" and a.backup_state != AssetBackupState.VERIFIED
            )
            served = sim.stats.bytes_served
            result = await backup(backup_ctx(store, client, run_id), archive=root)
            assert result.archived == 1 and result.bytes_resumed == kept
            # Only the remainder of the big file (plus the files not started) went out again.
            assert sim.stats.bytes_served - served == (size - kept) + rest
            final = part.with_name(part.name.removesuffix(".part"))
            assert not part.exists() and final.stat().st_size == size
            assert sha256_of(final) == sha
            assert (await queries.get_entry(store, eid)).state == State.ARCHIVED  # type: ignore[union-attr]

"""A long download keeps its lease (heartbeat) and records bytes_done as it goes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from test_backup_support import (
    ENTRIES,
    SPEC,
    backup_ctx,
    client_for,
    make_sized,
    new_run,
    store_at,
)

from kretain.simulator.testing import run_simulator
from kretain.store import queries, transitions
from kretain.store.states import AssetBackupState, State
from kretain.workers.backup import BackupOptions, backup


async def test_heartbeat_renews_the_lease_and_records_progress(tmp_path: Path) -> None:
    eid = ENTRIES["image_a"]  # ~8 MB source
    with run_simulator(SPEC) as sim:
        async with store_at(tmp_path / "k.db") as store, client_for(sim) as client:
            await make_sized(store, client, sim, [eid])
            sim.knobs.download_bandwidth = 3 << 19  # ~5 s: longer than the 3-second lease
            run_id = await new_run(store)
            task = asyncio.create_task(
                backup(
                    backup_ctx(store, client, run_id),
                    archive=tmp_path / "a",
                    options=BackupOptions(lease_seconds=3, file_concurrency=1),
                )
            )
            seen: list[tuple[int, int]] = []
            while not task.done():
                await asyncio.sleep(0.4)
                row = await queries.get_entry(store, eid)
                assert row is not None
                if row.state != State.DOWNLOADING:
                    continue
                # Another process's release_expired must find nothing to take back.
                assert await transitions.release_expired(store) == 0
                assert row.lease_owner == run_id
                assert (row.lease_expires_at or 0) >= int(time.time())
                done = max(a.bytes_done for a in await queries.assets_of(store, eid))
                seen.append((int(time.time()), done))
            result = await task
        assert result.archived == 1
        assert seen[-1][0] - seen[0][0] >= 4  # the download outlived its lease
        progress = [d for _, d in seen]
        assert progress == sorted(progress) and len({d for d in progress if d > 0}) >= 2
        states = {a.backup_state for a in await _assets(tmp_path, eid)}
        assert AssetBackupState.VERIFIED in states


async def _assets(tmp_path: Path, eid: str):
    async with store_at(tmp_path / "k.db") as store:
        return await queries.assets_of(store, eid)

"""backup() when the network or the disk misbehaves: retries, attempt limits, resume, disk full."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from test_backup_support import (
    ENTRIES,
    SPEC,
    client_for,
    make_sized,
    run_backup,
    sha256_of,
    state_of,
    store_at,
    true_sha,
    walk,
)

from kretain import archive
from kretain.archive import layout
from kretain.simulator.testing import RunningSimulator
from kretain.store import queries
from kretain.store.states import AssetBackupState, State
from kretain.workers.backup import BackupDiskFull
from kretain.workers.download import LocalFS

FAST = {"retry_base_delay": 0.01, "retry_max_delay": 0.02}


async def _check_archive(store, sim: RunningSimulator, root: Path, entry_id: str) -> None:
    assert await state_of(store, entry_id) == State.ARCHIVED
    doc = archive.read_entry_json(archive.entry_dir(root, SPEC.partner_id, entry_id))
    assert doc["files"]
    for f in doc["files"]:
        path = archive.entry_dir(root, SPEC.partner_id, entry_id) / f["file"]
        assert (path.stat().st_size, sha256_of(path)) == true_sha(sim, f["asset_id"])


async def test_truncated_and_kaltura_errors_end_as_retries(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    eid = ENTRIES["image_a"]
    entry_dir = archive.entry_dir(root, SPEC.partner_id, eid)
    async with store_at(tmp_path / "k.db") as store, client_for(sim) as client:
        await make_sized(store, client, sim, [eid])

        # 1. Every body is cut half-way: retried within the run, then the entry fails.
        sim.knobs.truncate = 1.0
        r1 = await run_backup(store, client, root, max_attempts=2, file_attempts=3, **FAST)
        assert (r1.archived, r1.failed) == (0, 1) and r1.retries >= 2
        row = await queries.get_entry(store, eid)
        assert row is not None and row.state == State.BACKUP_FAILED and row.backup_attempts == 1
        assert "TruncatedDownload" in (row.last_error or "")
        assert not (entry_dir / "entry.json").exists()
        partial = [a for a in await queries.assets_of(store, eid) if a.bytes_done > 0]
        assert partial and all(a.backup_state != AssetBackupState.VERIFIED for a in partial)
        parts = [p for p in walk(root) if p.name.endswith(".part")]
        assert any(p.stat().st_size > 0 for p in parts)  # a prefix is kept for the next run

        # 2. The serve endpoint answers X-Kaltura: error-57 (rate limited, retryable).
        sim.knobs.truncate = 0.0
        sim.knobs.download_error = 1.0
        sim.knobs.download_error_code = 57
        r2 = await run_backup(store, client, root, max_attempts=2, file_attempts=2, **FAST)
        assert (r2.claimed, r2.archived, r2.failed) == (1, 0, 1)
        row = await queries.get_entry(store, eid)
        assert row is not None and row.state == State.BACKUP_FAILED and row.backup_attempts == 2
        assert "KalturaServeError" in (row.last_error or "") and "57" in row.last_error
        assert not (entry_dir / "entry.json").exists()

        # 3. At the attempt limit the row is no longer retried, and is reported.
        sim.knobs.download_error = 0.0
        r3 = await run_backup(store, client, root, max_attempts=2, **FAST)
        assert (r3.claimed, r3.exhausted) == (0, 1)
        assert any("no longer retried" in p for p in r3.problems)
        assert await state_of(store, eid) == State.BACKUP_FAILED

        # 4. A higher limit: retried, resumed from the kept prefix, archived and correct.
        r4 = await run_backup(store, client, root, **FAST)
        assert (r4.claimed, r4.archived) == (1, 1) and r4.bytes_resumed > 0
        await _check_archive(store, sim, root, eid)
        row = await queries.get_entry(store, eid)
        assert row is not None and row.backup_attempts == 0 and row.last_error is None


async def test_server_ignoring_range_still_ends_correct(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    eid = ENTRIES["audio"]
    async with store_at(tmp_path / "k.db") as store, client_for(sim) as client:
        await make_sized(store, client, sim, [eid])
        sim.knobs.truncate = 1.0
        r1 = await run_backup(store, client, root, file_attempts=1, **FAST)
        assert r1.failed == 1
        parts = {p: p.stat().st_size for p in walk(root) if p.name.endswith(".part")}
        assert any(parts.values())  # at least the big file kept a prefix

        sim.knobs.truncate = 0.0
        sim.knobs.ignore_range = True
        served = sim.stats.bytes_served
        r2 = await run_backup(store, client, root, **FAST)
        assert r2.archived == 1 and r2.bytes_resumed == 0
        await _check_archive(store, sim, root, eid)
        # The server sent whole files again (it ignored Range), and nothing was spliced.
        total = sum(true_sha(sim, a.id)[0] for a in await queries.assets_of(store, eid)
                    if a.backup_state == AssetBackupState.VERIFIED)  # fmt: skip
        assert sim.stats.bytes_served - served == total


class _FullAfter(LocalFS):
    """Real writes until ``budget`` bytes have been written, then ENOSPC."""

    def __init__(self, budget: int) -> None:
        self.budget = budget

    def write(self, fd: int, data: memoryview) -> int:
        if self.budget <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = os.write(fd, data[: self.budget])
        self.budget -= n
        return n


async def test_disk_full_stops_cleanly_then_resumes(sim: RunningSimulator, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    ids = [ENTRIES["image_b"], ENTRIES["image_c"], ENTRIES["audio"], ENTRIES["image_a"]]
    async with store_at(tmp_path / "k.db") as store, client_for(sim) as client:
        await make_sized(store, client, sim, ids)
        with pytest.raises(BackupDiskFull) as info:
            await run_backup(
                store,
                client,
                root,
                concurrency=2,
                fs=_FullAfter(6 << 20),
                min_free_bytes=0,
                **FAST,
            )
        stopped = info.value.result
        assert "disk full" in str(info.value) and stopped.stopped
        # Nothing left held, nothing failed (disk full is not the entry's fault), and only
        # entries whose every file was verified are archived.
        states = {eid: await state_of(store, eid) for eid in ids}
        assert (
            State.DOWNLOADING not in states.values() and State.BACKUP_FAILED not in states.values()
        )
        assert list(states.values()).count(State.ARCHIVED) == stopped.archived < len(ids)
        for eid, state in states.items():
            directory = archive.entry_dir(root, SPEC.partner_id, eid)
            if state == State.ARCHIVED:
                assert (directory / "entry.json").exists()
            if (directory / "entry.json").exists():
                # Written only after every file was verified (a stop may land between it and
                # the move to archived; the next run redoes the move).
                for f in archive.read_entry_json(directory)["files"]:
                    path = directory / f["file"]
                    assert (path.stat().st_size, sha256_of(path)) == true_sha(sim, f["asset_id"])
            for a in await queries.assets_of(store, eid):
                if a.backup_state == AssetBackupState.VERIFIED:
                    path = root / (a.archive_path or "")
                    assert (path.stat().st_size, sha256_of(path)) == true_sha(sim, a.id)
        parts = [p for p in walk(root) if p.name.endswith(".part")]
        assert parts

        resumed = await run_backup(store, client, root, **FAST)
        assert resumed.archived == len(ids) - stopped.archived and resumed.bytes_resumed > 0
        for eid in ids:
            await _check_archive(store, sim, root, eid)
        assert not [p for p in walk(root) if p.name.endswith(".part")]


async def test_min_free_threshold_stops_before_any_download(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    eid = ENTRIES["image_c"]
    async with store_at(tmp_path / "k.db") as store, client_for(sim) as client:
        await make_sized(store, client, sim, [eid])
        urls = sim.stats.calls["thumbasset.geturl"] + sim.stats.calls["flavorasset.geturl"]
        with pytest.raises(BackupDiskFull):
            await run_backup(store, client, root, min_free_bytes=1 << 60, **FAST)
        assert await state_of(store, eid) == State.SIZED
        row = await queries.get_entry(store, eid)
        assert row is not None and row.backup_attempts == 0 and row.lease_owner is None
        assert sim.stats.calls["thumbasset.geturl"] + sim.stats.calls["flavorasset.geturl"] == urls
        assert not list(walk(root))


async def test_a_broken_entry_fails_its_backup_alone(sim: RunningSimulator, tmp_path: Path) -> None:
    """Its lookup fails every time (the simulator's broken_entries): it ends backup_failed
    with its own reason, the entry beside it is archived."""
    broken, fine = ENTRIES["image_a"], ENTRIES["image_b"]
    root = tmp_path / "archive"
    async with store_at(tmp_path / "k.db") as store, client_for(sim) as client:
        await make_sized(store, client, sim, [broken, fine])
        sim.knobs.broken_entries = {broken}
        try:
            result = await run_backup(store, client, root, concurrency=2, **FAST)
        finally:
            sim.knobs.broken_entries = set()
        assert (result.archived, result.failed) == (1, 1)
        row = await queries.get_entry(store, broken)
        assert row is not None and row.state == State.BACKUP_FAILED
        assert "INTERNAL_SERVERL_ERROR" in (row.last_error or "")
        assert await state_of(store, fine) == State.ARCHIVED


async def test_an_archive_that_stops_taking_writes_charges_no_entry(
    sim: RunningSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC from entry.json (not from a data write): the stage stops with one message, the
    entry goes back to sized with no attempt counted, and a later run archives it."""
    eid = ENTRIES["image_c"]
    root = tmp_path / "archive"
    real_write = layout.write_json_atomic

    def no_room(path, doc):  # fault injection at the file-system edge
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    async with store_at(tmp_path / "k.db") as store, client_for(sim) as client:
        await make_sized(store, client, sim, [eid])
        monkeypatch.setattr(layout, "write_json_atomic", no_room)
        for _ in range(3):
            with pytest.raises(BackupDiskFull, match="disk full"):
                await run_backup(store, client, root, **FAST)
        row = await queries.get_entry(store, eid)
        assert row is not None and row.state == State.SIZED
        assert (row.backup_attempts, row.lease_owner) == (0, None)
        monkeypatch.setattr(layout, "write_json_atomic", real_write)
        result = await run_backup(store, client, root, **FAST)
        assert result.archived == 1 and result.files_reused >= 1  # the files were kept

"""verify(): re-check the archive against the store; damaged copies leave ``archived``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_backup_support import (
    ENTRIES,
    SPEC,
    client_for,
    make_sized,
    reset_knobs,
    run_backup,
    sha256_of,
    state_of,
    store_at,
    true_sha,
)

from kretain import archive
from kretain.simulator.testing import RunningSimulator, run_simulator
from kretain.store import queries
from kretain.store.states import AssetBackupState, State
from kretain.workers.verify import verify

IDS = [ENTRIES[k] for k in ("image_a", "image_b", "image_c", "audio", "evil_ext")]


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with run_simulator(SPEC) as running:
        reset_knobs(running)
        yield running


def _file_of(root: Path, entry_id: str, kind: str = "flavor") -> tuple[Path, str]:
    """(path, asset id) of the entry's first archived file of ``kind``."""
    doc = archive.read_entry_json(archive.entry_dir(root, SPEC.partner_id, entry_id))
    f = next(f for f in doc["files"] if f["kind"] == kind)
    return archive.entry_dir(root, SPEC.partner_id, entry_id) / f["file"], f["asset_id"]


async def _events(store, entry_id: str) -> list[str]:
    rows = await store.fetchall(
        "SELECT detail FROM events WHERE entry_id = ? AND to_state = 'sized' ORDER BY id",
        (entry_id,),
    )
    return [r[0] or "" for r in rows]


async def test_verify_catches_damage_and_the_next_backup_repairs_it(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    flip, cut, gone, nojson, fine = IDS[:5]
    async with store_at(tmp_path / "k.db") as store, client_for(sim) as client:
        await make_sized(store, client, sim, IDS)
        first = await run_backup(store, client, root)
        assert first.archived == len(IDS)

        clean = await verify(store, archive=root, checksums=True, progress=None)
        assert (clean.checked, clean.ok, clean.damaged) == (len(IDS), len(IDS), 0)
        assert clean.bytes_hashed > 0

        # Damage: one flipped byte (same size), a truncated file, a deleted file, and a
        # missing entry.json.
        flipped, flipped_id = _file_of(root, flip)
        with open(flipped, "r+b") as fh:
            fh.seek(12345)
            byte = fh.read(1)
            fh.seek(12345)
            fh.write(bytes([byte[0] ^ 0xFF]))
        truncated, truncated_id = _file_of(root, cut)
        with open(truncated, "r+b") as fh:
            fh.truncate(truncated.stat().st_size - 1000)
        removed, removed_id = _file_of(root, gone, "thumb")
        removed.unlink()
        (archive.entry_dir(root, SPEC.partner_id, nojson) / "entry.json").unlink()

        # Without checksums: size and presence only, so the flipped byte goes unnoticed.
        plain = await verify(store, archive=root, checksums=False, progress=None)
        assert set(plain.damaged_entries) == {cut, gone, nojson}
        assert plain.ok == 2 and plain.bytes_hashed == 0
        for eid in (cut, gone, nojson):
            assert await state_of(store, eid) == State.SIZED
        assert "bytes, expected" in (await _events(store, cut))[-1]
        assert "missing" in (await _events(store, gone))[-1]
        assert "entry.json missing" in (await _events(store, nojson))[-1]
        assert not truncated.exists()  # a damaged copy is removed, never trusted again
        assert await state_of(store, flip) == State.ARCHIVED

        # With checksums the flipped byte is caught.
        deep = await verify(store, archive=root, checksums=True, progress=None)
        assert set(deep.damaged_entries) == {flip} and deep.ok == 1
        assert await state_of(store, flip) == State.SIZED
        assert "sha256 mismatch" in (await _events(store, flip))[-1]
        assert not flipped.exists()
        assert not (archive.entry_dir(root, SPEC.partner_id, flip) / "entry.json").exists()
        damaged_asset = next(a for a in await queries.assets_of(store, flip) if a.id == flipped_id)
        assert damaged_asset.backup_state == AssetBackupState.PENDING
        assert damaged_asset.sha256 is None
        assert await state_of(store, fine) == State.ARCHIVED

        # The next backup copies the damaged entries again; then everything checks out.
        served = sim.stats.bytes_served
        again = await run_backup(store, client, root)
        assert again.archived == 4 and again.files_reused > 0
        # Only the removed and missing files were fetched again.
        refetched = sum(true_sha(sim, i)[0] for i in (flipped_id, truncated_id, removed_id))
        assert sim.stats.bytes_served - served == refetched
        final = await verify(store, archive=root, checksums=True, progress=None)
        assert (final.ok, final.damaged) == (len(IDS), 0)
        assert sha256_of(flipped) == true_sha(sim, flipped_id)[1]
        assert sha256_of(removed) == true_sha(sim, removed_id)[1]


async def test_a_wrong_archive_root_is_refused_and_nothing_is_demoted(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    from kretain.errors import ArchiveUnavailable

    root = tmp_path / "archive"
    async with store_at(tmp_path / "k.db") as store, client_for(sim) as client:
        await make_sized(store, client, sim, IDS[:2])
        assert (await run_backup(store, client, root)).archived == 2
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        for wrong, why in ((tmp_path / "missing", "does not exist"), (elsewhere, "backed up to")):
            with pytest.raises(ArchiveUnavailable, match=why):
                await verify(store, archive=wrong, checksums=True)
        # Rows archived before the location was recorded: an empty root is refused too.
        await store.executemany("UPDATE entries SET archive_uri = NULL WHERE id = ?", [[IDS[0]]])
        await store.executemany("UPDATE entries SET archive_uri = NULL WHERE id = ?", [[IDS[1]]])
        with pytest.raises(ArchiveUnavailable, match="none of the archived entries"):
            await verify(store, archive=elsewhere, checksums=True)
        assert {await state_of(store, e) for e in IDS[:2]} == {State.ARCHIVED}
        assert (await verify(store, archive=root, checksums=True)).ok == 2


async def test_verify_without_a_named_archive_uses_the_recorded_one(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    root = tmp_path / "archive with space"
    async with store_at(tmp_path / "k.db") as store, client_for(sim) as client:
        await make_sized(store, client, sim, IDS[:1])
        await run_backup(store, client, root)
        result = await verify(store, archive=None, checksums=True)
        assert (result.checked, result.ok) == (1, 1)

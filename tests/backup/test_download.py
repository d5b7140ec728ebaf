"""download_to over real HTTP against the simulator's serve endpoints, into real files.

Ground truth: the simulator's content generator (kretain.simulator.content) gives every
asset's bytes and SHA-256; ``sim.stats.bytes_served`` shows how much really went out.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from kretain.archive import asset_filename, entry_dir, sanitize_extension
from kretain.simulator.content import content_bytes, content_sha256
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import RunningSimulator, run_simulator
from kretain.workers import download
from kretain.workers.download import (
    DestinationExists,
    DiskFull,
    DownloadHTTPError,
    DownloadTimeout,
    EmptyBody,
    KalturaServeError,
    LocalFS,
    PartFileBusy,
    RateLimiter,
    ResumeMismatch,
    SizeMismatch,
    TruncatedDownload,
    download_to,
    is_retryable,
    part_path,
)

MiB = 1 << 20
SPEC = PartnerSpec(entries=200, seed=11, burst=3)
SERVICES = {
    "flavor": "flavorasset",
    "caption": "caption_captionasset",
    "attachment": "attachment_attachmentasset",
    "thumb": "thumbasset",
}


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sim_module() -> Iterator[RunningSimulator]:
    with run_simulator(SPEC) as sim:
        yield sim


def _calm(sim: RunningSimulator) -> None:
    sim.knobs.clear_faults()
    sim.knobs.ignore_range = False
    sim.knobs.fault_scope = "download"
    sim.knobs.download_bandwidth = None
    sim.knobs.total_bandwidth = None


@pytest.fixture
def sim(sim_module: RunningSimulator) -> Iterator[RunningSimulator]:
    _calm(sim_module)
    yield sim_module
    _calm(sim_module)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _all_assets(sim: RunningSimulator) -> list[dict[str, Any]]:
    out = []
    for (entry_id,) in sim.partner.sql("select id from entries order by id"):
        out.extend(sim.partner.assets_of(entry_id))
    return out


@pytest.fixture(scope="module")
def picks(sim_module: RunningSimulator) -> dict[str, dict[str, Any]]:
    """A few READY assets of useful shapes, with their true size and content seed."""
    ready = [a for a in _all_assets(sim_module) if int(a.get("status", -1)) == 2]

    def true_size(a: dict[str, Any]) -> int:
        return sim_module.partner.asset_content(a["id"])[0]

    def first(pred: Any, key: Any = None) -> dict[str, Any]:
        found = sorted((a for a in ready if pred(a)), key=key or true_size)
        assert found, "the simulated partner has no asset of this shape"
        return found[0]

    out = {
        # A flavor of a few MB with an exact sizeInBytes.
        "flavor": first(
            lambda a: (
                a["kind"] == "flavor"
                and int(a.get("sizeInBytes") or 0) > 0
                and 3 * MiB <= true_size(a) <= 40 * MiB
            )
        ),
        # sizeInBytes 0 (unknown): only size in KB to go by.
        "kb_only": first(lambda a: int(a.get("sizeInBytes") or 0) == 0 and true_size(a) > 2048),
        "caption": first(lambda a: a["kind"] == "caption"),
        # A trap: a fileExt such as "../../etc/passwd" or "mp4\x00".
        "hostile": first(
            lambda a: bool(a.get("fileExt")) and sanitize_extension(a.get("fileExt")) == "bin"
        ),
    }
    for a in out.values():
        a["true_size"], a["seed"] = sim_module.partner.asset_content(a["id"])
    return out


async def _api(http: aiohttp.ClientSession, sim: RunningSimulator, svc: str, act: str, **p: Any):
    data = {"format": "1", **{k: str(v) for k, v in p.items()}}
    async with http.post(f"{sim.url}/api_v3/service/{svc}/action/{act}", data=data) as resp:
        assert resp.status == 200
        result = await resp.json(content_type=None)
    assert not (isinstance(result, dict) and result.get("objectType") == "KalturaAPIException"), (
        result
    )
    return result


async def get_url(http: aiohttp.ClientSession, sim: RunningSimulator, asset: dict) -> str:
    spec = sim.partner.spec
    ks = await _api(
        http, sim, "session", "start", secret=spec.admin_secret, partnerId=spec.partner_id, type=2
    )
    return await _api(http, sim, SERVICES[asset["kind"]], "getUrl", ks=ks, id=asset["id"])


def _sizes(asset: dict[str, Any]) -> dict[str, int | None]:
    return {
        "expected_bytes": int(asset.get("sizeInBytes") or 0),
        "expected_kb": int(asset.get("size") or 0),
    }


def _truth(asset: dict[str, Any]) -> str:
    return content_sha256(asset["seed"], asset["true_size"])


def _prefix(asset: dict[str, Any], n: int) -> bytes:
    return content_bytes(asset["seed"], 0, n)


def _sha_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(MiB):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------- tests


@pytest.mark.parametrize("which", ["flavor", "kb_only", "caption"])
async def test_full_download_verifies_size_and_sha256(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path, which: str
) -> None:
    asset = picks[which]
    url = await get_url(http, sim, asset)
    dest = tmp_path / asset_filename(asset["id"], asset.get("fileExt"), asset["kind"])
    before = sim.stats.bytes_served
    result = await download_to(http, url, dest, **_sizes(asset), chunk_size=256 * 1024)
    assert result.path == dest
    assert result.bytes == asset["true_size"] == dest.stat().st_size
    assert result.sha256 == _truth(asset) == _sha_file(dest)
    assert result.resumed_from == 0
    assert not part_path(dest).exists()
    assert sim.stats.bytes_served - before == asset["true_size"]


async def test_resume_sends_range_and_fetches_only_the_rest(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path
) -> None:
    asset = picks["flavor"]
    dest = tmp_path / "f.mp4"
    have = asset["true_size"] // 3 + 12345
    part_path(dest).write_bytes(_prefix(asset, have))
    url = await get_url(http, sim, asset)
    before = sim.stats.bytes_served
    result = await download_to(http, url, dest, **_sizes(asset))
    assert result.resumed_from == have
    assert sim.stats.bytes_served - before == asset["true_size"] - have
    assert result.sha256 == _truth(asset) == _sha_file(dest)
    assert not part_path(dest).exists()


async def test_complete_part_costs_one_byte(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path
) -> None:
    """A crash between the last write and the rename: the whole file is in .part."""
    asset = picks["flavor"]
    dest = tmp_path / "f.mp4"
    part_path(dest).write_bytes(_prefix(asset, asset["true_size"]))
    before = sim.stats.bytes_served
    result = await download_to(http, await get_url(http, sim, asset), dest, **_sizes(asset))
    assert sim.stats.bytes_served - before == 1  # the last byte, re-checked
    assert result.resumed_from == asset["true_size"]
    assert result.sha256 == _truth(asset)


async def test_part_longer_than_file_restarts(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path
) -> None:
    # Size known only in KB: the Range is past the end -> 416 -> start from zero.
    asset = picks["kb_only"]
    dest = tmp_path / "k.bin"
    part_path(dest).write_bytes(b"\xff" * (asset["true_size"] + 5000))
    before = sim.stats.bytes_served
    result = await download_to(http, await get_url(http, sim, asset), dest, **_sizes(asset))
    assert result.resumed_from == 0
    assert sim.stats.bytes_served - before == asset["true_size"]
    assert result.sha256 == _truth(asset) == _sha_file(dest)


async def test_part_from_a_changed_file_is_detected_on_overlap(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path
) -> None:
    asset = picks["flavor"]
    dest = tmp_path / "f.mp4"
    stale = bytearray(_prefix(asset, asset["true_size"]))
    stale[-1] ^= 0xFF
    part_path(dest).write_bytes(bytes(stale))
    url = await get_url(http, sim, asset)
    with pytest.raises(ResumeMismatch) as info:
        await download_to(http, url, dest, **_sizes(asset))
    assert is_retryable(info.value)
    assert not dest.exists()
    # The stale part was dropped, so the retry downloads everything and succeeds.
    result = await download_to(http, url, dest, **_sizes(asset))
    assert result.resumed_from == 0 and result.sha256 == _truth(asset)


async def test_server_ignoring_range_restarts_and_is_still_correct(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path
) -> None:
    sim.knobs.ignore_range = True
    asset = picks["flavor"]
    dest = tmp_path / "f.mp4"
    part_path(dest).write_bytes(_prefix(asset, MiB))
    before = sim.stats.bytes_served
    result = await download_to(http, await get_url(http, sim, asset), dest, **_sizes(asset))
    assert result.resumed_from == 0
    assert sim.stats.bytes_served - before == asset["true_size"]
    assert result.sha256 == _truth(asset) == _sha_file(dest)
    assert dest.stat().st_size == asset["true_size"]


async def test_truncated_body_raises_keeps_prefix_then_resumes(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path
) -> None:
    asset = picks["flavor"]
    url = await get_url(http, sim, asset)
    dest = tmp_path / "f.mp4"
    sim.knobs.truncate = 1.0
    with pytest.raises(TruncatedDownload) as info:
        await download_to(http, url, dest, **_sizes(asset), chunk_size=64 * 1024)
    assert is_retryable(info.value)
    assert not dest.exists()
    kept = part_path(dest).read_bytes()
    assert 0 < len(kept) < asset["true_size"]
    assert kept == _prefix(asset, len(kept))  # a valid prefix, nothing torn
    sim.knobs.truncate = 0.0
    result = await download_to(http, url, dest, **_sizes(asset))
    assert result.resumed_from == len(kept)
    assert result.sha256 == _truth(asset)


async def test_x_kaltura_error_header_raises_and_leaves_no_file(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path
) -> None:
    asset = picks["flavor"]
    url = await get_url(http, sim, asset)
    sim.knobs.download_error = 1.0
    dest = tmp_path / "f.mp4"
    with pytest.raises(KalturaServeError) as info:
        await download_to(http, url, dest, **_sizes(asset))
    assert info.value.code == 6 and not is_retryable(info.value)
    assert "error" in str(info.value)
    assert not dest.exists()


async def test_unknown_asset_on_serve_endpoint_is_a_kaltura_error(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path
) -> None:
    url = await get_url(http, sim, picks["caption"])
    bad = url.replace(picks["caption"]["id"], "0_doesnotexist")
    with pytest.raises(KalturaServeError):
        await download_to(http, bad, tmp_path / "x.srt", expected_bytes=10, expected_kb=None)
    assert not (tmp_path / "x.srt").exists()


async def test_wrong_expected_size_never_renames_into_place(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path
) -> None:
    asset = picks["flavor"]
    url = await get_url(http, sim, asset)
    dest = tmp_path / "f.mp4"
    for sizes in (
        {"expected_bytes": asset["true_size"] + 1, "expected_kb": None},
        {"expected_bytes": 0, "expected_kb": asset["true_size"] // 1024 + 5},
    ):
        with pytest.raises(SizeMismatch) as info:
            await download_to(http, url, dest, **sizes)
        assert not is_retryable(info.value)
        assert not dest.exists() and not part_path(dest).exists()


async def test_http_500_is_retryable_error(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path
) -> None:
    asset = picks["caption"]
    url = await get_url(http, sim, asset)
    sim.knobs.http_503 = 1.0
    with pytest.raises(DownloadHTTPError) as info:
        await download_to(http, url, tmp_path / "c.srt", **_sizes(asset))
    assert info.value.status == 503 and is_retryable(info.value)
    assert not (tmp_path / "c.srt").exists()


async def test_hang_hits_idle_timeout(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path
) -> None:
    asset = picks["caption"]
    url = await get_url(http, sim, asset)
    sim.knobs.hang = 1.0
    sim.knobs.hang_seconds = 1.5
    t0 = time.monotonic()
    with pytest.raises(DownloadTimeout) as info:
        await download_to(http, url, tmp_path / "c.srt", **_sizes(asset), idle_timeout=0.2)
    assert is_retryable(info.value)
    assert time.monotonic() - t0 < 1.2  # well before the server would have answered
    with pytest.raises(DownloadTimeout):
        await download_to(http, url, tmp_path / "c.srt", **_sizes(asset), timeout=0.2)
    # Let the simulator's held handlers finish, so none is pending at shutdown.
    await asyncio.sleep(1.6 - (time.monotonic() - t0) + 0.3)


async def test_follows_redirects(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path
) -> None:
    """playManifest-style 302 to the serve URL (a one-route redirector on loopback)."""
    asset = picks["flavor"]
    target = await get_url(http, sim, asset)

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound(target)

    app = web.Application()
    app.router.add_get("/p/1/playManifest/a.mp4", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        dest = tmp_path / "f.mp4"
        part_path(dest).write_bytes(_prefix(asset, 1000))  # Range survives the redirect
        before = sim.stats.bytes_served
        result = await download_to(
            http, f"http://127.0.0.1:{port}/p/1/playManifest/a.mp4", dest, **_sizes(asset)
        )
        assert result.resumed_from == 1000
        assert sim.stats.bytes_served - before == asset["true_size"] - 1000
        assert result.sha256 == _truth(asset)
    finally:
        await runner.cleanup()


async def test_not_enough_free_space_raises_disk_full_before_writing(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path
) -> None:
    asset = picks["flavor"]
    url = await get_url(http, sim, asset)
    dest = tmp_path / "f.mp4"
    part_path(dest).write_bytes(_prefix(asset, 5000))
    with pytest.raises(DiskFull) as info:
        await download_to(http, url, dest, **_sizes(asset), min_free_bytes=1 << 60)
    assert not is_retryable(info.value)
    assert "not enough free space" in str(info.value)
    assert not dest.exists()
    assert part_path(dest).read_bytes() == _prefix(asset, 5000)  # kept for a later resume


class ShrinkingFS(LocalFS):
    """Plenty of room at the start, then another process eats the disk."""

    def __init__(self) -> None:
        self.calls = 0

    def free_bytes(self, path: Path) -> int:
        self.calls += 1
        return 1 << 40 if self.calls == 1 else 1000


async def test_free_space_is_rechecked_while_writing(
    sim: RunningSimulator,
    http: aiohttp.ClientSession,
    picks: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(download, "DISK_CHECK_EVERY", MiB)
    asset = picks["flavor"]
    dest = tmp_path / "f.mp4"
    fs = ShrinkingFS()
    with pytest.raises(DiskFull, match="not enough free space"):
        await download_to(
            http, await get_url(http, sim, asset), dest, **_sizes(asset), chunk_size=MiB, fs=fs
        )
    assert fs.calls == 2
    kept = part_path(dest).read_bytes()
    assert MiB <= len(kept) < asset["true_size"] and kept == _prefix(asset, len(kept))
    assert not dest.exists()


class FillsUpFS(LocalFS):
    """Real writes until ``room`` bytes have gone to disk, then ENOSPC (a disk filling up
    under us while free space looked fine at the start)."""

    def __init__(self, room: int) -> None:
        self.room = room

    def write(self, fd: int, data: memoryview) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = os.write(fd, data[: self.room])
        self.room -= n
        return n


async def test_enospc_while_writing_raises_disk_full_and_resumes_later(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path
) -> None:
    asset = picks["flavor"]
    url = await get_url(http, sim, asset)
    dest = tmp_path / "f.mp4"
    room = 2 * MiB + 777  # ends mid-chunk: a partial write then ENOSPC
    with pytest.raises(DiskFull):
        await download_to(http, url, dest, **_sizes(asset), min_free_bytes=0, fs=FillsUpFS(room))
    assert not dest.exists()
    kept = part_path(dest).read_bytes()
    assert 0 < len(kept) <= room
    assert kept == _prefix(asset, len(kept))
    result = await download_to(http, url, dest, **_sizes(asset), min_free_bytes=0)
    assert result.resumed_from == len(kept)
    assert result.sha256 == _truth(asset)


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB file system, when this machine lets us mount one (root); else skip."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    rc = os.system(f"mount -t tmpfs -o size=1m tmpfs {mnt} 2>/dev/null")
    if rc != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        os.system(f"umount {mnt}")


class TrustingFS(LocalFS):
    def free_bytes(self, path: Path) -> int:  # pretend there is room; the disk says no
        return 1 << 50


async def test_real_enospc_on_tiny_tmpfs(
    sim: RunningSimulator,
    http: aiohttp.ClientSession,
    picks: dict,
    tiny_tmpfs: Path,
    tmp_path: Path,
) -> None:
    asset = picks["flavor"]
    url = await get_url(http, sim, asset)
    dest = tiny_tmpfs / "f.mp4"
    with pytest.raises(DiskFull):
        await download_to(http, url, dest, **_sizes(asset), min_free_bytes=0, fs=TrustingFS())
    assert not dest.exists()
    kept = part_path(dest).read_bytes()
    assert 0 < len(kept) <= MiB and kept == _prefix(asset, len(kept))
    # And with the honest free-space check it refuses up front.
    with pytest.raises(DiskFull, match="not enough free space"):
        await download_to(http, url, tiny_tmpfs / "g.mp4", **_sizes(asset), min_free_bytes=0)


async def test_existing_destination_is_not_clobbered(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path
) -> None:
    asset = picks["caption"]
    url = await get_url(http, sim, asset)
    dest = tmp_path / "c.srt"
    dest.write_bytes(b"verified earlier")
    with pytest.raises(DestinationExists):
        await download_to(http, url, dest, **_sizes(asset))
    assert dest.read_bytes() == b"verified earlier"
    result = await download_to(http, url, dest, **_sizes(asset), overwrite=True)
    assert result.sha256 == _truth(asset) == _sha_file(dest)


async def test_two_downloads_of_one_file_do_not_share_the_part(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path
) -> None:
    asset = picks["flavor"]
    url = await get_url(http, sim, asset)
    sim.knobs.download_bandwidth = 20 * MiB  # slow enough to overlap
    dest = tmp_path / "f.mp4"
    results = await asyncio.gather(
        download_to(http, url, dest, **_sizes(asset)),
        download_to(http, url, dest, **_sizes(asset)),
        return_exceptions=True,
    )
    busy = [r for r in results if isinstance(r, PartFileBusy)]
    done = [r for r in results if not isinstance(r, BaseException)]
    assert len(busy) == 1 and len(done) == 1
    assert done[0].sha256 == _truth(asset) == _sha_file(dest)


async def test_shared_bandwidth_cap(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path
) -> None:
    asset = picks["flavor"]
    url = await get_url(http, sim, asset)
    size = asset["true_size"]
    rate = 2 * size  # two downloads of `size` bytes each: ~1 s in total
    bucket = RateLimiter(rate, burst=256 * 1024)
    t0 = time.monotonic()
    results = await asyncio.gather(
        *(
            download_to(http, url, tmp_path / f"f{i}.mp4", **_sizes(asset), bandwidth=bucket)
            for i in range(2)
        )
    )
    elapsed = time.monotonic() - t0
    assert all(r.sha256 == _truth(asset) for r in results)
    assert elapsed >= (2 * size - 256 * 1024) / rate * 0.95
    assert elapsed < 10.0


async def test_hostile_names_from_the_api_land_inside_the_archive(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path
) -> None:
    asset = picks["hostile"]
    root = tmp_path / "archive"
    directory = entry_dir(root, sim.partner.spec.partner_id, asset["entryId"])
    dest = directory / asset_filename(asset["id"], asset.get("fileExt"), asset["kind"])
    result = await download_to(http, await get_url(http, sim, asset), dest, **_sizes(asset))
    assert result.path.resolve().is_relative_to(root.resolve())
    assert dest.name.endswith(".bin")
    assert result.sha256 == _truth(asset)
    assert [p for p in root.rglob("*") if p.is_file()] == [dest]
    print(f"hostile fileExt {asset.get('fileExt')!r} -> {dest.relative_to(root)}")


# -------------------------------------------------------------------- memory (slow)


def _rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@pytest.mark.slow
async def test_two_gigabyte_download_in_constant_memory(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    import tracemalloc

    with run_simulator(PartnerSpec(entries=400, seed=3, burst=3)) as sim:
        flavors = [
            a
            for (eid,) in sim.partner.sql("select id from entries")
            for a in sim.partner.assets_of(eid)
            if a["kind"] == "flavor" and int(a.get("status", -1)) == 2
        ]
        # The smallest flavor of at least 2 GB (10^9), with an exact sizeInBytes.
        big = min(
            (a for a in flavors if int(a.get("sizeInBytes") or 0) >= 2_000_000_000),
            key=lambda a: int(a["sizeInBytes"]),
        )
        big["true_size"], big["seed"] = sim.partner.asset_content(big["id"])
        url = await get_url(http, sim, big)
        peak_rss = _rss()
        stop = asyncio.Event()

        async def sample() -> None:
            nonlocal peak_rss
            while not stop.is_set():
                peak_rss = max(peak_rss, _rss())
                await asyncio.sleep(0.05)

        rss0 = _rss()
        sampler = asyncio.create_task(sample())
        tracemalloc.start()
        t0 = time.monotonic()
        try:
            result = await download_to(http, url, tmp_path / "big.mp4", **_sizes(big))
        finally:
            elapsed = time.monotonic() - t0
            _, peak_traced = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            stop.set()
            await sampler
        assert result.bytes == big["true_size"]
        assert result.sha256 == content_sha256(big["seed"], big["true_size"])
        assert result.sha256 == _sha_file(tmp_path / "big.mp4")
        print(
            f"\n{result.bytes / 1e9:.2f} GB in {elapsed:.1f} s "
            f"({result.bytes / elapsed / 1e6:.0f} MB/s); traced peak {peak_traced / MiB:.1f} MiB;"
            f" RSS growth {(peak_rss - rss0) / MiB:.1f} MiB"
        )
        assert peak_traced < 32 * MiB
        assert peak_rss - rss0 < 96 * MiB


async def test_cancelled_download_keeps_a_valid_prefix(
    sim: RunningSimulator, http: aiohttp.ClientSession, picks: dict, tmp_path: Path
) -> None:
    """A run stopped mid-file (SIGINT cancels the task): the .part is resumable."""
    asset = picks["flavor"]
    url = await get_url(http, sim, asset)
    sim.knobs.download_bandwidth = 4 * MiB
    dest = tmp_path / "f.mp4"
    task = asyncio.create_task(download_to(http, url, dest, **_sizes(asset)))
    await asyncio.sleep(0.4)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    kept = part_path(dest).read_bytes()
    assert 0 < len(kept) < asset["true_size"] and kept == _prefix(asset, len(kept))
    assert not dest.exists()
    sim.knobs.download_bandwidth = None
    result = await download_to(http, url, dest, **_sizes(asset))
    assert result.resumed_from == len(kept) and result.sha256 == _truth(asset)


# --------------------------------------------- answers the simulator never gives

BODY = content_bytes(99, 0, 300_000)


@pytest.fixture
async def odd_server() -> AsyncIterator[str]:
    """A few misbehaving endpoints on loopback, for answers a Kaltura server (and so our
    simulator) should not give but a CDN or proxy in front of it might."""

    async def empty(_: web.Request) -> web.Response:
        return web.Response(status=200, body=b"")

    async def wrong_range(request: web.Request) -> web.Response:
        if request.headers.get("Range"):  # answers a different range than asked
            return web.Response(
                status=206,
                body=BODY[10:],
                headers={"Content-Range": f"bytes 10-{len(BODY) - 1}/{len(BODY)}"},
            )
        return web.Response(body=BODY)

    async def too_many(_: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "7"}, text="slow down")

    async def html_404(_: web.Request) -> web.Response:
        return web.Response(status=404, text="<html>not here</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/empty", empty)
    app.router.add_get("/wrong-range", wrong_range)
    app.router.add_get("/429", too_many)
    app.router.add_get("/p/1/ks/{ks}/missing", html_404)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_empty_body_is_a_named_error(
    odd_server: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with pytest.raises(EmptyBody):
        await download_to(
            http, f"{odd_server}/empty", tmp_path / "e", expected_bytes=100, expected_kb=None
        )
    assert not (tmp_path / "e").exists()


async def test_mismatched_content_range_restarts_from_zero(
    odd_server: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    dest = tmp_path / "w"
    part_path(dest).write_bytes(BODY[:5000])
    result = await download_to(
        http, f"{odd_server}/wrong-range", dest, expected_bytes=len(BODY), expected_kb=None
    )
    assert result.resumed_from == 0
    assert dest.read_bytes() == BODY
    assert result.sha256 == hashlib.sha256(BODY).hexdigest()


async def test_status_errors_carry_retry_hints_and_no_ks(
    odd_server: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with pytest.raises(DownloadHTTPError) as info:
        await download_to(
            http, f"{odd_server}/429", tmp_path / "a", expected_bytes=1, expected_kb=None
        )
    assert info.value.status == 429 and info.value.retry_after == 7.0
    assert is_retryable(info.value)
    secret = "djJ8MTIzNDU2N3xTRUNSRVRLUw"
    with pytest.raises(DownloadHTTPError) as info:
        await download_to(
            http,
            f"{odd_server}/p/1/ks/{secret}/missing?ks={secret}",
            tmp_path / "b",
            expected_bytes=1,
            expected_kb=None,
        )
    assert info.value.status == 404 and not is_retryable(info.value)
    assert secret not in str(info.value) and secret not in repr(info.value.args)
    assert "/ks/***/missing" in str(info.value)

"""One entry archived end to end the way the backup worker will: URLs from the project's
KalturaClient, bytes through its aiohttp session into the archive layout, entry.json last.
Real HTTP to the simulator, real files."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from kretain.archive import (
    ENTRY_JSON,
    asset_filename,
    entry_dir,
    read_entry_json,
    write_json_atomic,
)
from kretain.kaltura import ClientConfig, KalturaClient
from kretain.simulator.content import content_sha256
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import RunningSimulator, run_simulator
from kretain.workers.download import RateLimiter, download_to

MiB = 1 << 20


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with run_simulator(PartnerSpec(entries=200, seed=11, burst=3)) as s:
        s.knobs.fault_scope = "download"
        yield s


def _entry_with_captions(sim: RunningSimulator) -> tuple[str, list[dict]]:
    """An entry with 2+ ready captions and no flavor over 60 MB (keeps the test quick)."""
    best: tuple[str, list[dict]] | None = None
    for (eid,) in sim.partner.sql("select id from entries order by id"):
        assets = [a for a in sim.partner.assets_of(eid) if int(a.get("status", -1)) == 2]
        captions = [a for a in assets if a["kind"] == "caption"]
        biggest = max((sim.partner.asset_content(a["id"])[0] for a in assets), default=0)
        if len(captions) >= 2 and biggest <= 60 * MiB:
            best = (eid, assets)
            break
    assert best, "no suitable entry in the simulated partner"
    return best


async def test_archive_one_entry_with_client_urls(sim: RunningSimulator, tmp_path: Path) -> None:
    entry_id, assets = _entry_with_captions(sim)
    spec = sim.partner.spec
    config = ClientConfig(
        service_url=sim.url, partner_id=spec.partner_id, admin_secret=spec.admin_secret
    )
    root = tmp_path / "archive"
    directory = entry_dir(root, spec.partner_id, entry_id)
    bucket = RateLimiter(400 * MiB)
    async with KalturaClient(config) as client:

        async def one(asset: dict) -> dict:
            url = await client.get_asset_url(asset["kind"], asset["id"])
            name = asset_filename(asset["id"], asset.get("fileExt"), asset["kind"])
            result = await download_to(
                client.http,
                url,
                directory / name,
                expected_bytes=int(asset.get("sizeInBytes") or 0),
                expected_kb=int(asset.get("size") or 0),
                bandwidth=bucket,
                min_free_bytes=16 * MiB,
            )
            return {
                "id": asset["id"],
                "kind": asset["kind"],
                "file": name,
                "bytes": result.bytes,
                "sha256": result.sha256,
                "language": asset.get("language"),
            }

        records = await asyncio.gather(*(one(a) for a in assets))
    write_json_atomic(directory / ENTRY_JSON, {"id": entry_id, "assets": records})

    meta = read_entry_json(directory)
    files = sorted(p.name for p in directory.iterdir())
    assert files == sorted([r["file"] for r in records] + ["entry.json"])
    assert len(set(files)) == len(assets) + 1  # two captions never collide
    for record in meta["assets"]:
        size, seed = sim.partner.asset_content(record["id"])
        assert record["bytes"] == size == (directory / record["file"]).stat().st_size
        assert record["sha256"] == content_sha256(seed, size)
    languages = [r["language"] for r in meta["assets"] if r["kind"] == "caption"]
    assert len(languages) >= 2 and all(languages)

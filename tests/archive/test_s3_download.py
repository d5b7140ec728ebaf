"""download_to_sink from the Kaltura simulator into S3 (a real SeaweedFS), over real HTTP.

Ground truth: the simulator's content generator gives every asset's bytes and SHA-256;
``sim.stats.bytes_served`` counts what Kaltura sent; a counting TCP proxy in front of the
store counts what was uploaded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from s3_support import CountingProxy, composite, raw_client, uploads_for

from kretain.archive.s3 import MANIFEST_SUFFIX, S3Target
from kretain.archive.testing import SeaweedFS
from kretain.kaltura.client import ClientConfig, KalturaClient
from kretain.simulator.content import content_bytes, content_sha256
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import RunningSimulator, run_simulator
from kretain.workers.download import (
    SizeMismatch,
    TruncatedDownload,
    download_to_sink,
    is_retryable,
)

MiB = 1 << 20
PART = 5 << 20
SPEC = PartnerSpec(entries=200, seed=11, burst=3)
DRIVER = Path(__file__).with_name("s3_driver.py")


@pytest.fixture(scope="module")
def sim_module() -> Iterator[RunningSimulator]:
    with run_simulator(SPEC) as sim:
        sim.knobs.fault_scope = "download"
        yield sim


@pytest.fixture
def sim(sim_module: RunningSimulator) -> Iterator[RunningSimulator]:
    yield sim_module
    sim_module.knobs.clear_faults()
    sim_module.knobs.ignore_range = False
    sim_module.knobs.download_bandwidth = None


def _flavors(sim: RunningSimulator) -> list[dict[str, Any]]:
    out = []
    for (eid,) in sim.partner.sql("select id from entries order by id"):
        for a in sim.partner.assets_of(eid):
            if int(a.get("status", -1)) == 2:
                a["true_size"], a["seed"] = sim.partner.asset_content(a["id"])
                out.append(a)
    return out


@pytest.fixture(scope="module")
def picks(sim_module: RunningSimulator) -> dict[str, dict[str, Any]]:
    ready = _flavors(sim_module)

    def first(pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        found = sorted((a for a in ready if pred(a)), key=lambda a: a["true_size"])
        assert found, "the simulated partner has no asset of this shape"
        return found[0]

    exact = lambda a: int(a.get("sizeInBytes") or 0) > 0  # noqa: E731
    return {
        "flavor": first(lambda a: a["kind"] == "flavor" and exact(a) and a["true_size"] > 12 * MiB),
        "kb_only": first(lambda a: not exact(a) and a["true_size"] > 6 * MiB),
        "caption": first(lambda a: a["kind"] == "caption"),
        "big": first(lambda a: a["kind"] == "flavor" and exact(a) and a["true_size"] > 80 * MiB),
    }


def _sizes(asset: dict[str, Any]) -> dict[str, int]:
    return {
        "expected_bytes": int(asset.get("sizeInBytes") or 0),
        "expected_kb": int(asset.get("size") or 0),
    }


def _open_args(asset: dict[str, Any]) -> dict[str, int | None]:
    exact = int(asset.get("sizeInBytes") or 0) or None
    return {"expected_size": exact, "size_hint": int(asset.get("size") or 0) * 1024 or None}


def _truth(asset: dict[str, Any]) -> str:
    return content_sha256(asset["seed"], asset["true_size"])


def _rel(asset: dict[str, Any]) -> str:
    return f"{SPEC.partner_id}/{asset['entryId']}/{asset['kind']}-{asset['id']}.bin"


def _client(sim: RunningSimulator) -> KalturaClient:
    spec = sim.partner.spec
    return KalturaClient(
        ClientConfig(
            service_url=sim.url, partner_id=spec.partner_id, admin_secret=spec.admin_secret
        )
    )


@pytest.mark.parametrize("which", ["flavor", "kb_only", "caption"])
async def test_simulator_to_s3_verified(
    sim: RunningSimulator, s3: S3Target, picks: dict, which: str
) -> None:
    asset = picks[which]
    rel = _rel(asset)
    async with _client(sim) as client:
        url = await client.get_asset_url(asset["kind"], asset["id"])
        sink = await s3.open_sink(rel, **_open_args(asset))
        before = sim.stats.bytes_served
        result = await download_to_sink(client.http, url, sink, **_sizes(asset))
    assert result.bytes == asset["true_size"] and result.sha256 == _truth(asset)
    assert result.resumed_from == 0 and result.path is None
    assert sim.stats.bytes_served - before == asset["true_size"]
    assert await s3.sha256(rel) == _truth(asset)
    stat = await s3.stat(rel)
    assert stat is not None and stat.size == asset["true_size"]
    assert stat.store_checksum == result.store_checksum
    if asset["true_size"] >= PART:
        data = content_bytes(asset["seed"], 0, asset["true_size"])
        assert result.store_checksum == composite(data, PART)


async def test_truncated_download_resumes_from_stored_parts(
    sim: RunningSimulator, s3: S3Target, picks: dict, seaweed: SeaweedFS
) -> None:
    asset = picks["flavor"]
    rel = _rel(asset)
    async with _client(sim) as client:
        url = await client.get_asset_url(asset["kind"], asset["id"])
        sim.knobs.truncate = 1.0
        sink = await s3.open_sink(rel, **_open_args(asset))
        with pytest.raises(TruncatedDownload) as info:
            await download_to_sink(client.http, url, sink, **_sizes(asset), chunk_size=256 * 1024)
        assert is_retryable(info.value)
        assert len(uploads_for(seaweed, s3.key(rel))) == 1  # suspended, not aborted
        sim.knobs.truncate = 0.0

        again = await s3.open_sink(rel, **_open_args(asset))
        kept = again.offset
        assert kept > 0 and kept % PART == 0
        before = sim.stats.bytes_served
        result = await download_to_sink(client.http, url, again, **_sizes(asset))
    assert result.resumed_from == kept
    assert sim.stats.bytes_served - before == asset["true_size"] - kept  # Range honoured
    assert result.sha256 == _truth(asset)  # read back from the store after completion
    assert uploads_for(seaweed, s3.key(rel)) == []


async def test_server_ignoring_range_restarts_cleanly(
    sim: RunningSimulator, s3: S3Target, picks: dict, seaweed: SeaweedFS
) -> None:
    asset = picks["flavor"]
    rel = _rel(asset)
    first = await s3.open_sink(rel, **_open_args(asset))
    await first.write(content_bytes(asset["seed"], 0, 2 * PART + 1000))
    await first.suspend()
    sim.knobs.ignore_range = True
    async with _client(sim) as client:
        url = await client.get_asset_url(asset["kind"], asset["id"])
        sink = await s3.open_sink(rel, **_open_args(asset))
        assert sink.offset == 2 * PART
        before = sim.stats.bytes_served
        result = await download_to_sink(client.http, url, sink, **_sizes(asset))
    assert result.resumed_from == 0  # the 200 answer replaced what was stored
    assert sim.stats.bytes_served - before == asset["true_size"]
    assert result.sha256 == _truth(asset) == await s3.sha256(rel)
    assert uploads_for(seaweed, s3.key(rel)) == []


async def test_wrong_size_discards_the_upload(
    sim: RunningSimulator, s3: S3Target, picks: dict, seaweed: SeaweedFS
) -> None:
    asset = picks["flavor"]
    rel = _rel(asset)
    async with _client(sim) as client:
        url = await client.get_asset_url(asset["kind"], asset["id"])
        sink = await s3.open_sink(rel, expected_size=None)
        with pytest.raises(SizeMismatch):
            await download_to_sink(
                client.http, url, sink, expected_bytes=0, expected_kb=asset["true_size"] // 2048
            )
    assert await s3.stat(rel) is None
    assert uploads_for(seaweed, s3.key(rel)) == []


# ---- SIGKILL mid-upload, then resume ---------------------------------------------------------


def _driver_args(
    sim: RunningSimulator, asset: dict[str, Any], server: SeaweedFS, prefix: str, rel: str
) -> str:
    spec = sim.partner.spec
    return json.dumps(
        {
            "sim_url": sim.url,
            "partner_id": spec.partner_id,
            "secret": spec.admin_secret,
            "kind": asset["kind"],
            "asset_id": asset["id"],
            **_sizes(asset),
            "endpoint": server.endpoint,
            "bucket": server.bucket,
            "prefix": prefix,
            "rel": rel,
        }
    )


def _child_env(server: SeaweedFS) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BOTO_"))}
    return {**env, **server.env()}


async def test_sigkill_mid_upload_then_resume_sends_only_the_rest(
    sim: RunningSimulator, picks: dict, seaweed: SeaweedFS, s3: S3Target
) -> None:
    asset = picks["big"]
    size = asset["true_size"]
    rel = _rel(asset)
    key = s3.key(rel)
    part = 8 * MiB  # the child uses the default part size
    sim.knobs.download_bandwidth = 24 * MiB  # ~4 s for the file: the kill lands mid-file
    child = subprocess.Popen(
        [sys.executable, str(DRIVER), _driver_args(sim, asset, seaweed, s3.prefix, rel)],
        env=_child_env(seaweed),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    client = raw_client(seaweed)
    try:
        deadline = time.monotonic() + 60
        stored = 0
        while stored < 4:
            assert child.poll() is None, child.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the upload never got going"
            uploads = uploads_for(seaweed, key)
            if uploads:
                parts = client.list_parts(
                    Bucket=s3.bucket, Key=key, UploadId=uploads[0]["UploadId"]
                )
                stored = len(parts.get("Parts", []))
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=10)
        child.stdout.close()  # type: ignore[union-attr]
        child.stderr.close()  # type: ignore[union-attr]
    assert child.returncode == -signal.SIGKILL
    assert await s3.stat(rel) is None  # nothing was completed

    sim.knobs.download_bandwidth = None
    async with CountingProxy(int(seaweed.endpoint.rsplit(":", 1)[1])) as proxy:
        async with (
            S3Target(s3.bucket, s3.prefix, endpoint_url=proxy.endpoint) as resumed_target,
            _client(sim) as kaltura,
        ):
            sink = await resumed_target.open_sink(rel, **_open_args(asset))
            kept = sink.offset
            assert kept >= 3 * part and kept % part == 0  # the parts the dead process stored
            url = await kaltura.get_asset_url(asset["kind"], asset["id"])
            served = sim.stats.bytes_served
            result = await download_to_sink(kaltura.http, url, sink, **_sizes(asset))
        uploaded = proxy.sent
    assert result.resumed_from == kept
    assert result.sha256 == _truth(asset)  # hashed by reading the object back
    assert await s3.sha256(rel) == _truth(asset)
    assert sim.stats.bytes_served - served == size - kept  # Kaltura sent only the rest
    # The store received only the rest too (plus request headers and the small part list).
    assert uploaded < size - kept + 2 * MiB and uploaded < 0.8 * size
    assert uploads_for(seaweed, key) == []
    assert not client.list_objects_v2(Bucket=s3.bucket, Prefix=key + MANIFEST_SUFFIX).get(
        "Contents"
    )
    print(f"\nkilled after {kept / MiB:.0f} MiB of {size / MiB:.0f} MiB; resume uploaded "
          f"{uploaded / MiB:.1f} MiB")  # fmt: skip


# ---- memory -----------------------------------------------------------------------------------


def _smallest_flavor_over(sim: RunningSimulator, minimum: int) -> dict[str, Any]:
    found = [
        a
        for a in _flavors(sim)
        if a["kind"] == "flavor"
        and int(a.get("sizeInBytes") or 0) > 0
        and a["true_size"] >= minimum
    ]
    return min(found, key=lambda a: a["true_size"])


async def _upload_in_child(
    sim: RunningSimulator, asset: dict[str, Any], server: SeaweedFS, s3: S3Target
) -> dict[str, Any]:
    rel = _rel(asset)
    proc = subprocess.run(
        [sys.executable, str(DRIVER), _driver_args(sim, asset, server, s3.prefix, rel)],
        env=_child_env(server),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["bytes"] == asset["true_size"] and report["sha256"] == _truth(asset)
    stat = await s3.stat(rel)
    assert stat is not None and stat.size == asset["true_size"]
    growth = report["rss_peak"] - report["rss_before"]
    size, took, before = asset["true_size"], report["seconds"], report["rss_before"]
    print(f"\n{size / 1e6:.0f} MB in {took:.1f} s ({size / took / 1e6:.0f} MB/s); RSS "
          f"{before / MiB:.0f} MiB before, peak growth {growth / MiB:.1f} MiB")  # fmt: skip
    await s3.delete(rel)
    return report | {"growth": growth}


async def test_half_gigabyte_upload_in_constant_memory(seaweed: SeaweedFS, s3: S3Target) -> None:
    with run_simulator(PartnerSpec(entries=400, seed=3, burst=3)) as big_sim:
        asset = _smallest_flavor_over(big_sim, 512 * MiB)
        report = await _upload_in_child(big_sim, asset, seaweed, s3)
    # Two parts in flight and one filling (8 MiB each), plus the download's buffers.
    assert report["growth"] < 64 * MiB


@pytest.mark.slow
async def test_two_gigabyte_upload_in_constant_memory(seaweed: SeaweedFS, s3: S3Target) -> None:
    with run_simulator(PartnerSpec(entries=400, seed=3, burst=3)) as big_sim:
        asset = _smallest_flavor_over(big_sim, 2_000_000_000)
        report = await _upload_in_child(big_sim, asset, seaweed, s3)
    assert report["growth"] < 64 * MiB

"""Serving bytes: getUrl URLs, Content-Length, Range/206/416, X-Kaltura errors, ignore_range."""

from __future__ import annotations

import hashlib
import json
import time

import aiohttp
import pytest

from kretain.simulator import ks as ksmod
from kretain.simulator.content import content_bytes, content_sha256
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator


def _ks(sim) -> str:
    spec = sim.partner.spec
    return ksmod.sign_ks_v2(
        spec.admin_secret, spec.partner_id, "", 2, int(time.time()) + 600, "disableentitlement"
    )


async def _api(http, sim, service, action, **params):
    params.setdefault("format", "1")
    async with http.post(f"{sim.url}/api_v3/service/{service}/action/{action}", data=params) as r:
        return json.loads(await r.text())


async def _ready_assets(http, sim, service: str) -> list[dict]:
    ks = _ks(sim)
    page = await _api(http, sim, "media", "list", ks=ks, **{"pager:pageSize": "200"})
    ids = ",".join(o["id"] for o in page["objects"][:150])
    listing = await _api(
        http, sim, service, "list", ks=ks, **{"filter:entryIdIn": ids, "pager:pageSize": "500"}
    )
    return [a for a in listing["objects"] if a.get("status") == 2]


@pytest.fixture
def serve_sim():
    with run_simulator(PartnerSpec(entries=80, seed=11, burst=4)) as sim:
        yield sim


async def test_flavor_download_whole_and_ranges(serve_sim):
    sim = serve_sim
    async with aiohttp.ClientSession() as http:
        flavors = await _ready_assets(http, sim, "flavorAsset")
        flavor = min((f for f in flavors if f.get("sizeInBytes", 0) > 0), key=lambda f: f["size"])
        size, seed = sim.partner.asset_content(flavor["id"])
        url = await _api(http, sim, "flavorAsset", "getUrl", ks=_ks(sim), id=flavor["id"])
        async with http.get(url) as r:
            assert r.status == 200
            assert int(r.headers["Content-Length"]) == size
            assert r.headers["Accept-Ranges"] == "bytes"
            digest = hashlib.sha256()
            async for chunk in r.content.iter_chunked(1 << 16):
                digest.update(chunk)
        assert digest.hexdigest() == content_sha256(seed, size)
        assert sim.stats.bytes_served == size

        async with http.get(url, headers={"Range": "bytes=100-199"}) as r:
            assert r.status == 206
            assert r.headers["Content-Range"] == f"bytes 100-199/{size}"
            assert await r.read() == content_bytes(seed, 100, 100)
        async with http.get(url, headers={"Range": f"bytes={size - 10}-"}) as r:
            assert r.status == 206
            assert await r.read() == content_bytes(seed, size - 10, 10)
        async with http.get(url, headers={"Range": "bytes=-5"}) as r:
            assert r.status == 206 and await r.read() == content_bytes(seed, size - 5, 5)
        async with http.get(url, headers={"Range": f"bytes={size}-"}) as r:
            assert r.status == 416
            assert r.headers["Content-Range"] == f"bytes */{size}"
        async with http.head(url) as r:
            assert r.status == 200 and int(r.headers["Content-Length"]) == size

        sim.knobs.ignore_range = True
        async with http.get(url, headers={"Range": "bytes=100-199"}) as r:
            assert r.status == 200
            assert len(await r.read()) == size


async def test_caption_attachment_thumb_serve(serve_sim):
    sim = serve_sim
    served = []
    async with aiohttp.ClientSession() as http:
        for service, id_param in (
            ("caption_captionAsset", "captionAssetId"),
            ("attachment_attachmentAsset", "attachmentAssetId"),
            ("thumbAsset", "thumbAssetId"),
        ):
            assets = await _ready_assets(http, sim, service)
            if not assets:
                continue
            asset = assets[0]
            url = await _api(http, sim, service, "getUrl", ks=_ks(sim), id=asset["id"])
            assert url == (
                f"{sim.url}/api_v3/index.php/service/{service}/action/serve/{id_param}/{asset['id']}"
            )
            size, seed = sim.partner.asset_content(asset["id"])
            async with http.get(url) as r:
                assert r.status == 200
                body = await r.read()
            assert body == content_bytes(seed, 0, size)
            served.append(service)
    assert len(served) >= 2, served


async def test_deleted_asset_gives_x_kaltura_error(serve_sim):
    sim = serve_sim
    async with aiohttp.ClientSession() as http:
        flavor = (await _ready_assets(http, sim, "flavorAsset"))[0]
        url = await _api(http, sim, "flavorAsset", "getUrl", ks=_ks(sim), id=flavor["id"])
        assert await _api(http, sim, "flavorAsset", "delete", ks=_ks(sim), id=flavor["id"]) is None
        async with http.get(url) as r:
            assert r.status == 200
            assert await r.read() == b""
            assert r.headers["X-Kaltura"] == "error-6"
            assert r.headers["X-Kaltura-App"].startswith("exiting on error 6 - ")
        captions = await _ready_assets(http, sim, "caption_captionAsset")
        if captions:
            cap = captions[0]
            url = await _api(http, sim, "caption_captionAsset", "getUrl", ks=_ks(sim), id=cap["id"])
            await _api(http, sim, "baseEntry", "delete", ks=_ks(sim), entryId=cap["entryId"])
            async with http.get(url) as r:
                assert r.headers["X-Kaltura"].startswith("error-")
                assert await r.read() == b""


async def test_bandwidth_limit_paces_download(serve_sim):
    sim = serve_sim
    async with aiohttp.ClientSession() as http:
        flavors = await _ready_assets(http, sim, "flavorAsset")
        flavor = next(f for f in flavors if f.get("sizeInBytes", 0) > 400_000)
        url = await _api(http, sim, "flavorAsset", "getUrl", ks=_ks(sim), id=flavor["id"])
        sim.knobs.download_bandwidth = 1_000_000  # 1 MB/s: 400 KB takes ~0.4 s
        started = time.monotonic()
        async with http.get(url, headers={"Range": "bytes=0-399999"}) as r:
            assert len(await r.read()) == 400_000
        elapsed = time.monotonic() - started
        assert 0.3 < elapsed < 3.0


async def test_a_name_with_a_newline_still_downloads() -> None:
    """getUrl carries the entry's name in the URL; a decoded newline must not 404 the file."""
    with run_simulator(PartnerSpec(entries=2000, seed=1, traps=True)) as sim:
        named = sim.partner.sql(
            "SELECT id FROM entries WHERE name LIKE '%' || char(10) || '%' AND status = 2 "
            "AND n_flavors > 0 AND entitled_only = 0 LIMIT 1"
        )
        assert named, "the partner should hold a name with a newline"
        flavor = next(a for a in sim.partner.assets_of(named[0][0]) if a["kind"] == "flavor")
        size, seed = sim.partner.asset_content(flavor["id"])
        async with aiohttp.ClientSession() as http:
            url = await _api(http, sim, "flavorAsset", "getUrl", ks=_ks(sim), id=flavor["id"])
            assert "%0A" in url
            async with http.get(url) as r:
                assert r.status == 200 and await r.read() == content_bytes(seed, 0, size)

"""Injected faults: rate-limit window, HTTP 5xx, hang, truncate, API errors, download errors."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from kretain.simulator import ks as ksmod
from kretain.simulator.faults import Knobs, RateLimiter
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator


def test_rate_limiter_fixed_window_counts_blocked_calls():
    limiter = RateLimiter()
    hits = [limiter.hit("k", 3, 10.0, now=100.0 + i) for i in range(5)]
    assert hits == [False, False, False, True, True]
    # Window started at the first call (t=100): still blocked at t=109.9, fresh at t=110.
    assert limiter.hit("k", 3, 10.0, now=109.9) is True
    assert limiter.hit("k", 3, 10.0, now=110.0) is False


def test_fail_next_counts_down():
    knobs = Knobs()
    knobs.fail_next("Media.List", "INTERNAL_SERVERL_ERROR", times=2)
    assert knobs.take_failure("media.list") == ("INTERNAL_SERVERL_ERROR", ())
    assert knobs.take_failure("media.list") is not None
    assert knobs.take_failure("media.list") is None


def test_default_rate_limit_is_baseentry_delete():
    assert Knobs().rate_limits == {"baseentry.delete": (35, 10.0)}


@pytest.fixture
def fault_sim():
    with run_simulator(PartnerSpec(entries=60, seed=5, burst=3)) as sim:
        yield sim


def _ks(sim) -> str:
    spec = sim.partner.spec
    return ksmod.sign_ks_v2(
        spec.admin_secret, spec.partner_id, "", 2, int(time.time()) + 600, "disableentitlement"
    )


async def _post(http, sim, service, action, **params):
    params.setdefault("format", "1")
    return await http.post(f"{sim.url}/api_v3/service/{service}/action/{action}", data=params)


async def _api(http, sim, service, action, **params):
    async with await _post(http, sim, service, action, **params) as r:
        assert r.status == 200
        return json.loads(await r.text())


async def test_delete_rate_limit_window(fault_sim):
    sim = fault_sim
    sim.knobs.rate_limits = {"baseentry.delete": (3, 0.6)}
    async with aiohttp.ClientSession() as http:
        ks = _ks(sim)
        codes = []
        for _ in range(5):
            result = await _api(http, sim, "baseEntry", "delete", ks=ks, entryId="0_nosuch00")
            codes.append(result["code"])
        assert codes == ["ENTRY_ID_NOT_FOUND"] * 3 + ["ACTION_BLOCKED"] * 2
        await asyncio.sleep(0.7)
        again = await _api(http, sim, "baseEntry", "delete", ks=ks, entryId="0_nosuch00")
        assert again["code"] == "ENTRY_ID_NOT_FOUND"
    blocked = [m for m in sim.mutations if m["outcome"] == "ACTION_BLOCKED"]
    assert len(blocked) == 2 and len(sim.mutations) == 6
    assert blocked[0]["action"] == "delete" and blocked[0]["id"] == "0_nosuch00"


async def test_http_status_faults(fault_sim):
    sim = fault_sim
    async with aiohttp.ClientSession() as http:
        for name, status in (("http_500", 500), ("http_502", 502), ("http_503", 503)):
            setattr(sim.knobs, name, 1.0)
            async with await _post(http, sim, "system", "ping") as r:
                assert r.status == status
                assert "text/html" in r.headers["Content-Type"]
            setattr(sim.knobs, name, 0.0)
            assert sim.stats.faults[name] == 1
        assert await _api(http, sim, "system", "ping") is True


async def test_fault_rate_is_seeded(fault_sim):
    sim = fault_sim
    sim.knobs.http_503 = 0.5
    sim.knobs.fault_seed = 42
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(40):
            async with await _post(http, sim, "system", "ping") as r:
                statuses.append(r.status)
    assert 5 < statuses.count(503) < 35
    assert set(statuses) == {200, 503}


async def test_hang_holds_then_drops(fault_sim):
    sim = fault_sim
    sim.knobs.hang = 1.0
    sim.knobs.hang_seconds = 0.5
    timeout = aiohttp.ClientTimeout(total=0.2)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        with pytest.raises(asyncio.TimeoutError):
            async with await _post(http, sim, "system", "ping") as r:
                await r.read()
    async with aiohttp.ClientSession() as http:
        started = time.monotonic()
        with pytest.raises(aiohttp.ClientError):
            async with await _post(http, sim, "system", "ping") as r:
                await r.read()
        assert time.monotonic() - started >= 0.45


async def test_truncate_api_and_download(fault_sim):
    sim = fault_sim
    async with aiohttp.ClientSession() as http:
        ks = _ks(sim)
        sim.knobs.truncate = 1.0
        with pytest.raises(aiohttp.ClientPayloadError):
            async with await _post(http, sim, "media", "list", ks=ks) as r:
                await r.read()
        sim.knobs.truncate = 0.0
        page = await _api(http, sim, "media", "list", ks=ks, **{"pager:pageSize": "50"})
        ids = ",".join(o["id"] for o in page["objects"])
        flavors = await _api(http, sim, "flavorAsset", "list", ks=ks, **{"filter:entryIdIn": ids})
        flavor = next(f for f in flavors["objects"] if f.get("status") == 2)
        url = await _api(http, sim, "flavorAsset", "getUrl", ks=ks, id=flavor["id"])
        sim.knobs.fault_scope = "download"
        sim.knobs.truncate = 1.0
        assert await _api(http, sim, "system", "ping") is True  # API untouched in this scope
        received = 0
        with pytest.raises(aiohttp.ClientPayloadError):
            async with http.get(url) as r:
                promised = int(r.headers["Content-Length"])
                async for chunk in r.content.iter_chunked(65536):
                    received += len(chunk)
        assert received < promised


async def test_internal_error_and_fail_next(fault_sim):
    sim = fault_sim
    async with aiohttp.ClientSession() as http:
        ks = _ks(sim)
        sim.knobs.internal_error = 1.0
        err = await _api(http, sim, "media", "list", ks=ks)
        assert err["code"] == "INTERNAL_SERVERL_ERROR" and err["args"] == []
        sim.knobs.internal_error = 0.0
        sim.knobs.fail_next("flavorAsset.list", "LOCK_TIMED_OUT", times=2)
        for _ in range(2):
            err = await _api(
                http, sim, "flavorAsset", "list", ks=ks, **{"filter:entryIdEqual": "x"}
            )
            assert err["code"] == "LOCK_TIMED_OUT"
        ok = await _api(http, sim, "flavorAsset", "list", ks=ks, **{"filter:entryIdEqual": "x"})
        assert ok["objectType"] == "KalturaFlavorAssetListResponse"


async def test_download_error_and_latency(fault_sim):
    sim = fault_sim
    async with aiohttp.ClientSession() as http:
        ks = _ks(sim)
        page = await _api(http, sim, "media", "list", ks=ks, **{"pager:pageSize": "50"})
        ids = ",".join(o["id"] for o in page["objects"])
        flavors = await _api(http, sim, "flavorAsset", "list", ks=ks, **{"filter:entryIdIn": ids})
        flavor = next(f for f in flavors["objects"] if f.get("status") == 2)
        url = await _api(http, sim, "flavorAsset", "getUrl", ks=ks, id=flavor["id"])
        sim.knobs.download_error = 1.0
        sim.knobs.download_error_code = 57
        async with http.get(url) as r:
            assert r.status == 200 and await r.read() == b""
            assert r.headers["X-Kaltura"] == "error-57"
        sim.knobs.download_error = 0.0
        sim.knobs.latency_ms = 150
        started = time.monotonic()
        assert await _api(http, sim, "system", "ping") is True
        assert time.monotonic() - started >= 0.14


async def test_broken_entry_fails_every_asset_list_that_names_it(fault_sim):
    sim = fault_sim
    async with aiohttp.ClientSession() as http:
        ks = _ks(sim)
        page = await _api(http, sim, "media", "list", ks=ks, **{"pager:pageSize": "10"})
        ids = [o["id"] for o in page["objects"]]
        broken, healthy = ids[3], [i for i in ids if i != ids[3]]
        sim.knobs.broken_entries = {broken}
        try:
            for service in ("flavorAsset", "caption_captionAsset", "thumbAsset"):
                err = await _api(
                    http, sim, service, "list", ks=ks, **{"filter:entryIdIn": ",".join(ids)}
                )
                assert err["code"] == "INTERNAL_SERVERL_ERROR"
                err = await _api(
                    http, sim, service, "list", ks=ks, **{"filter:entryIdEqual": broken}
                )
                assert err["code"] == "INTERNAL_SERVERL_ERROR"
            ok = await _api(
                http, sim, "flavorAsset", "list", ks=ks, **{"filter:entryIdIn": ",".join(healthy)}
            )
            assert ok["objectType"] == "KalturaFlavorAssetListResponse" and ok["totalCount"] > 0
            # The entry itself still lists: only its asset lists are broken.
            got = await _api(http, sim, "baseEntry", "list", ks=ks, **{"filter:idIn": broken})
            assert [o["id"] for o in got["objects"]] == [broken]
        finally:
            sim.knobs.broken_entries = set()

"""multirequest: numbering, inheritance, {N:result} references incl. _all, per-item errors."""

from __future__ import annotations

import json
import time

import aiohttp
import pytest

from kretain.simulator import ks as ksmod
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator


@pytest.fixture(scope="module")
def mr_sim(sim_partner_session):
    with run_simulator(sim_partner_session) as sim:
        yield sim


def _ks(sim) -> str:
    spec = sim.partner.spec
    return ksmod.sign_ks_v2(
        spec.admin_secret, spec.partner_id, "", 2, int(time.time()) + 600, "disableentitlement"
    )


async def _multi(sim, data=None, json_body=None):
    url = f"{sim.url}/api_v3/service/multirequest"
    async with aiohttp.ClientSession() as http:
        if json_body is not None:
            async with http.post(url, json=json_body) as r:
                return json.loads(await r.text())
        async with http.post(url, data=data) as r:
            return json.loads(await r.text())


async def test_references_all_and_inherited_ks(mr_sim):
    sim = mr_sim
    data = {
        "format": "1",
        "ks": _ks(sim),
        "1:service": "media",
        "1:action": "list",
        "1:pager:pageSize": "4",
        "2:service": "flavorAsset",
        "2:action": "list",
        "2:filter:entryIdIn": "{1:result:objects:_all:id}",
        "2:pager:pageSize": "500",
        "3:service": "baseEntry",
        "3:action": "get",
        "3:entryId": "{1:result:objects:2:id}",
        "4:service": "baseEntry",
        "4:action": "get",
        "4:entryId": "{1:result:objects:99:id}",
    }
    listing, flavors, third, missing = await _multi(sim, data)
    ids = [o["id"] for o in listing["objects"]]
    assert len(ids) == 4
    assert {f["entryId"] for f in flavors["objects"]} <= set(ids)
    assert flavors["objects"]
    assert third["id"] == ids[2]
    # A path that leads nowhere becomes "": the get then fails on its own.
    assert missing["objectType"] == "KalturaAPIException"


async def test_all_is_joined_with_trailing_comma(mr_sim):
    sim = mr_sim
    data = {
        "format": "1",
        "ks": _ks(sim),
        "1:service": "media",
        "1:action": "list",
        "1:pager:pageSize": "3",
        "2:service": "baseEntry",
        "2:action": "get",
        "2:entryId": "{1:result:objects:_all:id}",
    }
    listing, err = await _multi(sim, data)
    joined = "".join(o["id"] + "," for o in listing["objects"])
    assert err["code"] == "ENTRY_ID_NOT_FOUND"
    assert err["args"]["ENTRY_ID"] == joined


async def test_numbering_from_zero_json_and_stops_at_gap(mr_sim):
    sim = mr_sim
    ks = _ks(sim)
    body = {
        "format": "1",
        "ks": ks,
        "0": {"service": "system", "action": "ping"},
        "1": {"service": "media", "action": "list", "pager": {"pageSize": "1"}},
        "3": {"service": "system", "action": "ping"},
    }
    results = await _multi(sim, json_body=body)
    assert len(results) == 2
    assert results[0] is True
    assert len(results[1]["objects"]) == 1


async def test_per_item_errors_and_own_ks(mr_sim):
    sim = mr_sim
    spec = sim.partner.spec
    data = {
        "format": "1",
        "1:service": "session",
        "1:action": "start",
        "1:secret": spec.admin_secret,
        "1:partnerId": str(spec.partner_id),
        "1:type": "2",
        "2:service": "media",
        "2:action": "list",
        "2:ks": "{1:result}",
        "2:pager:pageSize": "2",
        "3:service": "media",
        "3:action": "list",  # no ks anywhere
        "4:service": "baseEntry",
        "4:action": "get",
        "4:ks": "{1:result}",
        "4:entryId": "0_nosuch1",
        "5:service": "system",
        "5:action": "ping",
        "5:ks": "{1:result}",
    }
    ks, listing, no_ks, not_found, ping = await _multi(sim, data)
    assert isinstance(ks, str) and ks.startswith("djJ8")
    assert len(listing["objects"]) == 2
    assert no_ks["code"] == "MISSING_KS"
    assert not_found["code"] == "ENTRY_ID_NOT_FOUND"
    assert ping is True


async def test_each_item_is_rate_limited():
    with run_simulator(PartnerSpec(entries=30, burst=3)) as sim:
        sim.knobs.rate_limits = {"system.ping": (3, 60.0)}
        data = {"format": "1", "ks": _ks(sim)}
        for i in range(1, 6):
            data[f"{i}:service"] = "system"
            data[f"{i}:action"] = "ping"
        results = await _multi(sim, data)
        assert results[:3] == [True, True, True]
        assert [r["code"] for r in results[3:]] == ["ACTION_BLOCKED", "ACTION_BLOCKED"]
        assert results[3]["args"] == {"ACTION_NAME": "ping", "SERVICE_NAME": "system"}
        assert sim.stats.calls["system.ping"] == 5
        assert sim.stats.api_requests == 1


async def test_xml_multirequest_items(mr_sim):
    import xml.etree.ElementTree as ET

    sim = mr_sim
    data = {
        "ks": _ks(sim),
        "1:service": "system",
        "1:action": "ping",
        "2:service": "baseEntry",
        "2:action": "get",
        "2:entryId": "0_nosuch2",
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim.url}/api_v3/service/multirequest", data=data) as r,
    ):
        root = ET.fromstring(await r.read())
    items = root.findall("result/item")
    assert len(items) == 2
    assert items[0].text == "1"
    assert items[1].findtext("error/code") == "ENTRY_ID_NOT_FOUND"

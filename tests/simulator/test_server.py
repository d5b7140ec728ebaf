"""The simulator's wire format over real HTTP: routes, bodies, formats, errors, mutation log."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import aiohttp
import pytest

from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import RunningSimulator, run_simulator


async def start_admin(http: aiohttp.ClientSession, sim: RunningSimulator, **extra: str) -> str:
    spec = sim.partner.spec
    data = {
        "format": "1",
        "secret": spec.admin_secret,
        "partnerId": str(spec.partner_id),
        "type": "2",
        "privileges": "disableentitlement",
        **extra,
    }
    async with http.post(f"{sim.url}/api_v3/service/session/action/start", data=data) as r:
        assert r.status == 200
        ks = json.loads(await r.text())
    assert isinstance(ks, str) and ks
    return ks


async def api(
    http: aiohttp.ClientSession, sim: RunningSimulator, service: str, action: str, **params: str
) -> Any:
    params.setdefault("format", "1")
    url = f"{sim.url}/api_v3/service/{service}/action/{action}"
    async with http.post(url, data=params) as r:
        assert r.status == 200
        return json.loads(await r.text())


@pytest.fixture(scope="module")
def shared_sim(sim_partner_session):
    with run_simulator(sim_partner_session) as sim:
        yield sim


async def test_routes_are_equivalent_and_case_insensitive(shared_sim):
    sim = shared_sim
    async with aiohttp.ClientSession() as http:
        ks = await start_admin(http, sim)
        body = {"ks": ks, "format": "1", "pager:pageSize": "3"}
        urls = [
            "/api_v3/service/media/action/list",
            "/api_v3/index.php/service/media/action/list",
            "/api_v3/index.php?service=media&action=list",
            "/api_v3/service/MEDIA/action/LiSt",
            "/api_v3/service/baseEntry/action/list/pager:pageSize/3",
        ]
        answers = []
        for path in urls:
            async with http.post(sim.url + path, data=body) as r:
                answers.append(json.loads(await r.text()))
        ids = [[o["id"] for o in a["objects"]] for a in answers]
        assert len(ids[0]) == 3
        assert ids[0] == ids[1] == ids[2] == ids[3]
        assert answers[4]["objectType"] == "KalturaBaseEntryListResponse"
        assert answers[0]["objectType"] == "KalturaMediaListResponse"
        # GET with everything in the query string works too.
        async with http.get(
            sim.url + "/api_v3/service/media/action/list",
            params={"ks": ks, "format": "1", "pager:pageSize": "2"},
        ) as r:
            assert len(json.loads(await r.text())["objects"]) == 2


async def test_path_beats_query_beats_body(shared_sim):
    sim = shared_sim
    async with aiohttp.ClientSession() as http:
        ks = await start_admin(http, sim)
        url = sim.url + "/api_v3/service/media/action/list/pager:pageSize/4?pager:pageSize=5"
        async with http.post(url, data={"ks": ks, "format": "1", "pager:pageSize": "6"}) as r:
            assert len(json.loads(await r.text())["objects"]) == 4
        url = sim.url + "/api_v3/service/media/action/list?pager:pageSize=5"
        async with http.post(url, data={"ks": ks, "format": "1", "pager:pageSize": "6"}) as r:
            assert len(json.loads(await r.text())["objects"]) == 5


async def test_json_body_only_with_exact_content_type(shared_sim):
    sim = shared_sim
    async with aiohttp.ClientSession() as http:
        ks = await start_admin(http, sim)
        url = sim.url + "/api_v3/service/media/action/list"
        payload = json.dumps({"ks": ks, "format": 1, "pager": {"pageSize": 2}})
        async with http.post(url, data=payload, headers={"Content-Type": "APPLICATION/JSON"}) as r:
            assert len(json.loads(await r.text())["objects"]) == 2
        # "; charset=utf-8" makes it not JSON: no params at all -> XML (default) MISSING_KS.
        headers = {"Content-Type": "application/json; charset=utf-8"}
        async with http.post(url, data=payload, headers=headers) as r:
            root = ET.fromstring(await r.read())
            assert root.findtext("result/error/code") == "MISSING_KS"
        # A multipart form with a `json` field (what the official client sends with files).
        form = aiohttp.FormData()
        form.add_field("json", json.dumps({"ks": ks, "format": "1", "pager": {"pageSize": "3"}}))
        form.add_field("fileData", b"\x00\x01", filename="x.bin")
        async with http.post(url, data=form) as r:
            assert len(json.loads(await r.text())["objects"]) == 3


async def test_xml_is_default_and_shaped_for_the_official_parser(shared_sim):
    sim = shared_sim
    async with aiohttp.ClientSession() as http:
        ks = await start_admin(http, sim)
        url = sim.url + "/api_v3/service/media/action/list"
        async with http.post(url, data={"ks": ks, "pager:pageSize": "2"}) as r:
            raw = await r.read()
            assert r.content_type == "text/xml"
        assert raw.startswith(b'<?xml version="1.0" encoding="utf-8"?><xml><result>')
        root = ET.fromstring(raw)
        assert root.tag == "xml"
        assert root.find("executionTime") is not None
        items = root.findall("result/objects/item")
        assert len(items) == 2
        assert all(item.findtext("objectType") for item in items)
        assert root.findtext("result/objectType") == "KalturaMediaListResponse"
        assert int(root.findtext("result/totalCount")) > 2
        # format=2 is the same as absent.
        async with http.post(url, data={"ks": ks, "format": "2", "pager:pageSize": "2"}) as r:
            assert ET.fromstring(await r.read()).findall("result/objects/item")


async def test_null_fields_omitted_and_objecttype_everywhere(shared_sim):
    sim = shared_sim
    async with aiohttp.ClientSession() as http:
        ks = await start_admin(http, sim)
        listing = await api(http, sim, "baseEntry", "list", ks=ks, **{"pager:pageSize": "100"})
    for obj in listing["objects"]:
        assert "objectType" in obj
        assert None not in obj.values()
    # Some entries were never played: their lastPlayedAt is left out, not null.
    assert any("lastPlayedAt" not in o for o in listing["objects"])


async def test_error_shapes_json_and_xml(shared_sim):
    sim = shared_sim
    async with aiohttp.ClientSession() as http:
        ks = await start_admin(http, sim)
        err = await api(http, sim, "baseEntry", "get", ks=ks, entryId="0_nosuch00")
        assert err == {
            "code": "ENTRY_ID_NOT_FOUND",
            "message": 'Entry id "0_nosuch00" not found',
            "objectType": "KalturaAPIException",
            "args": {"ENTRY_ID": "0_nosuch00"},
        }
        no_args = await api(http, sim, "media", "list")
        assert no_args["code"] == "MISSING_KS" and no_args["args"] == []
        url = sim.url + "/api_v3/service/baseEntry/action/get"
        async with http.post(url, data={"ks": ks, "entryId": "0_nosuch00"}) as r:
            assert r.status == 200
            root = ET.fromstring(await r.read())
        assert root.findtext("result/error/code") == "ENTRY_ID_NOT_FOUND"
        assert root.findtext("result/error/message") == 'Entry id "0_nosuch00" not found'
        assert root.findtext("result/error/args/item/name") == "ENTRY_ID"
        assert (await api(http, sim, "nosuch", "list", ks=ks))["code"] == "SERVICE_DOES_NOT_EXISTS"
        assert (await api(http, sim, "media", "nosuch", ks=ks))["code"] == "ACTION_DOES_NOT_EXISTS"


async def test_session_start_secrets_and_types(shared_sim):
    sim = shared_sim
    spec = sim.partner.spec
    pid = str(spec.partner_id)
    async with aiohttp.ClientSession() as http:
        user_ks = await api(
            http, sim, "session", "start", secret=spec.user_secret, partnerId=pid, type="0"
        )
        assert isinstance(user_ks, str)
        bad = await api(
            http, sim, "session", "start", secret=spec.user_secret, partnerId=pid, type="2"
        )
        assert bad["code"] == "START_SESSION_ERROR" and bad["args"] == {"PID": pid}
        wrong = await api(http, sim, "session", "start", secret="nope", partnerId=pid, type="2")
        assert wrong["code"] == "START_SESSION_ERROR"
        other = await api(
            http, sim, "session", "start", secret=spec.admin_secret, partnerId="999", type="2"
        )
        assert other["code"] == "START_SESSION_ERROR"
        # JSON string result in format=1; plain text result in XML.
        url = sim.url + "/api_v3/service/session/action/start"
        form = {"secret": spec.admin_secret, "partnerId": pid, "type": "2"}
        async with http.post(url, data=form) as r:
            root = ET.fromstring(await r.read())
        assert root.findtext("result").startswith("djJ8")


async def test_void_actions_and_mutation_log():
    async with aiohttp.ClientSession() as http:
        with run_simulator(PartnerSpec(entries=60, seed=3, burst=5)) as sim:
            ks = await start_admin(http, sim)
            page = await api(http, sim, "media", "list", ks=ks, **{"filter:typeIn": "1"})
            entry_id = page["objects"][0]["id"]
            assert await api(http, sim, "baseEntry", "delete", ks=ks, entryId=entry_id) is None
            again = await api(http, sim, "baseEntry", "delete", ks=ks, entryId=entry_id)
            assert again["code"] == "ENTRY_ID_NOT_FOUND"
            url = sim.url + "/api_v3/service/media/action/delete"
            async with http.post(url, data={"ks": ks, "entryId": entry_id}) as r:
                root = ET.fromstring(await r.read())  # XML void/err still parse
            assert root.find("result") is not None
            log = [(m["service"], m["action"], m["id"], m["outcome"]) for m in sim.mutations]
            assert log == [
                ("baseentry", "delete", entry_id, "ok"),
                ("baseentry", "delete", entry_id, "ENTRY_ID_NOT_FOUND"),
                ("media", "delete", entry_id, "ENTRY_ID_NOT_FOUND"),
            ]
            assert all(isinstance(m["time"], float) for m in sim.mutations)
            assert sim.stats.calls["baseentry.delete"] == 2
            assert sim.stats.calls["session.start"] == 1


async def test_flavor_delete_and_get_url_not_ready():
    async with aiohttp.ClientSession() as http:
        with run_simulator(PartnerSpec(entries=60, seed=4, burst=5)) as sim:
            ks = await start_admin(http, sim)
            page = await api(http, sim, "media", "list", ks=ks, **{"pager:pageSize": "60"})
            ids = ",".join(o["id"] for o in page["objects"])
            flavors = await api(
                http,
                sim,
                "flavorAsset",
                "list",
                ks=ks,
                **{"filter:entryIdIn": ids, "pager:pageSize": "500"},
            )
            assert flavors["objectType"] == "KalturaFlavorAssetListResponse"
            ready = [f for f in flavors["objects"] if f.get("status") == 2]
            not_ready = [f for f in flavors["objects"] if f.get("status") not in (2, 9)]
            url = await api(http, sim, "flavorAsset", "getUrl", ks=ks, id=ready[0]["id"])
            assert url.startswith(f"{sim.url}/p/{sim.partner.spec.partner_id}/sp/")
            assert f"/flavorId/{ready[0]['id']}/" in url
            if not_ready:
                err = await api(http, sim, "flavorAsset", "getUrl", ks=ks, id=not_ready[0]["id"])
                assert err["code"] == "FLAVOR_ASSET_IS_NOT_READY"
            victim = ready[0]["id"]
            assert await api(http, sim, "flavorAsset", "delete", ks=ks, id=victim) is None
            again = await api(http, sim, "flavorAsset", "delete", ks=ks, id=victim)
            assert again["code"] == "FLAVOR_ASSET_ID_NOT_FOUND"
            assert [m["outcome"] for m in sim.mutations] == ["ok", "FLAVOR_ASSET_ID_NOT_FOUND"]
            missing = await api(http, sim, "flavorAsset", "list", ks=ks)
            assert missing["code"] == "PROPERTY_VALIDATION_CANNOT_BE_NULL"


async def test_ten_thousand_cap_passes_through(shared_sim):
    sim = shared_sim
    async with aiohttp.ClientSession() as http:
        ks = await start_admin(http, sim)
        err = await api(
            http, sim, "media", "list", ks=ks, **{"pager:pageSize": "500", "pager:pageIndex": "21"}
        )
        assert err["code"] == "QUERY_EXCEEDED_MAX_MATCHES_ALLOWED"
        assert err["args"] == []


async def test_stats_count_requests(shared_sim):
    sim = shared_sim
    before = sim.stats.requests
    async with aiohttp.ClientSession() as http:
        ks = await start_admin(http, sim)
        await api(http, sim, "system", "ping", ks=ks)
    assert sim.stats.requests == before + 2
    assert sim.stats.calls["system.ping"] >= 1

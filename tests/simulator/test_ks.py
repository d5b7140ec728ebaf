"""KS v1/v2, expiry quirk, forged sessions, app tokens, widget sessions, entitlement."""

from __future__ import annotations

import hashlib
import json
import os
import time

import aiohttp
import pytest

from kretain.simulator import ks as ksmod
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator

SECRET = "sim-admin-secret-0123456789abcdef"


@pytest.mark.parametrize("size", [16, 48, 176])
def test_aes_matches_pycryptodome(size):
    aes = pytest.importorskip("Crypto.Cipher.AES")
    key, data = os.urandom(16), os.urandom(size)
    expected = aes.new(key, aes.MODE_CBC, b"\0" * 16).encrypt(data)
    assert ksmod.aes128_cbc_encrypt(key, b"\0" * 16, data) == expected
    assert ksmod.aes128_cbc_decrypt(key, b"\0" * 16, expected) == data


def test_official_client_sessions_parse():
    client = pytest.importorskip("KalturaClient.Client").KalturaClient
    v2 = client.generateSessionV2(SECRET, "alice", 2, 42, 600, "disableentitlement,*").decode()
    info = ksmod.parse_ks(v2, 42, [SECRET])
    assert (info.version, info.session_type, info.user_id) == (2, 2, "alice")
    assert info.privileges == {"disableentitlement": "", "all": "*"}
    assert abs(info.expiry - (time.time() + 600)) < 5
    v1 = client.generateSession(SECRET, "bob", 0, 42, 600, "list:*").decode()
    info1 = ksmod.parse_ks(v1, 42, [SECRET])
    assert (info1.version, info1.user_id, info1.privileges) == (1, "bob", {"list": "*"})


def test_own_signature_round_trip_and_rejections():
    ks = ksmod.sign_ks_v2(SECRET, 42, "u@x", 0, int(time.time()) + 60, "a:b,c")
    info = ksmod.parse_ks(ks, 42, [SECRET])
    assert info.privileges == {"a": "b", "c": ""} and info.user_id == "u@x"
    for bad in (
        lambda: ksmod.parse_ks(ks, 42, ["other-secret"]),
        lambda: ksmod.parse_ks(ks, 43, [SECRET]),
        lambda: ksmod.parse_ks("not a ks at all", 42, [SECRET]),
        lambda: ksmod.parse_ks(ks[:-8] + "AAAAAAA=", 42, [SECRET]),
    ):
        with pytest.raises(ksmod.KsError):
            bad()
    expired = ksmod.sign_ks_v2(SECRET, 42, "", 2, int(time.time()) - 1)
    with pytest.raises(ksmod.KsError) as exc:
        ksmod.check_expiry(ksmod.parse_ks(expired, 42, [SECRET]))
    assert exc.value.reason == "EXPIRED"


async def _api(http, sim, service, action, **params):
    params.setdefault("format", "1")
    url = f"{sim.url}/api_v3/service/{service}/action/{action}"
    async with http.post(url, data=params) as r:
        return json.loads(await r.text())


@pytest.fixture(scope="module")
def ks_sim(sim_partner_session):
    with run_simulator(sim_partner_session) as sim:
        yield sim


async def test_expired_forged_missing_and_v1(ks_sim):
    sim = ks_sim
    spec = sim.partner.spec
    pid = spec.partner_id
    async with aiohttp.ClientSession() as http:
        expired = ksmod.sign_ks_v2(spec.admin_secret, pid, "", 2, int(time.time()) - 5)
        err = await _api(http, sim, "media", "list", ks=expired)
        assert err["code"] == "INVALID_KS"
        assert err["message"] == 'Invalid KS "EXPIRED", Error "-1,INVALID_STR"'
        assert err["args"] == {"KSID": "EXPIRED", "ERR_CODE": "-1", "ERR_DESC": "INVALID_STR"}
        forged = ksmod.sign_ks_v2("guessed-secret", pid, "", 2, int(time.time()) + 600)
        err = await _api(http, sim, "media", "list", ks=forged)
        assert err["code"] == "INVALID_KS" and err["args"]["KSID"] == forged
        err = await _api(http, sim, "media", "list", ks="garbage!!")
        assert err["message"] == 'Invalid KS "garbage!!", Error "-1,INVALID_STR"'
        assert (await _api(http, sim, "media", "list"))["code"] == "MISSING_KS"
        v1 = ksmod.sign_ks_v1(spec.admin_secret, pid, "", 2, int(time.time()) + 600)
        assert "objects" in await _api(http, sim, "media", "list", ks=v1)


async def test_ks_lifetime_knob_and_session_end():
    async with aiohttp.ClientSession() as http:
        with run_simulator(PartnerSpec(entries=30, burst=3)) as sim:
            spec = sim.partner.spec
            sim.knobs.ks_lifetime = 1
            ks = await _api(
                http,
                sim,
                "session",
                "start",
                secret=spec.admin_secret,
                partnerId=str(spec.partner_id),
                type="2",
                expiry="3600",
            )
            info = ksmod.parse_ks(ks, spec.partner_id, [spec.admin_secret])
            assert info.expiry <= time.time() + 1
            sim.knobs.ks_lifetime = None
            ks2 = await _api(
                http,
                sim,
                "session",
                "start",
                secret=spec.admin_secret,
                partnerId=str(spec.partner_id),
                type="2",
            )
            assert "objects" in await _api(http, sim, "media", "list", ks=ks2)
            assert await _api(http, sim, "session", "end", ks=ks2) is None
            err = await _api(http, sim, "media", "list", ks=ks2)
            assert err["args"]["KSID"] == "LOGOUT"


async def _widget_ks(http, sim):
    pid = sim.partner.spec.partner_id
    resp = await _api(http, sim, "session", "startWidgetSession", widgetId=f"_{pid}")
    assert resp["objectType"] == "KalturaStartWidgetSessionResponse"
    assert resp["partnerId"] == pid
    return resp["ks"]


async def test_app_token_flow(ks_sim):
    sim = ks_sim
    spec = sim.partner.spec
    token_id, token, hash_type, _, _, _ = spec.app_tokens[0]
    async with aiohttp.ClientSession() as http:
        widget = await _widget_ks(http, sim)
        info = ksmod.parse_ks(widget, spec.partner_id, [spec.admin_secret])
        assert info.privileges == {"view": "*", "widget": "1"} and info.session_type == 0
        # A widget session may not list.
        forbidden = await _api(http, sim, "media", "list", ks=widget)
        assert forbidden["code"] == "SERVICE_FORBIDDEN"
        digest = hashlib.new(hash_type.lower(), (widget + token).encode()).hexdigest()
        session = await _api(
            http,
            sim,
            "appToken",
            "startSession",
            ks=widget,
            id=token_id,
            tokenHash=digest,
            type="0",
            sessionPrivileges="privacycontext:x,foo:bar",
        )
        assert session["objectType"] == "KalturaSessionInfo"
        assert session["sessionType"] == 2  # the token's type overrides the request
        granted = ksmod.parse_ks(session["ks"], spec.partner_id, [spec.admin_secret])
        assert "disableentitlement" in granted.privileges  # on the token
        assert "privacycontext" not in granted.privileges  # server privilege, not on token
        assert granted.privileges.get("foo") == "bar"
        assert "objects" in await _api(http, sim, "media", "list", ks=session["ks"])

        bad = await _api(
            http, sim, "appToken", "startSession", ks=widget, id=token_id, tokenHash="00" * 32
        )
        assert bad["code"] == "INVALID_APP_TOKEN_HASH"
        # The hash must be over the exact KS sent with the request.
        other_widget = await _widget_ks(http, sim)
        stale = await _api(
            http, sim, "appToken", "startSession", ks=other_widget, id=token_id, tokenHash=digest
        )
        assert stale["code"] == "INVALID_APP_TOKEN_HASH"
        missing = await _api(
            http, sim, "appToken", "startSession", ks=widget, id="0_nosuch", tokenHash=digest
        )
        assert missing["code"] == "APP_TOKEN_ID_NOT_FOUND"


async def test_inactive_app_token_and_default_sha1():
    tokens = (
        ("0_off", "t-off", "SHA256", 2, "disableentitlement", 1),
        ("0_sha1", "t-sha1", "", None, None, 2),
    )
    async with aiohttp.ClientSession() as http:
        with run_simulator(PartnerSpec(entries=20, burst=2, app_tokens=tokens)) as sim:
            widget = await _widget_ks(http, sim)
            digest = hashlib.sha256((widget + "t-off").encode()).hexdigest()
            err = await _api(
                http, sim, "appToken", "startSession", ks=widget, id="0_off", tokenHash=digest
            )
            assert err["code"] == "APP_TOKEN_NOT_ACTIVE"
            digest = hashlib.sha1((widget + "t-sha1").encode()).hexdigest()
            ok = await _api(
                http,
                sim,
                "appToken",
                "startSession",
                ks=widget,
                id="0_sha1",
                tokenHash=digest,
                sessionPrivileges="disableentitlement",
            )
            assert ok["sessionType"] == 0  # no type on token nor request: USER
            info = ksmod.parse_ks(ok["ks"], sim.partner.spec.partner_id, [SECRET])
            assert "disableentitlement" not in info.privileges


async def test_entitlement_follows_disableentitlement(ks_sim):
    sim = ks_sim
    spec = sim.partner.spec
    pid = spec.partner_id
    exp = int(time.time()) + 600
    plain = ksmod.sign_ks_v2(spec.admin_secret, pid, "", 2, exp)
    entitled = ksmod.sign_ks_v2(spec.admin_secret, pid, "", 2, exp, "disableentitlement")
    async with aiohttp.ClientSession() as http:
        a = await _api(http, sim, "baseEntry", "list", ks=plain)
        b = await _api(http, sim, "baseEntry", "list", ks=entitled)
    assert b["totalCount"] > a["totalCount"]
    truth = sim.partner.list_entries(
        {}, {}, service="baseentry", entitled=True, now=int(time.time())
    )[1]
    assert b["totalCount"] == truth

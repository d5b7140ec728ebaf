"""Sessions against the simulator over real HTTP: admin secret, app token, renewal."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from clienthelpers import config as admin_config

from kretain.kaltura import AuthenticationError, ClientConfig, KalturaClient


def token_config(sim, **overrides) -> ClientConfig:
    spec = sim.partner.spec
    token_id, token, hash_type, *_ = spec.app_tokens[0]
    base = ClientConfig(
        service_url=sim.url,
        partner_id=spec.partner_id,
        app_token_id=token_id,
        app_token=token,
        app_token_hash_type=hash_type,
        timeout=10.0,
        backoff_base=0.01,
    )
    return dataclasses.replace(base, **overrides)


async def test_admin_session_start_and_call(simulator) -> None:
    async with KalturaClient(admin_config(simulator)) as client:
        page = await client.list_entries({}, 1, 5)
        ks = await client.ks()
    assert len(page.objects) == 5 and page.total_count > 5
    assert ks.startswith("djJ8")  # base64 of "v2|"
    assert simulator.stats.calls["session.start"] == 1
    assert simulator.stats.calls["media.list"] == 1
    assert client.stats.requests == 2 and client.stats.retries == 0


async def test_wrong_secret_is_authentication_error_without_the_secret(simulator) -> None:
    wrong = "not-the-secret-7f3a9c"
    async with KalturaClient(admin_config(simulator, admin_secret=wrong)) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.list_entries({}, 1, 5)
    err = info.value
    assert err.code == "START_SESSION_ERROR"
    assert str(simulator.partner.spec.partner_id) in str(err)
    assert "wrong admin secret" in str(err)
    for text in (str(err), repr(err), err.message, str(err.__cause__)):
        assert wrong not in text
    assert simulator.stats.calls["session.start"] == 1  # not retried
    assert simulator.stats.calls["media.list"] == 0


async def test_app_token_session(simulator) -> None:
    async with KalturaClient(token_config(simulator)) as client:
        page = await client.list_entries({}, 1, 3)
    assert len(page.objects) == 3
    assert simulator.stats.calls["session.startwidgetsession"] == 1
    assert simulator.stats.calls["apptoken.startsession"] == 1
    assert simulator.stats.calls["session.start"] == 0


async def test_app_token_wrong_token_or_hash_type(simulator) -> None:
    async with KalturaClient(token_config(simulator, app_token="wrong-token-value")) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.ks()
    assert info.value.code == "INVALID_APP_TOKEN_HASH"
    assert "wrong-token-value" not in str(info.value)
    async with KalturaClient(token_config(simulator, app_token_hash_type="SHA1")) as client:
        with pytest.raises(AuthenticationError, match="app_token_hash_type"):
            await client.ks()
    async with KalturaClient(token_config(simulator, app_token_id="0_nosuchtk")) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.ks()
    assert info.value.code == "APP_TOKEN_ID_NOT_FOUND"


async def test_renewal_on_invalid_ks_is_shared_by_concurrent_callers(simulator) -> None:
    simulator.knobs.ks_lifetime = 2  # the server caps every KS at 1-2 s (whole seconds)
    async with KalturaClient(admin_config(simulator)) as client:
        first = await client.ks()
        await asyncio.sleep(2.1)
        pages = await asyncio.gather(*(client.list_entries({}, 1, 2) for _ in range(6)))
        second = await client.ks()
        stats = client.stats
    assert all(len(p.objects) == 2 for p in pages)
    assert second != first
    assert simulator.stats.calls["session.start"] == 2  # one renewal for six callers
    assert stats.session_renewals == 1
    assert stats.retries_by_code["INVALID_KS"] == 6


async def test_learns_a_shorter_server_lifetime(simulator) -> None:
    """After an EXPIRED KS, later sessions are renewed ahead of the observed lifetime."""
    simulator.knobs.ks_lifetime = 2
    async with KalturaClient(admin_config(simulator)) as client:
        await client.list_entries({}, 1, 1)
        await asyncio.sleep(2.2)
        await client.list_entries({}, 1, 1)  # INVALID_KS -> renew; lifetime learned <= 2.2 s
        assert client.stats.retries_by_code["INVALID_KS"] == 1
        await asyncio.sleep(1.9)  # past 80% of the learned lifetime: renewed before calling
        await client.list_entries({}, 1, 1)
        assert client.stats.retries_by_code["INVALID_KS"] == 1
    assert simulator.stats.calls["session.start"] == 3


async def test_wrong_credentials_fail_fast_for_concurrent_callers(simulator) -> None:
    cfg = admin_config(simulator, admin_secret="wrong-secret-value-123")
    async with KalturaClient(cfg) as client:
        results = await asyncio.gather(
            *(client.list_entries({}, 1, 1) for _ in range(5)), return_exceptions=True
        )
    assert all(isinstance(r, AuthenticationError) for r in results)
    assert simulator.stats.calls["session.start"] == 1

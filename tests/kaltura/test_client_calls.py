"""Typed helpers and multirequest against the simulator over real HTTP."""

from __future__ import annotations

import asyncio

import pytest
from clienthelpers import config

from kretain import rules
from kretain.kaltura import (
    AuthenticationError,
    KalturaClient,
    ListCapExceeded,
    NotFound,
    raise_for_items,
)

MISSING = "0_zzzzzzzz"


async def test_list_entries_assets_urls(simulator) -> None:
    async with KalturaClient(config(simulator)) as client:
        page = await client.list_entries(
            {"orderBy": "+createdAt", "typeIn": "1"}, page_index=1, page_size=20
        )
        assert len(page.objects) == 20 and page.total_count >= 20
        created = [e["createdAt"] for e in page.objects]
        assert created == sorted(created)
        ids = [e["id"] for e in page.objects]
        flavors = await client.list_assets("flavor", ids, 1)
        assert flavors.objects and {f["entryId"] for f in flavors.objects} <= set(ids)
        assert all(f["objectType"].endswith("FlavorAsset") for f in flavors.objects)
        ready = next(f for f in flavors.objects if f.get("status") == 2)
        url = await client.get_asset_url("flavor", ready["id"])
        assert url.startswith(simulator.url)
        async with client.http.get(url) as response:
            assert response.status == 200
        for kind in ("caption", "attachment", "thumb"):
            assets = await client.list_assets(kind, ids, 1)
            assert assets.total_count == len(assets.objects)
        second = await client.list_entries({"orderBy": "+createdAt", "typeIn": "1"}, 2, 20)
        assert not {e["id"] for e in second.objects} & set(ids)


async def test_get_entry_and_not_found_is_not_retried(simulator) -> None:
    async with KalturaClient(config(simulator)) as client:
        first = (await client.list_entries({}, 1, 1)).objects[0]
        entry = await client.get_entry(first["id"])
        assert entry["id"] == first["id"]
        with pytest.raises(NotFound) as info:
            await client.get_entry(MISSING)
        assert info.value.code == "ENTRY_ID_NOT_FOUND"
        assert client.stats.retries == 0
    assert simulator.stats.calls["baseentry.get"] == 2


async def test_get_entries_batches_and_sees_non_ready(simulator) -> None:
    async with KalturaClient(config(simulator)) as client:
        all_ids: list[str] = []
        # statusIn lifts the READY-only default, so non-ready entries are listed too.
        for index in (1, 2):
            page = await client.list_entries(
                {"statusIn": "-2,-1,0,1,2,4,5,6,7", "orderBy": "+createdAt"},
                index,
                150,
                service="baseentry",
            )
            all_ids += [e["id"] for e in page.objects]
        before = simulator.stats.calls["baseentry.list"]
        asked = [*all_ids[:299], MISSING, all_ids[0]]  # 300 distinct ids, one duplicate
        found = await client.get_entries(asked)
    assert set(found) == set(all_ids[:299])  # the missing one is absent
    assert simulator.stats.calls["baseentry.list"] - before == 2  # 150 per call
    statuses = {e.get("status") for e in found.values()}
    assert len(statuses) > 1, "the partner should have non-READY entries"


async def test_list_cap_exceeded(simulator) -> None:
    async with KalturaClient(config(simulator)) as client:
        with pytest.raises(ListCapExceeded):
            await client.list_entries({}, page_index=21, page_size=500)
        assert client.stats.retries == 0


async def test_deletes_and_recycle(simulator) -> None:
    async with KalturaClient(config(simulator)) as client:
        entries = (await client.list_entries({"typeIn": "1"}, 1, 3)).objects
        doomed, recycled, trimmed = (e["id"] for e in entries)
        await client.delete_entry(doomed)
        with pytest.raises(NotFound):
            await client.delete_entry(doomed)  # already gone: permanent, not retried
        result = await client.recycle_entry(recycled)
        assert result["id"] == recycled
        flavors = (await client.list_assets("flavor", [trimmed], 1)).objects
        parsed = [rules.parse_asset("flavor", f) for f in flavors]
        source = rules.find_source(parsed).index
        victim = next(f for i, f in enumerate(flavors) if i != source)
        await client.delete_flavor(victim["id"])
        left = (await client.list_assets("flavor", [trimmed], 1)).objects
        assert victim["id"] not in {f["id"] for f in left}
    outcomes = [(m["action"], m["id"], m["outcome"]) for m in simulator.mutations]
    assert outcomes == [
        ("delete", doomed, "ok"),
        ("delete", doomed, "ENTRY_ID_NOT_FOUND"),
        ("recycle", recycled, "ok"),
        ("delete", victim["id"], "ok"),
    ]


async def test_multirequest_per_item_errors(simulator) -> None:
    async with KalturaClient(config(simulator)) as client:
        first = (await client.list_entries({}, 1, 1)).objects[0]
        before = simulator.stats.api_requests
        results = await client.multirequest(
            [
                ("baseentry", "get", {"entryId": first["id"]}),
                ("baseentry", "get", {"entryId": MISSING}),
                ("flavorasset", "list", {"filter": {"entryIdEqual": first["id"]}}),
            ]
        )
        assert simulator.stats.api_requests - before == 1
        assert results[0]["id"] == first["id"]
        assert isinstance(results[1], NotFound) and results[1].api_args == {"ENTRY_ID": MISSING}
        assert isinstance(results[2]["objects"], list)
        with pytest.raises(NotFound):
            raise_for_items(results)
        assert raise_for_items(results[:1]) == results[:1]
        assert await client.multirequest([]) == []


async def test_multirequest_items_with_expired_ks_are_resent_once(simulator) -> None:
    simulator.knobs.ks_lifetime = 2
    async with KalturaClient(config(simulator)) as client:
        ids = [e["id"] for e in (await client.list_entries({}, 1, 3)).objects]
        await asyncio.sleep(2.1)
        results = await client.multirequest([("baseentry", "get", {"entryId": i}) for i in ids])
    assert [r["id"] for r in raise_for_items(results)] == ids
    assert simulator.stats.calls["session.start"] == 2
    assert simulator.stats.calls["baseentry.get"] == 6  # 3 rejected, 3 re-sent


async def test_session_errors_inside_multirequest_are_returned(simulator) -> None:
    async with KalturaClient(config(simulator)) as client:
        await client.ks()
        simulator.knobs.fail_next("baseentry.get", "INVALID_KS", 2, "LOGOUT", "-1", "INVALID_STR")
        results = await client.multirequest([("baseentry", "get", {"entryId": MISSING})])
    # renewed once and re-sent once; the second INVALID_KS is handed back
    assert isinstance(results[0], AuthenticationError)
    assert simulator.stats.calls["session.start"] == 2

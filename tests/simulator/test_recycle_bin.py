"""The recycle bin (retention, purge, children) and delete cascades, over HTTP."""

from __future__ import annotations

import time

import pytest
from simapi import Api

from kretain.simulator.partner import Partner, PartnerSpec

DAY = 86_400
T0 = PartnerSpec().now + 5 * DAY


def _parent_with_kids(partner: Partner) -> tuple[str, list[str]]:
    parent = partner.sql(
        "SELECT parent_entry_id FROM entries WHERE parent_entry_id IS NOT NULL"
        " GROUP BY parent_entry_id HAVING COUNT(*) >= 2 LIMIT 1"
    )[0][0]
    kids = [
        r[0] for r in partner.sql("SELECT id FROM entries WHERE parent_entry_id = ?", (parent,))
    ]
    return parent, kids


async def test_retention_purges_and_restore_then_fails(api: Api, simulator) -> None:
    sim = simulator
    sim.knobs.now = T0
    parent, kids = _parent_with_kids(sim.partner)
    keep = sim.partner.sql(
        "SELECT id FROM entries WHERE status = 2 AND parent_entry_id IS NULL"
        " AND display_in_search = 1 AND type = '1' AND id != ? LIMIT 1",
        (parent,),
    )[0][0]
    recycled = await api("baseEntry", "recycle", entryId=parent)
    assert recycled["displayInSearch"] == -2 and recycled["recycledAt"] == T0
    await api("baseEntry", "recycle", entryId=keep)
    # Recycling leaves the children alone (recycleAction saves the entry only).
    for kid in kids:
        got = await api("baseEntry", "get", entryId=kid)
        assert got["displayInSearch"] == -1 and got["status"] == 2
    # Hidden from default lists, listed with displayInSearchEqual=-2.
    window = {"createdAtGreaterThanOrEqual": str(recycled["createdAt"]), "orderBy": "+createdAt"}
    listed = await api("baseEntry", "list", filter=window, pager={"pageSize": "5"})
    assert parent not in [o["id"] for o in listed["objects"]]
    bin_ = await api("baseEntry", "list", filter={"displayInSearchEqual": "-2"})
    assert {o["id"] for o in bin_["objects"]} == {parent, keep}

    # 30 days later, minus a second: still in the bin. Restore one.
    sim.knobs.now = T0 + 30 * DAY - 1
    assert (await api("baseEntry", "get", entryId=parent))["status"] == 2
    restored = await api("baseEntry", "restoreRecycled", entryId=keep)
    assert restored["displayInSearch"] == 1 and "recycledAt" not in restored

    # 30 days: the bin empties the entry and its children, as baseEntry.delete would.
    sim.knobs.now = T0 + 30 * DAY
    assert await api.error("baseEntry", "get", entryId=parent) == "ENTRY_ID_NOT_FOUND"
    for kid in kids:
        assert await api.error("baseEntry", "get", entryId=kid) == "ENTRY_ID_NOT_FOUND"
    assert await api.error("baseEntry", "restoreRecycled", entryId=parent) == "ENTRY_ID_NOT_FOUND"
    rows = sim.partner.sql(
        f"SELECT status, deleted_at FROM entries WHERE id IN ({','.join('?' * (len(kids) + 1))})",
        (parent, *kids),
    )
    assert rows == [(3, T0 + 30 * DAY)] * (len(kids) + 1)
    assert all(a["status"] == 3 for a in sim.partner.assets_of(parent, include_deleted=True))
    flavors = await api("flavorAsset", "list", filter={"entryIdEqual": parent})
    assert flavors["totalCount"] == 0
    assert (await api("baseEntry", "get", entryId=keep))["status"] == 2


async def test_recycle_errors(api: Api, simulator) -> None:
    partner = simulator.partner
    eid = partner.sql("SELECT id FROM entries WHERE status = 2 AND type = '1' LIMIT 1")[0][0]
    await api("baseEntry", "recycle", entryId=eid)
    err = await api("baseEntry", "recycle", entryId=eid)
    assert err["code"] == "INVALID_ENTRY_STATUS_FOR_RECYCLE" and err["args"] == []
    await api("baseEntry", "restoreRecycled", entryId=eid)
    err = await api("baseEntry", "restoreRecycled", entryId=eid)
    assert err["code"] == "INVALID_ENTRY_STATUS_FOR_RESTORE"
    assert err["message"] == "Only entry in displayInStatus RECYCLED can be restored"
    assert await api.error("baseEntry", "recycle", entryId="0_nosuch00") == "ENTRY_ID_NOT_FOUND"
    # A deleted entry: the server marks it recycled, then cannot answer with it.
    await api("baseEntry", "delete", entryId=eid)
    assert await api.error("baseEntry", "recycle", entryId=eid) == "ENTRY_ID_NOT_FOUND"
    assert partner.sql("SELECT display_in_search FROM entries WHERE id = ?", (eid,)) == [(-2,)]


def test_purge_order_and_custom_retention() -> None:
    spec = PartnerSpec(entries=200, seed=4, recycle_bin=True, recycle_retention_days=5)
    with Partner.create(spec) as p:
        a, b = [r[0] for r in p.sql("SELECT id FROM entries WHERE status = 2 LIMIT 2")]
        p.recycle_entry(a, now=T0)
        p.recycle_entry(b, now=T0 + 2 * DAY)
        assert p.purge_recycle_bin(T0 + 5 * DAY - 1) == []
        assert p.purge_recycle_bin(T0 + 5 * DAY) == [a]
        assert p.purge_recycle_bin(T0 + 6 * DAY) == []
        assert p.purge_recycle_bin(T0 + 7 * DAY) == [b]
        assert p.sql("SELECT COUNT(*) FROM entries WHERE status = 3") == [(2,)]
    never = PartnerSpec(entries=50, seed=4, recycle_bin=True, recycle_retention_days=0)
    with Partner.create(never) as p:
        eid = p.sql("SELECT id FROM entries WHERE status = 2 LIMIT 1")[0][0]
        p.recycle_entry(eid, now=T0)
        assert p.purge_recycle_bin(T0 + 10_000 * DAY) == []


def test_purge_is_cheap_when_nothing_is_due() -> None:
    with Partner.create(PartnerSpec(entries=3000, seed=4, recycle_bin=True)) as p:
        for eid in [r[0] for r in p.sql("SELECT id FROM entries WHERE status = 2 LIMIT 300")]:
            p.recycle_entry(eid, now=T0)
        p.purge_recycle_bin(T0)  # learns when the first one falls due
        started = time.perf_counter()
        for i in range(10_000):
            p.purge_recycle_bin(T0 + i)
        assert time.perf_counter() - started < 0.5


# ---- deletes cascade to children -----------------------------------------------------------


@pytest.mark.parametrize("service", ["baseEntry", "media"])
async def test_delete_parent_deletes_children(api: Api, simulator, service: str) -> None:
    parent, kids = _parent_with_kids(simulator.partner)
    kid_flavors = await api("flavorAsset", "list", filter={"entryIdIn": ",".join(kids)})
    assert kid_flavors["totalCount"] > 0
    assert await api(service, "delete", entryId=parent) is None
    for eid in (parent, *kids):
        assert await api.error("baseEntry", "get", entryId=eid) == "ENTRY_ID_NOT_FOUND"
    gone = await api("flavorAsset", "list", filter={"entryIdIn": ",".join(kids)})
    assert gone["totalCount"] == 0
    listed = await api("baseEntry", "list", filter={"parentEntryIdEqual": parent, "statusIn": "3"})
    assert {o["id"] for o in listed["objects"]} == set(kids)
    deletes = [m for m in simulator.mutations if m["action"] == "delete"]
    assert [(m["id"], m["outcome"]) for m in deletes] == [(parent, "ok")]  # one call


async def test_delete_one_child_directly(api: Api, simulator) -> None:
    parent, kids = _parent_with_kids(simulator.partner)
    assert await api("baseEntry", "delete", entryId=kids[0]) is None
    assert await api.error("baseEntry", "get", entryId=kids[0]) == "ENTRY_ID_NOT_FOUND"
    assert (await api("baseEntry", "get", entryId=parent))["status"] == 2
    assert (await api("baseEntry", "get", entryId=kids[1]))["status"] == 2
    listed = await api("baseEntry", "list", filter={"parentEntryIdEqual": parent})
    assert {o["id"] for o in listed["objects"]} == set(kids[1:])

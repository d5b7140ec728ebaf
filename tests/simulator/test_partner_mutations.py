"""Deletes, recycle bin, asset lists and test hooks of the simulated partner."""

from __future__ import annotations

import pytest

from kretain.simulator import ids
from kretain.simulator.apierrors import SimApiError
from kretain.simulator.partner import Partner, PartnerSpec

NOW = PartnerSpec().now


@pytest.fixture
def partner(tmp_path):
    p = Partner.create(PartnerSpec(entries=1500, seed=21, recycle_bin=True))
    yield p
    p.close()


def code_of(call, *args, **kwargs) -> str:
    with pytest.raises(SimApiError) as err:
        call(*args, **kwargs)
    return err.value.code


def listing(p: Partner, flt=None, pager=None):
    return p.list_entries(flt or {}, pager or {}, service="baseentry", entitled=True, now=NOW)


def flavors(p: Partner, eid: str, **flt) -> tuple[list[dict], int]:
    return p.list_assets("flavor", {"entryIdEqual": eid, **flt}, {"pageSize": 500})


def a_parent(p: Partner) -> tuple[str, list[str]]:
    parent = p.sql("SELECT parent_entry_id FROM entries WHERE parent_entry_id IS NOT NULL")[0][0]
    kids = [r[0] for r in p.sql("SELECT id FROM entries WHERE parent_entry_id = ?", (parent,))]
    return parent, kids


# ---- deletes --------------------------------------------------------------------


def test_delete_entry_cascades_to_children_and_assets(partner: Partner) -> None:
    parent, kids = a_parent(partner)
    kid_flavor = flavors(partner, kids[0])[0][0]["id"]
    assert flavors(partner, parent)[1] > 0
    partner.delete_entry(parent, media_only=True, now=NOW + 10)
    rows = partner.sql(
        "SELECT status, moderation_status, deleted_at, updated_at FROM entries"
        f" WHERE id IN ({','.join('?' * (len(kids) + 1))})",
        (parent, *kids),
    )
    assert rows == [(3, 4, NOW + 10, NOW + 10)] * (len(kids) + 1)
    for eid in (parent, *kids):
        assert code_of(partner.get_entry, eid) == "ENTRY_ID_NOT_FOUND"
        assert code_of(partner.delete_entry, eid, media_only=False) == "ENTRY_ID_NOT_FOUND"
        assert flavors(partner, eid) == ([], 0)
        assert partner.assets_of(eid) == []
        assert {a["status"] for a in partner.assets_of(eid, include_deleted=True)} == {3}
    assert code_of(partner.get_asset, "flavor", kid_flavor) == "FLAVOR_ASSET_ID_NOT_FOUND"
    assert code_of(partner.asset_content, kid_flavor) == "FLAVOR_ASSET_ID_NOT_FOUND"
    # Deleted entries are hidden unless statusIn asks for 3.
    assert listing(partner, {"idIn": parent})[1] == 0
    objs, _ = listing(partner, {"idIn": ",".join([parent, *kids]), "statusIn": "2,3"})
    assert {o["id"] for o in objs} == {parent, *kids}
    assert {o["status"] for o in objs} == {3}


def test_media_delete_only_for_media_clips(partner: Partner) -> None:
    ext = partner.sql("SELECT id FROM entries WHERE type = 'externalMedia.externalMedia'")[0][0]
    assert code_of(partner.delete_entry, ext, media_only=True) == "ENTRY_ID_NOT_FOUND"
    partner.get_entry(ext)  # still there
    partner.delete_entry(ext, media_only=False)
    assert code_of(partner.get_entry, ext) == "ENTRY_ID_NOT_FOUND"


def test_delete_flavor_no_source_protection_and_repeat(partner: Partner) -> None:
    eid = partner.sql("SELECT id FROM entries WHERE type='1' AND status=2 AND n_flavors > 2")[0][0]
    objs, total = flavors(partner, eid)
    source = next(o for o in objs if o["isOriginal"])
    partner.delete_flavor(source["id"], now=NOW + 5)
    assert code_of(partner.delete_flavor, source["id"]) == "FLAVOR_ASSET_ID_NOT_FOUND"
    assert code_of(partner.get_asset, "flavor", source["id"]) == "FLAVOR_ASSET_ID_NOT_FOUND"
    after, after_total = flavors(partner, eid)
    assert after_total == total - 1 and source["id"] not in {o["id"] for o in after}
    assert flavors(partner, eid, statusIn="3") == ([], 0)  # deleted never listed
    gone = [a for a in partner.assets_of(eid, include_deleted=True) if a["id"] == source["id"]]
    assert gone[0]["status"] == 3 and gone[0]["deletedAt"] == NOW + 5
    # not a flavor id / not ours
    thumb = partner.list_assets("thumb", {"entryIdEqual": eid}, {})[0][0]["id"]
    assert code_of(partner.delete_flavor, thumb) == "FLAVOR_ASSET_ID_NOT_FOUND"
    assert code_of(partner.delete_flavor, "1_zzzzzzzz") == "FLAVOR_ASSET_ID_NOT_FOUND"


# ---- asset lists --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        ("flavor", "KalturaFlavorAssetFilter"),
        ("caption", "KalturaCaptionAssetFilter"),
        ("attachment", "KalturaAttachmentAssetFilter"),
        ("thumb", "KalturaThumbAssetFilter"),
    ],
)
def test_asset_list_needs_an_entry_id(partner: Partner, kind: str, cls: str) -> None:
    with pytest.raises(SimApiError) as err:
        partner.list_assets(kind, {"statusEqual": "2"}, {})
    assert err.value.code == "PROPERTY_VALIDATION_CANNOT_BE_NULL"
    assert err.value.args_map == {"PROP_NAME": f"{cls}::entryIdEqual/{cls}::entryIdIn"}


def test_asset_list_cut_pager_filters_and_kinds(partner: Partner) -> None:
    entries = [r[0] for r in partner.sql("SELECT id FROM entries ORDER BY idx LIMIT 600")]
    expected = sum(1 for e in entries[:500] for a in partner.assets_of(e) if a["kind"] == "flavor")
    objs, total = partner.list_assets("flavor", {"entryIdIn": ",".join(entries)}, {})
    assert total == expected and len(objs) == 30  # default page 30, exact count
    assert {o["entryId"] for o in objs} <= set(entries[:500])
    objs, _ = partner.list_assets("flavor", {"entryIdIn": ",".join(entries)}, {"pageSize": 900})
    assert len(objs) == 500
    order = [(ids.asset_ref(o["id"])) for o in objs]
    assert order == sorted(order)  # by entry, then ordinal
    last_page = partner.list_assets(
        "flavor", {"entryIdIn": ",".join(entries)}, {"pageSize": 500, "pageIndex": 100}
    )
    assert last_page == ([], total)
    ready, ready_total = partner.list_assets(
        "flavor", {"entryIdIn": ",".join(entries[:300]), "statusEqual": "2"}, {"pageSize": 500}
    )
    not_ready, nr_total = partner.list_assets(
        "flavor", {"entryIdIn": ",".join(entries[:300]), "statusNotIn": "2"}, {"pageSize": 500}
    )
    assert {o["status"] for o in ready} == {2} and 2 not in {o["status"] for o in not_ready}
    assert nr_total > 0
    all_total = partner.list_assets("flavor", {"entryIdIn": ",".join(entries[:300])}, {})[1]
    assert ready_total + nr_total == all_total
    caps, _ = partner.list_assets("caption", {"entryIdIn": ",".join(entries)}, {"pageSize": 500})
    assert caps and all(c["objectType"] == "KalturaCaptionAsset" for c in caps)
    assert all({"language", "languageCode", "label", "format", "isDefault"} <= set(c) for c in caps)


def test_asset_list_hides_deleted_entries(partner: Partner) -> None:
    a, b = [r[0] for r in partner.sql("SELECT id FROM entries WHERE n_flavors > 0 LIMIT 2")]
    before = partner.list_assets("flavor", {"entryIdIn": f"{a},{b}"}, {})[1]
    partner.delete_entry(a, media_only=False)
    objs, after = partner.list_assets("flavor", {"entryIdIn": f"{a},{b}"}, {})
    assert after < before and {o["entryId"] for o in objs} == {b}


def test_get_asset_and_content(partner: Partner) -> None:
    eid = partner.sql("SELECT id FROM entries WHERE n_captions > 0 LIMIT 1")[0][0]
    cap = partner.list_assets("caption", {"entryIdEqual": eid}, {})[0][0]
    assert partner.get_asset("caption", cap["id"]) == cap
    assert code_of(partner.get_asset, "flavor", cap["id"]) == "FLAVOR_ASSET_ID_NOT_FOUND"
    assert code_of(partner.get_asset, "thumb", "nope") == "THUMB_ASSET_ID_NOT_FOUND"
    size, seed = partner.asset_content(cap["id"])
    assert size > 0 and (cap["size"] - 1) * 1024 < size <= cap["size"] * 1024
    assert partner.asset_content(cap["id"]) == (size, seed)


# ---- recycle bin --------------------------------------------------------------------


def test_recycle_and_restore(partner: Partner) -> None:
    eid = listing(partner)[0][0]["id"]
    recycled = partner.recycle_entry(eid, now=NOW + 7)
    assert recycled["displayInSearch"] == -2 and recycled["recycledAt"] == NOW + 7
    assert recycled["status"] == 2
    second = recycled["createdAt"]
    window = {"createdAtGreaterThanOrEqual": second, "createdAtLessThanOrEqual": second}
    assert eid not in {o["id"] for o in listing(partner, window)[0]}  # hidden by default
    objs, _ = listing(partner, {"displayInSearchEqual": "-2"})
    assert [o["id"] for o in objs] == [eid]
    assert code_of(partner.recycle_entry, eid) == "INVALID_ENTRY_STATUS_FOR_RECYCLE"
    restored = partner.restore_recycled_entry(eid)
    assert restored["displayInSearch"] == 1 and "recycledAt" not in restored
    assert code_of(partner.restore_recycled_entry, eid) == "INVALID_ENTRY_STATUS_FOR_RESTORE"
    assert listing(partner, {"idIn": eid})[1] == 1
    assert eid in {o["id"] for o in listing(partner, window)[0]}


def test_recycle_bin_feature_flag() -> None:
    with Partner.create(PartnerSpec(entries=50)) as p:
        eid = ids.entry_id(1)
        assert code_of(p.recycle_entry, eid) == "FEATURE_RECYCLE_BIN_DISABLED"
        # Only recycle checks the feature (BaseEntryService::restoreRecycledAction does not).
        assert code_of(p.restore_recycled_entry, eid) == "INVALID_ENTRY_STATUS_FOR_RESTORE"


# ---- hooks ----------------------------------------------------------------------------


def test_set_last_played_and_add_entries(partner: Partner) -> None:
    never = partner.sql(
        "SELECT id, updated_at FROM entries WHERE last_played_at IS NULL AND status = 2"
        " AND display_in_search = 1 AND moderation_status NOT IN (1,3) LIMIT 1"
    )[0]
    flt = {
        "objectType": "KalturaMediaEntryFilter",
        "idIn": never[0],
        "lastPlayedAtLessThanOrEqualOrNull": NOW - 86400,
    }
    assert listing(partner, flt)[1] == 1
    partner.set_last_played(never[0], NOW - 60)
    assert listing(partner, flt)[1] == 0
    wire = partner.get_entry(never[0])
    assert wire["lastPlayedAt"] == NOW - 60 and wire["plays"] == 1
    assert wire["updatedAt"] == never[1]  # KAVA sync does not bump updatedAt

    new_ids = partner.add_entries(25, created_at=NOW + 100)
    assert [ids.entry_index(e) for e in new_ids] == list(range(1501, 1526))
    assert partner.sql("SELECT COUNT(*) FROM entries") == [(1525,)]
    objs, total = listing(
        partner,
        {"createdAtGreaterThanOrEqual": NOW + 100, "statusIn": "2,7,-1,-2,0,1,4"},
        {"pageSize": 100},
    )
    assert (
        total
        == partner.sql(
            "SELECT COUNT(*) FROM entries WHERE idx > 1500 AND moderation_status NOT IN (1,3)"
        )[0][0]
        > 0
    )
    assert all(o["createdAt"] == NOW + 100 and "lastPlayedAt" not in o for o in objs)
    more = partner.add_entries(3)
    assert [ids.entry_index(e) for e in more] == [1526, 1527, 1528]

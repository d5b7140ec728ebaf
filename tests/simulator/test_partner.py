"""Kaltura list/get semantics of the simulated partner (kaltura-api.md §1.3, §3)."""

from __future__ import annotations

import sqlite3

import pytest

from kretain.simulator import ids
from kretain.simulator.apierrors import SimApiError
from kretain.simulator.partner import Partner, PartnerSpec

SPEC = PartnerSpec(entries=12_000, seed=3, burst=300)
NOW = SPEC.now
DEFAULT = "status = 2 AND moderation_status NOT IN (1, 3) AND display_in_search NOT IN (-2, -1)"
MEDIA = "KalturaMediaEntryFilter"


@pytest.fixture(scope="module")
def partner(tmp_path_factory: pytest.TempPathFactory):
    p = Partner.create(SPEC, str(tmp_path_factory.mktemp("partner") / "p.sqlite"))
    yield p
    p.close()


def listing(p: Partner, flt=None, pager=None, *, service="baseentry", entitled=True):
    return p.list_entries(flt or {}, pager or {}, service=service, entitled=entitled, now=NOW)


def count(p: Partner, where: str, params: tuple = ()) -> int:
    return p.sql(f"SELECT COUNT(*) FROM entries WHERE {where}", params)[0][0]


def all_ids(p: Partner, flt, *, service="baseentry", entitled=True) -> list[str]:
    """Every id a filter reaches (pages of 500, under 10k rows)."""
    out: list[str] = []
    for page in range(1, 21):
        objs, _ = listing(
            p, flt, {"pageSize": 500, "pageIndex": page}, service=service, entitled=entitled
        )
        out += [o["id"] for o in objs]
        if len(objs) < 500:
            break
    return out


# ---- defaults ------------------------------------------------------------------


def test_default_filters_and_true_total(partner: Partner) -> None:
    objs, total = listing(partner)
    assert total == count(partner, DEFAULT) > 10_000
    assert len(objs) == 30
    assert all(o["status"] == 2 and o["displayInSearch"] == 1 for o in objs)
    # entitled=False hides entitlement-restricted entries
    _, restricted = listing(partner, entitled=False)
    assert restricted == count(partner, DEFAULT + " AND entitled_only = 0") < total


def test_media_list_prefills_type_in(partner: Partner) -> None:
    _, base_total = listing(partner)
    _, media_total = listing(partner, service="media")
    expected = count(partner, DEFAULT + " AND type IN ('1','7','8','externalMedia.externalMedia')")
    assert media_total == expected < base_total
    _, only_data = listing(partner, {"typeIn": "6"}, service="media")
    assert only_data == count(partner, DEFAULT + " AND type = '6'") > 0


def test_status_filters_lift_the_ready_default(partner: Partner) -> None:
    _, total = listing(partner, {"statusIn": "-1,7"})
    where = "status IN (-1, 7) AND moderation_status NOT IN (1,3) AND display_in_search = 1"
    assert total == count(partner, where) > 0
    _, total = listing(partner, {"statusNotIn": "2"})
    assert total == count(
        partner, "status NOT IN (2, 3) AND moderation_status NOT IN (1,3) AND display_in_search = 1"
    )
    _, total = listing(partner, {"statusEqual": "-2"})
    assert total == count(
        partner, "status = -2 AND moderation_status NOT IN (1,3) AND display_in_search = 1"
    )


def test_id_in_keeps_status_default_but_lifts_display_default(partner: Partner) -> None:
    child = partner.sql(
        "SELECT id FROM entries WHERE parent_entry_id IS NOT NULL AND status = 2 LIMIT 1"
    )[0][0]
    broken = partner.sql("SELECT id FROM entries WHERE status = -1 LIMIT 1")[0][0]
    objs, total = listing(partner, {"idIn": f"{child},{broken}"})
    assert [o["id"] for o in objs] == [child] and total == 1
    objs, _ = listing(partner, {"idEqual": broken})  # idEqual lifts every default
    assert [o["id"] for o in objs] == [broken]


def test_in_lists_cut_to_150_values(partner: Partner) -> None:
    visible = [r[0] for r in partner.sql(f"SELECT id FROM entries WHERE {DEFAULT} LIMIT 200")]
    got = all_ids(partner, {"idIn": ",".join(visible)})
    assert sorted(got) == sorted(visible[:150])
    _, total = listing(partner, {"idNotIn": ",".join(visible)})
    assert total == count(partner, DEFAULT) - 150


def test_children_via_parent_and_display_filters(partner: Partner) -> None:
    parent = partner.sql(
        "SELECT parent_entry_id FROM entries WHERE parent_entry_id IS NOT NULL LIMIT 1"
    )[0][0]
    objs, total = listing(partner, {"parentEntryIdEqual": parent})
    assert total == count(partner, "parent_entry_id = ? AND status = 2", (parent,)) >= 1
    assert all(o["parentEntryId"] == parent for o in objs)
    _, total = listing(partner, {"displayInSearchEqual": "-1"})
    assert total == count(
        partner, "display_in_search = -1 AND status = 2 AND moderation_status NOT IN (1,3)"
    )
    default_ids = set(all_ids(partner, {"createdAtGreaterThanOrEqual": NOW - 200 * 86400}))
    assert not default_ids & {
        r[0] for r in partner.sql("SELECT id FROM entries WHERE parent_entry_id IS NOT NULL")
    }


def test_moderation_default_and_override(partner: Partner) -> None:
    _, total = listing(partner, {"moderationStatusIn": "1,3"})
    assert (
        total
        == count(partner, "status = 2 AND moderation_status IN (1,3) AND display_in_search = 1")
        > 0
    )


# ---- lastPlayedAt and times -------------------------------------------------------


def test_last_played_or_null_vs_not(partner: Partner) -> None:
    cut = NOW - 2 * 365 * 86400
    _, with_null = listing(partner, {"objectType": MEDIA, "lastPlayedAtLessThanOrEqualOrNull": cut})
    _, without = listing(partner, {"objectType": MEDIA, "lastPlayedAtLessThanOrEqual": cut})
    assert with_null == count(
        partner, DEFAULT + " AND (last_played_at IS NULL OR last_played_at <= ?)", (cut,)
    )
    assert without == count(partner, DEFAULT + " AND last_played_at <= ?", (cut,))
    assert 0 < without < with_null
    _, since = listing(
        partner, {"objectType": "KalturaPlayableEntryFilter", "lastPlayedAtGreaterThanOrEqual": cut}
    )
    assert since == count(partner, DEFAULT + " AND last_played_at >= ?", (cut,))


def test_last_played_ignored_on_base_filter(partner: Partner) -> None:
    _, total = listing(partner)
    for object_type in (None, "KalturaBaseEntryFilter", "KalturaNoSuchFilter"):
        flt = {"lastPlayedAtLessThanOrEqual": NOW - 5 * 365 * 86400}
        if object_type:
            flt["objectType"] = object_type
        assert listing(partner, flt)[1] == total
    # media.list declares the media filter: a base objectType does not downgrade it.
    _, media = listing(
        partner,
        {
            "objectType": "KalturaBaseEntryFilter",
            "lastPlayedAtLessThanOrEqual": NOW - 5 * 365 * 86400,
        },
        service="media",
    )
    assert media < listing(partner, service="media")[1]


def test_relative_times_and_literals(partner: Partner) -> None:
    rel = listing(partner, {"createdAtGreaterThanOrEqual": "-31536000"})[1]
    absolute = listing(partner, {"createdAtGreaterThanOrEqual": str(NOW - 31536000)})[1]
    assert rel == absolute == count(partner, DEFAULT + " AND created_at >= ?", (NOW - 31536000,))
    assert listing(partner, {"createdAtLessThanOrEqual": "-1"})[1] == 0  # literal -1
    assert listing(partner, {"updatedAtLessThanOrEqual": "-315360000"})[1] == count(
        partner, DEFAULT + " AND updated_at <= ?", (NOW - 315360000,)
    )
    window = {
        "createdAtGreaterThanOrEqual": NOW - 400 * 86400,
        "createdAtLessThanOrEqual": NOW - 300 * 86400,
    }
    assert listing(partner, window)[1] == count(
        partner, DEFAULT + " AND created_at BETWEEN ? AND ?", (NOW - 400 * 86400, NOW - 300 * 86400)
    )


def test_unknown_fields_and_nulls_ignored(partner: Partner) -> None:
    _, total = listing(partner)
    assert listing(partner, {"createdAtGreaterThenOrEqual": NOW, "bogus": "1"})[1] == total
    assert listing(partner, {"userIdEqual__null": "", "statusIn": ""})[1] == total


def test_type_media_type_category_tag_user_filters(partner: Partner) -> None:
    assert listing(partner, {"objectType": MEDIA, "mediaTypeIn": "2,5"})[1] == count(
        partner, DEFAULT + " AND media_type IN (2, 5)"
    )
    assert listing(partner, {"objectType": MEDIA, "mediaTypeEqual": "5"})[1] == count(
        partner, DEFAULT + " AND media_type = 5"
    )
    assert listing(partner, {"mediaTypeEqual": "5"})[1] == listing(partner)[1]  # base filter
    with pytest.raises(SimApiError) as err:
        listing(partner, {"objectType": MEDIA, "mediaTypeEqual": "9"})
    assert err.value.code == "INVALID_ENUM_VALUE"
    assert listing(partner, {"typeEqual": "externalMedia.externalMedia"})[1] == count(
        partner, DEFAULT + " AND type = 'externalMedia.externalMedia'"
    )
    assert listing(partner, {"categoriesIdsMatchOr": "1003,2001"})[1] == count(
        partner,
        DEFAULT + " AND (',' || categories_ids || ',' LIKE '%,1003,%'"
        " OR ',' || categories_ids || ',' LIKE '%,2001,%')",
    )
    assert listing(partner, {"tagsMultiLikeOr": "exam,zoom"})[1] == count(
        partner, DEFAULT + " AND (tags LIKE '%exam%' OR tags LIKE '%zoom%')"
    )
    user = partner.sql("SELECT user_id FROM entries LIMIT 1")[0][0]
    assert listing(partner, {"userIdEqual": user})[1] == count(
        partner, DEFAULT + " AND user_id = ?", (user,)
    )


# ---- order ------------------------------------------------------------------------


def test_order_by_and_stable_ties(partner: Partner) -> None:
    flt = {"createdAtGreaterThanOrEqual": NOW - 100 * 86400, "orderBy": "+createdAt"}
    objs, _ = listing(partner, flt, {"pageSize": 500})
    keys = [(o["createdAt"], ids.entry_index(o["id"])) for o in objs]
    assert keys == sorted(keys)
    objs, _ = listing(partner, {**flt, "orderBy": "-updatedAt"}, {"pageSize": 500})
    assert [o["updatedAt"] for o in objs] == sorted((o["updatedAt"] for o in objs), reverse=True)
    # unknown order -> rowid order; lastPlayedAt is unknown to the base filter
    for order in ("+nonsense", "+lastPlayedAt", "createdAt"):
        objs, _ = listing(partner, {"orderBy": order}, {"pageSize": 50})
        idx = [ids.entry_index(o["id"]) for o in objs]
        assert idx == sorted(idx)
    objs, _ = listing(
        partner, {"objectType": MEDIA, "orderBy": "-lastPlayedAt,+name"}, {"pageSize": 100}
    )
    played = [o.get("lastPlayedAt", 0) for o in objs]
    assert played == sorted(played, reverse=True) and played[0] > 0


# ---- pager and the 10,000 window -------------------------------------------------


def test_pager_defaults_clamps_and_10k_cap(partner: Partner) -> None:
    total = count(partner, DEFAULT)
    assert len(listing(partner, {}, {"pageSize": "1000"})[0]) == 500
    assert len(listing(partner, {}, {"pageSize": "-5"})[0]) == 0
    first = listing(partner, {}, {"pageSize": 10})[0]
    assert listing(partner, {}, {"pageSize": 10, "pageIndex": "0"})[0] == first
    assert listing(partner, {}, {"pageSize": 10, "pageIndex": "-3"})[0] == first
    objs, t = listing(partner, {}, {"pageSize": 500, "pageIndex": 20})
    assert len(objs) == 500 and t == total  # full page: the true count, not capped
    with pytest.raises(SimApiError) as err:
        listing(partner, {}, {"pageSize": 500, "pageIndex": 21})
    assert err.value.code == "QUERY_EXCEEDED_MAX_MATCHES_ALLOWED"
    objs, t = listing(partner, {}, {"pageSize": 30, "pageIndex": 334})  # offset 9990
    assert len(objs) == 10
    assert t == 10_000  # Sphinx reports offset + rows on a short page
    with pytest.raises(SimApiError):
        listing(partner, {}, {"pageSize": 30, "pageIndex": 335})
    # A real last page: offset + rows is the true count.
    small = {"createdAtGreaterThanOrEqual": NOW - 30 * 86400}
    n = count(partner, DEFAULT + " AND created_at >= ?", (NOW - 30 * 86400,))
    objs, t = listing(partner, small, {"pageSize": 7, "pageIndex": n // 7 + 1})
    assert len(objs) == n % 7 and t == n


def test_burst_second_split_on_updated_at(partner: Partner) -> None:
    second = partner.sql(
        "SELECT created_at FROM entries GROUP BY created_at ORDER BY COUNT(*) DESC LIMIT 1"
    )[0][0]
    flt = {"createdAtGreaterThanOrEqual": second, "createdAtLessThanOrEqual": second}
    _, total = listing(partner, flt)
    assert total == SPEC.burst
    seen: list[str] = []
    lo = second
    while True:
        objs, _ = listing(
            partner,
            {**flt, "updatedAtGreaterThanOrEqual": lo, "orderBy": "+updatedAt"},
            {"pageSize": 50},
        )
        seen += [o["id"] for o in objs]
        if len(objs) < 50:
            break
        lo = objs[-1]["updatedAt"]
    assert set(seen) == {
        r[0] for r in partner.sql("SELECT id FROM entries WHERE created_at = ?", (second,))
    }


# ---- get / sql ----------------------------------------------------------------------


def test_get_entry_and_not_found(partner: Partner) -> None:
    eid = ids.entry_id(5)
    wire = partner.get_entry(eid)
    assert wire["id"] == eid and wire["partnerId"] == SPEC.partner_id
    assert wire["objectType"].startswith("Kaltura")
    assert all(v is not None for v in wire.values())
    for bad in ("0_nothere1", ids.entry_id(SPEC.entries + 1), "", "1_abcdefgh"):
        with pytest.raises(SimApiError) as err:
            partner.get_entry(bad)
        assert err.value.code == "ENTRY_ID_NOT_FOUND"
    restricted = partner.sql("SELECT id FROM entries WHERE entitled_only = 1 LIMIT 1")[0][0]
    partner.get_entry(restricted)
    with pytest.raises(SimApiError):
        partner.get_entry(restricted, entitled=False)
    never = partner.sql("SELECT id FROM entries WHERE last_played_at IS NULL LIMIT 1")[0][0]
    assert "lastPlayedAt" not in partner.get_entry(never)


def test_sql_is_read_only(partner: Partner) -> None:
    with pytest.raises(sqlite3.OperationalError):
        partner.sql("UPDATE entries SET status = 3")
    assert count(partner, "status = 3") == 0

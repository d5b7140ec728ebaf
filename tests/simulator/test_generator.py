"""The synthetic partner's data: determinism, spreads, shapes, traps, cache."""

from __future__ import annotations

import math
import os
from collections import Counter

import pytest

from kretain.simulator import ids
from kretain.simulator.generator import YEAR
from kretain.simulator.partner import Partner, PartnerSpec

SPEC = PartnerSpec(entries=4000, seed=11, burst=120)


@pytest.fixture(scope="module")
def partner(tmp_path_factory: pytest.TempPathFactory):
    p = Partner.create(SPEC, str(tmp_path_factory.mktemp("gen") / "partner.sqlite"))
    yield p
    p.close()


def _all_rows(p: Partner) -> list[tuple]:
    return p.sql("SELECT * FROM entries ORDER BY idx")


def test_same_spec_same_rows_and_assets(partner: Partner, tmp_path) -> None:
    with Partner.create(SPEC, str(tmp_path / "again.sqlite")) as again:
        assert _all_rows(again) == _all_rows(partner)
        for (eid,) in partner.sql("SELECT id FROM entries WHERE idx % 97 = 1"):
            assert again.assets_of(eid) == partner.assets_of(eid)
    with Partner.create(PartnerSpec(entries=4000, seed=12, burst=120)) as other:
        assert _all_rows(other) != _all_rows(partner)


def test_counts_ids_and_times(partner: Partner) -> None:
    now = SPEC.now
    rows = partner.sql("SELECT idx, id, created_at, updated_at FROM entries")
    assert len(rows) == SPEC.entries
    assert all(ids.entry_id(idx) == eid for idx, eid, _, _ in rows)
    assert all(now - 11 * YEAR <= c <= now and c <= u <= now for _, _, c, u in rows)
    # Upload volume grows: the last 3 years hold more than the first 3.
    first = sum(1 for *_, c, _ in rows if c < now - 8 * YEAR)
    last = sum(1 for *_, c, _ in rows if c >= now - 3 * YEAR)
    assert last > 2 * first


def test_last_played_spread_and_plays(partner: Partner) -> None:
    rows = partner.sql(
        "SELECT created_at, last_played_at, plays FROM entries"
        " WHERE status = 2 AND type IN ('1', 'externalMedia.externalMedia')"
        " AND display_in_search = 1"
    )
    never = [r for r in rows if r[1] is None]
    assert 0.25 < len(never) / len(rows) < 0.5
    assert all(plays == 0 for _, _, plays in never)
    played = [r for r in rows if r[1] is not None]
    assert all(c <= lp < SPEC.now and plays > 0 for c, lp, plays in played)
    recent = sum(1 for _, lp, _ in played if lp > SPEC.now - 90 * 86400)
    old = sum(1 for _, lp, _ in played if lp < SPEC.now - 2 * YEAR)
    assert recent > 0.1 * len(played) and old > 0.2 * len(played)
    # Entries that are not READY were never played.
    assert partner.sql("SELECT COUNT(*) FROM entries WHERE status != 2 AND plays > 0") == [(0,)]


def test_status_type_and_media_mix(partner: Partner) -> None:
    status = dict(partner.sql("SELECT status, COUNT(*) FROM entries GROUP BY status"))
    assert status[2] > 0.8 * SPEC.entries
    assert {-2, -1, 0, 4, 7} <= set(status) and 3 not in status
    types = dict(partner.sql("SELECT type, COUNT(*) FROM entries GROUP BY type"))
    assert types["externalMedia.externalMedia"] > 0 and types["1"] > 0.9 * SPEC.entries
    media = dict(
        partner.sql("SELECT media_type, COUNT(*) FROM entries WHERE type = '1' GROUP BY 1")
    )
    assert media[1] > media[5] > 0 and media[2] > 0
    owners = partner.sql("SELECT COUNT(DISTINCT user_id) FROM entries")[0][0]
    assert 30 <= owners <= 45
    entitled = partner.sql("SELECT AVG(entitled_only) FROM entries")[0][0]
    assert 0.02 < entitled < 0.08


def test_exactly_one_source_per_playable_entry(partner: Partner) -> None:
    rows = partner.sql(
        "SELECT id, status, media_type FROM entries WHERE type = '1' AND status != 7"
    )
    assert len(rows) > 3000
    for eid, status, _media_type in rows:
        flavors = [a for a in partner.assets_of(eid) if a["kind"] == "flavor"]
        assert 1 <= len(flavors) <= 12, eid
        sources = [f for f in flavors if f["isOriginal"]]
        assert len(sources) == 1, eid
        src = sources[0]
        assert src["flavorParamsId"] == 0 and src["tags"] in ("source", "source,web")
        assert all(f["flavorParamsId"] != 0 for f in flavors if not f["isOriginal"])
        if status == 2:
            assert src["status"] == 2
    # NO_CONTENT entries have no flavors at all.
    for (eid,) in partner.sql("SELECT id FROM entries WHERE status = 7 LIMIT 50"):
        assert not [a for a in partner.assets_of(eid) if a["kind"] == "flavor"]


def test_images_audio_external_shapes(partner: Partner) -> None:
    images = "SELECT id, duration FROM entries WHERE media_type = 2 AND status != 7"
    for eid, duration in partner.sql(images):
        assets = partner.assets_of(eid)
        flavors = [a for a in assets if a["kind"] == "flavor"]
        assert duration == 0 and len(flavors) == 1 and flavors[0]["isOriginal"]
        assert not [a for a in assets if a["kind"] == "caption"]
    for (eid,) in partner.sql("SELECT id FROM entries WHERE type = 'externalMedia.externalMedia'"):
        wire = partner.get_entry(eid)
        assert wire["objectType"] == "KalturaExternalMediaEntry"
        assert wire["externalSourceType"] == "YouTube"
        assert wire["type"] == "externalMedia.externalMedia"
        assert not [a for a in partner.assets_of(eid) if a["kind"] == "flavor"]


def test_quiz_clones_and_multi_stream_children(partner: Partner) -> None:
    quizzes = partner.sql("SELECT id, root_entry_id FROM entries WHERE capabilities = 'quiz.quiz'")
    assert quizzes
    for eid, root in quizzes:
        assert root != eid and partner.sql("SELECT 1 FROM entries WHERE id = ?", (root,))
    children = partner.sql(
        "SELECT id, parent_entry_id, display_in_search FROM entries"
        " WHERE parent_entry_id IS NOT NULL"
    )
    assert children
    per_parent = Counter(parent for _, parent, _ in children)
    assert set(per_parent.values()) <= {1, 2, 3}
    for eid, parent, dis in children:
        assert dis == -1
        assert ids.entry_index(parent) < ids.entry_index(eid)
        sources = [a for a in partner.assets_of(eid) if a.get("isOriginal")]
        assert len(sources) == 1
        wire = partner.get_entry(eid)
        assert wire["parentEntryId"] == parent
    plain = partner.get_entry(ids.entry_id(1))
    assert "parentEntryId" not in plain


def test_asset_fields_sizes_and_statuses(partner: Partner) -> None:
    assets = []
    for (eid,) in partner.sql("SELECT id FROM entries WHERE idx % 3 = 0"):
        assets.extend(partner.assets_of(eid))
    kinds = Counter(a["kind"] for a in assets)
    assert all(kinds[k] > 0 for k in ("flavor", "caption", "attachment", "thumb"))
    zero = [a for a in assets if a["sizeInBytes"] == 0]
    assert 0.02 < len(zero) / len(assets) < 0.08
    for a in assets[:3000]:
        true_size, _seed = partner.asset_content(a["id"])
        assert a["size"] == math.ceil(true_size / 1024)
        assert a["sizeInBytes"] in (0, true_size)
        assert a["entryId"] and a["partnerId"] == SPEC.partner_id
        assert a["createdAt"] <= a["updatedAt"]
    statuses = {(a["kind"], a["status"]) for a in assets}
    assert {("flavor", 1), ("flavor", -1), ("caption", 0)} <= statuses
    sources = [a for a in assets if a.get("isOriginal") and a["bitrate"] > 0]
    big = [a for a in sources if a["size"] * 1024 > 2 * 1024**3]
    assert big and len(big) < 0.05 * len(sources)
    captions = [a for a in assets if a["kind"] == "caption"]
    assert {c["format"] for c in captions} == {"1", "3"}
    assert {c["fileExt"] for c in captions} <= {"srt", "vtt", *_hostile()}
    assert len({c["language"] for c in captions}) >= 4


def _hostile() -> set[str]:
    from kretain.simulator.generator import _HOSTILE_EXTS

    return set(_HOSTILE_EXTS)


def test_traps_present_only_when_asked(partner: Partner) -> None:
    names = [n for (n,) in partner.sql("SELECT name FROM entries")]
    assert any("/" in n for n in names) and any("\\" in n for n in names)
    assert any(len(n) == 500 for n in names) and any(not n.isascii() for n in names)
    assert any(any(ord(c) < 32 for c in n) for n in names)
    exts = set()
    for (eid,) in partner.sql("SELECT id FROM entries WHERE asset_traps = 1"):
        exts |= {a["fileExt"] for a in partner.assets_of(eid)}
    assert exts & _hostile()
    with Partner.create(PartnerSpec(entries=1500, traps=False)) as calm:
        names = [n for (n,) in calm.sql("SELECT name FROM entries")]
        assert all(n.isascii() and "/" not in n and len(n) < 100 for n in names)
        assert calm.sql("SELECT COUNT(*) FROM entries WHERE asset_traps = 1") == [(0,)]


def test_burst_second_with_updated_at_spread(partner: Partner) -> None:
    (second, count), *_ = partner.sql(
        "SELECT created_at, COUNT(*) FROM entries GROUP BY created_at ORDER BY 2 DESC"
    )
    assert count == SPEC.burst
    updated = Counter(
        u for (u,) in partner.sql("SELECT updated_at FROM entries WHERE created_at = ?", (second,))
    )
    assert max(updated.values()) <= 3 and min(updated) > second


def test_a_burst_placed_in_time_leaves_the_others_spread_over_the_years() -> None:
    spec = PartnerSpec(entries=3000, seed=4, burst=2000, burst_at=0.75, traps=False)
    with Partner.create(spec) as p:
        (second, count), *_ = p.sql(
            "SELECT created_at, COUNT(*) FROM entries GROUP BY created_at ORDER BY 2 DESC"
        )
        assert count == spec.burst
        span = spec.now - min(c for (c,) in p.sql("SELECT created_at FROM entries"))
        assert abs((spec.now - second) - 0.25 * span) < 0.01 * span
        others = [c for (c,) in p.sql("SELECT created_at FROM entries WHERE created_at != ?",
                                       (second,))]  # fmt: skip
        # The other 1,000 keep the whole history: some in each year of it.
        years = Counter((spec.now - c) // YEAR for c in others)
        assert len(others) == 1000 and all(years[y] > 0 for y in range(10))


def test_cache_reuses_same_spec_and_regenerates_otherwise(tmp_path) -> None:
    path = str(tmp_path / "cache.sqlite")
    spec = PartnerSpec(entries=300, seed=5)
    Partner.create(spec, path).close()
    stamp = os.stat(path).st_mtime_ns
    with Partner.create(spec, path) as p:
        assert os.stat(path).st_mtime_ns == stamp
        eid = p.sql("SELECT id FROM entries WHERE type = '1' AND status = 2 LIMIT 1")[0][0]
        p.delete_entry(eid, media_only=True)
    # A mutated file is a different partner: regenerate unless asked to keep it.
    with Partner.create(spec, path, keep_changes=True) as p:
        assert p.sql("SELECT status FROM entries WHERE id = ?", (eid,)) == [(3,)]
    with Partner.create(spec, path) as p:
        assert p.sql("SELECT status FROM entries WHERE id = ?", (eid,)) == [(2,)]
    with Partner.create(PartnerSpec(entries=301, seed=5), path) as p:
        assert p.sql("SELECT COUNT(*) FROM entries") == [(301,)]


def test_temp_file_removed_on_close() -> None:
    p = Partner.create(PartnerSpec(entries=50))
    path = p.path
    assert os.path.exists(path)
    p.close()
    assert not os.path.exists(path)

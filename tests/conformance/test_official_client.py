"""The official KalturaApiClient (XML, JSON bodies) against the simulator.

If Kaltura's own client parses our answers, our wire format is the real one.
"""

from __future__ import annotations

import time

import pytest

pytest.importorskip("lxml")
KalturaClientModule = pytest.importorskip("KalturaClient")

from KalturaClient import KalturaClient, KalturaConfiguration  # noqa: E402
from KalturaClient.exceptions import KalturaException  # noqa: E402
from KalturaClient.Plugins.Core import (  # noqa: E402
    KalturaFilterPager,
    KalturaFlavorAssetFilter,
    KalturaMediaEntryFilter,
    KalturaMediaEntryOrderBy,
    KalturaSessionType,
)

from kretain.simulator.partner import Partner, PartnerSpec  # noqa: E402
from kretain.simulator.testing import run_simulator  # noqa: E402

BIG = PartnerSpec(entries=13_500, seed=21, burst=10, traps=True)


@pytest.fixture(scope="module")
def big_sim(tmp_path_factory):
    path = tmp_path_factory.mktemp("big-partner") / "partner.sqlite"
    partner = Partner.create(BIG, str(path))
    try:
        with run_simulator(partner) as sim:
            yield sim
    finally:
        partner.close()


def _client(sim, ks: str | None = None) -> KalturaClient:
    client = KalturaClient(KalturaConfiguration(serviceUrl=sim.url))
    if ks:
        client.setKs(ks)
    return client


def _admin_ks(sim) -> str:
    spec = sim.partner.spec
    client = _client(sim)
    return client.session.start(
        spec.admin_secret,
        "",
        KalturaSessionType.ADMIN,
        spec.partner_id,
        3600,
        "disableentitlement",
    )


def test_session_start_and_media_list_fields(big_sim):
    sim = big_sim
    client = _client(sim, _admin_ks(sim))
    flt = KalturaMediaEntryFilter()
    flt.orderBy = KalturaMediaEntryOrderBy.CREATED_AT_ASC
    pager = KalturaFilterPager(pageSize=500, pageIndex=1)
    result = client.media.list(flt, pager)
    assert len(result.objects) == 500
    assert result.totalCount > 10_000
    played = [e for e in result.objects if e.lastPlayedAt not in (None, NotImplemented)]
    assert played, "some entries must carry lastPlayedAt"
    for entry in result.objects:
        assert isinstance(entry.id, str) and entry.id
        assert isinstance(entry.createdAt, int)
    created = [e.createdAt for e in result.objects]
    assert created == sorted(created)
    # Parsed values agree with the partner's own view.
    truth = {
        e["id"]: e
        for e in sim.partner.list_entries(
            {"orderBy": "+createdAt", "objectType": "KalturaMediaEntryFilter"},
            {"pageSize": "500"},
            service="media",
            entitled=True,
            now=int(time.time()),
        )[0]
    }
    for entry in result.objects[:50]:
        assert entry.createdAt == truth[entry.id]["createdAt"]
        assert entry.lastPlayedAt in (truth[entry.id].get("lastPlayedAt"), NotImplemented)


def test_official_generate_session_v2_accepted_and_forged_rejected(big_sim):
    pytest.importorskip("Crypto")
    sim = big_sim
    spec = sim.partner.spec
    ks = KalturaClient.generateSessionV2(
        spec.admin_secret, "", KalturaSessionType.ADMIN, spec.partner_id, 600, ""
    ).decode()
    listing = _client(sim, ks).media.list(KalturaMediaEntryFilter(), KalturaFilterPager(pageSize=5))
    assert len(listing.objects) == 5
    forged = KalturaClient.generateSessionV2(
        "not-the-secret", "", KalturaSessionType.ADMIN, spec.partner_id, 600, ""
    ).decode()
    with pytest.raises(KalturaException) as exc:
        _client(sim, forged).media.list(KalturaMediaEntryFilter(), KalturaFilterPager(pageSize=5))
    assert exc.value.code == "INVALID_KS"


def test_ten_thousand_cap_is_a_kaltura_exception(big_sim):
    sim = big_sim
    client = _client(sim, _admin_ks(sim))
    with pytest.raises(KalturaException) as exc:
        client.media.list(KalturaMediaEntryFilter(), KalturaFilterPager(pageSize=500, pageIndex=21))
    assert exc.value.code == "QUERY_EXCEEDED_MAX_MATCHES_ALLOWED"
    last = client.media.list(
        KalturaMediaEntryFilter(), KalturaFilterPager(pageSize=500, pageIndex=20)
    )
    assert len(last.objects) == 500


def test_flavor_list_and_not_found_error(big_sim):
    sim = big_sim
    client = _client(sim, _admin_ks(sim))
    entries = client.media.list(KalturaMediaEntryFilter(), KalturaFilterPager(pageSize=20))
    flt = KalturaFlavorAssetFilter()
    flt.entryIdIn = ",".join(e.id for e in entries.objects)
    flavors = client.flavorAsset.list(flt, KalturaFilterPager(pageSize=500))
    assert flavors.totalCount == len(flavors.objects) > 0
    sources = [f for f in flavors.objects if f.isOriginal is True]
    assert sources and all(isinstance(f.sizeInBytes, int) for f in flavors.objects)
    with pytest.raises(KalturaException) as exc:
        client.baseEntry.get("0_nosuch00")
    assert exc.value.code == "ENTRY_ID_NOT_FOUND"


def test_multirequest(big_sim):
    sim = big_sim
    client = _client(sim, _admin_ks(sim))
    client.startMultiRequest()
    listing = client.media.list(KalturaMediaEntryFilter(), KalturaFilterPager(pageSize=3))
    flt = KalturaFlavorAssetFilter()
    flt.entryIdEqual = listing.objects[0].id  # a {1:result:objects:0:id} reference
    client.flavorAsset.list(flt)
    client.baseEntry.get("0_nosuch00")
    first, flavors, missing = client.doMultiRequest()
    assert len(first.objects) == 3
    assert flavors.objects and {f.entryId for f in flavors.objects} == {first.objects[0].id}
    assert isinstance(missing, KalturaException) and missing.code == "ENTRY_ID_NOT_FOUND"

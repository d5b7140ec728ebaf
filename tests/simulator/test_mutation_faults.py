"""Per-action rate rules, the mutation log's timing fields, and lost answers."""

from __future__ import annotations

import asyncio
import json

import pytest
from simapi import Api

from kretain.simulator.faults import Knobs
from kretain.simulator.testing import admitted_times, max_in_window


def test_max_in_window() -> None:
    assert max_in_window([], 10) == 0
    assert max_in_window([0, 1, 2, 9.9, 10, 10.5], 10) == 5  # 0.. 9.9 then 1..10.5
    assert max_in_window([0, 10, 20], 10) == 1  # half-open: 10 is outside [0, 10)


def test_set_rate_limit_normalises_names() -> None:
    knobs = Knobs()
    knobs.set_rate_limit("flavorAsset.Delete", 5, 2)
    knobs.set_rate_limit("baseEntry.recycle", 3)
    assert knobs.rate_limits == {
        "baseentry.delete": (35, 10.0),
        "flavorasset.delete": (5, 2.0),
        "baseentry.recycle": (3, 10.0),
    }


def _flavor_ids(simulator, count: int) -> list[str]:
    rows = simulator.partner.sql(
        "SELECT id FROM entries WHERE type = '1' AND status = 2 AND n_flavors > 2 LIMIT ?", (count,)
    )
    out = []
    for (eid,) in rows:
        out += [a["id"] for a in simulator.partner.assets_of(eid) if a["kind"] == "flavor"][1:]
    return out[:count]


@pytest.mark.parametrize(
    ("service_action", "call"),
    [
        ("flavorAsset.delete", lambda ids, i: ("flavorAsset", "delete", {"id": ids[i]})),
        ("baseEntry.recycle", lambda ids, i: ("baseEntry", "recycle", {"entryId": ids[i]})),
        (
            "flavorAsset.convert",
            lambda ids, i: ("flavorAsset", "convert", {"entryId": ids[i], "flavorParamsId": "2"}),
        ),
    ],
)
async def test_rate_rules_for_other_actions(api: Api, simulator, service_action, call) -> None:
    sim = simulator
    sim.knobs.set_rate_limit(service_action, 3, 0.5)
    if service_action == "flavorAsset.delete":
        targets = _flavor_ids(sim, 6)
    else:
        targets = [
            r[0]
            for r in sim.partner.sql(
                "SELECT id FROM entries WHERE type = '1' AND status = 2 AND n_flavors > 0"
                " AND display_in_search = 1 LIMIT 6"
            )
        ]
    outcomes = []
    for i in range(5):
        service, action, params = call(targets, i)
        result = await api(service, action, **params)
        outcomes.append(result["code"] if isinstance(result, dict) and "code" in result else "ok")
    assert outcomes == ["ok"] * 3 + ["ACTION_BLOCKED"] * 2
    await asyncio.sleep(0.55)
    service, action, params = call(targets, 5)
    assert "code" not in ((await api(service, action, **params)) or {})
    records = [
        m for m in sim.mutations if f"{m['service']}.{m['action']}" == service_action.lower()
    ]
    assert [m["admitted"] for m in records] == [True] * 3 + [False] * 2 + [True]
    times = admitted_times(sim.mutations, service_action)
    assert len(times) == 4 and max_in_window(times, 0.5) == 3


async def test_multirequest_items_count_against_the_limit(api: Api, simulator) -> None:
    sim = simulator
    sim.knobs.set_rate_limit("baseEntry.delete", 2, 30)
    ids = [r[0] for r in sim.partner.sql("SELECT id FROM entries WHERE status = 2 LIMIT 4")]
    body = {
        str(i): {"service": "baseEntry", "action": "delete", "entryId": eid}
        for i, eid in enumerate(ids)
    }
    results = await api("multirequest", "null", **body)
    assert [r if r is None else r["code"] for r in results] == [
        None,
        None,
        "ACTION_BLOCKED",
        "ACTION_BLOCKED",
    ]
    log = [(m["id"], m["outcome"], m["admitted"]) for m in sim.mutations]
    assert log == [
        (ids[0], "ok", True),
        (ids[1], "ok", True),
        (ids[2], "ACTION_BLOCKED", False),
        (ids[3], "ACTION_BLOCKED", False),
    ]
    monos = [m["monotonic"] for m in sim.mutations]
    assert monos == sorted(monos) and all(isinstance(t, float) for t in monos)


async def test_unauthenticated_mutation_is_logged_not_admitted(api: Api, simulator) -> None:
    api.ks = "not-a-ks"
    assert await api.error("baseEntry", "delete", entryId="0_x") == "INVALID_KS"
    (record,) = simulator.mutations
    assert record["outcome"] == "INVALID_KS" and record["admitted"] is False


# ---- lost answers ----------------------------------------------------------------------------


async def test_lose_next_applies_then_answers_503(api: Api, simulator) -> None:
    sim = simulator
    eid = sim.partner.sql("SELECT id FROM entries WHERE status = 2 LIMIT 1")[0][0]
    sim.knobs.lose_next("baseEntry.delete")
    status, body = await api.raw("baseEntry", "delete", entryId=eid)
    assert (status, body) == (503, b"")
    # It was done: the retry finds nothing to delete.
    assert await api.error("baseEntry", "delete", entryId=eid) == "ENTRY_ID_NOT_FOUND"
    first, retry = sim.mutations
    assert (first["outcome"], first["answer_lost"]) == ("ok", True)
    assert (retry["outcome"], retry["answer_lost"]) == ("ENTRY_ID_NOT_FOUND", False)
    assert sim.stats.faults["lost_answer"] == 1


async def test_lost_media_add_can_be_found_by_reference_id(api: Api, simulator) -> None:
    simulator.knobs.lose_next("media.add")
    entry = {"objectType": "KalturaMediaEntry", "mediaType": "1", "referenceId": "0_orig0001"}
    status, _ = await api.raw("media", "add", entry=entry)
    assert status == 503
    (record,) = simulator.mutations
    assert record["answer_lost"] is True and record["created_id"] == record["id"]
    assert record["params"] == {"entry:referenceId": "0_orig0001"}
    found = await api(
        "baseEntry", "list", filter={"referenceIdEqual": "0_orig0001", "statusIn": "7"}
    )
    assert [o["id"] for o in found["objects"]] == [record["created_id"]]


async def test_failed_calls_never_lose_their_answer(api: Api, simulator) -> None:
    simulator.knobs.lost_answer = 1.0
    assert await api.error("baseEntry", "delete", entryId="0_nosuch00") == "ENTRY_ID_NOT_FOUND"
    assert (await api("media", "list", pager={"pageSize": "1"}))["objectType"]  # not mutating
    assert [m["answer_lost"] for m in simulator.mutations] == [False]


async def test_lost_answer_rate_is_seeded_and_limited_to_actions(api: Api, simulator) -> None:
    sim = simulator
    sim.knobs.fault_seed = 3
    sim.knobs.lost_answer = 0.5
    sim.knobs.lost_answer_actions = {"uploadToken.add"}
    statuses = []
    for _ in range(30):
        status, _ = await api.raw("uploadToken", "add")
        statuses.append(status)
    assert 5 < statuses.count(503) < 25 and set(statuses) == {200, 503}
    # Every lost add still made its token.
    lost = [m["created_id"] for m in sim.mutations if m["answer_lost"]]
    assert len(lost) == statuses.count(503)
    for token_id in lost:
        assert (await api("uploadToken", "get", uploadTokenId=token_id))["status"] == 0
    # Other actions are not in the set.
    entry = await api.new_entry()
    assert entry["status"] == 7


async def test_lost_answer_in_a_multirequest_loses_the_whole_answer(api: Api, simulator) -> None:
    sim = simulator
    ids = [r[0] for r in sim.partner.sql("SELECT id FROM entries WHERE status = 2 LIMIT 3")]
    sim.knobs.lose_next("baseEntry.delete")
    body = {
        "0": {"service": "baseEntry", "action": "delete", "entryId": ids[0]},
        "1": {"service": "baseEntry", "action": "delete", "entryId": ids[1]},
        "2": {"service": "baseEntry", "action": "delete", "entryId": "0_nosuch00"},
        "3": {"service": "baseEntry", "action": "get", "entryId": ids[2]},
    }
    status, raw = await api.raw("multirequest", "null", **body)
    assert (status, raw) == (503, b"")
    log = [(m["id"], m["outcome"], m["answer_lost"]) for m in sim.mutations]
    assert log == [
        (ids[0], "ok", True),
        (ids[1], "ok", True),  # its answer was in the same lost response
        ("0_nosuch00", "ENTRY_ID_NOT_FOUND", False),
    ]
    for eid in ids[:2]:
        assert await api.error("baseEntry", "get", entryId=eid) == "ENTRY_ID_NOT_FOUND"
    # The next multirequest is answered.
    again = await api("multirequest", "null", **{"0": body["3"]})
    assert again[0]["id"] == ids[2]


async def test_lost_upload_chunk_was_stored(api: Api, simulator) -> None:
    token = (await api.new_token())["id"]
    simulator.knobs.lose_next("uploadToken.upload")
    status, body = await api.multipart(
        "uploadToken",
        "upload",
        {"uploadTokenId": token, "resume": "False", "finalChunk": "False", "resumeAt": "0"},
        {"fileData": ("a.mp4", b"x" * 1000)},
    )
    assert (status, body) == (503, b"")
    state = await api("uploadToken", "get", uploadTokenId=token)
    assert state["status"] == 1 and state["uploadedFileSize"] == 1000
    record = simulator.mutations[-1]
    assert record["bytes"] == 1000 and record["answer_lost"] is True
    assert json.loads(json.dumps(record))  # plain data, JSON-safe

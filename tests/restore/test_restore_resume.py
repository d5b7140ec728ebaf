"""A restore that stops part-way (a crash inside the process, or a lookup that fails) is
taken up by the next one: it asks Kaltura what happened first and continues from there.
And a child Kaltura will not link comes back as an entry of its own."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from ctxhelpers import make_ctx
from restore_support import (
    ENTRIES,
    SPEC,
    client_for,
    entry_json,
    new_run,
    retention_run,
    served_sha,
    store_at,
)

from kretain.simulator.testing import run_simulator
from kretain.store import queries
from kretain.store.states import State
from kretain.workers.restore import RestoreOptions, RestoreResult, restore

EID = ENTRIES["captions_emoji"]
CHUNK = 256 << 10


class Crash(Exception):
    """Stands for the process dying at that point (raised from the progress hook)."""


async def _restore(sim: Any, db: Path, eid: str, opts: RestoreOptions, hook: Any = None) -> Any:
    async with store_at(db) as store, client_for(sim) as client:
        ctx = make_ctx(store, client, await new_run(store), progress=hook)
        rows = await queries.restore_selection(store, ids=[eid])
        return await restore(ctx, rows, options=opts)


def crashes(run: Any) -> None:
    """``run`` (a coroutine) dies of the Crash (the claim loop's task group wraps it)."""
    with pytest.raises(BaseExceptionGroup) as info:
        asyncio.run(run)
    assert info.group_contains(Crash)


def crash_after(event: str, times: int = 1) -> Any:
    seen = {"n": 0}

    def hook(name: str, **info: Any) -> None:
        if name == event:
            seen["n"] += 1
            if seen["n"] == times:
                raise Crash(name)

    return hook


def made(sim: Any, start: int, service: str, action: str) -> list[dict[str, Any]]:
    return [
        m
        for m in sim.mutations[start:]
        if m["service"] == service and m["action"] == action and m["outcome"] == "ok"
    ]


def check_result(sim: Any, db: Path, root: Path, eid: str = EID) -> str:
    async def row() -> Any:
        async with store_at(db) as store:
            return await queries.get_entry(store, eid)

    restored = asyncio.run(row())
    assert restored.state == State.RESTORED
    doc = entry_json(root, SPEC.partner_id, eid)
    live = sim.partner.assets_of(restored.new_entry_id)
    assert sorted(served_sha(sim, a["id"])[1] for a in live) == sorted(
        f["sha256"] for f in doc["files"] if f["owner_entry_id"] == eid
    )
    return str(restored.new_entry_id)


def test_a_crash_mid_upload_resumes_the_token(tmp_path: Path) -> None:
    db, root = tmp_path / "k.db", tmp_path / "archive"
    with run_simulator(SPEC) as sim:
        retention_run(sim, db, root, [EID])
        start = len(sim.mutations)
        opts = RestoreOptions(chunk_size=CHUNK)
        crashes(_restore(sim, db, EID, opts, crash_after("restore.chunk", 3)))
        tokens = made(sim, start, "uploadtoken", "add")
        assert len(tokens) == 1 and len(made(sim, start, "uploadtoken", "upload")) == 3
        result: RestoreResult = asyncio.run(_restore(sim, db, EID, opts))
        assert result.recreated == 1 and result.bytes_resumed == 3 * CHUNK
        chunks = made(sim, start, "uploadtoken", "upload")
        source = [m for m in chunks if m["id"] == tokens[0]["created_id"]]
        offsets = [int(m["params"]["resumeAt"]) for m in source]
        assert offsets == sorted(set(offsets))  # every chunk of the source sent once
        assert len(made(sim, start, "media", "add")) == 1
        check_result(sim, db, root)


def test_a_token_that_cannot_be_vouched_for_is_dropped(tmp_path: Path) -> None:
    db, root = tmp_path / "k.db", tmp_path / "archive"
    with run_simulator(SPEC) as sim:
        retention_run(sim, db, root, [EID])
        start = len(sim.mutations)
        crashes(
            _restore(
                sim, db, EID, RestoreOptions(chunk_size=CHUNK), crash_after("restore.chunk", 2)
            )
        )
        # Resumed with another chunk size: the chunks on the server no longer line up with
        # what can be checked, so that token is deleted and the file sent again in full.
        result = asyncio.run(_restore(sim, db, EID, RestoreOptions(chunk_size=CHUNK * 3)))
        assert result.recreated == 1 and result.bytes_resumed == 0
        assert len(made(sim, start, "uploadtoken", "delete")) == 1
        check_result(sim, db, root)


def test_a_crash_after_media_add_takes_the_entry_up(tmp_path: Path) -> None:
    db, root = tmp_path / "k.db", tmp_path / "archive"
    with run_simulator(SPEC) as sim:
        retention_run(sim, db, root, [EID])
        start = len(sim.mutations)
        crashes(_restore(sim, db, EID, RestoreOptions(), crash_after("restore.entry_added")))
        first = made(sim, start, "media", "add")[0]["created_id"]
        asyncio.run(_restore(sim, db, EID, RestoreOptions()))
        assert len(made(sim, start, "media", "add")) == 1
        assert check_result(sim, db, root) == first


def test_an_unanswered_call_is_looked_up_before_anything_else(tmp_path: Path) -> None:
    db, root = tmp_path / "k.db", tmp_path / "archive"
    with run_simulator(SPEC) as sim:
        retention_run(sim, db, root, [EID])
        start = len(sim.mutations)
        # media.add takes effect but its answer is lost, and the lookup that would find it
        # fails too: the restore stops there (fail closed), its intent unresolved.
        sim.knobs.lose_next("media.add")
        sim.knobs.fail_next("baseEntry.list", "INTERNAL_SERVERL_ERROR", 5)  # every retry
        first = asyncio.run(_restore(sim, db, EID, RestoreOptions()))
        assert first.failed == 1 and first.recreated == 0

        async def state_and_events() -> tuple[State, list[tuple[str, str]]]:
            async with store_at(db) as store:
                row = await queries.get_entry(store, EID)
                rows = await store.fetchall(
                    "SELECT kind, outcome FROM events WHERE entry_id = ? AND action = 'media.add'"
                    " ORDER BY id",
                    (EID,),
                )
                return row.state, [tuple(r) for r in rows]  # type: ignore[union-attr]

        state, events = asyncio.run(state_and_events())
        assert state == State.DELETED and events == [("intent", "intent")]
        # The next restore finds the entry that call made instead of making another.
        second = asyncio.run(_restore(sim, db, EID, RestoreOptions()))
        assert second.recreated == 1, second.problems
        adds = made(sim, start, "media", "add")
        assert len(adds) == 1 and check_result(sim, db, root) == adds[0]["created_id"]
        assert asyncio.run(state_and_events())[1][-1] == ("api", "ok")


def test_a_child_kaltura_will_not_link_comes_back_on_its_own(tmp_path: Path) -> None:
    eid = ENTRIES["captions_child"]
    db, root = tmp_path / "k.db", tmp_path / "archive"
    with run_simulator(SPEC) as sim:
        retention_run(sim, db, root, [eid])

        def refuse_the_child(name: str, **info: Any) -> None:
            if name == "restore.entry_added" and info["old_id"] == eid:
                sim.knobs.fail_next("media.add", "PARENT_ENTRY_ID_NOT_FOUND")

        result = asyncio.run(_restore(sim, db, eid, RestoreOptions(), refuse_the_child))
        assert result.recreated == 1 and result.children_separate == 1 and result.children == 0
        assert "restored as separate entries" in result.outcomes[0].detail
        [child] = [c["id"] for c in entry_json(root, SPEC.partner_id, eid)["children"]]

        async def recorded() -> Any:
            async with store_at(db) as store:
                return (await queries.restore_objects(store, eid))[child]

        made_for_child = asyncio.run(recorded())
        assert made_for_child.kind == "entry"  # recorded as an entry of its own
        new = made_for_child.new_id
        assert f"{child} -> {new}" in result.outcomes[0].detail
        alone = sim.partner.get_entry(new)
        assert "parentEntryId" not in alone and alone["referenceId"] == f"kretain-restore-{child}"

        async def exempt() -> set[str]:
            async with store_at(db) as store:
                return {e.entry_id for e in await queries.exemptions(store)}

        assert new in asyncio.run(exempt())  # an entry of its own: exempt like its parent

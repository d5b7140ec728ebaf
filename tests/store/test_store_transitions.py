"""Guarded state moves, their events, batches, claims and leases."""

from __future__ import annotations

import sqlite3

import pytest
from storehelpers import T0, fields

from kretain.errors import IllegalTransitionError, StateConflictError, StoreError
from kretain.store import Action, State, Store
from kretain.store import queries as q
from kretain.store import transitions as t
from kretain.store.states import ALLOWED, FINISHED, is_allowed


async def seed(
    store: Store, n: int, state: State = State.CANDIDATE, *, first: int = 0, **kw
) -> list[str]:
    ids = [f"0_e{i:07d}" for i in range(first, first + n)]
    await t.admit(
        store,
        [
            t.Admission(fields(i, createdAt=1_500_000_000 + k), State.CANDIDATE, "4-year",
                        Action.DELETE_ENTRY, "test")
            for k, i in enumerate(ids)
        ],
        run_id=None,
        now=T0,
    )  # fmt: skip
    path = {
        State.CANDIDATE: [],
        State.SIZED: [State.SIZED],
        State.ARCHIVED: [State.SIZED, State.DOWNLOADING, State.ARCHIVED],
    }[state]
    current = State.CANDIDATE
    for nxt in path:
        await t.move_many(store, ids, current, nxt, run_id=None, now=T0, strict=True)
        current = nxt
    return ids


async def events(store: Store, entry_id: str | None = None) -> list[tuple]:
    sql = "SELECT entry_id, kind, from_state, to_state, outcome, detail, run_id FROM events"
    params: tuple = ()
    if entry_id:
        sql += " WHERE entry_id = ?"
        params = (entry_id,)
    return [tuple(r) for r in await store.fetchall(sql + " ORDER BY id", params)]


def test_allowed_table_is_complete_and_finished_rows_move_only_to_restore() -> None:
    assert set(ALLOWED) == set(State)
    for state in FINISHED:
        assert ALLOWED[state] <= {State.RESTORING, State.DELETED}  # a bin that empties
        assert not is_allowed(state, state)
    assert not ALLOWED[State.RESTORED]
    assert is_allowed("sized", "downloading") and not is_allowed("candidate", "deleted")
    # A failed delete is never backed up again, and a failed backup is never deleted.
    assert State.DOWNLOADING not in ALLOWED[State.DELETE_FAILED]
    assert State.DELETING not in ALLOWED[State.BACKUP_FAILED]
    for targets in ALLOWED.values():
        assert all(isinstance(s, State) for s in targets)


async def test_move_appends_event_and_stamps_state_time(store: Store) -> None:
    (eid,) = await seed(store, 1)
    await t.move(store, eid, State.CANDIDATE, State.SIZED, run_id=7, reason="sized", now=T0 + 5)
    row = await q.get_entry(store, eid)
    assert row is not None
    assert row.state == State.SIZED and row.sized_at == T0 + 5 and row.state_changed_at == T0 + 5
    assert (await events(store, eid))[-1] == (
        eid,
        "state",
        "candidate",
        "sized",
        "moved",
        "sized",
        7,
    )


async def test_guard_mismatch_raises_and_writes_nothing(store: Store) -> None:
    (eid,) = await seed(store, 1)
    before = await events(store)
    with pytest.raises(StateConflictError, match="not in sized") as info:
        await t.move(store, eid, State.SIZED, State.DOWNLOADING, run_id=1)
    assert info.value.entry_ids == [eid]
    assert (await q.get_entry(store, eid)).state == State.CANDIDATE
    assert await events(store) == before
    with pytest.raises(StateConflictError, match="missing"):
        await t.move(store, "0_nothere1", State.CANDIDATE, State.SIZED, run_id=1)


async def test_illegal_move_is_refused_before_any_write(store: Store) -> None:
    (eid,) = await seed(store, 1)
    with pytest.raises(IllegalTransitionError, match="candidate -> deleted"):
        await t.move(store, eid, State.CANDIDATE, State.DELETED, run_id=1)
    with pytest.raises(IllegalTransitionError):
        await t.move_many(store, [eid], [State.CANDIDATE, State.DELETED], State.SIZED, run_id=1)


async def test_move_many_returns_ids_that_did_not_move(store: Store) -> None:
    ids = await seed(store, 5)
    await t.move(store, ids[0], State.CANDIDATE, State.KEPT, run_id=1, now=T0)
    not_moved = await t.move_many(
        store, [*ids, "0_nothere1"], State.CANDIDATE, State.SIZED, run_id=2, now=T0 + 1
    )
    assert not_moved == [ids[0], "0_nothere1"]
    assert await q.counts_by_state(store) == {"kept": 1, "sized": 4}
    sized_events = [e for e in await events(store) if e[3] == "sized"]
    assert sorted(e[0] for e in sized_events) == sorted(ids[1:])


async def test_move_many_strict_rolls_back_the_whole_batch(store: Store) -> None:
    ids = await seed(store, 3)
    await t.move(store, ids[1], State.CANDIDATE, State.KEPT, run_id=1)
    before = await events(store)
    with pytest.raises(StateConflictError) as info:
        await t.move_many(store, ids, State.CANDIDATE, State.SIZED, run_id=2, strict=True)
    assert info.value.entry_ids == [ids[1]]
    assert await q.counts_by_state(store) == {"candidate": 2, "kept": 1}
    assert await events(store) == before


async def test_batch_of_many_rows_in_one_call(store: Store) -> None:
    ids = await seed(store, 1200)  # more than one IN (...) chunk
    assert await t.move_many(store, ids, State.CANDIDATE, State.SIZED, run_id=3) == []
    assert await q.counts_by_state(store) == {"sized": 1200}
    count = await store.fetchone("SELECT count(*) FROM events WHERE to_state = 'sized'")
    assert count[0] == 1200


async def test_each_stage_counts_its_own_failures_and_success_resets_them(store: Store) -> None:
    (eid,) = await seed(store, 1, State.SIZED)
    for n in (1, 2):
        await t.move(store, eid, [State.SIZED, State.BACKUP_FAILED], State.DOWNLOADING, run_id=1)
        await t.move(
            store, eid, State.DOWNLOADING, State.BACKUP_FAILED, run_id=1, error=f"boom {n}"
        )
        row = await q.get_entry(store, eid)
        assert (row.backup_attempts, row.attempts, row.last_error) == (n, 0, f"boom {n}")
    await t.move(store, eid, State.BACKUP_FAILED, State.DOWNLOADING, run_id=1)
    await t.move(store, eid, State.DOWNLOADING, State.ARCHIVED, run_id=1, now=T0 + 9)
    row = await q.get_entry(store, eid)
    assert (row.backup_attempts, row.last_error, row.archived_at) == (0, None, T0 + 9)
    assert (await events(store, eid))[-3][5] == "boom 2"
    # A failed delete charges the delete counter, never the backup's.
    await t.move(store, eid, State.ARCHIVED, State.DELETING, run_id=1)
    await t.move(store, eid, State.DELETING, State.DELETE_FAILED, run_id=1, error="blocked")
    row = await q.get_entry(store, eid)
    assert (row.state, row.delete_attempts, row.backup_attempts) == ("delete_failed", 1, 0)
    assert await t.reset_attempts(store, [eid], State.DELETE_FAILED, run_id=2) == [eid]
    assert (await q.get_entry(store, eid)).delete_attempts == 0
    admin = await store.fetchall("SELECT kind, outcome FROM events WHERE kind = 'admin'")
    assert [tuple(r) for r in admin] == [("admin", "attempts_reset")]


async def test_updates_are_whitelisted(store: Store) -> None:
    (eid,) = await seed(store, 1)
    with pytest.raises(StoreError, match="not updatable"):
        await t.move(store, eid, State.CANDIDATE, State.KEPT, run_id=1, updates={"state": "x"})
    await t.move(
        store, eid, State.CANDIDATE, State.KEPT, run_id=1,
        updates={"policy": None, "action": None, "reason": "played 2025-01-01"},
    )  # fmt: skip
    row = await q.get_entry(store, eid)
    assert (row.state, row.policy, row.action, row.reason) == (
        State.KEPT, None, None, "played 2025-01-01",
    )  # fmt: skip


async def test_events_are_append_only(store: Store) -> None:
    (eid,) = await seed(store, 1)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        async with store.transaction() as conn:
            await conn.execute("UPDATE events SET detail = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        async with store.transaction() as conn:
            await conn.execute("DELETE FROM events")
    assert len(await events(store, eid)) == 1


async def test_claim_stamps_lease_and_skips_leased_rows(store: Store) -> None:
    ids = await seed(store, 5, State.SIZED)
    first = await t.claim(store, State.SIZED, State.DOWNLOADING, 3, run_id=10,
                          lease_seconds=60, now=T0)  # fmt: skip
    assert [r.id for r in first] == ids[:3]  # oldest created first
    for r in first:
        assert r.state == State.DOWNLOADING
        assert (r.lease_owner, r.lease_expires_at, r.lease_from_state) == (10, T0 + 60, "sized")
    second = await t.claim(store, State.SIZED, State.DOWNLOADING, 10, run_id=11,
                           lease_seconds=60, now=T0 + 1)  # fmt: skip
    assert [r.id for r in second] == ids[3:]
    assert await t.claim(store, State.SIZED, State.DOWNLOADING, 10, 12, 60, now=T0 + 2) == []
    claimed = [e for e in await events(store) if e[4] == "claimed"]
    assert len(claimed) == 5


async def test_expired_leases_go_back_and_can_be_reclaimed(store: Store) -> None:
    ids = await seed(store, 2, State.SIZED)
    await t.claim(store, State.SIZED, State.DOWNLOADING, 2, run_id=20, lease_seconds=30, now=T0)
    # A worker of run 20 finished one row before it died.
    await t.move(store, ids[0], State.DOWNLOADING, State.ARCHIVED, run_id=20, lease_owner=20)
    assert await t.release_expired(store, now=T0 + 29) == 0
    assert await t.release_expired(store, now=T0 + 30) == 1
    row = await q.get_entry(store, ids[1])
    assert row.state == State.SIZED and row.lease_owner is None and row.lease_from_state is None
    last = (await events(store, ids[1]))[-1]
    assert last[2:5] == ("downloading", "sized", "lease_expired")
    assert "run 20" in last[5]
    again = await t.claim(store, State.SIZED, State.DOWNLOADING, 5, run_id=21, lease_seconds=30,
                          now=T0 + 31)  # fmt: skip
    assert [r.id for r in again] == [ids[1]]


async def test_lease_owner_guard_and_release_run(store: Store) -> None:
    ids = await seed(store, 2, State.ARCHIVED)
    await t.claim(store, State.ARCHIVED, State.DELETING, 2, run_id=30, lease_seconds=600, now=T0)
    with pytest.raises(StateConflictError):
        await t.move(store, ids[0], State.DELETING, State.DELETED, run_id=31, lease_owner=31)
    assert await t.renew_leases(store, ids, 30, 900, now=T0 + 10) == 2
    assert (await q.get_entry(store, ids[0])).lease_expires_at == T0 + 910
    # A row in `deleting` is not simply handed back: the call may have reached Kaltura. It
    # stays until the delete stage asks Kaltura what happened (kretain.workers.delete).
    assert await t.release_run(store, 30, now=T0 + 11) == 0
    assert await t.release_expired(store, now=T0 + 10_000) == 0
    assert await q.counts_by_state(store) == {"deleting": 2}
    sized = await seed(store, 1, State.SIZED, first=2)
    await t.claim(store, State.SIZED, State.DOWNLOADING, 1, run_id=32, lease_seconds=600, now=T0)
    assert await t.release_run(store, 32, now=T0 + 11) == 1
    assert (await q.get_entry(store, sized[0])).state == State.SIZED


async def test_claim_filters_by_action_and_attempts(store: Store) -> None:
    ids = await seed(store, 3, State.SIZED)
    await t.move(store, ids[0], State.SIZED, State.CANDIDATE, run_id=1,
                 updates={"action": "delete_flavors"})  # fmt: skip
    await t.move(store, ids[0], State.CANDIDATE, State.SIZED, run_id=1)
    got = await t.claim(store, State.SIZED, State.DELETING, 10, 2, 60, action="delete_flavors")
    assert [r.id for r in got] == [ids[0]]
    # ids[1] failed once, ids[2] twice; a retry limit of 2 picks only ids[1].
    for eid, failures in ((ids[1], 1), (ids[2], 2)):
        await t.move(store, eid, State.SIZED, State.DOWNLOADING, run_id=2)
        for n in range(failures):
            if n:
                await t.move(store, eid, State.BACKUP_FAILED, State.DOWNLOADING, run_id=2)
            await t.move(
                store, eid, State.DOWNLOADING, State.BACKUP_FAILED, run_id=2, error=f"e{n}"
            )
    retry = await t.claim(store, State.BACKUP_FAILED, State.DOWNLOADING, 10, 3, 60, max_attempts=2)
    assert [r.id for r in retry] == [ids[1]]


async def test_pure_lease_claim_keeps_state_and_writes_no_event(store: Store) -> None:
    ids = await seed(store, 2)
    before = len(await events(store))
    got = await t.claim(store, State.CANDIDATE, State.CANDIDATE, 1, 40, 60, now=T0)
    assert got[0].state == State.CANDIDATE and got[0].lease_owner == 40
    assert len(await events(store)) == before
    nxt = await t.claim(store, State.CANDIDATE, State.CANDIDATE, 5, 41, 60, now=T0)
    assert [r.id for r in nxt] == [ids[1]]
    assert await t.release_expired(store, now=T0 + 60) == 2
    assert await q.counts_by_state(store) == {"candidate": 2}


async def test_record_api_event(store: Store) -> None:
    await t.record_api_event(
        store, run_id=5, call="flavorasset.delete", outcome="ok", entry_id="0_x", asset_id="0_f"
    )
    row = await store.fetchone("SELECT kind, action, outcome, entry_id, asset_id FROM events")
    assert tuple(row) == ("api", "flavorasset.delete", "ok", "0_x", "0_f")


async def test_staying_put_records_the_error_but_keeps_the_state_time(store: Store) -> None:
    (eid,) = await seed(store, 1)
    await t.move(store, eid, State.CANDIDATE, State.ERROR, run_id=1, error="timeout", now=T0 + 1)
    await t.move(store, eid, State.ERROR, State.ERROR, run_id=2, error="timeout again", now=T0 + 9)
    row = await q.get_entry(store, eid)
    assert (row.state, row.attempts, row.last_error, row.state_changed_at) == (
        State.ERROR, 2, "timeout again", T0 + 1,
    )  # fmt: skip
    assert (await events(store, eid))[-1][2:6] == ("error", "error", "moved", "timeout again")
    await t.move(store, eid, State.ERROR, State.SIZED, run_id=2, now=T0 + 10)
    await t.move(store, eid, State.SIZED, State.SIZED, run_id=2, now=T0 + 20)
    assert (await q.get_entry(store, eid)).sized_at == T0 + 10
    assert not is_allowed(State.DELETED, State.DELETED)


async def test_move_many_sets_per_row_values_in_one_batch(store: Store) -> None:
    ids = await seed(store, 3)
    sizes = {i: {"bytes_total": 100 * n, "bytes_saved": 10 * n, "asset_count": n}
             for n, i in enumerate(ids, start=1)}  # fmt: skip
    await t.move_many(
        store, ids, State.CANDIDATE, State.SIZED, run_id=1, row_updates=sizes, strict=True, now=T0
    )
    for n, entry_id in enumerate(ids, start=1):
        row = await q.get_entry(store, entry_id)
        assert row is not None and row.state == State.SIZED
        assert (row.bytes_total, row.bytes_saved, row.asset_count) == (100 * n, 10 * n, n)


async def test_row_updates_must_cover_every_row_with_the_same_columns(store: Store) -> None:
    ids = await seed(store, 2)
    with pytest.raises(StoreError, match="same columns"):
        await t.move_many(store, ids, State.CANDIDATE, State.SIZED, run_id=1,
                          row_updates={ids[0]: {"bytes_total": 1},
                                       ids[1]: {"bytes_saved": 1}})  # fmt: skip
    with pytest.raises(StoreError, match="no values"):
        await t.move_many(store, ids, State.CANDIDATE, State.SIZED, run_id=1,
                          row_updates={ids[0]: {"bytes_total": 1}})  # fmt: skip
    with pytest.raises(StoreError, match="not updatable"):
        await t.move_many(store, ids, State.CANDIDATE, State.SIZED, run_id=1,
                          row_updates={i: {"state": "deleted"} for i in ids})  # fmt: skip
    assert {(await q.get_entry(store, i)).state for i in ids} == {State.CANDIDATE}


async def test_an_intent_stays_unresolved_until_its_outcome_is_recorded(store: Store) -> None:
    ids = await seed(store, 2)
    await t.record_intent(store, run_id=1, call="baseentry.delete", entry_id=ids[0])
    await t.record_intent(store, run_id=1, call="flavorasset.delete", entry_id=ids[1],
                          asset_id="1_f1")  # fmt: skip
    await t.record_intent(store, run_id=1, call="flavorasset.delete", entry_id=ids[1],
                          asset_id="1_f2")  # fmt: skip
    await t.record_api_event(store, run_id=1, call="flavorasset.delete", outcome="ok",
                             entry_id=ids[1], asset_id="1_f1")  # fmt: skip
    assert await t.unresolved_intents(store, ids) == {
        ids[0]: [("baseentry.delete", None)],
        ids[1]: [("flavorasset.delete", "1_f2")],
    }
    await t.record_api_event(store, run_id=1, call="baseentry.delete", outcome="lost",
                             entry_id=ids[0])  # fmt: skip
    assert ids[0] not in await t.unresolved_intents(store, ids)


async def test_intents_since_entering_a_state_include_answered_ones(store: Store) -> None:
    ids = await seed(store, 1)
    await t.record_intent(store, run_id=1, call="baseentry.delete", entry_id=ids[0])
    await t.record_api_event(store, run_id=1, call="baseentry.delete", outcome="not applied",
                             entry_id=ids[0])  # fmt: skip
    # A later episode: only what was announced since the row last moved into deleting counts.
    await t.move(store, ids[0], State.CANDIDATE, State.DELETING, run_id=2)
    await t.record_intent(store, run_id=2, call="flavorasset.delete", entry_id=ids[0],
                          asset_id="1_f1")  # fmt: skip
    await t.record_api_event(store, run_id=2, call="flavorasset.delete", outcome="ok",
                             entry_id=ids[0], asset_id="1_f1")  # fmt: skip
    await t.record_intent(store, run_id=2, call="flavorasset.delete", entry_id=ids[0],
                          asset_id="1_f2")  # fmt: skip
    assert await t.intents_since_entering(store, ids, State.DELETING) == {
        ids[0]: [("flavorasset.delete", "1_f1", True), ("flavorasset.delete", "1_f2", False)]
    }

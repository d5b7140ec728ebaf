"""Admission (upsert) idempotency, hostile wire data, assets, runs, windows, no secrets stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from storehelpers import T0, fields, wire_entry

from kretain import rules
from kretain.errors import InvalidEntryData, StoreError
from kretain.policy import Policy, evaluate, facts_from_fields
from kretain.store import Action, AssetBackupState, State, Store
from kretain.store import queries as q
from kretain.store import transitions as t
from kretain.store.models import asset_columns, entry_fields_from_wire, parse_asset


def columns(kind: str, wire: dict, *, entry: str, owner: str | None = None, source=False) -> dict:
    asset = parse_asset(kind, {"entryId": owner or entry, **wire}, owner=owner or entry)
    return asset_columns(asset, top_entry=entry, is_source=source)


def cand(f: dict, action: Action = Action.DELETE_ENTRY) -> t.Admission:
    return t.Admission(f, State.CANDIDATE, "4-year", action, "created 2017-07-14, never played")


async def n_events(store: Store) -> int:
    return (await store.fetchone("SELECT count(*) FROM events"))[0]


async def test_admit_is_idempotent(store: Store) -> None:
    f = fields("0_idem0001")
    r1 = await t.admit(store, [cand(f)], run_id=1, now=T0)
    assert (r1.inserted, r1.refreshed, r1.moves) == (1, 0, {})
    before = dict(await store.fetchone("SELECT * FROM entries"))
    r2 = await t.admit(store, [cand(f), cand(f)], run_id=1, now=T0)
    assert (r2.inserted, r2.refreshed, r2.moves) == (0, 1, {})
    assert (await store.fetchone("SELECT count(*) FROM entries"))[0] == 1
    assert dict(await store.fetchone("SELECT * FROM entries")) == before
    assert await n_events(store) == 1


async def test_admit_refreshes_metadata_and_reclassifies(store: Store) -> None:
    await t.admit(store, [cand(fields("0_recl0001"))], run_id=1, now=T0)
    played = fields("0_recl0001", name="Renamed", lastPlayedAt=1_690_000_000, plays=3)
    r = await t.admit(
        store,
        [t.Admission(played, State.KEPT, None, None, "created 2017, last played 2023")],
        run_id=2,
        now=T0 + 10,
    )
    assert r.moves == {"candidate->kept": 1}
    row = await q.get_entry(store, "0_recl0001")
    assert (row.state, row.name, row.plays, row.policy, row.action) == (
        State.KEPT, "Renamed", 3, None, None,
    )  # fmt: skip
    assert (row.last_seen_run, row.refreshed_at, row.state_changed_at) == (2, T0 + 10, T0 + 10)
    r = await t.admit(store, [cand(fields("0_recl0001"))], run_id=3, now=T0 + 20)
    assert r.moves == {"kept->candidate": 1}


async def test_admit_keeps_progress_and_leaves_in_flight_rows_alone(store: Store) -> None:
    ids = ["0_prog0001", "0_prog0002"]
    await t.admit(store, [cand(fields(i)) for i in ids], run_id=1, now=T0)
    await t.move_many(store, ids, State.CANDIDATE, State.SIZED, run_id=1)
    await t.claim(store, State.SIZED, State.DOWNLOADING, 1, run_id=1, lease_seconds=60)
    r = await t.admit(store, [cand(fields(i, name="new")) for i in ids], run_id=2, now=T0 + 5)
    assert r.moves == {} and r.in_flight == [ids[0]]
    states = {i: (await q.get_entry(store, i)).state for i in ids}
    assert states == {ids[0]: State.DOWNLOADING, ids[1]: State.SIZED}
    # In flight: metadata refreshed, decision untouched (the delete worker re-checks).
    r = await t.admit(
        store, [t.Admission(fields(ids[0], name="x"), State.KEPT, reason="played")], run_id=3
    )
    row = await q.get_entry(store, ids[0])
    assert (row.state, row.name, row.policy) == (State.DOWNLOADING, "x", "4-year")


async def test_admission_from_decision(store: Store) -> None:
    policy = Policy.from_mapping({"exemptions": {"tags": ["keep"]}})
    as_of = 1_795_305_600
    cases = {
        "0_dec00001": fields("0_dec00001"),  # candidate
        "0_dec00002": fields("0_dec00002", tags="keep"),  # exempt
        "0_dec00003": fields("0_dec00003", createdAt=as_of - 86_400),  # kept (too new)
        "0_dec00004": {**fields("0_dec00004"), "plays": None},  # no play data: error
    }
    admissions = [
        t.Admission.from_decision(f, evaluate(facts_from_fields(f), policy, as_of))
        for f in cases.values()
    ]
    assert [a.state for a in admissions] == [
        State.CANDIDATE, State.EXEMPT, State.KEPT, State.ERROR,
    ]  # fmt: skip
    await t.admit(store, admissions, run_id=1)
    row = await q.get_entry(store, "0_dec00002")
    assert row.exempt_by == "tag:keep" and row.policy == "4-year" and row.action is None


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ("not a dict", "entry must be an object"),
        ({"createdAt": 1, "status": 2}, "missing or malformed id"),
        (wire_entry("../../etc/passwd"), "missing or malformed id"),
        (wire_entry("0_x", id=12345), "missing or malformed id"),
        ({k: v for k, v in wire_entry("0_x").items() if k != "createdAt"}, "'createdAt'"),
        (wire_entry("0_x", createdAt="yesterday"), "'createdAt' must be an integer"),
        (wire_entry("0_x", createdAt=True), "'createdAt' must be an integer"),
        (wire_entry("0_x", createdAt=-5), "'createdAt' must be a Unix time"),
        (wire_entry("0_x", createdAt=1e300), "'createdAt'"),
        (wire_entry("0_x", lastPlayedAt="never"), "'lastPlayedAt' must be an integer"),
        (wire_entry("0_x", plays=[1]), "'plays' must be an integer"),
        (wire_entry("0_x", name={"evil": 1}), "'name' must be a string"),
        (wire_entry("0_x", status=None), "'status' must be present"),
        (wire_entry("0_x", parentEntryId="../up"), "parentEntryId has a missing or malformed id"),
    ],
)
def test_hostile_wire_entries_are_rejected_cleanly(obj: object, message: str) -> None:
    with pytest.raises(InvalidEntryData, match=message) as info:
        entry_fields_from_wire(obj)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_wire_coercion() -> None:
    f = entry_fields_from_wire(
        wire_entry(
            "1_coer0001",
            createdAt="1500000000",
            status="virusScan.Infected",
            type="externalMedia.externalMedia",
            capabilities="quiz.quiz, other.thing",
            lastPlayedAt=0,
            name="名前\x00<script>",
        )
    )
    assert f["created_at"] == 1_500_000_000 and f["status"] == "virusScan.Infected"
    assert (f["is_quiz"], f["is_external"], f["last_played_at"]) == (1, 1, None)
    assert f["name"] == "名前\x00<script>"  # stored verbatim; never used as a path here
    assert json.loads(f["raw"])["id"] == "1_coer0001"


async def test_no_secret_reaches_the_database(store: Store, db_path: Path) -> None:
    secret = "sup3r-s3cret-admin-value"
    ks = "djJ8MTIzNHxLU1ZBTFVFU0VDUkVU"
    obj = wire_entry(
        "0_secr0001",
        downloadUrl=f"https://cdn.example/p/1/sp/100/playManifest/entryId/0_secr0001/ks/{ks}/a.mp4",
        dataUrl=f"https://cdn.example/x?ks={ks}&a=1",
        ks=ks,
        adminSecret=secret,
    )
    await t.admit(store, [cand(entry_fields_from_wire(obj))], run_id=None)
    asset = columns("flavor", {"id": "0_fl000001", "url": f"https://h/ks/{ks}"}, entry="0_secr0001")
    await q.replace_assets(store, "0_secr0001", [asset])
    await q.start_run(
        store, "audit", {"admin_secret": secret, "app_token": secret, "ks": ks, "db": "x.db"}
    )
    await store.close()
    blob = b"".join(p.read_bytes() for p in db_path.parent.glob("kretain.db*"))
    assert secret.encode() not in blob and ks.encode() not in blob
    assert b"/ks/REDACTED" in blob


async def test_replace_assets_keeps_backup_progress_and_counts_bytes(store: Store) -> None:
    await t.admit(store, [cand(fields("0_asse0001"))], run_id=1)
    src = {"id": "0_src00001", "isOriginal": True, "flavorParamsId": 0, "sizeInBytes": 1000}
    low = {"id": "0_low00001", "flavorParamsId": 4, "size": 2}  # KB when sizeInBytes is 0/absent
    cap = {"id": "0_cap00001", "sizeInBytes": 50, "languageCode": "en", "language": "English"}
    child = {"id": "0_chl00001", "isOriginal": True, "sizeInBytes": 300}
    e = "0_asse0001"
    assets = [
        columns("flavor", src, entry=e, source=True),
        columns("flavor", low, entry=e),
        columns("caption", cap, entry=e),
        columns("flavor", child, entry=e, owner="0_child001", source=True),
    ]
    await q.replace_assets(store, "0_asse0001", assets)
    row = await q.get_entry(store, "0_asse0001")
    # delete_entry frees every asset, the child's and the caption included.
    assert (row.asset_count, row.bytes_total, row.bytes_saved) == (4, 3398, 3398)
    stored = {a.id: a for a in await q.assets_of(store, "0_asse0001")}
    assert stored["0_low00001"].size_bytes == 2048 and stored["0_cap00001"].language == "en"
    assert stored["0_chl00001"].owner_entry_id == "0_child001" and stored["0_chl00001"].is_source
    assert rules.bytes_freed_by("delete_flavors", stored.values(), source_known=True) == 2048
    await q.update_asset_backup(
        store, ("0_asse0001", "0_src00001"), archive_path="a/src.mp4", bytes_done=1000, sha256="ab",
        backup_state=AssetBackupState.VERIFIED, verified_at=T0,
    )  # fmt: skip
    await q.update_asset_backup(store, stored["0_cap00001"], bytes_done=10, backup_state="partial")
    # Re-size: source unchanged, caption grew, low flavor gone.
    cap2 = {**cap, "sizeInBytes": 60}
    await q.replace_assets(
        store,
        "0_asse0001",
        [columns("flavor", src, entry=e, source=True), columns("caption", cap2, entry=e)],
    )
    stored = {a.id: a for a in await q.assets_of(store, "0_asse0001")}
    assert set(stored) == {"0_src00001", "0_cap00001"}
    assert stored["0_src00001"].backup_state == AssetBackupState.VERIFIED
    assert stored["0_src00001"].archive_path == "a/src.mp4"
    assert (stored["0_cap00001"].backup_state, stored["0_cap00001"].bytes_done) == ("pending", 0)
    row = await q.get_entry(store, "0_asse0001")
    assert (row.asset_count, row.bytes_total, row.bytes_saved) == (2, 1060, 1060)
    # An action change sends a sized row back to be sized again (its sizes no longer fit).
    await t.move(store, "0_asse0001", State.CANDIDATE, State.SIZED, run_id=1)
    await t.admit(store, [cand(fields("0_asse0001"), Action.DELETE_FLAVORS)], run_id=2)
    row = await q.get_entry(store, "0_asse0001")
    assert (row.state, row.action, row.bytes_saved) == ("candidate", "delete_flavors", None)
    with pytest.raises(StoreError, match="not in the store"):
        await q.replace_assets(store, "0_nothere1", [])
    with pytest.raises(StoreError, match="not in the store"):
        await q.update_asset_backup(store, ("0_asse0001", "0_nothere1"), bytes_done=1)


def test_hostile_assets_are_rejected() -> None:
    with pytest.raises(InvalidEntryData, match="malformed id"):
        parse_asset("flavor", {"id": "a/b", "entryId": "0_e"})
    with pytest.raises(InvalidEntryData, match="'size'"):
        parse_asset("flavor", {"id": "0_a", "entryId": "0_e", "size": "big"})
    with pytest.raises(InvalidEntryData, match="non-negative"):
        parse_asset("flavor", {"id": "0_a", "entryId": "0_e", "sizeInBytes": -1})
    with pytest.raises(InvalidEntryData, match="unknown asset kind"):
        parse_asset("video", {"id": "0_a", "entryId": "0_e"})


async def test_runs_windows_meta_and_status(store: Store) -> None:
    run_id = await q.start_run(store, "audit", {"db": "k.db"}, as_of="2026-11-22", now=T0)
    await q.finish_run(store, run_id, "ok", {"candidate": 3}, now=T0 + 60)
    run = await q.get_run(store, run_id)
    assert (run.status, run.counts, run.finished_at, run.as_of) == (
        "ok", {"candidate": 3}, T0 + 60, "2026-11-22",
    )  # fmt: skip
    assert [r.id for r in await q.recent_runs(store)] == [run_id]

    await q.seed_window(store, run_id, "ready", 0, 100, T0)
    await q.seed_window(store, run_id, "ready", 0, 999, T0)  # the pass has one already
    (w,) = await q.unfinished_windows(store, run_id)
    assert (w["lo"], w["hi"]) == (0, 100)
    halves = await q.split_window(
        store, w["id"], run_id, "ready", [(0, 50), (51, 100)], 20000, 1, T0
    )
    assert [h for _, h in halves] == [(0, 50), (51, 100)]
    await q.save_window_cursor(
        store, halves[0][0], cursor_created_at=40, seen_ids=["0_a"], split_field="createdAt",
        total_count=9000, done=True, pages=3, now=T0,
    )  # fmt: skip
    assert await q.window_counts(store, run_id) == (2, 1)  # the split parent is not counted
    await q.fail_window(store, halves[1][0], T0)
    assert [r["id"] for r in await q.unfinished_windows(store, run_id)] == [halves[1][0]]

    await q.set_meta(store, "k", "v")
    await q.set_meta(store, "k", "v2")
    assert await q.get_meta(store, "k") == "v2" and await q.get_meta(store, "x") is None
    await q.set_meta(store, "k", None)
    assert await q.get_meta(store, "k") is None

    await t.admit(store, [cand(fields(f"0_stat000{i}")) for i in range(3)], run_id=run_id)
    await q.refresh_entries(store, [fields("0_stat0000", name="fresh")], run_id=run_id)
    assert (await q.get_entry(store, "0_stat0000")).name == "fresh"
    assert await q.refresh_entries(store, [fields("0_unknown1")], run_id=run_id) == ["0_unknown1"]
    rows = await q.status_rows(store)
    assert [(r.state, r.policy, r.entries) for r in rows] == [(State.CANDIDATE, "4-year", 3)]
    assert len(await q.entries_in_state(store, "candidate", action="delete_entry", limit=2)) == 2


async def test_backup_progress_never_undoes_a_finished_file(store: Store) -> None:
    """The heartbeat reads the files in flight, then writes how far each got; a file that
    was verified in between keeps its verification (it once went back to partial, and the
    end-of-stage clean-up then forgot the archived copy)."""
    await t.admit(store, [cand(fields("0_prog0001"))], run_id=1)
    e = "0_prog0001"
    a = {"id": "0_thm00001", "sizeInBytes": 4096}
    b = {"id": "0_thm00002", "sizeInBytes": 4096}
    await q.replace_assets(store, e, [columns("thumb", a, entry=e), columns("thumb", b, entry=e)])
    stored = {x.id: x for x in await q.assets_of(store, e)}
    in_flight = [(stored["0_thm00001"], 1024), (stored["0_thm00002"], 2048)]
    await q.update_asset_backup(
        store, stored["0_thm00002"], archive_path="p/thumb.jpg", bytes_done=4096, sha256="cd",
        backup_state=AssetBackupState.VERIFIED, verified_at=T0,
    )  # fmt: skip
    await q.record_backup_progress(store, in_flight)
    after = {x.id: x for x in await q.assets_of(store, e)}
    assert (after["0_thm00001"].backup_state, after["0_thm00001"].bytes_done) == ("partial", 1024)
    assert (after["0_thm00002"].backup_state, after["0_thm00002"].bytes_done) == ("verified", 4096)
    assert after["0_thm00002"].sha256 == "cd"

"""The restore's parts one by one: what may be sent to Kaltura (rulebook), the policy's
restored exemption, the file part of an upload, migration 6 and the store's bookkeeping."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from kretain import rules
from kretain.kaltura.transport import FileChanged, FilePart
from kretain.policy import Policy, evaluate, facts_from_fields, with_restored
from kretain.simulator.ingest import ENTRY_READONLY
from kretain.store import migrations, open_store, queries, transitions
from kretain.store.models import entry_fields_from_wire
from kretain.store.states import Action, State
from kretain.store.transitions import Admission

YEAR = 365 * 86_400
NOW = 1_795_305_600


def wire(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "objectType": "KalturaMediaEntry",
        "id": "0_orig0001",
        "partnerId": 1234567,
        "name": "Biology 101",
        "description": "Week 1",
        "userId": "alice",
        "creatorId": "bob",
        "tags": "bio,default",
        "categories": "MediaSpace>site>channels>Biology",
        "categoriesIds": "1001",
        "type": 1,
        "mediaType": 1,
        "sourceType": 1,
        "status": 2,
        "createdAt": NOW - 5 * YEAR,
        "updatedAt": NOW - 5 * YEAR,
        "lastPlayedAt": NOW - 4 * YEAR - 86_400,
        "plays": 12,
        "views": 30,
        "duration": 61,
        "msDuration": 61_000,
        "rootEntryId": "0_orig0001",
        "capabilities": "quiz.quiz",
        "displayInSearch": 1,
        "accessControlId": 7,
        "conversionProfileId": 99,
        "redirectEntryId": "0_orig0001",
        "partnerData": "sis:BIO101",
    }
    base.update(extra)
    return base


# ---- the rulebook -----------------------------------------------------------------------


def test_media_add_never_carries_what_kaltura_refuses() -> None:
    sent = rules.entry_for_add(
        wire(), old_id="0_orig0001", reference_id="kretain-restore-0_orig0001", restored_on=NOW
    )
    assert not set(sent) & set(ENTRY_READONLY)  # what the server refuses
    assert not set(sent) & set(rules.ENTRY_NOT_SENT)
    assert {k: sent[k] for k in ("name", "userId", "creatorId", "categories", "partnerData")} == {
        "name": "Biology 101", "userId": "alice", "creatorId": "bob",
        "categories": "MediaSpace>site>channels>Biology", "partnerData": "sis:BIO101",
    }  # fmt: skip
    assert sent["accessControlId"] == 7  # who may see it is kept
    assert sent["tags"] == "bio,default,kretain-restored"
    assert sent["referenceId"] == "kretain-restore-0_orig0001"
    assert sent["description"] == (
        "Week 1\n\n[Restored by kretain on 2026-11-22 from entry 0_orig0001 (created "
        "2021-11-23, last played 2022-11-22, 12 plays).]"
    )


def test_a_child_carries_its_parent_and_nothing_a_child_may_not_have() -> None:
    sent = rules.entry_for_add(
        wire(startDate=NOW), old_id="0_kid00001", reference_id="r-kid", restored_on=NOW,
        parent_id="0_new00001",
    )  # fmt: skip
    assert sent["parentEntryId"] == "0_new00001" and sent["displayInSearch"] == -1
    for forbidden in ("categories", "categoriesIds", "accessControlId", "startDate", "endDate"):
        assert forbidden not in sent


def test_reference_note_and_what_can_be_recreated() -> None:
    assert rules.restore_reference(wire(referenceId="SIS-42"), "0_x") == "SIS-42"
    assert rules.restore_reference(wire(referenceId="x"), "0_x") == "kretain-restore-0_x"
    assert rules.not_recreatable(wire()) is None
    youtube = wire(type="externalMedia.externalMedia", objectType="KalturaExternalMediaEntry")
    assert "YouTube" in (rules.not_recreatable(youtube) or "")
    assert "not a media clip" in (rules.not_recreatable(wire(type=5)) or "")
    note = rules.restore_note("0_x", {"createdAt": "garbage"}, NOW)
    assert "creation date unknown" in note and "never played" in note
    assert rules.in_recycle_bin({"displayInSearch": -2, "status": 2})
    assert not rules.in_recycle_bin({"displayInSearch": -2, "status": 3})
    assert not rules.in_recycle_bin({"displayInSearch": 1, "status": 2})


def test_asset_fields_and_the_default_thumbnail_mark() -> None:
    caption = {"id": "1_c", "language": "English", "languageCode": "en", "label": "EN",
               "format": "3", "isDefault": True, "status": 2, "captionParamsId": 5,
               "fileExt": "../x", "size": 9}  # fmt: skip
    assert rules.asset_for_add("caption", caption) == {
        "language": "English", "label": "EN", "format": "3", "isDefault": True,
    }  # fmt: skip
    thumb = {"tags": "default_thumb,slide", "thumbParamsId": 3, "width": 10}
    assert rules.asset_for_add("thumb", thumb) == {"tags": "slide"}
    assert rules.asset_for_add("thumb", {"tags": "default_thumb"}) == {}
    assert rules.is_default_thumb(thumb) and not rules.is_default_thumb({"tags": "x"})


def test_upload_chunks_cover_the_file_once() -> None:
    assert rules.upload_chunks(0, 4) == [(0, 0)]
    assert rules.upload_chunks(10, 4) == [(0, 4), (4, 4), (8, 2)]
    assert rules.upload_chunks(8, 4) == [(0, 4), (4, 4)]
    with pytest.raises(ValueError):
        rules.upload_chunks(8, 0)


def _doc(**extra: Any) -> dict[str, Any]:
    sha = "ab" * 32
    doc: dict[str, Any] = {
        "format": "kretain-entry/1",
        "entry_id": "0_orig0001",
        "entry": wire(),
        "children": [{"id": "0_kid00001", "entry": wire(id="0_kid00001")},
                     {"id": "0_kid00002", "entry": None}],
        "files": [
            {"asset_id": "1_th0001", "owner_entry_id": "0_orig0001", "kind": "thumb",
             "file": "thumb-1_th0001.jpg", "size": 3, "sha256": sha, "asset": {}},
            {"asset_id": "1_src001", "owner_entry_id": "0_orig0001", "kind": "flavor",
             "is_source": True, "file": "flavor-1_src001.mp4", "size": 5, "sha256": sha},
            {"asset_id": "1_cap001", "owner_entry_id": "0_orig0001", "kind": "caption",
             "file": "caption-1_cap001.srt", "size": 2, "sha256": sha},
            {"asset_id": "1_ksrc01", "owner_entry_id": "0_kid00001", "kind": "flavor",
             "is_source": True, "file": "flavor-1_ksrc01.mp4", "size": 4, "sha256": sha},
            {"asset_id": "1_gone01", "owner_entry_id": "0_kid00002", "kind": "thumb",
             "file": "thumb-1_gone01.jpg", "size": 4, "sha256": sha},
        ],
    }  # fmt: skip
    doc.update(extra)
    return doc


def test_restore_plan_from_entry_json() -> None:
    plan = rules.restore_plan(_doc(), "0_orig0001")
    assert [c for c, _ in plan.children] == ["0_kid00001"]
    assert plan.sources["0_orig0001"].asset_id == "1_src001"
    assert [f.kind for f in plan.others["0_orig0001"]] == ["caption", "thumb"]
    assert [f.asset_id for f in plan.files] == ["1_src001", "1_cap001", "1_th0001", "1_ksrc01"]
    assert any("0_kid00002" in why for why in plan.skipped)
    with pytest.raises(rules.WireValueError, match="describes"):
        rules.restore_plan(_doc(), "0_other001")
    bad_sha = _doc(files=[{**_doc()["files"][0], "sha256": "nope"}])
    with pytest.raises(rules.WireValueError, match="no sha256"):
        rules.restore_plan(bad_sha, "0_orig0001")
    escape = _doc(files=[{**_doc()["files"][0], "file": "../../etc/passwd"}])
    with pytest.raises(rules.WireValueError, match="bad file name"):
        rules.restore_plan(escape, "0_orig0001")


# ---- the policy -------------------------------------------------------------------------


def test_restored_entries_are_exempt_by_restored_even_never_ready_ones() -> None:
    policy = Policy.default()
    ready = entry_fields_from_wire(wire())
    broken = entry_fields_from_wire(wire(id="0_orig0002", status=-1))
    assert evaluate(facts_from_fields(ready), policy, NOW).action == "delete_entry"
    held = with_restored(policy, ["0_orig0001", "0_orig0002"])
    decision = evaluate(facts_from_fields(ready), held, NOW)
    assert decision.action is None and decision.exempt_by == "restored"
    assert decision.rule == "4-year"
    assert evaluate(facts_from_fields(broken), held, NOW).exempt_by == "restored"
    assert with_restored(policy, []) is policy


# ---- the file part of an upload -------------------------------------------------------


async def test_file_part_sends_its_range_and_hashes_what_went_out(tmp_path: Path) -> None:
    data = bytes(range(256)) * 20_000  # 5 MB: several blocks
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    part = FilePart(path, filename="f.bin", offset=1_000_001, length=2_500_000)
    out = bytearray()

    async def write(block: bytes) -> None:
        out.extend(block)

    await part.stream(write)
    assert bytes(out) == data[1_000_001:3_500_001]
    assert part.sha256 == hashlib.sha256(out).hexdigest() and part.sent == 2_500_000
    assert part.payload().size == 2_500_000
    path.write_bytes(data[:2_000_000])  # the file shrank
    with pytest.raises(FileChanged):
        await part.stream(write)
    assert part.cut_short and part.sha256 is None


# ---- the store ----------------------------------------------------------------------------


async def test_migration_6_keeps_a_version_5_database(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    async with aiosqlite.connect(db, isolation_level=None) as conn:
        await migrations.migrate(conn, target=5)
        await conn.execute(
            "INSERT INTO entries (id, created_at, state, state_changed_at, discovered_at) "
            "VALUES ('0_old00001', 1500000000, 'deleted', 1, 1)"
        )
    store = await open_store(db)
    try:
        assert await migrations.schema_version(store.conn) == 6
        assert (await queries.get_entry(store, "0_old00001")).state == State.DELETED  # type: ignore[union-attr]
        assert await queries.exemptions(store) == []
    finally:
        await store.close()


async def _deleted_rows(store: Any, ids: list[str]) -> None:
    await transitions.admit(
        store,
        [
            Admission(entry_fields_from_wire(wire(id=i)), State.CANDIDATE, "4-year",
                      Action.DELETE_ENTRY)
            for i in ids
        ],
        run_id=None,
    )  # fmt: skip
    for i in ids:
        await transitions.move(store, i, State.CANDIDATE, State.DELETING, run_id=None)
        await transitions.move(store, i, State.DELETING, State.DELETED, run_id=None)


async def test_claims_take_only_the_named_rows(tmp_path: Path) -> None:
    async with await open_store(tmp_path / "k.db") as store:
        await _deleted_rows(store, ["0_aaaa0001", "0_aaaa0002", "0_aaaa0003"])
        run_id = await queries.start_run(store, "restore", {})
        wanted = {"0_aaaa0003", "0_aaaa0001"}
        assert await transitions.count_claimable(store, State.DELETED, entry_ids=wanted) == 2
        rows = await transitions.claim(
            store, State.DELETED, State.RESTORING, 10, run_id, 60, entry_ids=wanted
        )
        assert {r.id for r in rows} == wanted
        assert all(r.lease_from_state == State.DELETED for r in rows)
        # Handed back (a failed restore): the state it came from, its deleted_at untouched.
        before = (await queries.get_entry(store, "0_aaaa0001")).deleted_at  # type: ignore[union-attr]
        await transitions.release(store, ["0_aaaa0001"], run_id, now=before + 999)  # type: ignore[operator]
        row = await queries.get_entry(store, "0_aaaa0001")
        assert row.state == State.DELETED and row.deleted_at == before  # type: ignore[union-attr]


async def test_restore_bookkeeping_and_exemptions(tmp_path: Path) -> None:
    async with await open_store(tmp_path / "k.db") as store:
        await _deleted_rows(store, ["0_aaaa0001"])
        await queries.start_restore(store, "0_aaaa0001", "archive", run_id=1, now=100)
        await queries.save_restore_object(store, "0_aaaa0001", "1_src", "flavor", "token",
                                          token_id="0_tok")  # fmt: skip
        await queries.save_restore_object(store, "0_aaaa0001", "1_src", "flavor", "uploaded")
        made = await queries.restore_objects(store, "0_aaaa0001")
        assert made["1_src"].token_id == "0_tok" and made["1_src"].step == "uploaded"
        await queries.fail_restore(store, "0_aaaa0001", "boom", now=200)
        await queries.start_restore(store, "0_aaaa0001", "archive", run_id=2, now=300)
        progress = await queries.get_restore(store, "0_aaaa0001")
        assert (progress.started_at, progress.attempts, progress.run_id) == (100, 1, 2)  # type: ignore[union-attr]

        await queries.add_exemptions(store, {"0_new00001": ("restored", "0_aaaa0001")},
                                     run_id=2)  # fmt: skip
        await queries.add_exemptions(store, {"0_new00001": ("again", None)}, run_id=3)
        [held] = await queries.exemptions(store)
        assert (held.reason, held.restored_from) == ("restored", "0_aaaa0001")  # first kept
        assert await queries.lift_exemptions(store, ["0_new00001", "0_none0001"], run_id=None) == [
            "0_new00001"
        ]
        assert await queries.exemptions(store) == []
        events = await store.fetchall(
            "SELECT outcome FROM events WHERE entry_id = '0_new00001' AND kind = 'admin'"
        )
        assert [e[0] for e in events] == ["exempted", "exemption_lifted"]


async def test_rows_an_unfinished_strip_removed_flavors_from(tmp_path: Path) -> None:
    """A strip stopped part-way leaves flavors marked removed. Kept since (played or exempted),
    the row is taken by a restore (its flavors are converted again); still on its way
    (sized), it is not, and the reason names what was removed instead of "nothing was
    removed from Kaltura"; a kept row with no removed flavor is not taken."""
    from kretain.store.models import asset_columns
    from kretain.workers.restore import _restorable, _why_not

    async with await open_store(tmp_path / "k.db") as store:
        ids = ["0_kept0001", "0_size0001", "0_kept0002"]
        await transitions.admit(
            store,
            [Admission(entry_fields_from_wire(wire(id=i)), State.CANDIDATE, "2-year",
                       Action.DELETE_FLAVORS) for i in ids],
            run_id=None,
        )  # fmt: skip
        for i in ids:
            flavors = [
                {"id": f"{i}_src", "isOriginal": True, "flavorParamsId": 0, "sizeInBytes": 900},
                {"id": f"{i}_low", "flavorParamsId": 4, "sizeInBytes": 300},
                {"id": f"{i}_mid", "flavorParamsId": 5, "sizeInBytes": 500},
            ]
            cols = [
                asset_columns(rules.parse_asset("flavor", {"entryId": i, **w}, owner=i),
                              top_entry=i, is_source=w["id"].endswith("_src"))
                for w in flavors
            ]  # fmt: skip
            await queries.replace_assets(store, i, cols)
        for i, state in (("0_kept0001", State.KEPT), ("0_size0001", State.SIZED),
                         ("0_kept0002", State.KEPT)):  # fmt: skip
            await transitions.move(store, i, State.CANDIDATE, state, run_id=None)
        for i in ("0_kept0001", "0_size0001"):
            await queries.mark_removed(store, i, [f"{i}_low", f"{i}_mid"], 50)
        removed = await queries.removed_flavors(store, ids)
        assert sorted(removed) == ["0_kept0001", "0_size0001"]
        assert [a.id for a in removed["0_kept0001"]] == ["0_kept0001_low", "0_kept0001_mid"]
        rows = [await queries.get_entry(store, i) for i in ids]
        wanted, others = await _restorable(store, rows)  # type: ignore[arg-type]
    assert [r.id for r in wanted] == ["0_kept0001"]
    reasons = {r.id: _why_not(r, gone) for r, gone in others}
    assert reasons["0_size0001"].startswith(
        "state sized: a strip that did not finish removed 2 of its flavors (params 4, 5)"
    )
    assert reasons["0_kept0002"] == "state kept: nothing was removed from Kaltura"

"""Audit, back up, delete, restore: the deleted entries come back from the archive.

Everything is real and goes through the CLI: `kretain run` audits the simulated partner and
backs the entries up into the archive, `kretain run --delete --yes` deletes them, `kretain
restore --yes` re-creates them. The restored files are downloaded again (getUrl + HTTP) and
compared with the archive's sha256.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from restore_support import (
    ENTRIES,
    SPEC,
    WITH_ATTACHMENT,
    client_for,
    db_rows,
    entry_json,
    kretain,
    mutations,
    retention_run,
    store_at,
)

from kretain import rules
from kretain.simulator.testing import RunningSimulator, run_simulator
from kretain.store import queries
from kretain.store.states import State

RECREATED = [ENTRIES["captions_child"], WITH_ATTACHMENT, ENTRIES["audio"], ENTRIES["evil_name"]]


@pytest.fixture(scope="module")
def restored(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One round trip shared by the tests below: four entries (a multi-stream parent with
    captions and thumbnails, one with an attachment, an audio, an image with a hostile
    name), plus a YouTube entry (refused) and one that never became ready (no source)."""
    tmp = tmp_path_factory.mktemp("roundtrip")
    db, root = tmp / "k.db", tmp / "archive"
    ids = [*RECREATED, ENTRIES["external"], ENTRIES["source_error"]]
    with run_simulator(SPEC) as sim:
        retention_run(sim, db, root, ids)
        before = len(sim.mutations)
        dry = kretain(sim, db, "restore", *ids)
        dry_mutations = len(sim.mutations) - before
        real = kretain(sim, db, "restore", *ids, "--yes")
        yield sim, db, root, dry, dry_mutations, real


def new_id_of(db: Path, entry_id: str) -> str:
    async def go() -> str:
        async with store_at(db) as store:
            row = await queries.get_entry(store, entry_id)
            assert row is not None and row.state == State.RESTORED, row
            assert row.new_entry_id
            return row.new_entry_id

    return asyncio.run(go())


async def download(sim: RunningSimulator, kind: str, asset_id: str) -> str:
    async with client_for(sim) as client:
        url = await client.get_asset_url(kind, asset_id)  # type: ignore[arg-type]
        digest = hashlib.sha256()
        async with client.http.get(url) as response:
            assert response.status == 200
            async for block in response.content.iter_chunked(1 << 16):
                digest.update(block)
        return digest.hexdigest()


def tags(value: Any) -> set[str]:
    return {t.strip() for t in str(value or "").split(",") if t.strip()}


def test_the_delete_stage_deleted_them_after_the_backup(restored: Any) -> None:
    sim, db, root, *_ = restored
    ids = {*RECREATED, ENTRIES["external"], ENTRIES["source_error"]}
    deleted = [m["id"] for m in mutations(sim, "baseEntry.delete") if m["outcome"] == "ok"]
    assert sorted(deleted) == sorted(ids)  # each once, by the delete stage
    for entry_id in ids:
        moves = db_rows(
            db,
            "SELECT kind, action, outcome, from_state, to_state FROM events WHERE entry_id = ? "
            "AND (action = 'baseentry.delete' OR to_state IN ('archived', 'deleting', 'deleted')"
            " AND from_state != 'restoring') ORDER BY id",
            (entry_id,),
        )
        assert moves[-5:] == [
            ("state", "delete_entry", "moved", "downloading", "archived"),
            ("state", "delete_entry", "claimed", "archived", "deleting"),
            ("intent", "baseentry.delete", "intent", None, None),
            ("api", "baseentry.delete", "ok", None, None),
            ("state", "delete_entry", "moved", "deleting", "deleted"),
        ], entry_id
        assert entry_json(root, SPEC.partner_id, entry_id)["entry"]["id"] == entry_id
    modes = db_rows(db, "SELECT DISTINCT delete_mode FROM entries WHERE deleted_at IS NOT NULL")
    assert modes == [("delete",)]


def test_dry_run_lists_the_plans_and_changes_nothing(restored: Any) -> None:
    sim, db, root, dry, dry_mutations, _ = restored
    assert dry.exit_code == 0, dry.output
    assert dry_mutations == 0  # not one call that changes Kaltura
    assert "dry run" in dry.stdout and "nothing was changed" in dry.stderr
    for entry_id in RECREATED:
        line = next(x for x in dry.stdout.splitlines() if x.startswith(entry_id))
        assert "would re-create from the archive" in line
    external = next(x for x in dry.stdout.splitlines() if x.startswith(ENTRIES["external"]))
    assert "would REFUSE" in external and "YouTube" in external


def test_deleted_entries_come_back_with_every_file(restored: Any) -> None:
    sim, db, root, _, _, real = restored
    assert real.exit_code == 8, real.output  # the YouTube entry is refused, the rest restored
    for old in RECREATED:
        new = new_id_of(db, old)
        assert new != old
        doc = entry_json(root, SPEC.partner_id, old)
        owners = {old: new}
        for child_id, _wire in [(c["id"], c["entry"]) for c in doc["children"]]:
            kids = sim.partner.sql(
                "SELECT e.id FROM entries e JOIN entry_extra x ON x.idx = e.idx "
                "WHERE e.parent_entry_id = ? AND x.reference_id = ?",
                (new, f"kretain-restore-{child_id}"),
            )
            assert len(kids) == 1, f"child {child_id} of {old} re-created once, under {new}"
            owners[child_id] = kids[0][0]
        for owner_old, owner_new in owners.items():
            archived_files = [f for f in doc["files"] if f["owner_entry_id"] == owner_old]
            live = sim.partner.assets_of(owner_new)
            for kind in ("flavor", "caption", "attachment", "thumb"):
                want = sorted(f["sha256"] for f in archived_files if f["kind"] == kind)
                got = sorted(
                    asyncio.run(download(sim, kind, a["id"])) for a in live if a["kind"] == kind
                )
                assert got == want, f"{kind} files of {owner_old} (now {owner_new})"


def test_metadata_is_kept_where_kaltura_allows_it(restored: Any) -> None:
    sim, db, root, *_ = restored
    for old in RECREATED:
        new = sim.partner.get_entry(new_id_of(db, old))
        orig = entry_json(root, SPEC.partner_id, old)["entry"]
        for name in ("name", "userId", "creatorId", "mediaType", "categories", "partnerData"):
            assert new.get(name) == orig.get(name), name
        assert tags(new["tags"]) == tags(orig.get("tags")) | {rules.RESTORED_TAG}
        assert new["referenceId"] == rules.restore_reference(orig, old)
        # What a client may not set is new, and the original is noted in the description.
        assert new["createdAt"] > orig["createdAt"] and new["plays"] == 0
        assert new["description"].startswith(orig.get("description") or "[Restored")
        assert f"from entry {old} (created {rules.day(orig['createdAt'])}" in new["description"]


def test_captions_attachments_and_the_default_thumbnail(restored: Any) -> None:
    sim, db, root, *_ = restored
    for old in (ENTRIES["captions_child"], WITH_ATTACHMENT):
        doc = entry_json(root, SPEC.partner_id, old)
        mine = [f for f in doc["files"] if f["owner_entry_id"] == old]
        live = sim.partner.assets_of(new_id_of(db, old))

        def described(kind: str, fields: tuple[str, ...], assets: list[dict[str, Any]]) -> list:
            return sorted(tuple(str(a.get(k)) for k in fields) for a in assets if a["kind"] == kind)

        caption = ("language", "label", "format", "isDefault")
        assert described("caption", caption, live) == described(
            "caption", caption, [{**f["asset"], "kind": f["kind"]} for f in mine]
        )
        attachment = ("filename", "title", "format")
        assert described("attachment", attachment, live) == described(
            "attachment", attachment, [{**f["asset"], "kind": f["kind"]} for f in mine]
        )
        default_was = next(
            f for f in mine if f["kind"] == "thumb" and rules.is_default_thumb(f["asset"])
        )
        defaults = [a for a in live if a["kind"] == "thumb" and rules.is_default_thumb(a)]
        assert len(defaults) == 1
        assert asyncio.run(download(sim, "thumb", defaults[0]["id"])) == default_was["sha256"]
    calls = [m for m in sim.mutations if m["action"] == "setasdefault" and m["outcome"] == "ok"]
    assert len(calls) >= 2  # marked default explicitly, once per restored entry with thumbnails


def test_what_cannot_be_recreated_is_refused_or_reported(restored: Any) -> None:
    sim, db, root, _, _, real = restored
    external = next(x for x in real.stdout.splitlines() if x.startswith(ENTRIES["external"]))
    assert "REFUSED" in external and "YouTube" in external

    async def rows() -> tuple[Any, Any, Any]:
        async with store_at(db) as store:
            return (
                await queries.get_entry(store, ENTRIES["external"]),
                await queries.get_restore(store, ENTRIES["external"]),
                await queries.get_entry(store, ENTRIES["source_error"]),
            )

    ext_row, ext_restore, broken = asyncio.run(rows())
    assert ext_row.state == State.DELETED and ext_restore.attempts == 1  # handed back
    assert "YouTube" in (ext_restore.last_error or "")
    # Never ready, its only flavor in ERROR: back as an entry without content, captions etc.
    assert broken.state == State.RESTORED
    assert str(sim.partner.get_entry(broken.new_entry_id)["status"]) == rules.ENTRY_NO_CONTENT


def test_restored_entries_are_exempt_and_exported_with_both_ids(restored: Any) -> None:
    sim, db, *_ = restored

    async def held() -> dict[str, str | None]:
        async with store_at(db) as store:
            return {e.entry_id: e.restored_from for e in await queries.exemptions(store)}

    exempt = asyncio.run(held())
    for old in RECREATED:
        assert exempt[new_id_of(db, old)] == old
    result = kretain(sim, db, "export", "--state", "restored")
    assert result.exit_code == 0, result.output
    table = {r["entry_id"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert set(table) == {*RECREATED, ENTRIES["source_error"]}
    freed = dict(db_rows(db, "SELECT id, bytes_freed FROM entries"))
    for old in RECREATED:
        row = table[old]
        assert row["new_entry_id"] == new_id_of(db, old)
        # Deleted (not recycled) by the delete stage, with what it freed; in no bin.
        assert (row["mode"], row["bin_empties"]) == ("delete", "")
        assert int(row["bytes_freed"]) == freed[old] > 0


def json_values(text: str) -> list[Any]:
    """The JSON values printed one after another (`status --json`: an array per table)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    text = text.strip()
    while at < len(text):
        value, at = decoder.raw_decode(text, at)
        values.append(value)
        while at < len(text) and text[at].isspace():
            at += 1
    return values


def test_status_counts_the_restored_entries_and_what_is_still_deleted(restored: Any) -> None:
    sim, db, *_ = restored
    status = kretain(sim, db, "status", "--json")
    assert status.exit_code == 0, status.output
    by_state, done, errors, _last = json_values(status.stdout)
    entries = {r["state"]: 0 for r in by_state}
    for r in by_state:
        entries[r["state"]] += r["entries"]
    assert entries["restored"] == len(RECREATED) + 1  # and the one that never became ready
    assert entries["deleted"] == 1  # the YouTube entry, refused
    assert [(r["done"], r["entries"]) for r in done] == [("deleted", 1)]
    assert errors == []


def test_a_second_restore_does_nothing(restored: Any) -> None:
    sim, db, *_ = restored
    before = len(sim.mutations)
    again = kretain(sim, db, "restore", *RECREATED, "--yes")
    assert again.exit_code == 0, again.output
    assert len(sim.mutations) == before
    for old in RECREATED:
        line = next(x for x in again.stdout.splitlines() if x.startswith(old))
        assert "nothing to do" in line and f"already restored as {new_id_of(db, old)}" in line


def run_id(result: Any) -> int:
    """The run id a `kretain run` names on stderr ("run 4: log ...")."""
    line = next(x for x in result.stderr.splitlines() if x.startswith("run "))
    return int(line.split()[1].rstrip(":"))


def test_the_next_run_leaves_the_restored_entries_alone(restored: Any) -> None:
    """The re-created entries are exempt: a run that would otherwise take them (its as-of
    after their creation, so the policy's any-age rule matches them) plans nothing."""
    sim, db, root, *_ = restored
    new_ids = {old: new_id_of(db, old) for old in [*RECREATED, ENTRIES["source_error"]]}
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    before = len(mutations(sim))
    plan = kretain(
        sim, db, "run", "--no-progress", "--delete", config=db.parent / "retention.toml",
        KRETAIN_AS_OF=tomorrow, KRETAIN_ARCHIVE=str(root),
    )  # fmt: skip
    assert plan.exit_code == 0, plan.output
    assert len(mutations(sim)) == before
    rows = dict(
        db_rows(
            db,
            f"SELECT id, state || ' ' || exempt_by FROM entries "
            f"WHERE id IN ({','.join('?' * len(new_ids))})",
            tuple(new_ids.values()),
        )
    )
    assert rows == dict.fromkeys(new_ids.values(), f"exempt {rules.RESTORED_EXEMPTION}")
    [plan_csv] = (db.parent / "kretain-plans").glob(f"plan-{run_id(plan)}.csv")
    with open(plan_csv, newline="", encoding="utf-8") as fh:
        lines = list(csv.DictReader(fh))
    assert not [ln for ln in lines if ln["decision"] in ("delete", "recycle", "strip")]

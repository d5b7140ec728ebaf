"""backup() end to end: real HTTP to the simulator, a real SQLite store, real files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_backup_support import (
    ENTRIES,
    SPEC,
    children_of,
    client_for,
    make_sized,
    run_backup,
    sha256_of,
    state_of,
    store_at,
    true_sha,
    walk,
    wire_assets,
)

from kretain import archive, rules
from kretain.simulator.testing import RunningSimulator
from kretain.store import queries
from kretain.store.states import Action, AssetBackupState, State
from kretain.workers.backup import ENTRY_JSON_FORMAT

FILE_NAME = re.compile(r"(flavor|caption|attachment|thumb)-[0-9]_[a-z0-9]+\.[a-z0-9]{1,10}")


MIXED = [
    ENTRIES[k]
    for k in (
        "captions_child",
        "captions_emoji",
        "evil_name",
        "evil_ext",
        "external",
        "source_error",
        "importing",
    )
]


async def test_backup_archives_a_mixed_set(
    sim: RunningSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every non-ready asset counts as possibly in flight here (no settle period), so the
    # fail-closed path is exercised; the default settle period has its own test below.
    monkeypatch.setattr(rules, "STUCK_AFTER_DAYS", 365 * 100)
    root = tmp_path / "archive"
    pid = SPEC.partner_id
    async with store_at(tmp_path / "k.db") as store, client_for(sim) as client:
        await make_sized(store, client, sim, MIXED)
        # A delete_flavors entry keeps its source: no backup, it stays sized.
        await make_sized(store, client, sim, [ENTRIES["image_a"]], action=Action.DELETE_FLAVORS)
        events: list[str] = []
        result = await run_backup(
            store,
            client,
            root,
            concurrency=3,
            progress=lambda event, **_: events.append(event),
            retry_base_delay=0.01,
        )
        assert result.claimed == len(MIXED)
        assert result.archived == len(MIXED) - 1 and result.failed == 1
        assert events[-1] == "backup.done" and events.count("backup.entry") == len(MIXED)

        # The importing entry's source is QUEUED: incomplete, so failed (not archived).
        importing = await queries.get_entry(store, ENTRIES["importing"])
        assert importing is not None and importing.state == State.BACKUP_FAILED
        assert importing.backup_attempts == 1 and "not ready" in (importing.last_error or "")
        assert not (archive.entry_dir(root, pid, importing.id) / "entry.json").exists()
        assert await state_of(store, ENTRIES["image_a"]) == State.SIZED

        for eid in MIXED:
            if eid == ENTRIES["importing"]:
                continue
            assert await state_of(store, eid) == State.ARCHIVED
            directory = archive.entry_dir(root, pid, eid)
            doc = archive.read_entry_json(directory)
            assert doc["format"] == ENTRY_JSON_FORMAT and doc["entry_id"] == eid
            assert doc["entry"]["id"] == eid and doc["partner_id"] == pid
            stored = {a.id: a for a in await queries.assets_of(store, eid)}
            for f in doc["files"]:
                path = directory / f["file"]
                assert FILE_NAME.fullmatch(f["file"]), f["file"]
                size, sha = true_sha(sim, f["asset_id"])
                assert path.stat().st_size == size == f["size"]
                assert sha256_of(path) == sha == f["sha256"]
                row = stored[f["asset_id"]]
                assert row.backup_state == AssetBackupState.VERIFIED
                assert row.sha256 == sha and row.bytes_done == size
                assert row.archive_path == str(path.relative_to(root.resolve()))
            # Every caption, attachment and thumbnail, and one source flavor per owner.
            wire = wire_assets(sim, eid)
            archived_ids = {f["asset_id"] for f in doc["files"]}
            for a in wire:
                if a["kind"] != "flavor" and int(a["status"]) == 2:
                    assert a["id"] in archived_ids, a
            for owner in [eid, *children_of(sim, eid)]:
                flavors = [f for f in doc["files"] if f["kind"] == "flavor"]
                mine = [f for f in flavors if f["owner_entry_id"] == owner]
                src = [a for a in wire if a["kind"] == "flavor" and a.get("isOriginal")]
                src = [a for a in src if a["entryId"] == owner]
                if src and int(src[0]["status"]) == 2:
                    assert [f["asset_id"] for f in mine] == [src[0]["id"]]
            # Non-source flavors are not archived and are marked skipped.
            for a in stored.values():
                if a.kind == "flavor" and a.id not in archived_ids:
                    assert a.backup_state == AssetBackupState.SKIPPED or a.status != "2"

    # Captions in several languages are all kept, each with its language.
    doc = archive.read_entry_json(archive.entry_dir(root, pid, ENTRIES["captions_child"]))
    caps = [f for f in doc["files"] if f["kind"] == "caption"]
    wire_caps = [a for a in wire_assets(sim, ENTRIES["captions_child"]) if a["kind"] == "caption"]
    assert len(caps) == len(wire_caps) >= 2
    assert {c["language"] for c in caps} == {a["language"] for a in wire_caps}
    assert len({c["language"] for c in caps}) >= 2
    # ... and the multi-stream child's source flavor, with the child's metadata.
    (child,) = children_of(sim, ENTRIES["captions_child"])
    assert [c["id"] for c in doc["children"]] == [child]
    assert doc["children"][0]["entry"]["parentEntryId"] == ENTRIES["captions_child"]
    assert any(f["owner_entry_id"] == child and f["kind"] == "flavor" for f in doc["files"])
    tags = [t.strip() for t in (doc["entry"].get("tags") or "").split(",") if t.strip()]
    assert doc["tags"] == tags
    assert doc["categories"] == [
        c.strip() for c in (doc["entry"].get("categories") or "").split(",") if c.strip()
    ]

    # The source in ERROR can never be fetched: recorded, and the entry is archived anyway.
    doc = archive.read_entry_json(archive.entry_dir(root, pid, ENTRIES["source_error"]))
    assert any(
        n["kind"] == "flavor" and n["is_source"] and "status -1" in n["reason"]
        for n in doc["not_archived"]
    )
    # The YouTube entry: metadata, no flavor.
    doc = archive.read_entry_json(archive.entry_dir(root, pid, ENTRIES["external"]))
    assert doc["is_external"] and not [f for f in doc["files"] if f["kind"] == "flavor"]


async def test_hostile_names_and_extensions_stay_inside(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    ids = [ENTRIES["evil_name"], ENTRIES["evil_ext"], ENTRIES["captions_child"]]
    names = {eid: sim.partner.get_entry(eid)["name"] for eid in ids}
    assert names[ENTRIES["evil_name"]] == "../../etc/passwd"
    exts = {a["fileExt"] for eid in ids for a in wire_assets(sim, eid)}
    assert ".." in exts  # evil_ext's image
    async with store_at(tmp_path / "k.db") as store, client_for(sim) as client:
        await make_sized(store, client, sim, ids)
        result = await run_backup(store, client, root, concurrency=2)
        assert result.archived == 3
    resolved = root.resolve()
    files = list(walk(tmp_path))
    for path in files:
        assert path.resolve().is_relative_to(resolved) or path.name.startswith("k.db")
    in_archive = [p for p in files if p.resolve().is_relative_to(resolved)]
    for path in in_archive:
        rel = path.relative_to(root)
        assert len(rel.parts) == 3 and rel.parts[0] == str(SPEC.partner_id)
        assert rel.parts[1] in ids
        assert rel.name == "entry.json" or FILE_NAME.fullmatch(rel.name), rel
        assert not rel.name.endswith(".part")
    # The hostile extension became ".bin"; the name of the entry is in entry.json only.
    assert any(p.suffix == ".bin" for p in in_archive)
    doc = archive.read_entry_json(archive.entry_dir(root, SPEC.partner_id, ENTRIES["evil_name"]))
    assert doc["name"] == "../../etc/passwd"


async def test_second_run_downloads_nothing(sim: RunningSimulator, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    async with store_at(tmp_path / "k.db") as store, client_for(sim) as client:
        await make_sized(store, client, sim, [ENTRIES["image_b"], ENTRIES["audio"]])
        first = await run_backup(store, client, root)
        assert first.archived == 2 and first.files >= 2
        served = sim.stats.bytes_served
        again = await run_backup(store, client, root)
        assert again.claimed == 0 and again.archived == 0
        assert sim.stats.bytes_served == served


async def test_an_asset_stuck_for_years_is_recorded_not_waited_for(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    """The importing entry's source has been QUEUED for years: there is no file and there
    never will be, so the entry is archived with the source listed under not_archived."""
    root = tmp_path / "archive"
    async with store_at(tmp_path / "k.db") as store, client_for(sim) as client:
        await make_sized(store, client, sim, [ENTRIES["importing"]])
        result = await run_backup(store, client, root, concurrency=1, retry_base_delay=0.01)
        assert (result.archived, result.failed) == (1, 0)
        doc = archive.read_entry_json(
            archive.entry_dir(root, SPEC.partner_id, ENTRIES["importing"])
        )
        reasons = " ".join(str(item) for item in doc["not_archived"])
        assert "since" in reasons and "no file" in reasons


def test_backoff_is_bounded() -> None:
    from kretain.workers.backup import backoff_delay

    delays = [backoff_delay(n, 1.0, 30.0, lambda: 1.0) for n in range(1, 12)]
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0] and max(delays) == 30.0
    assert backoff_delay(3, 1.0, 30.0, lambda: 0.0) == 2.0  # jitter halves at most

"""A restore that meets trouble: a damaged or missing archive copy is refused before anything
is made; lost answers are never sent twice; a file that changes while it is uploaded is not
attached; the selection is explained entry by entry."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from ctxhelpers import make_ctx
from restore_support import (
    ENTRIES,
    SPEC,
    client_for,
    entry_json,
    kretain,
    kretain_child,
    mutations,
    new_run,
    retention_config,
    retention_env,
    retention_run,
    served_sha,
    store_at,
)

from kretain import archive
from kretain.simulator.testing import run_simulator
from kretain.store import queries
from kretain.store.states import State
from kretain.workers.restore import RestoreOptions, RestoreResult, restore

EID = ENTRIES["captions_emoji"]  # two captions, two thumbnails, a source of 3 MiB (capped)


def entry_dir(root: Path, entry_id: str = EID) -> Path:
    return archive.entry_dir(root, SPEC.partner_id, entry_id)


def flip_a_byte(path: Path, at: int = 100) -> bytes:
    data = bytearray(path.read_bytes())
    original = bytes(data)
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    return original


def restore_row(db: Path, entry_id: str = EID) -> tuple[Any, Any]:
    async def go() -> tuple[Any, Any]:
        async with store_at(db) as store:
            return await queries.get_entry(store, entry_id), await queries.get_restore(
                store, entry_id
            )

    return asyncio.run(go())


def restored_with_the_reference(sim: Any, entry_id: str = EID) -> list[str]:
    rows = sim.partner.sql(
        "SELECT e.id FROM entries e JOIN entry_extra x ON x.idx = e.idx "
        "WHERE x.reference_id = ? AND e.status != 3",
        (f"kretain-restore-{entry_id}",),
    )
    return [r[0] for r in rows]


def test_a_damaged_archive_copy_is_refused_and_nothing_is_made(tmp_path: Path) -> None:
    db, root = tmp_path / "k.db", tmp_path / "archive"
    with run_simulator(SPEC) as sim:
        retention_run(sim, db, root, [EID])
        thumb = next(entry_dir(root).glob("thumb-*"))
        original = flip_a_byte(thumb)
        before = len(sim.mutations)
        result = kretain(sim, db, "restore", EID, "--yes")
        assert result.exit_code == 8, result.output
        line = next(x for x in result.stdout.splitlines() if x.startswith(EID))
        assert "REFUSED" in line and "sha256" in line and "damaged copy" in line
        assert len(sim.mutations) == before  # nothing uploaded, no entry made
        row, progress = restore_row(db)
        assert row.state == State.DELETED and progress.attempts == 1
        assert "fails its sha256 check" in progress.last_error
        # Once the copy is mended, the restore goes through.
        thumb.write_bytes(original)
        result = kretain(sim, db, "restore", EID, "--yes")
        assert result.exit_code == 0, result.output
        assert restore_row(db)[0].state == State.RESTORED


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("remove_file", "is missing"),
        ("truncate_file", "holds 10 bytes"),
        ("remove_entry_json", "entry.json is missing"),
        ("garble_entry_json", "entry.json in"),
    ],
)
def test_an_incomplete_archive_copy_is_refused(tmp_path: Path, damage: str, message: str) -> None:
    db, root = tmp_path / "k.db", tmp_path / "archive"
    eid = ENTRIES["image_a"]
    with run_simulator(SPEC) as sim:
        retention_run(sim, db, root, [eid])
        folder = entry_dir(root, eid)
        source = next(folder.glob("flavor-*"))
        if damage == "remove_file":
            source.unlink()
        elif damage == "truncate_file":
            source.write_bytes(b"0123456789")
        elif damage == "remove_entry_json":
            (folder / "entry.json").unlink()
        else:
            (folder / "entry.json").write_text("{not json")
        before = len(sim.mutations)
        dry = kretain(sim, db, "restore", eid)
        assert "would REFUSE" in dry.stdout and message in dry.stdout
        result = kretain(sim, db, "restore", eid, "--yes")
        assert result.exit_code == 8 and message in result.stdout, result.output
        assert len(sim.mutations) == before
        assert restore_row(db, eid)[0].state == State.DELETED


def test_an_entry_never_backed_up_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    eid = ENTRIES["image_a"]
    with run_simulator(SPEC) as sim:
        retention_run(sim, db, None, [eid])  # a rule with backup = false: deleted unarchived
        before = len(sim.mutations)
        dry = kretain(sim, db, "restore", eid)
        assert "would REFUSE" in dry.stdout and "no archive copy is recorded" in dry.stdout
        result = kretain(sim, db, "restore", eid, "--yes")
        assert result.exit_code == 8
        assert "no archive copy is recorded" in result.stdout
        assert len(sim.mutations) == before
        assert restore_row(db, eid)[0].state == State.DELETED


def test_an_entry_the_delete_stage_left_mid_call_is_explained_then_restored(
    tmp_path: Path,
) -> None:
    """`kretain run --delete --yes` killed while its baseEntry.delete waits out
    ACTION_BLOCKED: the row stays in deleting, with an intent and no outcome. A restore
    then says so, instead of claiming nothing was removed; once the next run has asked
    Kaltura what happened (and deleted it), the restore goes through."""
    eid = ENTRIES["image_a"]
    db, root = tmp_path / "k.db", tmp_path / "archive"
    with run_simulator(SPEC) as sim:
        config = retention_config(sim, db, [eid], "delete")
        audit = kretain(sim, db, "run", "--no-progress", config=config, **retention_env(root))
        assert audit.exit_code == 0, audit.output
        sim.knobs.set_rate_limit("baseEntry.delete", 0, 600)  # every call blocked
        child = kretain_child(sim, db, "run", "--no-progress", "--delete", "--yes",
                              config=config, **retention_env(root))  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not mutations(sim, "baseEntry.delete"):
                assert child.poll() is None, child.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the delete stage never called"
                time.sleep(0.02)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait(timeout=10)
            child.stderr.close()  # type: ignore[union-attr]
        assert restore_row(db, eid)[0].state == State.DELETING
        for args in ((), ("--yes",)):
            result = kretain(sim, db, "restore", eid, *args)
            assert result.exit_code == 0, result.output
            line = next(x for x in result.stdout.splitlines() if x.startswith(eid))
            assert "nothing to do" in line and "nothing was removed" not in line
            assert "stopped during its call" in line and "kretain run" in line
        assert restore_row(db, eid)[0].state == State.DELETING
        sim.knobs.rate_limits = {}
        again = kretain(
            sim, db, "run", "--no-progress", "--delete", "--yes", config=config,
            **retention_env(root),
        )  # fmt: skip
        assert again.exit_code == 0, again.output
        assert restore_row(db, eid)[0].state == State.DELETED
        assert [m["outcome"] for m in mutations(sim, "baseEntry.delete")][-1] == "ok"
        result = kretain(sim, db, "restore", eid, "--yes")
        assert result.exit_code == 0, result.output
        assert restore_row(db, eid)[0].state == State.RESTORED


def test_a_delete_whose_answer_was_lost_and_resend_refused_stays_restorable(
    tmp_path: Path,
) -> None:
    """baseEntry.delete is applied but its answer is lost; the delete stage sends it again
    and Kaltura answers that with an error (LOCK_TIMED_OUT). Whether the first call took
    effect is still unknown, so Kaltura must be asked: the entry is gone, deleted by
    kretain, and the restore brings it back. (Taking the error for the first call's answer
    left the row in delete_failed, then gone: not restorable, archive or not.)"""
    eid = ENTRIES["image_a"]
    db, root = tmp_path / "k.db", tmp_path / "archive"
    with run_simulator(SPEC) as sim:
        config = retention_config(sim, db, [eid], "delete")
        env = retention_env(root)
        audit = kretain(sim, db, "run", "--no-progress", config=config, **env)
        assert audit.exit_code == 0, audit.output
        sim.knobs.lose_next("baseEntry.delete")
        # One call per 2 s: the re-send waits, so the error can be set up for it alone.
        slow = {**env, "KRETAIN_DELETE_RATE": "1", "KRETAIN_DELETE_WINDOW": "2"}
        child = kretain_child(sim, db, "run", "--no-progress", "--delete", "--yes",
                              config=config, **slow)  # fmt: skip
        deadline = time.monotonic() + 60
        while not mutations(sim, "baseEntry.delete"):
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        sim.knobs.fail_next("baseEntry.delete", "LOCK_TIMED_OUT")
        _, err = child.communicate(timeout=60)
        assert [(m["outcome"], m["answer_lost"]) for m in mutations(sim, "baseEntry.delete")] == [
            ("ok", True),
            ("LOCK_TIMED_OUT", False),
        ]
        again = kretain(sim, db, "run", "--no-progress", "--delete", "--yes", config=config, **env)
        assert again.exit_code == 0, again.output
        row = restore_row(db, eid)[0]
        assert row.state == State.DELETED, (row.state, row.reason, err.decode()[-2000:])
        result = kretain(sim, db, "restore", eid, "--yes")
        assert result.exit_code == 0, result.output
        assert restore_row(db, eid)[0].state == State.RESTORED


async def _restore(sim: Any, db: Path, opts: RestoreOptions, **ctx: Any) -> RestoreResult:
    async with store_at(db) as store, client_for(sim) as client:
        context = make_ctx(store, client, await new_run(store), **ctx)
        rows = await queries.restore_selection(store, ids=[EID])
        return await restore(context, rows, options=opts)


SMALL_CHUNKS = RestoreOptions(chunk_size=256 << 10)  # the 3 MiB source goes in 12 chunks


@pytest.mark.parametrize(
    "lost",
    [
        "media.add",
        "uploadToken.add",
        "uploadToken.upload",
        "media.addContent",
        "caption_captionAsset.add",
        "caption_captionAsset.setContent",
        "thumbAsset.add",
        "thumbAsset.setAsDefault",
    ],
)
def test_a_lost_answer_is_asked_about_never_sent_twice(tmp_path: Path, lost: str) -> None:
    db, root = tmp_path / "k.db", tmp_path / "archive"
    with run_simulator(SPEC) as sim:
        retention_run(sim, db, root, [EID])
        start = len(sim.mutations)
        sim.knobs.lose_next(lost)
        result = asyncio.run(_restore(sim, db, SMALL_CHUNKS))
        assert result.recreated == 1 and not result.problems, result.problems
        made = sim.mutations[start:]
        hit = [m for m in made if f"{m['service']}.{m['action']}" == lost.lower()]
        assert hit[0]["answer_lost"]  # the fault happened...
        # ...and still every object was made once: one entry, one token per file, each file
        # attached once, each chunk sent once.
        assert restored_with_the_reference(sim) == [restore_row(db)[0].new_entry_id]
        doc = entry_json(root, SPEC.partner_id, EID)
        kinds = Counter(f["kind"] for f in doc["files"])
        ok = Counter(f"{m['service']}.{m['action']}" for m in made if m["outcome"] == "ok")
        assert ok["media.add"] == 1 and ok["media.addcontent"] == 1
        assert ok["uploadtoken.add"] == len(doc["files"])
        assert ok["caption_captionasset.add"] == ok["caption_captionasset.setcontent"] == 2
        assert ok["thumbasset.add"] == ok["thumbasset.setcontent"] == kinds["thumb"]
        assert ok["thumbasset.setasdefault"] == 1
        chunks = [m for m in made if m["action"] == "upload" and m["outcome"] == "ok"]
        sent = Counter((m["id"], m["params"].get("resumeAt")) for m in chunks)
        assert max(sent.values()) == 1  # no chunk sent twice
        live = sim.partner.assets_of(restore_row(db)[0].new_entry_id)
        assert sorted(served_sha(sim, a["id"])[1] for a in live) == sorted(
            f["sha256"] for f in doc["files"]
        )


def test_a_file_that_changes_while_it_is_uploaded_is_not_attached(tmp_path: Path) -> None:
    db, root = tmp_path / "k.db", tmp_path / "archive"
    with run_simulator(SPEC) as sim:
        retention_run(sim, db, root, [EID])
        source = next(entry_dir(root).glob("flavor-*"))
        pristine = source.read_bytes()

        def tamper(event: str, **info: Any) -> None:
            # After the first chunk is sent, the rest of the file changes (same size).
            if event == "restore.chunk" and info.get("offset") == 0:
                data = bytearray(source.read_bytes())
                data[len(data) // 2] ^= 0xFF
                source.write_bytes(bytes(data))

        start = len(sim.mutations)
        result = asyncio.run(_restore(sim, db, SMALL_CHUNKS, progress=tamper))
        assert result.refused == 1 and result.recreated == 0
        assert "changed while it was uploaded" in result.problems[0]
        made = sim.mutations[start:]
        assert not [m for m in made if m["action"] == "addcontent"]  # nothing attached
        deleted = [m for m in made if m["service"] == "uploadtoken" and m["action"] == "delete"]
        assert [m["outcome"] for m in deleted] == ["ok"]  # the token with the bad bytes
        row, progress = restore_row(db)
        assert row.state == State.DELETED and "changed while" in progress.last_error
        # With the archive copy as it was, the next restore finishes, in the entry already made.
        source.write_bytes(pristine)
        result = asyncio.run(_restore(sim, db, SMALL_CHUNKS))
        assert result.recreated == 1, result.problems
        made = sim.mutations[start:]
        assert len([m for m in made if m["service"] == "media" and m["action"] == "add"]) == 1
        new_id = restore_row(db)[0].new_entry_id
        flavor = next(a for a in sim.partner.assets_of(new_id) if a["kind"] == "flavor")
        archived_source = next(
            f for f in entry_json(root, SPEC.partner_id, EID)["files"] if f["kind"] == "flavor"
        )
        assert served_sha(sim, flavor["id"]) == (len(pristine), archived_source["sha256"])


def test_the_selection_is_explained_entry_by_entry(tmp_path: Path) -> None:
    db, root = tmp_path / "k.db", tmp_path / "archive"
    eid, other = ENTRIES["image_a"], ENTRIES["image_b"]
    with run_simulator(SPEC) as sim:
        retention_run(sim, db, root, [eid])  # the policy exempts every other entry
        assert kretain(sim, db, "restore").exit_code == 2  # no selection: refused
        ids = tmp_path / "ids.txt"
        ids.write_text(f"# to restore\n{eid}\n\n{other}  # still live\n0_unknown1\n")
        result = kretain(sim, db, "restore", "--file", str(ids))
        assert result.exit_code == 0, result.output
        lines = {x.split()[0]: x for x in result.stdout.splitlines() if x.startswith("0_")}
        assert "would re-create" in lines[eid]
        assert "nothing to do" in lines[other] and "state exempt" in lines[other]
        assert "not in the database" in lines["0_unknown1"]
        ids.write_text("0_fine0001\nnot an id!\n")
        bad = kretain(sim, db, "restore", "--file", str(ids))
        assert bad.exit_code == 2 and "ids.txt:2" in bad.stderr
        # Filters pick the restorable rows only.
        by_state = kretain(sim, db, "restore", "--state", "deleted")
        assert eid in by_state.stdout and other not in by_state.stdout
        by_owner = kretain(sim, db, "restore", "--owner", "nobody@example.edu")
        assert eid not in by_owner.stdout

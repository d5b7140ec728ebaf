"""One writer per database: a second PROCESS is refused; SIGKILL of the holder frees it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kretain.errors import StoreError, StoreLockedError
from kretain.store import open_store
from kretain.store.db import lock_path

HOLDER = """
import asyncio, sys, time
from kretain.store import open_store

async def main():
    store = await open_store(sys.argv[1])
    print("ready", flush=True)
    time.sleep(120)

asyncio.run(main())
"""


def start_holder(db_path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", line
    return proc


async def test_second_process_is_refused_until_holder_is_killed(db_path: Path) -> None:
    proc = start_holder(db_path)
    try:
        with pytest.raises(StoreLockedError) as info:
            await open_store(db_path)
        message = str(info.value)
        assert f"in use by kretain pid {proc.pid} since " in message
        assert str(db_path) in message
        assert info.value.exit_code == 4
        # Readonly opens (status/query/export) take no lock.
        ro = await open_store(db_path, readonly=True)
        assert tuple(await ro.fetchone("SELECT count(*) FROM entries")) == (0,)
        await ro.close()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    store = await open_store(db_path)  # the OS dropped the flock with the process
    try:
        assert lock_path(db_path).read_text().split()[0] == str(os.getpid())
    finally:
        await store.close()


async def test_same_process_second_open_is_refused_and_close_releases(db_path: Path) -> None:
    first = await open_store(db_path)
    with pytest.raises(StoreLockedError):
        await open_store(db_path)
    await first.close()
    second = await open_store(db_path)
    await second.close()


async def test_readonly_needs_an_existing_database_and_cannot_write(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no kretain database"):
        await open_store(tmp_path / "missing.db", readonly=True)
    await (await open_store(tmp_path / "x.db")).close()  # create it
    ro = await open_store(tmp_path / "x.db", readonly=True)
    try:
        with pytest.raises(StoreError, match="read-only"):
            async with ro.transaction():
                pass
        with pytest.raises(Exception, match="readonly"):
            await ro.conn.execute("INSERT INTO meta (key, value) VALUES ('a', 'b')")
    finally:
        await ro.close()


async def test_wal_and_pragmas(store) -> None:
    assert (await store.fetchone("PRAGMA journal_mode"))[0] == "wal"
    assert (await store.fetchone("PRAGMA foreign_keys"))[0] == 1
    assert (await store.fetchone("PRAGMA busy_timeout"))[0] >= 5000


async def test_transaction_rolls_back_on_error(store) -> None:
    with pytest.raises(RuntimeError):
        async with store.transaction() as conn:
            await conn.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')")
            raise RuntimeError("boom")
    assert tuple(await store.fetchone("SELECT count(*) FROM meta")) == (0,)


async def test_cancelled_transactions_never_leave_the_connection_in_one(store) -> None:
    import asyncio

    async def write(i: int) -> None:
        async with store.transaction() as conn:
            await conn.execute("INSERT INTO meta (key, value) VALUES (?, 'x')", (f"k{i}",))
            await asyncio.sleep(0.01)

    # Cancel at every point: while BEGIN is queued, mid-body, while COMMIT is queued.
    for i in range(60):
        task = asyncio.create_task(write(i))
        for _ in range(i % 6):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        async with store.transaction() as conn:  # must not fail "within a transaction"
            await conn.execute("INSERT INTO meta (key, value) VALUES (?, 'ok')", (f"ok{i}",))
    rows = await store.fetchall("SELECT key FROM meta WHERE value = 'ok'")
    assert len(rows) == 60
    assert not store.conn.in_transaction


CHURN = """
import asyncio, sys
from kretain.store import open_store, State, Action
from kretain.store import transitions as t
from kretain.store.models import entry_fields_from_wire

async def main():
    store = await open_store(sys.argv[1])
    ids = [f"0_k{i:07d}" for i in range(300)]
    await t.admit(store, [t.Admission(entry_fields_from_wire(
        {"id": i, "createdAt": 1500000000, "status": 2, "plays": 0}), State.CANDIDATE,
        "4-year", Action.DELETE_ENTRY, "r") for i in ids], run_id=1)
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        await t.move_many(store, ids, State.CANDIDATE, State.KEPT, run_id=n, reason=str(n))
        await t.move_many(store, ids, State.KEPT, State.CANDIDATE, run_id=n, reason=str(n))

asyncio.run(main())
"""


async def test_sigkill_mid_churn_leaves_states_and_events_consistent(db_path: Path) -> None:
    import asyncio

    proc = subprocess.Popen(
        [sys.executable, "-c", CHURN, str(db_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    await asyncio.sleep(0.7)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    store = await open_store(db_path)
    try:
        assert (await store.fetchone("PRAGMA integrity_check"))[0] == "ok"
        rows = await store.fetchall(
            "SELECT e.id, e.state, (SELECT to_state FROM events v WHERE v.entry_id = e.id "
            "ORDER BY v.id DESC LIMIT 1) AS last FROM entries e"
        )
        assert len(rows) == 300
        assert all(r["state"] == r["last"] for r in rows)  # a move and its event: all or nothing
        assert len({r["state"] for r in rows}) == 1  # a batch moved whole or not at all
        moves = (await store.fetchone("SELECT count(*) FROM events"))[0]
        assert moves > 300  # the churn really ran before the kill
    finally:
        await store.close()


async def test_a_symlink_to_a_held_database_is_refused_like_the_path_itself(
    tmp_path: Path,
) -> None:
    """The lock is keyed on the resolved path: a second name for the same file cannot dodge it
    (it would reach SQLite's own lock and die with `database is locked` mid-run)."""
    real = tmp_path / "data" / "kretain.db"
    real.parent.mkdir()
    link = tmp_path / "link.db"
    link.symlink_to(real)
    proc = start_holder(real)
    try:
        with pytest.raises(StoreLockedError) as info:
            await open_store(link)
        assert f"in use by kretain pid {proc.pid} since " in str(info.value)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    proc = start_holder(link)  # and the other way round
    try:
        with pytest.raises(StoreLockedError, match=f"pid {proc.pid} "):
            await open_store(real)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert not lock_path(link).exists()  # one lock file, beside the real database

"""Benchmark `kretain report` on a 1,000,000-entry state database: render time and file size.

    .venv/bin/python bench/report.py [--entries 1000000] [--db PATH] [--fresh]

The database is made by direct INSERTs into a fresh kretain schema (created by open_store):
one INSERT ... SELECT over a recursive counter for the entries, one for their events. THIS IS
FOR THE BENCHMARK ONLY: `entries.state` is written here by plain SQL, not through
kretain/store/transitions.py (the only writer of states in kretain proper), and the events
are made up to match the rows. It takes about half a minute instead of the hours a real
1M-entry audit and delete would; the rows are shaped like a partner half-way through
enforcement: every state, ~5,000 owners, twenty creation years, held-back reasons, removals
over 60 days, and a `raw` wire object of about 700 bytes per row, as real rows carry (the
report must not read them, but the table's size is what a scan costs).

The database is kept (default: $TMPDIR/kretain-bench-report/entries-<N>.db) and reused when
its recorded shape matches; --fresh rebuilds it. Figures printed: build time, database size,
then per format the time of `kretain report` as a command (a fresh process, as a user runs
it), its CPU time (it reads the table in two halves at once, so on two free cores the time is
below the CPU time), the file size and the peak RSS. Targets: under 5 s and under 1 MB for 1M
entries.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kretain.store.db import open_store

SHAPE = "report-bench-1"  # bump when the generated rows change
T_END = 1_767_225_600  # 2026-01-01 UTC: the "as of"
YEAR = 365 * 86_400

# h: a fixed pseudo-random number per row (Knuth's multiplicative hash of n), so every build
# of N entries is the same. Columns are derived from different bits of it.
_ENTRIES_SQL = f"""
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :n),
r AS (
    SELECT i, (i * 2654435761) % 4294967296 AS h FROM n
),
c AS (
    SELECT i, h,
        {T_END} - 20 * {YEAR} + (h % (20 * {YEAR})) AS created,
        (h / 97) % 100 AS pick,
        CASE WHEN (h / 13) % 10 = 0 THEN 'non-ready'
             WHEN {T_END} - 20 * {YEAR} + (h % (20 * {YEAR})) <= {T_END} - 4 * {YEAR}
             THEN '4-year' ELSE '2-year' END AS policy
    FROM r
),
s AS (
    SELECT *,
        CASE
            WHEN pick < 6 THEN 'kept' WHEN pick < 8 THEN 'exempt'
            WHEN pick < 9 THEN 'error' WHEN pick < 10 THEN 'gone'
            WHEN pick < 16 THEN 'candidate' WHEN pick < 36 THEN 'sized'
            WHEN policy = '2-year' THEN
                CASE WHEN pick < 38 THEN 'deleting' WHEN pick < 40 THEN 'delete_failed'
                     ELSE 'stripped' END
            WHEN pick < 37 THEN 'downloading' WHEN pick < 39 THEN 'backup_failed'
            WHEN pick < 55 THEN 'archived' WHEN pick < 56 THEN 'deleting'
            WHEN pick < 58 THEN 'delete_failed' WHEN pick < 90 THEN 'deleted'
            ELSE 'recycled' END AS state
    FROM c
)
INSERT INTO entries (
    id, partner_id, name, owner, media_type, entry_type, status, created_at, updated_at,
    last_played_at, plays, duration, tags, raw, is_quiz, is_external, policy, action, reason,
    state, state_changed_at, discovered_at, sized_at, archived_at, deleted_at, recycled_at,
    stripped_at, bytes_total, bytes_saved, asset_count, bytes_freed, held_reason, held_at
)
SELECT
    printf('0_b%07d', i), 1234567, printf('Lecture %d', i),
    printf('user%04d@univ.example.edu', (h / 7) % 5000),
    CASE (h / 11) % 20 WHEN 0 THEN 2 WHEN 1 THEN 5 ELSE 1 END,
    '1', CASE WHEN policy = 'non-ready' THEN '-1' ELSE '2' END,
    created, created + 500,
    CASE WHEN (h / 17) % 3 = 0 THEN NULL ELSE created + (h / 19) % YEAR_S END,
    (h / 23) % 40,
    CASE (h / 11) % 20 WHEN 0 THEN 0 ELSE 60 + (h / 29) % 7200 END,
    'lecture,recorded',
    printf('{{"objectType":"KalturaMediaEntry","id":"0_b%07d","name":"Lecture %d",'
           || '"description":"%s","userId":"user%04d@univ.example.edu",'
           || '"tags":"lecture,recorded","categories":"MediaSpace>site>channels>Course %d",'
           || '"createdAt":%d,"plays":%d}}',
           i, i, substr(hex(randomblob(200)), 1, 400), (h / 7) % 5000, i % 900, created,
           (h / 23) % 40),
    (h / 31) % 50 = 0, (h / 37) % 40 = 0,
    CASE WHEN state IN ('kept', 'error', 'gone') THEN NULL ELSE policy END,
    CASE WHEN state IN ('kept', 'exempt', 'error', 'gone') THEN NULL
         WHEN policy = '2-year' THEN 'delete_flavors' ELSE 'delete_entry' END,
    policy || ' rule',
    state, {T_END}, {T_END} - 90 * 86400,
    CASE WHEN state NOT IN ('candidate', 'kept', 'exempt', 'error', 'gone')
         THEN {T_END} - 80 * 86400 END,
    CASE WHEN state IN ('archived', 'deleting', 'delete_failed', 'deleted', 'recycled')
              AND policy != '2-year' THEN {T_END} - 70 * 86400 END,
    CASE WHEN state = 'deleted' THEN {T_END} - (h / 41) % 60 * 86400 END,
    CASE WHEN state = 'recycled' THEN {T_END} - (h / 41) % 60 * 86400 END,
    CASE WHEN state = 'stripped' THEN {T_END} - (h / 41) % 60 * 86400 END,
    CASE WHEN state IN ('candidate', 'kept', 'error', 'gone') THEN NULL
         ELSE 50000000 + (h / 43) % 4000000000 END,
    CASE WHEN state IN ('candidate', 'kept', 'error', 'gone') THEN NULL
         WHEN state = 'exempt' THEN 0
         WHEN policy = '2-year' THEN 20000000 + (h / 43) % 2500000000
         ELSE 50000000 + (h / 43) % 4000000000 END,
    CASE WHEN state IN ('candidate', 'kept', 'error', 'gone') THEN NULL ELSE 6 END,
    CASE WHEN state IN ('deleted', 'recycled') THEN 50000000 + (h / 43) % 4000000000
         WHEN state = 'stripped' THEN 20000000 + (h / 43) % 2500000000 END,
    CASE WHEN state IN ('sized', 'archived') AND (h / 47) % 25 = 0 THEN
         CASE (h / 53) % 4 WHEN 0 THEN 'not noticed: owner told ' || date({T_END}, 'unixepoch')
                           WHEN 1 THEN 'recheck failed: INVALID_KS'
                           WHEN 2 THEN 'played since the plan: 2025-12-01'
                           ELSE 'category exemption added after the plan' END END,
    CASE WHEN state IN ('sized', 'archived') AND (h / 47) % 25 = 0 THEN {T_END} END
FROM s
""".replace("YEAR_S", str(YEAR))

# A few state events per row, as transitions.move writes them; removals land on their day.
_EVENTS_SQL = """
INSERT INTO events (time, run_id, entry_id, kind, from_state, to_state, action, outcome, detail)
SELECT discovered_at, 1, id, 'state', NULL, 'candidate', action, 'admitted', reason
FROM entries;
INSERT INTO events (time, run_id, entry_id, kind, from_state, to_state, action, outcome, detail)
SELECT sized_at, 1, id, 'state', 'candidate', 'sized', action, 'moved', NULL
FROM entries WHERE sized_at IS NOT NULL;
INSERT INTO events (time, run_id, entry_id, kind, from_state, to_state, action, outcome, detail)
SELECT archived_at, 2, id, 'state', 'downloading', 'archived', action, 'moved', NULL
FROM entries WHERE archived_at IS NOT NULL;
INSERT INTO events (time, run_id, entry_id, kind, from_state, to_state, action, outcome, detail)
SELECT coalesce(deleted_at, recycled_at, stripped_at), 3, id, 'state', 'deleting', state,
       action, 'moved', NULL
FROM entries WHERE state IN ('deleted', 'recycled', 'stripped');
"""


def default_db(entries: int) -> Path:
    return Path(tempfile.gettempdir()) / "kretain-bench-report" / f"entries-{entries}.db"


def _shape(entries: int) -> str:
    return f"{SHAPE} entries={entries}"


def build(path: Path, entries: int, *, fresh: bool = False) -> float:
    """Make (or reuse) the benchmark database; returns the seconds spent building (0: reused)."""
    if path.exists() and not fresh:
        try:
            conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
            row = conn.execute("SELECT value FROM meta WHERE key = 'bench'").fetchone()
            conn.close()
            if row and row[0] == _shape(entries):
                return 0.0
        except sqlite3.Error:
            pass
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    async def schema() -> None:
        await (await open_store(path)).close()

    asyncio.run(schema())
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")
    conn.execute("BEGIN")
    conn.execute(_ENTRIES_SQL, {"n": entries})
    conn.executescript(_EVENTS_SQL)  # executescript commits the open transaction first
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO runs (started_at, finished_at, command, args, status, as_of) "
        "VALUES (?, ?, 'run', '{}', 'ok', '2026-01-01')",
        (T_END - 90 * 86_400, T_END - 89 * 86_400),
    )
    conn.execute("INSERT INTO meta (key, value) VALUES ('bench', ?)", (_shape(entries),))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - started


def run_report(db: Path, out: Path, fmt: str) -> tuple[float, float, int]:
    """`kretain report` as a command, start to exit: seconds, CPU seconds (user and system,
    every thread) and peak RSS in bytes."""
    started = time.perf_counter()
    kretain = Path(sys.executable).with_name("kretain")
    command = [str(kretain)] if kretain.exists() else [sys.executable, "-m", "kretain.cli"]
    proc = subprocess.Popen(
        [*command, "--db", str(db), "report", "--format", fmt, "--out", str(out)],
        stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, proc.args)
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="database to build or reuse")
    parser.add_argument("--fresh", action="store_true", help="rebuild the database")
    args = parser.parse_args()
    db = args.db or default_db(args.entries)
    built = build(db, args.entries, fresh=args.fresh)
    size_mb = db.stat().st_size / 1e6
    how = f"built in {built:.1f} s" if built else "reused"
    print(f"database: {db} ({args.entries:,} entries, {size_mb:,.0f} MB, {how})")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("html", "html", "markdown"):
            out = Path(tmp) / f"report.{'md' if fmt == 'markdown' else 'html'}"
            seconds, cpu, rss = run_report(db, out, fmt)
            print(
                f"kretain report --format {fmt}: {seconds:.2f} s (CPU {cpu:.2f} s), "
                f"{out.stat().st_size:,} bytes, peak RSS {rss / 1e6:.0f} MB"
            )


if __name__ == "__main__":
    main()

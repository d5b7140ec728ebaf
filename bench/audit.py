"""Benchmark: audit a 1,000,000-entry simulated partner at 50 ms per call.

Prints wall time, HTTP requests per 1,000 entries and kretain's peak memory, then
sizes a 20,000-entry slice the seed scripts' way (one flavorAsset.list per entry,
8 workers) and prints how much faster kretain is per entry.

The simulator runs in its own process (as a real Kaltura would), so the figures
are kretain's alone. The generated partner is cached under --work.

    python bench/audit.py [--entries 1000000] [--latency-ms 50] [--work /tmp/kretain-bench]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from kretain.config import load_settings
from kretain.kaltura.client import KalturaClient
from kretain.log import configure_logging
from kretain.progress import ProgressReporter
from kretain.simulator.partner import Partner, PartnerSpec
from kretain.simulator.testing import start_simulator_process
from kretain.workers.runner import client_config, run_pipeline


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class TreeRss:
    """Peak RSS of this process plus its children except the simulator (kretain's sizing
    worker process counts; the simulator, standing in for Kaltura, does not)."""

    def __init__(self, exclude: int) -> None:
        self.exclude, self.peak = exclude, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _children(self) -> list[int]:
        me, out = os.getpid(), []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                if ppid == me and int(entry) != self.exclude:
                    out.append(int(entry))
        return out

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            total = _rss_mb(os.getpid()) + sum(_rss_mb(c) for c in self._children())
            self.peak = max(self.peak, total)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, peak_rss_mb())


async def seed_way(settings, entry_ids: list[str], workers: int = 8) -> float:
    """The seed scripts' sizing: one flavorAsset.list per entry, N workers."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for entry_id in entry_ids:
        queue.put_nowait(entry_id)
    config = client_config(settings, max_concurrency=workers)
    async with KalturaClient(config) as client:
        await client.ks()

        async def worker() -> None:
            while not queue.empty():
                entry_id = queue.get_nowait()
                await client.call(
                    "flavorasset", "list",
                    {"filter": {"objectType": "KalturaFlavorAssetFilter",
                                "entryIdEqual": entry_id}},
                )  # fmt: skip

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(workers)))
        return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--burst", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--slice", type=int, default=20_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/kretain-bench"))
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    configure_logging(console=True, level="WARNING")

    args.work.mkdir(parents=True, exist_ok=True)
    spec = PartnerSpec(entries=args.entries, seed=1, burst=args.burst)
    partner_db = args.work / f"partner-{args.entries}-{spec.seed}-{args.burst}.sqlite"
    t0 = time.monotonic()
    Partner.create(spec, str(partner_db)).close()  # generate (or reuse) outside the timing
    print(f"partner: {args.entries:,} entries ready in {time.monotonic() - t0:.1f}s ({partner_db})")

    state = args.work / "audit"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir()
    proc, url = start_simulator_process(
        "--entries", str(spec.entries), "--seed", str(spec.seed), "--burst", str(spec.burst),
        "--db", str(partner_db), "--latency-ms", str(args.latency_ms),
    )  # fmt: skip
    try:
        as_of = datetime.fromtimestamp(spec.now, UTC).date().isoformat()
        settings = load_settings(
            {"service_url": url, "partner_id": str(spec.partner_id), "db": str(state / "k.db"),
             "as_of": as_of, "concurrency": str(args.concurrency)},
            {"KALTURA_ADMIN_SECRET": spec.admin_secret}, state, None,
        )  # fmt: skip
        progress = ProgressReporter(live=sys.stderr.isatty(), interval=15)
        tree = TreeRss(exclude=proc.pid)
        started = time.monotonic()
        report = asyncio.run(run_pipeline(settings, stage="audit", progress=progress))
        wall = time.monotonic() - started
        tree_peak = tree.stop()
        progress.finish_line()
        con = sqlite3.connect(state / "k.db")
        rows = con.execute("SELECT count(*) FROM entries").fetchone()[0]
        sized = con.execute("SELECT count(*) FROM entries WHERE state = 'sized'").fetchone()[0]
        per_k = 1000 * report.requests / args.entries
        print(f"kretain audit: {report.status}, {rows:,} rows, {sized:,} sized")
        print(f"  wall time             {wall:8.1f} s   (target < 600 s)")
        print(f"  HTTP requests         {report.requests:8,d}   "
              f"{per_k:.2f} per 1,000 entries (target <= 15)")  # fmt: skip
        print(f"  peak memory (RSS)     {tree_peak:8.0f} MB  (target < 400 MB; "
              f"kretain and its sizing worker process, sampled every 0.5 s; "
              f"this process alone {peak_rss_mb():.0f} MB)")  # fmt: skip
        print(f"  entries/s             {args.entries / wall:8.0f}")

        ids = [
            r[0]
            for r in con.execute(
                "SELECT id FROM entries WHERE state = 'sized' ORDER BY id LIMIT ?", (args.slice,)
            )
        ]
        seed_wall = asyncio.run(seed_way(settings, ids))
        seed_rate = len(ids) / seed_wall
        kretain_rate = sized / wall
        print(f"seed way ({len(ids):,} entries, one flavorAsset.list each, 8 workers): "
              f"{seed_wall:.1f} s, {seed_rate:.0f} entries/s")  # fmt: skip
        print(f"  kretain sizes {kretain_rate / seed_rate:.1f}x faster per entry "
              f"(and also lists, refreshes and sizes captions/attachments/thumbs/children); "
              f"seed way for {args.entries:,}: "
              f"~{args.entries / seed_rate / 60:.0f} min")  # fmt: skip
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()

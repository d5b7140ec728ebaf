"""Benchmark the delete stage: 10,000+ entry deletes and 5,000+ flavor strips at a limit.

    .venv/bin/python bench/delete.py [--entries 34000] [--rate 500] [--window 10]
                                     [--latency-ms 50] [--work /tmp/kretain-bench-delete]

1. A simulated partner (small files) is audited and backed up by `kretain run --archive`
   in a child process, against a simulator without latency (set-up, not measured).
2. A simulator with ``--latency-ms`` on every API request and the partner's own limit on
   baseEntry.delete and flavorAsset.delete (``--rate`` calls per ``--window`` seconds) then
   serves the delete stage, run here with the same rate configured: each entry re-checked in
   batches, every archive re-hashed on the way, every call paced. The default limit, 500
   per 10 s, keeps Kaltura's 10-second windows at a pace that makes 10,000 deletes take
   minutes rather than the hours of a real partner's 35 per 10 s.

Prints, per call, the rate achieved as a share of the limit (target at least 95%), the
ACTION_BLOCKED answers, and this process's peak memory. The simulator runs in its own
process (it stands in for Kaltura), so the figures are kretain's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from kretain.config import load_settings
from kretain.kaltura.client import KalturaClient
from kretain.log import configure_logging
from kretain.simulator.partner import Partner, PartnerSpec
from kretain.simulator.testing import start_simulator_process
from kretain.store import queries
from kretain.store.db import open_store
from kretain.workers.context import RunContext
from kretain.workers.delete import DeleteOptions, delete, plan_path_for
from kretain.workers.runner import archive_target, client_config


def start_simulator(
    spec: PartnerSpec, db: Path, latency_ms: float, limits: list[str]
) -> tuple[subprocess.Popen[str], str]:
    rules = [x for limit in limits for x in ("--rate-limit", limit)] or ["--no-rate-limits"]
    return start_simulator_process(
        "--entries", str(spec.entries), "--seed", str(spec.seed), "--db", str(db),
        "--latency-ms", str(latency_ms), "--max-file-bytes", str(spec.max_file_bytes),
        "--no-traps", *rules,
    )  # fmt: skip


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=34_000)
    parser.add_argument("--rate", type=int, default=500, help="the partner's limit per window")
    parser.add_argument("--window", type=float, default=10.0, help="seconds (Kaltura counts in 10)")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/kretain-bench-delete"))
    parser.add_argument(
        "--reuse", action="store_true", help="start from the last set-up's snapshot (faster)"
    )
    args = parser.parse_args()
    configure_logging(console=True, level="WARNING")

    spec = PartnerSpec(entries=args.entries, seed=3, traps=False, max_file_bytes=4096)
    as_of = datetime.fromtimestamp(spec.now, UTC).date().isoformat()
    run_dir, snapshot = args.work / "run", args.work / f"snapshot-{args.entries}"
    partner_db, db, archive = run_dir / "partner.sqlite", run_dir / "k.db", run_dir / "archive"
    shutil.rmtree(run_dir, ignore_errors=True)
    if args.reuse and snapshot.is_dir():
        shutil.copytree(snapshot, run_dir)
        print(f"set-up: reused {snapshot}")
    else:
        set_up(spec, run_dir, as_of)
        shutil.rmtree(snapshot, ignore_errors=True)
        shutil.copytree(run_dir, snapshot)

    limits = [f"{call}={args.rate}/{args.window:g}" for call in
              ("baseentry.delete", "flavorasset.delete")]  # fmt: skip
    proc, url = start_simulator(spec, partner_db, args.latency_ms, limits)
    try:
        settings = load_settings(
            {"service_url": url, "partner_id": str(spec.partner_id), "db": str(db),
             "as_of": as_of, "archive": str(archive)},
            {"KALTURA_ADMIN_SECRET": spec.admin_secret}, run_dir, None,
        )  # fmt: skip
        result, elapsed = asyncio.run(_deletes(settings, args))
    finally:
        stop(proc)
    print(f"delete stage: {result.deleted:,} entries deleted, {result.stripped:,} stripped "
          f"({result.flavors_deleted:,} flavors), {result.held:,} held back, "
          f"{result.failed} failed, in {elapsed:.0f} s")  # fmt: skip
    for call, c in sorted(result.calls.items()):
        share = (c["per_window"] or 0) / args.rate
        print(
            f"  {call:20s} {c['calls']:7,d} calls  {c['per_window']:6.1f} per {args.window:g} s"
            f" = {share:6.1%} of the limit (target >= 95%)  ACTION_BLOCKED {c['blocked']}"
        )
    print(f"  peak memory (RSS)    {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
          " MB (this process: the delete stage and its archive re-hashing)")  # fmt: skip


def set_up(spec: PartnerSpec, run_dir: Path, as_of: str) -> None:
    """Audit and back up the partner with `kretain run` in a child process (no latency)."""
    run_dir.mkdir(parents=True)
    partner_db = run_dir / "partner.sqlite"
    Partner.create(spec, str(partner_db)).close()
    proc, url = start_simulator(spec, partner_db, 0, [])
    env = {
        **os.environ,
        "KALTURA_SERVICE_URL": url,
        "KALTURA_PARTNER_ID": str(spec.partner_id),
        "KALTURA_ADMIN_SECRET": spec.admin_secret,
        "KRETAIN_AS_OF": as_of,
        "KRETAIN_ARCHIVE": str(run_dir / "archive"),
    }
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "kretain", "--db", str(run_dir / "k.db"), "run",
             "--no-progress"],
            env=env, cwd=run_dir, capture_output=True, text=True,
        )  # fmt: skip
    finally:
        stop(proc)
    if done.returncode != 0:
        raise SystemExit(f"set-up run failed:\n{done.stdout}\n{done.stderr}")
    print(f"set-up: {spec.entries:,} entries audited and backed up in "
          f"{time.monotonic() - started:.0f} s")  # fmt: skip


async def _deletes(settings, args):  # type: ignore[no-untyped-def]
    async with KalturaClient(client_config(settings)) as client:
        await client.ks()
        async with await open_store(settings.db) as store, archive_target(settings) as target:
            run_id = await queries.start_run(store, "bench-delete", {})
            ctx = RunContext(store, client, run_id=run_id, policy=settings.policy,
                             as_of=settings.as_of)  # fmt: skip
            options = DeleteOptions(
                act=True,
                rate=args.rate,
                window=args.window,
                archive=target,
                plan_path=plan_path_for(store.path, run_id),
            )
            started = time.monotonic()
            result = await delete(ctx, options=options)
            elapsed = time.monotonic() - started
            await queries.finish_run(store, run_id, "ok", result.as_counts())
            return result, elapsed


if __name__ == "__main__":
    main()

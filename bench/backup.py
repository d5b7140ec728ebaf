"""Benchmark the backup stage: throughput against a bandwidth-capped simulator, peak memory.

    .venv/bin/python bench/backup.py [--cap-mb 200] [--total-gib 4] [--dir DIR] [--keep]
    .venv/bin/python bench/backup.py --archive s3://kretain-bench/archive [--cap-mb 80]

The simulator runs in a child process (``python -m kretain.simulator``) with
``--total-bandwidth`` = the cap, so this process holds only kretain: its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is the backup's. The archive set is real
simulator entries (partner seed 1, 3,000 entries): the one whose source flavor is ~2 GB,
plus entries picked until the bytes to archive reach ``--total-gib``. Rows reach ``sized``
through the real API (baseEntry.get + the size worker), then ``backup()`` runs and is timed.
Targets: >= 90% of the cap, < 150 MB peak RSS.

``--archive`` names the archive (default: a directory in the work dir). An ``s3://bucket/
prefix`` archive without ``--s3-endpoint-url`` runs against a SeaweedFS (``weed mini``)
started here on loopback, as bench/archive_s3.py does: its own process, so this process's
RSS is still kretain's alone; the files stream from the simulator straight into multipart
uploads. The default cap is then 80 MB/s: on 2 cores SeaweedFS itself needs ~14 CPU-seconds
per GB it takes in, and caps above what the store can ingest measure the store, not kretain.

``--limit server`` (default) caps the simulator (``--total-bandwidth``); ``--limit client``
leaves the simulator uncapped and uses backup()'s own ``bandwidth`` setting; ``--limit none``
measures the ceiling of this machine. ``--probe`` first reads 512 MiB of the big file with a
bare aiohttp loop (no hashing, no disk) to show what the capped simulator can deliver to a
single stream.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from kretain.archive import ArchiveTarget, open_target
from kretain.archive.target import parse_s3_uri
from kretain.kaltura.client import ClientConfig, KalturaClient
from kretain.policy import Policy, Rule
from kretain.rules import NON_READY_STATUSES
from kretain.simulator.partner import Partner, PartnerSpec
from kretain.simulator.testing import start_simulator_process
from kretain.store import queries, transitions
from kretain.store.db import open_store
from kretain.store.models import entry_fields_from_wire
from kretain.store.states import Action, State
from kretain.store.transitions import Admission
from kretain.workers.backup import BackupOptions, backup
from kretain.workers.context import RunContext
from kretain.workers.size import SizeOptions, size
from kretain.workers.verify import verify

SPEC = PartnerSpec(entries=3_000, seed=1)
AS_OF = datetime.fromtimestamp(SPEC.now, UTC).date()
EVERY_ENTRY = Policy(
    rules=(
        Rule("non-ready", "delete_entry", min_age_years=0, statuses=NON_READY_STATUSES),
        Rule("4-year", "delete_entry", min_age_years=0, not_played_years=0),
    )
)
BIG = "0_31the0sy"  # its source flavor is ~2.0 GB
MiB = 1 << 20
GiB = 1 << 30


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def pick_entries(partner: Partner, total: int) -> tuple[list[str], int]:
    """BIG, then READY media entries in id order until the archive set reaches ``total``."""

    def backup_bytes(eid: str) -> int:
        kids = [r[0] for r in partner.sql("select id from entries where parent_entry_id=?", (eid,))]
        out = 0
        for owner in [eid, *kids]:
            for a in partner.assets_of(owner):
                if a["kind"] != "flavor" or a.get("isOriginal"):
                    out += partner.asset_content(a["id"])[0]
        return out

    chosen, acc = [BIG], backup_bytes(BIG)
    rows = partner.sql(
        "select id from entries where status = 2 and type = '1' and parent_entry_id is null"
        " and entitled_only = 0 and id != ? order by id",
        (BIG,),
    )
    for (eid,) in rows:
        size_ = backup_bytes(eid)
        if acc + size_ <= total * 1.02:
            chosen.append(eid)
            acc += size_
        if acc >= total * 0.98:
            break
    return chosen, acc


@contextlib.contextmanager
def archive_store(args: argparse.Namespace, work: Path) -> Iterator[tuple[str, str | None]]:
    """(archive, S3 endpoint): a directory in ``work``, the S3 archive named, or that archive
    on a SeaweedFS started here (its AWS credentials put in this process's environment)."""
    where = args.archive or str(work / "archive")
    if not where.startswith("s3://") or args.s3_endpoint_url:
        yield where, args.s3_endpoint_url
        return
    from kretain.archive.testing import run_seaweedfs

    bucket, _prefix = parse_s3_uri(where)
    with run_seaweedfs(work / "seaweedfs", bucket=bucket) as server:
        os.environ.update(server.env())
        print(f"archive: {where} on SeaweedFS at {server.endpoint} (pid {server.pid})")
        yield where, server.endpoint


async def run(args: argparse.Namespace, work: Path) -> None:
    with archive_store(args, work) as (where, endpoint):
        async with open_target(where, endpoint_url=endpoint) as target:
            await _run(args, work, target)


async def _run(args: argparse.Namespace, work: Path, target: ArchiveTarget) -> None:
    cap = args.cap_mb * 1e6
    partner_db = work / "partner.sqlite"
    partner = Partner.create(SPEC, str(partner_db))
    ids, planned = pick_entries(partner, int(args.total_gib * GiB))
    partner.close()
    print(f"archive set: {len(ids)} entries, {planned / GiB:.2f} GiB (largest file ~2 GB)")
    limit = ["--total-bandwidth", str(cap)] if args.limit == "server" else []
    sim, url = start_simulator_process(
        "--db", str(partner_db), "--entries", str(SPEC.entries), "--seed", str(SPEC.seed),
        "--no-rate-limits", *limit,
    )  # fmt: skip
    who = {"server": "the simulator", "client": "backup(bandwidth=)", "none": "nobody (ceiling)"}
    print(f"cap: {cap / 1e6:.0f} MB/s enforced by {who[args.limit]}")
    try:
        config = ClientConfig(
            service_url=url, partner_id=SPEC.partner_id, admin_secret=SPEC.admin_secret
        )
        async with KalturaClient(config) as client, await open_store(work / "k.db") as store:
            if args.probe:
                await probe(client)
            run_id = await queries.start_run(store, "bench", {})
            wires = [await client.get_entry(eid) for eid in ids]
            await transitions.admit(
                store,
                [
                    Admission(
                        fields=entry_fields_from_wire(w),
                        state=State.CANDIDATE,
                        policy="4-year",
                        action=Action.DELETE_ENTRY,
                        reason="bench",
                    )
                    for w in wires
                ],
                run_id=run_id,
            )
            # The entries are picked by size, not by age: a policy under which all qualify.
            ctx = RunContext(store, client, run_id=run_id, policy=EVERY_ENTRY, as_of=AS_OF)
            sized = await size(ctx, options=SizeOptions(concurrency=2))
            assert sized.sized == len(ids), sized
            rss_before = rss_mb()
            started = time.monotonic()
            result = await backup(
                ctx,
                archive=target,
                options=BackupOptions(
                    concurrency=args.concurrency,
                    bandwidth=cap if args.limit == "client" else None,
                    file_concurrency=3,
                ),
            )
            elapsed = time.monotonic() - started
            rss_after = rss_mb()
            rate = result.bytes_downloaded / elapsed
            print(f"backup into {target.uri}: {result.archived}/{len(ids)} archived, "
                  f"{result.files} files, {result.bytes_downloaded / GiB:.2f} GiB in "
                  f"{elapsed:.1f} s")  # fmt: skip
            print(f"throughput: {rate / 1e6:.1f} MB/s = {100 * rate / cap:.1f}% of the "
                  f"{cap / 1e6:.0f} MB/s cap (target >= 90%)")  # fmt: skip
            print(f"peak RSS: {rss_after:.1f} MB (before backup {rss_before:.1f} MB; "
                  f"target < 150 MB)")  # fmt: skip
            if args.verify:
                started = time.monotonic()
                checked = await verify(store, archive=target, checksums=True)
                took = time.monotonic() - started
                print(f"verify --checksums: {checked.ok}/{checked.checked} ok, "
                      f"{checked.bytes_hashed / GiB:.2f} GiB in {took:.1f} s")  # fmt: skip
    finally:
        sim.terminate()
        sim.wait(timeout=10)


async def probe(client: KalturaClient, limit: int = 512 * MiB) -> None:
    """Bare single-stream read of the big source: what the simulator delivers, nothing else."""
    flavors = (await client.list_assets("flavor", [BIG], 1)).objects
    source = next(a for a in flavors if a.get("isOriginal"))
    url = await client.get_asset_url("flavor", source["id"])
    started, n = time.monotonic(), 0
    async with client.http.get(url) as resp:
        async for chunk in resp.content.iter_chunked(MiB):
            n += len(chunk)
            if n >= limit:
                break
    rate = n / (time.monotonic() - started)
    print(f"probe: bare single-stream read {rate / 1e6:.1f} MB/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cap-mb", type=float, default=None, help="the cap, MB/s (default 200; 80 for S3)"
    )
    parser.add_argument("--total-gib", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=4, help="entries in parallel")
    parser.add_argument("--dir", type=Path, default=None, help="work dir (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument("--limit", choices=("server", "client", "none"), default="server")
    parser.add_argument("--probe", action="store_true", help="bare single-stream read first")
    parser.add_argument("--verify", action="store_true", help="also time verify --checksums")
    parser.add_argument("--archive", help="a directory or s3://bucket/prefix (default: a dir)")
    parser.add_argument("--s3-endpoint-url", help="an S3 store to use instead of a SeaweedFS")
    args = parser.parse_args()
    if args.cap_mb is None:
        args.cap_mb = 80.0 if (args.archive or "").startswith("s3://") else 200.0
    work = Path(tempfile.mkdtemp(prefix="kretain-bench-", dir=args.dir))
    try:
        asyncio.run(run(args, work))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

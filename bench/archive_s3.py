"""Benchmark the S3 archive path: a ~2 GB source flavor from a bandwidth-capped simulator,
streamed by download_to_sink into an S3 multipart upload on SeaweedFS, verified.

    .venv/bin/python bench/archive_s3.py [--cap-mb 80] [--limit server|none] [--dir DIR] [--keep]

Four processes on loopback: the simulator (``python -m kretain.simulator`` with
``--total-bandwidth`` = the cap), SeaweedFS (``weed mini``, from kretain.archive.testing), this
script (set-up and report), and the kretain side in a child process of its own (``--child``),
so that its peak RSS (``ru_maxrss``) is the download-and-upload's alone. The file is the
source flavor of entry 0_31the0sy of partner seed 1 (3,000 entries), as in bench/backup.py.
After the run the object is read back from the store and hashed, and compared with the
simulator's content. Targets: >= 90% of the cap, < 150 MB peak RSS.

``--limit none`` leaves the simulator uncapped to show this machine's ceiling (on 2 cores
SeaweedFS itself, at ~14 CPU-seconds per GB ingested, is the bottleneck; caps above what
the store can take measure the store, not kretain).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MiB = 1 << 20
ENTRIES, SEED = 3_000, 1
BIG = "0_31the0sy"  # its source flavor is ~2.0 GB


async def child(args: dict[str, Any]) -> None:
    """The kretain side: get the URL, stream it into S3, report."""
    from kretain.archive.s3 import S3Target
    from kretain.kaltura.client import ClientConfig, KalturaClient
    from kretain.workers.download import download_to_sink

    config = ClientConfig(
        service_url=args["sim_url"], partner_id=args["partner_id"], admin_secret=args["secret"]
    )
    async with (
        KalturaClient(config) as client,
        S3Target(args["bucket"], "bench", endpoint_url=args["endpoint"]) as target,
    ):
        url = await client.get_asset_url("flavor", args["asset_id"])
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        sink = await target.open_sink(args["rel"], expected_size=args["size"])
        started = time.monotonic()
        result = await download_to_sink(
            client.http, url, sink, expected_bytes=args["size"], expected_kb=None
        )
        seconds = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report = {
        "bytes": result.bytes,
        "sha256": result.sha256,
        "store_checksum": result.store_checksum,
        "seconds": seconds,
        "rss_before": rss_before,
        "rss_peak": usage.ru_maxrss * 1024,
        "cpu": usage.ru_utime + usage.ru_stime,
    }
    print(json.dumps(report), flush=True)


def run(opts: argparse.Namespace, work: Path) -> None:
    from kretain.archive.testing import run_seaweedfs
    from kretain.simulator.content import content_sha256
    from kretain.simulator.partner import Partner, PartnerSpec
    from kretain.simulator.testing import start_simulator_process

    spec = PartnerSpec(entries=ENTRIES, seed=SEED)
    partner_db = work / "partner.sqlite"
    partner = Partner.create(spec, str(partner_db))
    source = next(a for a in partner.assets_of(BIG) if a["kind"] == "flavor" and a["isOriginal"])
    size, content_seed = partner.asset_content(source["id"])
    partner.close()
    cap = opts.cap_mb * 1e6
    capped = opts.limit == "server"
    print(f"file: source flavor {source['id']} of {BIG}, {size / 1e9:.2f} GB")
    print(f"cap: {cap / 1e6:.0f} MB/s on the simulator" if capped else "cap: none (ceiling)")
    limit = ["--total-bandwidth", str(cap)] if capped else []
    sim, url = start_simulator_process(
        "--db", str(partner_db), "--entries", str(ENTRIES), "--seed", str(SEED),
        "--no-rate-limits", *limit,
    )  # fmt: skip
    try:
        with run_seaweedfs(work / "seaweedfs", bucket="kretain-bench") as s3:
            args = {
                "sim_url": url,
                "partner_id": spec.partner_id,
                "secret": spec.admin_secret,
                "asset_id": source["id"],
                "size": size,
                "endpoint": s3.endpoint,
                "bucket": s3.bucket,
                "rel": f"{spec.partner_id}/{BIG}/flavor-{source['id']}.mp4",
            }
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update(s3.env())
            proc = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(args)],
                env=env, capture_output=True, text=True, timeout=3600,
            )  # fmt: skip
            if proc.returncode != 0:
                raise SystemExit(f"kretain side failed:\n{proc.stderr[-3000:]}")
            report = json.loads(proc.stdout.strip().splitlines()[-1])
            stored = s3.client().head_object(  # type: ignore[attr-defined]
                Bucket=s3.bucket, Key=f"bench/{args['rel']}", ChecksumMode="ENABLED"
            )
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    truth = content_sha256(content_seed, size)
    rate = report["bytes"] / report["seconds"]
    ok = report["sha256"] == truth and stored["ContentLength"] == size
    print(f"upload: {report['bytes'] / 1e9:.2f} GB in {report['seconds']:.1f} s, "
          f"{rate / 1e6:.1f} MB/s" + (f" = {100 * rate / cap:.1f}% of the {cap / 1e6:.0f} MB/s "
          "cap (target >= 90%)" if capped else ""))  # fmt: skip
    print(f"peak RSS of the kretain side: {report['rss_peak'] / 1e6:.1f} MB "
          f"(before streaming {report['rss_before'] / 1e6:.1f} MB; target < 150 MB); "
          f"CPU {report['cpu']:.1f} s")  # fmt: skip
    print(f"verified: sha256 {'matches' if ok else 'DOES NOT MATCH'} the simulator's content; "
          f"store checksum {stored.get('ChecksumSHA256')}")  # fmt: skip
    if not ok:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap-mb", type=float, default=80.0, help="simulator cap, MB/s")
    parser.add_argument("--limit", choices=("server", "none"), default="server")
    parser.add_argument("--dir", type=Path, default=None, help="work dir (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child:
        asyncio.run(child(json.loads(opts.child)))
        return
    work = Path(tempfile.mkdtemp(prefix="kretain-bench-s3-", dir=opts.dir))
    try:
        run(opts, work)
    finally:
        if opts.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

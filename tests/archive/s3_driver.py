"""Child process for the archive tests: stream one simulated Kaltura asset into S3.

    python s3_driver.py '<json>'    keys: sim_url, partner_id, secret, kind, asset_id,
                                    expected_bytes, expected_kb, endpoint, bucket, prefix, rel

AWS credentials come from the environment. Prints one JSON line when done: bytes, sha256,
resumed_from, rss_before (VmRSS right before streaming), rss_peak (the peak RSS while
streaming: VmHWM, reset just before), seconds. It runs apart from pytest so that its memory
is the download's alone, and so that a test can SIGKILL it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from kretain.archive.s3 import S3Target
from kretain.kaltura.client import ClientConfig, KalturaClient
from kretain.workers.download import download_to_sink


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


async def main(args: dict) -> None:
    config = ClientConfig(
        service_url=args["sim_url"], partner_id=int(args["partner_id"]), admin_secret=args["secret"]
    )
    async with (
        KalturaClient(config) as client,
        S3Target(args["bucket"], args["prefix"], endpoint_url=args["endpoint"]) as target,
    ):
        url = await client.get_asset_url(args["kind"], args["asset_id"])
        sink = await target.open_sink(
            args["rel"], expected_size=args["expected_bytes"] or None, size_hint=None
        )
        print(json.dumps({"opened": True, "offset": sink.offset}), flush=True)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # restart the peak-RSS count (VmHWM) from here
        rss_before = _status("VmRSS")
        started = time.monotonic()
        result = await download_to_sink(
            client.http,
            url,
            sink,
            expected_bytes=args["expected_bytes"],
            expected_kb=args["expected_kb"],
        )
        seconds = time.monotonic() - started
    print(
        json.dumps(
            {
                "bytes": result.bytes,
                "sha256": result.sha256,
                "resumed_from": result.resumed_from,
                "rss_before": rss_before,
                "rss_peak": _status("VmHWM"),
                "seconds": seconds,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))

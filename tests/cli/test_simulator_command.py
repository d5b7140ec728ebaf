"""`kretain simulator` serves a partner that kretain's own client can use."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from kretain.kaltura.client import ClientConfig, KalturaClient
from kretain.simulator.partner import PartnerSpec


def kretain_command() -> list[str]:
    exe = shutil.which("kretain", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "kretain.cli"]


def test_simulator_command_serves_until_interrupted() -> None:
    proc = subprocess.Popen(
        [*kretain_command(), "simulator", "--port", "0", "--entries", "300", "--latency-ms", "1"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        url = next(line.split(" at ", 1)[1].strip() for line in proc.stdout if " at http" in line)
        spec = PartnerSpec()

        async def listing() -> int:
            config = ClientConfig(url, spec.partner_id, admin_secret=spec.admin_secret)
            async with KalturaClient(config) as client:
                page = await client.list_entries({}, 1, page_size=10)
                return page.total_count

        assert asyncio.run(listing()) > 100
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0

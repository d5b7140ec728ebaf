"""SIGKILL `python -m kretain run` in the middle of a large multipart upload to S3, then run
again: the upload is taken up where its stored parts end (ListParts), not started over.

The simulator runs in this process (its byte counter is ours to read) with its download
bandwidth capped so the kill lands mid-file; kretain runs in a child process against the
session's SeaweedFS. The second run goes through a counting TCP proxy in front of the store:
an independent measure of what was uploaded again.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest
from s3_cli import KRETAIN, S3Run, write_only_these
from s3_support import CountingProxy

from kretain.archive import asset_filename
from kretain.archive.s3 import MANIFEST_SUFFIX, S3Target
from kretain.archive.testing import SeaweedFS
from kretain.simulator.content import content_sha256
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator
from kretain.store import queries
from kretain.store.db import open_store
from kretain.store.states import AssetBackupState

MiB = 1 << 20
PART = 8 * MiB  # the default part size for files under ~70 GB
SPEC = PartnerSpec(entries=60, seed=1, traps=False)


@pytest.mark.parametrize(
    ("entry_id", "bandwidth"),
    [
        pytest.param("0_5gxog9td", 16 * MiB, id="56MB"),  # ~3.5 s to stream
        pytest.param("0_cj8mckzj", 48 * MiB, id="331MB", marks=pytest.mark.slow),
    ],
)
async def test_sigkill_mid_upload_then_the_next_run_sends_only_the_rest(
    aws_env: SeaweedFS, tmp_path: Path, entry_id: str, bandwidth: int
) -> None:
    with run_simulator(SPEC) as sim:
        s3run = S3Run(sim, aws_env, tmp_path, f"kill-{secrets.token_hex(4)}")
        write_only_these(tmp_path, sim, [entry_id])
        source = next(
            a for a in sim.partner.assets_of(entry_id) if a["kind"] == "flavor" and a["isOriginal"]
        )
        size, seed = sim.partner.asset_content(source["id"])
        truth = content_sha256(seed, size)
        name = asset_filename(source["id"], source["fileExt"], "flavor")
        rel = f"{SPEC.partner_id}/{entry_id}/{name}"

        # 1. The first run streams the source into a multipart upload; killed mid-file.
        sim.knobs.download_bandwidth = bandwidth
        child = subprocess.Popen(
            [*KRETAIN, "--db", str(s3run.db), "run", "--no-progress"],
            env=s3run.process_env(), cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            stored = 0
            while stored * PART < size // 2:  # half the file's parts stored: well into it
                assert child.poll() is None, child.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the upload never got going"
                uploads = [u for u in s3run.uploads() if u["Key"] == s3run.key(rel)]
                if uploads:
                    parts = s3run.client.list_parts(
                        Bucket=aws_env.bucket, Key=s3run.key(rel), UploadId=uploads[0]["UploadId"]
                    )
                    stored = len(parts.get("Parts", []))
                time.sleep(0.05)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait(timeout=10)
            child.stderr.close()  # type: ignore[union-attr]
        assert child.returncode == -signal.SIGKILL
        assert s3run.states()[entry_id] == "downloading"  # held by the dead run
        assert s3run.key(rel) not in s3run.objects()  # nothing completed
        (progress,) = s3run.sql(
            "SELECT backup_state, bytes_done FROM assets WHERE id = ?", (source["id"],)
        )
        assert progress[0] in ("partial", "pending")  # the heartbeat may not have run yet

        # 2. The next run resumes the upload: only the rest goes to the store.
        sim.knobs.download_bandwidth = None
        served = sim.stats.bytes_served
        async with CountingProxy(int(aws_env.endpoint.rsplit(":", 1)[1])) as proxy:
            second = await asyncio.create_subprocess_exec(
                *KRETAIN, "--db", str(s3run.db), "run", "--no-progress",
                env=s3run.process_env(KRETAIN_S3_ENDPOINT_URL=proxy.endpoint), cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(second.communicate(), timeout=300)
            uploaded = proxy.sent
        assert second.returncode == 0, (out + err).decode()[-3000:]
        assert s3run.states()[entry_id] == "archived"
        resumed = int(out.decode().split("bytes_resumed ")[1].split(",")[0].split()[0])
        assert size // 2 <= resumed < size and resumed % PART == 0
        # Kaltura sent only the rest, and so did kretain to the store (plus request headers,
        # entry.json and the small part list).
        assert sim.stats.bytes_served - served == size - resumed
        assert uploaded < size - resumed + 2 * MiB and uploaded < 0.8 * size
        # The object is the source, byte for byte; nothing unfinished is left behind.
        assert s3run.object_sha256(rel) == truth
        (row,) = s3run.sql(
            "SELECT bytes_done, sha256, store_checksum FROM assets WHERE id = ?", (source["id"],)
        )
        assert row[0] == size and row[1] == truth and row[2].endswith(f"-{-(-size // PART)}")
        assert not s3run.uploads()
        assert not [k for k in s3run.objects() if k.endswith(MANIFEST_SUFFIX)]
        print(f"\nkilled after {resumed / MiB:.0f} MiB of {size / MiB:.0f} MiB; the next run "
              f"uploaded {uploaded / MiB:.1f} MiB")  # fmt: skip

        verify = await asyncio.create_subprocess_exec(
            *KRETAIN, "--db", str(s3run.db), "verify", "--checksums",
            env=s3run.process_env(), cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        report, _ = await asyncio.wait_for(verify.communicate(), timeout=300)
        assert verify.returncode == 0, report.decode()[-2000:]


def test_an_upload_a_killed_run_left_is_aborted_once_its_entry_needs_no_backup(
    aws_env: SeaweedFS, tmp_path: Path
) -> None:
    """What a killed run leaves (an unfinished multipart upload with its part list, and the
    asset recorded as partial) is dropped by the next backup stage once the entry is no longer
    to be backed up (here: exempted since)."""
    entry_id = "0_5gxog9td"
    with run_simulator(SPEC) as sim:
        s3run = S3Run(sim, aws_env, tmp_path, f"orphan-{secrets.token_hex(4)}")
        write_only_these(tmp_path, sim, [entry_id])
        assert s3run.kretain("run", "--no-progress", "--stage", "audit").exit_code == 0
        source = next(
            a for a in sim.partner.assets_of(entry_id) if a["kind"] == "flavor" and a["isOriginal"]
        )
        name = asset_filename(source["id"], source["fileExt"], "flavor")
        rel = f"{SPEC.partner_id}/{entry_id}/{name}"
        size = sim.partner.asset_content(source["id"])[0]
        begun = sim.partner.read_content(source["id"], 0, 6 * MiB)

        async def killed_run_leftovers() -> None:
            async with S3Target(aws_env.bucket, s3run.prefix, endpoint_url=aws_env.endpoint) as t:
                sink = await t.open_sink(rel, expected_size=size)
                await sink.write(begun)
                await sink.suspend()  # as a run killed mid-file leaves it
            async with await open_store(s3run.db) as store:
                await queries.update_asset_backup(
                    store, (entry_id, source["id"]), archive_path=rel, bytes_done=len(begun),
                    backup_state=AssetBackupState.PARTIAL,
                )  # fmt: skip

        asyncio.run(killed_run_leftovers())
        assert [u["Key"] for u in s3run.uploads()] == [s3run.key(rel)]
        assert s3run.key(rel + MANIFEST_SUFFIX) in s3run.objects()

        write_only_these(tmp_path, sim, [])  # the entry is exempt now
        result = s3run.kretain("run", "--no-progress")
        assert result.exit_code == 0, result.output
        assert s3run.states()[entry_id] == "exempt"
        assert "uploads_dropped 1" in result.stdout
        assert not s3run.uploads() and not s3run.objects()
        assert s3run.sql(
            "SELECT archive_path, bytes_done, backup_state FROM assets WHERE id = ?",
            (source["id"],),
        ) == [(None, 0, "pending")]

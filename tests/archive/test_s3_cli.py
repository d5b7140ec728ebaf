"""`kretain run` with KRETAIN_ARCHIVE=s3://bucket/prefix, then `kretain verify --checksums`:
through the CLI, over real HTTP (the Kaltura simulator), into a real SeaweedFS, real SQLite."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3_cli import S3Run

from kretain.archive.testing import SeaweedFS
from kretain.simulator.content import content_sha256
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator

# Small files: the archive holds a few megabytes (one PUT per file).
SPEC = PartnerSpec(entries=80, seed=9, burst=3, max_file_bytes=300_000)


@pytest.fixture
def s3run(aws_env: SeaweedFS, tmp_path: Path) -> Iterator[S3Run]:
    with run_simulator(SPEC) as sim:
        yield S3Run(sim, aws_env, tmp_path, f"cli-{secrets.token_hex(4)}/archive")


def test_run_backs_up_to_s3_and_verify_checksums_passes(s3run: S3Run) -> None:
    result = s3run.kretain("-vv", "run", "--no-progress")  # debug logs: no secret there either
    assert result.exit_code == 0, result.output
    archived = [
        r[0]
        for r in s3run.sql(
            "SELECT id FROM entries WHERE state = 'archived' AND action = 'delete_entry'"
        )
    ]
    assert archived
    assert s3run.sql(
        "SELECT count(*) FROM entries WHERE action = 'delete_entry' AND state != 'archived'"
    ) == [(0,)]
    # Every archived row names the bucket prefix; every file its sha256 and the store's own
    # checksum (one PUT: base64 of the same SHA-256).
    assert {r[0] for r in s3run.sql("SELECT DISTINCT archive_uri FROM entries "
                                    "WHERE state = 'archived'")} == {s3run.uri}  # fmt: skip
    files = s3run.sql(
        "SELECT a.id, a.archive_path, a.bytes_done, a.sha256, a.store_checksum FROM assets a "
        "JOIN entries e ON e.id = a.entry_id WHERE e.state = 'archived' "
        "AND a.backup_state = 'verified'"
    )
    assert files
    for asset_id, rel, size, sha, checksum in files:
        true_size, seed = s3run.sim.partner.asset_content(asset_id)
        assert (size, sha) == (true_size, content_sha256(seed, true_size))
        assert checksum and not checksum.endswith(("-1", "-2"))
        assert s3run.object_sha256(rel) == sha
    # The local layout's names, under the prefix: entry.json beside the files.
    keys = set(s3run.objects())
    pid = SPEC.partner_id
    for entry_id in archived:
        doc = json.loads(s3run.object_bytes(f"{pid}/{entry_id}/entry.json"))
        assert doc["entry_id"] == entry_id
        for item in doc["files"]:
            assert s3run.key(f"{pid}/{entry_id}/{item['file']}") in keys
    assert not [k for k in keys if k.endswith(".part")] and not s3run.uploads()

    clean = s3run.kretain("verify", "--checksums")
    assert clean.exit_code == 0, clean.output
    counts = dict(line.split()[:2] for line in clean.stdout.splitlines()[2:] if line.strip())
    assert counts["ok"] == counts["checked"] == str(len(archived))
    assert counts["damaged"] == counts["unchecked"] == "0" and int(counts["bytes_hashed"]) > 0
    # Without a named archive: the one the rows recorded (the endpoint from the settings).
    recorded = s3run.kretain("verify", KRETAIN_ARCHIVE="")
    assert recorded.exit_code == 0, recorded.output
    # A named archive that is not the recorded one is refused; nothing changes.
    other = s3run.kretain("verify", "--archive", f"s3://{s3run.server.bucket}/elsewhere")
    assert other.exit_code == 7 and "backed up to" in other.output
    local = s3run.kretain("verify", "--archive", str(s3run.dir))
    assert local.exit_code == 7 and s3run.uri in local.output
    assert len(s3run.sql("SELECT id FROM entries WHERE state = 'archived'")) == len(archived)

    # The AWS secret reaches neither the database, the logs, the output, nor an export.
    secret = s3run.server.secret_key
    exported = s3run.kretain("export", "--columns", "full", "--format", "json")
    assert exported.exit_code == 0 and s3run.uri in exported.output
    assets = s3run.kretain("query", "SELECT * FROM assets", "--json")
    assert assets.exit_code == 0
    logs = list((s3run.dir / "kretain-logs").glob("*.jsonl"))
    assert logs
    for text in [result.output, clean.output, exported.output, assets.output]:
        assert secret not in text
    for path in [*logs, *s3run.dir.glob("k.db*")]:
        assert secret.encode() not in path.read_bytes(), path

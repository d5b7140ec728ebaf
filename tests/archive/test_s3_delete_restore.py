"""An S3 archive end to end through the CLI: a corrupted object is caught by
`verify --checksums` and blocks that entry's delete (it goes back for a new backup, the
others are deleted); and a deleted entry comes back from the bucket with `kretain restore`.

Real parts only: the Kaltura simulator over HTTP, the session's SeaweedFS, SQLite. Objects
are corrupted the way bit rot or a careless copy would: overwritten in place through a
plain botocore client, same size, one byte flipped, the original metadata kept (so its
stored sha256 still claims the old content and the store keeps no checksum of the new).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

from s3_cli import S3Run, write_only_these

from kretain.archive.testing import SeaweedFS
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator

SPEC = PartnerSpec(entries=60, seed=9, traps=False, recycle_bin=True, max_file_bytes=16 * 1024)


def _corrupt(s3run: S3Run, rel: str) -> None:
    client, bucket, key = s3run.client, s3run.server.bucket, s3run.key(rel)
    head = client.head_object(Bucket=bucket, Key=key)
    data = bytearray(s3run.object_bytes(rel))
    data[len(data) // 2] ^= 0x01
    client.put_object(Bucket=bucket, Key=key, Body=bytes(data), Metadata=head["Metadata"])


def _first_file(s3run: S3Run, entry_id: str) -> str:
    return s3run.sql(
        "SELECT archive_path FROM assets WHERE entry_id = ? AND backup_state = 'verified' "
        "ORDER BY id LIMIT 1",
        (entry_id,),
    )[0][0]


def _deleted_by_kretain(s3run: S3Run) -> set[str]:
    return {
        m["id"]
        for m in s3run.sim.mutations
        if (m["service"], m["action"], m["outcome"]) == ("baseentry", "delete", "ok")
    }


def _why_sized(s3run: S3Run, entry_id: str) -> str:
    rows = s3run.sql(
        "SELECT detail FROM events WHERE entry_id = ? AND to_state = 'sized' ORDER BY id",
        (entry_id,),
    )
    return rows[-1][0] or ""


def test_a_corrupted_object_is_caught_and_blocks_only_its_entrys_delete(
    aws_env: SeaweedFS, tmp_path: Path
) -> None:
    with run_simulator(SPEC) as sim:
        sim.knobs.rate_limits = {}
        s3run = S3Run(sim, aws_env, tmp_path, f"rot-{secrets.token_hex(4)}")
        assert s3run.kretain("run", "--no-progress").exit_code == 0
        archived = sorted(
            r[0]
            for r in s3run.sql(
                "SELECT DISTINCT e.id FROM entries e JOIN assets a ON a.entry_id = e.id "
                "WHERE e.state = 'archived' AND a.backup_state = 'verified'"
            )
        )
        assert len(archived) >= 4
        first, second = archived[0], archived[1]

        # 1. verify --checksums reads every object back and catches the flipped byte; the
        #    cheap check cannot (same size, and the stored sha256 still claims the original).
        damaged = _first_file(s3run, first)
        _corrupt(s3run, damaged)
        plain = s3run.kretain("verify")
        assert plain.exit_code == 0, plain.output
        deep = s3run.kretain("verify", "--checksums")
        assert deep.exit_code == 9, deep.output
        states = s3run.states()
        assert states[first] == "sized" and "sha256 mismatch" in _why_sized(s3run, first)
        assert all(states[e] == "archived" for e in archived if e != first)
        keys = set(s3run.objects())
        assert s3run.key(damaged) not in keys  # a damaged copy is never trusted again
        assert s3run.key(f"{SPEC.partner_id}/{first}/entry.json") not in keys

        # 2. The delete stage re-hashes every copy right before deleting: a second corrupted
        #    object keeps its entry, which goes back for a new backup; the rest are deleted,
        #    the first one included (backed up again by this run's backup stage first).
        _corrupt(s3run, _first_file(s3run, second))
        result = s3run.kretain("run", "--no-progress", "--delete", "--yes")
        assert result.exit_code == 0, result.output
        deleted = _deleted_by_kretain(s3run)
        states = s3run.states()
        assert second not in deleted and states[second] == "sized"
        assert "archive check failed" in _why_sized(s3run, second)
        assert "sha256 mismatch" in _why_sized(s3run, second)
        assert set(archived) - {second} <= deleted
        assert all(states[e] == "deleted" for e in archived if e != second)

        # 3. The next run copies it again (a fresh, verified object), then deletes it.
        again = s3run.kretain("run", "--no-progress", "--delete", "--yes")
        assert again.exit_code == 0, again.output
        assert second in _deleted_by_kretain(s3run) and s3run.states()[second] == "deleted"


# The restore tests' partner: a multi-stream parent with two captions and thumbnails, and an
# entry with an attachment; files capped at 3 MiB.
RESTORE_SPEC = PartnerSpec(
    entries=400, seed=9, traps=True, max_file_bytes=3 << 20, recycle_bin=True
)
PARENT, WITH_ATTACHMENT = "0_2vpwe48z", "0_0n93t6x6"


def test_a_deleted_entry_is_restored_from_the_bucket(aws_env: SeaweedFS, tmp_path: Path) -> None:
    with run_simulator(RESTORE_SPEC) as sim:
        sim.knobs.rate_limits = {}
        children = [
            r[0] for r in sim.partner.sql("select id from entries where parent_entry_id = ?",
                                          (PARENT,))
        ]  # fmt: skip
        assert children
        write_only_these(tmp_path, sim, [PARENT, WITH_ATTACHMENT, *children])
        s3run = S3Run(sim, aws_env, tmp_path, f"restore-{secrets.token_hex(4)}")
        assert s3run.kretain("run", "--no-progress").exit_code == 0
        deleted = s3run.kretain("run", "--no-progress", "--delete", "--yes")
        assert deleted.exit_code == 0, deleted.output
        assert {PARENT, WITH_ATTACHMENT} <= _deleted_by_kretain(s3run)

        dry = s3run.kretain("restore", PARENT, WITH_ATTACHMENT)
        assert dry.exit_code == 0 and dry.stdout.count("would re-create") == 2, dry.output
        assert f"re-create from {s3run.uri}/{SPEC.partner_id}/{PARENT}" in dry.stdout
        # The restore reads the archive each row recorded: KRETAIN_ARCHIVE plays no part.
        restored = s3run.kretain("restore", PARENT, WITH_ATTACHMENT, "--yes", KRETAIN_ARCHIVE="")
        assert restored.exit_code == 0, restored.output
        rows = dict(
            s3run.sql(
                "SELECT id, new_entry_id FROM entries WHERE state = 'restored' AND id IN (?, ?)",
                (PARENT, WITH_ATTACHMENT),
            )
        )
        assert set(rows) == {PARENT, WITH_ATTACHMENT}
        for old_id, new_id in rows.items():
            doc = json.loads(s3run.object_bytes(f"{SPEC.partner_id}/{old_id}/entry.json"))
            kids = [
                r[0]
                for r in sim.partner.sql(
                    "select id from entries where parent_entry_id = ?", (new_id,)
                )
            ]
            made = [a for owner in [new_id, *kids] for a in sim.partner.assets_of(owner)]
            served = sorted(
                hashlib.sha256(sim.partner.read_content(a["id"])).hexdigest()
                for a in made
                if a["kind"] != "flavor" or a.get("isOriginal")
            )
            assert served == sorted(f["sha256"] for f in doc["files"]), old_id

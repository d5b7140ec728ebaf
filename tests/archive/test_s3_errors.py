"""Wrong S3 credentials, no credentials and a missing bucket: `python -m kretain run` (and
`verify`) stop with ONE clear line on stderr and exit 7, no traceback, no secret printed,
and no entry charged an attempt (the environment is not the entries' fault)."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from s3_cli import KRETAIN, S3Run, kretain_lines

from kretain.archive.testing import SeaweedFS
from kretain.cli import cli
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator

SPEC = PartnerSpec(entries=60, seed=9, traps=False, max_file_bytes=16 * 1024)


def _run(s3run: S3Run, *args: str, drop: tuple[str, ...] = (), **env: str) -> tuple[int, str]:
    environ = {**s3run.process_env(), **env}
    for name in drop:
        environ.pop(name, None)
    done = subprocess.run(
        [*KRETAIN, "--db", str(s3run.db), *args],
        capture_output=True, text=True, env=environ, cwd=s3run.dir, timeout=120,
    )  # fmt: skip
    return done.returncode, done.stderr


def test_wrong_credentials_and_a_missing_bucket_are_one_line_and_charge_nothing(
    aws_env: SeaweedFS, tmp_path: Path
) -> None:
    seaweed = aws_env
    with run_simulator(SPEC) as sim:
        s3run = S3Run(sim, seaweed, tmp_path, f"err-{secrets.token_hex(4)}")
        wrong_secret = "wrong-" + secrets.token_urlsafe(18)
        cases = [
            ({"AWS_SECRET_ACCESS_KEY": wrong_secret}, (), "refused the credentials"),
            ({}, ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), "no AWS credentials"),
            ({"KRETAIN_ARCHIVE": "s3://no-such-bucket-kretain/x"}, (), "does not exist"),
        ]
        for env, drop, why in cases:
            code, stderr = _run(s3run, "run", "--no-progress", drop=drop, **env)
            lines = kretain_lines(stderr)
            assert code == 7, stderr
            assert len(lines) == 1 and why in lines[0], stderr
            assert "cannot write to the archive s3://" in lines[0]
            assert "no entry was charged" in lines[0]
            assert "Traceback" not in stderr and wrong_secret not in stderr
            assert seaweed.secret_key not in stderr
        # The audit went on (it needs no archive); no backup was tried, none charged.
        states = dict(s3run.sql("SELECT state, count(*) FROM entries GROUP BY state"))
        assert states.get("sized", 0) > 0 and "downloading" not in states
        assert "backup_failed" not in states and "archived" not in states
        assert s3run.sql("SELECT count(*) FROM entries WHERE backup_attempts > 0") == [(0,)]
        assert not s3run.objects()

        # verify reads the archive the rows recorded: the same one line for it.
        assert s3run.kretain("run", "--no-progress").exit_code == 0
        for env, why in [
            ({"AWS_SECRET_ACCESS_KEY": wrong_secret}, "refused the credentials"),
            ({"KRETAIN_ARCHIVE": "s3://no-such-bucket-kretain/x"}, "does not exist"),
        ]:
            result = s3run.kretain("verify", "--checksums", **env)
            lines = kretain_lines(result.stderr)
            assert result.exit_code == 7 and len(lines) == 1 and why in lines[0], result.output
            assert wrong_secret not in result.output
        assert s3run.sql("SELECT count(*) FROM entries WHERE state = 'archived'")[0][0] > 0


@pytest.mark.parametrize("uri", ["s3://", "s3://key:secret@bucket/x", "s3://Bad_Bucket/x"])
def test_a_malformed_archive_uri_is_one_line(tmp_path: Path, uri: str) -> None:
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "k.db"), "verify", "--archive", uri])
    lines = kretain_lines(result.stderr)
    assert result.exit_code == 3 and len(lines) == 1 and "--archive" in lines[0], result.output
    assert "secret" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback

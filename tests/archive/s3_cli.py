"""Helpers for the end-to-end tests of an S3 archive: kretain's CLI against the Kaltura
simulator (real HTTP) and the session's SeaweedFS (imported by name: tests/archive is on
sys.path). No tests here."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from kretain.archive.testing import SeaweedFS
from kretain.cli import cli
from kretain.simulator.testing import RunningSimulator

KRETAIN = [sys.executable, "-m", "kretain"]
AS_OF = "2026-11-22"  # the simulated partners' "now"

# Every ready entry qualifies for a backed-up delete; tests exempt all but the ones they want.
EVERY_ENTRY_TOML = """\
[[policy.rules]]
name = "4-year"
min_age_years = 0
not_played_years = 0
action = "delete_entry"

[policy.exemptions]
entry_ids = [{ids}]
"""


def write_only_these(directory: Path, sim: RunningSimulator, keep: Iterable[str]) -> None:
    """A kretain.toml under which only ``keep`` are backed up and deleted (every other entry
    of the partner is exempt by id)."""
    wanted = set(keep)
    others = [r[0] for r in sim.partner.sql("select id from entries order by id")]
    ids = ", ".join(f'"{i}"' for i in others if i not in wanted)
    (directory / "kretain.toml").write_text(EVERY_ENTRY_TOML.format(ids=ids), encoding="utf-8")


@dataclass
class S3Run:
    """One database, one simulated partner, one archive prefix in the session's bucket."""

    sim: RunningSimulator
    server: SeaweedFS
    dir: Path
    prefix: str

    @property
    def db(self) -> Path:
        return self.dir / "k.db"

    @property
    def uri(self) -> str:
        return f"s3://{self.server.bucket}/{self.prefix}"

    def env(self, **extra: str) -> dict[str, str]:
        spec = self.sim.partner.spec
        return {
            "KALTURA_SERVICE_URL": self.sim.url,
            "KALTURA_PARTNER_ID": str(spec.partner_id),
            "KALTURA_ADMIN_SECRET": spec.admin_secret,
            "KRETAIN_AS_OF": AS_OF,
            "KRETAIN_ARCHIVE": self.uri,
            "KRETAIN_S3_ENDPOINT_URL": self.server.endpoint,
            "KRETAIN_DELETE_RATE": "1000",
            **extra,
        }

    def kretain(self, *args: str, **env: str) -> Result:
        """One CLI invocation in this process (the AWS variables are the test's)."""
        return CliRunner().invoke(
            cli, ["--db", str(self.db), *args], env=self.env(**env), catch_exceptions=False
        )

    def process_env(self, **extra: str) -> dict[str, str]:
        """The environment for ``python -m kretain`` in a child process."""
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("KRETAIN_", "KALTURA_", "AWS_", "BOTO_"))
        }
        aws = {
            **self.server.env(),
            "AWS_CONFIG_FILE": str(self.dir / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.dir / "no-aws-credentials"),
        }
        return {**base, **aws, **self.env(**extra)}

    def sql(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as con:
            return con.execute(query, params).fetchall()

    def states(self) -> dict[str, str]:
        return dict(self.sql("SELECT id, state FROM entries"))

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}"

    @cached_property
    def client(self) -> Any:
        """A plain botocore client, to look at (or tamper with) the bucket."""
        return self.server.client()

    def object_bytes(self, rel: str) -> bytes:
        resp = self.client.get_object(Bucket=self.server.bucket, Key=self.key(rel))
        return resp["Body"].read()

    def object_sha256(self, rel: str) -> str:
        resp = self.client.get_object(Bucket=self.server.bucket, Key=self.key(rel))
        digest = hashlib.sha256()
        for chunk in resp["Body"].iter_chunks(1 << 20):
            digest.update(chunk)
        return digest.hexdigest()

    def objects(self) -> list[str]:
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.server.bucket, Prefix=self.prefix + "/"
        ):
            found += [o["Key"] for o in page.get("Contents", [])]
        return found

    def uploads(self) -> list[dict[str, Any]]:
        bucket, prefix = self.server.bucket, self.prefix + "/"
        resp = self.client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
        return list(resp.get("Uploads", []))


def kretain_lines(stderr: str) -> list[str]:
    """The error lines kretain itself prints (``kretain: ...``), warnings left out."""
    return [
        line
        for line in stderr.splitlines()
        if line.startswith("kretain:") and not line.startswith("kretain: warning:")
    ]

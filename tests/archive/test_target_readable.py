"""check_readable, opened() and the local uri: what verify and restore rely on before they
read an archive (a missing directory or bucket is refused, never read as "every file lost")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kretain.archive import ArchiveUnavailable, LocalTarget, opened
from kretain.archive.s3 import S3Target
from kretain.archive.testing import SeaweedFS
from kretain.errors import ArchiveUnavailable as KretainArchiveUnavailable


def test_one_archive_unavailable_class() -> None:
    assert ArchiveUnavailable is KretainArchiveUnavailable
    exc = ArchiveUnavailable("s3://b/p", "bucket 'b' does not exist")
    assert (exc.uri, exc.problem, exc.exit_code) == ("s3://b/p", "bucket 'b' does not exist", 7)
    assert str(exc) == "archive s3://b/p is unavailable: bucket 'b' does not exist"
    plain = ArchiveUnavailable("no archive named")
    assert (plain.uri, plain.problem, str(plain)) == (None, None, "no archive named")


async def test_local_readable_only_when_the_directory_exists(tmp_path: Path) -> None:
    with pytest.raises(ArchiveUnavailable, match="does not exist"):
        await LocalTarget(tmp_path / "missing").check_readable()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArchiveUnavailable, match="not a directory"):
        await LocalTarget(tmp_path / "file").check_readable()
    await LocalTarget(tmp_path).check_readable()


def test_local_uri_names_the_real_directory(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert LocalTarget(tmp_path / "link").uri == real.resolve().as_uri()
    assert LocalTarget(tmp_path / "link" / ".." / "real").uri == real.resolve().as_uri()


async def test_s3_readable(s3: S3Target, make_s3: Callable[..., S3Target]) -> None:
    await s3.check_readable()
    async with make_s3(bucket="no-such-bucket-here") as missing:
        with pytest.raises(ArchiveUnavailable, match="does not exist"):
            await missing.check_readable()


async def test_s3_readable_refuses_wrong_credentials(
    aws_env: SeaweedFS, monkeypatch: pytest.MonkeyPatch, make_s3: Callable[..., S3Target]
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-0123456789")
    async with make_s3() as target:
        with pytest.raises(ArchiveUnavailable) as info:
            await target.check_readable()
    assert "credentials" in str(info.value) and "not-the-secret" not in str(info.value)


async def test_opened_closes_only_what_it_opened(tmp_path: Path, s3: S3Target) -> None:
    async with opened(tmp_path) as local:
        assert isinstance(local, LocalTarget) and local.uri == tmp_path.resolve().as_uri()
    await s3.check_readable()  # the client exists now
    async with opened(s3) as same:
        assert same is s3
    assert s3._client is not None  # the caller's target is still open
    async with opened(s3.uri, endpoint_url=s3.endpoint_url) as fresh:
        assert isinstance(fresh, S3Target) and fresh is not s3
        await fresh.check_readable()
    assert fresh._client is None  # closed on the way out

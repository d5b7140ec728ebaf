"""S3Target against a real SeaweedFS: checksums the store enforces, resume bookkeeping,
clear errors for a store that cannot be used, and secrets kept out of messages and logs."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog
from s3_support import MiB, pseudo_random, raw_client, sha, uploads_for, write_all

from kretain import log as klog
from kretain.archive import ArchiveRequestFailed, ArchiveUnavailable, LocalTarget, open_target
from kretain.archive.s3 import (
    MANIFEST_SUFFIX,
    S3Sink,
    S3Target,
    check_bucket_name,
    composite_checksum,
    part_size_for,
)
from kretain.archive.testing import SeaweedFS
from kretain.errors import ConfigError

PART = 5 << 20
DATA = pseudo_random(4 * PART + 999, seed=5)


# ---- pure parts -------------------------------------------------------------------------


def test_part_size_stays_under_ten_thousand_parts() -> None:
    assert part_size_for(None) == 8 * MiB
    assert part_size_for(100 * MiB) == 8 * MiB
    for size in (80 << 30, 500 << 30, 5 << 40):
        part = part_size_for(size)
        assert part % MiB == 0 and -(-size // part) <= 9_000, size


def test_composite_checksum_matches_s3s_definition() -> None:
    import base64
    import hashlib

    a, b = hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()
    expected = base64.b64encode(hashlib.sha256(a + b).digest()).decode() + "-2"
    assert composite_checksum([a, b]) == expected


@pytest.mark.parametrize("bad", ["", "ab", "A-bucket", "a_b", "-ab", "a..b", "x" * 64, "a/b"])
def test_bucket_names_are_checked(bad: str) -> None:
    with pytest.raises(ConfigError):
        check_bucket_name(bad)


def test_open_target_picks_the_store(tmp_path: Path) -> None:
    s3 = open_target("s3://my-bucket/some/prefix/", endpoint_url="http://127.0.0.1:9", region="r")
    assert isinstance(s3, S3Target)
    assert (s3.bucket, s3.prefix, s3.uri) == (
        "my-bucket",
        "some/prefix",
        "s3://my-bucket/some/prefix",
    )
    assert open_target("s3://my-bucket").uri == "s3://my-bucket"
    local = open_target(str(tmp_path / "a"))
    assert isinstance(local, LocalTarget) and local.uri == (tmp_path / "a").as_uri()
    assert isinstance(open_target(tmp_path), LocalTarget)
    assert open_target((tmp_path / "b c").as_uri()).uri == (tmp_path / "b c").as_uri()
    for bad in ("s3://", "s3://UPPER/x", "s3://user:pw@bucket/x", "gs://b/x", "s3://b/x?y=1", ""):
        with pytest.raises(ConfigError):
            open_target(bad)
    with pytest.raises(ConfigError, match="credentials"):
        S3Target("bucket", endpoint_url="http://key:secret@127.0.0.1:9")
    with pytest.raises(Exception, match="unusable"):
        S3Target("bucket", "a/../b")


# ---- checksums the store enforces ----------------------------------------------------------


async def test_a_part_corrupted_after_hashing_is_refused(
    s3: S3Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flip a byte of part 2 after its SHA-256 was taken (memory or transport damage): the
    store answers BadDigest, the sink fails with a retryable error, and a new sink resumes
    from the parts that did verify."""
    rel = "1/0_bd/flavor-0_bd.mp4"
    real_send = S3Sink._send_part

    async def corrupting(
        self: S3Sink, number: int, part: bytearray, digest: bytes, *rest: int
    ) -> None:
        if number == 2:  # damaged after its digest was taken
            part = part[:100] + bytes([part[100] ^ 0xFF]) + part[101:]
        await real_send(self, number, part, digest, *rest)

    monkeypatch.setattr(S3Sink, "_send_part", corrupting)
    sink = await s3.open_sink(rel, expected_size=len(DATA))
    with pytest.raises(ArchiveRequestFailed) as info:
        await write_all(sink, DATA)
        await sink.commit()
    assert info.value.code == "BadDigest" and info.value.retryable
    assert "BadDigest" in str(info.value)
    await sink.suspend()
    monkeypatch.setattr(S3Sink, "_send_part", real_send)

    again = await s3.open_sink(rel, expected_size=len(DATA))
    assert again.offset == PART  # part 1 verified; part 2 never stored
    await write_all(again, DATA[again.offset :])
    stored = await again.commit()
    assert stored.sha256 == sha(DATA) == await s3.sha256(rel)


async def test_a_wrong_single_put_checksum_is_refused(s3: S3Target) -> None:
    import base64
    import hashlib

    wrong = base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode()
    with pytest.raises(ArchiveRequestFailed) as info:
        await s3._call(
            "put_object", "x", Key=s3.key("x/y.bin"), Body=b"payload", ChecksumSHA256=wrong
        )
    assert info.value.code == "BadDigest"
    assert await s3.stat("x/y.bin") is None


# ---- resume bookkeeping ------------------------------------------------------------------


async def test_several_unfinished_uploads_the_recorded_one_wins(
    s3: S3Target, seaweed: SeaweedFS
) -> None:
    rel = "1/0_mu/flavor-0_mu.mp4"
    key = s3.key(rel)
    client = raw_client(seaweed)
    sink = await s3.open_sink(rel, expected_size=len(DATA))
    await write_all(sink, DATA[: 2 * PART + 10])
    await sink.suspend()
    # Two more uploads of the same key, newer than ours (another tool, an older kretain).
    others = [
        client.create_multipart_upload(Bucket=s3.bucket, Key=key, ChecksumAlgorithm="SHA256")
        for _ in range(2)
    ]
    assert len(uploads_for(seaweed, key)) == 3

    again = await s3.open_sink(rel, expected_size=len(DATA))
    assert again.offset == 2 * PART
    ids = {u["UploadId"] for u in uploads_for(seaweed, key)}
    assert ids == {again.upload_id} and not ids & {u["UploadId"] for u in others}
    await write_all(again, DATA[again.offset :])
    assert (await again.commit()).sha256 == sha(DATA)
    assert uploads_for(seaweed, key) == []
    assert not client.list_objects_v2(Bucket=s3.bucket, Prefix=key + MANIFEST_SUFFIX).get(
        "Contents"
    )


async def test_without_its_part_list_an_upload_is_started_again(
    s3: S3Target, seaweed: SeaweedFS
) -> None:
    """SeaweedFS's ListParts gives no part checksums, and completing needs them: with the
    part list object gone, nothing can be vouched for, so the file starts from zero."""
    rel = "1/0_nm/flavor-0_nm.mp4"
    sink = await s3.open_sink(rel, expected_size=len(DATA))
    await write_all(sink, DATA[: 2 * PART])
    await sink.suspend()
    manifest = raw_client(seaweed).get_object(Bucket=s3.bucket, Key=s3.key(rel) + MANIFEST_SUFFIX)
    doc = json.loads(manifest["Body"].read())
    assert doc["upload_id"] and [p[0] for p in doc["parts"]] == [1, 2]
    raw_client(seaweed).delete_object(Bucket=s3.bucket, Key=s3.key(rel) + MANIFEST_SUFFIX)

    again = await s3.open_sink(rel, expected_size=len(DATA))
    assert again.offset == 0 and again.upload_id is None
    assert uploads_for(seaweed, s3.key(rel)) == []  # the unusable upload was aborted
    await write_all(again, DATA)
    assert (await again.commit()).sha256 == sha(DATA)


async def test_a_failed_completion_keeps_the_upload_for_resume(
    s3: S3Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CompleteMultipartUpload failing (after botocore's retries): every stored part is
    listed for the next sink, so only the short last part is sent again."""
    rel = "1/0_cf/flavor-0_cf.mp4"
    real_call = S3Target._call

    async def failing(self: S3Target, op: str, what: str, **kwargs: object) -> dict:
        if op == "complete_multipart_upload":
            raise ArchiveRequestFailed("injected", code="InternalError")
        return await real_call(self, op, what, **kwargs)

    monkeypatch.setattr(S3Target, "_call", failing)
    sink = await s3.open_sink(rel, expected_size=len(DATA))
    await write_all(sink, DATA)
    with pytest.raises(ArchiveRequestFailed, match="injected"):
        await sink.commit()
    monkeypatch.setattr(S3Target, "_call", real_call)
    again = await s3.open_sink(rel, expected_size=len(DATA))
    assert again.offset == 4 * PART  # parts 1-4; the 999-byte last part is not resumable
    await write_all(again, DATA[again.offset :])
    assert (await again.commit()).sha256 == sha(DATA) == await s3.sha256(rel)


async def test_unknown_size_parts_grow(make_s3: Callable[..., S3Target]) -> None:
    async with make_s3() as target:
        sink = await target.open_sink("1/0_u/f.bin", expected_size=None)
        assert sink._part_size(1) == PART and sink._part_size(1001) == 2 * PART
        assert sink._part_size(9_999) == PART << 9
        await sink.discard()


# ---- a store that cannot be used: one clear line ---------------------------------------------


async def _unavailable(target: S3Target) -> str:
    async with target:
        with pytest.raises(ArchiveUnavailable) as info:
            await target.check_writable()
    assert info.value.exit_code == 7
    message = str(info.value)
    assert "\n" not in message and target.uri in message
    return message


async def test_wrong_secret_key(
    make_s3: Callable[..., S3Target], seaweed: SeaweedFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-" + seaweed.secret_key
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    message = await _unavailable(make_s3())
    assert "refused the credentials (SignatureDoesNotMatch)" in message
    assert wrong not in message and seaweed.secret_key not in message
    assert seaweed.access_key not in message


async def test_unknown_access_key(
    make_s3: Callable[..., S3Target], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOSUCHKEY0000000")
    message = await _unavailable(make_s3())
    assert "refused the credentials (InvalidAccessKeyId)" in message
    assert "AKIANOSUCHKEY" not in message


async def test_missing_bucket(make_s3: Callable[..., S3Target]) -> None:
    message = await _unavailable(make_s3(bucket="no-such-bucket-here"))
    assert "bucket 'no-such-bucket-here' does not exist" in message
    # stat must not mistake a missing bucket for a missing file (a verify would demote all).
    async with make_s3(bucket="no-such-bucket-here") as target:
        with pytest.raises(ArchiveUnavailable, match="does not exist"):
            await target.stat("1/0_a/entry.json")


async def test_unreachable_endpoint(make_s3: Callable[..., S3Target]) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    message = await _unavailable(make_s3(endpoint_url=f"http://127.0.0.1:{port}", max_attempts=2))
    assert f"at http://127.0.0.1:{port}" in message and "cannot connect" in message


async def test_no_credentials_at_all(
    make_s3: Callable[..., S3Target], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    message = await _unavailable(make_s3())
    assert "no AWS credentials found" in message


async def test_unreadable_local_archive(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    target = LocalTarget(blocker / "archive")
    with pytest.raises(ArchiveUnavailable) as info:
        await target.check_writable()
    assert str(info.value).startswith(f"archive {target.uri} is unavailable: cannot write")
    with pytest.raises(ArchiveUnavailable):
        await target.open_sink("1/0_a/flavor-0_a.mp4", expected_size=None)
    with pytest.raises(ArchiveUnavailable):
        await target.put_json("1/0_a/entry.json", {"a": 1})


async def test_read_only_local_archive(tmp_path: Path) -> None:
    import os
    import subprocess

    mnt = tmp_path / "ro"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with pytest.raises(ArchiveUnavailable, match="Read-only file system"):
            await LocalTarget(mnt).check_writable()
    finally:
        subprocess.run(["umount", str(mnt)])


# ---- secrets stay out of logs ------------------------------------------------------------------


async def test_credentials_never_reach_the_log(
    make_s3: Callable[..., S3Target],
    seaweed: SeaweedFS,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """DEBUG logging everywhere, a session token, a refused request and a working one: the
    secret key and token appear nowhere in the JSON log, botocore's header dumps included."""
    token = "FwoGZXIvYXdzEXAMPLESESSIONTOKENVALUE0123456789"
    log_file = tmp_path / "run.jsonl"
    level_before = logging.getLogger().level
    klog.configure_logging(json_file=log_file, console=False, level="DEBUG")
    try:
        async with make_s3() as good:  # real secret, no token: must work
            await good.check_writable()
            sink = await good.open_sink("1/0_l/flavor-0_l.mp4", expected_size=None)
            await write_all(sink, DATA[: 2 * PART])
            await sink.suspend()
            resumed = await good.open_sink("1/0_l/flavor-0_l.mp4", expected_size=None)
            await resumed.discard()
        monkeypatch.setenv("AWS_SESSION_TOKEN", token)
        async with make_s3() as bad:
            with pytest.raises(ArchiveUnavailable) as info:
                await bad.check_writable()
        structlog.get_logger("kretain.test").warning(
            "check", detail=f"secret={seaweed.secret_key} token={token}"
        )
    finally:
        # Put logging back the way the rest of the suite expects it.
        root = logging.getLogger()
        for handler in list(root.handlers):
            if getattr(handler, klog._HANDLER_MARK, False):
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level_before)
        structlog.reset_defaults()
        klog.clear_secrets()
    text = log_file.read_text()
    # botocore prints request headers (the token among them) at DEBUG: it stays at WARNING.
    assert logging.getLogger("botocore.endpoint").getEffectiveLevel() >= logging.WARNING
    assert "archive.resume" in text  # the log did record this run
    assert '"check"' in text and "secret=***" in text  # registered as secrets by the target
    assert seaweed.secret_key not in text and token not in text
    assert token not in str(info.value) and seaweed.secret_key not in str(info.value)


# ---- a store that keeps failing: bounded retries, then a named error ---------------------------


async def test_throttling_is_retried_a_bounded_number_of_times(aws_env: SeaweedFS) -> None:
    from aiohttp import web

    seen: list[str] = []

    async def slow_down(request: web.Request) -> web.Response:
        seen.append(request.method)
        await request.read()
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            "<Message>Please reduce your request rate.</Message></Error>"
        )
        return web.Response(status=503, body=body, content_type="application/xml")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", slow_down)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    endpoint = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with S3Target("bucket", "p", endpoint_url=endpoint, max_attempts=3) as target:
            with pytest.raises(ArchiveRequestFailed) as info:
                await target.put_json("1/0_a/entry.json", {"a": 1})
            assert info.value.code == "SlowDown" and info.value.retryable
            assert len(seen) == 3  # botocore's bounded retries, no more
            assert str(info.value).startswith("put_object")
            assert "s3://bucket/p at " + endpoint in str(info.value)
            seen.clear()
            with pytest.raises(ArchiveUnavailable, match=r"test write failed \(SlowDown\)"):
                await target.check_writable()
    finally:
        await runner.cleanup()

"""The ArchiveTarget contract, run against LocalTarget (real files) and S3Target (a real
SeaweedFS on loopback) alike: the worker code above them must not care which it has."""

from __future__ import annotations

import pytest
from s3_support import (
    MiB,
    b64sha,
    composite,
    pseudo_random,
    raw_client,
    read_all,
    sha,
    write_all,
)

from kretain.archive import (
    ArchivePathError,
    ArchiveTarget,
    FileSink,
    LocalTarget,
    PartFileBusy,
    StoredFile,
    entry_rel,
)
from kretain.archive.s3 import S3Target

BIG = pseudo_random(3 * (5 << 20) + 12_345, seed=2)  # three full 5 MiB parts and a tail
SMALL = b"caption line 1\nline 2\n" * 40


def is_s3(target: ArchiveTarget) -> bool:
    return isinstance(target, S3Target)


async def put_file(target: ArchiveTarget, rel: str, data: bytes) -> StoredFile:
    sink = await target.open_sink(rel, expected_size=len(data))
    assert sink.offset == 0
    await write_all(sink, data)
    assert sink.offset == len(data)
    return await sink.commit()


async def test_both_are_archive_targets(target: ArchiveTarget) -> None:
    assert isinstance(target, ArchiveTarget)
    assert target.uri.startswith("s3://" if is_s3(target) else "file:///")
    await target.check_writable()
    sink = await target.open_sink("1/0_a/flavor-0_b.mp4", expected_size=None)
    assert isinstance(sink, FileSink)
    await sink.discard()


@pytest.mark.parametrize("data", [BIG, SMALL, b""], ids=["multipart", "small", "empty"])
async def test_write_commit_stat_read_sha256(target: ArchiveTarget, data: bytes) -> None:
    rel = f"{target.entry_prefix(1234, '0_abc')}/flavor-0_x.mp4"
    stored = await put_file(target, rel, data)
    assert stored.size == len(data) and stored.sha256 == sha(data)
    stat = await target.stat(rel)
    assert stat is not None and stat.size == len(data)
    assert await read_all(target, rel) == data
    assert await read_all(target, rel, start=len(data) // 3) == data[len(data) // 3 :]
    assert await target.sha256(rel) == sha(data)
    if is_s3(target):
        if len(data) >= 5 << 20:
            # Composite: the store checked every part's SHA-256; stat says the same.
            assert stored.store_checksum == composite(data, 5 << 20)
            assert stat.store_checksum == stored.store_checksum and stat.sha256 is None
        else:
            # One PUT: the store's checksum is the file's, and the sha256 is in metadata.
            assert stored.store_checksum == b64sha(data) == stat.store_checksum
            assert stat.sha256 == sha(data)
    else:
        assert stored.store_checksum is None and stat.sha256 is None


async def test_missing_files(target: ArchiveTarget) -> None:
    assert await target.stat("1/0_none/flavor-0_x.mp4") is None
    assert await target.get_json("1/0_none/entry.json") is None
    with pytest.raises(FileNotFoundError):
        await read_all(target, "1/0_none/flavor-0_x.mp4")
    with pytest.raises(FileNotFoundError):
        await target.sha256("1/0_none/flavor-0_x.mp4")
    await target.delete("1/0_none/flavor-0_x.mp4")  # nothing there: no error


async def test_put_get_json_and_delete(target: ArchiveTarget) -> None:
    rel = f"{target.entry_prefix(7, '0_e1')}/entry.json"
    doc = {"entry_id": "0_e1", "name": "Ünïcode title", "files": [{"size": 3}]}
    await target.put_json(rel, doc)
    assert await target.get_json(rel) == doc
    await target.put_json(rel, {"entry_id": "0_e1", "v": 2})
    assert await target.get_json(rel) == {"entry_id": "0_e1", "v": 2}
    # The same bytes on disk and in S3: one reader can check either.
    assert (await read_all(target, rel)).decode() == '{\n  "entry_id": "0_e1",\n  "v": 2\n}\n'
    await target.delete(rel)
    assert await target.get_json(rel) is None and await target.stat(rel) is None


async def test_failed_json_write_leaves_the_old_document(target: ArchiveTarget) -> None:
    rel = "7/0_e2/entry.json"
    await target.put_json(rel, {"v": 1})
    with pytest.raises(ValueError):
        await target.put_json(rel, {"v": float("nan"), "bad": _Unserializable()})
    assert await target.get_json(rel) == {"v": 1}


class _Unserializable:
    def __str__(self) -> str:
        raise ValueError("cannot render")


async def test_suspend_then_resume_continues_at_offset(target: ArchiveTarget) -> None:
    rel = "1/0_r/flavor-0_r.mp4"
    first = await target.open_sink(rel, expected_size=len(BIG))
    cut = 2 * (5 << 20) + 3 * MiB + 17  # two parts and a partial buffer
    await write_all(first, BIG[:cut])
    await first.suspend()
    assert await target.stat(rel) is None  # not in place until committed

    second = await target.open_sink(rel, expected_size=len(BIG))
    offset = second.offset
    if is_s3(target):
        # Stored parts survive; the 3 MiB that were only buffered do not (under 5 MiB).
        assert offset == 2 * (5 << 20) == second.durable
    else:
        assert offset == cut
    await write_all(second, BIG[offset:])
    stored = await second.commit()
    assert stored.size == len(BIG) and stored.sha256 == sha(BIG)  # S3: read back and hashed
    assert await target.sha256(rel) == sha(BIG)
    if is_s3(target):
        assert stored.store_checksum == composite(BIG, 5 << 20)


async def test_resume_never_claims_the_whole_file(target: ArchiveTarget) -> None:
    """A writer killed after the last byte but before commit: the next sink still leaves
    the source something to send (S3 drops the last part; local keeps the overlap byte)."""
    rel = "1/0_w/flavor-0_w.mp4"
    data = BIG[: 2 * (5 << 20)]  # exactly two parts
    sink = await target.open_sink(rel, expected_size=len(data))
    await write_all(sink, data)
    await sink.suspend()
    again = await target.open_sink(rel, expected_size=len(data))
    if is_s3(target):
        assert again.offset == 5 << 20 and await again.last_byte() is None
    else:
        assert again.offset == len(data) and await again.last_byte() == data[-1:]
    await again.discard()


async def test_longer_leftover_is_cut_to_the_expected_size(target: ArchiveTarget) -> None:
    rel = "1/0_c/flavor-0_c.mp4"
    sink = await target.open_sink(rel, expected_size=None)
    await write_all(sink, BIG)
    await sink.suspend()
    expected = 2 * (5 << 20) + 100
    again = await target.open_sink(rel, expected_size=expected)
    assert again.offset <= expected and again.offset in (expected, 2 * (5 << 20))
    await write_all(again, BIG[again.offset : expected])
    stored = await again.commit()
    assert stored.size == expected and stored.sha256 == sha(BIG[:expected])


async def test_reset_starts_over(target: ArchiveTarget) -> None:
    rel = "1/0_z/flavor-0_z.mp4"
    sink = await target.open_sink(rel, expected_size=None)
    await write_all(sink, BIG[: 12 << 20])
    await sink.reset()
    assert sink.offset == 0
    other = pseudo_random(7 << 20, seed=9)
    await write_all(sink, other)
    stored = await sink.commit()
    assert stored.sha256 == sha(other) and await read_all(target, rel) == other


async def test_discard_leaves_nothing(target: ArchiveTarget) -> None:
    rel = "1/0_d/flavor-0_d.mp4"
    sink = await target.open_sink(rel, expected_size=None)
    await write_all(sink, BIG[: 11 << 20])
    await sink.discard()
    assert await target.stat(rel) is None
    again = await target.open_sink(rel, expected_size=None)
    assert again.offset == 0
    await again.discard()


async def test_one_writer_per_file(target: ArchiveTarget) -> None:
    rel = "1/0_b/flavor-0_b.mp4"
    sink = await target.open_sink(rel, expected_size=None)
    with pytest.raises(PartFileBusy) as info:
        await target.open_sink(rel, expected_size=None)
    assert info.value.retryable
    await sink.suspend()
    again = await target.open_sink(rel, expected_size=None)  # free again
    await again.discard()


async def test_corrupted_file_is_detected(
    target: ArchiveTarget, request: pytest.FixtureRequest
) -> None:
    """Bytes replaced after the commit (same size): sha256() reads the real bytes, and
    S3's own checksum no longer matches the one recorded at commit."""
    rel = "1/0_k/flavor-0_k.mp4"
    recorded = await put_file(target, rel, BIG)
    damaged = bytearray(BIG)
    damaged[len(BIG) // 2] ^= 0x01
    if isinstance(target, S3Target):
        client = raw_client(request.getfixturevalue("seaweed"))
        client.put_object(Bucket=target.bucket, Key=target.key(rel), Body=bytes(damaged))
    else:
        assert isinstance(target, LocalTarget)
        target.path_of(rel).write_bytes(bytes(damaged))
    stat = await target.stat(rel)
    assert stat is not None and stat.size == recorded.size
    assert await target.sha256(rel) != recorded.sha256
    if is_s3(target):
        assert recorded.store_checksum and stat.store_checksum != recorded.store_checksum


async def test_paths_cannot_leave_the_archive(target: ArchiveTarget) -> None:
    for bad in ("../x", "a/../../x", "/etc/passwd", "a//b", "", "a/./b", "a\x00b"):
        with pytest.raises(ArchivePathError):
            await target.open_sink(bad, expected_size=None)
        with pytest.raises(ArchivePathError):
            await target.stat(bad)
    # Hostile ids become safe names, the same for both stores.
    assert target.entry_prefix(5, "../../etc") == entry_rel(5, "../../etc")
    assert target.entry_prefix(5, "../../etc").startswith("5/~")


async def test_free_bytes(target: ArchiveTarget) -> None:
    free = await target.free_bytes()
    assert free is None if is_s3(target) else free > 0


async def test_abort_abandoned_keeps_what_is_wanted(
    target: ArchiveTarget, request: pytest.FixtureRequest
) -> None:
    names = ["1/0_a/flavor-0_a.mp4", "1/0_b/flavor-0_b.mp4", "2/0_c/flavor-0_c.mp4"]
    for name in names:
        sink = await target.open_sink(name, expected_size=None)
        await write_all(sink, BIG[: 6 << 20])
        await sink.suspend()
    busy = await target.open_sink("2/0_d/flavor-0_d.mp4", expected_size=None)
    await write_all(busy, BIG[: 6 << 20])  # still open: being written right now

    assert await target.abort_abandoned([], older_than=3600) == 0  # all too recent
    assert await target.abort_abandoned([names[0]], prefix="1") == 1  # 1/0_b only
    assert await target.abort_abandoned([names[0]]) == 1  # 2/0_c; 2/0_d is open
    await busy.suspend()
    for gone in names[1:]:
        sink = await target.open_sink(gone, expected_size=None)
        assert sink.offset == 0
        await sink.discard()
    for kept_name in (names[0], "2/0_d/flavor-0_d.mp4"):
        sink = await target.open_sink(kept_name, expected_size=None)
        assert sink.offset >= 5 << 20
        await sink.discard()
    # Nothing unfinished is left behind by discard.
    if isinstance(target, S3Target):
        server = request.getfixturevalue("seaweed")
        listing = raw_client(server).list_multipart_uploads(
            Bucket=target.bucket, Prefix=target.prefix + "/"
        )
        assert not listing.get("Uploads")
        objects = raw_client(server).list_objects_v2(
            Bucket=target.bucket, Prefix=target.prefix + "/"
        )
        assert not [o["Key"] for o in objects.get("Contents", []) if o["Key"].endswith(".part")]
    else:
        assert isinstance(target, LocalTarget)
        assert not list(target.root.rglob("*.part"))

"""Helpers shared by the archive tests (imported by name: tests/archive is on sys.path)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from typing import Any

from kretain.archive import FileSink, LocalTarget
from kretain.archive.s3 import S3Target
from kretain.archive.testing import SeaweedFS

MiB = 1 << 20


def pseudo_random(n: int, seed: int = 1) -> bytes:
    """Deterministic incompressible bytes (SHA-256 in counter mode)."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 64
        counter += 1
    return bytes(out[:n])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def composite(data: bytes, part: int) -> str:
    """S3's composite ChecksumSHA256 for ``data`` cut into ``part``-sized parts."""
    digests = [hashlib.sha256(data[i : i + part]).digest() for i in range(0, len(data), part)]
    joined = hashlib.sha256(b"".join(digests)).digest()
    return f"{base64.b64encode(joined).decode()}-{len(digests)}"


async def write_all(sink: FileSink, data: bytes, chunk: int = 700_001) -> None:
    """Write ``data`` in odd-sized chunks (not aligned with any part size)."""
    view = memoryview(data)
    for i in range(0, len(view), chunk):
        await sink.write(view[i : i + chunk])


async def read_all(target: LocalTarget | S3Target, rel: str, start: int = 0) -> bytes:
    out = bytearray()
    async with contextlib.aclosing(target.read(rel, start=start)) as stream:
        async for chunk in stream:
            out += chunk
    return bytes(out)


def raw_client(server: SeaweedFS) -> Any:
    """A plain synchronous botocore client, to look at (or tamper with) the bucket."""
    return server.client()


def uploads_for(server: SeaweedFS, key: str) -> list[dict[str, Any]]:
    resp = raw_client(server).list_multipart_uploads(Bucket=server.bucket, Prefix=key)
    return [u for u in resp.get("Uploads", []) if u["Key"] == key]


class CountingProxy:
    """A TCP proxy on 127.0.0.1 that counts the bytes clients send upstream: an
    independent measure of what was uploaded to the store."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.sent = 0
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> CountingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, count: bool) -> None:
            try:
                while data := await src.read(1 << 16):
                    if count:
                        self.sent += len(data)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))

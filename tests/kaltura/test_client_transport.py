"""Transport over real loopback HTTP against a tiny hostile server of our own.

The project simulator answers like Kaltura; these cases are what a broken proxy,
CDN or WAF in front of Kaltura might send instead.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from kretain.kaltura.errors import (
    ConnectionFailed,
    HTTPStatusError,
    InvalidResponse,
    NotFound,
    RequestTimeout,
)
from kretain.kaltura.transport import CLIENT_TAG, Transport

BODIES: dict[str, tuple[int, bytes, str]] = {
    "html200": (200, b"<html><body>Service Unavailable</body></html>", "text/html"),
    "xml": (200, b'<?xml version="1.0"?><xml><result>1</result></xml>', "text/xml"),
    "garbage": (200, b'{"objects": [{"id": "0_a"', "application/json"),
    "binary": (200, b"\x00\xff\xfe\x10", "application/json"),
    "empty": (200, b"", "application/json"),
    "waf": (403, b"<html>Request blocked</html>", "text/html"),
    "error": (
        200,
        json.dumps(
            {
                "code": "ENTRY_ID_NOT_FOUND",
                "message": 'Entry id "0_x" not found',
                "objectType": "KalturaAPIException",
                "args": {"ENTRY_ID": "0_x"},
            }
        ).encode(),
        "application/json",
    ),
    "mr_not_list": (200, b'{"objectType": "KalturaMediaEntry", "id": "0_a"}', "application/json"),
}


@pytest.fixture
async def hostile() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        seen.append({k: str(v) for k, v in form.items()} | {"_path": request.path})
        mode = request.match_info["mode"]
        if mode == "slow":
            await asyncio.sleep(0.6)
        if mode == "ok":
            return web.json_response({"echo": dict(form)})
        if mode == "busy":
            return web.Response(status=429, text="slow down", headers={"Retry-After": "7"})
        status, body, ctype = BODIES[mode]
        return web.Response(status=status, body=body, content_type=ctype)

    app = web.Application()
    app.router.add_route("POST", "/{mode}/api_v3/service/{svc}/action/{act}", handler)
    app.router.add_route("POST", "/{mode}/api_v3/service/multirequest", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def _transport(url: str, **kw) -> Transport:
    transport = Transport(url, **kw)
    await transport.open()
    return transport


async def test_request_shape(hostile) -> None:
    base, seen = hostile
    transport = await _transport(f"{base}/ok/")
    try:
        result = await transport.request(
            "media", "list", {"filter": {"statusIn": "2", "x": None}, "flag": True}, ks="KS1"
        )
    finally:
        await transport.close()
    assert seen[0]["_path"] == "/ok/api_v3/service/media/action/list"
    assert result["echo"] == {
        "format": "1",
        "clientTag": CLIENT_TAG,
        "ks": "KS1",
        "filter:statusIn": "2",
        "filter:x__null": "",
        "flag": "1",
    }


@pytest.mark.parametrize("mode", ["html200", "xml", "garbage", "binary", "empty"])
async def test_invalid_bodies(hostile, mode: str) -> None:
    base, _ = hostile
    transport = await _transport(f"{base}/{mode}")
    try:
        with pytest.raises(InvalidResponse) as info:
            await transport.request("media", "list")
    finally:
        await transport.close()
    assert info.value.__cause__ is not None or mode in ("html200", "xml", "empty")


async def test_status_errors_and_api_errors(hostile) -> None:
    base, _ = hostile
    for mode, status, retry_after in [("waf", 403, None), ("busy", 429, 7.0)]:
        transport = await _transport(f"{base}/{mode}")
        try:
            with pytest.raises(HTTPStatusError) as info:
                await transport.request("baseentry", "delete", {"entryId": "0_x"})
        finally:
            await transport.close()
        assert (info.value.status, info.value.retry_after) == (status, retry_after)
    transport = await _transport(f"{base}/error")
    try:
        with pytest.raises(NotFound):
            await transport.request("baseentry", "get", {"entryId": "0_x"})
        with pytest.raises(NotFound):  # a top-level exception answer to a multirequest
            await transport.multirequest([("baseentry", "get", {"entryId": "0_x"})])
    finally:
        await transport.close()
    transport = await _transport(f"{base}/mr_not_list")
    try:
        with pytest.raises(InvalidResponse):
            await transport.multirequest([("baseentry", "get", {"entryId": "0_x"})])
    finally:
        await transport.close()


async def test_timeout_and_refused(hostile) -> None:
    base, _ = hostile
    transport = await _transport(f"{base}/slow", read_timeout=0.2)
    try:
        with pytest.raises(RequestTimeout) as info:
            await transport.request("media", "list")
        assert isinstance(info.value.__cause__, TimeoutError)
    finally:
        await transport.close()
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = await _transport(f"http://127.0.0.1:{port}", connect_timeout=1.0)
    try:
        with pytest.raises(ConnectionFailed):
            await transport.request("media", "list")
    finally:
        await transport.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
async def test_tls_verification_on_by_default(tmp_path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def handler(request: web.Request) -> web.Response:
        return web.json_response("ok")

    app = web.Application()
    app.router.add_post("/api_v3/service/{svc}/action/{act}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    url = f"https://127.0.0.1:{runner.addresses[0][1]}"
    try:
        transport = await _transport(url)
        try:
            with pytest.raises(ConnectionFailed, match="TLS"):
                await transport.request("system", "ping")
        finally:
            await transport.close()
        transport = await _transport(url, verify_tls=False)  # explicit opt-out only
        try:
            assert await transport.request("system", "ping") == "ok"
        finally:
            await transport.close()
    finally:
        await runner.cleanup()


async def test_transport_errors_name_host_port_and_call_but_no_ks(hostile) -> None:
    """A refused or silent server is named by host:port (the config may hold several URLs);
    the KS sent in the form never appears in the message."""
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = await _transport(f"http://127.0.0.1:{port}", connect_timeout=1.0)
    try:
        with pytest.raises(ConnectionFailed) as refused:
            await transport.request("baseentry", "list", ks="djJ8secret-ks-value")
    finally:
        await transport.close()
    assert str(refused.value) == (
        f"cannot connect to 127.0.0.1:{port} (ConnectionRefusedError) for baseentry.list"
    )
    base, _ = hostile
    transport = await _transport(f"{base}/slow", read_timeout=0.2)
    try:
        with pytest.raises(RequestTimeout) as slow:
            await transport.multirequest([("media", "get", {"entryId": "0_x"})], ks="djJ8ks")
    finally:
        await transport.close()
    host_port = base.removeprefix("http://")
    assert str(slow.value) == f"no answer in time from {host_port} for multirequest"
    for message in (str(refused.value), str(slow.value)):
        assert "djJ8" not in message

"""The simulator's HTTP layer: api_v3 requests, multirequest, serving bytes, faults.

Routes:
- ``/api_v3/...`` (any method): plain calls and ``service/multirequest``;
  serve actions of caption/attachment/thumb assets stream bytes.
- ``/p/<pid>/sp/<pid>00/serveFlavor/...``: flavor downloads (the getUrl form).

Request bodies are capped at 64 MiB except multipart file parts, which are streamed
to temp files under the partner's content directory (uploads of several GB) and
removed when the request ends unless a call kept them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from kretain.simulator import wire
from kretain.simulator.apierrors import SimApiError
from kretain.simulator.content import content_bytes
from kretain.simulator.faults import Knobs, Stats, TokenBucket
from kretain.simulator.partner import Partner, PartnerSpec
from kretain.simulator.services import ROUTES, Exchange, ServeFile, Simulator, serve_asset

log = logging.getLogger(__name__)

SIM_KEY = web.AppKey("simulator", Simulator)
BUCKET_KEY = web.AppKey("total_bucket", TokenBucket)
CHUNK = 64 * 1024
# KExternalErrors numbers used on download endpoints.
_DOWNLOAD_ERRORS = {
    "ENTRY_ID_NOT_FOUND": (1, "requested entry not found"),
    "FLAVOR_ASSET_ID_NOT_FOUND": (6, "flavor not found"),
    "CAPTION_ASSET_ID_NOT_FOUND": (6, "caption asset not found"),
    "ATTACHMENT_ASSET_ID_NOT_FOUND": (6, "attachment asset not found"),
    "THUMB_ASSET_ID_NOT_FOUND": (6, "thumbnail asset not found"),
    "ACTION_BLOCKED": (57, "Access to service was rate limited"),
}
_FAULT_STATUS = {"http_500": 500, "http_502": 502, "http_503": 503}


def build_app(
    partner: Partner, knobs: Knobs, stats: Stats, mutations: list[dict[str, Any]]
) -> web.Application:
    """The aiohttp application serving ``partner``; knobs/stats/mutations are shared, live."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    sim = Simulator(partner, knobs, stats, mutations)
    app[SIM_KEY] = sim
    app[BUCKET_KEY] = TokenBucket()
    app.router.add_route("*", "/api_v3", _api)
    # [\s\S]: a decoded name in a URL may hold a newline, which "." does not match.
    app.router.add_route("*", r"/api_v3/{tail:[\s\S]*}", _api)
    app.router.add_route("*", r"/p/{pid}/sp/{sp}/serveFlavor/{tail:[\s\S]*}", _serve_flavor)

    async def _close(_: web.Application) -> None:
        sim.close()

    app.on_cleanup.append(_close)
    return app


# ---- api_v3 -------------------------------------------------------------------


async def _api(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM_KEY]
    knobs = sim.knobs
    sim.stats.requests += 1
    sim.stats.api_requests += 1
    fault = knobs.pick_http_fault("api")
    if fault in _FAULT_STATUS or fault == "hang":
        return await _http_fault(request, sim, fault)
    if knobs.latency_ms > 0:
        await asyncio.sleep(knobs.latency_ms / 1000.0)
    started = time.perf_counter()
    params, files = await wire.read_request(request, sim.partner.incoming_dir())
    try:
        return await _answer(request, sim, params, fault, started)
    finally:
        for upload in files:  # whatever a call did not keep
            upload.discard()


async def _answer(
    request: web.Request, sim: Simulator, params: dict[str, Any], fault: str | None, started: float
) -> web.StreamResponse:
    fmt = params.get("format") if isinstance(params.get("format"), str) else None
    base_url = f"{request.scheme}://{request.host}"
    service = str(params.get("service") or "").lower()
    action = str(params.get("action") or "")
    exchange = Exchange()

    if service == "multirequest":
        result: Any = await sim.multirequest(params, base_url, exchange)
        if isinstance(result, ServeFile):
            return await _stream(request, result)
    else:
        route = ROUTES.get(f"{service}.{action.lower()}")
        try:
            result = await sim.call(service, action, params, base_url, exchange)
        except SimApiError as exc:
            if route is not None and route.serve:
                return _download_error(sim, *_download_error_for(exc.code))
            result = exc.to_wire()
        if isinstance(result, ServeFile):
            return await _stream(request, result)
    if exchange.lost:
        # The change is made; the answer never reaches the client.
        return web.Response(status=503, body=b"")

    body, ctype = wire.render(result, fmt, time.perf_counter() - started)
    if fault == "truncate":
        return await _truncated(request, sim, body, ctype)
    return web.Response(body=body, content_type=ctype, charset="utf-8")


# ---- faults -------------------------------------------------------------------


async def _http_fault(request: web.Request, sim: Simulator, fault: str) -> web.StreamResponse:
    sim.stats.faults[fault] += 1
    if fault == "hang":
        # Hold the connection without a byte of answer, then drop it.
        await asyncio.sleep(sim.knobs.hang_seconds)
        _drop(request)
        return web.Response(status=504)
    status = _FAULT_STATUS[fault]
    text = f"<html><body><h1>{status}</h1>simulated infrastructure error</body></html>"
    return web.Response(status=status, text=text, content_type="text/html")


async def _truncated(
    request: web.Request, sim: Simulator, body: bytes, ctype: str
) -> web.StreamResponse:
    sim.stats.faults["truncate"] += 1
    resp = web.StreamResponse(status=200, headers={"Content-Type": f"{ctype}; charset=utf-8"})
    resp.content_length = len(body)
    await resp.prepare(request)
    with contextlib.suppress(ConnectionError):
        await resp.write(body[: len(body) // 2])
    _drop(request)
    return resp


def _drop(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.close()


def _download_error_for(code: str) -> tuple[int, str]:
    return _DOWNLOAD_ERRORS.get(code, (6, "flavor not found"))


def _download_error(sim: Simulator, number: int, text: str) -> web.Response:
    # The extwidget way: HTTP 200, empty body, the reason only in headers.
    return web.Response(
        status=200,
        body=b"",
        headers={
            "X-Kaltura": f"error-{number}",
            "X-Kaltura-App": f"exiting on error {number} - {text}",
        },
    )


# ---- serving bytes ------------------------------------------------------------


async def _serve_flavor(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM_KEY]
    sim.stats.requests += 1
    segments = [unquote(s) for s in request.raw_path.split("?", 1)[0].split("/") if s]
    try:
        tail = segments[segments.index("serveFlavor") + 1 :]
    except ValueError:
        tail = []
    pairs = {tail[i]: tail[i + 1] for i in range(0, len(tail) - 1, 2)}
    flavor_id = pairs.get("flavorId", "")
    if request.match_info.get("pid") != str(sim.partner_id) or not flavor_id:
        return _download_error(sim, 1, "requested entry not found")
    loop = asyncio.get_running_loop()
    try:
        served = await loop.run_in_executor(sim.executor, serve_asset, sim, "flavor", flavor_id)
    except SimApiError as exc:
        return _download_error(sim, *_download_error_for(exc.code))
    return await _stream(request, served)


def _parse_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """(start, end_inclusive); None = no usable Range (serve all); False = unsatisfiable."""
    if not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    try:
        if first == "":
            if not last:
                return None
            length = int(last)
            if length <= 0:
                return False
            return (max(0, size - length), size - 1) if size else False
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return False
    return start, min(end, size - 1)


async def _stream(request: web.Request, served: ServeFile) -> web.StreamResponse:
    sim = request.app[SIM_KEY]
    knobs = sim.knobs
    sim.stats.downloads += 1
    if knobs.draw_download_error():
        sim.stats.faults["download_error"] += 1
        return _download_error(sim, knobs.download_error_code, "simulated download error")
    fault = knobs.pick_http_fault("download")
    if fault in _FAULT_STATUS or fault == "hang":
        return await _http_fault(request, sim, fault)

    source = None
    if served.path is not None:
        try:
            source = open(served.path, "rb")  # noqa: SIM115  (closed after streaming)
        except FileNotFoundError:  # deleted since the lookup
            return _download_error(sim, *_download_error_for("FLAVOR_ASSET_ID_NOT_FOUND"))
    try:
        return await _stream_bytes(request, sim, served, source, fault)
    finally:
        if source is not None:
            source.close()


async def _stream_bytes(
    request: web.Request, sim: Simulator, served: ServeFile, source: Any, fault: str | None
) -> web.StreamResponse:
    knobs = sim.knobs
    size = served.size
    start, end, status = 0, size - 1, 200
    range_header = request.headers.get("Range", "")
    if range_header and not knobs.ignore_range:
        parsed = _parse_range(range_header, size)
        if parsed is False:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        if parsed:
            start, end = parsed  # type: ignore[misc]
            status = 206
    length = max(0, end - start + 1)
    resp = web.StreamResponse(status=status)
    resp.content_type = "application/octet-stream"
    resp.content_length = length
    resp.headers["Accept-Ranges"] = "bytes"
    if status == 206:
        resp.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    await resp.prepare(request)
    if request.method == "HEAD":
        return resp
    # A truncated download stops half-way with the full length promised.
    stop = start + (length // 2 if fault == "truncate" else length)
    own_bucket = TokenBucket()
    total_bucket = request.app[BUCKET_KEY]
    pos = start
    loop = asyncio.get_running_loop()
    try:
        while pos < stop:
            n = min(CHUNK, stop - pos)
            await own_bucket.take(n, knobs.download_bandwidth)
            await total_bucket.take(n, knobs.total_bandwidth)
            if source is None:
                data = content_bytes(served.seed, pos, n)
            else:
                data = await loop.run_in_executor(None, _read_at, source, pos, n)
            # Counted before the write: the client may read the last chunk before this
            # coroutine resumes, and a test reading the counter then must see it.
            sim.stats.bytes_served += n
            await resp.write(data)
            pos += n
    except (ConnectionError, asyncio.CancelledError):
        _drop(request)
        raise
    if fault == "truncate":
        sim.stats.faults["truncate"] += 1
        _drop(request)
        return resp
    await resp.write_eof()
    return resp


def _read_at(source: Any, pos: int, n: int) -> bytes:
    source.seek(pos)
    data = source.read(n)
    return data + b"\0" * (n - len(data))  # a file cut short keeps its promised length


# ---- running it -------------------------------------------------------------------


async def serve_forever(
    spec: PartnerSpec,
    host: str,
    port: int,
    knobs: Knobs,
    db_path: str | None,
    *,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Generate/open the partner and serve it until cancelled."""
    partner = Partner.create(spec, db_path)
    runner: web.AppRunner | None = None
    try:
        app = build_app(partner, knobs, Stats(), [])
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        url = _site_url(runner, host)
        if ready is not None:
            ready(url)
        await asyncio.Event().wait()
    finally:
        if runner is not None:
            await runner.cleanup()
        partner.close()


def _site_url(runner: web.AppRunner, host: str) -> str:
    address = runner.addresses[0]
    return f"http://{host}:{address[1]}"


def parse_rate_limit(text: str) -> tuple[str, tuple[int, float]]:
    """'baseentry.delete=35/10' -> ('baseentry.delete', (35, 10.0))."""
    name, _, rule = text.partition("=")
    limit, _, window = rule.partition("/")
    if not name or not limit:
        raise ValueError(f"rate limit must look like service.action=LIMIT[/SECONDS]: {text!r}")
    return name.strip().lower(), (int(limit), float(window or 10.0))


def parse_fault(text: str) -> tuple[str, float]:
    """'http_503=0.05' -> ('http_503', 0.05)."""
    name, _, rate = text.partition("=")
    name = name.strip().replace("-", "_")
    if name not in (
        "http_500",
        "http_502",
        "http_503",
        "hang",
        "truncate",
        "internal_error",
        "download_error",
        "lost_answer",
    ):
        raise ValueError(f"unknown fault {name!r}")
    value = float(rate)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"fault rate must be within 0..1: {text!r}")
    return name, value


def simulator_main(
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    entries: int = 2_000,
    seed: int = 1,
    db_path: str | None = None,
    burst: int = 0,
    traps: bool = True,
    recycle_bin: bool = False,
    recycle_retention_days: int = 30,
    max_file_bytes: int | None = None,
    latency_ms: float = 0.0,
    rate_limits: Sequence[str] = (),
    no_rate_limits: bool = False,
    ks_lifetime: int | None = None,
    download_bandwidth: float | None = None,
    total_bandwidth: float | None = None,
    ignore_range: bool = False,
    faults: Sequence[str] = (),
    fault_seed: int = 0,
    echo: Callable[[str], None] = print,
) -> None:
    """Run a simulator in the foreground until Ctrl-C (the ``kretain simulator`` command)."""
    spec = PartnerSpec(
        entries=entries,
        seed=seed,
        burst=burst,
        traps=traps,
        recycle_bin=recycle_bin,
        recycle_retention_days=recycle_retention_days,
        max_file_bytes=max_file_bytes,
    )
    knobs = Knobs(
        latency_ms=latency_ms,
        ks_lifetime=ks_lifetime,
        download_bandwidth=download_bandwidth,
        total_bandwidth=total_bandwidth,
        ignore_range=ignore_range,
        fault_seed=fault_seed,
    )
    if no_rate_limits:
        knobs.rate_limits = {}
    for text in rate_limits:
        name, rule = parse_rate_limit(text)
        knobs.rate_limits[name] = rule
    for text in faults:
        name, rate = parse_fault(text)
        setattr(knobs, name, rate)

    def ready(url: str) -> None:
        echo(f"Kaltura simulator for partner {spec.partner_id} at {url}")
        echo(f"  admin secret: {spec.admin_secret}   entries: {spec.entries}")
        echo("  Ctrl-C to stop")

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(spec, host, port, knobs, db_path, ready=ready))

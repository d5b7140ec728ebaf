"""One HTTP exchange with api_v3: flatten params, POST, decode JSON, map failures.

This is the only place that knows about aiohttp exceptions; each one is translated
once into a :mod:`kretain.kaltura.errors` class and chained with ``from``. A JSON
object whose ``objectType`` is ``KalturaAPIException`` raises the mapped ApiError.
The transport guarantees valid JSON, nothing more: shape checks belong to callers.

Calls with a file (``Transport.upload``) are multipart/form-data as Kaltura's own clients
send them: every parameter in ONE field ``json`` (the server then reads that field alone,
infraRequestUtils::getRequestParams) and the file in ``fileData`` with a file name. The
file part is a byte range of a local file (:class:`FilePart`), read from disk block by
block while it is sent (constant memory) and hashed on the way.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import os
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import aiohttp.payload

from kretain import __version__
from kretain.kaltura.errors import (
    ConnectionFailed,
    HTTPStatusError,
    InvalidResponse,
    RequestTimeout,
    api_error_from_wire,
    is_api_exception,
)

CLIENT_TAG = f"kretain:{__version__}"
# A list page of 500 entries is ~1-2 MB; anything far beyond is not an API answer.
MAX_BODY_BYTES = 64 * 1024 * 1024

Params = Mapping[str, Any]
UPLOAD_BLOCK = 1 << 20  # bytes read from disk (and written to the socket) at a time


class FileChanged(OSError):
    """The file part's bytes on disk are not there any more (cut short while sent)."""


ByteSource = Callable[[int], AsyncIterator[bytes]]  # a file's bytes from an offset, in blocks


def local_file(path: str | os.PathLike[str]) -> ByteSource:
    """A ByteSource reading a local file in UPLOAD_BLOCK pieces (off the event loop)."""

    async def read(start: int) -> AsyncIterator[bytes]:
        with open(path, "rb") as fh:
            fh.seek(start)
            while block := await asyncio.to_thread(fh.read, UPLOAD_BLOCK):
                yield block

    return read


class FilePart:
    """``length`` bytes from ``offset`` of a file (a path, or a ByteSource such as an
    archive's reader), sent as a file part.

    Each send reads the range afresh and hashes what it sends: after a send ``sha256`` is
    the hex digest of the bytes that went out and ``sent`` their count (a send cut short
    leaves ``sent < length``). A source shorter than promised sets ``cut_short`` and raises
    FileChanged in the middle of the body, so the server never takes a short part.
    """

    def __init__(
        self,
        source: ByteSource | str | os.PathLike[str],
        *,
        filename: str,
        offset: int = 0,
        length: int,
    ) -> None:
        if offset < 0 or length < 0:
            raise ValueError("offset and length must be >= 0")
        self.source: ByteSource = source if callable(source) else local_file(source)
        self.filename = filename
        self.offset = offset
        self.length = length
        self.sha256: str | None = None
        self.sent = 0
        self.cut_short = False  # the last send found the file shorter than the range

    def payload(self) -> aiohttp.payload.Payload:
        return _FileRangePayload(self)

    async def stream(self, write: Callable[[bytes], Awaitable[Any]]) -> None:
        """Read the range and hand each block to ``write``."""
        digest = hashlib.sha256()
        self.sha256, self.sent, self.cut_short = None, 0, False
        left = self.length
        blocks = self.source(self.offset)
        try:
            async for block in blocks:
                if left <= 0:
                    break
                piece = block[:left]
                digest.update(piece)
                await write(piece)
                self.sent += len(piece)
                left -= len(piece)
        finally:
            await _close(blocks)
        if left > 0:
            self.cut_short = True
            raise FileChanged(f"{self.filename}: the file ended {left} bytes early")
        self.sha256 = digest.hexdigest()


async def _close(blocks: AsyncIterator[bytes]) -> None:
    close = getattr(blocks, "aclose", None)
    if close is not None:
        await close()


class _FileRangePayload(aiohttp.payload.Payload):
    """aiohttp's view of a FilePart: a known size (so the request has a Content-Length)
    and a body streamed from disk."""

    def __init__(self, part: FilePart) -> None:
        super().__init__(part, content_type="application/octet-stream", filename=part.filename)
        self._size = part.length
        self._part = part

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a file part is bytes streamed from disk")

    async def write(self, writer: Any) -> None:
        await self._part.stream(writer.write)

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        await self.write(writer)


def flatten_params(params: Params, prefix: str = "") -> list[tuple[str, str]]:
    """Kaltura form encoding: nested keys joined with ``:``.

    bools -> "1"/"0"; None -> ``key__null=``; lists -> ``key:0:...`` (an empty list
    -> ``key:-=``); dicts recurse (an ``objectType`` key is just another key);
    enums -> their value.
    """
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"parameter names must be non-empty strings, got {key!r}")
        _flatten_value(f"{prefix}{key}", value, out)
    return out


def _flatten_value(key: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None:
        out.append((f"{key}__null", ""))
    elif isinstance(value, bool):  # before int: bool is an int
        out.append((key, "1" if value else "0"))
    elif isinstance(value, str):
        out.append((key, value))
    elif isinstance(value, int):
        out.append((key, str(value)))
    elif isinstance(value, float):
        out.append((key, str(int(value)) if value.is_integer() else repr(value)))
    elif isinstance(value, Mapping):
        out.extend(flatten_params(value, prefix=f"{key}:"))
    elif isinstance(value, list | tuple):
        if not value:
            out.append((f"{key}:-", ""))
        for index, item in enumerate(value):
            _flatten_value(f"{key}:{index}", item, out)
    else:
        raise TypeError(f"cannot send {type(value).__name__} as parameter {key!r}")


def multirequest_params(calls: Sequence[tuple[str, str, Params | None]]) -> list[tuple[str, str]]:
    """Sub-requests numbered from 1 (``1:service``, ``1:action``, ``1:<params>``)."""
    out: list[tuple[str, str]] = []
    for number, (service, action, params) in enumerate(calls, start=1):
        out.append((f"{number}:service", service))
        out.append((f"{number}:action", action))
        out.extend(flatten_params(params or {}, prefix=f"{number}:"))
    return out


def nest_pairs(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Form pairs (``1:filter:idIn``) as the nested object of a JSON body.

    The same encoding rules as the form (flatten_params) apply; only the framing
    differs. Kaltura parses JSON bodies with no cap on the number of fields, while a
    form body is cut at PHP's max_input_vars (1,000 by default), which silently drops
    the tail of a large multirequest.
    """
    tree: dict[str, Any] = {}
    for key, value in pairs:
        *parents, leaf = key.split(":")
        node = tree
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise TypeError(f"parameter {key!r} nests under a plain value")
            node = child
        node[leaf] = value
    return tree


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date; rare from Kaltura's edge, fall back to our own wait
    return seconds if seconds >= 0 else None


def decode_body(body: bytes, content_type: str = "") -> Any:
    """Parse a JSON body; HTML pages, XML, garbage and oversized bodies are InvalidResponse."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidResponse(f"response body of {len(body)} bytes is too large")
    head = body[:64].lstrip()
    if not head:
        raise InvalidResponse("empty response body")
    if head[:1] == b"<":
        kind = "HTML" if "html" in content_type.lower() or b"html" in head.lower() else "XML"
        raise InvalidResponse(f"{kind} response where JSON was expected (format=1 ignored?)")
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidResponse(f"response is not valid JSON: {type(exc).__name__}") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


class Transport:
    """Owns the aiohttp session; sends one api_v3 request per call, no retries."""

    def __init__(
        self,
        service_url: str,
        *,
        timeout: float | None = 120.0,
        connect_timeout: float | None = 15.0,
        read_timeout: float | None = 60.0,
        connector_limit: int = 100,
        verify_tls: bool = True,
        client_tag: str = CLIENT_TAG,
    ) -> None:
        self.service_url = service_url.rstrip("/")
        self.client_tag = client_tag
        # API calls get a total deadline; the session default (used by downloads through
        # ``http``) has none, only connect and between-bytes timeouts.
        self._api_timeout = aiohttp.ClientTimeout(
            total=timeout, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._session_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        # A chunk of a file takes as long as the link needs, and Kaltura may wait up to 45 s
        # for the chunks before a final one: no total deadline, a long wait for the answer.
        self._upload_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=max(read_timeout or 0, 180.0)
        )
        self._connector_limit = connector_limit
        self._verify_tls = verify_tls
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is None:
            # ssl=None keeps aiohttp's default verifying context; False disables checks.
            connector = aiohttp.TCPConnector(
                limit=self._connector_limit, ssl=None if self._verify_tls else False
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._session_timeout,
                headers={"Accept": "application/json"},
            )

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        """The shared aiohttp session (also for downloads: no total timeout by default)."""
        if self._session is None:
            raise RuntimeError("transport is not open; use the client as an async context manager")
        return self._session

    async def request(
        self, service: str, action: str, params: Params | None = None, *, ks: str | None = None
    ) -> Any:
        """One api_v3 call; returns decoded JSON or raises a mapped error."""
        form = self._common(ks) + flatten_params(params or {})
        url = f"{self.service_url}/api_v3/service/{service}/action/{action}"
        result = await self._post(url, form)
        if is_api_exception(result):
            raise api_error_from_wire(result)
        return result

    async def multirequest(
        self, calls: Sequence[tuple[str, str, Params | None]], *, ks: str | None = None
    ) -> list[Any]:
        """One multirequest; returns the raw per-item list (errors not yet mapped)."""
        body = nest_pairs(self._common(ks) + multirequest_params(calls))
        result = await self._post(f"{self.service_url}/api_v3/service/multirequest", json=body)
        if is_api_exception(result):
            raise api_error_from_wire(result)
        if not isinstance(result, list):
            raise InvalidResponse(f"multirequest answered a {type(result).__name__}, not a list")
        return result

    async def upload(
        self,
        service: str,
        action: str,
        params: Params | None,
        file: FilePart,
        *,
        ks: str | None = None,
        field: str = "fileData",
    ) -> Any:
        """One api_v3 call carrying a file (see the module docstring)."""
        body = nest_pairs(self._common(ks) + flatten_params(params or {}))
        writer = aiohttp.MultipartWriter("form-data")
        part = writer.append(json.dumps(body))
        part.set_content_disposition("form-data", name="json")
        file_payload = writer.append_payload(file.payload())
        file_payload.set_content_disposition("form-data", name=field, filename=file.filename)
        url = f"{self.service_url}/api_v3/service/{service}/action/{action}"
        result = await self._post(url, multipart=writer, timeout=self._upload_timeout)
        if is_api_exception(result):
            raise api_error_from_wire(result)
        return result

    def _common(self, ks: str | None) -> list[tuple[str, str]]:
        form = [("format", "1"), ("clientTag", self.client_tag)]
        if ks:
            form.append(("ks", ks))
        return form

    async def _post(
        self,
        url: str,
        form: list[tuple[str, str]] | None = None,
        *,
        json: dict[str, Any] | None = None,
        multipart: aiohttp.MultipartWriter | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> Any:
        # json= makes aiohttp send exactly "Content-Type: application/json", the only
        # value Kaltura treats as a JSON body.
        data: Any = multipart if multipart is not None else form
        try:
            async with self.http.post(
                url, data=data, json=json, timeout=timeout or self._api_timeout
            ) as response:
                body = await response.read()
                if response.status != 200:
                    raise HTTPStatusError(
                        response.status,
                        f"HTTP {response.status} {response.reason or ''}".strip(),
                        retry_after=_retry_after(response.headers.get("Retry-After")),
                    )
                content_type = response.headers.get("Content-Type", "")
        except (HTTPStatusError, InvalidResponse):
            raise
        except TimeoutError as exc:  # aiohttp's timeouts subclass it too
            raise RequestTimeout(f"no answer in time from {_where(url)}") from exc
        except aiohttp.ClientPayloadError as exc:
            raise InvalidResponse(f"response body cut short from {_where(url)}") from exc
        except (aiohttp.ClientSSLError, ssl.SSLError) as exc:
            raise ConnectionFailed(f"TLS failure talking to {_where(url)}: {exc}") from exc
        except aiohttp.ClientConnectorError as exc:
            host, call = _host_port(url), _call(url)
            raise ConnectionFailed(f"cannot connect to {host} ({_cause(exc)}) for {call}") from exc
        except aiohttp.ClientResponseError as exc:
            raise InvalidResponse(f"malformed HTTP response from {_where(url)}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectionFailed(f"{type(exc).__name__} talking to {_where(url)}") from exc
        except asyncio.CancelledError:
            raise
        return decode_body(body, content_type)


def _host_port(url: str) -> str:
    """``host:port`` of ``url``; never its user info, path or query (no credential can leak)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return f"{host}:{port}"


def _call(url: str) -> str:
    """``service.action`` (or ``multirequest``) from an api_v3 URL."""
    marker = "/api_v3/service/"
    index = url.find(marker)
    if index < 0:
        return "request"
    words = url[index + len(marker) :].split("/")
    if len(words) >= 3 and words[1] == "action":
        return f"{words[0]}.{words[2]}"
    return words[0]


def _where(url: str) -> str:
    """Where a request went, for messages: ``host:port for service.action``."""
    return f"{_host_port(url)} for {_call(url)}"


def _cause(exc: aiohttp.ClientConnectorError) -> str:
    os_error = exc.os_error
    if isinstance(os_error, socket.gaierror):
        return f"DNS lookup failed: {os_error.strerror or os_error}"
    return type(os_error).__name__

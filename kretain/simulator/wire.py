"""api_v3 wire format: request parameters in, JSON or XML out.

Parameters come from three places, path ``/key/value`` pairs over the query
string over the body (kaltura-api.md 1.1). Flat keys nest on ``:``
(``filter:objectType``, ``1:service``, ``x:items:0:prop``); ``key__null``
nulls a property (we drop it: null == unset for every filter we serve); a
``-`` key marks an empty array. Every scalar is kept as a string, as PHP sees it.

The body, as infraRequestUtils::getRequestParams reads it: ``application/json``
(exactly) -> the JSON object; multipart with a ``json`` field that decodes to a
non-empty object -> that object alone (the other plain fields are ignored); else
the form fields. File parts (parts with a file name) are then merged in under
their field names (``fileData``, or ``"{i}:fileData"`` inside a multirequest) as
:class:`~kretain.simulator.uploads.UploadedFile` values. File parts are streamed to
disk with constant memory and no size cap.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

from aiohttp import BodyPartReader, web

from kretain.simulator.apierrors import SimApiError
from kretain.simulator.uploads import UploadedFile

Params = dict[str, Any]

JSON_FORMAT = "1"
PART_CHUNK = 1 << 20  # bytes read from a file part at a time
MAX_FIELD = 64 * 1024 * 1024  # a plain (non-file) multipart field, as client_max_size


def _scalar(value: Any) -> Any:
    """JSON body values as PHP would see them once cast to string."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return {str(i): _scalar(v) for i, v in enumerate(value)}
    if isinstance(value, dict):
        return normalise_tree(value)
    return str(value)


def normalise_tree(tree: Mapping[str, Any]) -> Params:
    """A JSON object body -> the same nested-string shape as form parameters."""
    out: Params = {}
    for key, value in tree.items():
        key = str(key)
        if key.endswith("__null") or key == "-":
            continue
        converted = _scalar(value)
        if converted is None:
            continue
        if ":" in key:  # the JSON form may still carry flat keys
            set_path(out, key.split(":"), converted)
        else:
            out[key] = converted
    return out


def set_path(tree: Params, parts: list[str], value: Any) -> None:
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    last = parts[-1]
    if isinstance(value, dict) and isinstance(node.get(last), dict):
        merge_into(node[last], value)
    else:
        node[last] = value


def nest_flat(pairs: Iterable[tuple[str, Any]]) -> Params:
    """Flat ``a:b:c=v`` pairs -> nested dicts. Later pairs win."""
    out: Params = {}
    for key, value in pairs:
        if key.endswith("__null"):
            continue
        parts = key.split(":")
        if parts[-1] == "-":  # empty array marker: the array exists and is empty
            set_path(out, parts[:-1], {}) if len(parts) > 1 else None
            continue
        set_path(out, parts, value)
    return out


def merge_into(base: Params, higher: Mapping[str, Any]) -> Params:
    """Deep-merge ``higher`` over ``base`` (higher precedence wins)."""
    for key, value in higher.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_into(base[key], value)
        else:
            base[key] = value
    return base


def path_pairs(raw_path: str) -> list[tuple[str, str]]:
    """``/api_v3[/index.php]/service/x/action/y/k/v`` -> [(service,x),(action,y),(k,v)]."""
    path = raw_path.split("?", 1)[0]
    segments = [unquote(s) for s in path.split("/") if s]
    if segments and segments[0].lower() == "api_v3":
        segments = segments[1:]
    if segments and segments[0].lower() == "index.php":
        segments = segments[1:]
    return [(segments[i], segments[i + 1]) for i in range(0, len(segments) - 1, 2)]


def is_exact_json(content_type: str | None) -> bool:
    # The server compares the whole header value; "; charset=utf-8" is not JSON.
    return (content_type or "").strip().lower() == "application/json"


async def read_params(request: web.Request) -> Params:
    """All parameters of an api_v3 request, nested, path > query > body (file parts
    are read and dropped; the server uses :func:`read_request`)."""
    params, files = await read_request(request, None)
    for f in files:
        f.discard()
    return params


async def read_request(
    request: web.Request, upload_dir: str | None
) -> tuple[Params, list[UploadedFile]]:
    """(parameters, file parts) of an api_v3 request; file parts are temp files in
    ``upload_dir`` (the system's temp dir when None) that the caller removes."""
    body: Params = {}
    files: list[UploadedFile] = []
    file_params: list[tuple[str, UploadedFile]] = []
    ctype = request.headers.get("Content-Type", "")
    if request.method in ("POST", "PUT") and request.can_read_body:
        mime = ctype.split(";", 1)[0].strip().lower()
        if is_exact_json(ctype):
            raw = await request.read()
            decoded = _json_object(raw)
            if decoded:
                body = normalise_tree(decoded)
        elif mime == "multipart/form-data":
            try:
                fields = await _read_multipart(request, upload_dir, file_params)
            except BaseException:
                for _, f in file_params:
                    f.discard()
                raise
            files.extend(f for _, f in file_params)
            body = _form_body(fields, multipart=True)
        elif mime == "application/x-www-form-urlencoded":
            form = await request.post()
            body = _form_body([(k, v) for k, v in form.items() if isinstance(v, str)])
    merge_into(body, nest_flat(file_params))
    query = nest_flat(request.query.items())
    path = nest_flat(path_pairs(request.raw_path))
    return merge_into(merge_into(body, query), path), files


def _json_object(raw: str | bytes) -> dict[str, Any] | None:
    try:
        decoded = json.loads(raw) if raw.strip() else None
    except ValueError:
        decoded = None  # PHP's json_decode gives null: no body params
    return decoded if isinstance(decoded, dict) else None


def _form_body(fields: list[tuple[str, str]], *, multipart: bool = False) -> Params:
    """A multipart ``json`` field that decodes to a non-empty object is the whole body
    (other plain fields ignored); otherwise the fields themselves (``$_POST``)."""
    if multipart:
        for key, value in fields:
            if key == "json":
                decoded = _json_object(value)
                if decoded:
                    return normalise_tree(decoded)
    return nest_flat(fields)


async def _read_multipart(
    request: web.Request, upload_dir: str | None, file_params: list[tuple[str, UploadedFile]]
) -> list[tuple[str, str]]:
    """Plain fields as (name, text); file parts streamed to temp files (appended to
    ``file_params`` as they start, so the caller can remove them whatever happens)."""
    reader = await request.multipart()
    fields: list[tuple[str, str]] = []
    loop = asyncio.get_running_loop()
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader) or part.name is None:
            await part.release()
            continue
        if part.filename is None:
            data = await _read_field(part)
            fields.append((part.name, data.decode(part.get_charset("utf-8"), "replace")))
            continue
        fd, path = tempfile.mkstemp(prefix="part-", dir=upload_dir)
        upload = UploadedFile(path, part.filename, 0, part.headers.get("Content-Type"))
        file_params.append((part.name, upload))
        with os.fdopen(fd, "wb") as out:
            while chunk := await part.read_chunk(PART_CHUNK):
                await loop.run_in_executor(None, out.write, chunk)
                upload.size += len(chunk)
    return fields


async def _read_field(part: BodyPartReader) -> bytes:
    pieces: list[bytes] = []
    total = 0
    while chunk := await part.read_chunk(PART_CHUNK):
        total += len(chunk)
        if total > MAX_FIELD:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_FIELD, actual_size=total)
        pieces.append(chunk)
    return part.decode(b"".join(pieces))


# ---- output -----------------------------------------------------------------


def to_json(result: Any) -> bytes:
    return json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# XML 1.0 cannot carry most control characters; PHP's serializer would emit
# an unparseable document, we drop them so the official client can read it.
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return escape(_XML_BAD.sub("", str(value)))


def _xml_value(value: Any, out: list[str]) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        if value.get("objectType") == "KalturaAPIException":
            _xml_error(value, out)
            return
        for key, item in value.items():
            if item is None:
                continue
            out.append(f"<{key}>")
            _xml_value(item, out)
            out.append(f"</{key}>")
        return
    if isinstance(value, list):
        for item in value:
            out.append("<item>")
            _xml_value(item, out)
            out.append("</item>")
        return
    out.append(_text(value))


def _xml_error(err: Mapping[str, Any], out: list[str]) -> None:
    out.append("<error>")
    out.append(f"<objectType>{_text(err.get('objectType', 'KalturaAPIException'))}</objectType>")
    out.append(f"<code>{_text(err.get('code', ''))}</code>")
    out.append(f"<message>{_text(err.get('message', ''))}</message>")
    out.append("<args>")
    args = err.get("args") or {}
    for name, value in args.items() if isinstance(args, dict) else ():
        out.append(
            "<item><objectType>KalturaApiExceptionArg</objectType>"
            f"<name>{_text(name)}</name><value>{_text(value)}</value></item>"
        )
    out.append("</args></error>")


def to_xml(result: Any, execution_time: float) -> bytes:
    """The XML envelope the official client parses (format=2, the default)."""
    out = ['<?xml version="1.0" encoding="utf-8"?><xml><result>']
    _xml_value(result, out)
    out.append(f"</result><executionTime>{execution_time:.6f}</executionTime></xml>")
    return "".join(out).encode("utf-8")


def render(result: Any, fmt: str | None, execution_time: float) -> tuple[bytes, str]:
    """(body, content type) for ``result`` (an error is ``SimApiError.to_wire()``)."""
    if fmt == JSON_FORMAT:
        return to_json(result), "application/json"
    return to_xml(result, execution_time), "text/xml"


def error_wire(err: SimApiError) -> dict[str, Any]:
    return err.to_wire()


# ---- multirequest references ------------------------------------------------

_REF = re.compile(r"\{(\d+):result((?::[^{}:]+)*)\}")


def _value_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else ""
    if isinstance(value, (dict, list)):
        return ""
    return str(value)


def _walk(value: Any, path: list[str]) -> str:
    for i, step in enumerate(path):
        if step == "_all":
            items = value if isinstance(value, list) else []
            rest = path[i + 1 :]
            return "".join(_walk(item, rest) + "," for item in items)
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return ""
    return _value_text(value)


def resolve_references(params: Any, results: list[Any]) -> Any:
    """Replace ``{N:result[:path]}`` (N 1-based) inside every string value."""
    if isinstance(params, dict):
        return {k: resolve_references(v, results) for k, v in params.items()}
    if not isinstance(params, str) or "{" not in params:
        return params

    def substitute(match: re.Match[str]) -> str:
        index = int(match.group(1)) - 1
        if index < 0 or index >= len(results):
            return match.group(0)  # not an earlier result: left as sent
        result = results[index]
        if isinstance(result, dict) and result.get("objectType") == "KalturaAPIException":
            return ""
        path = [p for p in match.group(2).split(":") if p]
        return _walk(result, path)

    return _REF.sub(substitute, params)

"""Shape checks of API answers: list pages and objects.

Kaltura serializes core enums as numbers, plugin enums as strings, and leaves null
properties out; a proxy or a bug can hand back anything. Every reader here either
returns a well-typed value or raises InvalidResponse naming the field. The value rules
themselves (what an integer, an id, an asset's size or the source flavor is) live in
kretain.rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kretain.kaltura.errors import InvalidResponse
from kretain.rules import WireValueError, wire_int


@dataclass(frozen=True)
class ListPage:
    """One page of a ``*.list`` answer."""

    objects: list[dict[str, Any]]
    total_count: int


def as_int(value: Any, field: str = "value") -> int:
    """An int from 12, "12", " 12 " or 12.0 (kretain.rules.wire_int); anything else,
    None included, is InvalidResponse."""
    try:
        out = wire_int(value, field)
    except WireValueError as exc:
        raise InvalidResponse(str(exc)) from None
    if out is None:
        raise InvalidResponse(f"field {field!r} must be an integer, got None")
    return out


def require_object(value: Any, what: str) -> dict[str, Any]:
    """``value`` must be a JSON object with a string ``id``."""
    if not isinstance(value, dict):
        raise InvalidResponse(f"{what}: expected an object, got {type(value).__name__}")
    ident = value.get("id")
    if not isinstance(ident, str) or not ident:
        raise InvalidResponse(f"{what}: object without a string 'id'")
    return value


def parse_list_response(value: Any, what: str = "list") -> ListPage:
    """Check a ``{"objects": [...], "totalCount": N}`` answer."""
    if not isinstance(value, dict):
        raise InvalidResponse(f"{what}: expected a list response object")
    objects = value.get("objects", [])  # defensive: treat a left-out array as empty
    if objects is None:
        objects = []
    if not isinstance(objects, list):
        raise InvalidResponse(f"{what}: 'objects' is a {type(objects).__name__}")
    total = as_int(value.get("totalCount", len(objects)), f"{what}.totalCount")
    if total < 0:
        raise InvalidResponse(f"{what}: negative totalCount")
    return ListPage([require_object(o, f"{what} item") for o in objects], total)

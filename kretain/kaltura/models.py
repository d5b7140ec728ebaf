"""Defensive readers for wire values: coercion and shape checks.

Kaltura serializes core enums as numbers, plugin enums as strings, and leaves null
properties out; a proxy or a bug can hand back anything. Every reader here either
returns a well-typed value or raises InvalidResponse naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kretain.kaltura.errors import InvalidResponse

_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no", ""}


@dataclass(frozen=True)
class ListPage:
    """One page of a ``*.list`` answer."""

    objects: list[dict[str, Any]]
    total_count: int


def as_int(value: Any, field: str = "value") -> int:
    """An int from 12, "12", " 12 " or 12.0; anything else is InvalidResponse."""
    if isinstance(value, bool):
        raise InvalidResponse(f"{field}: expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit() and len(text) <= 20:
            return int(text)
    raise InvalidResponse(f"{field}: expected an integer, got {type(value).__name__}")


def as_opt_int(value: Any, field: str = "value") -> int | None:
    """Like :func:`as_int` but None (a property left out) stays None."""
    return None if value is None else as_int(value, field)


def as_bool(value: Any, field: str = "value") -> bool:
    """A bool from true/false, 1/0, "1"/"0", "true"/"false"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise InvalidResponse(f"{field}: expected a boolean, got {value!r:.40}")


def as_str(value: Any, field: str = "value") -> str:
    """A string; numbers are accepted (plugin vs core enums), other types are not."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise InvalidResponse(f"{field}: expected a string, got {type(value).__name__}")


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


def asset_bytes(asset: dict[str, Any]) -> int:
    """Asset size in bytes: ``sizeInBytes`` when > 0 (0 means unknown), else ``size`` KB."""
    exact = as_opt_int(asset.get("sizeInBytes"), "sizeInBytes")
    if exact is not None and exact > 0:
        return exact
    kb = as_opt_int(asset.get("size"), "size")
    if kb is None or kb <= 0:
        return 0
    return kb * 1024


def is_source_flavor(asset: dict[str, Any]) -> bool:
    """The source (original) flavor: ``isOriginal`` true, or ``flavorParamsId`` 0.

    Either signal is enough: flavorAsset.delete does not protect the source, so when
    in doubt we call it the source and it is never deleted.
    """
    original = asset.get("isOriginal")
    if original is not None and as_bool(original, "isOriginal"):
        return True
    params_id = asset.get("flavorParamsId")
    return params_id is not None and as_int(params_id, "flavorParamsId") == 0

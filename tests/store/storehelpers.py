"""Builders shared by the store tests (imported by name; tests/store is on sys.path)."""

from __future__ import annotations

from typing import Any

from kretain.store.models import entry_fields_from_wire

T0 = 1_700_000_000  # a fixed "now" for deterministic timestamps


def wire_entry(entry_id: str = "0_aaaa0001", **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "objectType": "KalturaMediaEntry",
        "id": entry_id,
        "partnerId": 1234567,
        "name": f"Lecture {entry_id}",
        "userId": "alice",
        "creatorId": "alice",
        "type": 1,
        "mediaType": 1,
        "status": 2,
        "createdAt": 1_500_000_000,
        "updatedAt": 1_500_000_100,
        "plays": 0,
        "duration": 60,
    }
    obj.update(extra)
    return obj


def fields(entry_id: str = "0_aaaa0001", **extra: Any) -> dict[str, Any]:
    return entry_fields_from_wire(wire_entry(entry_id, **extra))

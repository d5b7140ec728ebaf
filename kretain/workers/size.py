"""Sizing: which flavor is the source, what an action frees, and the sizing worker.

Functions:
- :func:`choose_source` — index of an entry's source flavor among its flavors.
- :func:`size_entry` — checked asset columns plus bytes_total / bytes_saved of one
  entry and its multi-stream children.

Rules (issue 3 §5): bytes = ``sizeInBytes``, or ``size`` x 1024 when that is 0.
The source flavor is the one with ``isOriginal``, else ``flavorParamsId`` 0, else
the ``source`` tag, else the largest: exactly one per entry (and one per child).
``delete_entry`` frees every asset of the entry and of its children;
``delete_flavors`` frees every flavor except each entry's source.
Malformed assets raise :class:`kretain.errors.InvalidEntryData`: the caller fails
the entry closed instead of sizing it with partial data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kretain.errors import InvalidEntryData
from kretain.store.models import asset_fields_from_wire

ASSET_KINDS = ("flavor", "caption", "attachment", "thumb")


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    return isinstance(value, str) and value.strip().lower() in ("1", "true")


def _tags(value: Any) -> set[str]:
    if not isinstance(value, str):
        return set()
    return {t.strip().lower() for t in value.split(",") if t.strip()}


def choose_source(flavors: Sequence[Mapping[str, Any]], sizes: Sequence[int]) -> int | None:
    """Index of the source flavor: isOriginal, then flavorParamsId 0, then the
    ``source`` tag, then the largest. None when there are no flavors."""
    if not flavors:
        return None
    tests = (
        lambda f: _truthy(f.get("isOriginal")),
        lambda f: str(f.get("flavorParamsId")).strip() == "0",
        lambda f: "source" in _tags(f.get("tags")),
    )
    for test in tests:
        hits = [i for i, f in enumerate(flavors) if test(f)]
        if hits:
            return max(hits, key=lambda i: sizes[i])
    return max(range(len(flavors)), key=lambda i: sizes[i])


@dataclass(frozen=True)
class SizedEntry:
    """Asset columns (``assets`` table, minus entry_id) and the entry's totals."""

    entry_id: str
    assets: list[dict[str, Any]]
    bytes_total: int
    bytes_saved: int
    children: tuple[str, ...]

    @property
    def asset_count(self) -> int:
        return len(self.assets)


def size_entry(
    entry_id: str,
    action: str,
    assets_by_owner: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]],
    children: Sequence[str] = (),
) -> SizedEntry:
    """Size one entry from its wire assets and its children's.

    ``assets_by_owner`` maps the entry id and each child id to ``(kind, wire asset)``
    pairs. Raises InvalidEntryData for a malformed asset or an asset that names
    another entry.
    """
    if action not in ("delete_entry", "delete_flavors"):
        raise InvalidEntryData(f"entry {entry_id}: nothing to size for action {action!r}")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    total = saved = 0
    for owner in (entry_id, *children):
        pairs = assets_by_owner.get(owner, ())
        cols: list[dict[str, Any]] = []
        for kind, wire in pairs:
            col = asset_fields_from_wire(
                kind, wire, owner_entry_id=None if owner == entry_id else owner
            )
            if str(wire.get("entryId")) != owner:
                raise InvalidEntryData(
                    f"entry {entry_id}: asset {col['id']} belongs to {wire.get('entryId')!r}"
                )
            if col["id"] in seen:
                continue  # the same asset twice (overlapping pages): count it once
            seen.add(col["id"])
            cols.append({**col, "_wire": wire})
        flavors = [c for c in cols if c["kind"] == "flavor"]
        src = choose_source([c["_wire"] for c in flavors], [c["size_bytes"] for c in flavors])
        for i, c in enumerate(flavors):
            c["is_source"] = int(i == src)
        for c in cols:
            del c["_wire"]
            total += c["size_bytes"]
            if action == "delete_entry" or (c["kind"] == "flavor" and not c["is_source"]):
                saved += c["size_bytes"]
            rows.append(c)
    return SizedEntry(entry_id, rows, total, saved, tuple(children))

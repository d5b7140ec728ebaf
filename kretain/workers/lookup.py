"""Batched lookups of entries and their assets, with failures isolated to their entries.

    data = await fetch_batch(client, entry_ids)      # <= 150 ids: one multirequest, mostly

One multirequest asks for a fresh ``baseEntry.list idIn`` of the batch, its flavor, caption,
attachment and thumbnail lists by ``entryIdIn``, and ``parentEntryIdEqual`` per entry (there
is no parentEntryIdIn); follow-up rounds fetch further pages and the children's assets.
Sizing, the backup's re-check and the delete stage's re-check all use it.

One broken entry must not hide its batch: Kaltura answers INTERNAL_SERVERL_ERROR, every
time, for any asset list that names an entry whose data is broken. So a sub-request that
fails is first retried (bounded, with backoff); one that keeps failing is split in two (the
id list is bisected) and each half asked again, until the failing ids stand alone: only
they are reported in ``BatchData.failed``, each with its own reason (a child's failure is
its parent's). A whole multirequest that cannot be sent (Kaltura unreachable after the
client's retries) is nobody's fault: KalturaUnreachable, so callers stop instead of
blaming entries.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from kretain import rules
from kretain.kaltura.client import ASSET_SERVICES, Call, KalturaClient
from kretain.kaltura.errors import ApiError, InvalidResponse, KalturaError
from kretain.kaltura.models import parse_list_response
from kretain.kaltura.retry import decide
from kretain.store.models import AssetRow

__all__ = [
    "MAX_BATCH_SIZE",
    "BatchData",
    "BatchLists",
    "KalturaUnreachable",
    "LookupStats",
    "fetch_batch",
    "multi",
    "recycled_ids",
]

log = structlog.get_logger("kretain.lookup")

PAGE_SIZE = 500
MAX_BATCH_SIZE = 150  # Sphinx keeps the first 150 values of an IN list
# A failing list is retried with the client's full budget when it is first asked and when
# it names a single entry; the halves in between get this many tries, so isolating one
# broken entry among 150 costs a few seconds, not minutes.
SPLIT_ATTEMPTS = 2


@dataclass
class LookupStats:
    calls: int = 0  # API calls sent inside multirequests
    splits: int = 0  # failing lists split in two to isolate broken entries


@dataclass
class _List:
    """One list call, paged to completion, over the entry ids it names."""

    group: Hashable  # lists of one group are merged ("entries", ("flavor", "parents") ...)
    name: str  # "flavorasset.list", for reasons
    ids: tuple[str, ...]
    build: Callable[[tuple[str, ...], int], Call]
    first: bool = True  # not a half of a failed list
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    total: int | None = None
    asked: int = 0
    error: str | None = None
    settled: bool = False

    @property
    def attempts(self) -> int | None:
        """Tries per call: the client's budget, except for the halves in between."""
        return None if self.first or len(self.ids) == 1 else SPLIT_ATTEMPTS

    def next_pages(self) -> list[int]:
        if self.error or self.settled:
            return []
        if self.asked == 0:
            return [1]
        assert self.total is not None
        pages = -(-self.total // PAGE_SIZE)
        if len(self.objects) < self.total and self.asked < pages:
            return list(range(self.asked + 1, pages + 1))
        return []

    def feed(self, item: Any) -> None:
        if self.error:
            return
        if isinstance(item, ApiError):
            self.error = f"{self.name} failed: {item.code} {item.message}".strip()
            return
        try:
            page = parse_list_response(item, self.name)
        except InvalidResponse as exc:
            self.error = f"{self.name}: malformed answer: {exc}"
            return
        self.total = max(self.total or 0, page.total_count)
        for obj in page.objects:
            self.objects[obj["id"]] = obj

    @property
    def complete(self) -> bool:
        return (
            not self.error
            and self.asked > 0
            and not self.next_pages()
            and len(self.objects) == (self.total or 0)
        )


class BatchLists:
    """Every list of one batch; failing lists are split until the failing ids stand alone."""

    def __init__(self) -> None:
        self.lists: list[_List] = []
        self.failed: dict[str, str] = {}  # entry id (as the list named it) -> why
        self.splits = 0

    def add(self, group: Hashable, name: str, ids: Sequence[str], build: Any) -> None:
        self.lists.append(_List(group, name, tuple(ids), build))

    def calls(self) -> list[tuple[_List, Call, int | None]]:
        out = []
        for lst in self.lists:
            pages = lst.next_pages()
            if pages:
                out += [(lst, lst.build(lst.ids, p), lst.attempts) for p in pages]
                lst.asked = pages[-1]
        return out

    def settle(self) -> None:
        """Lists that failed (or whose pages do not add up): split, or blame their one id."""
        for lst in list(self.lists):
            if lst.settled or lst.next_pages():
                continue
            if not lst.error and lst.asked and len(lst.objects) != (lst.total or 0):
                lst.error = f"{lst.name} returned {len(lst.objects)} of {lst.total} objects"
            if not lst.error:
                continue
            lst.settled = True
            if len(lst.ids) == 1:
                self.failed.setdefault(lst.ids[0], lst.error)
                continue
            self.splits += 1
            half = len(lst.ids) // 2
            for part in (lst.ids[:half], lst.ids[half:]):
                self.lists.append(_List(lst.group, lst.name, part, lst.build, first=False))

    def pending(self, group_test: Callable[[Hashable], bool]) -> bool:
        return any(group_test(lst.group) and (lst.next_pages() or lst.asked == 0)
                   for lst in self.lists if not lst.error)  # fmt: skip

    def objects(self, group: Hashable) -> dict[str, dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        for lst in self.lists:
            if lst.group == group and lst.complete:
                merged.update(lst.objects)
        return merged


@dataclass
class BatchData:
    """What Kaltura said about one batch: fresh entries, assets by owner, children, and the
    entries whose data could not be fetched (with why)."""

    entries: dict[str, dict[str, Any]]
    by_owner: dict[str, list[tuple[str, dict[str, Any]]]]
    children: dict[str, list[str]]
    failed: dict[str, str]
    child_entries: dict[str, dict[str, Any]] = field(default_factory=dict)  # wire, by child id

    def wire_assets(self, entry_id: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """``(owner, kind, wire asset)`` for the entry's assets, then each child's."""
        for owner in (entry_id, *self.children.get(entry_id, [])):
            for kind, wire in self.by_owner.get(owner, ()):
                yield owner, kind, wire

    def assets_changed(self, entry_id: str, stored: Iterable[AssetRow]) -> bool:
        """The entry's (and its children's) assets now differ from ``stored`` (the sized
        ones) in ids or sizes; an asset that cannot be read counts as a change."""
        fresh: set[tuple[str, int]] = set()
        for owner, kind, wire in self.wire_assets(entry_id):
            try:
                asset = rules.parse_asset(kind, wire, owner=owner)
            except rules.WireValueError:
                return True
            fresh.add((asset.id, asset.size_bytes))
        return fresh != {(a.id, a.size_bytes) for a in stored}


class KalturaUnreachable(Exception):
    """A whole multirequest failed after the client's retries: not any entry's fault."""


def _pager(page: int) -> dict[str, Any]:
    return {"objectType": "KalturaFilterPager", "pageSize": PAGE_SIZE, "pageIndex": page}


def _entry_filter(**extra: str) -> dict[str, Any]:
    return {
        "objectType": "KalturaBaseEntryFilter",
        "statusIn": rules.LIVE_STATUSES_WIRE,
        "moderationStatusIn": rules.MODERATION_STATUSES_WIRE,
        **extra,
    }


def _entries_call(ids: tuple[str, ...], page: int) -> Call:
    return (
        "baseentry",
        "list",
        {"filter": _entry_filter(idIn=",".join(ids)), "pager": _pager(page)},
    )


def _children_call(ids: tuple[str, ...], page: int) -> Call:
    flt = _entry_filter(parentEntryIdEqual=ids[0])
    return ("baseentry", "list", {"filter": flt, "pager": _pager(page)})


def _assets_call(kind: str) -> Callable[[tuple[str, ...], int], Call]:
    service, filter_type = ASSET_SERVICES[kind]

    def build(ids: tuple[str, ...], page: int) -> Call:
        flt = {"objectType": filter_type, "entryIdIn": ",".join(ids)}
        return (service, "list", {"filter": flt, "pager": _pager(page)})

    return build


async def fetch_batch(
    client: KalturaClient, ids: Sequence[str], stats: LookupStats | None = None
) -> BatchData:
    """Ask Kaltura everything about ``ids`` in as few multirequests as it takes."""
    lists = BatchLists()
    lists.add("entries", "baseentry.list", ids, _entries_call)
    for kind in rules.ASSET_KINDS:
        lists.add((kind, "parents"), f"{ASSET_SERVICES[kind][0]}.list", ids, _assets_call(kind))
    for entry_id in ids:
        # No parentEntryIdIn exists (the server would ignore it): one call per entry.
        lists.add(("children", entry_id), "baseentry.list (children)", [entry_id], _children_call)
    children: dict[str, list[str]] = {}
    child_entries: dict[str, dict[str, Any]] = {}
    parent_of: dict[str, str] = {}
    children_asked = False

    def ask_for_children_assets() -> None:
        """Once every children list is settled, list the children's assets too."""
        nonlocal children_asked
        if children_asked or lists.pending(lambda g: isinstance(g, tuple) and g[0] == "children"):
            return
        children_asked = True
        for entry_id in ids:
            if entry_id in lists.failed:
                continue
            kids = lists.objects(("children", entry_id))
            found = [k for k in kids if kids[k].get("parentEntryId") == entry_id]
            if len(found) != len(kids):
                lists.failed[entry_id] = "children list returned entries of another parent"
            children[entry_id] = [c for c in found if rules.is_valid_id(c)]
            child_entries.update((c, kids[c]) for c in children[entry_id])
            parent_of.update((c, entry_id) for c in children[entry_id])
        if parent_of:
            for kind in rules.ASSET_KINDS:
                name = f"{ASSET_SERVICES[kind][0]}.list"
                lists.add((kind, "children"), name, list(parent_of), _assets_call(kind))

    while True:
        calls = lists.calls()
        if not calls:
            lists.settle()
            ask_for_children_assets()
            calls = lists.calls()
            if not calls:
                break
        items = await multi(client, [(c, n) for _, c, n in calls], stats)
        for (lst, _, _), item in zip(calls, items, strict=True):
            lst.feed(item)
        lists.settle()
        ask_for_children_assets()
    if stats is not None:
        stats.splits += lists.splits

    failed: dict[str, str] = {}
    for failing_id, why in lists.failed.items():
        parent = parent_of.get(failing_id)
        if parent is not None and failing_id not in ids:
            failed.setdefault(parent, f"child {failing_id}: {why}")
        else:
            failed.setdefault(failing_id, why)
    wanted = set(ids)
    entries = {k: v for k, v in lists.objects("entries").items() if k in wanted}
    by_owner: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for kind in rules.ASSET_KINDS:
        for side in ("parents", "children"):
            for obj in lists.objects((kind, side)).values():
                by_owner.setdefault(str(obj.get("entryId")), []).append((kind, obj))
    return BatchData(entries, by_owner, children, failed, child_entries)


async def multi(
    client: KalturaClient,
    calls: Sequence[tuple[Call, int | None]],
    stats: LookupStats | None = None,
) -> list[Any]:
    """One multirequest; items failing with a retryable error are re-sent, each within its
    own budget (None: the client's). Raises KalturaUnreachable when the request itself fails."""
    policy = client.config.retry_policy()
    out: list[Any] = [None] * len(calls)
    todo = list(range(len(calls)))
    attempt = 0
    while todo:
        try:
            items = await client.multirequest([calls[i][0] for i in todo])
        except KalturaError as exc:
            raise KalturaUnreachable(f"{type(exc).__name__}: {exc}") from exc
        if stats is not None:
            stats.calls += len(todo)
        attempt += 1
        retry: list[int] = []
        delay = 0.0
        for i, item in zip(todo, items, strict=True):
            out[i] = item
            if not isinstance(item, ApiError):
                continue
            budget = calls[i][1]
            limited = policy if budget is None else dataclasses.replace(policy, max_attempts=budget)
            decision = decide(item, attempt, limited)
            if decision.retry and not decision.renew_session:
                retry.append(i)
                delay = max(delay, decision.delay)
        if retry:
            log.debug("lookup: retrying failed sub-requests", count=len(retry), delay=delay)
            await asyncio.sleep(delay)
        todo = retry
    return out


async def recycled_ids(client: KalturaClient, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` sit in Kaltura's recycle bin (lists hide them by default)."""
    found: set[str] = set()
    for start in range(0, len(ids), MAX_BATCH_SIZE):
        chunk = list(ids[start : start + MAX_BATCH_SIZE])
        flt = {
            "idIn": ",".join(chunk),
            "displayInSearchEqual": "-2",
            "statusIn": rules.LIVE_STATUSES_WIRE,
            "moderationStatusIn": rules.MODERATION_STATUSES_WIRE,
        }
        page = await client.list_entries(flt, 1, PAGE_SIZE, service="baseentry")
        found.update(e["id"] for e in page.objects if e["id"] in chunk)
    return found

"""The backup worker: copy every entry that will be deleted into the archive, verified.

    await backup(store, client, archive_root=Path, run_id=run, concurrency=2,
                 bandwidth=None, max_attempts=5, progress=fn) -> BackupResult

Which rows: ``action = delete_entry`` rows in ``sized`` (and ``failed`` rows with fewer than
``max_attempts`` attempts). ``delete_flavors`` rows keep their source, need no backup and stay
``sized``. Rows move ``sized/failed -> downloading`` (claimed with a lease that a heartbeat
renews while files stream) and end ``archived`` only when every file is verified and
``entry.json`` is written; otherwise ``failed`` (attempts + 1, last_error). A row at the
attempt limit stays ``failed`` and is counted in ``BackupResult.exhausted``.

What is archived for an entry (and for each multi-stream child, whose assets the store keeps
with ``owner_entry_id``): the source flavor (``is_source`` as sizing chose it: isOriginal,
flavorParamsId 0, ``source`` tag, largest), every caption, attachment and thumbnail. Other
flavors are marked ``skipped``. External (YouTube) entries have no media: their archive is
entry.json plus whatever thumbnails/captions they carry.

Non-ready assets (the rule; fail closed):
- READY (2; EXPORTING 9 for flavors) is fetched.
- ERROR (-1) and NOT_APPLICABLE (4) can never be fetched: recorded in entry.json under
  ``not_archived`` and do not block ``archived``. When that asset is the source flavor, the
  largest READY flavor of the same owner is archived in its place (``source_substitute``);
  with none, the media is recorded as unavailable.
- Any other status (queued, converting, importing, unknown, a plugin value...) may still
  become ready: the entry is incomplete, its other files are fetched, and it ends ``failed``
  ("asset X not ready (status n)"), to be retried next run. An asset that has sat in such a
  status for STUCK_AFTER_DAYS (its updatedAt) has no file and never will: it is recorded
  like ERROR. Without this, one caption queued years ago would block its entry forever.
- A getUrl answering ``*_IS_NOT_READY`` or ``*_NOT_FOUND`` (the sized asset set is stale)
  also ends the entry ``failed``.

Files: ``<archive_root>/<partnerId>/<entryId>/<kind>-<assetId>.<ext>`` (kretain.archive names
them; ``assets.archive_path`` holds the path relative to ``archive_root``). The URL is asked
for right before each attempt (URLs expire); kretain.workers.download.download_to streams,
resumes a ``.part`` with Range and verifies size and sha256. Retryable failures get up to
``file_attempts`` tries with bounded exponential backoff. Free space is checked before each
file; DiskFull anywhere stops the whole stage: no new entry or file is started, files
already streaming finish (or hit DiskFull themselves; their ``.part`` is kept for resume),
entries left incomplete are handed back (``sized``/``failed`` as they were, no attempt
counted), and :class:`BackupDiskFull` is raised carrying the partial result. Nothing is
marked done that is not: entry.json is written only after every file of the entry was
verified, and ``archived`` only after entry.json.

``entry.json`` (written last, atomically): format, entry id, partner id, the entry's raw wire
metadata, name/owner/categories/tags, policy/action/reason, the children (raw wire metadata
from a ``parentEntryIdEqual`` listing), and every file with asset id, owner entry, kind,
language, label, size, sha256, and the asset's raw metadata; plus ``not_archived``.

``progress(event, **counts)`` receives ``backup.entry`` after each entry and ``backup.done``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from kretain import archive
from kretain.errors import KretainError, StateConflictError
from kretain.kaltura.client import ALL_LIVE_STATUSES, ALL_MODERATION_STATUSES, KalturaClient
from kretain.kaltura.errors import AssetNotReady, KalturaError, NotFound
from kretain.store import queries, transitions
from kretain.store.db import Store
from kretain.store.db import now as wall_now
from kretain.store.models import AssetRow, EntryRow
from kretain.store.states import Action, AssetBackupState, State
from kretain.workers import download
from kretain.workers.download import (
    DiskFull,
    DownloadError,
    DownloadHTTPError,
    LocalFS,
    RateLimiter,
    check_size,
    download_to,
    is_retryable,
    part_path,
)
from kretain.workers.size import choose_source

__all__ = [
    "ENTRY_JSON_FORMAT",
    "BackupDiskFull",
    "BackupResult",
    "backup",
    "plan_entry",
]

log = structlog.get_logger("kretain.backup")

Progress = Callable[..., None] | None

ENTRY_JSON_FORMAT = "kretain-entry/1"
DEFAULT_CONCURRENCY = 2
DEFAULT_FILE_CONCURRENCY = 3
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_FILE_ATTEMPTS = 4
LEASE_SECONDS = 300
RETRY_BASE_DELAY = 1.0
RETRY_MAX_DELAY = 30.0
# Failed rows of earlier runs are claimed up front (see backup()); at most this many per run.
MAX_FAILED_PER_RUN = 10_000

_READY = {"flavor": frozenset({2, 9})}
_READY_DEFAULT = frozenset({2})
_NEVER = {"flavor": frozenset({-1, 4})}  # ERROR, NOT_APPLICABLE
_NEVER_DEFAULT = frozenset({-1})
STUCK_AFTER_DAYS = 30


class BackupDiskFull(KretainError):
    """The archive's disk is full: the backup stage stopped, nothing half-done was marked done.

    ``result`` is what the stage did before it stopped. Free space (or lower the margin) and
    run again: partial files resume.
    """

    exit_code = 7

    def __init__(self, message: str, result: BackupResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class BackupResult:
    """What one backup() call did."""

    claimed: int = 0
    archived: int = 0
    failed: int = 0  # entries that ended failed in this run (retried next run)
    exhausted: int = 0  # failed rows at the attempt limit: not retried, need a look
    released: int = 0  # rows handed back unfinished (disk full, interrupted)
    files: int = 0  # files downloaded and verified in this run
    files_reused: int = 0  # files verified by an earlier run (or found complete on disk)
    files_unavailable: int = 0  # assets that can never be fetched (status ERROR ...)
    bytes_downloaded: int = 0  # bytes received in this run
    bytes_resumed: int = 0  # bytes of .part files reused instead of downloaded again
    retries: int = 0
    stopped: str | None = None  # why the stage stopped early (disk full)
    problems: list[str] = field(default_factory=list)

    def as_counts(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "problems"}


# ---- planning (pure) ------------------------------------------------------------------------


@dataclass(frozen=True)
class FilePlan:
    asset: AssetRow
    substitute_for: str | None = None  # the unavailable source this flavor stands in for


@dataclass(frozen=True)
class EntryPlan:
    fetch: list[FilePlan]
    skipped: list[tuple[AssetRow, str]]  # not backed up on purpose (non-source flavors)
    unavailable: list[tuple[AssetRow, str]]  # can never be fetched (recorded, not blocking)
    waiting: list[tuple[AssetRow, str]]  # not ready yet: the entry cannot be archived now


def _status(asset: AssetRow) -> int | None:
    try:
        return int(str(asset.status).strip())
    except (TypeError, ValueError):
        return None


def asset_readiness(asset: AssetRow, now: int | None = None) -> str:
    """ "ready", "never" (can never be fetched) or "waiting" (may become ready; fail closed)."""
    status = _status(asset)
    if status in _READY.get(asset.kind, _READY_DEFAULT):
        return "ready"
    if status in _NEVER.get(asset.kind, _NEVER_DEFAULT):
        return "never"
    if stuck_since(asset, now) is not None:
        return "never"
    return "waiting"


def stuck_since(asset: AssetRow, now: int | None = None) -> int | None:
    """updatedAt of a non-ready asset untouched for STUCK_AFTER_DAYS, else None."""
    updated = _raw(asset).get("updatedAt")
    if not isinstance(updated, int) or isinstance(updated, bool):
        return None  # unknown age: keep failing closed
    when = int(time.time()) if now is None else now
    return updated if when - updated >= STUCK_AFTER_DAYS * 86_400 else None


def unavailable_reason(asset: AssetRow) -> str:
    """Why an asset asset_readiness() calls "never" cannot be archived."""
    since = stuck_since(asset)
    if since is not None and _status(asset) not in _NEVER.get(asset.kind, _NEVER_DEFAULT):
        return f"status {asset.status} since {datetime.fromtimestamp(since, UTC).date()}: no file"
    return f"status {asset.status}: can never be downloaded"


def _raw(asset: AssetRow) -> dict[str, Any]:
    try:
        value = json.loads(asset.raw) if asset.raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def plan_entry(entry_id: str, assets: Sequence[AssetRow]) -> EntryPlan:
    """Decide, per the module docstring, which assets to fetch, skip, or wait for."""
    fetch: list[FilePlan] = []
    skipped: list[tuple[AssetRow, str]] = []
    unavailable: list[tuple[AssetRow, str]] = []
    waiting: list[tuple[AssetRow, str]] = []
    owners: dict[str, list[AssetRow]] = {}
    for a in assets:
        if a.kind == "flavor":
            owners.setdefault(a.owner_entry_id or entry_id, []).append(a)

    def place(a: AssetRow, substitute_for: str | None = None) -> None:
        state = asset_readiness(a)
        if state == "ready":
            fetch.append(FilePlan(a, substitute_for))
        elif state == "never":
            unavailable.append((a, unavailable_reason(a)))
        else:
            waiting.append((a, f"{a.kind} {a.id} not ready (status {a.status})"))

    for flavors in owners.values():
        sources = [f for f in flavors if f.is_source]
        if not sources:
            idx = choose_source([_raw(f) for f in flavors], [f.size_bytes for f in flavors])
            sources = [flavors[idx]] if idx is not None else []
        source = max(sources, key=lambda f: f.size_bytes) if sources else None
        for f in flavors:
            if f is not source:
                skipped.append((f, "not the source flavor"))
        if source is None:
            continue
        if asset_readiness(source) == "never":
            # The source is gone for good: keep the best copy that still exists.
            ready = [f for f in flavors if f is not source and asset_readiness(f) == "ready"]
            unavailable.append((source, f"source flavor {unavailable_reason(source)}"))
            if ready:
                best = max(ready, key=lambda f: f.size_bytes)
                skipped.remove(next(s for s in skipped if s[0] is best))
                fetch.append(FilePlan(best, substitute_for=source.id))
            continue
        place(source)
    for a in assets:
        if a.kind != "flavor":
            place(a)
    return EntryPlan(fetch, skipped, unavailable, waiting)


def _csv(value: str | None) -> list[str]:
    return [p.strip() for p in (value or "").split(",") if p.strip()]


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Exponential backoff with jitter, never above ``cap`` (attempt counts from 1)."""
    return min(cap, base * 2 ** (attempt - 1)) * (0.5 + rand() / 2)


# ---- the worker ----------------------------------------------------------------------------


class _EntryFailed(Exception):
    """The entry cannot be archived in this run; the message becomes last_error."""


class _Run:
    def __init__(
        self,
        store: Store,
        client: KalturaClient,
        *,
        archive_root: Path,
        run_id: int,
        limiter: RateLimiter | None,
        file_concurrency: int,
        file_attempts: int,
        min_free_bytes: int,
        lease_seconds: int,
        retry_base_delay: float,
        retry_max_delay: float,
        fs: LocalFS | None,
        progress: Progress,
        result: BackupResult,
    ) -> None:
        self.store = store
        self.client = client
        self.root = archive_root
        self.run_id = run_id
        self.limiter = limiter
        self.file_concurrency = max(1, file_concurrency)
        self.file_attempts = max(1, file_attempts)
        self.min_free_bytes = min_free_bytes
        self.lease_seconds = lease_seconds
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self.fs = fs or LocalFS()
        self.progress = progress
        self.result = result
        self.held: set[str] = set()  # entry ids leased by this run
        # (entry id, asset id) -> the asset and the .part being written (for bytes_done)
        self.active: dict[tuple[str, str], tuple[AssetRow, Path]] = {}
        self.rand = random.random
        self.stop = asyncio.Event()  # set on DiskFull: start nothing new
        self.disk_full: DiskFull | None = None

    def emit(self, event: str) -> None:
        if self.progress is not None:
            self.progress(event, **self.result.as_counts())

    # ---- heartbeat: leases and bytes_done ------------------------------------------------
    async def heartbeat(self) -> None:
        interval = max(0.5, self.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):  # a missed beat is retried next interval
                await self.beat()

    async def beat(self) -> None:
        if self.held:
            await transitions.renew_leases(
                self.store, sorted(self.held), self.run_id, self.lease_seconds
            )
        for asset, part in list(self.active.values()):
            try:
                done = part.stat().st_size
            except FileNotFoundError:
                continue
            await queries.update_asset_backup(
                self.store, asset, bytes_done=done, backup_state=AssetBackupState.PARTIAL
            )

    # ---- one entry ------------------------------------------------------------------------
    async def entry(self, row: EntryRow) -> None:
        self.held.add(row.id)
        try:
            await self._entry(row)
        finally:
            self.held.discard(row.id)
        self.emit("backup.entry")

    async def _entry(self, row: EntryRow) -> None:
        log_ = log.bind(entry_id=row.id)
        try:
            partner_id = row.partner_id
            if partner_id is None:
                partner_id = self.client.config.partner_id
            directory = archive.entry_dir(self.root, partner_id, row.id)
            assets = await queries.assets_of(self.store, row.id)
            plan = plan_entry(row.id, assets)
            for a, _why in plan.skipped:
                if a.backup_state != AssetBackupState.SKIPPED:
                    await queries.update_asset_backup(
                        self.store, a, backup_state=AssetBackupState.SKIPPED
                    )
            children = await self._children(row, assets)
            files, problems = await self._files(row, directory, plan.fetch)
            if self.stop.is_set() and len(files) + len(problems) < len(plan.fetch):
                return  # stopped part-way: handed back unchanged by backup()
            problems += [why for _a, why in plan.waiting]
            if problems:
                raise _EntryFailed("; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""))
            metadata = entry_metadata(
                row, partner_id, children, files, plan, run_id=self.run_id, now=wall_now()
            )
            await asyncio.to_thread(archive.write_entry_json, directory, metadata)
            self.result.files_unavailable += len(plan.unavailable)
            await transitions.move(
                self.store,
                row.id,
                State.DOWNLOADING,
                State.ARCHIVED,
                run_id=self.run_id,
                reason=f"{len(files)} files verified",
                lease_owner=self.run_id,
            )
            self.result.archived += 1
            log_.info("backup.archived", files=len(files))
        except _EntryFailed as exc:
            await self._fail(row, str(exc))
        except (KalturaError, DownloadError, OSError, archive.ArchivePathError, ValueError) as exc:
            await self._fail(row, f"{type(exc).__name__}: {exc}")
        except StateConflictError as exc:  # our lease was taken over: leave the row alone
            self.result.problems.append(f"{row.id}: {exc}")

    async def _fail(self, row: EntryRow, message: str) -> None:
        message = message[:1000]
        try:
            await transitions.move(
                self.store,
                row.id,
                State.DOWNLOADING,
                State.FAILED,
                run_id=self.run_id,
                error=message,
                lease_owner=self.run_id,
            )
        except StateConflictError as exc:
            self.result.problems.append(f"{row.id}: {exc}")
            return
        self.result.failed += 1
        self.result.problems.append(f"{row.id}: backup failed: {message}")
        log.warning("backup.failed", entry_id=row.id, error=message)

    async def _children(self, row: EntryRow, assets: Sequence[AssetRow]) -> list[dict[str, Any]]:
        """Children's metadata (multi-stream). A listed child without sized assets means the
        stored asset set is stale: fail closed rather than archive half an entry."""
        page = await self.client.list_entries(
            {
                "parentEntryIdEqual": row.id,
                "statusIn": ALL_LIVE_STATUSES,
                "moderationStatusIn": ALL_MODERATION_STATUSES,
            },
            1,
            500,
            service="baseentry",
        )
        listed = {
            str(c.get("id")): c
            for c in page.objects
            if isinstance(c, dict) and c.get("parentEntryId") == row.id
        }
        owners = {a.owner_entry_id for a in assets if a.owner_entry_id}
        missing = sorted(set(listed) - owners)
        if missing:
            raise _EntryFailed(f"child entries {', '.join(missing)} have no sized assets")
        return [{"id": cid, "entry": listed.get(cid)} for cid in sorted(owners | set(listed))]

    async def _files(
        self, row: EntryRow, directory: Path, plans: Sequence[FilePlan]
    ) -> tuple[list[tuple[FilePlan, str, int, str]], list[str]]:
        """Fetch every planned file, at most file_concurrency at once. Failures are
        collected; DiskFull stops the run (files not yet started are not started)."""
        slots = asyncio.Semaphore(self.file_concurrency)
        done: list[tuple[FilePlan, str, int, str]] = []
        problems: list[str] = []

        async def one(p: FilePlan) -> None:
            async with slots:
                if self.stop.is_set():
                    return
                try:
                    name, size, sha = await self._file(row, directory, p.asset)
                except DiskFull as exc:
                    self.disk_full = self.disk_full or exc
                    self.stop.set()
                except _EntryFailed as exc:
                    problems.append(str(exc))
                except (KalturaError, DownloadError, OSError, archive.ArchivePathError) as exc:
                    problems.append(f"{p.asset.kind} {p.asset.id}: {type(exc).__name__}: {exc}")
                    with contextlib.suppress(Exception):
                        await queries.update_asset_backup(
                            self.store, p.asset, backup_state=AssetBackupState.FAILED
                        )
                else:
                    done.append((p, name, size, sha))

        async with asyncio.TaskGroup() as tg:
            for p in plans:
                tg.create_task(one(p))
        order = {p.asset.id: i for i, p in enumerate(plans)}
        done.sort(key=lambda d: order[d[0].asset.id])
        return done, problems

    async def _file(self, row: EntryRow, directory: Path, asset: AssetRow) -> tuple[str, int, str]:
        """One verified file: (name, size, sha256)."""
        name = archive.asset_filename(asset.id, asset.file_ext, asset.kind)
        dest = archive.safe_join(directory, name)
        rel = str(dest.relative_to(self.root.resolve()))
        raw = _raw(asset)
        expected_bytes, expected_kb = _expected_sizes(asset, raw)
        # Verified by an earlier run and still there with the same size: nothing to do.
        if (
            asset.backup_state == AssetBackupState.VERIFIED
            and asset.archive_path == rel
            and asset.sha256
            and await asyncio.to_thread(_size_of, dest) == asset.bytes_done
        ):
            self.result.files_reused += 1
            return name, asset.bytes_done, asset.sha256
        # A complete file without a record (killed between rename and the DB update, or a
        # copy verify found damaged): keep it only if it checks out.
        found = await self._adopt(asset, rel, dest, expected_bytes, expected_kb)
        if found is not None:
            return name, *found
        await queries.update_asset_backup(self.store, asset, archive_path=rel)
        attempt = 0
        while True:
            attempt += 1
            await self._check_room(dest, asset)
            try:
                url = await self.client.get_asset_url(asset.kind, asset.id)  # type: ignore[arg-type]
            except AssetNotReady as exc:
                raise _EntryFailed(f"{asset.kind} {asset.id} not ready: {exc.code}") from exc
            except NotFound as exc:
                raise _EntryFailed(f"{asset.kind} {asset.id} no longer exists: {exc.code}") from exc
            self.active[asset.entry_id, asset.id] = (asset, part_path(dest))
            try:
                res = await download_to(
                    self.client.http,
                    url,
                    dest,
                    expected_bytes=expected_bytes,
                    expected_kb=expected_kb,
                    bandwidth=self.limiter,
                    min_free_bytes=self.min_free_bytes,
                    fs=self.fs,
                )
            except (DiskFull, asyncio.CancelledError):
                # Stopping: note how far the .part got (it resumes next run).
                await asyncio.shield(self._record_partial(asset, dest))
                raise
            except download.DestinationExists:
                # Renamed into place by a download this process gave up on (cancelled
                # while its thread finished): keep it if it checks out, else fetch again.
                found = await self._adopt(asset, rel, dest, expected_bytes, expected_kb)
                if found is not None:
                    return name, *found
                if attempt >= self.file_attempts:
                    raise
                continue
            except DownloadError as exc:
                await self._record_partial(asset, dest)
                if not is_retryable(exc) or attempt >= self.file_attempts:
                    raise
                self.result.retries += 1
                delay = backoff_delay(
                    attempt, self.retry_base_delay, self.retry_max_delay, self.rand
                )
                if isinstance(exc, DownloadHTTPError) and exc.retry_after:
                    delay = min(self.retry_max_delay, max(delay, exc.retry_after))
                log.info(
                    "backup.retry", asset_id=asset.id, attempt=attempt, error=str(exc), delay=delay
                )
                await asyncio.sleep(delay)
                continue
            finally:
                self.active.pop((asset.entry_id, asset.id), None)
            self.result.files += 1
            self.result.bytes_resumed += res.resumed_from
            self.result.bytes_downloaded += res.bytes - res.resumed_from
            await self._record_verified(asset, rel, res.bytes, res.sha256)
            return name, res.bytes, res.sha256

    async def _adopt(
        self,
        asset: AssetRow,
        rel: str,
        dest: Path,
        expected_bytes: int | None,
        expected_kb: int | None,
    ) -> tuple[int, str] | None:
        """A complete file already at ``dest`` without a record (killed between the rename
        and the DB update): record it when its size fits, else remove it. (size, sha256)."""
        if not dest.exists():
            return None
        found = await asyncio.to_thread(_check_existing, dest, expected_bytes, expected_kb)
        if found is None:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(dest.unlink)
            return None
        await self._record_verified(asset, rel, *found)
        self.result.files_reused += 1
        return found

    async def _check_room(self, dest: Path, asset: AssetRow) -> None:
        have = await asyncio.to_thread(_size_of, part_path(dest))
        needed = max(0, asset.size_bytes - (have or 0)) + max(0, self.min_free_bytes)
        free = await asyncio.to_thread(self.fs.free_bytes, dest.parent)
        if free < needed:
            raise DiskFull(dest, needed=needed, free=free)

    async def _record_partial(self, asset: AssetRow, dest: Path) -> None:
        have = await asyncio.to_thread(_size_of, part_path(dest))
        await queries.update_asset_backup(
            self.store,
            asset,
            bytes_done=have or 0,
            backup_state=AssetBackupState.PARTIAL if have else AssetBackupState.PENDING,
        )

    async def _record_verified(self, asset: AssetRow, rel: str, size: int, sha: str) -> None:
        await queries.update_asset_backup(
            self.store,
            asset,
            archive_path=rel,
            bytes_done=size,
            sha256=sha,
            verified_at=wall_now(),
            backup_state=AssetBackupState.VERIFIED,
        )


def _size_of(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _expected_sizes(asset: AssetRow, raw: dict[str, Any]) -> tuple[int | None, int | None]:
    """(sizeInBytes when > 0, size in KB) from the asset's wire data; the stored size_bytes
    (sizeInBytes or size x 1024) when the raw object lacks them."""

    def num(value: Any) -> int | None:
        if isinstance(value, bool):
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            return None

    exact = num(raw.get("sizeInBytes"))
    kb = num(raw.get("size"))
    if exact is None and kb is None:
        return (asset.size_bytes or None), None
    return (exact if exact and exact > 0 else None), kb


def _check_existing(
    path: Path, expected_bytes: int | None, expected_kb: int | None
) -> tuple[int, str] | None:
    """(size, sha256) of a file already in place when its size fits the asset, else None."""
    size = path.stat().st_size
    try:
        check_size(size, expected_bytes, expected_kb)
    except download.SizeMismatch:
        return None
    if size == 0:
        return None
    return size, sha256_file(path)


def sha256_file(path: Path, block: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def entry_metadata(
    row: EntryRow,
    partner_id: int,
    children: Sequence[dict[str, Any]],
    files: Iterable[tuple[FilePlan, str, int, str]],
    plan: EntryPlan,
    *,
    run_id: int,
    now: int,
) -> dict[str, Any]:
    """The entry.json document (see the module docstring)."""

    def asset_doc(a: AssetRow) -> dict[str, Any]:
        raw = _raw(a)
        return {
            "asset_id": a.id,
            "owner_entry_id": a.owner_entry_id or row.id,
            "kind": a.kind,
            "is_source": a.is_source,
            "flavor_params_id": a.flavor_params_id,
            "language": raw.get("language") or a.language,
            "language_code": raw.get("languageCode"),
            "label": raw.get("label"),
            "file_ext": a.file_ext,
            "status": a.status,
            "asset": raw,
        }

    return {
        "format": ENTRY_JSON_FORMAT,
        "entry_id": row.id,
        "partner_id": partner_id,
        "archived_at": datetime.fromtimestamp(now, UTC).isoformat(),
        "run_id": run_id,
        "name": row.name,
        "owner": row.owner,
        "created_at": row.created_at,
        "last_played_at": row.last_played_at,
        "plays": row.plays,
        "is_external": row.is_external,
        "is_quiz": row.is_quiz,
        "categories": _csv(row.categories),
        "categories_ids": _csv(row.categories_ids),
        "tags": _csv(row.tags),
        "policy": row.policy,
        "action": str(row.action) if row.action else None,
        "reason": row.reason,
        "entry": row.wire(),
        "children": list(children),
        "files": [
            {
                **asset_doc(p.asset),
                "file": name,
                "size": size,
                "sha256": sha,
                "source_substitute_for": p.substitute_for,
            }
            for p, name, size, sha in files
        ],
        "not_archived": [
            {**asset_doc(a), "reason": why} for a, why in [*plan.unavailable, *plan.skipped]
        ],
    }


async def backup(
    store: Store,
    client: KalturaClient,
    *,
    archive_root: Path,
    run_id: int,
    concurrency: int = DEFAULT_CONCURRENCY,
    bandwidth: float | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    progress: Progress = None,
    file_concurrency: int = DEFAULT_FILE_CONCURRENCY,
    file_attempts: int = DEFAULT_FILE_ATTEMPTS,
    min_free_bytes: int = download.DEFAULT_MIN_FREE_BYTES,
    lease_seconds: int = LEASE_SECONDS,
    retry_base_delay: float = RETRY_BASE_DELAY,
    retry_max_delay: float = RETRY_MAX_DELAY,
    fs: LocalFS | None = None,
) -> BackupResult:
    """Back up every ``delete_entry`` row in ``sized`` (and retryable ``failed`` rows).

    ``concurrency`` entries at once, each with up to ``file_concurrency`` files at once;
    ``bandwidth`` caps all downloads together (bytes/s, None = no cap); a row fails for good
    after ``max_attempts`` failed runs. ``min_free_bytes`` is the free-space margin kept on
    the archive's disk; ``fs`` is download's file-system seam (tests inject ENOSPC).
    Raises BackupDiskFull (after releasing this run's leases) when the disk fills up.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be >= 1")
    root = Path(archive_root)
    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    result = BackupResult()
    await transitions.release_expired(store)
    run = _Run(
        store,
        client,
        archive_root=root,
        run_id=run_id,
        limiter=RateLimiter(bandwidth) if bandwidth else None,
        file_concurrency=file_concurrency,
        file_attempts=file_attempts,
        min_free_bytes=min_free_bytes,
        lease_seconds=lease_seconds,
        retry_base_delay=retry_base_delay,
        retry_max_delay=retry_max_delay,
        fs=fs,
        progress=progress,
        result=result,
    )
    # Failed rows of earlier runs are leased all at once, up front: claiming them one by
    # one would pick a row that just failed in this run again and burn its attempts.
    retry_rows = await transitions.claim(
        store,
        State.FAILED,
        State.DOWNLOADING,
        MAX_FAILED_PER_RUN,
        run_id,
        lease_seconds,
        action=Action.DELETE_ENTRY,
        max_attempts=max_attempts,
    )
    queue: list[EntryRow] = list(retry_rows)
    run.held.update(r.id for r in retry_rows)
    result.claimed += len(retry_rows)
    claim_lock = asyncio.Lock()

    async def next_row() -> EntryRow | None:
        async with claim_lock:
            if queue:
                return queue.pop(0)
            rows = await transitions.claim(
                store,
                State.SIZED,
                State.DOWNLOADING,
                1,
                run_id,
                lease_seconds,
                action=Action.DELETE_ENTRY,
            )
            result.claimed += len(rows)
            return rows[0] if rows else None

    async def worker() -> None:
        while not run.stop.is_set() and (row := await next_row()) is not None:
            await run.entry(row)

    beat = asyncio.create_task(run.heartbeat())
    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(max(1, concurrency)):
                tg.create_task(worker())
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat

        async def cleanup() -> None:
            # Record how far partial files got, then hand every row we still hold back.
            with contextlib.suppress(Exception):
                await run.beat()
            result.released += await transitions.release_run(store, run_id)

        await asyncio.shield(cleanup())
    if run.disk_full is not None:
        result.stopped = (
            f"disk full under {root}: {run.disk_full}. Backup stopped; nothing unfinished was "
            "marked archived. Free some space and run again: partial files resume."
        )
    row = await store.fetchone(
        "SELECT count(*) FROM entries WHERE state = ? AND action = ? AND attempts >= ?",
        (str(State.FAILED), str(Action.DELETE_ENTRY), max_attempts),
    )
    result.exhausted = int(row[0])
    if result.exhausted:
        result.problems.append(
            f"{result.exhausted} entries failed {max_attempts} backup attempts and are no "
            "longer retried (see `kretain status` / last_error)"
        )
    if result.stopped:
        result.problems.append(result.stopped)
        log.error("backup.stopped", reason=result.stopped)
        raise BackupDiskFull(result.stopped, result)
    run.emit("backup.done")
    log.info("backup finished", **result.as_counts())
    return result

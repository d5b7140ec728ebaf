"""The backup worker: copy every entry that will be deleted into the archive, verified.

    result = await backup(ctx, archive=target_or_path, options=BackupOptions())

Which rows: ``action = delete_entry`` rows in ``sized`` (and ``backup_failed`` rows of earlier
runs with fewer than ``max_attempts`` failed backups). ``delete_flavors`` rows keep their
source and need no backup. Rows move ``sized/backup_failed -> downloading`` (claimed by the
shared claim loop, whose heartbeat renews the lease while files stream) and end ``archived``
only when every file is verified and ``entry.json`` is written; otherwise ``backup_failed``
(backup_attempts + 1, last_error).

Right before copying, the entry is looked up again (kretain.workers.lookup, the same batched
lookup sizing uses) and re-evaluated (rules.recheck): an entry played since, exempt now or
gone is not backed up but moved to kept / exempt / gone; one whose action or assets changed
since sizing goes back to candidate to be sized again. At the end of the stage the files
half-written for rows no longer on their way to the archive (kept, exempt, gone, deleted
...) are removed (``abort_abandoned``: S3 multipart uploads and their part lists, local
``.part`` files), and so are leftovers beside an entry just archived.

What is archived is kretain.rules.archive_plan's decision: per owner (the entry and each
multi-stream child) the source flavor as sizing marked it, every caption, attachment and
thumbnail; a source that can never be downloaded, or an owner without a recognisable
source, is replaced by its largest READY flavor, recorded as standing in. Assets that can
never have a file are listed under ``not_archived``; assets that may still become ready
make the entry fail (retried next run).

The archive is an :class:`kretain.archive.ArchiveTarget` (a directory, or an S3 bucket
prefix); this worker never knows which. Files: ``<partnerId>/<entryId>/<kind>-<assetId>.<ext>``
under it (kretain.archive names them; ``assets.archive_path`` holds that relative name). Each
file streams from Kaltura straight into the target's sink
(kretain.workers.download.download_to_sink: constant memory, resumes what the sink already
holds with Range, checks the size; the sink hashes on the way and places the file: a local
``.part`` renamed into place, or an S3 multipart upload completed). The sha256 and the
store's own checksum (``assets.store_checksum``) are recorded. The URL is asked for right
before each attempt (URLs expire). Retryable failures get up to ``file_attempts`` tries with
bounded exponential backoff.

The environment is not the entry's fault. Before anything is claimed the target is probed
(``check_writable``: a small marker written and removed); an archive that cannot be written
(read-only, permission denied, wrong credentials, missing bucket) raises ArchiveUnavailable
and nothing moves. If the disk fills or the archive stops accepting writes part-way, the
stage stops: no new entry or file is started, entries left incomplete go back to where they
were with no attempt charged, and :class:`BackupDiskFull` (disk full) or ArchiveUnavailable
is raised carrying the result. Nothing is marked done that is not: entry.json is written
only after every file of the entry was verified, and ``archived`` (with the target's
``uri`` as ``archive_uri``) only after entry.json.

``entry.json`` (written last, atomically, beside the files): format, entry id, partner id,
the entry's raw wire metadata, name/owner/categories/tags, policy/action/reason, the children
(raw wire metadata), and every file with asset id, owner entry, kind, language, label, size,
sha256, and the asset's raw metadata; plus ``not_archived``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from kretain import archive, rules
from kretain.archive import ArchiveTarget, FileSink, StoredFile, opened
from kretain.errors import ArchiveUnavailable, KretainError, StateConflictError
from kretain.kaltura.errors import AssetNotReady, KalturaError, NotFound
from kretain.store import queries, transitions
from kretain.store.db import now as wall_now
from kretain.store.models import AssetRow, EntryRow
from kretain.store.states import Action, AssetBackupState, State
from kretain.workers.claims import ClaimLoop, ClaimPhase
from kretain.workers.context import RunContext
from kretain.workers.download import (
    DiskFull,
    DownloadError,
    DownloadHTTPError,
    RateLimiter,
    SizeMismatch,
    check_size,
    download_to_sink,
    expected_total,
    is_retryable,
)
from kretain.workers.lookup import KalturaUnreachable, fetch_batch

__all__ = [
    "ENTRY_JSON_FORMAT",
    "BackupDiskFull",
    "BackupOptions",
    "BackupResult",
    "backup",
    "same_store_checksum",
]

log = structlog.get_logger("kretain.backup")

ENTRY_JSON_FORMAT = "kretain-entry/1"
# Failures of the archive itself, not of one entry: they stop the stage.
ARCHIVE_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT})
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# States from which a row may still be backed up: its half-written files are kept for it.
HEADING_FOR_ARCHIVE = (
    State.CANDIDATE,
    State.SIZED,
    State.DOWNLOADING,
    State.BACKUP_FAILED,
    State.ERROR,
)


@dataclass(frozen=True)
class BackupOptions:
    concurrency: int = 2  # entries at once
    file_concurrency: int = 3  # files of one entry at once
    bandwidth: float | None = None  # bytes/s for all downloads together; None = no cap
    max_attempts: int = 5  # failed backups before a row waits for `kretain retry`
    file_attempts: int = 4  # tries of one file within a run
    lease_seconds: int = 300
    retry_base_delay: float = 1.0
    retry_max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")


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
    failed: int = 0  # entries that ended backup_failed in this run (retried next run)
    exhausted: int = 0  # backup_failed rows at the attempt limit: need `kretain retry`
    released: int = 0  # rows handed back unfinished (disk full, archive unwritable)
    kept: int = 0  # re-checked before the copy: played since / no longer qualifying
    exempt: int = 0
    gone: int = 0
    resize: int = 0  # action or assets changed since sizing: sized again next
    files: int = 0  # files downloaded and verified in this run
    files_reused: int = 0  # files verified by an earlier run (or found complete in the archive)
    files_unavailable: int = 0  # assets that can never be fetched (status ERROR ...)
    bytes_downloaded: int = 0  # bytes received in this run
    bytes_resumed: int = 0  # bytes of unfinished files reused instead of downloaded again
    uploads_dropped: int = 0  # unfinished files no longer wanted, removed from the archive
    retries: int = 0
    stopped: str | None = None  # why the stage stopped early
    problems: list[str] = field(default_factory=list)

    def as_counts(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("problems", "stopped")}


def same_store_checksum(recorded: str | None, now: str | None) -> bool:
    """False only when both are known and differ: the stored object was replaced since."""
    return recorded is None or now is None or recorded == now


def _disk_full(exc: BaseException) -> DiskFull | None:
    """The DiskFull an archive failure amounts to, if the archive's disk is full."""
    if isinstance(exc, DiskFull):
        return exc
    cause = exc.__cause__ if isinstance(exc, ArchiveUnavailable) else exc
    if isinstance(cause, OSError) and cause.errno in FULL_ERRNOS:
        return DiskFull(Path(cause.filename or "the archive"))
    return None


def _archive_failure(exc: BaseException) -> bool:
    return isinstance(exc, ArchiveUnavailable) or (
        isinstance(exc, OSError) and exc.errno in ARCHIVE_ERRNOS
    )


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Exponential backoff with jitter, never above ``cap`` (attempt counts from 1)."""
    return min(cap, base * 2 ** (attempt - 1)) * (0.5 + rand() / 2)


def _csv(value: str | None) -> list[str]:
    return [p.strip() for p in (value or "").split(",") if p.strip()]


class _EntryFailed(Exception):
    """The entry cannot be archived in this run; the message becomes last_error."""


class _ArchiveBroken(Exception):
    """The archive stopped accepting writes (not this entry's fault): stop the stage."""


class _Archiver:
    """One backup() call: the state shared by its entries and files."""

    def __init__(
        self, ctx: RunContext, target: ArchiveTarget, opts: BackupOptions, result: BackupResult
    ) -> None:
        self.ctx = ctx
        self.target = target
        self.opts = opts
        self.result = result
        self.limiter = RateLimiter(opts.bandwidth) if opts.bandwidth else None
        # (entry id, asset id) -> the asset and the sink being written (for bytes_done)
        self.active: dict[tuple[str, str], tuple[AssetRow, FileSink]] = {}
        self.rand = random.random
        self.stop = asyncio.Event()  # set when the archive fails: start nothing new
        self.disk_full: DiskFull | None = None
        self.broken: str | None = None
        self.total = 0  # rows to back up when the stage started (progress)

    def emit(self, event: str) -> None:
        r = self.result
        done = r.archived + r.failed + r.kept + r.exempt + r.gone + r.resize
        self.ctx.emit(event, done=done, total=self.total, **r.as_counts())

    def halt(self, exc: BaseException) -> None:
        full = _disk_full(exc)
        if full is not None:
            self.disk_full = self.disk_full or full
        elif self.broken is None:
            self.broken = f"{type(exc).__name__}: {exc}"
        self.stop.set()

    async def record_progress(self) -> None:
        """How far each streaming file got (the heartbeat calls this): the bytes its sink
        holds durably (a local .part, the parts an S3 upload has stored)."""
        await queries.record_backup_progress(
            self.ctx.store, [(asset, sink.durable) for asset, sink in self.active.values()]
        )

    # ---- one entry ------------------------------------------------------------------------
    async def entry(self, row: EntryRow) -> bool:
        """Back up one leased row. True when the row was left as it is (to be handed back)."""
        try:
            return await self._entry(row)
        except _EntryFailed as exc:
            await self._fail(row, str(exc))
        except _ArchiveBroken:
            return True
        except ArchiveUnavailable as exc:
            self.halt(exc)
            return True
        except (KalturaError, DownloadError, archive.ArchivePathError, ValueError) as exc:
            await self._fail(row, f"{type(exc).__name__}: {exc}")
        except OSError as exc:
            if _archive_failure(exc):
                self.halt(exc)
                return True
            await self._fail(row, f"{type(exc).__name__}: {exc}")
        except StateConflictError as exc:  # our lease was taken over: leave the row alone
            self.result.problems.append(f"{row.id}: {exc}")
        finally:
            self.emit("backup.entry")
        return False

    async def _entry(self, row: EntryRow) -> bool:
        children = await self._still_wanted(row)
        if children is None:
            return False
        row = await queries.get_entry(self.ctx.store, row.id) or row  # freshly refreshed
        prefix = self.prefix_of(row)
        assets = await queries.assets_of(self.ctx.store, row.id)
        plan = rules.archive_plan(assets, wall_now())
        for a, _why in plan.skipped:
            if a.backup_state != AssetBackupState.SKIPPED:
                await queries.update_asset_backup(
                    self.ctx.store, a, backup_state=AssetBackupState.SKIPPED
                )
        files, problems = await self._files(prefix, plan.fetch)
        if self.stop.is_set() and len(files) + len(problems) < len(plan.fetch):
            return True  # stopped part-way: handed back unchanged
        problems += [why for _a, why in plan.waiting]
        if problems:
            raise _EntryFailed("; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""))
        metadata = entry_metadata(
            row, self.partner_of(row), children, files, plan, run_id=self.ctx.run_id,
            now=wall_now(),
        )  # fmt: skip
        try:
            await self.target.put_json(f"{prefix}/{archive.ENTRY_JSON}", metadata)
        except (ArchiveUnavailable, OSError) as exc:
            if _archive_failure(exc):
                self.halt(exc)
                raise _ArchiveBroken from exc
            raise
        self.result.files_unavailable += len(plan.unavailable)
        await transitions.move(
            self.ctx.store,
            row.id,
            State.DOWNLOADING,
            State.ARCHIVED,
            run_id=self.ctx.run_id,
            reason=f"{len(files)} files verified",
            updates={"archive_uri": self.target.uri},
            lease_owner=self.ctx.run_id,
        )
        self.result.archived += 1
        log.info("backup.archived", entry_id=row.id, files=len(files))
        # Leftovers of files this entry no longer has (its assets changed since they began).
        await self._drop_unfinished(prefix)
        return False

    def partner_of(self, row: EntryRow) -> int:
        return row.partner_id if row.partner_id is not None else self.ctx.client.config.partner_id

    def prefix_of(self, row: EntryRow) -> str:
        """``<partnerId>/<entryId>``: where the entry's files go in the target."""
        return self.target.entry_prefix(self.partner_of(row), row.id)

    async def drop_abandoned(self) -> None:
        """Remove the half-written files of rows that are no longer on their way to the
        archive (played since, exempt, gone, deleted ...): a killed run's multipart upload or
        .part is needed only while its row may still be backed up."""
        while True:
            assets = await queries.unfinished_backups(self.ctx.store, HEADING_FOR_ARCHIVE)
            if not assets:
                return
            prefixes: set[str] = set()
            for a in assets:
                with contextlib.suppress(archive.ArchivePathError):
                    prefixes.add(archive.rel_dir(a.archive_path or ""))
            for prefix in sorted(p for p in prefixes if p):
                await self._drop_unfinished(prefix)
            for a in assets:
                await queries.update_asset_backup(
                    self.ctx.store,
                    a,
                    archive_path=None,
                    bytes_done=0,
                    backup_state=AssetBackupState.PENDING,
                )

    async def _drop_unfinished(self, prefix: str) -> None:
        """Remove what is half-written under ``prefix`` (local .part files, S3 multipart
        uploads and their part lists): called when nothing there will be resumed. Never
        fails the entry: what is left costs only room, and the next call tries again."""
        try:
            self.result.uploads_dropped += await self.target.abort_abandoned((), prefix=prefix)
        except (ArchiveUnavailable, DownloadError, OSError) as exc:
            log.warning("backup.cleanup_failed", prefix=prefix, error=str(exc))

    async def _still_wanted(self, row: EntryRow) -> list[dict[str, Any]] | None:
        """Look the entry up again: back it up only if the policy still wants it deleted and
        its assets are still the ones sized (then: its children, for entry.json). Otherwise
        move it on, say why, and return None."""
        try:
            data = await fetch_batch(self.ctx.client, [row.id])
        except KalturaUnreachable as exc:
            self.halt(exc)
            raise _ArchiveBroken from exc
        if row.id in data.failed:
            raise _EntryFailed(f"lookup before the backup failed: {data.failed[row.id]}")
        check = rules.recheck(row, data.entries.get(row.id), self.ctx.policy, self.ctx.as_of)
        stored = await queries.assets_of(self.ctx.store, row.id)
        to: State | None = None
        updates: dict[str, Any] = {}
        if check.verdict == rules.Verdict.GONE:
            to, self.result.gone = State.GONE, self.result.gone + 1
        elif check.verdict == rules.Verdict.ERROR:
            raise _EntryFailed(f"fresh data unusable: {check.reason}")
        elif check.verdict in (rules.Verdict.KEPT, rules.Verdict.EXEMPT):
            to = State(check.verdict.value)
            setattr(self.result, to.value, getattr(self.result, to.value) + 1)
            exempt_by = check.decision.exempt_by if check.decision else None
            updates = {"action": None, "policy": check.rule, "exempt_by": exempt_by}
        elif check.action != str(row.action) or data.assets_changed(row.id, stored):
            to, self.result.resize = State.CANDIDATE, self.result.resize + 1
            updates = {"action": check.action, "policy": check.rule}
        if check.fields is not None:
            await queries.refresh_entries(self.ctx.store, [check.fields], run_id=self.ctx.run_id)
        if to is None:
            kids = data.children.get(row.id, [])
            return [{"id": c, "entry": data.child_entries.get(c)} for c in kids]
        why = check.reason if to != State.CANDIDATE else f"changed since sizing: {check.reason}"
        await transitions.move(
            self.ctx.store, row.id, State.DOWNLOADING, to, run_id=self.ctx.run_id,
            reason=why, updates={"reason": why, **updates}, lease_owner=self.ctx.run_id,
        )  # fmt: skip
        return None

    async def _fail(self, row: EntryRow, message: str) -> None:
        message = message[:1000]
        try:
            await transitions.move(
                self.ctx.store,
                row.id,
                State.DOWNLOADING,
                State.BACKUP_FAILED,
                run_id=self.ctx.run_id,
                error=message,
                lease_owner=self.ctx.run_id,
            )
        except StateConflictError as exc:
            self.result.problems.append(f"{row.id}: {exc}")
            return
        self.result.failed += 1
        self.result.problems.append(f"{row.id}: backup failed: {message}")
        log.warning("backup.failed", entry_id=row.id, error=message)

    async def _files(
        self, prefix: str, plans: Sequence[rules.PlannedFile]
    ) -> tuple[list[tuple[rules.PlannedFile, str, int, str]], list[str]]:
        """Fetch every planned file, at most file_concurrency at once. Failures are
        collected; a failing archive stops the run (files not yet started are not started)."""
        slots = asyncio.Semaphore(self.opts.file_concurrency)
        done: list[tuple[rules.PlannedFile, str, int, str]] = []
        problems: list[str] = []

        async def one(p: rules.PlannedFile) -> None:
            async with slots:
                if self.stop.is_set():
                    return
                try:
                    name, stored = await self._file(prefix, p.asset)
                except (DiskFull, ArchiveUnavailable) as exc:
                    self.halt(exc)
                except _EntryFailed as exc:
                    problems.append(str(exc))
                except OSError as exc:
                    if _archive_failure(exc):
                        self.halt(exc)
                        return
                    problems.append(f"{p.asset.kind} {p.asset.id}: {type(exc).__name__}: {exc}")
                    await self._mark_failed(p.asset)
                except (KalturaError, DownloadError, archive.ArchivePathError) as exc:
                    problems.append(f"{p.asset.kind} {p.asset.id}: {type(exc).__name__}: {exc}")
                    await self._mark_failed(p.asset)
                else:
                    assert stored.sha256 is not None
                    done.append((p, name, stored.size, stored.sha256))

        async with asyncio.TaskGroup() as tg:
            for p in plans:
                tg.create_task(one(p))
        order = {p.asset.id: i for i, p in enumerate(plans)}
        done.sort(key=lambda d: order[d[0].asset.id])
        return done, problems

    async def _mark_failed(self, asset: AssetRow) -> None:
        with contextlib.suppress(Exception):
            await queries.update_asset_backup(
                self.ctx.store, asset, backup_state=AssetBackupState.FAILED
            )

    async def _file(self, prefix: str, asset: AssetRow) -> tuple[str, StoredFile]:
        """One verified file: (name, as stored)."""
        name = archive.asset_filename(asset.id, asset.file_ext, asset.kind)
        rel = f"{prefix}/{name}"
        expected_bytes, expected_kb = rules.expected_size(asset.wire(), asset.size_bytes)
        found = await self.target.stat(rel)
        # Verified by an earlier run and still there, the same size (and the same object,
        # where the store keeps a checksum): nothing to do.
        if (
            found is not None
            and asset.backup_state == AssetBackupState.VERIFIED
            and asset.archive_path == rel
            and asset.sha256
            and found.size == asset.bytes_done
            and same_store_checksum(asset.store_checksum, found.store_checksum)
        ):
            self.result.files_reused += 1
            return name, StoredFile(found.size, asset.sha256, found.store_checksum)
        # A complete file without a record (killed between placing it and the DB update,
        # or a copy verify found damaged): keep it only if it checks out.
        if found is not None:
            adopted = await self._adopt(asset, rel, found, expected_bytes, expected_kb)
            if adopted is not None:
                return name, adopted
        await queries.update_asset_backup(self.ctx.store, asset, archive_path=rel)
        attempt = 0
        while True:
            attempt += 1
            sink: FileSink | None = None
            try:
                sink = await self._open_sink(rel, asset, expected_bytes, expected_kb)
                self.active[asset.entry_id, asset.id] = (asset, sink)
                try:
                    url = await self.ctx.client.get_asset_url(asset.kind, asset.id)  # type: ignore[arg-type]
                except BaseException:
                    await asyncio.shield(sink.suspend())
                    raise
                res = await download_to_sink(
                    self.ctx.client.http,
                    url,
                    sink,
                    expected_bytes=expected_bytes,
                    expected_kb=expected_kb,
                    bandwidth=self.limiter,
                )
            except AssetNotReady as exc:
                raise _EntryFailed(f"{asset.kind} {asset.id} not ready: {exc.code}") from exc
            except NotFound as exc:
                raise _EntryFailed(f"{asset.kind} {asset.id} no longer exists: {exc.code}") from exc
            except (DiskFull, ArchiveUnavailable, asyncio.CancelledError):
                # Stopping: note how far the file got (it resumes next run).
                if sink is not None:
                    await asyncio.shield(self._record_partial(asset, sink))
                raise
            except DownloadError as exc:
                if sink is not None:
                    await self._record_partial(asset, sink)
                await self._before_retry(asset, exc, attempt)
                continue
            finally:
                self.active.pop((asset.entry_id, asset.id), None)
            self.result.files += 1
            self.result.bytes_resumed += res.resumed_from
            self.result.bytes_downloaded += res.bytes - res.resumed_from
            stored = StoredFile(res.bytes, res.sha256, res.store_checksum)
            await self._record_verified(asset, rel, stored)
            return name, stored

    async def _before_retry(self, asset: AssetRow, exc: DownloadError, attempt: int) -> None:
        """Wait before the next try of a file; re-raise ``exc`` when no try is left."""
        if not is_retryable(exc) or attempt >= self.opts.file_attempts:
            raise exc
        self.result.retries += 1
        delay = backoff_delay(
            attempt, self.opts.retry_base_delay, self.opts.retry_max_delay, self.rand
        )
        if isinstance(exc, DownloadHTTPError) and exc.retry_after:
            delay = min(self.opts.retry_max_delay, max(delay, exc.retry_after))
        log.info("backup.retry", asset_id=asset.id, attempt=attempt, error=str(exc), delay=delay)
        await asyncio.sleep(delay)

    async def _open_sink(
        self, rel: str, asset: AssetRow, expected_bytes: int | None, expected_kb: int | None
    ) -> FileSink:
        """The file's sink (resuming what an earlier attempt left), once there is room for
        the rest of it: DiskFull before any URL is asked for when there is not."""
        sink = await self.target.open_sink(
            rel,
            expected_size=expected_total(expected_bytes, expected_kb),
            size_hint=asset.size_bytes or None,
        )
        try:
            await sink.ensure_room(max(0, asset.size_bytes - sink.offset))
        except BaseException:
            # Nothing written yet: leave nothing behind; else keep the prefix for later.
            await asyncio.shield(sink.discard() if sink.offset == 0 else sink.suspend())
            raise
        return sink

    async def _adopt(
        self,
        asset: AssetRow,
        rel: str,
        found: StoredFile,
        expected_bytes: int | None,
        expected_kb: int | None,
    ) -> StoredFile | None:
        """A complete file already at ``rel`` without a record: record it when its size fits
        the asset (hashed as the archive holds it), else remove it."""
        try:
            check_size(found.size, expected_bytes, expected_kb)
        except SizeMismatch:
            found = StoredFile(0, None, None)
        if found.size == 0:
            await self.target.delete(rel)
            return None
        sha = found.sha256 or await self.target.sha256(rel)
        adopted = StoredFile(found.size, sha, found.store_checksum)
        await self._record_verified(asset, rel, adopted)
        self.result.files_reused += 1
        return adopted

    async def _record_partial(self, asset: AssetRow, sink: FileSink) -> None:
        have = sink.durable
        await queries.update_asset_backup(
            self.ctx.store,
            asset,
            bytes_done=have,
            backup_state=AssetBackupState.PARTIAL if have else AssetBackupState.PENDING,
        )

    async def _record_verified(self, asset: AssetRow, rel: str, stored: StoredFile) -> None:
        await queries.update_asset_backup(
            self.ctx.store,
            asset,
            archive_path=rel,
            bytes_done=stored.size,
            sha256=stored.sha256,
            store_checksum=stored.store_checksum,
            verified_at=wall_now(),
            backup_state=AssetBackupState.VERIFIED,
        )


def entry_metadata(
    row: EntryRow,
    partner_id: int,
    children: Sequence[dict[str, Any]],
    files: Iterable[tuple[rules.PlannedFile, str, int, str]],
    plan: rules.ArchivePlan,
    *,
    run_id: int,
    now: int,
) -> dict[str, Any]:
    """The entry.json document (see the module docstring)."""

    def asset_doc(a: AssetRow) -> dict[str, Any]:
        raw = a.wire()
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
                "source_substitute_for": p.stands_in_for,
            }
            for p, name, size, sha in files
        ],
        "not_archived": [
            {**asset_doc(a), "reason": why} for a, why in [*plan.unavailable, *plan.skipped]
        ],
    }


async def backup(
    ctx: RunContext,
    *,
    archive: ArchiveTarget | str | Path,
    options: BackupOptions | None = None,
) -> BackupResult:
    """Back up every ``delete_entry`` row in ``sized`` (and retryable ``backup_failed`` rows)
    into ``archive``: a target (the caller's, left open) or a path / URI (opened here).

    Raises ArchiveUnavailable before claiming anything when the archive cannot be written,
    BackupDiskFull (or ArchiveUnavailable) after handing every unfinished row back when the
    archive fails part-way. ``ctx.progress`` gets ``backup.entry`` and ``backup.done``.
    """
    async with opened(archive) as target:
        return await _backup(ctx, target, options or BackupOptions())


async def _backup(ctx: RunContext, target: ArchiveTarget, opts: BackupOptions) -> BackupResult:
    try:
        await target.check_writable()
    except ArchiveUnavailable as exc:
        raise ArchiveUnavailable(
            f"cannot write to the archive {target.uri}: {exc.problem or exc}; nothing was "
            "backed up and no entry was charged an attempt"
        ) from None
    result = BackupResult()
    run = _Archiver(ctx, target, opts, result)
    # Rows of rules that delete without a backup are not copied; a rule renamed since the
    # audit is not in the policy, so those rows wait (fail safe: nothing is deleted either).
    backup_rules = ctx.policy.backup_rules()
    loop = ClaimLoop(
        ctx,
        [
            ClaimPhase(
                (State.BACKUP_FAILED,),
                State.DOWNLOADING,
                action=Action.DELETE_ENTRY,
                max_attempts=opts.max_attempts,
                up_front=True,
                policies=backup_rules,
            ),
            ClaimPhase(
                (State.SIZED,),
                State.DOWNLOADING,
                action=Action.DELETE_ENTRY,
                policies=backup_rules,
            ),
        ],
        batch_size=1,
        concurrency=max(1, opts.concurrency),
        lease_seconds=opts.lease_seconds,
        stop=run.stop,
        on_beat=run.record_progress,
    )

    async def handle(rows: list[EntryRow]) -> list[str]:
        return [r.id for r in rows if await run.entry(r)]

    run.total = await loop.pending()

    result.claimed = await loop.run(handle)
    result.released = loop.released
    result.exhausted = await queries.count_exhausted(
        ctx.store, State.BACKUP_FAILED, opts.max_attempts, action=Action.DELETE_ENTRY
    )
    if result.exhausted:
        result.problems.append(
            f"{result.exhausted} entries failed {opts.max_attempts} backups and are no longer "
            "retried: see `kretain status`, then `kretain retry --stage backup`"
        )
    if run.disk_full is not None:
        result.stopped = (
            f"disk full under {target.uri}: {run.disk_full}. Backup stopped; nothing "
            "unfinished was marked archived. Free some space and run again: partial files "
            "resume."
        )
        result.problems.append(result.stopped)
        log.error("backup.stopped", reason=result.stopped)
        raise BackupDiskFull(result.stopped, result)
    if run.broken is not None:
        result.stopped = (
            f"backup stopped: the archive {target.uri} or Kaltura failed ({run.broken}); "
            "unfinished entries were handed back without counting an attempt"
        )
        result.problems.append(result.stopped)
        log.error("backup.stopped", reason=result.stopped)
        raise ArchiveUnavailable(result.stopped)
    await run.drop_abandoned()
    run.emit("backup.done")
    ctx.outcome("backup", **result.as_counts())
    return result

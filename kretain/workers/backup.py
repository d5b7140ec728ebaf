"""The backup worker: copy every entry that will be deleted into the archive, verified.

    result = await backup(ctx, archive_root=Path, options=BackupOptions())

Which rows: ``action = delete_entry`` rows in ``sized`` (and ``backup_failed`` rows of earlier
runs with fewer than ``max_attempts`` failed backups). ``delete_flavors`` rows keep their
source and need no backup. Rows move ``sized/backup_failed -> downloading`` (claimed by the
shared claim loop, whose heartbeat renews the lease while files stream) and end ``archived``
only when every file is verified and ``entry.json`` is written; otherwise ``backup_failed``
(backup_attempts + 1, last_error).

Right before copying, the entry is looked up again (kretain.workers.lookup, the same batched
lookup sizing uses) and re-evaluated (rules.recheck): an entry played since, exempt now or
gone is not backed up but moved to kept / exempt / gone; one whose action or assets changed
since sizing goes back to candidate to be sized again.

What is archived is kretain.rules.archive_plan's decision: per owner (the entry and each
multi-stream child) the source flavor as sizing marked it, every caption, attachment and
thumbnail; a source that can never be downloaded, or an owner without a recognisable
source, is replaced by its largest READY flavor, recorded as standing in. Assets that can
never have a file are listed under ``not_archived``; assets that may still become ready
make the entry fail (retried next run).

Files: ``<archive_root>/<partnerId>/<entryId>/<kind>-<assetId>.<ext>`` (kretain.archive names
them; ``assets.archive_path`` holds the path relative to ``archive_root``). The URL is asked
for right before each attempt (URLs expire); kretain.workers.download.download_to streams,
resumes a ``.part`` with Range and verifies size and sha256. Retryable failures get up to
``file_attempts`` tries with bounded exponential backoff.

The environment is not the entry's fault. Before anything is claimed the archive is probed
(a directory made and a file written and removed); an archive that cannot be written
(read-only, permission denied, no room) raises ArchiveUnavailable and nothing moves. If the
disk fills or the archive stops accepting writes part-way (ENOSPC, EROFS, EACCES from a
data write, ``mkdir`` or ``entry.json``), the stage stops: no new entry or file is started,
entries left incomplete go back to where they were with no attempt charged, and
:class:`BackupDiskFull` (disk full) or ArchiveUnavailable is raised carrying the result.
Nothing is marked done that is not: entry.json is written only after every file of the
entry was verified, and ``archived`` (with the archive's location, ``archive_uri``) only
after entry.json.

``entry.json`` (written last, atomically): format, entry id, partner id, the entry's raw wire
metadata, name/owner/categories/tags, policy/action/reason, the children (raw wire metadata),
and every file with asset id, owner entry, kind, language, label, size, sha256, and the
asset's raw metadata; plus ``not_archived``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from kretain import archive, rules
from kretain.errors import ArchiveUnavailable, KretainError, StateConflictError
from kretain.kaltura.errors import AssetNotReady, KalturaError, NotFound
from kretain.store import queries, transitions
from kretain.store.db import now as wall_now
from kretain.store.models import AssetRow, EntryRow
from kretain.store.states import Action, AssetBackupState, State
from kretain.workers import download
from kretain.workers.claims import ClaimLoop, ClaimPhase
from kretain.workers.context import RunContext
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
from kretain.workers.lookup import KalturaUnreachable, fetch_batch

__all__ = [
    "ENTRY_JSON_FORMAT",
    "BackupDiskFull",
    "BackupOptions",
    "BackupResult",
    "archive_uri",
    "backup",
]

log = structlog.get_logger("kretain.backup")

ENTRY_JSON_FORMAT = "kretain-entry/1"
# Failures of the archive itself, not of one entry: they stop the stage.
ARCHIVE_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT})


@dataclass(frozen=True)
class BackupOptions:
    concurrency: int = 2  # entries at once
    file_concurrency: int = 3  # files of one entry at once
    bandwidth: float | None = None  # bytes/s for all downloads together; None = no cap
    max_attempts: int = 5  # failed backups before a row waits for `kretain retry`
    file_attempts: int = 4  # tries of one file within a run
    min_free_bytes: int = download.DEFAULT_MIN_FREE_BYTES  # kept free on the archive's disk
    lease_seconds: int = 300
    retry_base_delay: float = 1.0
    retry_max_delay: float = 30.0
    fs: LocalFS | None = None  # download's file-system seam (tests inject ENOSPC)

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
    files_reused: int = 0  # files verified by an earlier run (or found complete on disk)
    files_unavailable: int = 0  # assets that can never be fetched (status ERROR ...)
    bytes_downloaded: int = 0  # bytes received in this run
    bytes_resumed: int = 0  # bytes of .part files reused instead of downloaded again
    retries: int = 0
    stopped: str | None = None  # why the stage stopped early
    problems: list[str] = field(default_factory=list)

    def as_counts(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("problems", "stopped")}


def archive_uri(root: Path) -> str:
    """The archive's location as recorded on each archived row (verify checks it)."""
    return Path(root).resolve().as_uri()


def _probe(root: Path) -> None:
    """Make the root and write, sync and remove a small file: raise ArchiveUnavailable
    (one clear line) when the archive cannot take files at all."""
    marker = root / ".kretain-probe"
    try:
        root.mkdir(parents=True, exist_ok=True)
        marker.write_bytes(b"kretain\n")
        marker.unlink()
    except OSError as exc:
        raise ArchiveUnavailable(
            f"cannot write to the archive {root}: {exc.strerror or exc}; nothing was backed "
            "up and no entry was charged an attempt"
        ) from None


def _archive_failure(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in ARCHIVE_ERRNOS


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Exponential backoff with jitter, never above ``cap`` (attempt counts from 1)."""
    return min(cap, base * 2 ** (attempt - 1)) * (0.5 + rand() / 2)


def _csv(value: str | None) -> list[str]:
    return [p.strip() for p in (value or "").split(",") if p.strip()]


def _assets_changed(entry_id: str, data: Any, stored: Sequence[AssetRow]) -> bool:
    """The entry's (and its children's) assets differ from the sized ones: ids or sizes."""
    fresh = set()
    for owner in [entry_id, *data.children.get(entry_id, [])]:
        for kind, wire in data.by_owner.get(owner, ()):
            try:
                asset = rules.parse_asset(kind, wire, owner=owner)
            except rules.WireValueError:
                return True
            fresh.add((asset.id, asset.size_bytes))
    return fresh != {(a.id, a.size_bytes) for a in stored}


class _EntryFailed(Exception):
    """The entry cannot be archived in this run; the message becomes last_error."""


class _ArchiveBroken(Exception):
    """The archive stopped accepting writes (not this entry's fault): stop the stage."""


class _Archiver:
    """One backup() call: the state shared by its entries and files."""

    def __init__(
        self, ctx: RunContext, root: Path, opts: BackupOptions, result: BackupResult
    ) -> None:
        self.ctx = ctx
        self.root = root
        self.uri = archive_uri(root)
        self.opts = opts
        self.result = result
        self.limiter = RateLimiter(opts.bandwidth) if opts.bandwidth else None
        self.fs = opts.fs or LocalFS()
        # (entry id, asset id) -> the asset and the .part being written (for bytes_done)
        self.active: dict[tuple[str, str], tuple[AssetRow, Path]] = {}
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
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            exc = DiskFull(Path(exc.filename or self.root))
        if isinstance(exc, DiskFull):
            self.disk_full = self.disk_full or exc
        elif self.broken is None:
            self.broken = f"{type(exc).__name__}: {exc}"
        self.stop.set()

    async def record_progress(self) -> None:
        """How far each streaming file got (the heartbeat calls this)."""
        for asset, part in list(self.active.values()):
            try:
                done = part.stat().st_size
            except FileNotFoundError:
                continue
            await queries.update_asset_backup(
                self.ctx.store, asset, bytes_done=done, backup_state=AssetBackupState.PARTIAL
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
        partner_id = row.partner_id
        if partner_id is None:
            partner_id = self.ctx.client.config.partner_id
        directory = archive.entry_dir(self.root, partner_id, row.id)
        assets = await queries.assets_of(self.ctx.store, row.id)
        plan = rules.archive_plan(assets, wall_now())
        for a, _why in plan.skipped:
            if a.backup_state != AssetBackupState.SKIPPED:
                await queries.update_asset_backup(
                    self.ctx.store, a, backup_state=AssetBackupState.SKIPPED
                )
        files, problems = await self._files(directory, plan.fetch)
        if self.stop.is_set() and len(files) + len(problems) < len(plan.fetch):
            return True  # stopped part-way: handed back unchanged
        problems += [why for _a, why in plan.waiting]
        if problems:
            raise _EntryFailed("; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""))
        metadata = entry_metadata(
            row, partner_id, children, files, plan, run_id=self.ctx.run_id, now=wall_now()
        )
        try:
            await asyncio.to_thread(archive.write_entry_json, directory, metadata)
        except OSError as exc:
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
            updates={"archive_uri": self.uri},
            lease_owner=self.ctx.run_id,
        )
        self.result.archived += 1
        log.info("backup.archived", entry_id=row.id, files=len(files))
        return False

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
        elif check.action != str(row.action) or _assets_changed(row.id, data, stored):
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
        self, directory: Path, plans: Sequence[rules.PlannedFile]
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
                    name, size, sha = await self._file(directory, p.asset)
                except DiskFull as exc:
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
                    done.append((p, name, size, sha))

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

    async def _file(self, directory: Path, asset: AssetRow) -> tuple[str, int, str]:
        """One verified file: (name, size, sha256)."""
        name = archive.asset_filename(asset.id, asset.file_ext, asset.kind)
        dest = archive.safe_join(directory, name)
        rel = str(dest.relative_to(self.root.resolve()))
        expected_bytes, expected_kb = rules.expected_size(asset.wire(), asset.size_bytes)
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
        await queries.update_asset_backup(self.ctx.store, asset, archive_path=rel)
        attempt = 0
        while True:
            attempt += 1
            await self._check_room(dest, asset)
            try:
                url = await self.ctx.client.get_asset_url(asset.kind, asset.id)  # type: ignore[arg-type]
            except AssetNotReady as exc:
                raise _EntryFailed(f"{asset.kind} {asset.id} not ready: {exc.code}") from exc
            except NotFound as exc:
                raise _EntryFailed(f"{asset.kind} {asset.id} no longer exists: {exc.code}") from exc
            self.active[asset.entry_id, asset.id] = (asset, part_path(dest))
            try:
                res = await download_to(
                    self.ctx.client.http,
                    url,
                    dest,
                    expected_bytes=expected_bytes,
                    expected_kb=expected_kb,
                    bandwidth=self.limiter,
                    min_free_bytes=self.opts.min_free_bytes,
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
                if attempt >= self.opts.file_attempts:
                    raise
                continue
            except DownloadError as exc:
                await self._record_partial(asset, dest)
                if not is_retryable(exc) or attempt >= self.opts.file_attempts:
                    raise
                self.result.retries += 1
                delay = backoff_delay(
                    attempt, self.opts.retry_base_delay, self.opts.retry_max_delay, self.rand
                )
                if isinstance(exc, DownloadHTTPError) and exc.retry_after:
                    delay = min(self.opts.retry_max_delay, max(delay, exc.retry_after))
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
        needed = max(0, asset.size_bytes - (have or 0)) + max(0, self.opts.min_free_bytes)
        free = await asyncio.to_thread(self.fs.free_bytes, dest.parent)
        if free < needed:
            raise DiskFull(dest, needed=needed, free=free)

    async def _record_partial(self, asset: AssetRow, dest: Path) -> None:
        have = await asyncio.to_thread(_size_of, part_path(dest))
        await queries.update_asset_backup(
            self.ctx.store,
            asset,
            bytes_done=have or 0,
            backup_state=AssetBackupState.PARTIAL if have else AssetBackupState.PENDING,
        )

    async def _record_verified(self, asset: AssetRow, rel: str, size: int, sha: str) -> None:
        await queries.update_asset_backup(
            self.ctx.store,
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
    ctx: RunContext, *, archive_root: Path, options: BackupOptions | None = None
) -> BackupResult:
    """Back up every ``delete_entry`` row in ``sized`` (and retryable ``backup_failed`` rows).

    Raises ArchiveUnavailable before claiming anything when the archive cannot be written,
    BackupDiskFull (or ArchiveUnavailable) after handing every unfinished row back when the
    archive fails part-way. ``ctx.progress`` gets ``backup.entry`` and ``backup.done``.
    """
    opts = options or BackupOptions()
    root = Path(archive_root)
    await asyncio.to_thread(_probe, root)
    result = BackupResult()
    run = _Archiver(ctx, root, opts, result)
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
            f"disk full under {root}: {run.disk_full}. Backup stopped; nothing unfinished was "
            "marked archived. Free some space and run again: partial files resume."
        )
        result.problems.append(result.stopped)
        log.error("backup.stopped", reason=result.stopped)
        raise BackupDiskFull(result.stopped, result)
    if run.broken is not None:
        result.stopped = (
            f"backup stopped: the archive {root} or Kaltura failed ({run.broken}); "
            "unfinished entries were handed back without counting an attempt"
        )
        result.problems.append(result.stopped)
        log.error("backup.stopped", reason=result.stopped)
        raise ArchiveUnavailable(result.stopped)
    run.emit("backup.done")
    ctx.outcome("backup", **result.as_counts())
    return result

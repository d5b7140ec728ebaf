"""Re-check the archive against the state store, and take damaged copies out of ``archived``.

    await verify(store, archive=None | target | path_or_uri, checksums=False, progress=fn)

The archive is an :class:`kretain.archive.ArchiveTarget` (a directory or an S3 bucket
prefix); nothing here knows which. For every ``archived`` entry:
- ``entry.json`` is present, parses, and names this entry;
- every file the backup should have made (kretain.rules.archive_plan) is recorded as verified
  in the store, is listed in entry.json with the same size and sha256, and is in the archive
  (``stat`` of ``assets.archive_path``) with the recorded size; where the store keeps its
  own checksum or the file's sha256 beside it (S3), those must match what the backup
  recorded too (a replaced object is caught without reading it);
- with ``checksums=True`` each file is also read back (``target.sha256``) and compared with
  the stored sha256.

An entry that fails any check moves ``archived -> sized`` (the reason is kept in the move's
event), so it cannot be deleted and the next backup run copies it again. Its damaged files
(wrong size or hash) are removed, its asset rows reset to ``pending``, and its entry.json
removed, so neither the store nor the archive claims a complete copy. Missing files need no
removal. The delete stage runs the same check (:func:`check_archive`, always re-hashing)
right before each delete, and :func:`demote` when it fails.

A wrong archive is the user's mistake, not damage: verify refuses (ArchiveUnavailable,
nothing demoted) when the archive is not there (``check_readable``: no such directory,
bucket, or no permission to list it), when archived rows record another archive
(``archive_uri``, written by the backup), or when not one archived entry is found in it.
A file the store fails to answer for (after its own retries) is not damage either: the
entry is counted ``unchecked`` and left as it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from kretain import archive, rules
from kretain.archive import ArchiveRequestFailed, ArchiveTarget, opened
from kretain.errors import ArchiveUnavailable, StateConflictError
from kretain.store import queries, transitions
from kretain.store.db import Store
from kretain.store.db import now as wall_now
from kretain.store.models import AssetRow, EntryRow
from kretain.store.states import AssetBackupState, State
from kretain.workers.backup import ENTRY_JSON_FORMAT, same_store_checksum

__all__ = ["ArchiveCheck", "VerifyResult", "check_archive", "demote", "verify"]

log = structlog.get_logger("kretain.verify")

Progress = Callable[..., None] | None
PAGE = 500


@dataclass
class VerifyResult:
    """What one verify() call found."""

    checked: int = 0  # archived entries examined
    ok: int = 0
    damaged: int = 0  # moved out of archived
    unchecked: int = 0  # the store failed to answer for a file: left archived, not judged
    files_checked: int = 0
    bytes_hashed: int = 0
    checksums: bool = False
    damaged_entries: dict[str, list[str]] = field(default_factory=dict)  # id -> reasons
    problems: list[str] = field(default_factory=list)

    def as_counts(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("problems", "damaged_entries")}


@dataclass
class ArchiveCheck:
    """What :func:`check_archive` found for one entry."""

    reasons: list[str] = field(default_factory=list)  # empty: the copy is whole
    damaged: list[str] = field(default_factory=list)  # rel paths of files not to be trusted
    files: int = 0
    hashed: int = 0  # bytes read back


def _entry_prefix(
    target: ArchiveTarget, row: EntryRow, assets: list[AssetRow], partner_id: int | None
) -> str | None:
    pid = row.partner_id if row.partner_id is not None else partner_id
    if pid is not None:
        return target.entry_prefix(pid, row.id)
    recorded = [a.archive_path for a in assets if a.archive_path]
    try:
        return (archive.rel_dir(recorded[0]) or None) if recorded else None
    except archive.ArchivePathError:
        return None


async def check_archive(
    target: ArchiveTarget,
    row: EntryRow,
    assets: list[AssetRow],
    partner_id: int | None,
    checksums: bool,
) -> ArchiveCheck:
    """Check one archived entry's copy (see the module docstring). ArchiveRequestFailed (a
    store that does not answer) and ArchiveUnavailable propagate: neither is damage."""
    out = ArchiveCheck()
    prefix = _entry_prefix(target, row, assets, partner_id)
    if prefix is None:
        out.reasons.append("no partner id and no archived files to locate the entry")
        return out
    doc: dict[str, Any] | None = None
    try:
        doc = await target.get_json(f"{prefix}/{archive.ENTRY_JSON}")
        if doc is None:
            out.reasons.append("entry.json missing")
        elif doc.get("entry_id") != row.id or doc.get("format") != ENTRY_JSON_FORMAT:
            out.reasons.append("entry.json names another entry or format")
    except (OSError, ValueError) as exc:
        out.reasons.append(f"entry.json unreadable: {exc}")
    listed: dict[str, dict[str, Any]] = {}
    if doc is not None and isinstance(doc.get("files"), list):
        listed = {str(f.get("asset_id")): f for f in doc["files"] if isinstance(f, dict)}

    plan = rules.archive_plan(assets, wall_now())
    expected = {p.asset.id for p in plan.fetch}
    for a in assets:
        if a.id not in expected:
            continue
        if a.backup_state != AssetBackupState.VERIFIED or not a.archive_path or not a.sha256:
            out.reasons.append(f"{a.kind} {a.id} is not recorded as verified ({a.backup_state})")
            continue
        if doc is not None:
            entry = listed.get(a.id)
            if entry is None:
                out.reasons.append(f"{a.kind} {a.id} is not listed in entry.json")
            elif entry.get("sha256") != a.sha256 or entry.get("size") != a.bytes_done:
                out.reasons.append(f"{a.kind} {a.id}: entry.json disagrees with the store")
        problem = await _check_file(target, a, checksums, out)
        if problem is not None:
            out.reasons.append(f"{a.kind} {a.id}: {problem}")
    for asset_id in sorted(set(listed) - expected):
        out.reasons.append(f"entry.json lists {asset_id}, which the store does not expect")
    return out


async def _check_file(
    target: ArchiveTarget, a: AssetRow, checksums: bool, out: ArchiveCheck
) -> str | None:
    """What is wrong with one recorded file, or None (damaged files go to ``out.damaged``)."""
    rel = a.archive_path or ""
    try:
        stat = await target.stat(rel)
    except archive.ArchivePathError as exc:
        return str(exc)
    out.files += 1
    if stat is None:
        return f"file {rel} missing"
    if stat.size != a.bytes_done:
        out.damaged.append(rel)
        return f"file {rel} has {stat.size} bytes, expected {a.bytes_done}"
    if (stat.sha256 is not None and stat.sha256 != a.sha256) or not same_store_checksum(
        a.store_checksum, stat.store_checksum
    ):
        out.damaged.append(rel)
        return f"file {rel} was replaced (its store checksum differs from the backup's)"
    if checksums:
        try:
            digest = await target.sha256(rel)
        except FileNotFoundError:
            return f"file {rel} missing"
        out.hashed += stat.size
        if digest != a.sha256:
            out.damaged.append(rel)
            return f"file {rel} sha256 mismatch"
    return None


async def verify(
    store: Store,
    *,
    archive: ArchiveTarget | str | Path | None,
    checksums: bool = False,
    progress: Progress = None,
    run_id: int | None = None,
    partner_id: int | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> VerifyResult:
    """Check every archived entry; move damaged ones to ``sized`` (see module docstring).

    ``archive`` None: the archive the rows recorded (opened with ``endpoint_url`` and
    ``region`` when it is on S3). ``partner_id`` locates entries whose row lacks one;
    ``run_id`` goes into the events.
    """
    where = archive if archive is not None else await _recorded_archive(store)
    async with opened(where, endpoint_url=endpoint_url, region=region) as target:
        await _check_target(store, target, partner_id)
        return await _verify(store, target, checksums, progress, run_id, partner_id)


async def _verify(
    store: Store,
    target: ArchiveTarget,
    checksums: bool,
    progress: Progress,
    run_id: int | None,
    partner_id: int | None,
) -> VerifyResult:
    result = VerifyResult(checksums=checksums)
    last_id = ""
    while True:
        rows = await queries.entries_after(store, State.ARCHIVED, last_id, PAGE)
        if not rows:
            break
        last_id = rows[-1].id
        for row in rows:
            assets = await queries.assets_of(store, row.id)
            result.checked += 1
            try:
                found = await check_archive(target, row, assets, partner_id, checksums)
            except ArchiveRequestFailed as exc:
                result.unchecked += 1
                result.problems.append(f"{row.id}: not checked: {exc}")
                log.warning("verify.unchecked", entry_id=row.id, error=str(exc))
                continue
            result.files_checked += found.files
            result.bytes_hashed += found.hashed
            if not found.reasons:
                result.ok += 1
            else:
                await demote(store, target, row, assets, found, partner_id, run_id)
                result.damaged += 1
                result.damaged_entries[row.id] = found.reasons
                result.problems.append(f"{row.id}: {'; '.join(found.reasons[:3])}")
            if progress is not None:
                progress("verify.entry", **result.as_counts())
    if progress is not None:
        progress("verify.done", **result.as_counts())
    log.info("verify finished", **result.as_counts())
    return result


async def _recorded_archive(store: Store) -> str:
    """The one archive the archived rows were backed up to (when none was named)."""
    recorded = sorted(u for u in await queries.archive_uris(store, State.ARCHIVED) if u)
    if len(recorded) == 1:
        return recorded[0]
    if not recorded:
        raise ArchiveUnavailable(
            "no archive named and none recorded: name it with --archive or KRETAIN_ARCHIVE"
        )
    raise ArchiveUnavailable(
        f"archived entries went to {len(recorded)} archives ({', '.join(recorded[:3])}); "
        "name the one to verify with --archive"
    )


async def _check_target(store: Store, target: ArchiveTarget, partner_id: int | None) -> None:
    """Refuse an archive that cannot be the one the backups wrote (see module docstring)."""
    await target.check_readable()
    uri = target.uri
    recorded = await queries.archive_uris(store, State.ARCHIVED)
    others = sorted(u for u in recorded if u is not None and u != uri)
    if others:
        raise ArchiveUnavailable(
            f"the archived entries were backed up to {', '.join(others[:3])}, not {uri}; "
            "name that archive (--archive or KRETAIN_ARCHIVE). Nothing was changed."
        )
    if uri in recorded:
        return
    # Rows archived before the location was recorded: at least one must be found here.
    sample = await queries.entries_after(store, State.ARCHIVED, "", 200)
    for row in sample:
        pid = row.partner_id if row.partner_id is not None else partner_id
        if pid is None:
            continue
        where = f"{target.entry_prefix(pid, row.id)}/{archive.ENTRY_JSON}"
        if await target.stat(where) is not None:
            return
    if sample:
        raise ArchiveUnavailable(
            f"none of the archived entries is under {uri}: is this the archive the backups "
            "were written to? Nothing was changed."
        )


async def demote(
    store: Store,
    target: ArchiveTarget,
    row: EntryRow,
    assets: list[AssetRow],
    found: ArchiveCheck,
    partner_id: int | None,
    run_id: int | None,
    *,
    by: str = "verify",
    reasons: list[str] | None = None,
    lease_owner: int | None = None,
) -> None:
    """Take a damaged copy out of the archive: remove damaged files and entry.json, reset the
    asset rows, move the row to ``sized`` (the next backup copies it again). ``reasons``
    (default: the check's) go into the move's event."""
    reason = f"{by}: " + "; ".join(reasons if reasons is not None else found.reasons)[:900]
    # Files first, then asset rows, then the state: a stop part-way leaves an entry that
    # is still archived but fails the next verify, never a damaged file marked good.
    for rel in found.damaged:
        await target.delete(rel)
    prefix = _entry_prefix(target, row, assets, partner_id)
    if prefix is not None:
        await target.delete(f"{prefix}/{archive.ENTRY_JSON}")
    for a in assets:
        if a.backup_state == AssetBackupState.SKIPPED:
            continue
        gone = a.archive_path is None or await target.stat(a.archive_path) is None
        if gone or a.backup_state != AssetBackupState.VERIFIED:
            await queries.update_asset_backup(
                store,
                a,
                bytes_done=0,
                sha256=None,
                store_checksum=None,
                verified_at=None,
                backup_state=AssetBackupState.PENDING,
            )
    try:
        await transitions.move(
            store,
            row.id,
            [State.ARCHIVED, State.DELETE_FAILED],
            State.SIZED,
            run_id=run_id,
            reason=reason,
            lease_owner=lease_owner,
        )
    except StateConflictError as exc:  # moved by someone else meanwhile: leave it
        log.warning("verify.conflict", entry_id=row.id, error=str(exc))
        return
    reasons_shown = reasons if reasons is not None else found.reasons
    log.warning("verify.damaged", entry_id=row.id, reasons=json.dumps(reasons_shown[:5]))

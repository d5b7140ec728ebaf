"""Re-check the archive against the state store, and take damaged copies out of ``archived``.

    await verify(store, archive_root=Path, checksums=False, progress=fn) -> VerifyResult

For every ``archived`` entry:
- ``entry.json`` is present, parses, and names this entry;
- every file the backup should have made (kretain.workers.backup.plan_entry) is recorded as
  verified in the store, is listed in entry.json with the same size and sha256, and exists
  at ``<archive_root>/<assets.archive_path>`` with the recorded size;
- with ``checksums=True`` each file is also re-hashed and compared with the stored sha256.

An entry that fails any check moves ``archived -> sized`` (the reason is kept in the move's
event), so it cannot be deleted and the next backup run copies it again. Its damaged files
(wrong size or hash) are removed, its asset rows reset to ``pending``, and its entry.json
removed, so neither the store nor the archive claims a complete copy. Missing files need no
removal.

A wrong archive root is the user's mistake, not damage: verify refuses (ArchiveUnavailable,
nothing demoted) when the root does not exist, when archived rows record another archive
(``archive_uri``, written by the backup), or when not one archived entry is found under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import structlog

from kretain import archive, rules
from kretain.errors import ArchiveUnavailable, StateConflictError
from kretain.store import queries, transitions
from kretain.store.db import Store
from kretain.store.db import now as wall_now
from kretain.store.models import AssetRow, EntryRow
from kretain.store.states import AssetBackupState, State
from kretain.workers.backup import ENTRY_JSON_FORMAT, archive_uri, sha256_file

__all__ = ["VerifyResult", "check_archive", "demote", "verify"]

log = structlog.get_logger("kretain.verify")

Progress = Callable[..., None] | None
PAGE = 500


@dataclass
class VerifyResult:
    """What one verify() call found."""

    checked: int = 0  # archived entries examined
    ok: int = 0
    damaged: int = 0  # moved out of archived
    files_checked: int = 0
    bytes_hashed: int = 0
    checksums: bool = False
    damaged_entries: dict[str, list[str]] = field(default_factory=dict)  # id -> reasons
    problems: list[str] = field(default_factory=list)

    def as_counts(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("problems", "damaged_entries")}


def _load_entry_json(directory: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return archive.read_entry_json(directory), None
    except FileNotFoundError:
        return None, "entry.json missing"
    except (OSError, ValueError) as exc:
        return None, f"entry.json unreadable: {exc}"


def check_archive(
    root: Path, row: EntryRow, assets: list[AssetRow], partner_id: int | None, checksums: bool
) -> tuple[list[str], list[Path], int, int]:
    """(reasons, damaged file paths, files checked, bytes hashed). Runs in a thread."""
    reasons: list[str] = []
    damaged: list[Path] = []
    files = hashed = 0
    pid = row.partner_id if row.partner_id is not None else partner_id
    recorded = [a for a in assets if a.archive_path]
    if pid is not None:
        directory = archive.entry_dir(root, pid, row.id)
    elif recorded:
        directory = archive.safe_join(root, recorded[0].archive_path or "").parent
    else:
        return ["no partner id and no archived files to locate the entry"], [], 0, 0
    doc, problem = _load_entry_json(directory)
    if problem:
        reasons.append(problem)
    elif doc is not None and (
        doc.get("entry_id") != row.id or doc.get("format") != ENTRY_JSON_FORMAT
    ):
        reasons.append("entry.json names another entry or format")
    listed: dict[str, dict[str, Any]] = {}
    if doc is not None and isinstance(doc.get("files"), list):
        listed = {str(f.get("asset_id")): f for f in doc["files"] if isinstance(f, dict)}

    plan = rules.archive_plan(assets, wall_now())
    expected = {p.asset.id for p in plan.fetch}
    for a in assets:
        if a.id not in expected:
            continue
        if a.backup_state != AssetBackupState.VERIFIED or not a.archive_path or not a.sha256:
            reasons.append(f"{a.kind} {a.id} is not recorded as verified ({a.backup_state})")
            continue
        if doc is not None:
            entry = listed.get(a.id)
            if entry is None:
                reasons.append(f"{a.kind} {a.id} is not listed in entry.json")
            elif entry.get("sha256") != a.sha256 or entry.get("size") != a.bytes_done:
                reasons.append(f"{a.kind} {a.id}: entry.json disagrees with the store")
        try:
            path = archive.safe_join(root, a.archive_path)
        except archive.ArchivePathError as exc:
            reasons.append(f"{a.kind} {a.id}: {exc}")
            continue
        files += 1
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            reasons.append(f"{a.kind} {a.id}: file {a.archive_path} missing")
            continue
        if size != a.bytes_done:
            reasons.append(
                f"{a.kind} {a.id}: file {a.archive_path} has {size} bytes, expected {a.bytes_done}"
            )
            damaged.append(path)
            continue
        if checksums:
            hashed += size
            if sha256_file(path) != a.sha256:
                reasons.append(f"{a.kind} {a.id}: file {a.archive_path} sha256 mismatch")
                damaged.append(path)
    for asset_id in sorted(set(listed) - expected):
        reasons.append(f"entry.json lists {asset_id}, which the store does not expect")
    return reasons, damaged, files, hashed


def _quarantine(root: Path, row: EntryRow, damaged: list[Path], pid: int | None) -> None:
    """Remove damaged files and the entry.json that vouched for them."""
    for path in damaged:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    if pid is not None:
        with contextlib.suppress(FileNotFoundError, archive.ArchivePathError):
            (archive.entry_dir(root, pid, row.id) / archive.ENTRY_JSON).unlink()


async def verify(
    store: Store,
    *,
    archive_root: Path | None,
    checksums: bool = False,
    progress: Progress = None,
    run_id: int | None = None,
    partner_id: int | None = None,
) -> VerifyResult:
    """Check every archived entry; move damaged ones to ``sized`` (see module docstring).

    ``archive_root`` None: the archive the rows recorded. ``partner_id`` locates entries
    whose row lacks one; ``run_id`` goes into the events.
    """
    if archive_root is None:
        archive_root = await _recorded_root(store)
    root = Path(archive_root).resolve()
    await _check_root(store, root, partner_id)
    result = VerifyResult(checksums=checksums)
    last_id = ""
    while True:
        rows = await queries.entries_after(store, State.ARCHIVED, last_id, PAGE)
        if not rows:
            break
        last_id = rows[-1].id
        for row in rows:
            assets = await queries.assets_of(store, row.id)
            reasons, damaged, files, hashed = await asyncio.to_thread(
                check_archive, root, row, assets, partner_id, checksums
            )
            result.checked += 1
            result.files_checked += files
            result.bytes_hashed += hashed
            if not reasons:
                result.ok += 1
            else:
                await demote(store, root, row, assets, reasons, damaged, partner_id, run_id)
                result.damaged += 1
                result.damaged_entries[row.id] = reasons
                result.problems.append(f"{row.id}: {'; '.join(reasons[:3])}")
            if progress is not None:
                progress("verify.entry", **result.as_counts())
    if progress is not None:
        progress("verify.done", **result.as_counts())
    log.info("verify finished", **result.as_counts())
    return result


async def _recorded_root(store: Store) -> Path:
    """The one archive the archived rows were backed up to (when none was named)."""
    recorded = sorted(u for u in await queries.archive_uris(store, State.ARCHIVED) if u)
    local = [u for u in recorded if u.startswith("file://")]
    if len(local) == 1 and len(recorded) == 1:
        return Path(unquote(urlparse(local[0]).path))
    if not recorded:
        raise ArchiveUnavailable(
            "no archive named and none recorded: name it with --archive or KRETAIN_ARCHIVE"
        )
    raise ArchiveUnavailable(
        f"archived entries went to {len(recorded)} archives ({', '.join(recorded[:3])}); "
        "name the one to verify with --archive"
    )


async def _check_root(store: Store, root: Path, partner_id: int | None) -> None:
    """Refuse a root that cannot be the archive the backups wrote (see module docstring)."""
    if not root.is_dir():
        raise ArchiveUnavailable(f"archive {root} does not exist (or is not a directory)")
    uri = archive_uri(root)
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
        if pid is not None and (archive.entry_dir(root, pid, row.id) / archive.ENTRY_JSON).exists():
            return
    if sample:
        raise ArchiveUnavailable(
            f"none of the archived entries is under {root}: is this the archive the backups "
            "were written to? Nothing was changed."
        )


async def demote(
    store: Store,
    root: Path,
    row: EntryRow,
    assets: list[AssetRow],
    reasons: list[str],
    damaged: list[Path],
    partner_id: int | None,
    run_id: int | None,
    *,
    by: str = "verify",
    lease_owner: int | None = None,
) -> None:
    """Take a damaged copy out of the archive: remove damaged files and entry.json, reset the
    asset rows, move the row to ``sized`` (the next backup copies it again)."""
    reason = f"{by}: " + "; ".join(reasons)[:900]
    pid = row.partner_id if row.partner_id is not None else partner_id
    # Files first, then asset rows, then the state: a crash part-way leaves an entry that
    # is still archived but fails the next verify, never a damaged file marked good.
    await asyncio.to_thread(_quarantine, root, row, damaged, pid)
    for a in assets:
        if a.backup_state == AssetBackupState.SKIPPED:
            continue
        path = archive.safe_join(root, a.archive_path) if a.archive_path else None
        gone = path is None or not await asyncio.to_thread(path.exists)
        if gone or a.backup_state != AssetBackupState.VERIFIED:
            await queries.update_asset_backup(
                store,
                a,
                bytes_done=0,
                sha256=None,
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
    log.warning("verify.damaged", entry_id=row.id, reasons=json.dumps(reasons[:5]))

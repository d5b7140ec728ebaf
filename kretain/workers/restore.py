"""kretain restore: put back what a retention run removed.

    plans = await plan_restore(store, client, rows, options)        # the dry run: reads only
    result = await restore(ctx, rows, options=RestoreOptions())      # --yes

Rows are claimed by the shared claim loop, ``deleted | recycled | stripped -> restoring``
(only the rows asked for), and end:

- recycled, still in Kaltura's recycle bin: ``baseEntry.restoreRecycled``; the row goes
  back to ``kept`` ("restored from the recycle bin") and the entry is exempted.
- deleted (or recycled but already purged from the bin): re-created from the archive. The
  archive copy is checked first (entry.json, every file's size and sha256 against entry.json
  and the database); a copy that fails is refused and nothing is made in Kaltura. Then
  ``media.add`` (rules.entry_for_add), the source through an upload token (chunked, see
  below) and ``media.addContent``; captions, attachments and thumbnails (``add`` +
  ``setContent``, the default thumbnail marked with ``thumbAsset.setAsDefault``); each
  multi-stream child the same way as a child of the new entry (``parentEntryId``), or as a
  separate entry when Kaltura refuses the link (reported). The row ends ``restored`` with
  ``new_entry_id``, and the new entry is exempted.
- stripped: ``flavorAsset.convert`` for every flavor the delete stage removed
  (``assets.removed_at``, by ``flavor_params_id``); the marks are cleared, the row goes
  back to ``kept`` ("flavors rebuilt from the source") and the entry is exempted.

A restore that fails or is refused hands the row back to the state it came from (no
timestamp rewritten), with the reason in ``restores.last_error`` and an event. Rows that are
in no restorable state are left alone: a second restore of an entry does nothing.

Exactly once. Every call that changes Kaltura goes through ``_Restorer.changing``: an
``intent`` event is committed before it is sent, its outcome after. A lost answer (timeout,
a 5xx, a dropped connection, an internal error) is never re-sent blindly: Kaltura is asked
whether the call took effect (the entry made by media.add is found by the referenceId it
was given, an upload token by its unique file name, a chunk by the token's
``uploadedFileSize``, content by the entry's status, an asset by its fields on the new
entry); found means done, not found means it may be sent again. A run that starts after a
crash does the same for every intent without an outcome before doing anything else, and
every object made so far is in ``restore_objects`` (new ids, upload tokens, steps), so the
restore continues where it stopped. A failed lookup fails the entry (closed).

Uploads. A file is sent in chunks of ``chunk_size`` at fixed offsets (resumeAt), each read
from the archive while it is sent (constant memory) and hashed on the way. Before anything
is made, the whole file is hashed once, which also gives each chunk's expected sha256; a
chunk whose bytes as sent differ (the file changed in between) stops the upload: the token
is deleted and nothing is attached. Each chunk's intent carries its expected sha256, so a
restore resuming a token (``uploadToken.get`` -> ``uploadedFileSize``) checks that every
chunk already on the server was announced with the archive's bytes before it continues
with the rest; a token it cannot vouch for is deleted and the file sent again.

The archive is read through ONE seam, :func:`_archive_files`: the ArchiveTarget's
``get_json`` (entry.json), ``stat`` (each file's size) and ``read(rel, start=...)`` (its
bytes from an offset, in constant memory). The target is opened from the row's recorded
``archive_uri`` (a directory or s3://bucket/prefix, with the S3 endpoint and region
settings), or from ``--archive`` for a moved archive; each archive once per restore. An
archive that cannot be read at all (ArchiveUnavailable: missing bucket, refused
credentials) stops the restore and charges no entry; a store that fails one request fails
that entry for this run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import structlog

from kretain import archive, rules
from kretain.archive import ArchiveTarget, DownloadError, open_target
from kretain.errors import ConfigError, StateConflictError, StoreError
from kretain.kaltura.client import KalturaClient
from kretain.kaltura.errors import (
    ApiError,
    KalturaError,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
)
from kretain.kaltura.transport import ByteSource, FileChanged, FilePart
from kretain.store import queries, transitions
from kretain.store.db import Store
from kretain.store.db import now as wall_now
from kretain.store.models import AssetRow, EntryRow
from kretain.store.states import State
from kretain.workers.backup import ENTRY_JSON_FORMAT
from kretain.workers.claims import ClaimLoop, ClaimPhase
from kretain.workers.context import RunContext
from kretain.workers.download import RateLimiter
from kretain.workers.ratelimit import WindowLimiter

__all__ = [
    "CHUNK_SIZE",
    "EntryOutcome",
    "RestoreOptions",
    "RestoreReport",
    "RestoreResult",
    "Selection",
    "plan_restore",
    "restore",
    "run_restore",
    "select_rows",
]

log = structlog.get_logger("kretain.restore")

T = TypeVar("T")

CHUNK_SIZE = 16 << 20  # bytes per uploadToken.upload
LOST_ANSWER_RESENDS = 2  # a lost call Kaltura shows no effect of is sent again this often
BLOCKED_RETRIES = 8  # ACTION_BLOCKED answers one call may get before the entry fails
RECOGNITION_SLACK = 900  # seconds of clock difference allowed when finding what a call made
# A strip stopped part-way, then the entry was played or exempted: the row is kept or exempt
# with flavors removed (assets.removed_at). A restore that names it converts them again.
PARTLY_STRIPPED_STATES = (State.KEPT, State.EXEMPT)
FLAVORS_BACK_STATES = (State.STRIPPED, *PARTLY_STRIPPED_STATES)  # restored by flavorAsset.convert
CLAIMED_STATES = (*queries.RESTORABLE_STATES, *PARTLY_STRIPPED_STATES)
# KalturaUploadTokenStatus and asset statuses the restore reads.
TOKEN_PENDING, TOKEN_PARTIAL, TOKEN_FULL, TOKEN_CLOSED = 0, 1, 2, 3
ASSET_QUEUED, ASSET_READY, ASSET_IMPORTING = 0, 2, 7
# Flavor statuses that mean "there, or being made": a convert need not be sent again.
_FLAVOR_ALIVE = frozenset({0, 1, 2, 6, 7, 8, 9})
# Kaltura's refusals of a child link: the child is then restored as a separate entry.
_CHILD_LINK_REFUSED = frozenset(
    {
        "PARENT_ENTRY_ID_NOT_FOUND",
        "ASSIGNING_INFO_TO_ENTRY_WITH_PARENT_IS_FORBIDDEN",
        "PROPERTY_VALIDATION_NOT_UPDATABLE",
    }
)
_ASSET_SERVICE = {
    "caption": "caption_captionasset",
    "attachment": "attachment_attachmentasset",
    "thumb": "thumbasset",
}


@dataclass(frozen=True)
class RestoreOptions:
    rate: int = 35  # changing calls per action in any window (like the delete stage)
    window: float = 10.0
    chunk_size: int = CHUNK_SIZE
    bandwidth: float | None = None  # upload bytes/s over all files; None = no cap
    concurrency: int = 2  # entries at once
    lease_seconds: int = 300
    archive: str | Path | None = None  # read the archive here instead of the recorded one
    s3_endpoint_url: str | None = None  # for an archive on an S3-compatible store
    s3_region: str | None = None

    def __post_init__(self) -> None:
        if self.rate < 1 or self.window <= 0 or self.chunk_size < 1 or self.concurrency < 1:
            raise ValueError("rate, chunk_size and concurrency must be >= 1, window > 0")


@dataclass(frozen=True)
class EntryOutcome:
    """What happened to one entry (or would, in a dry run)."""

    entry_id: str
    state: str  # the row's state before
    outcome: str  # restored | from_bin | rebuilt | refused | failed | nothing | would_*
    detail: str
    new_entry_id: str | None = None


@dataclass
class RestoreResult:
    claimed: int = 0
    from_bin: int = 0  # recycled entries brought back from the recycle bin
    recreated: int = 0  # deleted entries re-created from the archive
    rebuilt: int = 0  # stripped entries whose flavors were converted again
    refused: int = 0  # the archive copy (or the entry) does not allow a restore
    failed: int = 0  # Kaltura or the archive failed; run again
    children: int = 0  # multi-stream children re-created
    children_separate: int = 0  # ... as separate entries (Kaltura refused the link)
    files: int = 0  # files uploaded and attached
    flavors: int = 0  # flavors converted again
    bytes_uploaded: int = 0  # bytes sent in this run
    bytes_resumed: int = 0  # bytes an earlier run had uploaded already
    calls: int = 0  # calls that changed Kaltura
    outcomes: list[EntryOutcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_counts(self) -> dict[str, int]:
        return {
            k: v for k, v in self.__dict__.items() if isinstance(v, int) and not isinstance(v, bool)
        }


class _Refused(Exception):
    """The entry cannot be restored as things are (archive copy missing or damaged, an entry
    type Kaltura cannot re-create, ...): nothing more is made in Kaltura."""


class _Failed(Exception):
    """This run could not finish the entry; the next one continues."""


# ---- the archive seam -------------------------------------------------------------------


@dataclass(frozen=True)
class ArchivedFile:
    location: str  # for messages
    size: int | None  # bytes stored now; None when the file is missing
    open: ByteSource  # the file's bytes from an offset, in blocks


@dataclass(frozen=True)
class ArchivedEntry:
    location: str
    doc: dict[str, Any] | None
    problem: str | None  # why doc is None
    files: dict[str, ArchivedFile]  # by the file names entry.json lists


class _Archives:
    """The archives one restore reads, each opened once (S3: one client), closed at the end."""

    def __init__(self, opts: RestoreOptions) -> None:
        self.opts = opts
        self.targets: dict[str, ArchiveTarget] = {}

    def of(self, row: EntryRow) -> ArchiveTarget:
        """The entry's archive: ``--archive``, else the one its backup went to. Raises
        _Refused when there is none (or it cannot be named as a target)."""
        where = self.opts.archive if self.opts.archive is not None else row.archive_uri
        if not where:
            raise _Refused("no archive copy is recorded for it (it was never backed up)")
        key = str(where)
        if key not in self.targets:
            try:
                self.targets[key] = open_target(
                    where, endpoint_url=self.opts.s3_endpoint_url, region=self.opts.s3_region
                )
            except ConfigError as exc:
                raise _Refused(f"its archive cannot be opened: {exc}") from None
        return self.targets[key]

    async def aclose(self) -> None:
        targets, self.targets = list(self.targets.values()), {}
        for target in targets:
            await target.aclose()


async def _archive_files(target: ArchiveTarget, row: EntryRow, partner_id: int) -> ArchivedEntry:
    """THE seam to the archive: the entry's entry.json (get_json), and for each file it lists,
    its size now (stat) and its bytes from an offset (read)."""
    try:
        prefix = target.entry_prefix(partner_id, row.id)
    except archive.ArchivePathError as exc:
        return ArchivedEntry(target.uri, None, f"unusable archive path: {exc}", {})
    location = f"{target.uri}/{prefix}"
    try:
        doc = await target.get_json(f"{prefix}/{archive.ENTRY_JSON}")
    except (OSError, ValueError) as exc:
        return ArchivedEntry(location, None, f"entry.json in {location} is unreadable: {exc}", {})
    if doc is None:
        return ArchivedEntry(location, None, f"entry.json is missing in {location}", {})
    files: dict[str, ArchivedFile] = {}
    for item in doc.get("files") or []:
        name = item.get("file") if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue
        rel = f"{prefix}/{name}"
        try:
            stat = await target.stat(archive.check_rel(rel))
        except archive.ArchivePathError:
            continue
        files[name] = ArchivedFile(
            f"{target.uri}/{rel}", stat.size if stat is not None else None, _reader(target, rel)
        )
    return ArchivedEntry(location, doc, None, files)


def _reader(target: ArchiveTarget, rel: str) -> ByteSource:
    def read(start: int) -> AsyncIterator[bytes]:
        return target.read(rel, start=start)

    return read


@dataclass(frozen=True)
class _Digests:
    """A file's sha256 and the sha256 of each chunk at multiples of ``chunk_size``."""

    sha256: str
    size: int
    chunk_size: int
    chunks: tuple[str, ...]


async def _digests(stored: ArchivedFile, chunk_size: int) -> _Digests:
    """Hash the whole file and each chunk in one pass over it."""
    whole = hashlib.sha256()
    piece = hashlib.sha256()
    in_piece = 0
    size = 0
    chunks: list[str] = []
    reader = stored.open(0)
    try:
        async for block in reader:
            view = memoryview(block)
            while view:
                take = min(len(view), chunk_size - in_piece)
                part = view[:take]
                whole.update(part)
                piece.update(part)
                in_piece += take
                size += take
                view = view[take:]
                if in_piece == chunk_size:
                    chunks.append(piece.hexdigest())
                    piece, in_piece = hashlib.sha256(), 0
    finally:
        with contextlib.suppress(Exception):
            await reader.aclose()  # type: ignore[attr-defined]
    if in_piece or not chunks:
        chunks.append(piece.hexdigest())
    return _Digests(whole.hexdigest(), size, chunk_size, tuple(chunks))


# ---- the restore ------------------------------------------------------------------------


class _Restorer:
    """One restore() call: what its entries share (limits, counters)."""

    def __init__(self, ctx: RunContext, opts: RestoreOptions, result: RestoreResult) -> None:
        self.ctx = ctx
        self.store: Store = ctx.store
        self.client: KalturaClient = ctx.client
        self.opts = opts
        self.result = result
        self.limiters: dict[str, WindowLimiter] = {}
        self.bandwidth = RateLimiter(opts.bandwidth) if opts.bandwidth else None
        self.pending: dict[str, set[tuple[str, str | None]]] = {}
        self.archives = _Archives(opts)

    def emit(self, event: str, **extra: Any) -> None:
        self.ctx.emit(event, **self.result.as_counts(), **extra)

    def limiter(self, call: str) -> WindowLimiter:
        if call not in self.limiters:
            self.limiters[call] = WindowLimiter(self.opts.rate, self.opts.window)
        return self.limiters[call]

    # ---- exactly once ----------------------------------------------------------------
    async def changing(
        self,
        row: EntryRow,
        call: str,
        asset_id: str | None,
        send: Callable[[], Awaitable[T]],
        check: Callable[[], Awaitable[T | None]],
        *,
        detail: str | None = None,
        made: Callable[[T], str | None] = lambda _: None,
        check_first: bool = False,
    ) -> T:
        """Make one change in Kaltura exactly once (see the module docstring). ``check``
        asks Kaltura whether the call took effect: its result, or None when it did not. It
        runs before sending when an interrupted run's intent is open, or ``check_first``
        (a call whose effect is cheap to see: then nothing is sent when it is there)."""
        store, run_id = self.store, self.ctx.run_id
        key = (call, asset_id)
        pending = self.pending.setdefault(row.id, set())
        if key in pending or check_first:
            found = await check()
            was_pending = key in pending
            pending.discard(key)
            if found is not None:
                if was_pending:
                    await transitions.record_api_event(
                        store, run_id=run_id, call=call, outcome="ok", entry_id=row.id,
                        asset_id=asset_id,
                        detail=_joined("done before an interruption", made(found)),
                    )  # fmt: skip
                return found
            if was_pending:
                await transitions.record_api_event(
                    store, run_id=run_id, call=call, outcome="not_applied", entry_id=row.id,
                    asset_id=asset_id, detail="sent before an interruption; no effect in Kaltura",
                )  # fmt: skip
        lost = blocked = 0
        while True:
            limiter = self.limiter(call)
            try:
                async with limiter.slot():
                    await transitions.record_intent(
                        store, run_id=run_id, call=call, entry_id=row.id, asset_id=asset_id,
                        detail=detail,
                    )  # fmt: skip
                    self.result.calls += 1
                    result = await send()
            except RateLimited:
                blocked += 1
                await transitions.record_api_event(
                    store, run_id=run_id, call=call, outcome="ACTION_BLOCKED", entry_id=row.id,
                    asset_id=asset_id,
                )  # fmt: skip
                if blocked > BLOCKED_RETRIES:
                    raise _Failed(f"{call} kept being blocked (ACTION_BLOCKED)") from None
                await asyncio.sleep(limiter.blocked())
                continue
            except (TransportError, ServerError, FileChanged) as exc:
                # The answer is lost: the change may or may not have been made. Ask.
                found = await check()
                if found is not None:
                    await transitions.record_api_event(
                        store, run_id=run_id, call=call, outcome="ok", entry_id=row.id,
                        asset_id=asset_id, detail=_joined("answer lost; found in Kaltura",
                                                          made(found)),
                    )  # fmt: skip
                    return found
                await transitions.record_api_event(
                    store, run_id=run_id, call=call, outcome="not_applied", entry_id=row.id,
                    asset_id=asset_id, detail=f"answer lost ({type(exc).__name__}); no effect",
                )  # fmt: skip
                lost += 1
                if lost > LOST_ANSWER_RESENDS or isinstance(exc, FileChanged):
                    raise
                continue
            except ApiError as exc:
                await transitions.record_api_event(
                    store, run_id=run_id, call=call, outcome=exc.code, entry_id=row.id,
                    asset_id=asset_id, detail=exc.message[:300] or None,
                )  # fmt: skip
                raise
            await transitions.record_api_event(
                store, run_id=run_id, call=call, outcome="ok", entry_id=row.id,
                asset_id=asset_id, detail=made(result),
            )  # fmt: skip
            return result

    # ---- one entry -------------------------------------------------------------------
    async def entry(self, row: EntryRow) -> bool:
        """Restore one leased row (in ``restoring``); it ends restored / kept, or (True)
        stays leased until the claim loop hands it back to where it came from, with the
        reason recorded (so this run does not claim it again)."""
        origin = row.lease_from_state or row.state
        self.pending[row.id] = set(
            (call, asset)
            for call, asset in (await transitions.unresolved_intents(self.store, [row.id])).get(
                row.id, []
            )
        )
        try:
            if origin == State.RECYCLED:
                outcome = await self._from_bin(row)
            elif origin == State.DELETED:
                outcome = await self._from_archive(row)
            elif origin in FLAVORS_BACK_STATES:
                outcome = await self._rebuild_flavors(row)
            else:  # pragma: no cover - the claim takes only the three states
                raise _Refused(f"state {origin} has nothing to restore")
        except _Refused as exc:
            self.result.refused += 1
            await self._give_back(row, origin, "refused", str(exc))
            return True
        except (
            _Failed,
            KalturaError,
            DownloadError,
            OSError,
            rules.WireValueError,
            ValueError,
        ) as exc:
            self.result.failed += 1
            await self._give_back(row, origin, "failed", f"{type(exc).__name__}: {exc}")
            return True
        except StateConflictError as exc:  # the lease was taken over: leave the row alone
            self.result.problems.append(f"{row.id}: {exc}")
        else:
            self.result.outcomes.append(outcome)
            log.info("restore.done", entry_id=row.id, outcome=outcome.outcome)
        finally:
            self.pending.pop(row.id, None)
            self.emit("restore.entry", entry_id=row.id)
        return False

    async def _give_back(self, row: EntryRow, origin: State, outcome: str, why: str) -> None:
        why = why[:1000]
        self.result.outcomes.append(EntryOutcome(row.id, str(origin), outcome, why))
        self.result.problems.append(f"{row.id}: restore {outcome}: {why}")
        log.warning("restore." + outcome, entry_id=row.id, reason=why)
        with contextlib.suppress(StoreError):
            await queries.fail_restore(self.store, row.id, why)
        await transitions.record_api_event(
            self.store, run_id=self.ctx.run_id, call="restore", outcome=outcome,
            entry_id=row.id, detail=why,
        )  # fmt: skip

    async def _finish(
        self,
        row: EntryRow,
        to: State,
        reason: str,
        exempt: dict[str, tuple[str, str | None]],
        updates: dict[str, Any],
    ) -> None:
        """The exemption(s) and the row's move in ONE transaction: a crash cannot leave a
        restored entry without its exemption (it would be deleted again)."""
        async with self.store.transaction():
            await queries.add_exemptions(self.store, exempt, run_id=self.ctx.run_id)
            await transitions.move(
                self.store, row.id, State.RESTORING, to, run_id=self.ctx.run_id,
                reason=reason, updates={"reason": reason, **updates},
                lease_owner=self.ctx.run_id,
            )  # fmt: skip
            await queries.finish_restore(self.store, row.id)

    # ---- recycled: out of the recycle bin -----------------------------------------------
    async def _from_bin(self, row: EntryRow) -> EntryOutcome:
        await queries.start_restore(self.store, row.id, "recycle_bin", run_id=self.ctx.run_id)
        found = (await self.client.get_entries([row.id])).get(row.id)
        if found is None:
            # Purged from the bin (Kaltura deleted it): the archive is what is left.
            await transitions.record_api_event(
                self.store, run_id=self.ctx.run_id, call="baseentry.list", outcome="not_found",
                entry_id=row.id, detail="no longer in the recycle bin: restoring from the archive",
            )  # fmt: skip
            return await self._from_archive(row)
        if rules.in_recycle_bin(found) or ("baseentry.restorerecycled", None) in self.pending.get(
            row.id, set()
        ):

            async def out_of_bin() -> dict[str, Any] | None:
                now = (await self.client.get_entries([row.id])).get(row.id)
                return now if now is not None and not rules.in_recycle_bin(now) else None

            await self.changing(
                row,
                "baseentry.restorerecycled",
                None,
                send=lambda: self.client.restore_recycled(row.id),
                check=out_of_bin,
            )
        else:
            await transitions.record_api_event(
                self.store, run_id=self.ctx.run_id, call="baseentry.list", outcome="not_recycled",
                entry_id=row.id, detail="already out of the recycle bin",
            )  # fmt: skip
        reason = "restored from the recycle bin"
        # Out of the bin, the entry is no longer removed: recycled_at goes with purge_at. A
        # row deleted later with recycled_at still set would be reported as recycled first
        # (its bin emptied), on the day of this recycle (kretain.reports.report_queries).
        await self._finish(
            row,
            State.KEPT,
            reason,
            {row.id: (reason, None)},
            {"purge_at": None, "recycled_at": None, "action": None,
             "exempt_by": rules.RESTORED_EXEMPTION},
        )  # fmt: skip
        self.result.from_bin += 1
        return EntryOutcome(row.id, str(State.RECYCLED), "from_bin", reason)

    # ---- stripped: flavors converted again ------------------------------------------------
    async def _rebuild_flavors(self, row: EntryRow) -> EntryOutcome:
        await queries.start_restore(self.store, row.id, "flavors", run_id=self.ctx.run_id)
        assets = await queries.assets_of(self.store, row.id)
        removed = [a for a in assets if a.kind == "flavor" and a.removed_at is not None]
        if not removed:
            raise _Refused(
                "no flavor is recorded as removed (assets.removed_at): nothing to rebuild"
            )
        unknown = [a.id for a in removed if a.flavor_params_id is None]
        if unknown:
            raise _Refused(f"removed flavors without a flavor params id: {', '.join(unknown)}")
        owners = sorted({a.owner for a in removed})
        live = await self.client.get_entries(owners)
        missing = [o for o in owners if o not in live]
        if missing:
            raise _Refused(f"{', '.join(missing)} no longer in Kaltura: nothing to convert from")
        groups: dict[tuple[str, int], list[str]] = {}
        for a in removed:
            groups.setdefault((a.owner, int(a.flavor_params_id or 0)), []).append(a.id)
        for (owner, params), ids in sorted(groups.items()):

            async def made(owner: str = owner, params: int = params) -> bool | None:
                flavors = await self._flavors_of(owner)
                alive = [f for f in flavors if f.flavor_params_id == params]
                return True if any(_int(f.status) in _FLAVOR_ALIVE for f in alive) else None

            await self.changing(
                row,
                "flavorasset.convert",
                ids[0],
                send=lambda owner=owner, params=params: self._convert(owner, params),
                check=made,
                detail=json.dumps({"entry": owner, "flavor_params_id": params}),
                check_first=True,  # a flavor that is there (or being made) is not made again
            )
            self.result.flavors += 1
            await queries.mark_removed(self.store, row.id, ids, None)
        reason = f"{len(groups)} flavors rebuilt from the source (flavorAsset.convert)"
        await self._finish(
            row,
            State.KEPT,
            reason,
            {row.id: ("flavors rebuilt by kretain restore", None)},
            {"action": None, "exempt_by": rules.RESTORED_EXEMPTION},
        )
        self.result.rebuilt += 1
        return EntryOutcome(row.id, str(row.lease_from_state or row.state), "rebuilt", reason)

    async def _convert(self, owner: str, params: int) -> bool:
        await self.client.convert_flavor(owner, params)
        return True

    async def _flavors_of(self, owner: str) -> list[rules.Asset]:
        page = await self.client.list_assets("flavor", [owner], 1)
        return [
            rules.parse_asset("flavor", f, owner=owner)
            for f in page.objects
            if f.get("entryId") == owner
        ]

    # ---- deleted: re-created from the archive -------------------------------------------
    async def _from_archive(self, row: EntryRow) -> EntryOutcome:
        await queries.start_restore(self.store, row.id, "archive", run_id=self.ctx.run_id)
        job = await _checked_copy(
            self.store, row, self.opts, self.archives, self.ctx.client.config.partner_id
        )
        progress = await queries.get_restore(self.store, row.id)
        started = progress.started_at if progress is not None else wall_now()
        work = _Job(self, row, job, started)
        new_id = await work.run()
        reason = f"re-created from the archive as {new_id}"
        exempt = {new_id: (f"restored from the archive of {row.id}", row.id)}
        exempt.update({n: (f"restored from the archive of {o}", o) for o, n in work.separate})
        # A recycled entry gets here once Kaltura has emptied its bin: the purge date the
        # delete stage recorded is cleared, as when an entry comes out of the bin (export
        # would show it as the date until which the entry can come back from the bin).
        updates = {"new_entry_id": new_id, "purge_at": None}
        await self._finish(row, State.RESTORED, reason, exempt, updates)
        self.result.recreated += 1
        detail = reason
        if work.separate:
            detail += "; children restored as separate entries: " + ", ".join(
                f"{o} -> {n}" for o, n in work.separate
            )
        if job.plan.skipped:
            detail += "; not re-created: " + "; ".join(job.plan.skipped[:5])
        return EntryOutcome(row.id, str(row.lease_from_state), "restored", detail, new_id)


@dataclass
class _CheckedCopy:
    """An archive copy that passed every check, ready to be re-created."""

    plan: rules.RestorePlan
    stored: dict[str, ArchivedFile]  # by asset id
    digests: dict[str, _Digests]  # by asset id
    location: str


async def _archived(archives: _Archives, row: EntryRow, partner_id: int) -> ArchivedEntry:
    pid = row.partner_id if row.partner_id is not None else partner_id
    return await _archive_files(archives.of(row), row, pid)


def _read_plan(row: EntryRow, found: ArchivedEntry) -> rules.RestorePlan:
    if found.doc is None:
        raise _Refused(f"the archive copy cannot be used: {found.problem}")
    if found.doc.get("format") != ENTRY_JSON_FORMAT:
        raise _Refused(f"entry.json in {found.location} has an unknown format")
    try:
        plan = rules.restore_plan(found.doc, row.id)
    except rules.WireValueError as exc:
        raise _Refused(f"entry.json in {found.location} cannot be used: {exc}") from None
    why = rules.not_recreatable(plan.entry)
    if why:
        raise _Refused(why)
    for cid, wire in plan.children:
        why = rules.not_recreatable(wire)
        if why:
            raise _Refused(f"child {cid}: {why}")
    return plan


def _present(found: ArchivedEntry, plan: rules.RestorePlan) -> dict[str, ArchivedFile]:
    """Each planned file, there with the size entry.json records; _Refused otherwise."""
    out: dict[str, ArchivedFile] = {}
    problems = []
    for f in plan.files:
        stored = found.files.get(f.file)
        if stored is None or stored.size is None:
            problems.append(f"{f.kind} {f.asset_id}: {f.file} is missing")
        elif stored.size != f.size:
            problems.append(
                f"{f.kind} {f.asset_id}: {f.file} holds {stored.size} bytes, not {f.size}"
            )
        else:
            out[f.asset_id] = stored
    if problems:
        raise _Refused(
            f"the archive copy in {found.location} is incomplete: " + "; ".join(problems[:5])
        )
    return out


async def _checked_copy(
    store: Store, row: EntryRow, opts: RestoreOptions, archives: _Archives, partner_id: int
) -> _CheckedCopy:
    """Read entry.json and hash every file; refuse a copy that is missing, incomplete or
    whose sha256 differs from entry.json or from what the backup recorded."""
    found = await _archived(archives, row, partner_id)
    plan = _read_plan(row, found)
    stored = _present(found, plan)
    recorded = {a.id: a.sha256 for a in await queries.assets_of(store, row.id) if a.sha256}
    digests: dict[str, _Digests] = {}
    for f in plan.files:
        d = await _digests(stored[f.asset_id], opts.chunk_size)
        if d.size != f.size or d.sha256 != f.sha256:
            raise _Refused(
                f"{f.kind} {f.asset_id}: {stored[f.asset_id].location} fails its sha256 check "
                f"(entry.json {f.sha256[:12]}..., file {d.sha256[:12]}...): damaged copy"
            )
        if recorded.get(f.asset_id) not in (None, f.sha256):
            raise _Refused(
                f"{f.kind} {f.asset_id}: entry.json's sha256 differs from the one the backup "
                "recorded in the database"
            )
        digests[f.asset_id] = d
    return _CheckedCopy(plan, stored, digests, found.location)


class _Job:
    """Re-create one entry (and its children) from a checked archive copy."""

    def __init__(self, r: _Restorer, row: EntryRow, copy: _CheckedCopy, started: int) -> None:
        self.r = r
        self.row = row
        self.copy = copy
        self.plan = copy.plan
        self.since = started - RECOGNITION_SLACK
        self.objects: dict[str, queries.RestoreObject] = {}
        self.separate: list[tuple[str, str]] = []  # children made as separate entries

    async def save(self, old_id: str, kind: str, step: str, **ids: Any) -> None:
        owner = ids.pop("owner", None)
        await queries.save_restore_object(
            self.r.store, self.row.id, old_id, kind, step, owner_old_id=owner, **ids
        )
        self.objects = await queries.restore_objects(self.r.store, self.row.id)

    async def run(self) -> str:
        self.objects = await queries.restore_objects(self.r.store, self.row.id)
        new_id = await self.owner(self.row.id, self.plan.entry, parent=None)
        for cid, wire in self.plan.children:
            child_new = await self.owner(cid, wire, parent=new_id)
            if self.objects[cid].kind == "entry":
                self.separate.append((cid, child_new))
            else:
                self.r.result.children += 1
        self.r.result.children_separate += len(self.separate)
        return new_id

    async def owner(self, old_id: str, wire: Any, parent: str | None) -> str:
        """The entry (or child) with its source and other files; its new id."""
        new_id = await self.entry_object(old_id, wire, parent)
        source = self.plan.sources.get(old_id)
        if source is not None:
            await self.content(old_id, new_id, source)
        for f in self.plan.others.get(old_id, []):
            await self.asset(f, new_id)
        default = next(
            (f for f in self.plan.others.get(old_id, []) if f.kind == "thumb"
             and rules.is_default_thumb(f.wire)),
            None,
        )  # fmt: skip
        if default is not None and self.objects[default.asset_id].step != "default":
            thumb = self.objects[default.asset_id].new_id or ""

            async def is_default() -> bool | None:
                got = await self.r.client.get_asset("thumb", thumb)
                return True if rules.is_default_thumb(got) else None

            async def set_default() -> bool:
                await self.r.client.set_default_thumb(thumb)
                return True

            await self.r.changing(
                self.row, "thumbasset.setasdefault", default.asset_id, send=set_default,
                check=is_default,
            )  # fmt: skip
            await self.save(default.asset_id, "thumb", "default", owner=old_id)
        return new_id

    # ---- media.add ------------------------------------------------------------------
    async def entry_object(self, old_id: str, wire: Any, parent: str | None) -> str:
        kind = "entry" if parent is None else "child"
        obj = self.objects.get(old_id)
        if obj is not None and obj.new_id:
            live = await self.r.client.get_entries([obj.new_id])
            if obj.new_id in live:
                return obj.new_id
            # Made by an earlier run and deleted since (by hand): make it again, and all of it.
            stale = [o for o, x in self.objects.items() if o == old_id or x.owner_old_id == old_id]
            if parent is None:
                stale = list(self.objects)
            await queries.forget_restore_objects(self.r.store, self.row.id, stale)
            self.objects = await queries.restore_objects(self.r.store, self.row.id)
            self.r.result.problems.append(
                f"{self.row.id}: {obj.new_id}, made by an earlier restore, is gone: made again"
            )
        reference = rules.restore_reference(wire, old_id)
        fields = rules.entry_for_add(
            wire, old_id=old_id, reference_id=reference, restored_on=wall_now(), parent_id=parent
        )
        asset_id = None if parent is None else old_id
        known = {x.new_id for x in self.objects.values() if x.new_id}

        async def find(fields: dict[str, Any] = fields) -> dict[str, Any] | None:
            return await self.find_added(reference, fields, known)

        try:
            made = await self.r.changing(
                self.row, "media.add", asset_id,
                send=lambda: self.r.client.add_media_entry(fields), check=find,
                detail=json.dumps({"referenceId": reference, "parentEntryId": parent}),
                made=lambda e: f"made {e.get('id')}",
            )  # fmt: skip
        except ApiError as exc:
            if parent is None or exc.code not in _CHILD_LINK_REFUSED:
                raise
            refusal = exc.code
            # Kaltura will not link it: the child comes back as an entry of its own.
            loose = rules.entry_for_add(
                wire, old_id=old_id, reference_id=reference, restored_on=wall_now()
            )
            made = await self.r.changing(
                self.row, "media.add", asset_id,
                send=lambda: self.r.client.add_media_entry(loose),
                check=lambda: self.find_added(reference, loose, known),
                detail=json.dumps({"referenceId": reference, "separate": True}),
                made=lambda e: f"made {e.get('id')} (separate: {refusal})",
            )  # fmt: skip
        if parent is not None and not made.get("parentEntryId"):
            kind = "entry"  # an entry of its own (now, or found from an earlier run)
        new_id = rules.check_id(made.get("id"), "media.add's entry")
        await self.save(old_id, kind, "added", new_id=new_id)
        self.r.emit("restore.entry_added", entry_id=self.row.id, old_id=old_id, new_id=new_id)
        return new_id

    async def find_added(
        self, reference: str, fields: dict[str, Any], known: set[str]
    ) -> dict[str, Any] | None:
        """The entry a lost media.add made: the one with our referenceId, made since this
        restore began, with the name (and parent) we sent; for a child also one made on its
        own (the separate fallback). Several: fail closed."""
        found = await self.r.client.find_entries_by_reference(reference)
        parents = {fields.get("parentEntryId"), None}
        hits = [
            e
            for e in found
            if e.get("id") not in known
            and e.get("id") != self.row.id
            and _int(e.get("createdAt")) >= self.since
            and e.get("name") == fields.get("name")
            and (e.get("parentEntryId") or None) in parents
        ]
        if len(hits) > 1:
            ids = ", ".join(str(e.get("id")) for e in hits)
            raise _Refused(
                f"several entries with referenceId {reference!r} were made since the restore "
                f"began ({ids}); keep one, delete the others, then run the restore again"
            )
        return hits[0] if hits else None

    # ---- the source -------------------------------------------------------------------
    async def content(self, owner_old: str, new_id: str, f: rules.RestoreFile) -> None:
        obj = self.objects.get(f.asset_id)
        if obj is not None and obj.step == "attached":
            return

        async def attached() -> dict[str, Any] | None:
            entry = (await self.r.client.get_entries([new_id])).get(new_id)
            if entry is None:
                raise _Failed(f"the re-created entry {new_id} vanished")
            return None if str(entry.get("status")) == rules.ENTRY_NO_CONTENT else entry

        token = ""

        async def add_content() -> dict[str, Any]:
            return await self.r.client.add_media_content(new_id, token)

        if await attached() is None:
            token = await self.upload(f, owner_old)
        await self.r.changing(
            self.row, "media.addcontent", f.asset_id, send=add_content, check=attached,
            detail=json.dumps({"entry": new_id, "token": token}), check_first=True,
        )  # fmt: skip
        self.r.result.files += 1
        await self.save(f.asset_id, "flavor", "attached", owner=owner_old)

    # ---- captions, attachments, thumbnails ------------------------------------------------
    async def asset(self, f: rules.RestoreFile, new_owner: str) -> None:
        obj = self.objects.get(f.asset_id)
        if obj is not None and obj.step in ("attached", "default"):
            return
        kind = f.kind
        service = _ASSET_SERVICE[kind]
        new_asset = obj.new_id if obj is not None else None
        if new_asset:
            try:
                await self.r.client.get_asset(kind, new_asset)  # type: ignore[arg-type]
            except NotFound:
                new_asset = None  # deleted since: add it again

        async def filled() -> dict[str, Any] | None:
            if not new_asset:
                return None
            got = await self.r.client.get_asset(kind, new_asset)  # type: ignore[arg-type]
            status = _int(got.get("status"))
            return got if status in (ASSET_READY, ASSET_IMPORTING) else None

        token = ""
        if await filled() is None:
            token = await self.upload(f, f.owner)
            if not new_asset:
                fields = rules.asset_for_add(kind, f.wire)
                known = {x.new_id for x in self.objects.values() if x.new_id}
                added = await self.r.changing(
                    self.row, f"{service}.add", f.asset_id,
                    send=lambda: self.r.client.add_asset(kind, new_owner, fields),  # type: ignore[arg-type]
                    check=lambda: self.find_asset(kind, new_owner, fields, known),
                    made=lambda a: f"made {a.get('id')}",
                )  # fmt: skip
                new_asset = rules.check_id(added.get("id"), f"{service}.add's asset")
                await self.save(f.asset_id, kind, "added", owner=f.owner, new_id=new_asset)

        async def set_content() -> dict[str, Any]:
            return await self.r.client.set_asset_content(kind, new_asset, token)  # type: ignore[arg-type]

        await self.r.changing(
            self.row, f"{service}.setcontent", f.asset_id, send=set_content, check=filled,
            detail=json.dumps({"asset": new_asset, "token": token}), check_first=True,
        )  # fmt: skip
        self.r.result.files += 1
        await self.save(f.asset_id, kind, "attached", owner=f.owner, new_id=new_asset)

    async def find_asset(
        self, kind: str, owner: str, fields: dict[str, Any], known: set[str]
    ) -> dict[str, Any] | None:
        """The asset a lost add made: on the new entry, not one we know, still without
        content, with the fields we sent."""
        page = await self.r.client.list_assets(kind, [owner], 1)  # type: ignore[arg-type]
        hits = [
            a
            for a in page.objects
            if a.get("id") not in known
            and _int(a.get("status")) == ASSET_QUEUED
            and all(str(a.get(k)) == str(v) for k, v in fields.items() if k != "isDefault")
        ]
        if len(hits) > 1:
            raise _Refused(f"several empty {kind} assets on {owner} match the one being added")
        return hits[0] if hits else None

    # ---- uploads ----------------------------------------------------------------------
    async def upload(self, f: rules.RestoreFile, owner: str) -> str:
        """The file in a FULL upload token whose bytes are the archive's; its id."""
        for _ in range(3):
            token = await self._upload_once(f, owner)
            if token is not None:
                return token
        raise _Failed(f"{f.kind} {f.asset_id}: could not get a trustworthy upload token")

    def file_name(self, f: rules.RestoreFile) -> str:
        ext = f.file.rsplit(".", 1)[-1] if "." in f.file else "bin"
        return f"kretain-{f.asset_id}.{archive.sanitize_extension(ext)}"

    async def _upload_once(self, f: rules.RestoreFile, owner: str) -> str | None:
        r, client = self.r, self.r.client
        name = self.file_name(f)
        obj = self.objects.get(f.asset_id)
        token = obj.token_id if obj is not None else None
        if token is None:

            async def find_token() -> dict[str, Any] | None:
                found = [
                    t
                    for t in await client.find_upload_tokens(name)
                    if _int(t.get("status")) in (TOKEN_PENDING, TOKEN_PARTIAL, TOKEN_FULL)
                ]
                return found[0] if found else None

            added = await r.changing(
                self.row, "uploadtoken.add", f.asset_id,
                send=lambda: client.add_upload_token(name, f.size), check=find_token,
                detail=json.dumps({"file": name, "size": f.size}),
                made=lambda t: f"made {t.get('id')}",
            )  # fmt: skip
            token = rules.check_id(added.get("id"), "uploadToken.add's token")
            await self.save(f.asset_id, f.kind, "token", owner=owner, token_id=token)
        try:
            state = await client.get_upload_token(token)
        except ApiError as exc:
            if exc.code != "UPLOAD_TOKEN_NOT_FOUND":
                raise
            await self.save(f.asset_id, f.kind, "new", owner=owner, token_id=None)
            return None  # gone (deleted or expired): a new token
        status = _int(state.get("status"))
        done = _int(state.get("uploadedFileSize"))
        digests = self.copy.digests[f.asset_id]
        await self._settle_chunk_intent(f, token, done, status)
        if status == TOKEN_CLOSED:
            # Used by an attach that did not take (the caller saw no content): a new token.
            await self.save(f.asset_id, f.kind, "new", owner=owner, token_id=None)
            return None
        trusted = status in (TOKEN_PENDING, TOKEN_PARTIAL, TOKEN_FULL) and await self._vouch(
            f, token, done if status != TOKEN_FULL else f.size, digests
        )
        if not trusted:
            await self.drop_token(f, token, owner, "its bytes cannot be vouched for")
            return None
        r.result.bytes_resumed += done
        if status == TOKEN_FULL:
            await self.save(f.asset_id, f.kind, "uploaded", owner=owner)
            return token
        source = self.copy.stored[f.asset_id].open
        if r.bandwidth is not None:
            source = _paced(source, r.bandwidth)
        chunks = rules.upload_chunks(f.size, digests.chunk_size)
        for index, (offset, length) in enumerate(chunks):
            if offset < done:
                continue
            final = index == len(chunks) - 1
            expected = digests.chunks[index]
            part = FilePart(source, filename=name, offset=offset, length=length)

            async def landed(
                offset: int = offset, length: int = length, final: bool = final
            ) -> dict[str, Any] | None:
                now = await client.get_upload_token(token)
                size = _int(now.get("uploadedFileSize"))
                if final and _int(now.get("status")) in (TOKEN_FULL, TOKEN_CLOSED):
                    return now
                if not final and size >= offset + length:
                    return now
                if size == offset or (offset == 0 and size <= 0):
                    return None
                raise _Failed(f"upload token {token} holds {size} bytes, expected {offset}")

            async def send(part: FilePart = part, offset: int = offset, final: bool = final) -> Any:
                try:
                    return await client.upload_to_token(
                        token,
                        part,
                        resume=offset > 0,
                        resume_at=offset,
                        final_chunk=final,
                    )
                except TransportError:
                    if part.cut_short:
                        raise FileChanged("the archive file ended early") from None
                    raise

            try:
                await r.changing(
                    self.row, "uploadtoken.upload", f.asset_id, send=send, check=landed,
                    detail=json.dumps({"token": token, "resume_at": offset, "length": length,
                                       "sha256": expected}),
                )  # fmt: skip
            except FileChanged:
                await self.drop_token(f, token, owner, "the archive file changed while it was sent")
                raise _Refused(
                    f"{f.kind} {f.asset_id}: the archive file shrank while it was uploaded: "
                    "nothing attached"
                ) from None
            if part.sha256 is not None and part.sha256 != expected:
                await self.drop_token(f, token, owner, "the archive file changed while it was sent")
                raise _Refused(
                    f"{f.kind} {f.asset_id}: the archive file changed while it was uploaded "
                    "(its bytes no longer match the sha256 checked before): nothing attached"
                )
            r.result.bytes_uploaded += part.sent
            r.emit("restore.chunk", entry_id=self.row.id, asset_id=f.asset_id, offset=offset)
        await self.save(f.asset_id, f.kind, "uploaded", owner=owner)
        return token

    async def _settle_chunk_intent(
        self, f: rules.RestoreFile, token: str, done: int, status: int
    ) -> None:
        """A chunk an interrupted run sent without an outcome: the token's size says whether
        it landed (an event either way, so the intent is resolved)."""
        key = ("uploadtoken.upload", f.asset_id)
        pending = self.r.pending.get(self.row.id, set())
        if key not in pending:
            return
        pending.discard(key)
        chunks = await queries.upload_intents(self.r.store, self.row.id, f.asset_id, token)
        last = chunks[-1] if chunks else {}
        end = _int(last.get("resume_at")) + _int(last.get("length"))
        landed = status in (TOKEN_FULL, TOKEN_CLOSED) or (bool(chunks) and done >= end)
        await transitions.record_api_event(
            self.r.store, run_id=self.r.ctx.run_id, call="uploadtoken.upload",
            outcome="ok" if landed else "not_applied", entry_id=self.row.id,
            asset_id=f.asset_id, detail=f"after an interruption the token holds {done} bytes",
        )  # fmt: skip

    async def _vouch(self, f: rules.RestoreFile, token: str, upto: int, d: _Digests) -> bool:
        """Every chunk below ``upto`` on the server was announced (intent) with the archive's
        bytes for that range: then the token holds the archive's bytes."""
        if upto == 0:
            return True
        if upto != f.size and upto % d.chunk_size:
            return False
        announced: dict[int, dict[str, Any]] = {}
        for c in await queries.upload_intents(self.r.store, self.row.id, f.asset_id, token):
            announced[_int(c.get("resume_at"))] = c  # the latest per offset
        for index, (offset, length) in enumerate(rules.upload_chunks(f.size, d.chunk_size)):
            if offset >= upto:
                break
            c = announced.get(offset)
            if c is None or _int(c.get("length")) != length or c.get("sha256") != d.chunks[index]:
                return False
        return True

    async def drop_token(self, f: rules.RestoreFile, token: str, owner: str, why: str) -> None:
        async def gone() -> bool | None:
            try:
                state = await self.r.client.get_upload_token(token)
            except ApiError as exc:
                if exc.code == "UPLOAD_TOKEN_NOT_FOUND":
                    return True
                raise
            return None if state else True

        async def delete() -> bool:
            await self.r.client.delete_upload_token(token)
            return True

        with contextlib.suppress(ApiError):
            await self.r.changing(
                self.row, "uploadtoken.delete", f.asset_id, send=delete, check=gone,
                detail=json.dumps({"token": token, "why": why}),
            )  # fmt: skip
        await self.save(f.asset_id, f.kind, "new", owner=owner, token_id=None)


def _paced(source: ByteSource, limiter: RateLimiter) -> ByteSource:
    async def read(start: int) -> AsyncIterator[bytes]:
        inner = source(start)
        try:
            async for block in inner:
                await limiter.acquire(len(block))
                yield block
        finally:
            with contextlib.suppress(Exception):
                await inner.aclose()  # type: ignore[attr-defined]

    return read


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _joined(*parts: str | None) -> str:
    return "; ".join(p for p in parts if p)


# ---- entry points -----------------------------------------------------------------------


async def restore(
    ctx: RunContext, rows: Sequence[EntryRow], *, options: RestoreOptions | None = None
) -> RestoreResult:
    """Restore the given rows that are deleted, recycled or stripped (see the module
    docstring); rows in other states are reported and left alone."""
    opts = options or RestoreOptions()
    result = RestoreResult()
    worker = _Restorer(ctx, opts, result)
    wanted, others = await _restorable(ctx.store, rows)
    for r, removed in others:
        result.outcomes.append(EntryOutcome(r.id, str(r.state), "nothing", _why_not(r, removed)))
    ids = [r.id for r in wanted]
    # The rows the claim may still take; each is taken once: a row restored to kept (out of
    # the bin, or its flavors rebuilt) is in a state the claim takes, and must not be
    # handed to the worker again in this run.
    untaken: set[str] = set()

    async def handle(rows: list[EntryRow]) -> list[str]:
        untaken.difference_update(r.id for r in rows)
        # Rows that failed stay leased; the loop hands them back when it ends.
        return [row.id for row in rows if await worker.entry(row)]

    try:
        for start in range(0, len(ids), 500):
            untaken.clear()
            untaken.update(ids[start : start + 500])
            loop = ClaimLoop(
                ctx,
                [ClaimPhase(CLAIMED_STATES, State.RESTORING, entry_ids=untaken)],
                batch_size=1,
                concurrency=opts.concurrency,
                lease_seconds=opts.lease_seconds,
            )
            result.claimed += await loop.run(handle)
    finally:
        await worker.archives.aclose()
    seen = {o.entry_id for o in result.outcomes}
    for r in wanted:
        if r.id not in seen:  # moved on, or held by another run, since it was selected
            result.outcomes.append(
                EntryOutcome(r.id, str(r.state), "nothing", "not taken: it changed or is held")
            )
    worker.emit("restore.done")
    ctx.outcome("restore", **result.as_counts())
    return result


async def _restorable(
    store: Store, rows: Sequence[EntryRow]
) -> tuple[list[EntryRow], list[tuple[EntryRow, list[AssetRow]]]]:
    """The rows a restore takes (deleted, recycled, stripped; kept or exempt ones a strip
    that did not finish left with flavors removed), and the others with the flavors kretain
    removed from them (for the reason they are not taken)."""
    maybe = [r.id for r in rows if r.state not in queries.RESTORABLE_STATES]
    removed = await queries.removed_flavors(store, maybe)
    wanted: list[EntryRow] = []
    others: list[tuple[EntryRow, list[AssetRow]]] = []
    for r in rows:
        if r.state in queries.RESTORABLE_STATES or (
            r.state in PARTLY_STRIPPED_STATES and r.id in removed
        ):
            wanted.append(r)
        else:
            others.append((r, removed.get(r.id, [])))
    return wanted, others


def _why_not(row: EntryRow, removed: Sequence[AssetRow] = ()) -> str:
    """Why a row is not restored; ``removed``: the flavors kretain removed from it."""
    if row.state == State.RESTORED:
        return f"already restored as {row.new_entry_id}"
    if row.state == State.RESTORING:
        return "a restore holds it now"
    if row.state in (State.KEPT, State.EXEMPT) and row.exempt_by == rules.RESTORED_EXEMPTION:
        return f"already restored ({row.reason})"
    # The delete stage's call may have gone through: only its resolution says what is gone.
    if row.state == State.DELETING:
        return (
            "the delete stage stopped during its call: the next `kretain run` asks Kaltura "
            "what happened, then restore it if it was removed"
        )
    if row.state == State.DELETE_FAILED:
        why = f" ({row.last_error[:200]})" if row.last_error else ""
        return (
            f"the delete stage failed on it{why}: part of it may be removed; restore it once "
            "a run has finished the delete"
        )
    if removed:
        # A strip that did not finish, on a row still on its way (or in error, or gone).
        params = ", ".join(sorted({str(a.flavor_params_id) for a in removed}))
        return (
            f"state {row.state}: a strip that did not finish removed {len(removed)} of its "
            f"flavors (params {params}); restore it once a run has settled it (stripped, or "
            "kept or exempt when it is no longer due)"
        )
    return f"state {row.state}: nothing was removed from Kaltura"


async def plan_restore(
    store: Store, client: KalturaClient, rows: Sequence[EntryRow], options: RestoreOptions
) -> list[EntryOutcome]:
    """The dry run: what ``restore`` would do for each row, from the database, the archive
    (entry.json, files present with their sizes; sha256 is checked by the real restore)
    and Kaltura (is it still in the recycle bin?). Changes nothing anywhere."""
    out: list[EntryOutcome] = []
    pid = client.config.partner_id
    archives = _Archives(options)
    wanted, others = await _restorable(store, rows)
    not_taken = {r.id: removed for r, removed in others}
    try:
        for row in rows:
            state = str(row.state)
            if row.id in not_taken:
                why = _why_not(row, not_taken[row.id])
                out.append(EntryOutcome(row.id, state, "nothing", why))
                continue
            try:
                out.append(await _plan_one(store, client, row, archives, pid))
            except _Refused as exc:
                out.append(EntryOutcome(row.id, state, "would_refuse", str(exc)))
            except DownloadError as exc:  # the store failed a request: say so, go on
                out.append(EntryOutcome(row.id, state, "unknown", f"archive not read: {exc}"))
    finally:
        await archives.aclose()
    return out


async def _plan_one(
    store: Store, client: KalturaClient, row: EntryRow, archives: _Archives, pid: int
) -> EntryOutcome:
    state = str(row.state)
    if row.state in FLAVORS_BACK_STATES:
        removed = [
            a
            for a in await queries.assets_of(store, row.id)
            if a.kind == "flavor" and a.removed_at is not None
        ]
        if not removed:
            raise _Refused("no flavor is recorded as removed: nothing to rebuild")
        params = sorted({str(a.flavor_params_id) for a in removed})
        return EntryOutcome(
            row.id, state, "would_rebuild",
            f"flavorAsset.convert for {len(removed)} removed flavors (params {', '.join(params)})",
        )  # fmt: skip
    if row.state == State.RECYCLED:
        found = (await client.get_entries([row.id])).get(row.id)
        if found is not None and rules.in_recycle_bin(found):
            until = f" (in the bin until {rules.day(row.purge_at)})" if row.purge_at else ""
            return EntryOutcome(
                row.id, state, "would_unrecycle", f"baseEntry.restoreRecycled{until}"
            )
        if found is not None:  # as _from_bin: nothing to send, no archive needed
            return EntryOutcome(
                row.id, state, "would_unrecycle",
                "already out of the recycle bin: recorded as restored, no call",
            )  # fmt: skip
    found_copy = await _archived(archives, row, pid)
    plan = _read_plan(row, found_copy)
    _present(found_copy, plan)
    size = sum(f.size for f in plan.files)
    detail = (
        f"re-create from {found_copy.location}: {len(plan.files)} files ({size} bytes), "
        f"{len(plan.children)} children"
    )
    if row.state == State.RECYCLED:
        detail = "purged from the recycle bin; " + detail
    if not plan.sources.get(row.id):
        detail += "; no source file archived: the entry comes back without content"
    if plan.skipped:
        detail += "; not re-created: " + "; ".join(plan.skipped[:3])
    return EntryOutcome(row.id, state, "would_recreate", detail)


# ---- the command ------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Which rows a restore is about: named ids, or filters over restorable rows."""

    ids: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    policies: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.ids or self.states or self.owners or self.policies)


@dataclass
class RestoreReport:
    run_id: int | None  # None for a dry run (nothing is written)
    dry_run: bool
    outcomes: list[EntryOutcome]
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


async def select_rows(store: Store, selection: Selection) -> tuple[list[EntryRow], list[str]]:
    """The rows a selection names, and the named ids the database does not know."""
    if selection.ids:
        rows = await queries.restore_selection(store, ids=list(selection.ids))
        known = {r.id for r in rows}
        rows = [
            r
            for r in rows
            if (not selection.states or str(r.state) in selection.states)
            and (not selection.owners or (r.owner or "").lower() in _lower(selection.owners))
            and (not selection.policies or r.policy in selection.policies)
        ]
        return rows, [i for i in selection.ids if i not in known]
    rows = await queries.restore_selection(
        store,
        states=list(selection.states),
        owners=list(selection.owners),
        policies=list(selection.policies),
    )
    return rows, []


def _lower(values: Sequence[str]) -> set[str]:
    return {v.lower() for v in values}


async def run_restore(
    settings: Any,
    selection: Selection,
    options: RestoreOptions,
    *,
    yes: bool,
    progress: Any = None,
    on_run_started: Callable[[int, Path], None] | None = None,
) -> RestoreReport:
    """``kretain restore``: the dry run (``yes`` False: reads the database, the archive and
    Kaltura, writes nothing anywhere) or the restore, recorded as a run."""
    from kretain.store.db import open_store
    from kretain.workers.runner import client_config, recover_dead_runs

    settings.validate_credentials()
    async with KalturaClient(client_config(settings)) as client:
        await client.ks()  # wrong credentials stop here, before the database is touched
        if not yes:
            async with await open_store(settings.db, readonly=True) as store:
                rows, unknown = await select_rows(store, selection)
                outcomes = await plan_restore(store, client, rows, options)
            outcomes += [EntryOutcome(i, "-", "unknown", "not in the database") for i in unknown]
            return RestoreReport(None, True, outcomes)
        async with await open_store(settings.db) as store:
            run_id = await queries.start_run(
                store,
                "restore",
                {"ids": len(selection.ids), "states": selection.states,
                 "owners": selection.owners, "policies": selection.policies,
                 "rate": options.rate},
            )  # fmt: skip
            if on_run_started is not None:
                on_run_started(run_id, store.path)
            status = "failed"
            report = RestoreReport(run_id, False, [])
            try:
                await recover_dead_runs(store, run_id)
                rows, unknown = await select_rows(store, selection)
                ctx = RunContext(
                    store, client, run_id=run_id, policy=settings.policy,
                    as_of=settings.as_of, progress=progress,
                )  # fmt: skip
                result = await restore(ctx, rows, options=options)
                order = {r.id: n for n, r in enumerate(rows)}
                report.outcomes = sorted(
                    result.outcomes, key=lambda o: order.get(o.entry_id, len(order))
                ) + [EntryOutcome(i, "-", "unknown", "not in the database") for i in unknown]
                report.counts = result.as_counts()
                report.problems = result.problems
                status = "ok" if not (result.refused or result.failed) else "incomplete"
            except (asyncio.CancelledError, KeyboardInterrupt):
                status = "interrupted"
                raise
            finally:

                async def finish() -> None:
                    await transitions.release_run(store, run_id)
                    counts = {"restore": report.counts, "problems": report.problems[:50]}
                    await queries.finish_run(store, run_id, status, counts)

                await asyncio.shield(finish())
            return report

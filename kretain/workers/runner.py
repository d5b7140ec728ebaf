"""One `kretain run`: open the store, recover, then discover -> size -> back up.

Each stage is an idempotent worker over the state store, so this module only
orders them, records the run, and makes an interruption (Ctrl-C, SIGTERM, a
crash) leave nothing held: leases of this run are released on the way out, and
leases of a run that was killed are released by the next one at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import structlog

from kretain.archive import ArchiveTarget, open_target
from kretain.config import Settings
from kretain.errors import ConfigError
from kretain.kaltura.client import ClientConfig, KalturaClient
from kretain.policy import with_restored
from kretain.progress import ProgressReporter
from kretain.store import queries, transitions
from kretain.store.db import Store, open_store
from kretain.workers.context import RunContext
from kretain.workers.delete import (
    DeleteOptions,
    DeleteResult,
    delete,
    plan_path_for,
    resolve_interrupted,
)
from kretain.workers.discover import discover
from kretain.workers.offload import OffloadPool
from kretain.workers.size import SizeOptions, size

log = structlog.get_logger("kretain.run")

Stage = Literal["audit", "backup"]
Progress = Callable[..., None] | None


@dataclass
class RunReport:
    run_id: int
    status: str = "running"
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    requests: int = 0  # HTTP requests sent to Kaltura (a multirequest counts once)
    delete: DeleteResult | None = None  # the plan (and what was done), with --delete


@dataclass(frozen=True)
class DeleteRequest:
    """`kretain run --delete`: act=False writes the plan only; True carries it out."""

    act: bool = False


def client_config(settings: Settings, **overrides: Any) -> ClientConfig:
    """The API client's settings from kretain's; validate_credentials() must have passed."""
    assert settings.partner_id is not None
    values: dict[str, Any] = {
        "service_url": settings.service_url,
        "partner_id": settings.partner_id,
        "user_id": settings.user_id or "",
        "max_concurrency": settings.concurrency,
        "max_requests_per_second": settings.requests_per_second,
    }
    if settings.auth_mode == "app_token":
        values |= {
            "app_token_id": settings.app_token_id,
            "app_token": settings.app_token,
            "app_token_hash_type": settings.app_token_hash_type,
        }
    else:
        values["admin_secret"] = settings.admin_secret
    values |= overrides
    return ClientConfig(**values)


def archive_configured(settings: Settings) -> bool:
    """An archive counts as configured only when the user named one (flag, env or toml)."""
    return "archive" in settings.sources


def archive_target(settings: Settings, where: str | Path | None = None) -> ArchiveTarget:
    """The archive ``where`` (default: the configured one) as a target, with the S3 endpoint
    and region settings. Nothing is contacted until it is used; close it when done."""
    return open_target(
        where if where is not None else settings.archive,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
    )


async def run_pipeline(
    settings: Settings,
    *,
    stage: Stage | None = None,
    progress: Progress = None,
    args: dict[str, Any] | None = None,
    client_overrides: dict[str, Any] | None = None,
    on_run_started: Callable[[int, Path], None] | None = None,
    delete: DeleteRequest | None = None,
) -> RunReport:
    """Advance every row as far as ``stage`` allows (None: as far as configured); with
    ``delete``, then plan (and with ``delete.act`` carry out) the deletes."""
    settings.validate_credentials()
    if delete is not None and delete.act and settings.as_of > datetime.now(UTC).date():
        raise ConfigError(
            f"as-of {settings.as_of} is in the future: kretain deletes only by what is true "
            "today (a plan with a future as-of is fine without --yes)"
        )
    want_backup = stage == "backup" or (stage is None and archive_configured(settings))
    async with KalturaClient(client_config(settings, **(client_overrides or {}))) as client:
        # Start the session before touching the database: wrong credentials stop here,
        # with one clear line, and leave no trace of a run.
        await client.ks()
        if isinstance(progress, ProgressReporter) and progress.requests is None:
            progress.requests = lambda: client.stats.requests
        async with await open_store(settings.db) as store:
            run_id = await queries.start_run(
                store, "run", args or {}, as_of=settings.as_of.isoformat(), pid=os.getpid()
            )
            if on_run_started is not None:
                on_run_started(run_id, store.path)
            report = RunReport(run_id=run_id)
            structlog.contextvars.bind_contextvars(run_id=run_id)
            try:
                await recover_dead_runs(store, run_id)
                await _stages(store, client, settings, report, want_backup, progress, delete)
                report.requests = client.stats.requests
                report.status = "ok" if not report.problems else "incomplete"
            except (asyncio.CancelledError, KeyboardInterrupt):
                report.status = "interrupted"
                raise
            except BaseException:
                report.status = "failed"
                raise
            finally:
                await _finish(store, report)
                structlog.contextvars.unbind_contextvars("run_id")
    return report


async def recover_dead_runs(store: Store, run_id: int) -> int:
    """Free rows held by runs that died (SIGKILL, power loss).

    We hold the database's process lock, so any other run still marked running is
    dead: its leases go back now instead of waiting for them to expire.
    """
    released = 0
    for dead in await queries.running_runs(store, except_id=run_id):
        released += await transitions.release_run(store, dead)
        await queries.finish_run(store, dead, "killed", {})
    released += await transitions.release_expired(store)
    if released:
        log.info("recovered rows held by an interrupted run", rows=released)
    return released


async def _stages(
    store: Store,
    client: KalturaClient,
    settings: Settings,
    report: RunReport,
    want_backup: bool,
    progress: Progress,
    delete_request: DeleteRequest | None,
) -> None:
    # Sizing runs while discovery lists: rows become candidates page by page, and the
    # size workers take them as they come, so the listing's waits on Kaltura overlap with
    # sizing work. Both are guarded by row states, so neither can undo the other's work.
    concurrency = max(1, min(settings.concurrency, 8))
    # Entries a restore brought back stay exempt until `kretain unexempt` lifts them.
    held = [e.entry_id for e in await queries.exemptions(store)]
    ctx = RunContext(
        store,
        client,
        run_id=report.run_id,
        policy=with_restored(settings.policy, held),
        as_of=settings.as_of,
        progress=_running_totals(progress, {}),
    )
    # Rows a stopped run left mid-delete: ask Kaltura what happened before anything else.
    resolved = await resolve_interrupted(
        ctx, recycle_retention_days=settings.recycle_retention_days
    )
    if resolved:
        report.stages["resolve"] = {"resolved": resolved}
    discovering = asyncio.create_task(
        discover(dataclasses.replace(ctx, progress=progress), concurrency=concurrency)
    )
    sized: dict[str, Any] = {}
    # Sizing's pure-Python part (checking ~1,000 assets per batch) runs in a process of its
    # own once the run is big enough (see kretain/workers/offload.py).
    pool = OffloadPool()
    try:
        first = True
        while True:
            listing_done = discovering.done()
            ctx.progress = _running_totals(progress, sized)
            result = await size(
                ctx,
                options=SizeOptions(concurrency=concurrency),
                retry_errors=first,
                pool=pool,
            )
            first = False
            for key, value in result.as_counts().items():
                sized[key] = sized.get(key, 0) + value
            report.problems += result.problems
            if result.stopped:
                break  # Kaltura unreachable: stop here, the next run continues
            if listing_done:
                break  # this pass started after the last page: nothing is left
            if not result.claimed:
                await asyncio.wait({discovering}, timeout=0.5)
        found = await discovering
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        if not discovering.done():
            discovering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await discovering
    report.stages["discover"] = found.as_counts()
    report.problems = found.problems + report.problems
    report.stages["size"] = sized
    ctx.outcome("size", **sized)
    if progress is not None:
        progress("size.done", **sized)
    # The archive is opened once for the run's backup and delete stages (S3: one client).
    wants_archive = want_backup or (delete_request is not None and archive_configured(settings))
    async with contextlib.AsyncExitStack() as stack:
        target = (
            await stack.enter_async_context(archive_target(settings)) if wants_archive else None
        )
        await _archive_stages(ctx, settings, report, target, want_backup, progress,
                              delete_request, store.path)  # fmt: skip


async def _archive_stages(
    ctx: RunContext,
    settings: Settings,
    report: RunReport,
    target: ArchiveTarget | None,
    want_backup: bool,
    progress: Progress,
    delete_request: DeleteRequest | None,
    db_path: Path,
) -> None:
    if want_backup:
        from kretain.workers.backup import BackupOptions, backup

        assert target is not None
        ctx.progress = progress
        backed = await backup(
            ctx,
            archive=target,
            options=BackupOptions(concurrency=max(1, min(settings.concurrency, 8))),
        )
        report.stages["backup"] = backed.as_counts()
        report.problems += list(getattr(backed, "problems", []))
    if delete_request is not None:
        ctx.progress = progress
        result = await delete(
            ctx,
            options=DeleteOptions(
                act=delete_request.act,
                mode=settings.delete_mode,  # type: ignore[arg-type]
                max_deletes=settings.max_deletes,
                max_delete_bytes=settings.max_delete_bytes,
                rate=settings.delete_rate,
                window=settings.delete_window,
                recycle_retention_days=settings.recycle_retention_days,
                notice_days=settings.notice_days,
                archive=target if archive_configured(settings) else None,
                plan_path=plan_path_for(db_path, report.run_id),
            ),
        )
        report.delete = result
        report.stages["delete"] = result.as_counts()
        # A cap reached is a clean stop; everything else that stopped the stage is a problem.
        report.problems += [p for p in result.problems if p != result.stopped or
                            result.stopped_by_error]  # fmt: skip


def _running_totals(progress: Progress, before: dict[str, Any]) -> Progress:
    """Size events of one pass, shown as totals over the run's passes so far.

    Each pass's own ``size.done`` becomes an ordinary update; the run emits the real one.
    """
    if progress is None:
        return None
    inner = progress

    def emit(event: str, **counts: Any) -> None:
        counts = {
            k: v + before.get(k, 0) if isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in counts.items()
        }
        inner("size.batch" if event == "size.done" else event, **counts)

    return emit


async def _finish(store: Store, report: RunReport) -> None:
    # Shielded so a second Ctrl-C cannot leave this run's leases held.
    async def finish() -> None:
        await transitions.release_run(store, report.run_id)
        counts: dict[str, Any] = {"stages": report.stages, "problems": report.problems[:50]}
        await queries.finish_run(store, report.run_id, report.status, counts)

    await asyncio.shield(finish())


def install_signal_handlers(task: asyncio.Task[Any]) -> None:
    """SIGTERM cancels the run like Ctrl-C does, so it stops cleanly."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM,):
        try:
            loop.add_signal_handler(sig, task.cancel)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass

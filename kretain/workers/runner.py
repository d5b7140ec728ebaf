"""One `kretain run`: open the store, recover, then discover -> size -> back up.

Each stage is an idempotent worker over the state store, so this module only
orders them, records the run, and makes an interruption (Ctrl-C, SIGTERM, a
crash) leave nothing held: leases of this run are released on the way out, and
leases of a run that was killed are released by the next one at start-up.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import structlog

from kretain.config import Settings
from kretain.kaltura.client import ClientConfig, KalturaClient
from kretain.progress import ProgressReporter
from kretain.store import queries, transitions
from kretain.store.db import Store, open_store
from kretain.workers.discover import discover
from kretain.workers.size import size

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


async def run_pipeline(
    settings: Settings,
    *,
    stage: Stage | None = None,
    progress: Progress = None,
    args: dict[str, Any] | None = None,
    client_overrides: dict[str, Any] | None = None,
    on_run_started: Callable[[int, Path], None] | None = None,
) -> RunReport:
    """Advance every row as far as ``stage`` allows (None: as far as configured)."""
    settings.validate_credentials()
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
                await _stages(store, client, settings, report, want_backup, progress)
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
    for row in await store.fetchall(
        "SELECT id FROM runs WHERE status = 'running' AND id != ?", (run_id,)
    ):
        released += await transitions.release_run(store, row[0])
        await queries.finish_run(store, row[0], "killed", {})
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
) -> None:
    found = await discover(
        store,
        client,
        settings.policy,
        as_of=settings.as_of,
        run_id=report.run_id,
        concurrency=max(1, min(settings.concurrency, 8)),
        progress=progress,
    )
    report.stages["discover"] = found.as_counts()
    report.problems += found.problems
    sized = await size(
        store,
        client,
        run_id=report.run_id,
        concurrency=max(1, min(settings.concurrency, 8)),
        progress=progress,
        policy=settings.policy,
        as_of=settings.as_of,
    )
    report.stages["size"] = sized.as_counts()
    report.problems += sized.problems
    if want_backup:
        from kretain.workers.backup import backup  # imported late: issue 4's stage

        backed = await backup(
            store,
            client,
            archive_root=settings.archive,
            run_id=report.run_id,
            concurrency=max(1, min(settings.concurrency, 8)),
            bandwidth=None,
            max_attempts=5,
            progress=progress,
        )
        report.stages["backup"] = backed.as_counts()
        report.problems += list(getattr(backed, "problems", []))


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

"""`kretain demo`: the whole job against the built-in simulator, on loopback.

In one command and about a minute it shows what kretain does to a partner:

1. audit and back up: listing past the 10,000-result cap (the partner holds a bulk-upload
   burst larger than the cap in one second), classifying by the default policy, sizing
   every candidate, and backing up the entries the 4-year rule will delete (a few hundred;
   the simulated files are small) into an archive, verified;
2. the plan: `kretain run --delete`, a dry run that re-checks every due entry against
   Kaltura and writes the plan CSV; the simulator's mutation log proves nothing changed;
3. a capped real run: `kretain run --delete --yes --max-deletes N`;
4. the result: `kretain status`, the decision makers' summary and the HTML report.

Nothing leaves this machine, and a kretain.toml in the working directory is not read: the
demo uses the default policy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click

from kretain.config import Settings, load_settings
from kretain.errors import ConfigError
from kretain.log import configure_logging, register_secret
from kretain.output import Table, render
from kretain.progress import ProgressReporter
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import RunningSimulator, run_simulator
from kretain.store.db import open_store
from kretain.workers.runner import DeleteRequest, RunReport, run_pipeline

# The burst lands about three years before the partner's "now": the 2-year rule's
# flavor strips take it (no backup needed), so the backup stays a few hundred entries while
# the listing still has to get past the cap.
BURST_AT = 0.73
FILE_BYTES = 16 * 1024  # every simulated file, so the archive holds megabytes
# The demo partner allows more deletes than a real one (about 35 per 10 s, kretain's
# default rate), so the capped run takes seconds.
PARTNER_DELETE_LIMIT = 500
DEMO_DELETE_RATE = 450
LIST_CAP = 10_000  # the most results Kaltura's list calls return for one filter
MARKER = ".kretain-demo"


def run_demo(
    *, entries: int, burst: int, directory: Path, seed: int, max_deletes: int = 100
) -> None:
    directory = _fresh_directory(directory.resolve())
    spec = PartnerSpec(
        entries=entries,
        burst=burst,
        burst_at=BURST_AT,
        seed=seed,
        max_file_bytes=FILE_BYTES,
        recycle_bin=True,
    )
    as_of = datetime.fromtimestamp(spec.now, UTC).date()
    configure_logging(
        json_file=directory / "kretain-logs" / "demo.jsonl", console=True, level="WARNING"
    )
    started = time.monotonic()
    _say(f"simulator: generating a partner of {entries:,} entries ({burst:,} in one second)...")
    with run_simulator(spec) as sim:
        sim.knobs.set_rate_limit("baseEntry.delete", PARTNER_DELETE_LIMIT, 10.0)
        sim.knobs.set_rate_limit("flavorAsset.delete", PARTNER_DELETE_LIMIT, 10.0)
        _say(f"simulator: {sim.url} ({time.monotonic() - started:.1f}s)")
        # The simulator's credentials are public constants of the demo partner; registered
        # anyway, so the demo shows the same redaction a real run has.
        register_secret(spec.admin_secret)
        settings = _settings(sim, directory, as_of)
        _step(1, "audit and back up (kretain run)")
        report = _run(settings, sim, None)
        audit = report.stages.get("discover", {})
        backup = report.stages.get("backup", {})
        listed = audit.get("listed", 0)
        past = " (past the 10,000-result cap)" if listed > LIST_CAP else ""
        _say(
            f"  listed {listed:,} entries in {audit.get('windows', 0)} date windows{past}; "
            f"backed up {backup.get('archived', 0):,} entries ({backup.get('files', 0):,} "
            f"files) into {settings.archive}"
        )

        _step(2, "the plan (kretain run --delete: a dry run)")
        before = len(sim.mutations)
        report = _run(settings, sim, DeleteRequest(act=False))
        _print_plan(report)
        _say(f"  Kaltura changes during the dry run: {len(sim.mutations) - before}")

        _step(3, f"a capped real run (kretain run --delete --yes --max-deletes {max_deletes})")
        capped = dataclasses.replace(settings, max_deletes=max_deletes)
        report = _run(capped, sim, DeleteRequest(act=True))
        _print_plan(report)
        requests = sim.stats.requests

    _step(4, "the result")
    asyncio.run(_print_status_and_summary(settings.db))
    _say(
        f"\ndemo finished in {time.monotonic() - started:.0f}s, {requests:,} HTTP requests to "
        "the simulator"
    )
    prog = _program()
    _say(f"state database: {settings.db}; try, for example:")
    for command in (
        "status",
        "export --state deleted",
        'query "select state, count(*) from entries group by state"',
    ):
        _say(f"  {prog} --db {settings.db} {command}")
    from kretain.reports.report import default_report_path, write_report

    path = default_report_path(settings.db, "html")
    asyncio.run(
        write_report(settings.db, path, policy=settings.policy, fallback_as_of=settings.as_of)
    )
    _say(f"\nreport for decision makers: {path}")
    _say(f"  (open it in a browser; {prog} --db {settings.db} report writes it again)")


def _program() -> str:
    """How to run kretain again from here: ``kretain`` when that is the one on PATH, else
    the path it was started by (``make demo`` runs ``.venv/bin/kretain``, not on PATH)."""
    started_as = sys.argv[0]
    if Path(started_as).name != "kretain":
        return "kretain"  # python -m kretain, or a test
    on_path = shutil.which("kretain")
    if on_path and Path(on_path).resolve() == Path(started_as).resolve():
        return "kretain"
    return started_as


def _fresh_directory(directory: Path) -> Path:
    """The demo starts from scratch each time (the simulated partner does): it clears what an
    earlier demo left in ``directory``, and refuses a non-empty directory it did not make."""
    marker = directory / MARKER
    if directory.exists() and any(directory.iterdir()):
        if not marker.exists():
            raise ConfigError(
                f"{directory} is not empty and not a kretain demo directory; "
                "choose another with --dir"
            )
        for item in directory.iterdir():
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item)
            else:
                item.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    marker.write_text("made by `kretain demo`, which clears this directory when it runs\n")
    return directory


def _settings(sim: RunningSimulator, directory: Path, as_of: object) -> Settings:
    spec = sim.partner.spec
    return load_settings(
        {
            "service_url": sim.url,
            "partner_id": str(spec.partner_id),
            "db": str(directory / "kretain.db"),
            "archive": str(directory / "archive"),
            "as_of": str(as_of),
            "delete_rate": str(DEMO_DELETE_RATE),
        },
        {"KALTURA_ADMIN_SECRET": spec.admin_secret},
        directory,  # the demo's own directory: a kretain.toml where it was started is not read
        None,
    )


def _run(settings: Settings, sim: RunningSimulator, delete: DeleteRequest | None) -> RunReport:
    reporter = ProgressReporter()
    started, requests = time.monotonic(), sim.stats.requests
    report = asyncio.run(run_pipeline(settings, progress=reporter, delete=delete))
    reporter.finish_line()
    _say(
        f"  run {report.run_id}: {report.status} in {time.monotonic() - started:.1f}s, "
        f"{sim.stats.requests - requests:,} HTTP requests"
    )
    for problem in report.problems:
        _say(f"  problem: {problem}")
    return report


def _print_plan(report: RunReport) -> None:
    from kretain.reports.plan import plan_tables

    result = report.delete
    if result is None:
        return
    for table in plan_tables(result):
        click.echo("")
        render(table, "table", sys.stdout)
    if result.plan_path:
        _say(f"\n  plan: {result.plan_path}")
    if result.stopped:
        _say(f"  stopped: {result.stopped}")


async def _print_status_and_summary(db: Path) -> None:
    from kretain.reports.status import status_report
    from kretain.reports.summary import summary_report

    async with await open_store(db, readonly=True) as store:
        tables: list[Table] = [*await status_report(store), await summary_report(store)]
        for table in tables:
            rows = table.rows
            if hasattr(rows, "__aiter__"):
                table.rows = [row async for row in rows]  # type: ignore[attr-defined]
            click.echo("")
            render(table, "table", sys.stdout)


def _step(number: int, title: str) -> None:
    _say(f"\n== {number}. {title}")


_say: Callable[[str], None] = lambda text: click.echo(text, err=True)  # noqa: E731

"""`kretain demo`: the whole audit against the built-in simulator, on loopback.

It shows in one command what kretain does to a partner: listing past the
10,000-result cap (the partner holds a bulk-upload burst larger than the cap in
one second), classifying by the default policy, sizing every candidate, and the
decision makers' summary. Nothing leaves this machine.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from kretain.config import load_settings
from kretain.log import configure_logging, register_secret
from kretain.output import render
from kretain.progress import ProgressReporter
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator
from kretain.store.db import open_store
from kretain.workers.runner import run_pipeline


def run_demo(*, entries: int, burst: int, directory: Path, seed: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    spec = PartnerSpec(entries=entries, burst=burst, seed=seed)
    as_of = datetime.fromtimestamp(spec.now, UTC).date()
    echo = lambda text: click.echo(text, err=True)  # noqa: E731
    configure_logging(
        json_file=directory / "kretain-logs" / "demo.jsonl", console=True, level="WARNING"
    )
    started = time.monotonic()
    echo(f"simulator: generating a partner of {entries:,} entries ({burst:,} in one second)...")
    with run_simulator(spec) as sim:
        echo(f"simulator: {sim.url} ({time.monotonic() - started:.1f}s)")
        # The simulator's credentials are public constants of the demo partner; registered
        # anyway, so the demo shows the same redaction a real run has.
        register_secret(spec.admin_secret)
        settings = load_settings(
            {
                "service_url": sim.url,
                "partner_id": str(spec.partner_id),
                "db": str(directory / "kretain.db"),
                "as_of": as_of.isoformat(),
            },
            {"KALTURA_ADMIN_SECRET": spec.admin_secret},
            Path.cwd(),
            None,
        )
        reporter = ProgressReporter()
        report = asyncio.run(run_pipeline(settings, stage="audit", progress=reporter))
        reporter.finish_line()
        requests = sim.stats.requests
    elapsed = time.monotonic() - started
    echo(
        f"audit: run {report.run_id} {report.status} in {elapsed:.1f}s, "
        f"{requests:,} HTTP requests ({1000 * requests / max(entries, 1):.1f} per 1,000 entries)"
    )
    for problem in report.problems:
        echo(f"problem: {problem}")
    asyncio.run(_print_summary(settings.db))
    echo(f"\nstate database: {settings.db}; try, for example:")
    for command in (
        "status",
        "export --owners",
        'query "select state, count(*) from entries group by state"',
    ):
        echo(f"  kretain --db {settings.db} {command}")
    from kretain.reports.report import default_report_path, write_report

    path = default_report_path(settings.db, "html")
    asyncio.run(
        write_report(settings.db, path, policy=settings.policy, fallback_as_of=settings.as_of)
    )
    echo(f"\nreport for decision makers: {path}")
    echo(f"  (open it in a browser; kretain --db {settings.db} report writes it again)")


async def _print_summary(db: Path) -> None:
    from kretain.reports.summary import summary_report

    async with await open_store(db, readonly=True) as store:
        table = await summary_report(store)
        rows = table.rows
        if hasattr(rows, "__aiter__"):
            table.rows = [row async for row in rows]  # type: ignore[attr-defined]
        render(table, "table", sys.stdout)

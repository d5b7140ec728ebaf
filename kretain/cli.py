"""The kretain command line: one click group, thin commands.

Each command parses options, loads settings (flags > environment > kretain.toml),
runs one library coroutine and renders the result. Data goes to stdout, logs and
progress to stderr. A KretainError (or a Kaltura authentication failure) becomes
one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import textwrap
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from kretain import __version__
from kretain.config import CONFIG_FILENAME, Settings, load_settings, render_default_toml
from kretain.errors import KretainError
from kretain.kaltura.errors import ApiError, KalturaError
from kretain.output import Table, output_options, render

T = TypeVar("T")


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run with user-facing errors mapped to one line and an exit code."""
    try:
        return asyncio.run(coro)
    except KretainError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    except ApiError as exc:
        raise _fail(f"Kaltura API error {exc.code}: {exc.message}", 7) from None
    except KalturaError as exc:
        raise _fail(f"cannot talk to Kaltura: {exc}", 7) from None
    except KeyboardInterrupt:
        message = "interrupted; run `kretain run` again to continue where it stopped"
        raise _fail(message, 130) from None


def _fail(message: str, code: int) -> click.exceptions.Exit:
    click.echo(f"kretain: {message}", err=True)
    return click.exceptions.Exit(code)


class Context:
    def __init__(self, config: Path | None, db: Path | None, verbose: int) -> None:
        self.config = config
        self.db = db
        self.verbose = verbose

    def settings(self, **flags: Any) -> Settings:
        flags = {k: v for k, v in flags.items() if v is not None}
        if self.db is not None:
            flags.setdefault("db", str(self.db))
        try:
            return load_settings(flags, os.environ, Path.cwd(), self.config)
        except KretainError as exc:
            raise _fail(str(exc), exc.exit_code) from None


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kretain")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Settings file (default: ./{CONFIG_FILENAME} when present).",
)
@click.option(
    "--db",
    # Directories and other bad paths are refused by the store, in one line (not click usage).
    type=click.Path(path_type=Path),
    help="State database (env KRETAIN_DB; default ./kretain.db).",
)
@click.option("-v", "--verbose", count=True, help="More log detail (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, db: Path | None, verbose: int) -> None:
    """Carry out a Kaltura media retention policy: audit, back up, delete.

    Every entry is a row in a SQLite database that moves through states
    (candidate, sized, downloading, archived, ...). Run `kretain run` as often as
    you like: it continues where the last run stopped.
    """
    ctx.obj = Context(config, db, verbose)


# ---- init -----------------------------------------------------------------------------------


@cli.command()
@click.option("--force", is_flag=True, help="Overwrite an existing kretain.toml.")
def init(force: bool) -> None:
    """Write a commented kretain.toml in the current directory."""
    path = Path.cwd() / CONFIG_FILENAME
    if path.exists() and not force:
        raise _fail(f"{path} exists; use --force to overwrite it", 1)
    path.write_text(render_default_toml(), encoding="utf-8")
    click.echo(f"wrote {path}; fill in [kaltura] (or set KALTURA_* variables), then `kretain run`")


# ---- run ------------------------------------------------------------------------------------


def connection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Non-secret connection settings. Secrets come from the environment or kretain.toml
    only, so they never sit in shell history or the process list."""
    for option in reversed(
        [
            click.option("--service-url", help="Kaltura API URL (env KALTURA_SERVICE_URL)."),
            click.option("--partner-id", help="Partner id (env KALTURA_PARTNER_ID)."),
            click.option("--user-id", help="User id for the session (env KALTURA_USER_ID)."),
            click.option(
                "--as-of",
                type=click.DateTime(formats=["%Y-%m-%d"]),
                help="Evaluate the policy at this date (default: today, UTC).",
            ),
            click.option("--concurrency", type=int, help="Parallel API requests (default 8)."),
            click.option(
                "--requests-per-second", type=float, help="Cap on API requests per second."
            ),
        ]
    ):
        func = option(func)
    return func


def _connection_flags(**kw: Any) -> dict[str, Any]:
    as_of = kw.pop("as_of", None)
    if as_of is not None:
        kw["as_of"] = as_of.date().isoformat()
    return kw


@cli.command()
@connection_options
@click.option(
    "--stage",
    type=click.Choice(["audit", "backup"]),
    help="Stop after this stage. Default: audit, then backup when an archive is configured.",
)
@click.option(
    "--archive",
    type=click.Path(file_okay=False, path_type=Path),
    help="Archive directory for backups (env KRETAIN_ARCHIVE).",
)
@click.option(
    "--progress/--no-progress", default=None, help="Live progress line (default: on a terminal)."
)
@pass_ctx
def run(
    obj: Context,
    stage: str | None,
    archive: Path | None,
    progress: bool | None,
    **conn: Any,
) -> None:
    """Advance every entry as far as it can go: discover, size, back up.

    Safe to interrupt at any moment and to run again: finished work is never
    redone. Nothing is deleted by this command.
    """
    from kretain.workers.runner import run_pipeline

    settings = obj.settings(archive=str(archive) if archive else None, **_connection_flags(**conn))
    _warn_about_policy(settings)
    report = _run_async(_run_with_logging(obj, settings, stage, progress, run_pipeline))
    _print_run_report(report)
    if report.status != "ok":
        raise _fail("run incomplete: " + "; ".join(report.problems[:3]), 8)


def run_log_path(db_path: Path, run_id: int) -> Path:
    """``kretain-logs/<db file name>-run-<id>.jsonl`` next to the database: run ids count per
    database, so several databases in one directory need the name to keep their logs apart."""
    return db_path.parent / "kretain-logs" / f"{db_path.name}-run-{run_id}.jsonl"


async def _run_with_logging(
    obj: Context, settings: Settings, stage: str | None, progress: bool | None, pipeline: Any
) -> Any:
    from kretain.log import configure_logging, register_secret
    from kretain.progress import ProgressReporter

    for secret in (settings.admin_secret, settings.app_token):
        register_secret(secret)
    level = ("INFO", "INFO", "DEBUG")[min(obj.verbose, 2)] if obj.verbose else "WARNING"
    configure_logging(console=True, level=level)
    reporter = ProgressReporter(live=progress)

    def started(run_id: int, db_path: Path) -> None:
        log_file = run_log_path(db_path, run_id)
        configure_logging(json_file=log_file, console=True, level=level)
        click.echo(f"run {run_id}: log {log_file}", err=True)

    task = asyncio.current_task()
    if task is not None:
        from kretain.workers.runner import install_signal_handlers

        install_signal_handlers(task)
    try:
        return await pipeline(
            settings, stage=stage, progress=reporter, args={"stage": stage}, on_run_started=started
        )
    finally:
        reporter.finish_line()


def _print_run_report(report: Any) -> None:
    rows = []
    for stage_name, counts in report.stages.items():
        shown = ", ".join(f"{k} {v}" for k, v in counts.items() if isinstance(v, int) and v)
        rows.append((stage_name, shown))
    render(
        Table(["stage", "counts"], rows, title=f"run {report.run_id}: {report.status}"),
        "table",
        sys.stdout,
    )
    for problem in report.problems[:20]:
        click.echo(f"problem: {problem}", err=True)


# ---- policy ---------------------------------------------------------------------------------


def _warn_about_policy(settings: Settings) -> list[str]:
    """Print the policy's doubtful settings to stderr (they do not stop anything)."""
    from kretain.policy import policy_warnings

    warnings = policy_warnings(settings.policy, settings.as_of, datetime.now(UTC).date())
    for warning in warnings:
        click.echo(f"kretain: warning: {warning}", err=True)
    return warnings


@cli.command("policy")
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Show the dates the rules mean at this date (default: today, UTC).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Plain words, or JSON for programs.",
)
@pass_ctx
def policy_command(obj: Context, as_of: datetime | None, fmt: str) -> None:
    """Show the effective policy in plain words: each rule with the dates it means at the as-of
    date, the exemptions, and where each setting came from (flag, environment, kretain.toml or
    default). Warns about rules that can never match, zero thresholds and a future as-of.
    """
    from kretain.config import policy_setting_sources
    from kretain.policy import describe_policy

    settings = obj.settings(as_of=as_of.date().isoformat() if as_of else None)
    warnings = _warn_about_policy(settings)
    described = describe_policy(settings.policy, settings.as_of)
    sources = policy_setting_sources(settings)
    if fmt == "json":
        described |= {"warnings": warnings, "sources": dict(sources)}
        click.echo(json.dumps(described, indent=2))
        return
    width = min(shutil.get_terminal_size().columns, 100)

    def para(text: str, first: str = "  ", rest: str = "     ") -> None:
        click.echo(textwrap.fill(text, width, initial_indent=first, subsequent_indent=rest))

    as_of_source = dict(sources)["as_of"]
    click.echo(f"Policy at as-of {described['as_of']} ({as_of_source})")
    para(described["order"], first="", rest="")
    click.echo("\nRules")
    for i, rule in enumerate(described["rules"], 1):
        para(rule["text"], first=f"  {i}. ")
    click.echo("\nExemptions (entries a rule matched that are reported, never touched)")
    for line in described["exemptions"]["text"]:
        para(line)
    click.echo("\nWhere each setting came from")
    name_width = max(len(name) for name, _ in sources)
    for name, source in sources:
        click.echo(f"  {name.ljust(name_width)}  {source}")


# ---- reports --------------------------------------------------------------------------------


async def _with_readonly_store(settings: Settings, fn: Callable[[Any], Any]) -> Any:
    from kretain.store.db import open_store

    async with await open_store(settings.db, readonly=True) as store:
        if store.note:
            click.echo(f"kretain: note: {store.note}", err=True)
        return await fn(store)


def _emit_tables(tables: Table | list[Table], fmt: str, raw_csv: bool = False) -> None:
    tables = tables if isinstance(tables, list) else [tables]
    for note in dict.fromkeys(n for table in tables for n in table.notes):
        click.echo(f"kretain: note: {note}", err=True)
    try:
        for i, table in enumerate(tables):
            if i and fmt == "table":
                click.echo("")
            render(table, fmt, sys.stdout, raw_csv=raw_csv)
    except KretainError as exc:  # rows are streamed: reading them can fail mid-output
        sys.stdout.flush()
        raise _fail(str(exc), exc.exit_code) from None


async def _materialise(table: Table) -> Table:
    """Reports may stream rows from an async generator; collect them inside the loop."""
    rows = table.rows
    if hasattr(rows, "__aiter__"):
        table.rows = [row async for row in rows]  # type: ignore[attr-defined]
    return table


@cli.command()
@output_options()
@pass_ctx
def status(obj: Context, fmt: str, raw_csv: bool) -> None:
    """Counts and bytes by state and policy, errors, and the last run."""
    from kretain.reports.status import status_report

    settings = obj.settings()

    async def go(store: Any) -> Any:
        tables = await status_report(store)
        tables = tables if isinstance(tables, list) else [tables]
        return [await _materialise(t) for t in tables]

    _emit_tables(_run_async(_with_readonly_store(settings, go)), fmt, raw_csv)


@cli.command()
@output_options()
@pass_ctx
def summary(obj: Context, fmt: str, raw_csv: bool) -> None:
    """The decision makers' summary: candidates, owners, media types, hours, bytes saved.

    Columns are the policy rules (2-year, 4-year, non-ready) and their total.
    """
    from kretain.reports.summary import summary_report

    settings = obj.settings()

    async def go(store: Any) -> Any:
        return await _materialise(await summary_report(store))

    _emit_tables(_run_async(_with_readonly_store(settings, go)), fmt, raw_csv)


@cli.command()
@click.option("--state", "states", multiple=True, help="Only entries in this state (repeatable).")
@click.option("--policy", "policies", multiple=True, help="Only entries of this rule (repeatable).")
@click.option("--owners", is_flag=True, help="One row per owner, ready for a mail merge.")
@click.option(
    "--columns",
    type=click.Choice(["seed", "full"]),
    default="seed",
    show_default=True,
    help="seed: the retention toolkit's CSV columns; full: every stored field.",
)
@output_options(default="csv")
@pass_ctx
def export(
    obj: Context,
    states: tuple[str, ...],
    policies: tuple[str, ...],
    owners: bool,
    columns: str,
    fmt: str,
    raw_csv: bool,
) -> None:
    """Export entries (or owners) as CSV or JSON."""
    from kretain.reports.export import export_entries, export_owners
    from kretain.reports.query import sigint_stops_queries

    settings = obj.settings()

    async def go(store: Any) -> Any:
        if owners:
            table = await export_owners(
                store, states=list(states) or None, policies=list(policies) or None
            )
        else:
            table = await export_entries(
                store,
                states=list(states) or None,
                policies=list(policies) or None,
                columns=columns,
            )
        return await _materialise(table)

    with sigint_stops_queries():  # Ctrl-C stops a long export at once (exit 130)
        _emit_tables(_run_async(_with_readonly_store(settings, go)), fmt, raw_csv)


@cli.command()
@click.argument("sql")
@click.option(
    "-p", "--param", "params", nargs=2, multiple=True, help="Named parameter: NAME VALUE."
)
@output_options()
@pass_ctx
def query(
    obj: Context, sql: str, params: tuple[tuple[str, str], ...], fmt: str, raw_csv: bool
) -> None:
    """Run read-only SQL against the state database.

    Example: kretain query "select state, count(*) from entries group by state"
    """
    from kretain.reports.query import run_query, sigint_stops_queries

    settings = obj.settings()

    async def go() -> Any:
        return await _materialise(await run_query(settings.db, sql, dict(params)))

    with sigint_stops_queries():  # Ctrl-C stops a long statement at once (exit 130)
        _emit_tables(_run_async(go()), fmt, raw_csv)


@cli.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Where to write it; - for stdout (default: kretain-report.html, or .md, next to the "
    "database).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "markdown"]),
    default="html",
    show_default=True,
    help="html: one self-contained page with charts; markdown: the same tables, for a ticket "
    "or a wiki.",
)
@click.option(
    "--hide-owners/--show-owners",
    default=False,
    envvar="KRETAIN_REPORT_HIDE_OWNERS",
    show_envvar=True,
    help="Number the owners (owner 1, owner 2 ...) instead of naming them, for a wider audience.",
)
@pass_ctx
def report(obj: Context, out: Path | None, fmt: str, hide_owners: bool) -> None:
    """Write the report for decision makers: headline figures, storage by rule, year and
    owner, media types, enforcement progress, the seed's summary and how it was computed.

    Reads the state database only (read-only; works while a run is going). The HTML page
    needs no network and runs no script, so it can be mailed or printed to PDF.
    """
    from kretain.reports.query import sigint_stops_queries
    from kretain.reports.report import default_report_path, render_report, write_report

    settings = obj.settings()
    options = {
        "fmt": fmt,
        "policy": settings.policy,
        "fallback_as_of": settings.as_of,
        "hide_owners": hide_owners,
    }
    if out is not None and str(out) == "-":
        with sigint_stops_queries():  # Ctrl-C stops a long read at once (exit 130)
            text, note = _run_async(render_report(settings.db, **options))
        if note:
            click.echo(f"kretain: note: {note}", err=True)
        click.echo(text, nl=False)
        return
    path = out if out is not None else default_report_path(settings.db, fmt)
    with sigint_stops_queries():
        note = _run_async(write_report(settings.db, path, **options))
    if note:
        click.echo(f"kretain: note: {note}", err=True)
    click.echo(str(path))


# ---- verify ---------------------------------------------------------------------------------


@cli.command()
@click.option("--checksums", is_flag=True, help="Also re-hash every file (slow, thorough).")
@click.option(
    "--archive",
    type=click.Path(file_okay=False, path_type=Path),
    help="Archive directory (env KRETAIN_ARCHIVE).",
)
@pass_ctx
def verify(obj: Context, checksums: bool, archive: Path | None) -> None:
    """Re-check the archive against the database; damaged copies leave `archived`."""
    from kretain.store.db import open_store
    from kretain.workers.verify import verify as verify_archive

    settings = obj.settings(archive=str(archive) if archive else None)

    async def go() -> Any:
        async with await open_store(settings.db) as store:
            return await verify_archive(
                store, archive_root=settings.archive, checksums=checksums, progress=None
            )

    result = _run_async(go())
    counts = result.as_counts() if hasattr(result, "as_counts") else vars(result)
    render(Table(["check", "count"], sorted(counts.items())), "table", sys.stdout)
    if counts.get("damaged") or counts.get("missing"):
        raise _fail("some archived copies are missing or damaged; see above", 9)


# ---- demo and simulator ---------------------------------------------------------------------


@cli.command()
@click.option("--entries", default=45_000, show_default=True, help="Size of the simulated partner.")
@click.option(
    "--burst",
    default=30_000,
    show_default=True,
    help="Entries sharing one createdAt second (past the 10,000 cap).",
)
@click.option(
    "--dir",
    "directory",
    default="kretain-demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the demo database and logs go.",
)
@click.option("--seed", default=1, show_default=True, help="Seed of the simulated partner.")
def demo(entries: int, burst: int, directory: Path, seed: int) -> None:
    """Audit a simulated partner end to end and print the summary.

    Starts the built-in Kaltura simulator on loopback, runs `kretain run --stage
    audit` against it into DIR, then prints `kretain summary`.
    """
    from kretain.demo import run_demo

    try:
        run_demo(entries=entries, burst=burst, directory=directory, seed=seed)
    except KretainError as exc:
        raise _fail(str(exc), exc.exit_code) from None


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True)
@click.option("--entries", default=2_000, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option(
    "--db", "db_path", type=click.Path(dir_okay=False), help="Keep the partner in this file."
)
@click.option("--burst", default=0, show_default=True, help="Entries sharing one createdAt second.")
@click.option("--no-traps", is_flag=True, help="No hostile names or extensions.")
@click.option("--recycle-bin", is_flag=True, help="Enable the recycle-bin partner feature.")
@click.option("--latency-ms", default=0.0, show_default=True, help="Added to every API request.")
@click.option(
    "--rate-limit",
    "rate_limits",
    multiple=True,
    help="svc.action=N[/SECONDS], e.g. baseentry.delete=35/10 (repeatable).",
)
@click.option("--no-rate-limits", is_flag=True, help="Drop the default delete rate limit.")
@click.option("--ks-lifetime", type=int, help="Cap on session lifetime, seconds.")
@click.option("--download-bandwidth", type=float, help="Bytes/s per download.")
@click.option("--total-bandwidth", type=float, help="Bytes/s over all downloads.")
@click.option("--ignore-range", is_flag=True, help="Answer Range requests with the whole file.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    help="NAME=RATE, e.g. http_503=0.05; names: http_500 http_502 http_503 hang "
    "truncate internal_error download_error (repeatable).",
)
@click.option("--fault-seed", default=0, show_default=True)
def simulator(no_traps: bool, **options: Any) -> None:
    """Serve a simulated Kaltura partner on loopback (for trying kretain safely)."""
    from kretain.simulator.server import simulator_main

    simulator_main(traps=not no_traps, **options)

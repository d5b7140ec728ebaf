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
from kretain.output import Table, output_options, render

T = TypeVar("T")


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run with user-facing errors mapped to one line and an exit code."""
    try:
        return asyncio.run(coro)
    except KretainError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    except KeyboardInterrupt:
        message = "interrupted; run `kretain run` again to continue where it stopped"
        raise _fail(message, 130) from None
    except Exception as exc:
        message = _kaltura_message(exc)
        if message is None:
            raise
        raise _fail(message, 7) from None


def _kaltura_message(exc: Exception) -> str | None:
    """The line for a Kaltura client error, None for any other exception. Looked up, not
    imported: the client (and aiohttp) loads only for commands that talk to Kaltura, and an
    error of a module never loaded cannot have been raised."""
    errors = sys.modules.get("kretain.kaltura.errors")
    if errors is None:
        return None
    if isinstance(exc, errors.ApiError):
        return f"Kaltura API error {exc.code}: {exc.message}"
    if isinstance(exc, errors.KalturaError):
        return f"cannot talk to Kaltura: {exc}"
    return None


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


def s3_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The S3 store's endpoint and region, for an archive on S3. AWS credentials are never
    flags: they come from the standard AWS chain (environment, profile, instance role)."""
    for option in reversed(
        [
            click.option(
                "--s3-endpoint-url",
                metavar="URL",
                help="An S3-compatible store's endpoint (env KRETAIN_S3_ENDPOINT_URL; "
                "default: AWS).",
            ),
            click.option(
                "--s3-region",
                metavar="REGION",
                help="The bucket's region (env KRETAIN_S3_REGION; default: from the AWS "
                "configuration).",
            ),
        ]
    ):
        func = option(func)
    return func


def archive_options(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--archive`` (a directory or s3://bucket/prefix, env KRETAIN_ARCHIVE), then
    :func:`s3_options`."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        option = click.option(
            "--archive", metavar="DIR|s3://BUCKET/PREFIX", help=f"{what} (env KRETAIN_ARCHIVE)."
        )
        return option(s3_options(func))

    return decorate


@cli.command()
@connection_options
@click.option(
    "--stage",
    type=click.Choice(["audit", "backup"]),
    help="Stop after this stage. Default: audit, then backup when an archive is configured.",
)
@archive_options("Where backups go: a directory or s3://bucket/prefix")
@click.option(
    "--progress/--no-progress", default=None, help="Live progress line (default: on a terminal)."
)
@click.option(
    "--delete",
    "delete_stage",
    is_flag=True,
    help="Then plan the deletes: re-check every entry that is due against Kaltura and write "
    "the plan (kretain-plans/plan-<run>.csv). Changes nothing in Kaltura without --yes.",
)
@click.option("--yes", is_flag=True, help="With --delete: carry out the plan.")
@click.option(
    "--mode",
    type=click.Choice(["delete", "recycle"]),
    help="delete (default) or recycle: into the partner's recycle bin (env KRETAIN_DELETE_MODE).",
)
@click.option(
    "--max-deletes",
    metavar="N",
    help="Stop after this many entries acted on (env KRETAIN_MAX_DELETES).",
)
@click.option(
    "--max-delete-bytes",
    metavar="SIZE",
    help="Stop before freeing more than this, e.g. 500GB or 2TiB (env KRETAIN_MAX_DELETE_BYTES).",
)
@click.option(
    "--delete-rate",
    metavar="N",
    help="Calls per 10 s per action (default 35; env KRETAIN_DELETE_RATE). kretain slows "
    "down by itself when Kaltura answers ACTION_BLOCKED.",
)
@pass_ctx
def run(
    obj: Context,
    stage: str | None,
    archive: str | None,
    s3_endpoint_url: str | None,
    s3_region: str | None,
    progress: bool | None,
    delete_stage: bool,
    yes: bool,
    mode: str | None,
    max_deletes: str | None,
    max_delete_bytes: str | None,
    delete_rate: str | None,
    **conn: Any,
) -> None:
    """Advance every entry as far as it can go: discover, size, back up, and with
    --delete, delete.

    Safe to interrupt at any moment and to run again: finished work is never
    redone. Nothing is deleted without both --delete and --yes: `--delete` alone
    re-checks every entry that is due and writes the plan (what would be deleted,
    recycled or stripped, and what is held back and why). `--delete --yes` does the
    same, then acts, re-checking each entry against Kaltura right before its call.
    """
    from kretain.workers.runner import DeleteRequest, run_pipeline

    if yes and not delete_stage:
        raise _fail("--yes only applies with --delete", 2)
    settings = obj.settings(
        archive=archive,
        s3_endpoint_url=s3_endpoint_url,
        s3_region=s3_region,
        delete_mode=mode,
        max_deletes=max_deletes,
        max_delete_bytes=max_delete_bytes,
        delete_rate=delete_rate,
        **_connection_flags(**conn),
    )
    _warn_about_policy(settings)
    request = DeleteRequest(act=yes) if delete_stage else None
    report = _run_async(
        _run_with_logging(obj, settings, stage, progress, run_pipeline, delete=request)
    )
    _print_run_report(report)
    if report.delete is not None:
        _print_plan(report.delete, settings)
    if report.status != "ok":
        raise _fail("run incomplete: " + "; ".join(report.problems[:3]), 8)


def _print_plan(result: Any, settings: Settings) -> None:
    from kretain.reports.plan import plan_tables

    for table in plan_tables(result):
        click.echo("")
        render(table, "table", sys.stdout)
    if result.plan_path:
        click.echo(f"\nplan: {result.plan_path}", err=True)
    if settings.delete_mode == "recycle" and any(k[1] == "strip" for k in result.by_rule):
        click.echo("note: stripped flavors do not go to the recycle bin, even in recycle mode",
                   err=True)  # fmt: skip
    if result.dry_run:
        click.echo("dry run: nothing was changed in Kaltura; add --yes to act", err=True)
    elif result.stopped and not result.stopped_by_error:
        click.echo(f"stopped: {result.stopped}", err=True)


def run_log_path(db_path: Path, run_id: int) -> Path:
    """``kretain-logs/<db file name>-run-<id>.jsonl`` next to the database: run ids count per
    database, so several databases in one directory need the name to keep their logs apart."""
    return db_path.parent / "kretain-logs" / f"{db_path.name}-run-{run_id}.jsonl"


async def _run_with_logging(
    obj: Context,
    settings: Settings,
    stage: str | None,
    progress: bool | None,
    pipeline: Any,
    delete: Any = None,
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
            settings,
            stage=stage,
            progress=reporter,
            args={"stage": stage, "delete": bool(delete), "yes": bool(delete and delete.act)},
            on_run_started=started,
            delete=delete,
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
    type=click.Choice(["seed", "full", "done"]),
    help="seed: the retention toolkit's CSV columns (the default); full: every stored field; "
    "done: when and how kretain deleted, recycled, stripped or restored each entry, and when "
    "a recycled entry's bin empties (the default for --state deleted, recycled, stripped, "
    "restored).",
)
@output_options(default="csv")
@pass_ctx
def export(
    obj: Context,
    states: tuple[str, ...],
    policies: tuple[str, ...],
    owners: bool,
    columns: str | None,
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
    help="Where to write it; - for stdout (env KRETAIN_REPORT_OUT, kretain.toml [report] out; "
    "default: kretain-report.html, or .md, next to the database).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "markdown"]),
    help="html: one self-contained page with charts; markdown: the same tables, for a ticket "
    "or a wiki (env KRETAIN_REPORT_FORMAT, kretain.toml [report] format; default: html).",
)
@click.option(
    "--hide-owners/--show-owners",
    default=None,
    help="Number the owners (owner 1, owner 2 ...) instead of naming them, for a wider audience "
    "(env KRETAIN_REPORT_HIDE_OWNERS, kretain.toml [report] hide_owners; default: off).",
)
@pass_ctx
def report(obj: Context, out: Path | None, fmt: str | None, hide_owners: bool | None) -> None:
    """Write the report for decision makers: headline figures, storage by rule, year and
    owner, media types, enforcement progress, the seed's summary and how it was computed.

    Reads the state database only (read-only; works while a run is going). The HTML page
    needs no network and runs no script, so it can be mailed or printed to PDF.
    """
    from kretain.config import STDOUT
    from kretain.reports.query import sigint_stops_queries
    from kretain.reports.report import default_report_path, render_report, write_report

    settings = obj.settings(report_out=out, report_format=fmt, report_hide_owners=hide_owners)
    options = {
        "fmt": settings.report_format,
        "policy": settings.policy,
        "fallback_as_of": settings.as_of,
        "hide_owners": settings.report_hide_owners,
    }
    if settings.report_out == STDOUT:
        with sigint_stops_queries():  # Ctrl-C stops a long read at once (exit 130)
            text, note = _run_async(render_report(settings.db, **options))
        if note:
            click.echo(f"kretain: note: {note}", err=True)
        click.echo(text, nl=False)
        return
    path = settings.report_out or default_report_path(settings.db, settings.report_format)
    with sigint_stops_queries():
        note = _run_async(write_report(settings.db, path, **options))
    if note:
        click.echo(f"kretain: note: {note}", err=True)
    click.echo(str(path))


# ---- verify ---------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--checksums", is_flag=True, help="Also read back and re-hash every file (slow, thorough)."
)
@archive_options("The archive to check: a directory or s3://bucket/prefix")
@pass_ctx
def verify(
    obj: Context,
    checksums: bool,
    archive: str | None,
    s3_endpoint_url: str | None,
    s3_region: str | None,
) -> None:
    """Re-check the archive against the database; damaged copies leave `archived`.

    Every archived file must be there with its recorded size (and, on S3, the store's
    checksum the backup recorded); --checksums also reads each one back and compares its
    sha256. Without --archive (or KRETAIN_ARCHIVE / kretain.toml), the archive the backups
    recorded is used. An archive that does not exist, or is not the one the backups were
    written to, is refused and nothing changes.
    """
    from kretain.store.db import open_store
    from kretain.workers.runner import archive_configured
    from kretain.workers.verify import verify as verify_archive

    settings = obj.settings(archive=archive, s3_endpoint_url=s3_endpoint_url, s3_region=s3_region)
    where = settings.archive if archive_configured(settings) else None

    async def go() -> Any:
        async with await open_store(settings.db) as store:
            return await verify_archive(
                store,
                archive=where,
                checksums=checksums,
                progress=None,
                endpoint_url=settings.s3_endpoint_url,
                region=settings.s3_region,
            )

    result = _run_async(go())
    counts = result.as_counts()
    render(Table(["check", "count"], sorted(counts.items())), "table", sys.stdout)
    for problem in result.problems[:20]:
        click.echo(f"problem: {problem}", err=True)
    if counts.get("damaged"):
        raise _fail("some archived copies are missing or damaged; see above", 9)
    if counts.get("unchecked"):
        raise _fail("the archive did not answer for some copies; run verify again", 9)


@cli.command()
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the notices (one Markdown and one CSV per owner, plus owners.csv).",
)
@pass_ctx
def notify(obj: Context, out_dir: Path) -> None:
    """Write a notice for every owner with entries due, and start their notice period.

    Each notice lists the owner's entries (title, id, created, last played), what will
    happen to each (deleted with a copy archived, or extra copies removed) and the date
    after which it happens. Send them by mail merge or your own mailer. Each entry's first
    notice is recorded (`notified_at`); with `notice_days` set ([delete] in kretain.toml,
    or KRETAIN_NOTICE_DAYS), `kretain run --delete --yes` acts on an entry only when its
    owner was notified at least that many days before.
    """
    from kretain.store import queries
    from kretain.store.db import open_store
    from kretain.workers.notify import notify as write_notices

    settings = obj.settings()

    async def go() -> Any:
        async with await open_store(settings.db) as store:
            run_id = await queries.start_run(store, "notify", {"out": str(out_dir)})
            result = await write_notices(
                store,
                out_dir,
                policy=settings.policy,
                notice_days=settings.notice_days,
                run_id=run_id,
            )
            await queries.finish_run(store, run_id, "ok", vars(result))
            return result

    result = _run_async(go())
    render(
        Table(
            ["owners", "entries", "newly notified", "notices in"],
            [(result.owners, result.entries, result.newly_notified, result.out_dir)],
        ),
        "table",
        sys.stdout,
    )


@cli.command()
@click.option(
    "--stage",
    "stages",
    type=click.Choice(["size", "backup", "delete"]),
    multiple=True,
    help="Only this stage's failures (repeatable; default: every stage).",
)
@click.option("--entry", "entries", multiple=True, help="Only this entry (repeatable).")
@pass_ctx
def retry(obj: Context, stages: tuple[str, ...], entries: tuple[str, ...]) -> None:
    """Try entries that used up their attempts again.

    A stage stops retrying an entry after a number of failed runs (a lookup in state
    `error`, a backup in `backup_failed`, a delete in `delete_failed`). Once the cause is
    fixed, this resets their counters; the next `kretain run` tries them again. Each reset
    is recorded in the events table.
    """
    from kretain.store import transitions
    from kretain.store.db import open_store
    from kretain.store.states import State

    failing = {"size": State.ERROR, "backup": State.BACKUP_FAILED, "delete": State.DELETE_FAILED}
    settings = obj.settings()

    async def go() -> list[tuple[str, int]]:
        async with await open_store(settings.db) as store:
            out = []
            for stage in stages or tuple(failing):
                reset = await transitions.reset_attempts(
                    store, list(entries) or None, failing[stage], run_id=None
                )
                out.append((stage, len(reset)))
            return out

    rows = _run_async(go())
    render(Table(["stage", "entries reset"], rows), "table", sys.stdout)


# ---- restore --------------------------------------------------------------------------------


def _read_id_file(path: Path) -> list[str]:
    """One entry id per line; blank lines and ``#`` comments are skipped."""
    from kretain.rules import is_valid_id

    ids = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not is_valid_id(text):
            raise _fail(f"{path}:{number}: {text[:60]!r} is not an entry id", 2)
        ids.append(text)
    return ids


_OUTCOME_WORDS = {
    "from_bin": "restored from the recycle bin",
    "restored": "re-created",
    "rebuilt": "flavors rebuilt",
    "refused": "REFUSED",
    "failed": "FAILED",
    "nothing": "nothing to do",
    "unknown": "unknown",
    "would_unrecycle": "would restore from the recycle bin",
    "would_recreate": "would re-create from the archive",
    "would_rebuild": "would rebuild flavors",
    "would_refuse": "would REFUSE",
}


@cli.command("restore")
@click.argument("entry_ids", nargs=-1)
@click.option(
    "--file",
    "id_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Entry ids to restore, one per line (# comments allowed).",
)
@click.option("--owner", "owners", multiple=True, help="Only entries of this owner (repeatable).")
@click.option("--policy", "policies", multiple=True, help="Only entries of this rule (repeatable).")
@click.option(
    "--state",
    "states",
    type=click.Choice(["deleted", "recycled", "stripped"]),
    multiple=True,
    help="Only entries in this state (repeatable; default: all three).",
)
@click.option(
    "--archive",
    metavar="DIR|s3://BUCKET/PREFIX",
    help="Read the archive here instead of where the backup wrote it (a moved archive).",
)
@s3_options
@click.option(
    "--rate",
    type=click.IntRange(min=1),
    default=35,
    show_default=True,
    help="Calls that change Kaltura, per action, in any 10 seconds.",
)
@click.option(
    "--bandwidth", type=click.FloatRange(min=0.1), help="Cap on upload speed, MB/s (default none)."
)
@click.option("--yes", is_flag=True, help="Do it. Without --yes: a dry run that changes nothing.")
@click.option("--service-url", help="Kaltura API URL (env KALTURA_SERVICE_URL).")
@click.option("--partner-id", help="Partner id (env KALTURA_PARTNER_ID).")
@click.option("--user-id", help="User id for the session (env KALTURA_USER_ID).")
@pass_ctx
def restore_command(
    obj: Context,
    entry_ids: tuple[str, ...],
    id_file: Path | None,
    owners: tuple[str, ...],
    policies: tuple[str, ...],
    states: tuple[str, ...],
    archive: str | None,
    s3_endpoint_url: str | None,
    s3_region: str | None,
    rate: int,
    bandwidth: float | None,
    yes: bool,
    **conn: Any,
) -> None:
    """Put back what a retention run removed.

    \b
    recycled  still in Kaltura's recycle bin: baseEntry.restoreRecycled; the entry
              is back as it was (purged from the bin: re-created, as deleted)
    deleted   re-created from the archive: a NEW entry (new id) with the archived
              metadata, source, captions, attachments, thumbnails and children;
              Kaltura does not let a client set createdAt, plays or lastPlayedAt:
              the originals are noted in the description
    stripped  the removed flavors are converted again from the source (also for
              a kept or exempt entry, named by id, that a strip stopped part-way
              left with flavors removed)

    Name entries (ENTRY_ID..., --file) or pick them with --owner, --policy and
    --state. Without --yes nothing changes: each entry's plan is printed. The archive
    copy is checked (size and sha256) before anything is made, and refused when it is
    missing or damaged. A restore can be killed and run again: it continues where it
    stopped and never makes anything twice. A second restore of an entry does nothing.

    Restored entries are exempted from later runs (exempt_by "restored"). To let the
    policy act on one again: kretain unexempt ENTRY_ID.
    """
    from kretain.workers.restore import RestoreOptions, Selection, run_restore

    ids = list(entry_ids) + (_read_id_file(id_file) if id_file else [])
    from kretain.rules import is_valid_id

    bad = [i for i in ids if not is_valid_id(i)]
    if bad:
        raise _fail(f"{bad[0][:60]!r} is not an entry id", 2)
    selection = Selection(tuple(dict.fromkeys(ids)), states, owners, policies)
    if selection.empty:
        raise _fail("name the entries to restore (ENTRY_ID..., --file) or pick them with "
                    "--owner, --policy or --state", 2)  # fmt: skip
    settings = obj.settings(s3_endpoint_url=s3_endpoint_url, s3_region=s3_region, **conn)
    options = RestoreOptions(
        rate=rate,
        bandwidth=bandwidth * 1_000_000 if bandwidth else None,
        archive=archive,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
    )
    report = _run_async(_restore_with_logging(obj, settings, selection, options, yes, run_restore))
    rows = [
        (
            o.entry_id,
            o.state,
            _OUTCOME_WORDS.get(o.outcome, o.outcome),
            o.new_entry_id or "",
            o.detail,
        )
        for o in report.outcomes
    ]
    title = (
        "restore: dry run, nothing changed" if report.dry_run else f"restore run {report.run_id}"
    )
    render(Table(["entry", "state", "outcome", "new entry", "detail"], rows, title=title),
           "table", sys.stdout)  # fmt: skip
    if report.dry_run:
        click.echo("dry run: nothing was changed; run again with --yes to restore", err=True)
        return
    bad_outcomes = [o for o in report.outcomes if o.outcome in ("refused", "failed")]
    if bad_outcomes:
        raise _fail(f"{len(bad_outcomes)} entries not restored; see above", 8)


async def _restore_with_logging(
    obj: Context, settings: Settings, selection: Any, options: Any, yes: bool, go: Any
) -> Any:
    from kretain.log import configure_logging, register_secret

    for secret in (settings.admin_secret, settings.app_token):
        register_secret(secret)
    level = ("INFO", "INFO", "DEBUG")[min(obj.verbose, 2)] if obj.verbose else "WARNING"
    configure_logging(console=True, level=level)

    def started(run_id: int, db_path: Path) -> None:
        log_file = run_log_path(db_path, run_id)
        configure_logging(json_file=log_file, console=True, level=level)
        click.echo(f"restore run {run_id}: log {log_file}", err=True)

    def progress(event: str, **info: Any) -> None:
        # One line per entry as it finishes: a restore of large files takes a while.
        if event == "restore.entry":
            done = sum(info.get(k, 0) for k in ("from_bin", "recreated", "rebuilt"))
            trouble = info.get("refused", 0) + info.get("failed", 0)
            click.echo(
                f"restore: {info.get('entry_id')} handled ({done} restored, {trouble} not)",
                err=True,
            )

    task = asyncio.current_task()
    if task is not None:
        from kretain.workers.runner import install_signal_handlers

        install_signal_handlers(task)
    return await go(
        settings, selection, options, yes=yes, progress=progress, on_run_started=started
    )


@cli.command()
@click.argument("entry_ids", nargs=-1)
@click.option("--list", "show", is_flag=True, help="List the exemptions the database holds.")
@pass_ctx
def unexempt(obj: Context, entry_ids: tuple[str, ...], show: bool) -> None:
    """Lift the exemption a restore recorded, so later runs may act on ENTRY_ID again.

    `kretain restore` exempts what it brings back (exempt_by "restored"): a run does not
    delete it again. This removes that exemption (an admin event each); the next
    `kretain run` judges the entry by the policy like any other. Exemptions from
    kretain.toml are changed there instead.
    """
    from kretain.store import queries
    from kretain.store.db import open_store

    if not entry_ids and not show:
        raise _fail("name the entries (ENTRY_ID...), or --list", 2)
    settings = obj.settings()

    async def go() -> tuple[list[str], list[Any]]:
        async with await open_store(settings.db) as store:
            lifted = await queries.lift_exemptions(store, list(entry_ids), run_id=None)
            return lifted, await queries.exemptions(store)

    lifted, held = _run_async(go())
    if show:
        render(
            Table(
                ["entry", "reason", "since", "restored from"],
                [
                    (
                        e.entry_id,
                        e.reason,
                        datetime.fromtimestamp(e.created_at, UTC).date().isoformat(),
                        e.restored_from or "",
                    )
                    for e in held
                ],
                title="exemptions held in the database",
            ),
            "table",
            sys.stdout,
        )
    for entry_id in entry_ids:
        if entry_id in lifted:
            click.echo(f"{entry_id}: exemption lifted; the next run applies the policy to it")
        else:
            click.echo(f"{entry_id}: no exemption recorded", err=True)
    if entry_ids and len(lifted) < len(set(entry_ids)):
        raise click.exceptions.Exit(1)


# ---- demo and simulator ---------------------------------------------------------------------


@cli.command()
@click.option("--entries", default=20_000, show_default=True, help="Size of the simulated partner.")
@click.option(
    "--burst",
    default=18_000,
    show_default=True,
    help="Entries sharing one createdAt second, about three years ago (the listing must get "
    "past the 10,000 cap for the two thirds of them that are due).",
)
@click.option(
    "--max-deletes",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="The cap of the demo's real delete run.",
)
@click.option(
    "--dir",
    "directory",
    default="kretain-demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the demo database, archive, plans, logs and report go.",
)
@click.option("--seed", default=1, show_default=True, help="Seed of the simulated partner.")
def demo(entries: int, burst: int, max_deletes: int, directory: Path, seed: int) -> None:
    """The whole job against a simulated partner, in about a minute.

    Starts the built-in Kaltura simulator on loopback and, into DIR: audits and backs
    up (`kretain run`), writes the dry-run plan (`kretain run --delete`), carries out a
    capped part of it (`--delete --yes --max-deletes N`), then prints `kretain status`
    and `kretain summary` and writes the HTML report. Nothing leaves this machine; a
    kretain.toml in the current directory is not read.
    """
    from kretain.demo import run_demo

    try:
        run_demo(
            entries=entries,
            burst=burst,
            directory=directory,
            seed=seed,
            max_deletes=max_deletes,
        )
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
@click.option(
    "--recycle-retention-days",
    default=30,
    show_default=True,
    help="Days a recycled entry stays in the bin before it is deleted.",
)
@click.option(
    "--max-file-bytes", type=int, help="Cap on every file's size (small archives, fast tries)."
)
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

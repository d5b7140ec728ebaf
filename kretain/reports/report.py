"""`kretain report`: one self-contained HTML page (or Markdown) for decision makers.

Names:
    build_report(store, *, policy, fallback_as_of, hide_owners=False, now=None) -> ReportData
    report_sections(data) -> list[Section];  render_html(data) / render_markdown(data) -> str
    render_report(db_path, *, fmt, policy, fallback_as_of, hide_owners=False, now=None)
        -> (text, note)       (async; opens the database read-only; note: how, for the user)
    write_report(db_path, out, *, fmt, policy, fallback_as_of, hide_owners=False, now=None)
        -> note               (async; the same, written atomically to ``out``)
    default_report_path(db_path, fmt) -> Path     kretain-report.html (.md) next to the database
    FORMATS, TOP_OWNERS

Sections: headline figures; storage to free by rule and action; candidates and storage by
creation year; the owners with the most storage at stake; media types; enforcement progress
(backups, then deletes, held-back reasons and storage freed over time, once the delete stage has
run); the seed's summary table; how this was computed (the policy in plain words).

The HTML page needs nothing at view time: inline SVG charts and CSS, no script, no network, so
it survives mail attachments and print-to-PDF. Markdown carries the same sections and tables,
with text bars in place of charts (report_render.py lays both out).

Every figure comes from SQL, in two passes over `entries`: summary.py's groups by rule and owner
(the seed's summary table, and from it the headline, the media types and the owners) and
report_queries.py's cube (everything else); Python only adds up grouped rows. In the HTML each
figure carries ``data-figure="key"`` and ``data-value`` (exact, unformatted), on the table cell
and on the bar that draws it, so a test (or a program) can read the numbers back.

All queries read one committed state: a run writing meanwhile cannot make two charts disagree
(WAL readers see one snapshot and never block the writer). Both passes read the table front to
back (summary.sequential_reads) in two halves at once: the caller's connection one, a second
connection, checked to see the same state, the other (report_queries.table_halves).
Ctrl-C, inside the CLI's query.sigint_stops_queries, stops the running statements at once:
ReportInterrupted (exit 130).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sqlite3
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from kretain import __version__
from kretain.output import Table as OutputTable
from kretain.policy import DEFAULT_RULES, Policy, describe_policy
from kretain.reports import charts
from kretain.reports.charts import Bar, Segment, Series, human
from kretain.reports.query import PROGRESS_STEPS as STEPS
from kretain.reports.query import ReportError
from kretain.reports.query import _stop as _ctrl_c  # set by query.sigint_stops_queries
from kretain.reports.report_queries import (
    REMOVED_STATES,
    CubeRow,
    OwnerRow,
    Timeline,
    read_cube,
    read_partner,
    read_runs,
    table_halves,
    timeline,
    top_owners,
)
from kretain.reports.report_render import (
    Block,
    Card,
    Cards,
    Cell,
    Figure,
    Figures,
    Heading,
    Items,
    Para,
    Section,
    Table,
    to_html,
    to_markdown,
)
from kretain.reports.summary import (
    IN_POLICY_STATES,
    NO_RULE,
    PENDING_STATES,
    OwnerGroup,
    read_owner_groups,
    summary_table,
    two_places,
)
from kretain.store.db import Store, open_store
from kretain.store.models import RunRow
from kretain.store.states import State

__all__ = [
    "FORMATS",
    "TOP_OWNERS",
    "ReportData",
    "ReportInterrupted",
    "build_report",
    "default_report_path",
    "render_html",
    "render_markdown",
    "render_report",
    "report_sections",
    "write_report",
]

FORMATS = ("html", "markdown")
TOP_OWNERS = 20
TITLE = "Media retention report"
S = State

ACTION_WORDS: dict[str | None, str] = {
    "delete_entry": "delete the entry (backed up first)",
    "delete_flavors": "delete every flavor but the source",
    None: "no action",
}
# Where an in-policy entry stands, in the order work moves it: (stage key, words, group).
# The key is the state, except that sized rows are told apart by what comes next for them.
STAGES: tuple[tuple[str, str, str], ...] = (
    (S.CANDIDATE, "found, not sized yet", "to do"),
    (S.SIZED, "sized, to be backed up", "to do"),
    ("sized.delete_flavors", "sized, to have its flavors deleted (no backup needed)", "to do"),
    (S.DOWNLOADING, "being backed up", "in progress"),
    (S.BACKUP_FAILED, "backup failed (retried)", "failed, retried"),
    (S.ARCHIVED, "backed up and verified, to be deleted", "in progress"),
    (S.DELETING, "being deleted", "in progress"),
    (S.DELETE_FAILED, "delete failed (retried)", "failed, retried"),
    (S.DELETED, "deleted", "done"),
    (S.RECYCLED, "in Kaltura's recycle bin", "done"),
    (S.STRIPPED, "stripped to the source flavor", "done"),
)
STAGE_GROUPS = (
    Series("to do", charts.PALETTE["sky"]),
    Series("in progress", charts.PALETTE["blue"], "dots"),
    Series("done", charts.PALETTE["green"], "stripes"),
    Series("failed, retried", charts.PALETTE["vermillion"], "cross"),
)
REMOVED_WORDS = {S.DELETED: "deleted", S.RECYCLED: "recycled", S.STRIPPED: "stripped"}
REMOVED_SERIES = (
    Series("deleted", charts.PALETTE["blue"]),
    Series("recycled", charts.PALETTE["orange"], "stripes"),
    Series("stripped", charts.PALETTE["purple"], "dots"),
)
# States outside the policy's count, with what they mean.
NOT_COUNTED = (
    (S.KEPT, "kept: no rule matches it (any more), for example it was played since"),
    (S.EXEMPT, "exempt: a rule matched, but an exemption applies"),
    (S.ERROR, "error: its data could not be read or was incomplete; it is retried next run"),
    (S.GONE, "gone: it no longer exists in Kaltura"),
    (S.RESTORING, "being restored"),
    (S.RESTORED, "re-created from the archive"),
)
BACKED_UP_STATES = (S.ARCHIVED, S.DELETING, S.DELETE_FAILED, S.DELETED, S.RECYCLED)
DELETE_STAGE_STATES = (S.DELETING, S.DELETE_FAILED, *REMOVED_STATES)
MEDIA_ROWS = (
    ("media type: video", "Video"),
    ("media type: audio", "Audio"),
    ("media type: image", "Image"),
    ("media subtype: YouTube", "YouTube (external)"),
    ("media subtype: Quiz", "Quiz"),
    ("media subtype: YouTube Quiz", "YouTube quiz"),
)


# ---- the figures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Amount:
    entries: int = 0
    bytes: int = 0

    def __add__(self, other: Amount) -> Amount:
        return Amount(self.entries + other.entries, self.bytes + other.bytes)


@dataclass
class ReportData:
    """Everything the report shows, read by :func:`build_report` from one snapshot."""

    generated_at: int
    database: str  # the file name only
    partner: int | None
    last_run: RunRow | None
    as_of: date
    as_of_from_run: bool
    hide_owners: bool
    audited: int
    summary: OutputTable  # summary.py's table, rows materialised
    headline: dict[str, Any]  # the summary's total column, by metric
    rules: list[str]  # rule columns, in the summary's order
    by_rule: list[tuple[str, str | None, Amount, int]]  # rule, action, to free, not sized
    years: list[int]
    by_year: dict[tuple[int, str], Amount]  # (year, rule) -> candidates, bytes to free
    owners: list[OwnerRow]
    stages: dict[str, Amount]  # stage key (see STAGES) -> candidates, bytes to free
    backup_planned: Amount
    backed_up: Amount
    removed: dict[str, Amount]  # removed state -> entries, bytes freed
    held: list[tuple[str, Amount]]  # reason -> candidates held back, bytes to free
    timeline: Timeline
    deletes_ran: bool
    not_counted: dict[str, int]
    policy_text: dict[str, Any]  # describe_policy(...), exempt owner names hidden when asked
    unknown_rules: list[str] = field(default_factory=list)  # in the data, not in the policy

    @property
    def freed(self) -> Amount:
        return sum(self.removed.values(), Amount())

    @property
    def held_total(self) -> Amount:
        return sum((a for _, a in self.held), Amount())


def _summary_column(table: OutputTable, column: str) -> dict[str, Any]:
    i = table.headers.index(column)
    return {row[0]: row[i] for row in table.rows}  # type: ignore[union-attr]


def _rule_order(policy: Policy) -> list[str] | None:
    """The summary's rule columns: the seed's order for the default rules, else the policy's."""
    return None if policy.rules == DEFAULT_RULES else [r.name for r in policy.rules]


def _shown_policy(policy: Policy, hide_owners: bool) -> Policy:
    """The policy as the report describes it: exempt owners become a count when owner names
    are hidden."""
    owners = policy.exemptions.owners
    if not hide_owners or not owners:
        return policy
    shown = frozenset({f"{len(owners)} name{'s' if len(owners) != 1 else ''} hidden"})
    return dataclasses.replace(
        policy, exemptions=dataclasses.replace(policy.exemptions, owners=shown)
    )


def _sum_by(
    cube: Iterable[CubeRow], key: Callable[[CubeRow], Hashable | None], *, freed: bool = False
) -> dict[Any, Amount]:
    """Entries and bytes to free (or freed) of the cube rows, by ``key(row)`` (None: left out)."""
    out: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
    for r in cube:
        k = key(r)
        if k is not None:
            total = out[k]
            total[0] += r.entries
            total[1] += r.bytes_freed if freed else r.bytes_saved
    return {k: Amount(n, b) for k, (n, b) in out.items()}


def _total(cube: Iterable[CubeRow], keep: Callable[[CubeRow], bool]) -> Amount:
    kept = [r for r in cube if keep(r)]
    return Amount(sum(r.entries for r in kept), sum(r.bytes_saved for r in kept))


def _stage(r: CubeRow) -> str | None:
    if not r.in_policy:
        return None
    if r.state == S.SIZED and r.action == "delete_flavors":
        return "sized.delete_flavors"
    return r.state


async def build_report(
    store: Store,
    *,
    policy: Policy,
    fallback_as_of: date,
    hide_owners: bool = False,
    now: int | None = None,
) -> ReportData:
    """Read every figure of the report from one committed state (see the module docstring).

    ``policy``: the settings' policy, described in "how this was computed". ``fallback_as_of``:
    the date to describe it at when no run recorded the as-of date it judged entries at.
    """
    async with table_halves(store, progress=_ctrl_c.is_set) as halves:
        try:
            async with asyncio.TaskGroup() as tasks:  # the halves at once
                parts = [tasks.create_task(_read_part(half)) for half in halves]
        except ExceptionGroup as failed:  # a half's error (Ctrl-C stops both): the first, as is
            raise failed.exceptions[0] from None
        partner = await read_partner(store)
        last_run, run_as_of = await read_runs(store)
    groups = [g for part in parts for g in part.result()[0]]
    cube = [r for part in parts for r in part.result()[1]]
    summary = summary_table(groups, IN_POLICY_STATES, rule_names=_rule_order(policy))
    removals = timeline(cube)
    rules = summary.headers[1:-1]
    as_of = date.fromisoformat(run_as_of) if run_as_of else fallback_as_of
    by_year = _sum_by(cube, lambda r: (r.year, r.policy or NO_RULE) if r.in_policy else None)
    years = sorted({y for y, _ in by_year})
    held = _sum_by(cube, lambda r: r.held if r.state in PENDING_STATES else None)
    return ReportData(
        generated_at=int(time.time()) if now is None else now,
        database=store.path.name,
        partner=partner,
        last_run=last_run,
        as_of=as_of,
        as_of_from_run=run_as_of is not None,
        hide_owners=hide_owners,
        audited=sum(r.entries for r in cube),
        summary=summary,
        headline=_summary_column(summary, "total"),
        rules=rules,
        by_rule=_by_rule(cube, rules),
        years=list(range(years[0], years[-1] + 1)) if years else [],
        by_year=by_year,
        owners=top_owners(groups, TOP_OWNERS),
        stages=_sum_by(cube, _stage),
        backup_planned=_total(cube, lambda r: r.in_policy and r.action == "delete_entry"),
        # verify sends a row whose copy is damaged back to sized, archived_at still set.
        backed_up=_total(cube, lambda r: r.backed_up and r.state in BACKED_UP_STATES),
        removed=_sum_by(cube, lambda r: r.state if r.state in REMOVED_STATES else None, freed=True),
        held=sorted(held.items(), key=lambda kv: (-kv[1].entries, kv[0])),
        timeline=removals,
        deletes_ran=bool(
            held or removals.rows or any(r.state in DELETE_STAGE_STATES for r in cube)
        ),
        not_counted={s: sum(r.entries for r in cube if r.state == s) for s, _ in NOT_COUNTED},
        policy_text=describe_policy(_shown_policy(policy, hide_owners), as_of),
        unknown_rules=[n for n in rules if n not in {r.name for r in policy.rules}],
    )


async def _read_part(store: Store) -> tuple[list[OwnerGroup], list[CubeRow]]:
    """The two passes over the part of `entries` that ``store`` reads (see table_halves)."""
    return await read_owner_groups(store, IN_POLICY_STATES), await read_cube(store)


def _by_rule(cube: list[CubeRow], rules: list[str]) -> list[tuple[str, str | None, Amount, int]]:
    amounts = _sum_by(cube, lambda r: (r.policy or NO_RULE, r.action) if r.in_policy else None)
    unsized: dict[tuple[str, str | None], int] = defaultdict(int)
    for r in cube:
        if r.in_policy:
            unsized[(r.policy or NO_RULE, r.action)] += r.unsized
    order = {name: i for i, name in enumerate(rules)}
    keys = sorted(amounts, key=lambda k: (order.get(k[0], len(order)), k[0], k[1] or ""))
    return [(k[0], k[1], amounts[k], unsized[k]) for k in keys]


# ---- cells and small words ---------------------------------------------------------------------


def _int(n: int, key: str | None = None) -> Cell:
    return Cell(f"{n:,}", key, n, num=True)


def _size(n: int, key: str | None = None) -> Cell:
    """A human size; the exact bytes in data-value and the tooltip."""
    return Cell(human(n), key, n, num=True, title=f"{n:,} bytes")


def _entries(n: int) -> str:
    return f"{n:,} entr{'y' if n == 1 else 'ies'}"


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0.0%"


def _hours(seconds: int) -> Decimal:
    return two_places(Decimal(seconds) / 3600)


def _moment(ts: int | None) -> str:
    if ts is None:
        return "not recorded"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _rule_series(rules: Sequence[str]) -> list[Series]:
    """One colour and pattern per rule, the same in every chart."""
    colors, patterns = charts.SERIES_COLORS, charts.PATTERNS
    return [
        Series(name, colors[i % len(colors)], patterns[(i + i // len(colors)) % len(patterns)])
        for i, name in enumerate(rules)
    ]


def _one_of(n: int, i: int, segment: Segment) -> list[Segment]:
    """``segment`` in series ``i`` of ``n``; the others empty (bars coloured by category)."""
    segments = [Segment(0, None, "") for _ in range(n)]
    segments[i] = segment
    return segments


# ---- sections ----------------------------------------------------------------------------------


def _meta(data: ReportData) -> list[str]:
    read = f"Read {_moment(data.generated_at)} from {data.database}"
    if data.partner is not None:
        read += f" (Kaltura partner {data.partner})"
    lines = [read + "."]
    if data.as_of_from_run:
        lines.append(f"The policy judged the entries as of {data.as_of.isoformat()}.")
    else:
        lines.append(
            f"No run recorded an as-of date; the policy is described as of "
            f"{data.as_of.isoformat()}."
        )
    run = data.last_run
    if run is None:
        lines.append("No run is recorded in this database.")
    elif run.finished_at is None:
        lines.append(
            f"Run {run.id} ({run.command}) is still going, started {_moment(run.started_at)}: "
            "the figures are what it had saved when the report was read."
        )
    else:
        lines.append(
            f"Last run: run {run.id} ({run.command}, {run.status}), finished "
            f"{_moment(run.finished_at)}."
        )
    return lines


def _headline(data: ReportData) -> Section:
    h = data.headline
    candidates, saved, unsized = (
        int(h["candidates"]),
        int(h["bytes saved"]),
        int(h["not sized yet"]),
    )
    saved_note = f"{saved:,} bytes"
    if unsized:
        saved_note += f"; {unsized:,} candidates not sized yet count as 0"
    hours = h["duration (hours)"]
    cards = [
        Card(
            "Entries audited", _int(data.audited, "headline.audited"), "every entry kretain listed"
        ),
        Card(
            "Candidates",
            _int(candidates, "headline.candidates"),
            f"{_pct(candidates, data.audited)} of those audited: the entries the policy acts on",
        ),
        Card(
            "Storage to free", Cell(human(saved), "headline.bytes_saved", saved, True), saved_note
        ),
        Card(
            "Hours of media",
            Cell(f"{hours:,}", "headline.hours", hours, True),
            "running time of the video and audio candidates",
        ),
        Card(
            "Owners affected",
            _int(int(h["unique users"]), "headline.owners"),
            "people with at least one candidate",
        ),
    ]
    if data.deletes_ran:
        freed = data.freed
        cards.append(
            Card(
                "Freed so far",
                Cell(human(freed.bytes), "headline.freed", freed.bytes, True),
                f"{_pct(freed.bytes, saved)} of the storage to free; {_entries(freed.entries)}",
            )
        )
    return Section("headline", "Headline figures", [Cards(cards)])


def _rules_section(data: ReportData) -> Section:
    section = Section("rules", "Storage to free by rule and action")
    if not data.by_rule:
        section.blocks.append(Para("No entry is a candidate."))
        return section
    series = _rule_series(data.rules)
    index = {name: i for i, name in enumerate(data.rules)}
    total = sum((a for _, _, a, _ in data.by_rule), Amount())
    bars, rows = [], []
    for rule, action, a, unsized in data.by_rule:
        key, words = f"rule.{rule}.{action}", ACTION_WORDS.get(action, str(action))
        tip = f"{rule}, {words}: {human(a.bytes)}, {_entries(a.entries)}"
        segment = Segment(a.bytes, f"{key}.bytes", tip)
        bars.append(
            Bar(
                f"{rule}: {words}",
                _one_of(len(series), index.get(rule, 0), segment),
                f"{human(a.bytes)} · {_entries(a.entries)}",
            )
        )
        rows.append(
            [
                Cell(rule),
                Cell(words),
                _int(a.entries, f"{key}.entries"),
                _int(a.bytes, f"{key}.bytes"),
                Cell(human(a.bytes), num=True),
                Cell(_pct(a.bytes, total.bytes), num=True),
                _int(unsized, f"{key}.unsized"),
            ]
        )
    table = Table(
        ["rule", "action", "entries", "bytes to free", "storage", "share", "not sized yet"],
        rows,
        total=[
            Cell("all rules"),
            Cell(""),
            _int(total.entries),
            _int(total.bytes),
            Cell(human(total.bytes), num=True),
            Cell("100%", num=True),
            _int(sum(u for *_, u in data.by_rule)),
        ],
        bar_column=3,
        numeric=frozenset({2, 3, 4, 5, 6}),
    )
    chart = charts.hbars("chart-rules", section.title, series, bars)
    section.blocks += [
        Para("What each rule of the policy frees, and how many entries that takes."),
        Figure(chart, table),
    ]
    return section


def _years_section(data: ReportData) -> Section:
    section = Section("years", "Candidates and storage by creation year")
    if not data.years:
        section.blocks.append(Para("No entry is a candidate."))
        return section
    names, series = data.rules, _rule_series(data.rules)
    count_bars, byte_bars, count_rows, byte_rows = [], [], [], []
    for year in data.years:
        amounts = [(r, data.by_year.get((year, r), Amount())) for r in names]
        total = sum((a for _, a in amounts), Amount())
        count_bars.append(
            Bar(
                str(year),
                [
                    Segment(a.entries, f"year.{year}.{r}.entries", f"{year}, {r}: {a.entries:,}")
                    for r, a in amounts
                ],
                f"{total.entries:,}",
            )
        )
        byte_bars.append(
            Bar(
                str(year),
                [
                    Segment(a.bytes, f"year.{year}.{r}.bytes", f"{year}, {r}: {human(a.bytes)}")
                    for r, a in amounts
                ],
                human(total.bytes),
            )
        )
        count_rows.append(
            [
                Cell(str(year)),
                *(_int(a.entries, f"year.{year}.{r}.entries") for r, a in amounts),
                _int(total.entries, f"year.{year}.entries"),
            ]
        )
        byte_rows.append(
            [
                Cell(str(year)),
                *(_size(a.bytes, f"year.{year}.{r}.bytes") for r, a in amounts),
                _size(total.bytes, f"year.{year}.bytes"),
            ]
        )
    n = len(names)
    numeric = frozenset(range(1, n + 2))
    count_chart = charts.columns(
        "chart-years-entries", "Candidates by creation year", series, count_bars, charts.count_axis
    )
    byte_chart = charts.columns(
        "chart-years-bytes", "Storage to free by creation year", series, byte_bars, charts.byte_axis
    )
    section.blocks += [
        Para(
            "When the candidates were uploaded (createdAt, UTC), stacked by rule. Point at a "
            "size for its exact bytes."
        ),
        Figures(
            [
                Figure(
                    count_chart,
                    Table(["created", *names, "all"], count_rows, None, n + 1, numeric),
                    "Candidates",
                ),
                Figure(
                    byte_chart,
                    Table(["created", *names, "all"], byte_rows, None, n + 1, numeric),
                    "Storage to free",
                ),
            ]
        ),
    ]
    return section


def _owner_label(data: ReportData, rank: int, owner: str | None) -> str:
    if data.hide_owners:
        return f"owner {rank}"
    return owner if owner is not None else "(no owner)"


def _owners_section(data: ReportData) -> Section:
    section = Section("owners", f"The {TOP_OWNERS} owners with the most storage at stake")
    if not data.owners:
        section.blocks.append(Para("No entry is a candidate."))
        return section
    saved = int(data.headline["bytes saved"])
    top = sum(o.bytes_saved for o in data.owners)
    series = [Series("storage to free", charts.PALETTE["blue"])]
    bars, rows = [], []
    for rank, o in enumerate(data.owners, 1):
        name = _owner_label(data, rank, o.owner)
        tip = f"{name}: {human(o.bytes_saved)}, {_entries(o.entries)}"
        bars.append(
            Bar(
                f"{rank}. {name}",
                [Segment(o.bytes_saved, f"owner.{rank}.bytes", tip)],
                f"{human(o.bytes_saved)} · {_entries(o.entries)}",
            )
        )
        rows.append(
            [
                _int(rank),
                Cell(name),
                _int(o.entries, f"owner.{rank}.entries"),
                Cell(f"{_hours(o.seconds):,}", f"owner.{rank}.seconds", o.seconds, True),
                _size(o.bytes_saved, f"owner.{rank}.bytes"),
                Cell(_pct(o.bytes_saved, saved), num=True),
            ]
        )
    intro = (
        f"These {len(data.owners)} hold {human(top)} ({_pct(top, saved)}) of the storage to "
        f"free; {int(data.headline['unique users']):,} owners have candidates in all."
    )
    if data.hide_owners:
        intro += " Owner names are hidden in this report: owners are numbered by rank."
    table = Table(
        ["rank", "owner", "entries", "hours", "storage", "share"],
        rows,
        bar_column=4,
        numeric=frozenset({0, 2, 3, 4, 5}),
    )
    chart = charts.hbars("chart-owners", section.title, series, bars)
    section.blocks += [Para(intro), Figure(chart, table)]
    return section


def _media_section(data: ReportData) -> Section:
    section = Section("media", "Media types")
    columns = [*data.rules, "total"]
    values = {c: _summary_column(data.summary, c) for c in columns}
    series = _rule_series(data.rules)
    bars, rows = [], []
    for metric, label in MEDIA_ROWS:
        counts = {c: int(values[c][metric]) for c in columns}
        segments = [
            Segment(counts[c], f"media.{metric}.{c}", f"{label}, {c}: {_entries(counts[c])}")
            for c in data.rules
        ]
        bars.append(Bar(label, segments, f"{_entries(counts['total'])}"))
        rows.append([Cell(label), *(_int(counts[c], f"media.{metric}.{c}") for c in columns)])
    table = Table(
        ["type", *columns],
        rows,
        bar_column=len(columns),
        numeric=frozenset(range(1, len(columns) + 1)),
    )
    section.blocks.append(
        Para(
            "Candidates by media type, stacked by rule, as in the seed's summary. YouTube "
            "(external) and quiz entries are also counted under their media type."
        )
    )
    if int(data.headline["candidates"]):
        chart = charts.hbars("chart-media", "Candidates by media type", series, bars)
        section.blocks.append(Figure(chart, table))
    else:
        section.blocks.append(table)
    return section


def _progress_section(data: ReportData) -> Section:
    section = Section("progress", "Enforcement progress")
    blocks = section.blocks
    planned = sum(data.stages.values(), Amount())
    if not data.deletes_ran:
        blocks.append(
            Para(
                "No delete has run yet: nothing has been removed from Kaltura. Below is how "
                "far the candidates have got towards it.",
                "lead",
            )
        )
    else:
        freed, held = data.freed, data.held_total
        blocks.append(
            Cards(
                [
                    Card(
                        "Removed from Kaltura",
                        _int(freed.entries, "progress.removed.entries"),
                        f"of {planned.entries:,} candidates: deleted, recycled or stripped",
                    ),
                    Card(
                        "Storage freed",
                        Cell(human(freed.bytes), "progress.freed.bytes", freed.bytes, True),
                        f"{freed.bytes:,} bytes",
                    ),
                    Card(
                        "Held back",
                        _int(held.entries, "progress.held.entries"),
                        f"{human(held.bytes)} to free, waiting on the reasons below",
                    ),
                ]
            )
        )
    blocks.append(
        Para(
            f"Backed up and verified: {data.backed_up.entries:,} of the "
            f"{data.backup_planned.entries:,} candidates whose rule deletes the entry. The "
            "others keep their source flavor and need no backup."
        )
    )
    if not planned.entries:
        blocks.append(Para("No entry is a candidate."))
        return section
    stages = [
        (key, words, group)
        for key, words, group in STAGES
        if data.deletes_ran or key not in DELETE_STAGE_STATES  # all 0 before any delete
    ]
    # The legend names only the groups drawn.
    used = {g for k, _, g in stages if data.stages.get(k, Amount()).entries}
    series = [s for s in STAGE_GROUPS if s.name in used]
    groups = {s.name: i for i, s in enumerate(series)}
    bars, rows = [], []
    for key, words, group in stages:
        a = data.stages.get(key, Amount())
        row = [
            Cell(words),
            Cell(group),
            _int(a.entries, f"stage.{key}.entries"),
            _size(a.bytes, f"stage.{key}.bytes"),
        ]
        if data.deletes_ran:
            freed = data.removed.get(key)
            row.append(_size(freed.bytes, f"stage.{key}.freed") if freed else Cell("", num=True))
        rows.append(row)
        if a.entries:  # the table lists every stage; the chart only those holding entries
            tip = f"{words}: {_entries(a.entries)}, {human(a.bytes)} to free"
            segment = Segment(a.entries, f"stage.{key}.entries", tip)
            text = f"{_entries(a.entries)} · {human(a.bytes)}"
            bars.append(Bar(words, _one_of(len(series), groups[group], segment), text))
    total = [
        Cell("all candidates"),
        Cell(""),
        _int(planned.entries, "progress.planned.entries"),
        _size(planned.bytes, "progress.planned.bytes"),
    ]
    headers = ["stage", "group", "entries", "storage to free"]
    if data.deletes_ran:
        headers.append("freed")
        total.append(_size(data.freed.bytes))
    table = Table(headers, rows, total, 2, frozenset({2, 3, 4}))
    chart = charts.hbars("chart-progress", "Where the candidates stand", series, bars)
    blocks.append(Figure(chart, table))
    if data.deletes_ran:
        blocks += _held_blocks(data)
        blocks += _timeline_blocks(data)
    return section


def _held_blocks(data: ReportData) -> list[Block]:
    blocks: list[Block] = [Heading("Held back, by reason")]
    if not data.held:
        return [*blocks, Para("No candidate is held back.")]
    series = [Series("held back", charts.PALETTE["orange"], "stripes")]
    bars, rows = [], []
    for i, (reason, a) in enumerate(data.held, 1):
        tip = f"{reason}: {_entries(a.entries)}, {human(a.bytes)} to free"
        bars.append(Bar(reason, [Segment(a.entries, f"held.{i}.entries", tip)], f"{a.entries:,}"))
        rows.append(
            [
                Cell(reason, f"held.{i}.reason", reason),
                _int(a.entries, f"held.{i}.entries"),
                _size(a.bytes, f"held.{i}.bytes"),
            ]
        )
    chart = charts.hbars("chart-held", "Held back by reason", series, bars)
    table = Table(["reason", "entries", "storage to free"], rows, None, 1, frozenset({1, 2}))
    return [
        *blocks,
        Para(
            "Candidates the delete stage's last plan held back, grouped by the start of the "
            "reason it gave (the text before the first colon)."
        ),
        Figure(chart, table),
    ]


def _periods(t: Timeline) -> list[str]:
    """Every period from the first to the last, empty ones included: the axis is time."""
    assert t.first is not None and t.last is not None
    out, day, last = [], date.fromisoformat(t.first), date.fromisoformat(t.last)
    while day <= last:
        out.append(day.isoformat())
        if t.unit == "day":
            day += timedelta(days=1)
        elif t.unit == "week":
            day += timedelta(days=7)
        else:
            day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return out


def _timeline_blocks(data: ReportData) -> list[Block]:
    t = data.timeline
    blocks: list[Block] = [Heading(f"Storage freed over time, by {t.unit}")]
    if not t.rows:
        return [*blocks, Para("The delete stage has not finished any entry yet.")]
    cells = {(r.period, r.removed_as): r for r in t.rows}
    kinds = [k for k in REMOVED_WORDS if any(r.removed_as == k for r in t.rows)]
    series = [s for s in REMOVED_SERIES if s.name in {REMOVED_WORDS[k] for k in kinds}]
    bars, rows, running = [], [], 0
    for period in _periods(t):
        got = [(k, cells.get((period, k))) for k in kinds]
        freed = sum(r.bytes_freed for _, r in got if r)
        segments = [
            Segment(
                r.bytes_freed,
                f"time.{period}.{k}.bytes",
                f"{period}, {REMOVED_WORDS[k]}: {_entries(r.entries)}, {human(r.bytes_freed)}",
            )
            if r
            else Segment(0, None, "")
            for k, r in got
        ]
        label = period[:7] if t.unit == "month" else period[5:]
        bars.append(Bar(label, segments, human(freed) if freed else ""))
        if not any(r for _, r in got):
            continue
        running += freed
        rows.append(
            [
                Cell(period),
                *(_int(r.entries if r else 0, f"time.{period}.{k}.entries") for k, r in got),
                *(_size(r.bytes_freed if r else 0, f"time.{period}.{k}.bytes") for k, r in got),
                _size(freed, f"time.{period}.bytes"),
                _size(running, f"time.{period}.cumulative"),
            ]
        )
    words = [REMOVED_WORDS[k] for k in kinds]
    headers = [
        t.unit,
        *(f"{w}: entries" for w in words),
        *(f"{w}: freed" for w in words),
        "freed",
        "freed so far",
    ]
    n = len(headers)
    chart = charts.columns("chart-time", "Storage freed over time", series, bars, charts.byte_axis)
    table = Table(headers, rows, None, n - 2, frozenset(range(1, n)))
    return [
        *blocks,
        Para(
            f"Each {t.unit} (UTC) on which the delete stage finished entries, with the storage "
            "it recorded as freed. A recycled entry counts once, when it went to the recycle "
            "bin."
        ),
        Figure(chart, table),
    ]


def _summary_section(data: ReportData) -> Section:
    table = data.summary
    rows = []
    for row in table.rows:  # type: ignore[union-attr]
        cells = [Cell(str(row[0]))]
        for column, value in zip(table.headers[1:], row[1:], strict=True):
            key = f"summary.{row[0]}.{column}"
            if isinstance(value, int | Decimal):
                cells.append(Cell(f"{value:,}", key, value, True))
            else:
                cells.append(Cell(str(value), key, value, True))
        rows.append(cells)
    return Section(
        "summary",
        "The seed's summary table",
        [
            Para(
                "The retention toolkit's summary, as kretain summary prints it: one column per "
                "rule, and the total. Unique users count each owner once, whatever their rules."
            ),
            Table(table.headers, rows, numeric=frozenset(range(1, len(table.headers)))),
        ],
    )


def _method_section(data: ReportData) -> Section:
    p = data.policy_text
    counted = "; ".join(words for _, words, _ in STAGES)
    not_counted = [f"{words} ({_entries(data.not_counted[s])})" for s, words in NOT_COUNTED]
    blocks: list[Block] = [
        Heading(f"The policy, as of {p['as_of']}"),
        Para(p["order"]),
        Items([r["text"] for r in p["rules"]], ordered=True),
    ]
    if data.unknown_rules:
        blocks.append(
            Para(
                "Rules found in the database but not in the settings this report was made "
                f"with: {', '.join(data.unknown_rules)}. Entries were classified by the "
                "settings of the run that judged them.",
                "warn",
            )
        )
    blocks += [
        Heading("Exemptions"),
        Para("Entries a rule matched that are reported, never touched:"),
        Items(p["exemptions"]["text"]),
        Heading("What is counted"),
        Para(
            "A candidate is an entry a rule matched and no exemption spared, from the moment "
            f"it was found until kretain has finished with it: {counted}. Failed steps are "
            "still to be done, so they stay counted."
        ),
        Para(
            "Last played is Kaltura's lastPlayedAt, which Kaltura records from its analytics. "
            "Never played means no play is recorded for the entry. An entry whose Kaltura "
            "record carries no play data is not judged by the play rules: it is put in error "
            "(fail closed), never counted as a candidate."
        ),
        Para(
            "Storage to free is what each entry's action frees, from Kaltura's asset sizes "
            "measured by sizing: deleting the entry frees every flavor, caption, attachment "
            "and thumbnail; deleting flavors frees every flavor except the source. Candidates "
            "not sized yet count as 0 bytes. Storage freed is what the delete stage recorded "
            "for each entry it finished. Hours are the running time of video and audio (images "
            "have none). Owners are the entries' Kaltura user ids."
        ),
        Para(
            "A multi-stream entry's children are not counted on their own: their assets are "
            "counted inside the parent entry's storage."
        ),
        Heading("What is never counted"),
        Items(not_counted),
        Para(
            "Dates and times are UTC; the creation year is that of createdAt. Sizes use binary "
            "units (1 KiB = 1,024 bytes), as the summary does."
        ),
    ]
    return Section("method", "How this was computed", blocks)


def report_sections(data: ReportData) -> list[Section]:
    return [
        _headline(data),
        _rules_section(data),
        _years_section(data),
        _owners_section(data),
        _media_section(data),
        _progress_section(data),
        _summary_section(data),
        _method_section(data),
    ]


def _footer() -> str:
    return f"Made by kretain {__version__} from the state database, read-only."


def render_html(data: ReportData) -> str:
    """One page: inline CSS and SVG, no script, no external resource."""
    footer = _footer() + " This page is self-contained: it needs no network and runs no script."
    return to_html(TITLE, _meta(data), report_sections(data), footer)


def render_markdown(data: ReportData) -> str:
    """The same sections and tables, with text bars where the page has charts."""
    return to_markdown(TITLE, _meta(data), report_sections(data), _footer())


# ---- writing -----------------------------------------------------------------------------------


class ReportInterrupted(ReportError):
    """Ctrl-C stopped the report (exit code 130); no file was written."""

    exit_code = 130

    def __init__(self) -> None:
        super().__init__("report interrupted (Ctrl-C); nothing was written")


def default_report_path(db_path: Path, fmt: str) -> Path:
    """``kretain-report.html`` (``.md`` for Markdown) next to the database."""
    suffix = ".md" if fmt == "markdown" else ".html"
    return Path(db_path).expanduser().resolve().parent / f"kretain-report{suffix}"


def _refuse_database_files(db_path: Path, out: Path) -> None:
    db = Path(db_path).expanduser().resolve()
    target = out.expanduser().resolve()
    kin = {db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal", ".lock"))}
    if target in kin:
        raise ReportError(f"refusing to write the report over {target}: that is the database")


def _write_atomically(path: Path, text: str) -> None:
    """Write beside ``path``, then rename, so a reader (or a mail client) never sees half."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ReportError(
            f"cannot write the report to {path}: {exc.strerror} (name another file with --out)"
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


async def render_report(
    db_path: Path,
    *,
    fmt: str = "html",
    policy: Policy,
    fallback_as_of: date,
    hide_owners: bool = False,
    now: int | None = None,
) -> tuple[str, str | None]:
    """The report of the database at ``db_path`` as text, and the note of its read-only open
    for the user (None when it opened normally)."""
    if fmt not in FORMATS:
        raise ReportError(f"unknown report format {fmt!r} ({', '.join(FORMATS)})")
    async with await open_store(db_path, readonly=True) as store:
        # Inside query.sigint_stops_queries (the CLI), Ctrl-C stops a statement at once.
        await store.run_sync(lambda conn: conn.set_progress_handler(_ctrl_c.is_set, STEPS))
        try:
            data = await build_report(
                store,
                policy=policy,
                fallback_as_of=fallback_as_of,
                hide_owners=hide_owners,
                now=now,
            )
        except sqlite3.Error as exc:
            if _ctrl_c.is_set():
                raise ReportInterrupted() from None
            raise ReportError(f"cannot read {store.path}: {exc}") from exc
        note = store.note
    return (render_html(data) if fmt == "html" else render_markdown(data)), note


async def write_report(
    db_path: Path,
    out: Path,
    *,
    fmt: str = "html",
    policy: Policy,
    fallback_as_of: date,
    hide_owners: bool = False,
    now: int | None = None,
) -> str | None:
    """Write the report to ``out`` (atomically); returns the read-only open's note or None.
    Refuses to write over the database or its companion files."""
    _refuse_database_files(db_path, out)
    text, note = await render_report(
        db_path,
        fmt=fmt,
        policy=policy,
        fallback_as_of=fallback_as_of,
        hide_owners=hide_owners,
        now=now,
    )
    _write_atomically(out.expanduser(), text)
    return note

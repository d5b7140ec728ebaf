"""kretain report against real databases: every figure read back out of the HTML (its
data-figure/data-value pairs) equals independent SQL written here, bars draw the numbers of the
tables beneath them, user text is escaped, and the page needs nothing from the network."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from reporthelpers import (
    BASE_SPECS,
    CONTROL_OWNER,
    DAY,
    ENFORCE_T0,
    HOSTILE_HELD,
    HOSTILE_OWNER,
    HOSTILE_RULE,
    MD_HOSTILE_OWNER,
    SPECS,
    build,
    enforce,
)

from kretain.policy import Exemptions, Policy
from kretain.reports import build_report, render_report, report_queries, summary_report
from kretain.reports.charts import esc
from kretain.reports.report_queries import table_halves
from kretain.store import Store, open_store, queries
from kretain.store.states import State

IN_POLICY = (
    "candidate",
    "sized",
    "downloading",
    "archived",
    "backup_failed",
    "delete_failed",
    "deleting",
    "deleted",
    "recycled",
    "stripped",
)
PENDING = tuple(s for s in IN_POLICY if s not in ("deleted", "recycled", "stripped"))
REMOVED = ("deleted", "recycled", "stripped")
IN = "(" + ", ".join(f"'{s}'" for s in IN_POLICY) + ")"
NOW = ENFORCE_T0 + 30 * DAY
RUN_AS_OF = "2025-06-30"


def two(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


async def _finish(db: Path, *, as_of: str | None = RUN_AS_OF, finished: bool = True) -> None:
    store = await open_store(db)
    try:
        run_id = await queries.start_run(store, "run", {}, as_of=as_of, now=ENFORCE_T0 - DAY)
        if finished:
            await queries.finish_run(store, run_id, "ok", {}, now=ENFORCE_T0 - DAY + 90)
    finally:
        await store.close()


@pytest.fixture
async def enforced(db_path: Path) -> AsyncIterator[Path]:
    """Every state, and rows the delete stage finished or held back, with their events."""
    store = await open_store(db_path)
    try:
        await enforce(store)
    finally:
        await store.close()
    await _finish(db_path)
    yield db_path


@pytest.fixture
async def before_deletes(db_path: Path) -> AsyncIterator[Path]:
    """SPECS without any row the delete stage would have touched."""
    touched = {State.DELETING, State.DELETED, State.DELETE_FAILED}
    store = await open_store(db_path)
    try:
        await build(store, tuple(s for s in SPECS if s.state not in touched))
    finally:
        await store.close()
    await _finish(db_path)
    yield db_path


async def report(db: Path, fmt: str = "html", **kw: Any) -> str:
    kw.setdefault("policy", Policy.default())
    kw.setdefault("fallback_as_of", date(2026, 1, 1))
    kw.setdefault("now", NOW)
    text, _ = await render_report(db, fmt=fmt, **kw)
    return text


class Figures(HTMLParser):
    """data-figure -> data-value, separately for tables/cards and for SVG charts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, str] = {}
        self.charts: dict[str, str] = {}
        self.rects: dict[str, list[tuple[str, float, float, str]]] = defaultdict(list)
        self.svg: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "svg":
            self.svg = a.get("id")
        key = a.get("data-figure")
        if tag == "rect" and "data-value" in a and self.svg:
            self.rects[self.svg].append(
                (key or "", float(a["width"] or 0), float(a["height"] or 0), a["data-value"] or "")
            )
        if key is None:
            return
        value = a.get("data-value") or ""
        target = self.charts if self.svg else self.tables
        assert target.get(key, value) == value, f"{key} shown with two values"
        target[key] = value

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.svg = None


def figures(html: str) -> Figures:
    parser = Figures()
    parser.feed(html)
    return parser


def _held_prefix(reason: str) -> str:
    i = reason.find(":")
    return reason[:i].strip() if 2 <= i + 1 <= 60 and i >= 1 else reason[:60].strip()


def expected(db: Path) -> dict[str, Any]:
    """Every figure of the report, each from its own SQL (grouping finished in Python only
    where the report's SQL does it with expressions: held-back prefixes, days, ranks)."""
    conn = sqlite3.connect(db)
    one = lambda sql, *p: conn.execute(sql, p).fetchone()[0]  # noqa: E731
    rows = lambda sql, *p: conn.execute(sql, p).fetchall()  # noqa: E731
    e: dict[str, Any] = {}
    candidates = one(f"SELECT count(*) FROM entries WHERE state IN {IN}")
    saved = one(f"SELECT coalesce(sum(bytes_saved), 0) FROM entries WHERE state IN {IN}")
    freed = one(
        "SELECT coalesce(sum(bytes_freed), 0) FROM entries WHERE state IN (?, ?, ?)", *REMOVED
    )
    seconds = one(
        f"SELECT coalesce(sum(duration), 0) FROM entries WHERE state IN {IN} AND media_type != 2"
    )
    e["headline.audited"] = one("SELECT count(*) FROM entries")
    e["headline.candidates"] = candidates
    e["headline.bytes_saved"] = saved
    e["headline.hours"] = two(Decimal(seconds) / 3600)
    e["headline.owners"] = one(f"SELECT count(DISTINCT owner) FROM entries WHERE state IN {IN}")
    e["headline.freed"] = freed
    for policy, action, n, b, unsized in rows(
        "SELECT policy, action, count(*), coalesce(sum(bytes_saved), 0), sum(bytes_saved IS NULL)"
        f" FROM entries WHERE state IN {IN} GROUP BY policy, action"
    ):
        e[f"rule.{policy}.{action}.entries"] = n
        e[f"rule.{policy}.{action}.bytes"] = b
        e[f"rule.{policy}.{action}.unsized"] = unsized
    # years: every year from the first to the last, every rule, zeros included
    by_year = {
        (y, p): (n, b)
        for y, p, n, b in rows(
            "SELECT CAST(strftime('%Y', created_at, 'unixepoch') AS INTEGER), policy, count(*),"
            f" coalesce(sum(bytes_saved), 0) FROM entries WHERE state IN {IN} GROUP BY 1, 2"
        )
    }
    rules = sorted({p for _, p in by_year})
    years = range(min(y for y, _ in by_year), max(y for y, _ in by_year) + 1)
    for y in years:
        for p in rules:
            n, b = by_year.get((y, p), (0, 0))
            e[f"year.{y}.{p}.entries"], e[f"year.{y}.{p}.bytes"] = n, b
        e[f"year.{y}.entries"] = sum(by_year.get((y, p), (0, 0))[0] for p in rules)
        e[f"year.{y}.bytes"] = sum(by_year.get((y, p), (0, 0))[1] for p in rules)
    owners = rows(
        "SELECT owner, count(*), sum(CASE WHEN media_type = 2 THEN 0 ELSE coalesce(duration, 0)"
        f" END), coalesce(sum(bytes_saved), 0) FROM entries WHERE state IN {IN} GROUP BY owner"
    )
    owners.sort(key=lambda o: (-o[3], -o[1], o[0] is None, o[0] or ""))
    for rank, (_, n, secs, b) in enumerate(owners[:20], 1):
        e[f"owner.{rank}.entries"], e[f"owner.{rank}.seconds"] = n, secs
        e[f"owner.{rank}.bytes"] = b
    media = {
        "media type: video": "media_type = 1",
        "media type: audio": "media_type = 5",
        "media type: image": "media_type = 2",
        "media subtype: YouTube": "is_external AND NOT is_quiz",
        "media subtype: Quiz": "is_quiz AND NOT is_external",
        "media subtype: YouTube Quiz": "is_quiz AND is_external",
    }
    for metric, where in media.items():
        sql = f"SELECT policy, count(*) FROM entries WHERE state IN {IN} AND {where}"
        got = dict(rows(sql + " GROUP BY policy"))
        for p in rules:
            e[f"media.{metric}.{p}"] = got.get(p, 0)
        e[f"media.{metric}.total"] = sum(got.values())
    # the table lists every stage (once the delete stage has run), empty ones too
    for key in (*IN_POLICY, "sized.delete_flavors"):
        e[f"stage.{key}.entries"] = e[f"stage.{key}.bytes"] = 0
    for state, action, n, b in rows(
        f"SELECT state, action, count(*), coalesce(sum(bytes_saved), 0) FROM entries "
        f"WHERE state IN {IN} GROUP BY state, action"
    ):
        key = "sized.delete_flavors" if (state, action) == ("sized", "delete_flavors") else state
        e[f"stage.{key}.entries"] += n
        e[f"stage.{key}.bytes"] += b
    for state, b in rows(
        "SELECT state, coalesce(sum(bytes_freed), 0) FROM entries WHERE state IN (?, ?, ?) "
        "GROUP BY state",
        *REMOVED,
    ):
        e[f"stage.{state}.freed"] = b
    e["progress.planned.entries"], e["progress.planned.bytes"] = candidates, saved
    e["progress.removed.entries"] = one(
        "SELECT count(*) FROM entries WHERE state IN (?, ?, ?)", *REMOVED
    )
    e["progress.freed.bytes"] = freed
    pend = "(" + ", ".join(f"'{s}'" for s in PENDING) + ")"
    held: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for reason, b in rows(
        f"SELECT held_reason, coalesce(bytes_saved, 0) FROM entries WHERE state IN {pend} "
        "AND held_reason IS NOT NULL"
    ):
        held[_held_prefix(reason)][0] += 1
        held[_held_prefix(reason)][1] += b
    e["progress.held.entries"] = sum(n for n, _ in held.values())
    for i, (reason, (n, b)) in enumerate(
        sorted(held.items(), key=lambda kv: (-kv[1][0], kv[0])), 1
    ):
        e[f"held.{i}.reason"], e[f"held.{i}.entries"], e[f"held.{i}.bytes"] = reason, n, b
    freed_of = dict(rows("SELECT id, coalesce(bytes_freed, 0) FROM entries"))
    by_day: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for when, to_state, entry in rows(
        "SELECT time, to_state, entry_id FROM events WHERE kind = 'state' "
        "AND from_state = 'deleting' AND to_state IN (?, ?, ?)",
        *REMOVED,
    ):
        day = datetime.fromtimestamp(when, UTC).date().isoformat()
        by_day[(day, to_state)][0] += 1
        by_day[(day, to_state)][1] += freed_of[entry]
    running = 0
    for day in sorted({d for d, _ in by_day}):
        for state in {s for _, s in by_day}:
            n, b = by_day.get((day, state), (0, 0))
            e[f"time.{day}.{state}.entries"], e[f"time.{day}.{state}.bytes"] = n, b
        total = sum(b for (d, _), (_, b) in by_day.items() if d == day)
        running += total
        e[f"time.{day}.bytes"], e[f"time.{day}.cumulative"] = total, running
    conn.close()
    return e


FAMILIES = ("headline", "rule", "year", "owner", "media", "stage", "progress", "held", "time")


async def test_every_figure_equals_independent_sql(enforced: Path) -> None:
    got = figures(await report(enforced)).tables
    want = expected(enforced)
    assert want["headline.freed"] == (6 + 3 + 7) * 1024**3 + 2 * 1024**3 + 512 * 1024**2
    assert want["progress.held.entries"] == 4  # the stale reason of a deleted row is not one
    for family in FAMILIES:
        shown = {k for k in got if k.split(".")[0] == family}
        wanted = {k for k in want if k.split(".")[0] == family}
        assert shown == wanted, family
    for key, value in want.items():
        assert got[key] == str(value), key


async def test_the_seed_summary_table_is_shown_as_summary_py_computes_it(enforced: Path) -> None:
    got = figures(await report(enforced)).tables
    store = await open_store(enforced, readonly=True)
    try:
        table = await summary_report(store)
    finally:
        await store.close()
    for row in table.rows:
        for column, value in zip(table.headers[1:], row[1:], strict=True):
            assert got[f"summary.{row[0]}.{column}"] == str(value)
    conn = sqlite3.connect(enforced)
    for policy, n in conn.execute(
        f"SELECT policy, count(*) FROM entries WHERE state IN {IN} GROUP BY policy"
    ):
        assert got[f"summary.candidates.{policy}"] == str(n)


async def test_bars_draw_the_numbers_of_the_tables_beneath_them(enforced: Path) -> None:
    parsed = figures(await report(enforced))
    assert parsed.charts, "no chart drew a figure"
    for key, value in parsed.charts.items():
        assert parsed.tables[key] == value, key
    # Horizontal bars share one scale per chart: width / value is the same for every bar.
    for chart in ("chart-rules", "chart-owners", "chart-progress", "chart-held"):
        ratios = [w / float(v) for _, w, _, v in parsed.rects[chart] if float(v) and w > 1]
        assert len(ratios) >= 2, chart
        assert max(ratios) == pytest.approx(min(ratios), rel=0.01), chart
    for chart in ("chart-years-entries", "chart-years-bytes", "chart-time"):
        ratios = [h / float(v) for _, _, h, v in parsed.rects[chart] if float(v) and h > 1]
        assert len(ratios) >= 2, chart
        assert max(ratios) == pytest.approx(min(ratios), rel=0.01), chart


async def test_before_any_delete_the_section_says_so_and_draws_no_empty_chart(
    before_deletes: Path,
) -> None:
    html = await report(before_deletes)
    progress = html[html.index('<section id="progress">') : html.index('<section id="summary">')]
    assert "No delete has run yet: nothing has been removed from Kaltura." in progress
    for absent in ("chart-held", "chart-time", "Freed so far"):
        assert absent not in html
    for absent in ("Storage freed", "Held back", "Removed from Kaltura"):
        assert absent not in progress
    parsed = figures(html)
    assert not [k for k in parsed.tables if k.startswith(("time.", "held.", "headline.freed"))]
    # every stage the chart draws holds entries; the table lists the stages before deletes
    assert all(float(v) > 0 for _, _, _, v in parsed.rects["chart-progress"])
    stages = {k.split(".")[1] for k in parsed.tables if k.startswith("stage.")}
    assert stages.isdisjoint({"deleting", "delete_failed", "deleted", "recycled", "stripped"})
    assert figures(html).tables == figures(await report(before_deletes)).tables  # deterministic


async def test_user_text_is_escaped_in_tables_and_in_svg(enforced: Path) -> None:
    html = await report(enforced)
    assert "<script" not in html and "<i>" not in html and "<owner>" not in html
    assert "\x1b" not in html and "\u202e" not in html
    for hostile in (HOSTILE_OWNER, MD_HOSTILE_OWNER, HOSTILE_RULE, HOSTILE_HELD.split(":")[0]):
        assert esc(hostile) in html
    # in SVG: bar labels (text) and tooltips (title)
    svgs = "".join(re.findall(r"<svg.*?</svg>", html, re.S))
    assert f"<title>{esc(HOSTILE_RULE)}, " in svgs
    assert esc(HOSTILE_HELD.split(":")[0]) + "</text>" in svgs
    assert esc(CONTROL_OWNER) == "evil\ufffd[2J\ufffdowner"
    assert f"{esc(CONTROL_OWNER)}:" in svgs  # an owner's tooltip


async def test_markdown_has_the_same_tables_and_escapes_user_text(enforced: Path) -> None:
    text = await report(enforced, fmt="markdown")
    html_titles = re.findall(r"<h2>(.*?)</h2>", await report(enforced))
    assert re.findall(r"^## (.*)$", text, re.M) == [t.replace("&#x27;", "'") for t in html_titles]
    want = expected(enforced)
    assert f"| Candidates | {want['headline.candidates']:,} |" in text
    assert "<" not in text.replace("\\<", "")
    assert "\x1b" not in text
    assert "\\*\\*bold\\*\\* \\| \\[link\\](http://x) \\<b\\>" in text
    # every table row has as many cells as its header: no user text adds a column
    for block in re.findall(r"((?:^\|.*\|\n)+)", text, re.M):
        lines = block.strip().split("\n")
        cells = [len(re.split(r"(?<!\\)\|", line)) for line in lines]
        assert len(set(cells)) == 1, lines[0]
    assert "█" in text  # text bars stand in for the charts
    assert "<svg" not in text


async def test_hide_owners_names_no_owner_anywhere(enforced: Path) -> None:
    secret = "exempt.person@example.edu"
    policy = Policy(rules=Policy.default().rules, exemptions=Exemptions(owners=frozenset({secret})))
    shown = await report(enforced, policy=policy)
    assert secret in shown and esc(HOSTILE_OWNER) in shown
    owners = [
        o for (o,) in sqlite3.connect(enforced).execute("SELECT DISTINCT owner FROM entries") if o
    ]
    for fmt in ("html", "markdown"):
        hidden = await report(enforced, fmt=fmt, policy=policy, hide_owners=True)
        assert secret not in hidden
        assert "1 name hidden" in hidden
        for owner in owners:
            for form in (owner, esc(owner)):
                assert not re.search(rf"(?<![\w.-]){re.escape(form)}(?![\w.-])", hidden), owner
        assert "owner 1" in hidden and "owners are numbered by rank" in hidden


async def test_the_page_needs_no_network_and_runs_no_script(enforced: Path) -> None:
    html = await report(enforced)
    lowered = html.lower()
    for banned in ("<script", "<link", "<img", "<iframe", "<object", "<embed", "@import", "src="):
        assert banned not in lowered, banned
    assert not re.search(r"\bon[a-z]+\s*=", lowered)  # no event handlers
    # the only address is an owner's text (reporthelpers' hostile owner), shown as text
    assert re.findall(r"https?://", html.replace(esc(MD_HOSTILE_OWNER), "")) == []
    assert set(re.findall(r"url\((.)", html)) <= {"#"}  # only the page's own patterns
    assert set(re.findall(r'href="(.)', html)) <= {"#"}


async def test_headline_and_meta_name_the_run_and_its_as_of(enforced: Path) -> None:
    html = await report(enforced)
    assert f"The policy judged the entries as of {RUN_AS_OF}." in html
    assert "Read 2026-01-31 12:00 UTC from kretain.db (Kaltura partner 1234567)." in html
    assert "Last run: run 1 (run, ok), finished 2025-12-31 12:01 UTC." in html
    assert f"The policy, as of {RUN_AS_OF}" in html  # described at the run's as-of
    # 6-month is in the data but not in the default policy: said plainly
    assert "Rules found in the database but not in the settings" in html and "6-month" in html


async def test_a_run_still_going_and_no_as_of(db_path: Path) -> None:
    store = await open_store(db_path)
    try:
        await build(store, BASE_SPECS[:4])
    finally:
        await store.close()
    await _finish(db_path, as_of=None, finished=False)
    html = await report(db_path, fallback_as_of=date(2026, 2, 3))
    assert "Run 1 (run) is still going, started 2025-12-31 12:00 UTC" in html
    assert "No run recorded an as-of date; the policy is described as of 2026-02-03." in html


async def test_an_empty_database(db_path: Path) -> None:
    await (await open_store(db_path)).close()
    html = await report(db_path)
    assert "No run is recorded in this database." in html
    assert html.count("No entry is a candidate.") >= 4
    assert "<svg" not in html
    assert figures(html).tables["headline.audited"] == "0"
    assert "No entry is a candidate." in await report(db_path, fmt="markdown")


async def test_timeline_by_week_when_deletes_span_months(db_path: Path) -> None:
    store = await open_store(db_path)
    try:
        await enforce(store, days_apart=40)  # the steps span 160 days
    finally:
        await store.close()
    html = await report(db_path)
    assert "Storage freed over time, by week" in html
    got = figures(html).tables
    mondays = {
        k.split(".")[1]: v
        for k, v in got.items()
        if k.startswith("time.") and k.count(".") == 2 and k.endswith(".bytes")
    }
    for day in mondays:
        assert date.fromisoformat(day).weekday() == 0
    # the first finished delete (2026-01-01, a Thursday) falls in the week of 2025-12-29
    first = datetime.fromtimestamp(ENFORCE_T0, UTC).date()
    assert (first - timedelta(days=first.weekday())).isoformat() in mondays
    conn = sqlite3.connect(db_path)
    total = conn.execute(
        "SELECT sum(e.bytes_freed) FROM events v JOIN entries e ON e.id = v.entry_id "
        "WHERE v.kind = 'state' AND v.from_state = 'deleting' AND v.to_state IN (?, ?, ?)",
        REMOVED,
    ).fetchone()[0]
    assert sum(int(v) for v in mondays.values()) == total


async def test_reads_while_a_writer_holds_the_database(enforced: Path) -> None:
    before = figures(await report(enforced)).tables
    store = await open_store(enforced)  # the writer's lock, as `kretain run` holds it
    writer = sqlite3.connect(enforced, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO meta (key, value) VALUES ('report-test', 'uncommitted')")
        writer.execute("UPDATE entries SET bytes_freed = 1 WHERE state = 'deleted'")
        during = figures(await report(enforced)).tables
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        await store.close()
    assert during == before  # the committed snapshot, uncommitted work unseen


async def test_both_passes_read_one_state_while_a_writer_commits(built: Path) -> None:
    """The connections of table_halves see the same committed state, whatever a writer commits
    meanwhile (a commit between their starts means another try, or one connection)."""
    stop = threading.Event()

    def write() -> None:
        conn = sqlite3.connect(built, isolation_level=None)
        try:
            for n in itertools.count():
                if stop.is_set():
                    return
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('report-test', ?)", (n,)
                )
                time.sleep(0.0005 * (n % 4))  # commits back to back, and with gaps
        finally:
            conn.close()

    sql = "SELECT value FROM meta WHERE key = 'report-test'"
    writer = threading.Thread(target=write)
    store = await open_store(built, readonly=True)
    writer.start()
    try:
        seen = set()
        for _ in range(40):
            async with table_halves(store) as halves:
                one = await halves[0].fetchall(sql)
                await asyncio.sleep(0.002)
                assert await halves[-1].fetchall(sql) == one == await halves[0].fetchall(sql)
                seen.add((tuple(tuple(r) for r in one), len(halves)))
        assert len(seen) > 1  # the writer did commit meanwhile
    finally:
        stop.set()
        writer.join()
        await store.close()


async def test_the_halves_read_every_row_once(enforced: Path) -> None:
    conn = sqlite3.connect(enforced)
    whole = sorted(r[0] for r in conn.execute("SELECT id FROM entries"))
    conn.close()
    store = await open_store(enforced, readonly=True)
    try:
        async with table_halves(store) as halves:
            ids = [[r[0] for r in await half.fetchall("SELECT id FROM entries")] for half in halves]
    finally:
        await store.close()
    assert len(halves) == 2 and all(ids)
    assert sorted(ids[0] + ids[1]) == whole


async def test_one_connection_when_a_writer_never_pauses(
    enforced: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No try left: the caller's connection reads the whole table, with the same figures."""
    want = figures(await report(enforced)).tables
    monkeypatch.setattr(report_queries, "SNAPSHOT_TRIES", 0)
    store = await open_store(enforced, readonly=True)
    try:
        async with table_halves(store) as halves:
            assert halves == [store]
            whole = sqlite3.connect(enforced).execute("SELECT count(*) FROM entries").fetchone()
            assert tuple(await store.fetchone("SELECT count(*) FROM entries")) == whole
    finally:
        await store.close()
    assert figures(await report(enforced)).tables == want


async def test_the_callers_store_is_left_as_it_was(ro_store: Store) -> None:
    """build_report reads through a temporary view named entries; it is gone afterwards."""
    data = await build_report(ro_store, policy=Policy.default(), fallback_as_of=date(2026, 1, 1))
    assert data.audited == len(SPECS)
    assert await ro_store.fetchall("SELECT name FROM temp.sqlite_master") == []
    assert not ro_store.conn.in_transaction
    plan = await ro_store.fetchall("EXPLAIN QUERY PLAN SELECT * FROM entries WHERE state = 'x'")
    assert "INDEX" in str(plan[-1][-1])  # the real table again, indexes and all


async def test_the_report_never_writes_the_database(enforced: Path) -> None:
    def digest() -> str:
        return hashlib.sha256(enforced.read_bytes()).hexdigest()

    sqlite3.connect(enforced).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    before = digest()
    await report(enforced)
    await report(enforced, fmt="markdown")
    assert digest() == before


def test_axes_have_round_ticks_past_the_top() -> None:
    from kretain.reports.charts import byte_axis, count_axis

    ticks, labels = byte_axis(37 * 1024**4 + 5)
    assert ticks[0] == 0 and ticks[-1] >= 37 * 1024**4 and labels[-1].endswith("TiB")
    assert all(b > a for a, b in itertools.pairwise(ticks))
    ticks, labels = count_axis(12_706)
    assert ticks[-1] >= 12_706 and labels[1] == f"{ticks[1]:,}" and len(ticks) <= 7

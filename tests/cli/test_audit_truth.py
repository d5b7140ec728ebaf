"""The audit's numbers against an independent computation over the simulator's own data.

Nothing here reuses kretain's policy or sizing code: the expected classification is
plain SQL over the simulator's `entries` table, and bytes come from the simulator's
asset derivation.
"""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
from datetime import UTC, datetime

import pytest

from kretain.config import load_settings
from kretain.output import render_to_string
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator
from kretain.workers.runner import run_pipeline

YEAR = 365 * 86_400
SPEC = PartnerSpec(entries=3_000, seed=21, burst=40)


def expected_policy(sim, as_of_ts: int) -> dict[str, str]:
    two, four = as_of_ts - 2 * YEAR, as_of_ts - 4 * YEAR
    rows = sim.partner.sql(
        "SELECT id, status, created_at, last_played_at FROM entries "
        "WHERE parent_entry_id IS NULL AND status != 3 AND display_in_search != -2 "
        "AND type IN ('1', 'externalMedia.externalMedia')"
    )
    expected = {}
    for entry_id, status, created, played in rows:
        if status != 2:
            if created <= two:
                expected[entry_id] = "non-ready"
        elif created <= four and (played is None or played <= four):
            expected[entry_id] = "4-year"
        elif four < created <= two and (played is None or played <= two):
            expected[entry_id] = "2-year"
    return expected


def asset_bytes(asset: dict) -> int:
    return asset["sizeInBytes"] if asset.get("sizeInBytes") else asset["size"] * 1024


def expected_bytes(sim, entry_id: str, policy: str) -> int:
    children = [
        r[0]
        for r in sim.partner.sql("SELECT id FROM entries WHERE parent_entry_id = ?", (entry_id,))
    ]
    assets = [a for eid in [entry_id, *children] for a in sim.partner.assets_of(eid)]
    if policy == "2-year":
        return sum(
            asset_bytes(a) for a in assets if a["kind"] == "flavor" and not a.get("isOriginal")
        )
    return sum(asset_bytes(a) for a in assets)


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("truth")
    as_of = datetime.fromtimestamp(SPEC.now, UTC).date()
    with run_simulator(SPEC) as sim:
        settings = load_settings(
            {
                "service_url": sim.url,
                "partner_id": str(SPEC.partner_id),
                "db": str(workdir / "k.db"),
                "as_of": as_of.isoformat(),
            },
            {"KALTURA_ADMIN_SECRET": SPEC.admin_secret},
            workdir,
            None,
        )
        report = asyncio.run(run_pipeline(settings, stage="audit"))
        as_of_ts = int(datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC).timestamp())
        yield sim, settings.db, report, expected_policy(sim, as_of_ts)


def test_candidates_are_exactly_the_qualifying_set(audit) -> None:
    sim, db, report, expected = audit
    assert report.status == "ok", report.problems
    con = sqlite3.connect(db)
    got = dict(con.execute("SELECT id, policy FROM entries WHERE state IN ('candidate', 'sized')"))
    assert len(expected) > 300
    assert got == expected


def test_sizing_matches_simulator_to_the_byte(audit) -> None:
    sim, db, _, expected = audit
    con = sqlite3.connect(db)
    got = dict(con.execute("SELECT id, bytes_saved FROM entries WHERE state = 'sized'"))
    assert set(got) == set(expected)
    for entry_id, policy in expected.items():
        assert got[entry_id] == expected_bytes(sim, entry_id, policy), entry_id


def test_summary_equals_independent_sql(audit) -> None:
    sim, db, _, expected = audit
    from kretain.reports.summary import summary_report
    from kretain.store.db import open_store

    async def table():
        async with await open_store(db, readonly=True) as store:
            t = await summary_report(store)
            if hasattr(t.rows, "__aiter__"):
                t.rows = [r async for r in t.rows]
            return render_to_string(t, "csv")

    rows = {r["metric"]: r for r in csv.DictReader(io.StringIO(asyncio.run(table())))}
    sim_db = sqlite3.connect(":memory:")
    sim_db.execute(
        "CREATE TABLE e (id, policy, user_id, plays, media_type, type, "
        "capabilities, duration, bytes)"
    )
    for entry_id, policy in expected.items():
        ((user, plays, media, etype, caps, duration),) = sim.partner.sql(
            "SELECT user_id, plays, media_type, type, capabilities, duration FROM entries "
            "WHERE id = ?",
            (entry_id,),
        )
        sim_db.execute(
            "INSERT INTO e VALUES (?,?,?,?,?,?,?,?,?)",
            (
                entry_id,
                policy,
                user,
                plays,
                media,
                etype,
                caps,
                duration,
                expected_bytes(sim, entry_id, policy),
            ),
        )
    for policy in ("2-year", "4-year", "non-ready"):

        def one(sql: str, policy: str = policy) -> int:
            return sim_db.execute(sql + " AND policy = ?", (policy,)).fetchone()[0] or 0

        assert int(rows["candidates"][policy]) == one("SELECT count(*) FROM e WHERE 1")
        assert int(rows["unique users"][policy]) == one(
            "SELECT count(DISTINCT user_id) FROM e WHERE 1"
        )
        assert int(rows["unique users (0 plays)"][policy]) == one(
            "SELECT count(DISTINCT user_id) FROM e WHERE coalesce(plays, 0) = 0"
        )
        for label, media in (("video", 1), ("audio", 5), ("image", 2)):
            key = next(k for k in rows if "media type" in k and label in k)
            assert int(rows[key][policy]) == one(
                f"SELECT count(*) FROM e WHERE media_type = {media}"
            )
        yt = "type = 'externalMedia.externalMedia'"
        quiz = "capabilities LIKE '%quiz.quiz%'"
        for label, cond in (
            ("YouTube Quiz", f"{yt} AND {quiz}"),
            ("YouTube", f"{yt} AND NOT ({quiz})"),
            ("Quiz", f"{quiz} AND NOT ({yt})"),
        ):
            key = next(
                k
                for k in rows
                if k.endswith("subtype " + label) or (k.endswith(label) and "subtype" in k)
            )
            assert int(rows[key][policy]) == one(f"SELECT count(*) FROM e WHERE {cond}"), label
        seconds = next(k for k in rows if "duration" in k and "second" in k)
        assert int(rows[seconds][policy]) == one(
            "SELECT sum(duration) FROM e WHERE media_type != 2"
        )
        saved = next(k for k in rows if k.startswith("bytes"))
        assert int(rows[saved][policy]) == one("SELECT sum(bytes) FROM e WHERE 1")

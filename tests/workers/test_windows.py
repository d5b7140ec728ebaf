"""Unit tests of the pure window/cursor planner (no I/O).

The listing semantics the planner relies on are re-stated here as a tiny
reference function over a list of rows (ordered, capped at 10,000 rows per
query, true totalCount), so the planner can be driven to completion on
adversarial layouts: bursts in one second, bursts in one (created, updated)
pair, windows with gaps, and resumption from a JSON-saved cursor.
"""

from __future__ import annotations

import random

import pytest

from kretain.workers.windows import (
    CAP,
    Cursor,
    Mode,
    Row,
    UnorderedPage,
    advance,
    listing_passes,
    needs_split,
    request_for,
    split_window,
)


def _list(rows: list[Row], f: dict[str, str], page: int, size: int = 500) -> tuple[list[Row], int]:
    def ok(r: Row) -> bool:
        checks = [
            ("createdAtGreaterThanOrEqual", r.created_at, 1),
            ("createdAtLessThanOrEqual", r.created_at, -1),
            ("updatedAtGreaterThanOrEqual", r.updated_at, 1),
            ("updatedAtLessThanOrEqual", r.updated_at, -1),
        ]
        return all(key not in f or (v - int(f[key])) * sign >= 0 for key, v, sign in checks)

    key = "created_at" if f["orderBy"] == "+createdAt" else "updated_at"
    hits = sorted((r for r in rows if ok(r)), key=lambda r: (getattr(r, key), r.id))
    offset = (page - 1) * size
    if offset >= CAP:
        raise AssertionError("QUERY_EXCEEDED_MAX_MATCHES_ALLOWED")
    return hits[offset : min(offset + size, CAP)], len(hits)


def _drain(rows, lo, hi, cursor=None, stop_after=None, size=500):
    """Run one window to completion; returns (ids taken in order, requests, errors, cursor)."""
    cursor = cursor or Cursor()
    taken: list[str] = []
    errors: list[str] = []
    requests = 0
    while True:
        f, page = request_for({}, lo, hi, cursor)
        got, total = _list(rows, f, page, size)
        requests += 1
        step = advance(cursor, lo, hi, got, total, page_size=size)
        taken.extend(step.take)
        if step.error:
            errors.append(step.error)
        # Round-trip through JSON as the store would.
        cursor = Cursor.from_json(step.cursor.to_json())
        if step.done:
            return taken, requests, errors, None
        if stop_after is not None and requests >= stop_after:
            return taken, requests, errors, cursor
        assert requests < 10_000, "planner does not terminate"


def _rows(n: int, rng: random.Random, span: int = 100_000, start: int = 1_600_000_000) -> list[Row]:
    out = []
    for i in range(n):
        c = start + rng.randrange(span)
        out.append(Row(f"0_{i:08d}", c, c + rng.randrange(50)))
    return out


def test_passes_use_media_filter_and_ornull() -> None:
    ready, nonready = listing_passes((1_600_000_000, 1_650_000_000), (1_600_000_000, None))
    assert [p.name for p in listing_passes(None, (1_600_000_000, None))] == ["nonready"]
    (only,) = listing_passes((1_600_000_000, None), None)
    assert "lastPlayedAtLessThanOrEqualOrNull" not in only.filter
    assert ready.filter["objectType"] == "KalturaMediaEntryFilter"
    assert ready.filter["statusIn"] == "2"
    assert ready.filter["lastPlayedAtLessThanOrEqualOrNull"] == "1650000000"
    assert "lastPlayedAtLessThanOrEqual" not in ready.filter
    assert ready.filter["typeIn"] == "1,externalMedia.externalMedia"
    assert "lastPlayedAtLessThanOrEqualOrNull" not in nonready.filter
    assert "2" not in nonready.filter["statusIn"].split(",")
    assert "3" not in nonready.filter["statusIn"].split(",")
    assert "virusScan.Infected" in nonready.filter["statusIn"]
    for p in (ready, nonready):
        assert p.filter["createdAtLessThanOrEqual"] == "1600000000"


def test_split_window_halves_and_single_second() -> None:
    assert split_window(0, 9) == [(0, 4), (5, 9)]
    assert split_window(0, 1) == [(0, 0), (1, 1)]
    assert split_window(7, 7) == [(7, 7)]
    assert needs_split(0, 9, CAP) and not needs_split(0, 9, CAP - 1)
    assert not needs_split(5, 5, 50_000)


def test_plain_window_lists_everything_once() -> None:
    rng = random.Random(1)
    rows = _rows(3_000, rng, span=2_000)  # ~1.5 per second: many ties at page edges
    taken, requests, errors, _ = _drain(rows, 1_600_000_000, 1_600_002_000)
    assert sorted(taken) == sorted(r.id for r in rows)
    assert len(taken) == len(set(taken))
    assert not errors
    assert requests <= 3_000 // 500 + 2


def test_burst_second_larger_than_a_page_and_than_the_cap() -> None:
    rng = random.Random(2)
    rows = _rows(1_200, rng, span=1_000)
    # 12,000 entries in one createdAt second, updatedAt spread over 3,000 seconds.
    burst_at = 1_600_000_500
    rows += [Row(f"1_{i:08d}", burst_at, burst_at + rng.randrange(3_000)) for i in range(12_000)]
    # 700 entries sharing one createdAt AND updatedAt second: pageIndex paging.
    rows += [Row(f"2_{i:08d}", burst_at, burst_at + 77) for i in range(700)]
    taken, _, errors, _ = _drain(rows, 1_600_000_000, 1_600_001_000)
    assert len(taken) == len(set(taken))
    assert sorted(taken) == sorted(r.id for r in rows)
    assert not errors


def test_unlistable_second_is_reported_not_silent() -> None:
    t = 1_600_000_000
    rows = [Row(f"3_{i:08d}", t, t + 1_000) for i in range(CAP + 250)]
    rows += [Row("0_after", t + 1, t + 1)]
    taken, _, errors, _ = _drain(rows, t, t + 1)
    assert len(errors) == 1
    assert "250 could not be listed" in errors[0]
    assert f"createdAt {t}" in errors[0] and f"updatedAt {t + 1_000}" in errors[0]
    assert len(set(taken)) == CAP + 1
    assert "0_after" in taken


def test_resume_from_saved_cursor_gives_same_set() -> None:
    rng = random.Random(3)
    rows = _rows(2_500, rng, span=600)
    rows += [
        Row(f"1_{i:08d}", 1_600_000_300, 1_600_000_300 + rng.randrange(5)) for i in range(1_800)
    ]
    first, _, _, cursor = _drain(rows, 1_600_000_000, 1_600_000_600, stop_after=4)
    assert cursor is not None
    rest, _, _, _ = _drain(rows, 1_600_000_000, 1_600_000_600, cursor=cursor)
    assert set(first) | set(rest) == {r.id for r in rows}
    assert not set(first) & set(rest)


@pytest.mark.parametrize("seed", range(6))
def test_random_layouts(seed: int) -> None:
    rng = random.Random(seed)
    rows = _rows(rng.randrange(1, 1_500), rng, span=rng.choice([1, 3, 50, 5_000]))
    lo = min(r.created_at for r in rows) - rng.randrange(3)
    hi = max(r.created_at for r in rows) + rng.randrange(3)
    size = rng.choice([7, 30, 500])
    taken, _, errors, _ = _drain(rows, lo, hi, size=size)
    assert not errors
    assert sorted(taken) == sorted(r.id for r in rows)


def test_empty_window_is_done_after_one_request() -> None:
    taken, requests, _, _ = _drain([], 0, 2_000_000_000)
    assert taken == [] and requests == 1


def test_server_ignoring_cursor_is_refused() -> None:
    cur = Cursor(mode=Mode.CREATED, created=50, seen=("a",))
    with pytest.raises(UnorderedPage):
        advance(cur, 0, 100, [Row("x", 10, 10)], 1)
    with pytest.raises(UnorderedPage):
        advance(Cursor(), 0, 100, [Row("x", 20, 20), Row("y", 10, 10)], 2)


def test_cursor_json_round_trip() -> None:
    c = Cursor(mode=Mode.PAGED, created=5, seen=("a",), updated=9, seen_updated=("b",), page=3)
    assert Cursor.from_json(c.to_json()) == c
    assert Cursor.from_json(None) == Cursor()


def test_every_time_sent_is_absolute() -> None:
    """|v| <= 315,360,000 is relative on the server: never send such a bound."""
    t = 1_600_000_000
    for cur in (Cursor(), Cursor(Mode.UPDATED, t, (), t + 7), Cursor(Mode.PAGED, t, (), t, (), 2)):
        f, _ = request_for({}, 0, 2_000_000_000, cur)
        for key, value in f.items():
            if key.startswith(("createdAt", "updatedAt")):
                assert int(value) > 315_360_000, (key, value)

"""The retention policy: boundaries at exactly 2/4 years, never played, non-ready, exemptions,
quiz/external settings, listing bounds, fail-closed on missing data."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from kretain.errors import ConfigError
from kretain.policy import (
    YEAR_SECONDS,
    EntryFacts,
    Policy,
    Rule,
    as_of_timestamp,
    describe_policy,
    describe_rule,
    evaluate,
    facts_from_fields,
    policy_warnings,
    shadowed_rules,
)

AS_OF = date(2026, 11, 22)
T = as_of_timestamp(AS_OF)  # 2026-11-22T00:00:00Z
Y = YEAR_SECONDS
DEFAULT = Policy.default()


def facts(age_years: float, played_years_ago: float | None = None, **kw) -> EntryFacts:
    base = dict(
        entry_id="0_pol00001",
        created_at=int(T - age_years * Y),
        status="2",
        last_played_at=None if played_years_ago is None else int(T - played_years_ago * Y),
        has_play_data=True,
    )
    base.update(kw)
    return EntryFacts(**base)


def decide(f: EntryFacts, policy: Policy = DEFAULT):
    d = evaluate(f, policy, AS_OF)
    return d.rule, d.action


def test_as_of_is_midnight_utc_and_years_are_365_days() -> None:
    assert T == 1_795_305_600
    assert Y == 31_536_000


@pytest.mark.parametrize(
    ("created", "played", "expected"),
    [
        # exactly 4 years old, never played: 4-year (inclusive boundary)
        (T - 4 * Y, None, ("4-year", "delete_entry")),
        # one second younger than 4 years: 2-year
        (T - 4 * Y + 1, None, ("2-year", "delete_flavors")),
        # exactly 2 years old: 2-year; one second younger: nothing
        (T - 2 * Y, None, ("2-year", "delete_flavors")),
        (T - 2 * Y + 1, None, (None, None)),
        # 4-year: last played exactly 4 years ago qualifies, one second later does not (kept)
        (T - 5 * Y, T - 4 * Y, ("4-year", "delete_entry")),
        (T - 5 * Y, T - 4 * Y + 1, (None, None)),
        # 2-year: last played exactly 2 years ago qualifies, one second later does not
        (T - 3 * Y, T - 2 * Y, ("2-year", "delete_flavors")),
        (T - 3 * Y, T - 2 * Y + 1, (None, None)),
        # created 4+ years ago, played 2-4 years ago: matches neither rule -> kept
        (T - 6 * Y, T - 3 * Y, (None, None)),
        # created in the future of as_of / played after as_of
        (T + 10, None, (None, None)),
        (T - 5 * Y, T + 10, (None, None)),
    ],
)
def test_boundaries(created: int, played: int | None, expected: tuple) -> None:
    f = EntryFacts("0_b", created, "2", played, has_play_data=True)
    assert decide(f) == expected


def test_reasons_are_human() -> None:
    f = EntryFacts("0_r", as_of_timestamp(date(2019, 3, 1)), "2", None, has_play_data=True)
    assert evaluate(f, DEFAULT, AS_OF).reason == "created 2019-03-01, never played: 4-year rule"
    f = replace(f, last_played_at=as_of_timestamp(date(2020, 5, 1)))
    assert evaluate(f, DEFAULT, AS_OF).reason == (
        "created 2019-03-01, last played 2020-05-01: 4-year rule"
    )
    f = replace(f, last_played_at=as_of_timestamp(date(2024, 1, 2)))
    d = evaluate(f, DEFAULT, AS_OF)
    assert (d.rule, d.reason) == (
        None,
        "created 2019-03-01, last played 2024-01-02: no rule matches",
    )


def test_non_ready_first_and_two_year_floor() -> None:
    assert decide(facts(2, status="7")) == ("non-ready", "delete_entry")
    assert decide(facts(10, status="-1")) == ("non-ready", "delete_entry")  # before 4-year
    assert decide(facts(10, 0.1, status="virusScan.Infected")) == ("non-ready", "delete_entry")
    assert decide(facts(1.9, status="-2")) == (None, None)  # may still be converting
    assert decide(facts(10, status="3")) == (None, None)  # already deleted: not ours
    d = evaluate(facts(3, status="7"), DEFAULT, AS_OF)
    assert d.reason.endswith("status 7 (NO_CONTENT): non-ready rule")


def test_exemptions_of_each_kind() -> None:
    policy = Policy.from_mapping(
        {
            "exemptions": {
                "tags": ["Legal-Hold"],
                "category_ids": [42],
                "categories": ["MediaSpace>site>channels>Legal"],
                "owners": ["Bob@X.edu"],
                "entry_ids": ["0_keep0001"],
            }
        },
        entry_ids=["0_file0001"],
    )
    old = facts(5)
    assert decide(old, policy) == ("4-year", "delete_entry")
    cases = {
        "entry_id": replace(old, entry_id="0_keep0001"),
        "entry_id ": replace(old, entry_id="0_file0001"),
        "tag:legal-hold": replace(old, tags=("lecture", "legal-hold")),
        "category_id:42": replace(old, category_ids=("7", "42")),
        "category:MediaSpace>site>channels>Legal>2019": replace(
            old, categories=("MediaSpace>site>channels>Legal>2019",)
        ),
        "category:mediaspace>site>channels>legal": replace(
            old, categories=("mediaspace>site>channels>legal",)
        ),
        "owner:bob@x.edu": replace(old, owner="bob@x.edu"),
    }
    for expected, f in cases.items():
        d = evaluate(f, policy, AS_OF)
        assert (d.rule, d.action, d.exempt_by) == ("4-year", None, expected.strip()), expected
        assert d.reason.endswith(f"; exempt by {expected.strip()}")
    # Prefix matching stops at ">" boundaries; other tags/owners do not exempt.
    for f in (
        replace(old, categories=("MediaSpace>site>channels>LegalAid",)),
        replace(old, tags=("legal-hold-2",)),
        replace(old, owner="bobby@x.edu"),
    ):
        assert decide(f, policy) == ("4-year", "delete_entry")
    # An entry no rule matches is kept, not "exempt".
    assert evaluate(replace(facts(1), tags=("legal-hold",)), policy, AS_OF).exempt_by is None


def test_non_ready_exemption_setting() -> None:
    section = {"exemptions": {"tags": ["keep"], "entry_ids": ["0_id000001"]}}
    broken = facts(3, status="-1", tags=("keep",))
    assert decide(broken, Policy.from_mapping(section)) == ("non-ready", "delete_entry")
    by_id = replace(broken, entry_id="0_id000001")
    assert evaluate(by_id, Policy.from_mapping(section), AS_OF).exempt_by == "entry_id"
    lenient = Policy.from_mapping({**section, "non_ready_exemptible": True})
    assert evaluate(broken, lenient, AS_OF).exempt_by == "tag:keep"


def test_quiz_and_external_are_labelled_and_optionally_exempt() -> None:
    quiz = facts(5, is_quiz=True)
    ext = facts(5, is_external=True)
    d = evaluate(quiz, DEFAULT, AS_OF)
    assert (d.action, d.labels) == ("delete_entry", ("quiz",))
    assert evaluate(ext, DEFAULT, AS_OF).labels == ("external",)
    no_quiz = Policy.from_mapping({"include_quiz": False})
    assert evaluate(quiz, no_quiz, AS_OF).exempt_by == "quiz"
    assert evaluate(ext, no_quiz, AS_OF).action == "delete_entry"
    no_ext = Policy.from_mapping({"include_external": False})
    assert evaluate(ext, no_ext, AS_OF).exempt_by == "external"


def test_fail_closed_on_missing_data() -> None:
    for f, field in (
        (replace(facts(5), created_at=None), "createdAt"),
        (replace(facts(5), status=None), "status"),
        (replace(facts(5), has_play_data=False), "lastPlayedAt"),
    ):
        d = evaluate(f, DEFAULT, AS_OF)
        assert (d.rule, d.action, d.reason) == (None, None, f"incomplete data: {field}")
        assert d.incomplete and not d.is_candidate
    # Without play data, an entry too young for any rule is simply kept; a non-ready one is judged.
    assert not evaluate(replace(facts(1), has_play_data=False), DEFAULT, AS_OF).incomplete
    assert decide(replace(facts(3, status="7"), has_play_data=False)) == (
        "non-ready",
        "delete_entry",
    )


def test_facts_from_store_fields() -> None:
    f = facts_from_fields(
        {
            "id": "0_ff000001", "created_at": 1, "status": "2", "last_played_at": None,
            "plays": 0, "tags": "a, b", "categories_ids": "1,2", "categories": "A>B,C",
            "owner": "o", "is_quiz": 1, "is_external": 0,
        }
    )  # fmt: skip
    assert (f.has_play_data, f.tags, f.category_ids, f.categories, f.is_quiz) == (
        True, ("a", "b"), ("1", "2"), ("A>B", "C"), True,
    )  # fmt: skip
    assert not facts_from_fields({"id": "0_x", "created_at": 1, "status": "2"}).has_play_data


def test_listing_bounds() -> None:
    assert DEFAULT.listing_bounds(AS_OF, ready=True) == (T - 2 * Y, T - 2 * Y)
    assert DEFAULT.listing_bounds(AS_OF, ready=False) == (T - 2 * Y, None)
    assert DEFAULT.listing_bounds(AS_OF) == (T - 2 * Y, None)
    assert DEFAULT.non_ready_statuses()[:2] == ("-2", "-1")
    custom = Policy(rules=(Rule("old", "delete_entry", min_age_years=3, not_played_years=1.5),))
    assert custom.listing_bounds(AS_OF) == (T - 3 * Y, T - int(1.5 * Y))
    # Everything evaluate() could select lies inside the bounds.
    created_before, played_before = DEFAULT.listing_bounds(AS_OF, ready=True)
    for age in (2, 2.5, 4, 9):
        for played in (None, 2, 3, 4, 8):
            f = facts(age, played)
            if evaluate(f, DEFAULT, AS_OF).rule:
                assert f.created_at <= created_before
                assert f.last_played_at is None or f.last_played_at <= played_before


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"rulez": []}, "unknown setting 'rulez'"),
        ({"exemptions": {"tag": ["x"]}}, "unknown setting 'tag'"),
        (
            {
                "rules": [
                    {"name": "x", "action": "purge", "min_age_years": 1, "not_played_years": 1}
                ]
            },
            "action must be one of",
        ),
        (
            {"rules": [{"name": "x", "action": "delete_entry", "not_played_years": 1}]},
            "min_age_years is required",
        ),
        (
            {"rules": [{"name": "x", "action": "delete_entry", "min_age_years": 1}]},
            "needs not_played_years",
        ),
        (
            {
                "rules": [
                    {
                        "name": "x",
                        "action": "delete_entry",
                        "min_age_years": 3,
                        "max_age_years": 2,
                        "not_played_years": 1,
                    }
                ]
            },
            "greater than",
        ),
        (
            {
                "rules": [
                    {
                        "name": "x",
                        "action": "delete_entry",
                        "min_age_years": -1,
                        "not_played_years": 1,
                    }
                ]
            },
            ">= 0",
        ),
        ({"rules": []}, "at least one rule"),
        ({"include_quiz": "yes"}, "true or false"),
        ({"exemptions": {"tags": "keep"}}, "list of strings"),
        (
            {
                "rules": [
                    {"name": "x", "action": "delete_entry", "min_age_years": 1, "statuses": ["2"]}
                ]
            },
            "must not include READY",
        ),
    ],
)
def test_bad_policy_config_is_one_clear_error(section: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Policy.from_mapping(section)


def test_rules_order_first_match_wins() -> None:
    policy = Policy(
        rules=(
            Rule("broad", "delete_flavors", min_age_years=1, not_played_years=1),
            Rule("4-year", "delete_entry", min_age_years=4, not_played_years=4),
        )
    )
    assert decide(facts(5), policy) == ("broad", "delete_flavors")


# ---- sanity warnings and plain words ---------------------------------------------------------


def ready(name: str, min_age: float, played: float | None, max_age: float | None = None) -> Rule:
    return Rule(name, "delete_entry", min_age, max_age_years=max_age, not_played_years=played)


def test_default_policy_has_no_warnings() -> None:
    assert shadowed_rules(DEFAULT) == []
    assert policy_warnings(DEFAULT, AS_OF, AS_OF) == []


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        # A wider earlier rule takes everything a narrower later one would.
        ([ready("any-2", 2, 2), ready("4-year", 4, 4)], [("4-year", ("any-2",))]),
        # The other way round both can match.
        ([ready("4-year", 4, 4), ready("any-2", 2, 2)], []),
        # Two earlier rules together cover the later one (no single one does).
        (
            [ready("a", 2, 1, max_age=3), ready("b", 3, 1), ready("late", 2, 2)],
            [("late", ("a", "b"))],
        ),
        # Younger than 3 and not played for 4 years: only never-played entries can be that,
        # and the first rule takes every never-played entry.
        ([ready("never", 0, 5), ready("young", 1, 4, max_age=3)], [("young", ("never",))]),
        # Up to 6 years old, a played entry (gap 4.5 < 5) reaches the second rule.
        ([ready("never", 0, 5), ready("older", 1, 4, max_age=6)], []),
        # Status sets: a subset is covered, a set with one more status is not.
        (
            [
                Rule("broken", "delete_entry", 2, statuses=("-1", "7")),
                Rule("no-content", "delete_entry", 3, statuses=("7",)),
                Rule("pending", "delete_entry", 3, statuses=("7", "4")),
            ],
            [("no-content", ("broken",))],
        ),
        # Ready and non-ready rules never cover each other.
        ([Rule("nr", "delete_entry", 0, statuses=("7",)), ready("r", 0, 0)], []),
    ],
)
def test_shadowed_rules(rules: list[Rule], expected: list) -> None:
    assert shadowed_rules(Policy(rules=tuple(rules))) == expected


def test_shadowing_agrees_with_evaluate_on_a_grid() -> None:
    """Oracle: evaluate() over entries on a grid finer than every threshold. A rule reported
    unreachable is never chosen; every other rule is chosen for some entry."""
    import random

    rng = random.Random(5)
    thresholds = [0, 0.5, 1, 2, 3, 4, 5]
    ages = [i / 4 for i in range(0, 33)]  # 0 .. 8 years by quarters
    statuses = ["2", "7", "-1"]
    grid = [
        facts(age, gap, status=status)
        for status in statuses
        for age in ages
        for gap in [None, *(g for g in ages if g <= age)]
    ]
    for _ in range(60):
        rules = []
        for i in range(rng.randint(2, 4)):
            low = rng.choice(thresholds[:-1])
            high = rng.choice([None, *(v for v in thresholds if v > low)])
            if rng.random() < 0.3:
                picked = tuple(rng.sample(["7", "-1"], rng.randint(1, 2)))
                rules.append(Rule(f"r{i}", "delete_entry", low, high, None, picked))
            else:
                rules.append(Rule(f"r{i}", "delete_entry", low, high, rng.choice(thresholds)))
        policy = Policy(rules=tuple(rules))
        chosen = {evaluate(f, policy, AS_OF).rule for f in grid}
        unreachable = {name for name, _ in shadowed_rules(policy)}
        assert unreachable == {r.name for r in rules} - chosen, rules


def test_zero_thresholds_and_future_as_of_are_warned() -> None:
    policy = Policy(
        rules=(
            Rule("fresh-broken", "delete_entry", 0, statuses=("7",)),
            ready("today", 0, 1),
            ready("played", 1, 0),
        )
    )
    warnings = policy_warnings(policy, date(2030, 1, 1), AS_OF)
    assert any("'fresh-broken' has min_age_years = 0" in w for w in warnings)
    assert any("'today' has min_age_years = 0: entries uploaded today" in w for w in warnings)
    assert any("'played' has not_played_years = 0" in w for w in warnings)
    assert warnings[-1].startswith("as-of 2030-01-01 is in the future (today is 2026-11-22)")
    assert "delete stage will refuse a future as-of" in warnings[-1]
    assert len(warnings) == 4
    assert policy_warnings(DEFAULT, AS_OF, date(2026, 11, 21))  # one day ahead is future too


def test_rules_in_plain_words_name_the_dates() -> None:
    as_of = date(2026, 11, 29)  # 4 x 365 days earlier is 2022-11-30 (2024 is a leap year)
    four, two = DEFAULT.rules[1], DEFAULT.rules[2]
    assert describe_rule(four, as_of) == (
        "4-year: ready entries created at or before 2022-11-30 00:00 UTC (4+ years before the "
        "as-of date) that were never played or last played at or before 2022-11-30 00:00 UTC "
        "(4+ years before): back up, then delete the entry"
    )
    assert describe_rule(two, as_of).startswith(
        "2-year: ready entries created at or before 2024-11-29 00:00 UTC and after "
        "2022-11-30 00:00 UTC (2 to 4 years before the as-of date)"
    )
    assert describe_rule(two, as_of).endswith("delete every flavor except the source (no backup)")
    assert "-1 ERROR_CONVERTING" in describe_rule(DEFAULT.rules[0], as_of)
    half = describe_rule(ready("half", 0.5, 0.5), as_of)
    assert "at or before 2026-05-30 12:00 UTC" in half  # 182.5 days before


def test_describe_policy_lists_exemptions() -> None:
    policy = Policy.from_mapping(
        {
            "include_quiz": False,
            "exemptions": {"tags": ["Legal", "hold"], "owners": ["Ann"], "categories": ["A>B>"]},
        },
        entry_ids=["0_a", "0_b"],
    )
    out = describe_policy(policy, AS_OF)
    assert out["as_of"] == "2026-11-22"
    assert [r["name"] for r in out["rules"]] == ["non-ready", "4-year", "2-year"]
    assert out["rules"][1]["created_at_or_before"] == "2022-11-23 00:00 UTC"
    assert out["rules"][1]["created_after"] is None
    ex = out["exemptions"]
    assert (ex["entry_ids"], ex["tags"], ex["owners"]) == (2, ["hold", "legal"], ["ann"])
    assert "tags: hold, legal (case-insensitive, whole tag)" in ex["text"]
    assert "categories: a>b (each with its sub-categories)" in ex["text"]
    assert "quiz entries: exempt (include_quiz = false)" in ex["text"]

"""The rulebook (kretain/rules.py): each business rule, and that it has no second home."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from kretain import rules
from kretain.policy import Policy, as_of_timestamp
from kretain.store.models import AssetRow

PACKAGE = Path(__file__).resolve().parents[1] / "kretain"


# ---- ids and wire values ----------------------------------------------------------------------


def test_ids() -> None:
    assert rules.is_valid_id("0_ab12cd34") and rules.is_valid_id("1_x")
    for bad in ["", "0_a,b", "../etc", "0_a b", "x" * 65, 12, None, "0_a\n"]:
        assert not rules.is_valid_id(bad)
    with pytest.raises(rules.WireValueError, match="entry has a missing or malformed id"):
        rules.check_id("0_a/b", "entry")


def test_wire_int() -> None:
    assert rules.wire_int(12, "f") == 12 and rules.wire_int(" -3 ", "f") == -3
    assert rules.wire_int(7.0, "f") == 7 and rules.wire_int(None, "f") is None
    assert rules.wire_int("", "f") is None
    for bad in [True, "1.5", "abc", 1.5, [], {}, "9" * 30]:
        with pytest.raises(rules.WireValueError, match="'f' must be"):
            rules.wire_int(bad, "f")
    with pytest.raises(rules.WireValueError, match="Unix time"):
        rules.wire_int(-5, "t", time=True)


def test_wire_bool_str_enum() -> None:
    assert rules.wire_bool("1", "b") and rules.wire_bool(True, "b")
    assert not rules.wire_bool("false", "b") and not rules.wire_bool(None, "b")
    for bad in [2, "maybe", []]:
        with pytest.raises(rules.WireValueError):
            rules.wire_bool(bad, "b")
    assert rules.wire_str(2, "s") == "2" and rules.wire_str(None, "s") is None
    with pytest.raises(rules.WireValueError):
        rules.wire_str({"evil": 1}, "s")
    assert rules.wire_enum(" 2 ", "e") == "2"


# ---- assets -----------------------------------------------------------------------------------


def test_asset_bytes_prefers_the_exact_size() -> None:
    assert rules.asset_bytes(1234567, 1206) == 1234567
    assert rules.asset_bytes(0, 1206) == 1206 * 1024  # 0 means unknown
    assert rules.asset_bytes("0", "10") == 10240
    assert rules.asset_bytes(None, 1.5) == 1536
    assert rules.asset_bytes(None, None) == 0
    for bad in [("lots", None), (-5, None), (0, -1)]:
        with pytest.raises(rules.WireValueError):
            rules.asset_bytes(*bad)
    assert rules.expected_size({"sizeInBytes": 0, "size": 10}, 1) == (None, 10)
    assert rules.expected_size({"sizeInBytes": 5000, "size": 5}, 1) == (5000, 5)
    assert rules.expected_size({}, 777) == (777, None)


def flavor(aid: str, size: int = 100, **wire) -> rules.Asset:
    return rules.parse_asset("flavor", {"id": aid, "entryId": "0_e", "sizeInBytes": size, **wire})


def test_parse_asset_refuses_another_entrys_asset() -> None:
    a = rules.parse_asset("caption", {"id": "1_c", "entryId": "0_e", "size": 2, "language": "En"})
    assert (a.owner, a.size_bytes, a.language) == ("0_e", 2048, "En")
    with pytest.raises(rules.WireValueError, match="belongs to"):
        rules.parse_asset("flavor", {"id": "1_f", "entryId": "0_other"}, owner="0_e")
    with pytest.raises(rules.WireValueError):
        rules.parse_asset("video", {"id": "1_f", "entryId": "0_e"})


def test_find_source_order_and_never_the_largest() -> None:
    a = flavor("1_a", 5, isOriginal=False, flavorParamsId=5, tags="web")
    b = flavor("1_b", 1, isOriginal=True, flavorParamsId=7)
    c = flavor("1_c", 2, flavorParamsId=0)
    d = flavor("1_d", 3, flavorParamsId=9, tags="Source,web")
    assert rules.find_source([a, b, c, d]) == rules.SourcePick(1, rules.SourceBasis.IS_ORIGINAL)
    assert rules.find_source([a, c, d]) == rules.SourcePick(1, rules.SourceBasis.PARAMS_ZERO)
    assert rules.find_source([a, d]) == rules.SourcePick(1, rules.SourceBasis.SOURCE_TAG)
    # No flavor says it is the source: unknown, however large one of them is.
    big = flavor("1_big", 10**9, flavorParamsId=3)
    pick = rules.find_source([a, big])
    assert not pick.known and pick.index is None and pick.basis is None
    assert not rules.find_source([]).known
    # Two claim it: the larger of those (never a flavor that does not claim it).
    two = [flavor("1_x", 5, isOriginal="1"), flavor("1_y", 9, isOriginal="true"), big]
    assert rules.find_source(two).index == 1


@dataclass(frozen=True)
class _A:
    kind: str
    is_source: bool
    size_bytes: int
    owner: str = "0_e"


def test_bytes_freed_by_action() -> None:
    assets = [
        _A("flavor", True, 1000),
        _A("flavor", False, 300),
        _A("caption", False, 50),
        _A("flavor", True, 700, "0_child"),
        _A("flavor", False, 70, "0_child"),
    ]
    assert rules.bytes_freed_by("delete_entry", assets, source_known=True) == 2120
    assert rules.bytes_freed_by("delete_flavors", assets, source_known=True) == 370
    assert rules.bytes_freed_by("delete_flavors", assets, source_known=False) == 0
    assert rules.bytes_freed_by(None, assets, source_known=True) == 0
    assert rules.sources_known(assets)
    assert not rules.sources_known([*assets, _A("flavor", False, 5, "0_other")])
    assert rules.sources_known([_A("caption", False, 5)])  # no flavors: nothing to name


# ---- the archive plan -------------------------------------------------------------------------

E, CHILD, NOW = "0_entry001", "0_child001", 1_800_000_000


def asset(
    aid: str,
    kind: str = "flavor",
    *,
    status: str | None = "2",
    source: bool = False,
    size: int = 100,
    owner: str | None = None,
    raw: dict | None = None,
) -> AssetRow:
    return AssetRow(
        id=aid,
        entry_id=E,
        kind=kind,
        owner_entry_id=owner,
        is_source=source,
        status=status,
        size_bytes=size,
        raw=json.dumps(raw) if raw is not None else None,
    )


def ids(items) -> list[str]:
    return sorted(x.asset.id if hasattr(x, "asset") else x[0].id for x in items)


def test_plan_keeps_each_owners_source_and_every_other_kind() -> None:
    plan = rules.archive_plan(
        [
            asset("0_src", source=True, size=900),
            asset("0_web", size=300),
            asset("0_csrc", source=True, owner=CHILD),
            asset("0_cweb", owner=CHILD),
            asset("0_cap1", "caption"),
            asset("0_cap2", "caption"),
            asset("0_att", "attachment"),
            asset("0_th", "thumb"),
        ],
        NOW,
    )
    assert ids(plan.fetch) == ["0_att", "0_cap1", "0_cap2", "0_csrc", "0_src", "0_th"]
    assert ids(plan.skipped) == ["0_cweb", "0_web"]
    assert not plan.unavailable and not plan.waiting


def test_plan_without_a_known_source_keeps_the_largest_ready_flavor_and_says_so() -> None:
    plan = rules.archive_plan(
        [asset("0_a", size=5), asset("0_b", size=50), asset("0_c", size=99, status="1")], NOW
    )
    assert ids(plan.fetch) == ["0_b"] and plan.fetch[0].stands_in_for == rules.UNKNOWN_SOURCE
    assert ids(plan.skipped) == ["0_a", "0_c"]


def test_plan_replaces_a_source_in_error_with_the_largest_ready_flavor() -> None:
    plan = rules.archive_plan(
        [
            asset("0_src", source=True, status="-1"),
            asset("0_small", size=10),
            asset("0_large", size=20),
            asset("0_conv", size=99, status="1"),  # converting: not a candidate
        ],
        NOW,
    )
    assert ids(plan.fetch) == ["0_large"] and plan.fetch[0].stands_in_for == "0_src"
    assert ids(plan.unavailable) == ["0_src"]
    assert ids(plan.skipped) == ["0_conv", "0_small"]
    assert not plan.waiting


def test_plan_records_never_ready_assets_and_waits_for_the_others() -> None:
    plan = rules.archive_plan(
        [
            asset("0_src", source=True, status="0"),  # queued: may still become ready
            asset("0_cap", "caption", status="-1"),  # error: never
            asset("0_th", "thumb", status="1"),  # capturing: may still become ready
            asset("0_x", "attachment", status="virusScan.Infected"),  # unknown: fail closed
        ],
        NOW,
    )
    assert not plan.fetch
    assert ids(plan.unavailable) == ["0_cap"]
    assert ids(plan.waiting) == ["0_src", "0_th", "0_x"]


def test_readiness_by_kind_and_age() -> None:
    r = rules.Readiness
    assert rules.asset_readiness("flavor", "9", None, NOW) == r.READY  # EXPORTING flavor
    assert rules.asset_readiness("caption", "9", None, NOW) == r.WAITING
    assert rules.asset_readiness("flavor", "4", None, NOW) == r.NEVER  # NOT_APPLICABLE
    assert rules.asset_readiness("thumb", "4", None, NOW) == r.WAITING
    assert rules.asset_readiness("flavor", None, None, NOW) == r.WAITING
    assert rules.asset_readiness("caption", "0", NOW - 86_400, NOW) == r.WAITING
    assert rules.asset_readiness("caption", "0", NOW - 31 * 86_400, NOW) == r.NEVER


# ---- plays and re-evaluation ------------------------------------------------------------------


def test_played_since() -> None:
    assert rules.played_since(None, 100) == 100  # never played before: any play is new
    assert rules.played_since(100, 200) == 200
    assert rules.played_since(200, 200) is None and rules.played_since(300, 200) is None
    assert rules.played_since(None, None) is None and rules.played_since(None, 0) is None


@dataclass(frozen=True)
class _Row:
    last_played_at: int | None
    policy: str | None = "4-year"


AS_OF = date(2026, 11, 29)
T = as_of_timestamp(AS_OF)
YEAR = 365 * 86_400


def wire(**extra) -> dict:
    base = {
        "id": "0_e0000001",
        "status": 2,
        "createdAt": T - 6 * YEAR,
        "plays": 0,
        "objectType": "KalturaMediaEntry",
        "type": 1,
    }
    return {**base, **extra}


def test_recheck_verdicts() -> None:
    policy = Policy.from_mapping({"exemptions": {"tags": ["legal-hold"]}})
    row = _Row(last_played_at=None)
    v = rules.Verdict
    assert rules.recheck(row, wire(), policy, AS_OF).verdict == v.QUALIFIES
    assert rules.recheck(row, None, policy, AS_OF).verdict == v.GONE
    assert rules.recheck(row, wire(status=3), policy, AS_OF).verdict == v.GONE
    played = rules.recheck(row, wire(lastPlayedAt=T - 86_400, plays=1), policy, AS_OF)
    assert (played.verdict, played.reason) == (v.KEPT, "played 2026-11-28 since the audit")
    exempt = rules.recheck(row, wire(tags="Legal-Hold"), policy, AS_OF)
    assert exempt.verdict == v.EXEMPT and "tag:Legal-Hold" in exempt.reason
    broken = rules.recheck(row, wire(createdAt="yesterday"), policy, AS_OF)
    assert broken.verdict == v.ERROR and broken.fields is None
    no_plays = rules.recheck(row, {k: x for k, x in wire().items() if k != "plays"}, policy, AS_OF)
    assert no_plays.verdict == v.ERROR  # fail closed: no play data, no decision
    # The delete stage acts only on the rule that was planned.
    two_year = wire(createdAt=T - 3 * YEAR)
    assert rules.recheck(row, two_year, policy, AS_OF).verdict == v.QUALIFIES
    moved = rules.recheck(row, two_year, policy, AS_OF, same_rule=True)
    assert moved.verdict == v.KEPT and "now under rule 2-year" in moved.reason


# ---- one home -----------------------------------------------------------------------------------

# Text that only the rulebook may hold: the source rule's wire flags, an asset's size fields,
# the status lists, the "played since" wording and the id pattern.
ONE_HOME = {
    '"isOriginal"': "the source flavor rule",
    '"flavorParamsId"': "the source flavor rule",
    '"sizeInBytes"': "an asset's bytes",
    '"-2,-1,0,1': "the entry status lists",
    '"1,2,3,4,5,6"': "the moderation status list",
    "since the audit": "played since",
    "A-Za-z0-9_]{1,64}": "what a valid id is",
}


def test_each_rule_is_written_in_the_rulebook_only() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        # The simulator is the other side of the wire: it must write these fields itself.
        if rel == "rules.py" or rel.startswith("simulator/"):
            continue
        text = path.read_text(encoding="utf-8")
        for marker, rule in ONE_HOME.items():
            if marker in text:
                offenders.append(f"{rel}: {marker} ({rule})")
    assert not offenders, "rules written outside kretain/rules.py:\n" + "\n".join(offenders)


def test_no_second_source_chooser() -> None:
    chooser = re.compile(r"def \w*(choose_source|is_source|find_source)\w*\(")
    found = [
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*.py")
        if chooser.search(p.read_text(encoding="utf-8"))
    ]
    assert found == ["rules.py"]

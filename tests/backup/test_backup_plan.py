"""plan_entry: what is fetched, skipped, unavailable or waited for (pure; real AssetRow rows)."""

from __future__ import annotations

import json

from kretain.store.models import AssetRow
from kretain.workers.backup import asset_readiness, backoff_delay, plan_entry

E = "0_entry001"
CHILD = "0_child001"


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


def test_source_per_owner_and_every_other_kind() -> None:
    plan = plan_entry(
        E,
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
    )
    assert ids(plan.fetch) == ["0_att", "0_cap1", "0_cap2", "0_csrc", "0_src", "0_th"]
    assert ids(plan.skipped) == ["0_cweb", "0_web"]
    assert not plan.unavailable and not plan.waiting


def test_source_chosen_when_not_flagged() -> None:
    # isOriginal, then flavorParamsId 0, then the source tag, then the largest.
    plan = plan_entry(
        E,
        [
            asset("0_big", size=999, raw={"flavorParamsId": 7}),
            asset("0_tag", size=10, raw={"flavorParamsId": 5, "tags": "source,web"}),
        ],
    )
    assert ids(plan.fetch) == ["0_tag"]
    plan = plan_entry(E, [asset("0_a", size=5, raw={}), asset("0_b", size=50, raw={})])
    assert ids(plan.fetch) == ["0_b"]


def test_source_in_error_is_replaced_by_the_largest_ready_flavor() -> None:
    plan = plan_entry(
        E,
        [
            asset("0_src", source=True, status="-1"),
            asset("0_small", size=10),
            asset("0_large", size=20),
            asset("0_conv", size=99, status="1"),  # converting: not a candidate
        ],
    )
    assert ids(plan.fetch) == ["0_large"] and plan.fetch[0].substitute_for == "0_src"
    assert ids(plan.unavailable) == ["0_src"]
    assert ids(plan.skipped) == ["0_conv", "0_small"]
    assert not plan.waiting


def test_never_ready_is_recorded_but_transient_statuses_block() -> None:
    plan = plan_entry(
        E,
        [
            asset("0_src", source=True, status="0"),  # queued: may still become ready
            asset("0_cap", "caption", status="-1"),  # error: never
            asset("0_th", "thumb", status="1"),  # capturing: may still become ready
            asset("0_x", "attachment", status="virusScan.Infected"),  # unknown: fail closed
        ],
    )
    assert not plan.fetch
    assert ids(plan.unavailable) == ["0_cap"]
    assert ids(plan.waiting) == ["0_src", "0_th", "0_x"]


def test_readiness_by_kind() -> None:
    assert asset_readiness(asset("a", status="9")) == "ready"  # EXPORTING flavor
    assert asset_readiness(asset("a", "caption", status="9")) == "waiting"
    assert asset_readiness(asset("a", status="4")) == "never"  # NOT_APPLICABLE flavor
    assert asset_readiness(asset("a", "thumb", status="4")) == "waiting"
    assert asset_readiness(asset("a", status=None)) == "waiting"


def test_backoff_is_bounded() -> None:
    delays = [backoff_delay(n, 1.0, 30.0, lambda: 1.0) for n in range(1, 12)]
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0] and max(delays) == 30.0
    assert backoff_delay(3, 1.0, 30.0, lambda: 0.0) == 2.0  # jitter halves at most


def test_a_non_ready_asset_untouched_for_the_settle_period_is_unavailable() -> None:
    now = 1_800_000_000
    fresh = asset("0_q1", "caption", status="0", raw={"updatedAt": now - 86_400})
    stale = asset("0_q2", "caption", status="0", raw={"updatedAt": now - 31 * 86_400})
    unknown_age = asset("0_q3", "caption", status="0", raw={})
    assert asset_readiness(fresh, now) == "waiting"
    assert asset_readiness(stale, now) == "never"
    assert asset_readiness(unknown_age, now) == "waiting"

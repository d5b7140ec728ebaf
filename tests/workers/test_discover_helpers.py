"""Shared helpers of the discover/size tests: ground truth from the simulator's own SQL.

The qualifying set is computed here independently of kretain.policy, straight
from the policy's thresholds (365-day years, as_of at 00:00 UTC).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

YEAR = 365 * 86_400
NON_READY = (-2, -1, 0, 1, 4, 5, 6, 7)
# Default listing visibility: media clips and external media, not deleted, not
# multi-stream children, not recycled.
VISIBLE = (
    "type IN ('1', 'externalMedia.externalMedia') AND status != 3 "
    "AND display_in_search NOT IN (-1, -2) AND parent_entry_id IS NULL"
)


def as_of_ts(as_of: date) -> int:
    return int(datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC).timestamp())


def truth(partner: Any, as_of: date) -> dict[str, tuple[str, str]]:
    """entry id -> (rule, action) for every entry the default policy selects."""
    t = as_of_ts(as_of)
    y2, y4 = t - 2 * YEAR, t - 4 * YEAR
    marks = ",".join(str(s) for s in NON_READY)
    out: dict[str, tuple[str, str]] = {}
    for (eid,) in partner.sql(
        f"SELECT id FROM entries WHERE {VISIBLE} AND status IN ({marks}) AND created_at <= ?",
        (y2,),
    ):
        out[eid] = ("non-ready", "delete_entry")
    for (eid,) in partner.sql(
        f"SELECT id FROM entries WHERE {VISIBLE} AND status = 2 AND created_at <= ? "
        "AND (last_played_at IS NULL OR last_played_at <= ?)",
        (y4, y4),
    ):
        out[eid] = ("4-year", "delete_entry")
    for (eid,) in partner.sql(
        f"SELECT id FROM entries WHERE {VISIBLE} AND status = 2 AND created_at <= ? "
        "AND created_at > ? AND (last_played_at IS NULL OR last_played_at <= ?)",
        (y2, y4, y2),
    ):
        out[eid] = ("2-year", "delete_flavors")
    return out


def client_config(sim: Any, **kw: Any) -> Any:
    from kretain.kaltura.client import ClientConfig

    spec = sim.partner.spec
    return ClientConfig(
        service_url=sim.url,
        partner_id=spec.partner_id,
        admin_secret=spec.admin_secret,
        timeout=30.0,
        max_attempts=kw.pop("max_attempts", 3),
        backoff_base=0.01,
        backoff_max=0.05,
        **kw,
    )


async def rows_by_state(store: Any) -> dict[str, dict[str, Any]]:
    rows = await store.fetchall("SELECT id, state, policy, action, reason FROM entries")
    return {r["id"]: dict(r) for r in rows}

"""The seed toolkit's summary table for decision makers, computed from the state store.

Names:
    summary_report(store, *, states=None, rule_names=None) -> Table     (async)
    IN_POLICY_STATES, PENDING_STATES, ALL_STATES, check_states(states) -> tuple[str, ...]

Columns: ``metric``, one per rule, ``total``. The rule columns are the default policy's rule names
in the seed's order (2-year, 4-year, non-ready), or ``rule_names`` when given, followed by any
other rule name found in the selected rows (sorted). An entry matches one rule, so ``total`` is
the sum of the rule columns for every row except the unique-user rows, which count distinct
owners over all rules (a user with entries under two rules is one user), as the seed did.

Which entries count ("candidates"): every entry the policy acts on, whatever its progress —
IN_POLICY_STATES = candidate, sized, downloading, archived, backup_failed, delete_failed,
deleting, deleted, recycled, stripped. Pass
``states`` to change that (e.g. PENDING_STATES for what is still to be done).

Rows follow the seed: candidates; unique users; unique users (0 plays, where no play data
counts as 0 like the seed); media type video / audio / image (mediaType 1 / 5 / 2; an external
or quiz entry still counts under its media type); media subtype YouTube (external, not quiz) /
Quiz (quiz, not external) / YouTube Quiz (both); duration in seconds and hours (images
excluded); bytes, MB, GB and TB saved (1024-based) and a human "saved" row. One row is added:
"not sized yet", the entries whose bytes are still unknown (the bytes rows count them as 0).

Counts and bytes are exact integers; hours, MB, GB and TB are Decimals with two places (rounded
half up), so CSV, JSON and the table show the same digits.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import humanize

from kretain.output import Table
from kretain.policy import DEFAULT_RULES
from kretain.reports.query import ReportError
from kretain.store.db import Store
from kretain.store.states import FINISHED, State

__all__ = [
    "ALL_STATES",
    "IN_POLICY_STATES",
    "PENDING_STATES",
    "check_states",
    "summary_report",
]

# Every state the policy acts on: the entry matched a rule, was not exempt, and is somewhere
# between "found" and "done" (failures included: they still have to be done).
IN_POLICY_STATES: tuple[str, ...] = (
    State.CANDIDATE,
    State.SIZED,
    State.DOWNLOADING,
    State.ARCHIVED,
    State.BACKUP_FAILED,
    State.DELETE_FAILED,
    State.DELETING,
    State.DELETED,
    State.RECYCLED,
    State.STRIPPED,
)
# The same without what is done: what owners still need to hear about.
PENDING_STATES: tuple[str, ...] = tuple(s for s in IN_POLICY_STATES if s not in FINISHED)
ALL_STATES: tuple[str, ...] = tuple(State)

NO_RULE = "(no rule)"  # an in-policy row without a policy name should not happen; show it
_SEED_ORDER = ("2-year", "4-year", "non-ready")
_TWO_PLACES = Decimal("0.01")
_MEDIA_VIDEO, _MEDIA_IMAGE, _MEDIA_AUDIO = 1, 2, 5


def check_states(states: Collection[str] | None) -> tuple[str, ...]:
    """Validate state names (None = IN_POLICY_STATES); raises ReportError naming a bad one."""
    if states is None:
        return tuple(str(s) for s in IN_POLICY_STATES)
    if isinstance(states, str):
        states = [states]
    out: list[str] = []
    for s in states:
        try:
            out.append(str(State(s)))
        except ValueError:
            known = ", ".join(ALL_STATES)
            raise ReportError(f"unknown state {s!r} (known: {known})") from None
    if not out:
        raise ReportError("no states selected")
    return tuple(dict.fromkeys(out))


def _default_rule_names() -> list[str]:
    names = [r.name for r in DEFAULT_RULES]
    return sorted(names, key=lambda n: (_SEED_ORDER.index(n) if n in _SEED_ORDER else 99, n))


def two_places(value: Decimal) -> Decimal:
    return value.quantize(_TWO_PLACES, rounding=ROUND_HALF_UP)


# One aggregate row per group; without GROUP BY the same SQL gives the total column.
_AGGREGATES = f"""
    count(*),
    count(DISTINCT owner),
    count(DISTINCT CASE WHEN coalesce(plays, 0) = 0 THEN owner END),
    coalesce(sum(media_type = {_MEDIA_VIDEO}), 0),
    coalesce(sum(media_type = {_MEDIA_AUDIO}), 0),
    coalesce(sum(media_type = {_MEDIA_IMAGE}), 0),
    coalesce(sum(is_external AND NOT is_quiz), 0),
    coalesce(sum(is_quiz AND NOT is_external), 0),
    coalesce(sum(is_quiz AND is_external), 0),
    coalesce(sum(CASE WHEN media_type IS {_MEDIA_IMAGE} THEN 0 ELSE coalesce(duration, 0) END), 0),
    coalesce(sum(coalesce(bytes_saved, 0)), 0),
    coalesce(sum(bytes_saved IS NULL), 0)
"""
_COUNT_METRICS = (
    "candidates",
    "unique users",
    "unique users (0 plays)",
    "media type: video",
    "media type: audio",
    "media type: image",
    "media subtype: YouTube",
    "media subtype: Quiz",
    "media subtype: YouTube Quiz",
)


def _column(agg: Sequence[Any]) -> list[Any]:
    """The metric values, in row order, from one aggregate row."""
    counts = [int(v) for v in agg[:9]]
    seconds, saved, unsized = int(agg[9]), int(agg[10]), int(agg[11])
    return [
        *counts,
        seconds,
        two_places(Decimal(seconds) / 3600),
        saved,
        two_places(Decimal(saved) / 1024**2),
        two_places(Decimal(saved) / 1024**3),
        two_places(Decimal(saved) / 1024**4),
        humanize.naturalsize(saved, binary=True),
        unsized,
    ]


METRICS: tuple[str, ...] = (
    *_COUNT_METRICS,
    "duration (seconds)",
    "duration (hours)",
    "bytes saved",
    "MB saved",
    "GB saved",
    "TB saved",
    "saved",
    "not sized yet",
)


async def summary_report(
    store: Store,
    *,
    states: Collection[str] | None = None,
    rule_names: Sequence[str] | None = None,
) -> Table:
    """The seed's summary table over entries in ``states`` (None = IN_POLICY_STATES).

    ``rule_names``: rule columns always shown, in order (None = the default policy's rules);
    other rule names present in the data get their own column after them.
    """
    chosen = check_states(states)
    marks = ",".join("?" * len(chosen))
    where = f"FROM entries WHERE state IN ({marks})"
    groups = await store.fetchall(
        f"SELECT coalesce(policy, '{NO_RULE}'), {_AGGREGATES} {where} "
        f"GROUP BY coalesce(policy, '{NO_RULE}')",
        chosen,
    )
    total = await store.fetchone(f"SELECT {_AGGREGATES} {where}", chosen)
    by_rule = {row[0]: _column(list(row)[1:]) for row in groups}
    names = list(dict.fromkeys(rule_names if rule_names is not None else _default_rule_names()))
    names += sorted(n for n in by_rule if n not in names)
    empty = _column([0] * 12)
    columns = [by_rule.get(n, empty) for n in names] + [_column(list(total))]
    rows = [[metric, *(col[i] for col in columns)] for i, metric in enumerate(METRICS)]
    return Table(
        headers=["metric", *names, "total"],
        rows=rows,
        title=f"Retention summary (states: {', '.join(chosen)})",
    )

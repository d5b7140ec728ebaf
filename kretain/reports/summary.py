"""The seed toolkit's summary table for decision makers, computed from the state store.

Names:
    summary_report(store, *, states=None, rule_names=None) -> Table     (async)
    read_owner_groups(store, states) -> list[OwnerGroup]    (async) the one query behind it
    summary_table(groups, states, *, rule_names=None) -> Table          the table from them
    sequential_reads(store) -> async context manager: in it, `entries` is read front to back
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

Every number comes from one GROUP BY rule and owner over the selected entries
(read_owner_groups): a rule's figures are the sums of its groups, its unique users the owners
among them, and the total's unique users the owners of all groups, each once. `kretain report`
reads the same groups (once, for the in-policy states) for this table, its headline and media
figures, and its owners chart, so the two can never disagree.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

import humanize

from kretain.output import Table
from kretain.policy import DEFAULT_RULES
from kretain.reports.query import ReportError
from kretain.store.db import Store
from kretain.store.states import FINISHED, State

__all__ = [
    "ALL_STATES",
    "IN_POLICY_STATES",
    "METRICS",
    "PENDING_STATES",
    "OwnerGroup",
    "check_states",
    "read_owner_groups",
    "sequential_reads",
    "summary_report",
    "summary_table",
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


@contextlib.asynccontextmanager
async def sequential_reads(
    store: Store, rowids: tuple[int, int] | None = None
) -> AsyncIterator[None]:
    """Inside, `entries` on this connection is a temporary view of the table that uses no
    index; with ``rowids`` (first, last), of the rows in that rowid range only.

    The summary and the report aggregate most of the table. Through an index on state (or
    owner), SQLite would fetch each row by its rowid in index order, a random read per row of a
    table whose rows carry the whole wire object (1.5 GB at a million entries, and far slower
    still from a cold disk); reading it front to back is one sequential pass. The view changes
    no result: it selects every row and column of `main.entries` (in the range). A range is
    one part of the table for one connection of several reading it at once.
    """
    part = "" if rowids is None else f"WHERE rowid BETWEEN {int(rowids[0])} AND {int(rowids[1])}"
    await store.fetchall(
        f"CREATE TEMP VIEW entries AS SELECT * FROM main.entries NOT INDEXED {part}"
    )
    try:
        yield
    finally:
        await store.fetchall("DROP VIEW temp.entries")


class OwnerGroup(NamedTuple):
    """The selected entries of one rule (None: no rule) and one owner (None: no owner)."""

    policy: str | None
    owner: str | None
    entries: int
    unplayed: int  # entries with no play recorded (plays 0, or no play data)
    video: int
    audio: int
    image: int
    youtube: int  # external, not quiz
    quiz: int  # quiz, not external
    youtube_quiz: int  # both
    seconds: int  # running time, images excluded
    bytes_saved: int  # unknown sizes add 0 (see unsized)
    unsized: int


# One pass, every figure of the table: SQLite sorts the selected rows once, by owner then
# rule, and sums each group.
_OWNER_GROUPS_SQL = f"""
SELECT policy, owner, count(*),
       sum(coalesce(plays, 0) = 0),
       coalesce(sum(media_type = {_MEDIA_VIDEO}), 0),
       coalesce(sum(media_type = {_MEDIA_AUDIO}), 0),
       coalesce(sum(media_type = {_MEDIA_IMAGE}), 0),
       sum(is_external AND NOT is_quiz),
       sum(is_quiz AND NOT is_external),
       sum(is_quiz AND is_external),
       sum(CASE WHEN media_type IS {_MEDIA_IMAGE} THEN 0 ELSE coalesce(duration, 0) END),
       sum(coalesce(bytes_saved, 0)),
       sum(bytes_saved IS NULL)
FROM entries
WHERE state IN ({{marks}})
GROUP BY owner, policy
"""


async def read_owner_groups(store: Store, states: Sequence[str]) -> list[OwnerGroup]:
    """The entries in ``states`` (checked names, see check_states), grouped by rule and owner."""
    sql = _OWNER_GROUPS_SQL.format(marks=",".join("?" * len(states)))
    return [OwnerGroup(*r) for r in await store.fetchall(sql, tuple(states))]


def _column(groups: Sequence[OwnerGroup]) -> list[Any]:
    """The metric values, in row order, of the groups of one column."""
    owners = {g.owner for g in groups if g.owner is not None}
    unplayed = {g.owner for g in groups if g.owner is not None and g.unplayed}
    # The count columns (entries ... unsized) of every group, added up column by column.
    sums = [sum(column) for column in zip(*(g[2:] for g in groups), strict=True)]
    entries, _, video, audio, image, youtube, quiz, youtube_quiz, seconds, saved, unsized = (
        sums or [0] * 11
    )
    return [
        entries,
        len(owners),
        len(unplayed),
        video,
        audio,
        image,
        youtube,
        quiz,
        youtube_quiz,
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
    "candidates",
    "unique users",
    "unique users (0 plays)",
    "media type: video",
    "media type: audio",
    "media type: image",
    "media subtype: YouTube",
    "media subtype: Quiz",
    "media subtype: YouTube Quiz",
    "duration (seconds)",
    "duration (hours)",
    "bytes saved",
    "MB saved",
    "GB saved",
    "TB saved",
    "saved",
    "not sized yet",
)


def summary_table(
    groups: Iterable[OwnerGroup],
    states: Sequence[str],
    *,
    rule_names: Sequence[str] | None = None,
) -> Table:
    """The seed's summary table of ``groups`` (read_owner_groups of ``states``; the groups of
    several parts of the table, read at once, may name the same rule and owner: they add up).

    ``rule_names``: rule columns always shown, in order (None = the default policy's rules);
    other rule names present in the groups get their own column after them.
    """
    groups = list(groups)
    by_rule: dict[str, list[OwnerGroup]] = defaultdict(list)
    for g in groups:
        by_rule[NO_RULE if g.policy is None else g.policy].append(g)
    names = list(dict.fromkeys(rule_names if rule_names is not None else _default_rule_names()))
    names += sorted(n for n in by_rule if n not in names)
    columns = [_column(by_rule.get(n, ())) for n in names] + [_column(groups)]
    rows = [[metric, *(col[i] for col in columns)] for i, metric in enumerate(METRICS)]
    return Table(
        headers=["metric", *names, "total"],
        rows=rows,
        title=f"Retention summary (states: {', '.join(states)})",
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
    async with sequential_reads(store):
        groups = await read_owner_groups(store, chosen)
    return summary_table(groups, chosen, rule_names=rule_names)

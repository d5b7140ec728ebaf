"""What `kretain run --delete` shows: the plan, what was held back and why, and the pace.

plan_tables(result) -> list[Table]     (result: kretain.workers.delete.DeleteResult)
"""

from __future__ import annotations

import humanize

from kretain.output import Table
from kretain.workers.delete import DeleteResult

__all__ = ["plan_tables"]


def _size(n: int) -> str:
    return humanize.naturalsize(n, binary=True)


def plan_tables(result: DeleteResult) -> list[Table]:
    """The plan by rule and action, the held-back rows by reason, and the calls' pace."""
    verb = "planned (dry run: nothing changed in Kaltura)" if result.dry_run else "planned"
    rows = [
        (rule, decision, n, size, _size(size))
        for (rule, decision), (n, size) in sorted(result.by_rule.items())
    ]
    rows.append(("all", "", result.planned, result.planned_bytes, _size(result.planned_bytes)))
    tables = [Table(["rule", "action", "entries", "bytes", "size"], rows, title=f"Deletes {verb}")]
    if not result.dry_run:
        done = [
            ("deleted", result.deleted),
            ("recycled (in the recycle bin until it empties)", result.recycled),
            ("stripped (every flavor but the source)", result.stripped),
            ("flavors deleted", result.flavors_deleted),
            ("bytes freed", f"{result.bytes_freed:,} ({_size(result.bytes_freed)})"),
            ("failed (retried next run)", result.failed),
        ]
        tables.append(Table(["carried out", "count"], done, title="Carried out"))
    moved = [
        ("kept: played since, or no longer under the same rule", result.kept),
        ("exempt now", result.exempt),
        ("gone from Kaltura (not by kretain)", result.gone),
        ("back up again: the archive check failed", result.back_up_again),
        ("size again: assets changed since the backup", result.size_again),
    ]
    held = [(reason, n) for reason, n in result.held_reasons.most_common()]
    if not result.dry_run:
        held += [(why, n) for why, n in moved if n]
    if held:
        tables.append(Table(["held back", "entries"], held, title="Not acted on, and why"))
    if result.calls:
        tables.append(
            Table(
                ["call", "calls", "ACTION_BLOCKED", "rate set", "achieved per window", "rate now"],
                [
                    (
                        call,
                        c["calls"],
                        c["blocked"],
                        c["configured"],
                        f"{c['per_window']:.1f}" if c["per_window"] is not None else "",
                        c["limit_now"],
                    )
                    for call, c in sorted(result.calls.items())
                ],
                title="Pace",
            )
        )
    return tables

"""Owner notices: tell every owner what the policy will do to their entries, and when.

    result = await notify(store, out_dir, notice_days=14, run_id=run)

For every owner with entries due (every entry the policy acts on that kretain has not acted
on yet), one Markdown notice and one CSV (titles, ids, created, last played, what happens,
and the date after which it happens), plus ``owners.csv`` listing the notices. Each entry's
``notified_at`` is stamped the first time it appears in a notice (an event of kind
``notice`` too): the notice period counts from then, and ``kretain run --delete`` with
``notice_days`` set acts on an entry only when that period is over.

File names come from owner ids, which come from Kaltura users: they are reduced to a safe
readable part plus a short hash, so no owner can name a path.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kretain import rules
from kretain.output import csv_cell
from kretain.policy import Policy
from kretain.store import queries, transitions
from kretain.store.db import Store
from kretain.store.db import now as wall_now
from kretain.store.models import EntryRow

__all__ = ["NOTICE_COLUMNS", "NotifyResult", "notify"]

NOTICE_COLUMNS = ("entry_id", "title", "created", "last_played", "what_happens", "after")
_SAFE = re.compile(r"[^A-Za-z0-9@._-]+")


@dataclass
class NotifyResult:
    owners: int = 0
    entries: int = 0
    newly_notified: int = 0
    out_dir: str = ""


def notice_file_stem(owner: str | None) -> str:
    """A file name for an owner's notice: readable, bounded, and unique per owner."""
    text = owner or ""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    readable = _SAFE.sub("_", text).strip("._")[:40] or "no-owner"
    return f"{readable}-{digest}"


def what_happens(row: EntryRow, policy: Policy) -> str:
    if str(row.action) == "delete_flavors":
        return "extra copies (flavors) removed; the original file stays"
    if policy.needs_backup(row.policy):
        return "deleted from the video platform (a copy is kept in the archive)"
    return "deleted from the video platform"


def _markdown(owner: str | None, rows: Sequence[tuple[EntryRow, str]], policy: Policy) -> str:
    def cell(text: object) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ").replace("\r", " ")

    lines = [
        f"# Media retention notice for {cell(owner or '(no owner)')}",
        "",
        "The following entries are due under the media retention policy. Each will be handled "
        "as shown after the date given. To keep an entry, play it or ask the media team for "
        "an exemption before that date.",
        "",
        "| title | entry id | created | last played | what happens | after |",
        "|---|---|---|---|---|---|",
    ]
    for row, after in rows:
        played = rules.day(row.last_played_at) if row.last_played_at else "never"
        lines.append(
            f"| {cell(row.name or '')} | {row.id} | {rules.day(row.created_at)} | {played} "
            f"| {what_happens(row, policy)} | {after} |"
        )
    return "\n".join(lines) + "\n"


async def notify(
    store: Store,
    out_dir: Path,
    *,
    policy: Policy,
    notice_days: int,
    run_id: int | None,
    now: int | None = None,
) -> NotifyResult:
    """Write the notices (see the module docstring) and stamp ``notified_at``."""
    when = wall_now() if now is None else now
    out_dir.mkdir(parents=True, exist_ok=True)
    result = NotifyResult(out_dir=str(out_dir))
    index: list[tuple[str, str, int]] = []
    async for owner, rows in queries.due_by_owner(store):
        fresh = [r for r in rows if r.notified_at is None]
        dated = [(r, rules.day((r.notified_at or when) + notice_days * 86_400)) for r in rows]
        stem = notice_file_stem(owner)
        (out_dir / f"{stem}.md").write_text(_markdown(owner, dated, policy), encoding="utf-8")
        with open(out_dir / f"{stem}.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(NOTICE_COLUMNS)
            for row, after in dated:
                played = rules.day(row.last_played_at) if row.last_played_at else "never"
                writer.writerow(
                    csv_cell(v)
                    for v in (
                        row.id, row.name, rules.day(row.created_at), played,
                        what_happens(row, policy), after,
                    )
                )  # fmt: skip
        if fresh:
            await transitions.record_notices(
                store, [r.id for r in fresh], run_id=run_id, detail=f"{stem}.md", now=when
            )
        index.append((owner or "", stem, len(rows)))
        result.owners += 1
        result.entries += len(rows)
        result.newly_notified += len(fresh)
    with open(out_dir / "owners.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(("owner", "notice", "entries"))
        for owner_id, stem, count in index:
            writer.writerow((csv_cell(owner_id), f"{stem}.md", count))
    return result

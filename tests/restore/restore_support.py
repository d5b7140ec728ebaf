"""Helpers shared by the restore tests (no tests here).

Rows reach ``archived`` the way a real run gets them there (test_backup_support: admitted,
sized by the size worker, backed up by the backup worker, all over HTTP). The delete stage's
command is being written elsewhere; until ``kretain run --delete --yes`` lands,
``remove_like_the_delete_stage`` is the one place that deletes, recycles or strips entries
in the simulator through the client and moves their rows as the stage will.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from click.testing import CliRunner, Result
from test_backup_support import ENTRIES, client_for, make_sized, new_run, run_backup, store_at

from kretain import archive, rules
from kretain.cli import cli
from kretain.kaltura.client import KalturaClient
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import RunningSimulator
from kretain.store import queries, transitions
from kretain.store.db import Store
from kretain.store.states import Action, State

__all__ = ["ENTRIES", "client_for", "store_at"]

Removal = Literal["delete", "recycle", "strip"]
# The backup tests' partner (its entries are named in ENTRIES), files capped so a round trip
# moves megabytes. Recycling needs the recycle-bin feature.
SPEC = PartnerSpec(entries=400, seed=9, traps=True, max_file_bytes=3 << 20, recycle_bin=True)
# Ready, not a child: a caption, an attachment, a thumbnail, two flavors.
WITH_ATTACHMENT = "0_0n93t6x6"


async def archived(
    sim: RunningSimulator, db: Path, root: Path, entry_ids: Sequence[str], how: Removal = "delete"
) -> None:
    """Audit (admit + size), back up and remove the entries: the state a retention run
    leaves them in (``strip`` rows are sized for delete_flavors and not backed up)."""
    async with store_at(db) as store, client_for(sim) as client:
        if how == "strip":
            await make_sized(store, client, sim, entry_ids, action=Action.DELETE_FLAVORS)
        else:
            await make_sized(store, client, sim, entry_ids)
            result = await run_backup(store, client, root)
            assert result.archived == len(entry_ids), result
        await remove_like_the_delete_stage(store, client, entry_ids, how)


async def remove_like_the_delete_stage(
    store: Store, client: KalturaClient, entry_ids: Iterable[str], how: Removal
) -> None:
    """What `kretain run --delete --yes` will do to these rows (archived, or sized for a
    strip): an intent, the call, its outcome, and the row's moves to deleted / recycled /
    stripped (stripped flavors marked removed_at). Swap for the CLI once it lands."""
    run_id = await new_run(store)
    for eid in entry_ids:
        row = await queries.get_entry(store, eid)
        assert row is not None
        await transitions.move(store, eid, row.state, State.DELETING, run_id=run_id)
        if how == "strip":
            assets = await queries.assets_of(store, eid)
            gone = [a for a in assets if a.kind == "flavor" and not a.is_source]
            for a in gone:
                await transitions.record_intent(
                    store, run_id=run_id, call="flavorasset.delete", entry_id=eid, asset_id=a.id
                )
                await client.delete_flavor(a.id)
                await transitions.record_api_event(
                    store, run_id=run_id, call="flavorasset.delete", outcome="ok",
                    entry_id=eid, asset_id=a.id,
                )  # fmt: skip
            await queries.mark_removed(store, eid, [a.id for a in gone], 1_800_000_000)
            await transitions.move(store, eid, State.DELETING, State.STRIPPED, run_id=run_id)
            continue
        call = "baseentry.delete" if how == "delete" else "baseentry.recycle"
        await transitions.record_intent(store, run_id=run_id, call=call, entry_id=eid)
        if how == "delete":
            await client.delete_entry(eid)
        else:
            await client.recycle_entry(eid)
        await transitions.record_api_event(
            store, run_id=run_id, call=call, outcome="ok", entry_id=eid
        )
        if how == "delete":
            await transitions.move(
                store, eid, State.DELETING, State.DELETED, run_id=run_id,
                updates={"delete_mode": "delete"},
            )  # fmt: skip
        else:
            await transitions.move(
                store, eid, State.DELETING, State.RECYCLED, run_id=run_id,
                updates={"delete_mode": "recycle", "purge_at": 1_900_000_000},
            )  # fmt: skip


def cli_env(sim: RunningSimulator) -> dict[str, str]:
    spec = sim.partner.spec
    return {
        "KALTURA_SERVICE_URL": sim.url,
        "KALTURA_PARTNER_ID": str(spec.partner_id),
        "KALTURA_ADMIN_SECRET": spec.admin_secret,
    }


def kretain(sim: RunningSimulator, db: Path, *args: str) -> Result:
    """One CLI invocation against the simulator (real HTTP, real SQLite)."""
    return CliRunner().invoke(
        cli, ["--db", str(db), *args], env=cli_env(sim), catch_exceptions=False
    )


def entry_json(root: Path, partner_id: int, entry_id: str) -> dict[str, Any]:
    return archive.read_entry_json(archive.entry_dir(root, partner_id, entry_id))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def served_sha(sim: RunningSimulator, asset_id: str) -> tuple[int, str]:
    """What a download of the asset gets (size, sha256), read from the simulator's store."""
    size, seed, path = sim.partner.content_ref(asset_id)
    if path is None:
        from kretain.simulator.content import content_sha256

        return int(size), content_sha256(seed, int(size))
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return os.path.getsize(path), digest.hexdigest()


def mutations(sim: RunningSimulator, action: str | None = None) -> list[dict[str, Any]]:
    out = [m for m in sim.mutations if m["service"] not in ("session",)]
    if action is not None:
        service, _, act = action.lower().partition(".")
        out = [m for m in out if m["service"] == service and m["action"] == act]
    return out


def by_kind(assets: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [a for a in assets if a.get("kind") == kind]


def default_thumb(assets: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return next((a for a in by_kind(assets, "thumb") if rules.is_default_thumb(a)), None)

"""Helpers shared by the restore tests (no tests here).

Entries are removed the way a retention run removes them, through the CLI:
``retention_run`` writes a settings file whose policy takes exactly the entries a test
names, then ``kretain run`` audits the partner and backs them up into the archive, and
``kretain run --delete --yes`` (``--mode recycle`` for the recycle bin) deletes, recycles or
strips them. Everything is real: the simulator over HTTP, SQLite, the archive on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from click.testing import CliRunner, Result
from ctxhelpers import AS_OF
from test_backup_support import ENTRIES, client_for, new_run, store_at

from kretain import archive, rules
from kretain.cli import cli
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import RunningSimulator

__all__ = ["ENTRIES", "client_for", "new_run", "store_at"]

Removal = Literal["delete", "recycle", "strip"]
# The backup tests' partner (its entries are named in ENTRIES), files capped so a round trip
# moves megabytes. Recycling needs the recycle-bin feature.
SPEC = PartnerSpec(entries=400, seed=9, traps=True, max_file_bytes=3 << 20, recycle_bin=True)
# Ready, not a child: a caption, an attachment, a thumbnail, two flavors.
WITH_ATTACHMENT = "0_0n93t6x6"
# Multi-stream, three children: one of them has two flavors besides its source.
MULTI_STREAM = "0_95hnk6h9"
# The state each removal leaves a row in.
REMOVED_STATE = {"delete": "deleted", "recycle": "recycled", "strip": "stripped"}


def policy_toml(how: Removal, *, backup: bool = True) -> str:
    """A policy under which every entry qualifies at any as-of (never-ready ones for
    delete_entry; ready ones for delete_entry, or delete_flavors for a strip), backed up
    first unless ``backup`` is false, and every entry listed in others.txt exempt."""
    action = "delete_flavors" if how == "strip" else "delete_entry"
    statuses = ", ".join(f'"{s}"' for s in rules.NON_READY_STATUSES)
    no_backup = "" if backup else "backup = false"
    return f"""
[[policy.rules]]
name = "never-ready"
action = "delete_entry"
min_age_years = 0
statuses = [{statuses}]
{no_backup}

[[policy.rules]]
name = "any-age"
action = "{action}"
min_age_years = 0
not_played_years = 0
{no_backup if action == "delete_entry" else ""}

[policy.exemptions]
entry_ids_file = "others.txt"
"""


def retention_config(
    sim: RunningSimulator, db: Path, entry_ids: Sequence[str], how: Removal, *, backup: bool = True
) -> Path:
    """retention.toml (policy_toml) and its others.txt next to ``db``: every top-level entry
    of the partner but ``entry_ids`` is exempt by id."""
    folder = db.parent
    folder.mkdir(parents=True, exist_ok=True)
    wanted = set(entry_ids)
    others = [
        r[0]
        for r in sim.partner.sql("SELECT id FROM entries WHERE parent_entry_id IS NULL")
        if r[0] not in wanted
    ]
    (folder / "others.txt").write_text("\n".join(others) + "\n")
    config = folder / "retention.toml"
    config.write_text(policy_toml(how, backup=backup))
    return config


def retention_env(root: Path | None) -> dict[str, str]:
    """The retention runs' environment: the as-of date, and the archive unless None."""
    env = {"KRETAIN_AS_OF": AS_OF.isoformat()}
    if root is not None:
        env["KRETAIN_ARCHIVE"] = str(root)
    return env


def retention_run(
    sim: RunningSimulator,
    db: Path,
    root: Path | None,
    entry_ids: Sequence[str],
    how: Removal = "delete",
) -> None:
    """Remove the entries as a retention run does, through the CLI: ``kretain run`` (the
    audit, and the backup into ``root``), then ``kretain run --delete --yes`` (``--mode
    recycle`` to recycle). The policy (retention.toml next to ``db``, at AS_OF) takes every
    entry and exempts every other entry of the partner by id, so the runs act on
    ``entry_ids`` alone; with ``root`` None its rules need no backup and nothing is archived.
    Each entry must end deleted, recycled or stripped."""
    config = retention_config(sim, db, entry_ids, how, backup=root is not None)
    wanted = set(entry_ids)
    env = retention_env(root)
    audit = kretain(sim, db, "run", "--no-progress", config=config, **env)
    assert audit.exit_code == 0, audit.output
    mode = ["--mode", "recycle"] if how == "recycle" else []
    removal = kretain(
        sim, db, "run", "--no-progress", "--delete", "--yes", *mode, config=config, **env
    )
    assert removal.exit_code == 0, removal.output
    marks = ",".join("?" * len(wanted))
    states = dict(db_rows(db, f"SELECT id, state FROM entries WHERE id IN ({marks})", (*wanted,)))
    assert states == dict.fromkeys(wanted, REMOVED_STATE[how]), (states, removal.output)


def db_rows(db: Path, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of a query over the state database."""
    with contextlib.closing(sqlite3.connect(db)) as con:
        return con.execute(query, params).fetchall()


def cli_env(sim: RunningSimulator) -> dict[str, str]:
    spec = sim.partner.spec
    return {
        "KALTURA_SERVICE_URL": sim.url,
        "KALTURA_PARTNER_ID": str(spec.partner_id),
        "KALTURA_ADMIN_SECRET": spec.admin_secret,
    }


def kretain(
    sim: RunningSimulator, db: Path, *args: str, config: Path | None = None, **env: str
) -> Result:
    """One CLI invocation against the simulator (real HTTP, real SQLite)."""
    head = ["--db", str(db)] + (["--config", str(config)] if config is not None else [])
    return CliRunner().invoke(
        cli, [*head, *args], env={**cli_env(sim), **env}, catch_exceptions=False
    )


def kretain_child(
    sim: RunningSimulator, db: Path, *args: str, config: Path | None = None, **env: str
) -> subprocess.Popen[bytes]:
    """kretain in a child process (to be killed, or to run while the test changes the
    simulator's knobs); its stderr is piped."""
    head = ["--db", str(db)] + (["--config", str(config)] if config is not None else [])
    return subprocess.Popen(
        [sys.executable, "-m", "kretain", *head, *args],
        env={**os.environ, **cli_env(sim), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
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

"""Helpers shared by the backup and verify tests (no tests here).

Rows reach ``sized`` the way a real run gets them there: admitted as candidates from the
simulator's own wire entries (as discovery would), then sized by the real size worker over
HTTP. The partner (seed 9, 400 entries) was chosen because it holds every shape the tests
need; ENTRIES names them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ctxhelpers import everything, make_ctx

from kretain.archive.local import DEFAULT_MIN_FREE_BYTES, LocalFS, LocalTarget
from kretain.kaltura.client import ClientConfig, KalturaClient
from kretain.simulator.content import content_sha256
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import RunningSimulator
from kretain.store import queries, transitions
from kretain.store.db import Store, open_store
from kretain.store.models import entry_fields_from_wire
from kretain.store.states import Action, State
from kretain.store.transitions import Admission
from kretain.workers.backup import BackupOptions, BackupResult, backup
from kretain.workers.context import RunContext
from kretain.workers.size import SizeOptions, size

SPEC = PartnerSpec(entries=400, seed=9, traps=True)

ENTRIES = {
    # two captions in different languages, a hostile fileExt, one multi-stream child
    "captions_child": "0_2vpwe48z",
    # two captions, emoji in the name
    "captions_emoji": "0_aphm1u91",
    # an image entry named "../../etc/passwd"
    "evil_name": "0_7e8fhtvq",
    # an image whose asset has fileExt ".."
    "evil_ext": "0_1x3b3h2q",
    # YouTube entry: metadata (and a thumbnail) only
    "external": "0_31the0sy",
    # status -2 (error importing): its only flavor is in ERROR, can never be fetched
    "source_error": "0_5j5hz0fv",
    # status 0 (importing): its source is still QUEUED -> not archivable yet
    "importing": "0_chwq14fp",
    # small images / audio
    "image_a": "0_dajfazh6",
    "image_b": "0_3ve3m5mv",
    "image_c": "0_d3u8cjdw",
    "audio": "0_4il5flj4",
    # a ~37 MB video source (SIGKILL test)
    "video": "0_587j6ffv",
}


def reset_knobs(sim: RunningSimulator) -> None:
    sim.knobs.clear_faults()
    sim.knobs.ignore_range = False
    sim.knobs.fault_scope = "download"
    sim.knobs.download_bandwidth = None
    sim.knobs.total_bandwidth = None
    sim.knobs.download_error_code = 6


def client_config(sim: RunningSimulator, **extra: Any) -> ClientConfig:
    spec = sim.partner.spec
    return ClientConfig(
        service_url=sim.url,
        partner_id=spec.partner_id,
        admin_secret=spec.admin_secret,
        backoff_base=0.01,
        backoff_max=0.05,
        **extra,
    )


@asynccontextmanager
async def client_for(sim: RunningSimulator) -> AsyncIterator[KalturaClient]:
    async with KalturaClient(client_config(sim)) as client:
        yield client


@asynccontextmanager
async def store_at(path: Path) -> AsyncIterator[Store]:
    store = await open_store(path)
    try:
        yield store
    finally:
        await store.close()


async def new_run(store: Store) -> int:
    return await queries.start_run(store, "test", {})


def backup_ctx(store: Store, client: KalturaClient, run_id: int, **kw: Any) -> RunContext:
    """A run context under which every test entry still qualifies for deletion."""
    return make_ctx(store, client, run_id, policy=everything(), **kw)


async def run_backup(
    store: Store,
    client: KalturaClient,
    root: Path,
    *,
    progress: Any = None,
    min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
    fs: LocalFS | None = None,
    **options: Any,
) -> BackupResult:
    """backup() as the tests call it: into the directory ``root`` (kept-free margin and
    file-system seam as given), as a new run, backup's defaults otherwise."""
    ctx = backup_ctx(store, client, await new_run(store), progress=progress)
    target = LocalTarget(root, min_free_bytes=min_free_bytes, fs=fs)
    return await backup(ctx, archive=target, options=BackupOptions(**options))


async def make_sized(
    store: Store,
    client: KalturaClient,
    sim: RunningSimulator,
    entry_ids: Iterable[str],
    *,
    action: Action = Action.DELETE_ENTRY,
) -> None:
    """Admit the entries as candidates (wire data from the simulator) and size them."""
    run_id = await new_run(store)
    admissions = [
        Admission(
            fields=entry_fields_from_wire(sim.partner.get_entry(eid)),
            state=State.CANDIDATE,
            policy="4-year" if action == Action.DELETE_ENTRY else "2-year",
            action=action,
            reason="test",
        )
        for eid in entry_ids
    ]
    await transitions.admit(store, admissions, run_id=run_id)
    ctx = make_ctx(store, client, run_id, policy=everything(str(action)))
    result = await size(ctx, options=SizeOptions(concurrency=1))
    assert result.sized == len(admissions), result


async def state_of(store: Store, entry_id: str) -> State:
    row = await queries.get_entry(store, entry_id)
    assert row is not None
    return row.state


def children_of(sim: RunningSimulator, entry_id: str) -> list[str]:
    return [
        r[0]
        for r in sim.partner.sql("select id from entries where parent_entry_id = ?", (entry_id,))
    ]


def wire_assets(sim: RunningSimulator, entry_id: str) -> list[dict[str, Any]]:
    """The entry's and its children's assets, as the simulator holds them."""
    out = []
    for owner in [entry_id, *children_of(sim, entry_id)]:
        out.extend(sim.partner.assets_of(owner))
    return out


def true_sha(sim: RunningSimulator, asset_id: str) -> tuple[int, str]:
    size_, seed = sim.partner.asset_content(asset_id)
    return size_, content_sha256(seed, size_)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def walk(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            yield Path(dirpath) / name

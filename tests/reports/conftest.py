"""Fixtures for report tests: the SPECS store of reporthelpers.py in a temp dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from reporthelpers import build

from kretain.store import Store, open_store, queries


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "kretain.db"


@pytest.fixture
async def built(db_path: Path) -> AsyncIterator[Path]:
    """The spec store, written and closed; yields its path."""
    store = await open_store(db_path)
    try:
        await build(store)
        run_id = await queries.start_run(
            store, "run", {"admin_secret": "s3cret", "workers": 4}, as_of="2025-01-01", now=1000
        )
        await queries.finish_run(store, run_id, "done", {"deleted": 2, "failed": 2}, now=1090)
    finally:
        await store.close()
    yield db_path


@pytest.fixture
async def ro_store(built: Path) -> AsyncIterator[Store]:
    store = await open_store(built, readonly=True)
    try:
        yield store
    finally:
        await store.close()

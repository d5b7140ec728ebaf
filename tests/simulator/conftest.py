"""Fixtures for simulator tests that call the API over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from simapi import Api, admin_ks

from kretain.simulator.testing import RunningSimulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def api(simulator: RunningSimulator, http: aiohttp.ClientSession) -> Api:
    return Api(http, simulator, admin_ks(simulator))

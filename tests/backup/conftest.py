"""Backup tests share one simulator per module, with its knobs reset around each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_backup_support import SPEC, reset_knobs

from kretain.simulator.testing import RunningSimulator, run_simulator


@pytest.fixture(scope="module")
def sim_module() -> Iterator[RunningSimulator]:
    with run_simulator(SPEC) as sim:
        yield sim


@pytest.fixture
def sim(sim_module: RunningSimulator) -> Iterator[RunningSimulator]:
    reset_knobs(sim_module)
    yield sim_module
    reset_knobs(sim_module)

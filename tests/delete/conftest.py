"""Delete-stage tests: a partner audited and backed up through the CLI, then deleted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from delete_support import SPEC, Setup, audited

from kretain.simulator.testing import run_simulator


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with run_simulator(SPEC) as sim:
        yield audited(sim, tmp_path)

"""Shared fixtures. Every test runs with a clean KRETAIN_*/KALTURA_* environment."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in list(os.environ):
        if name.startswith(("KRETAIN_", "KALTURA_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


# ---- simulator fixtures ---------------------------------------------------------
# Imported lazily so test modules that never touch the simulator don't pay for it.


@pytest.fixture(scope="session")
def sim_spec():
    """A small partner with the traps on (hostile names, odd entries)."""
    from kretain.simulator.partner import PartnerSpec

    return PartnerSpec(entries=600, seed=7, traps=True, recycle_bin=True, burst=20)


@pytest.fixture(scope="session")
def sim_partner_session(sim_spec, tmp_path_factory):
    """One Partner shared by the session: READ-ONLY use; tests that mutate make their own."""
    from kretain.simulator.partner import Partner

    path = tmp_path_factory.mktemp("sim-partner") / "partner.sqlite"
    partner = Partner.create(sim_spec, str(path))
    yield partner
    partner.close()


@pytest.fixture
def simulator(sim_spec):
    """A fresh simulator (own partner, knobs, stats, mutation log) for one test."""
    from kretain.simulator.testing import run_simulator

    with run_simulator(sim_spec) as sim:
        yield sim


# ---- slow tests -------------------------------------------------------------------
# Soak, scale and benchmark-like tests are marked `slow`; CI skips them. Run them with
# KRETAIN_SLOW=1 pytest -m slow (read at collection time, before _clean_environ runs).


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("KRETAIN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set KRETAIN_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _quiet_logs():
    """Library code logs one INFO line per entry moved; tests that do not set up logging
    themselves keep warnings only (as the CLI's console does), so output stays readable."""
    from kretain.log import configure_logging

    configure_logging(console=True, level="WARNING")

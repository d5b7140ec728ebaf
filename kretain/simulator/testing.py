"""Run the simulator in a background thread for tests (and the demo).

    with run_simulator(PartnerSpec(entries=600)) as sim:
        sim.url, sim.partner, sim.knobs, sim.mutations, sim.stats

What clients added is read from the partner: ``partner.added_entries()``,
``partner.assets_of(entry_id)``, ``partner.read_content(asset_id)`` (the bytes a
download gets), ``partner.get_upload_token(token_id)``. ``max_in_window(
admitted_times(sim.mutations, "baseEntry.delete"), 10)`` is the most deletes the
server admitted within any 10 seconds.

The server has its own event loop in a daemon thread, so code under test may
use ``asyncio.run`` (e.g. click commands through CliRunner) in the main thread.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kretain.simulator.faults import Knobs, Stats
from kretain.simulator.partner import Partner, PartnerSpec
from kretain.simulator.server import build_app


@dataclass
class RunningSimulator:
    url: str  # "http://127.0.0.1:<port>"
    partner: Partner
    knobs: Knobs
    mutations: list[dict[str, Any]]  # the mutation log (record shape: services.py)
    stats: Stats  # .requests, .calls (Counter of "service.action"), .bytes_served


def admitted_times(mutations: Sequence[Mapping[str, Any]], service_action: str) -> list[float]:
    """Monotonic times of the calls of ``service_action`` (e.g. "baseEntry.delete") that
    the server admitted (passed the session and rate-limit checks), in order."""
    service, _, action = service_action.lower().partition(".")
    return sorted(
        float(m["monotonic"])
        for m in mutations
        if m["service"] == service and m["action"] == action and m["admitted"]
    )


def max_in_window(times: Sequence[float], window: float) -> int:
    """The most of ``times`` that fall within any half-open span of ``window`` seconds."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


@contextmanager
def run_simulator(
    partner_or_spec: Partner | PartnerSpec, knobs: Knobs | None = None
) -> Iterator[RunningSimulator]:
    """Serve a partner on 127.0.0.1:<free port> until the block exits."""
    owned = isinstance(partner_or_spec, PartnerSpec)
    partner = Partner.create(partner_or_spec) if owned else partner_or_spec
    knobs = knobs if knobs is not None else Knobs()
    stats = Stats()
    mutations: list[dict[str, Any]] = []
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(
            build_app(partner, knobs, stats, mutations), access_log=None, shutdown_timeout=0.5
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"] = runner
        state["port"] = runner.addresses[0][1]

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:  # surfaced in the caller's thread
            state["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(state["runner"].cleanup())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    thread = threading.Thread(target=run, name="kretain-simulator", daemon=True)
    thread.start()
    try:
        started.wait()
        if "error" in state:
            raise RuntimeError("simulator failed to start") from state["error"]
        yield RunningSimulator(
            url=f"http://127.0.0.1:{state['port']}",
            partner=partner,
            knobs=knobs,
            mutations=mutations,
            stats=stats,
        )
    finally:
        if "runner" in state:
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if owned:
            partner.close()


def start_simulator_process(*args: str) -> tuple[subprocess.Popen[str], str]:
    """``python -m kretain.simulator --port 0 ARGS`` in a process of its own, and its URL once
    it listens. For benchmarks: the simulator stands in for a Kaltura that runs elsewhere, so
    its CPU and memory are not the measured process's. Stop it with SIGINT."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kretain.simulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if " at http://" in line:
            return proc, line.rsplit(" at ", 1)[1].strip()
    raise SystemExit(f"simulator did not start (exit {proc.wait()})")

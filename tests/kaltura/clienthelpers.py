"""Shared by the client tests: a ClientConfig for a running simulator, fast retries."""

from __future__ import annotations

import dataclasses

from kretain.kaltura import ClientConfig


def config(sim, **overrides) -> ClientConfig:
    spec = sim.partner.spec
    base = ClientConfig(
        service_url=sim.url,
        partner_id=spec.partner_id,
        admin_secret=spec.admin_secret,
        timeout=10.0,
        backoff_base=0.01,
        backoff_max=0.05,
    )
    return dataclasses.replace(base, **overrides)

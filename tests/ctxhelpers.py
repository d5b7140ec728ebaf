"""Run contexts for tests that call a stage directly (imported by name: tests/ is on sys.path)."""

from __future__ import annotations

from datetime import date

from kretain.kaltura.client import KalturaClient
from kretain.policy import Policy, Rule
from kretain.rules import NON_READY_STATUSES
from kretain.store.db import Store
from kretain.workers.context import Progress, RunContext

AS_OF = date(2026, 11, 22)  # the simulated partners' "now"


def everything(action: str = "delete_entry") -> Policy:
    """A policy under which every entry qualifies for ``action`` (non-ready ones for
    delete_entry): for tests of a stage's mechanics, not of the default policy."""
    name = "4-year" if action == "delete_entry" else "2-year"
    return Policy(
        rules=(
            Rule("non-ready", "delete_entry", min_age_years=0, statuses=NON_READY_STATUSES),
            Rule(name, action, min_age_years=0, not_played_years=0),
        )
    )


def make_ctx(
    store: Store,
    client: KalturaClient,
    run_id: int,
    *,
    policy: Policy | None = None,
    as_of: date = AS_OF,
    progress: Progress = None,
) -> RunContext:
    return RunContext(
        store,
        client,
        run_id=run_id,
        policy=policy if policy is not None else Policy.default(),
        as_of=as_of,
        progress=progress,
    )

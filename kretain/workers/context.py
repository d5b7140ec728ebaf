"""What every stage of one run shares: the store, the Kaltura client, the run, the policy.

    ctx = RunContext(store, client, run_id=run, policy=policy, as_of=date, progress=fn)
    await size(ctx); await backup(ctx, archive=target); ...

A stage takes the context and its own small options object (concurrency, attempts,
leases ...) instead of a dozen loose parameters, so what a stage depends on is visible in
one place and the runner builds it once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import structlog

from kretain.kaltura.client import KalturaClient
from kretain.policy import Policy
from kretain.store.db import Store

__all__ = ["Progress", "RunContext"]

Progress = Callable[..., None] | None

log = structlog.get_logger("kretain.run")


@dataclass
class RunContext:
    store: Store
    client: KalturaClient
    run_id: int
    policy: Policy
    as_of: date
    progress: Progress = None

    def emit(self, event: str, **counts: Any) -> None:
        """A progress event (``stage.what``) with the stage's running counts."""
        if self.progress is not None:
            self.progress(event, **counts)

    def outcome(self, stage: str, **counts: Any) -> None:
        """The stage's one outcome line in the run log."""
        log.info("stage finished", stage=stage, run_id=self.run_id, **counts)

"""OffloadPool: run a pure function away from the event loop, in a process once it pays.

    pool = OffloadPool()
    result = await pool.run(fn, *args)
    pool.shutdown()

Sizing checks ~1,000 assets per batch in pure Python. In a thread that work holds the
GIL against the event loop and the database thread, and every request and write slows
down with it; in a process of its own it runs on the other core. A process costs a
start-up and pickling, so the first ``warm_up`` calls run in threads and small runs
(tests, a few thousand entries) never start one. ``fn`` must be a module-level function
and its arguments picklable. If the worker process dies, later calls go back to threads.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import structlog

__all__ = ["OffloadPool"]

log = structlog.get_logger("kretain.offload")


class OffloadPool(Executor):
    """Threads for the first ``warm_up`` calls, then one ``spawn``-ed worker process."""

    def __init__(self, warm_up: int = 8, threads: int = 4) -> None:
        self.warm_up = warm_up
        self.calls = 0
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="kretain-offload")
        self._process: ProcessPoolExecutor | None = None
        self._broken = False
        self._lock = threading.Lock()

    @property
    def uses_process(self) -> bool:
        return self._process is not None and not self._broken

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            self.calls += 1
            if self._broken or self.calls <= self.warm_up:
                return self._threads.submit(fn, *args, **kwargs)
            if self._process is None:
                # spawn, not fork: this process has running threads (SQLite, the loop).
                self._process = ProcessPoolExecutor(
                    1, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_start
                )
            process = self._process
        try:
            return process.submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            return self._fall_back_executor().submit(fn, *args, **kwargs)

    async def run(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        """``fn(*args)`` off the event loop. A worker process that dies mid-call is not the
        caller's error: the call runs again in a thread."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self, fn, *args)
        except BrokenProcessPool:
            return await loop.run_in_executor(self._fall_back_executor(), fn, *args)

    def _fall_back_executor(self) -> Executor:
        with self._lock:
            if not self._broken:
                log.warning("offload worker process died; continuing in threads")
            self._broken = True
        return self._threads

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            process, self._process = self._process, None
        if process is not None:
            process.shutdown(wait=wait, cancel_futures=cancel_futures)
        self._threads.shutdown(wait=wait, cancel_futures=cancel_futures)


def _worker_start() -> None:
    """In the worker process: exit as soon as the parent is gone. A parent killed with
    SIGKILL never closes the pool, and the worker would wait for work forever."""
    parent = multiprocessing.parent_process()
    if parent is None:  # pragma: no cover - always set in a spawned worker
        return

    def watch() -> None:
        parent.join()  # returns when the parent process ends, however it ends
        os._exit(0)

    threading.Thread(target=watch, name="kretain-parent-watch", daemon=True).start()

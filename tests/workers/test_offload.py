"""OffloadPool: threads while warming up, then a worker process; a dead worker falls back."""

from __future__ import annotations

import os
import signal

from kretain.workers.offload import OffloadPool


def pid_and_square(x: int) -> tuple[int, int]:
    return os.getpid(), x * x


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def test_warm_up_in_threads_then_one_worker_process() -> None:
    pool = OffloadPool(warm_up=2)
    try:
        results = [await pool.run(pid_and_square, x) for x in range(5)]
        assert pool.uses_process
    finally:
        pool.shutdown()
    pids = [pid for pid, _ in results]
    assert [sq for _, sq in results] == [0, 1, 4, 9, 16]
    assert pids[:2] == [os.getpid()] * 2  # warm-up: this process
    assert len(set(pids[2:])) == 1 and pids[2] != os.getpid()  # then one other process


async def test_a_dead_worker_process_is_not_the_callers_error() -> None:
    pool = OffloadPool(warm_up=0)
    try:
        worker_pid, _ = await pool.run(pid_and_square, 2)
        assert worker_pid != os.getpid()
        # The worker dies mid-call: the call itself must still give its answer (from a
        # thread), and later calls stay in threads.
        pid, square = await pool.run(pid_and_square_after_dying_once, 3)
        assert (pid, square) == (os.getpid(), 9)
        assert not pool.uses_process
        assert await pool.run(pid_and_square, 4) == (os.getpid(), 16)
    finally:
        pool.shutdown()


def pid_and_square_after_dying_once(x: int) -> tuple[int, int]:
    """In the worker process: die (SIGKILL). In the parent's fallback thread: answer."""
    if multiprocessing_child():
        die()
    return pid_and_square(x)


def multiprocessing_child() -> bool:
    import multiprocessing

    return multiprocessing.parent_process() is not None


def test_worker_process_exits_when_its_parent_is_killed(tmp_path) -> None:
    """A SIGKILLed kretain never shuts its pool down; the worker must not outlive it."""
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import asyncio, os, sys\n"
        "from kretain.workers.offload import OffloadPool\n"
        "from tests.workers.test_offload import pid_and_square\n"
        "async def main():\n"
        "    pool = OffloadPool(warm_up=0)\n"
        "    pid, _ = await pool.run(pid_and_square, 1)\n"
        "    print(pid, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "if __name__ == '__main__':\n"
        "    asyncio.run(main())\n"
    )
    root = str(__import__("pathlib").Path(__file__).resolve().parents[2])
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        os.kill(worker, 0)  # the worker is running
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise AssertionError(f"worker {worker} outlived its killed parent")
    finally:
        parent.kill()

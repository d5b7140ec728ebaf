"""Ctrl-C a kretain child process once it is at work (tests of long queries and reports)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def open_files(pid: int) -> set[str]:
    """The paths a process has open (a descriptor closed while they are read is skipped)."""
    paths = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return paths
    for fd in fds:
        try:
            paths.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return paths


def interrupt_when_open(
    proc: subprocess.Popen[str], path: Path, *, settle: float = 1.0, timeout: float = 10.0
) -> tuple[str, str, float]:
    """Wait until ``proc`` holds ``path`` open (its work is under way), let it run ``settle``
    seconds more, send SIGINT, and return its stdout, stderr and how long it took to exit.
    The process is killed if it is still there at the end."""
    try:
        deadline = time.monotonic() + 20
        while str(path) not in open_files(proc.pid):
            assert proc.poll() is None, "the process ended before it opened the database"
            assert time.monotonic() < deadline, "the process never opened the database"
            time.sleep(0.02)
        time.sleep(settle)
        assert proc.poll() is None, "the process finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=timeout)
        return out, err, time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

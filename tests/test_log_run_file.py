"""The run log file records INFO whatever the console shows; each database has its own logs."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import structlog
from click.testing import CliRunner

from kretain import log as klog
from kretain.cli import cli
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator


def test_file_gets_info_while_console_stays_at_warning(tmp_path: Path) -> None:
    stream = io.StringIO()
    log_file = tmp_path / "run.jsonl"
    klog.configure_logging(json_file=log_file, console=True, level="WARNING", stream=stream)
    logger = structlog.get_logger("kretain.test")
    logger.debug("too detailed")
    logger.info("stage finished", sized=3)
    logger.warning("look at this")
    events = [json.loads(line)["event"] for line in log_file.read_text().splitlines()]
    assert events == ["stage finished", "look at this"]
    assert "look at this" in stream.getvalue() and "stage finished" not in stream.getvalue()


def test_run_log_is_named_after_the_database_and_holds_info_lines(tmp_path: Path) -> None:
    spec = PartnerSpec(entries=60, seed=4)
    as_of = datetime.fromtimestamp(spec.now, UTC).date().isoformat()
    with run_simulator(spec) as sim:
        env = {
            "KALTURA_SERVICE_URL": sim.url,
            "KALTURA_PARTNER_ID": str(spec.partner_id),
            "KALTURA_ADMIN_SECRET": spec.admin_secret,
            "KRETAIN_AS_OF": as_of,
        }
        results = [
            CliRunner().invoke(
                cli, ["--db", name, "run", "--no-progress"], env=env, catch_exceptions=False
            )
            for name in ("a.db", "b.db")
        ]
    for result in results:
        assert result.exit_code == 0, result.output
        assert "stage finished" not in result.stderr  # the console stays at WARNING
    logs = sorted(p.name for p in (tmp_path / "kretain-logs").iterdir())
    assert logs == ["a.db-run-1.jsonl", "b.db-run-1.jsonl"]
    for name in logs:
        text = (tmp_path / "kretain-logs" / name).read_text()
        records = [json.loads(line) for line in text.splitlines()]
        finished = [r for r in records if r["event"] == "stage finished"]
        assert {r["stage"] for r in finished} == {"discover", "size"}
        assert all(r["level"] == "info" and r["run_id"] == 1 for r in finished)
        # One line per entry that changed state: every admitted entry, every sized one.
        moved = [r for r in records if r["event"] == "entry moved"]
        sized = [r for r in moved if r["to_state"] == "sized"]
        assert len({r["entry_id"] for r in moved if r["outcome"] == "admitted"}) == len(
            [r for r in moved if r["outcome"] == "admitted"]
        )
        assert sized and all(r["from_state"] == "candidate" for r in sized)
        assert spec.admin_secret not in text

"""End to end: a client session, calls and failures never put the secret or a KS in logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from kretain import log as klog
from kretain.kaltura import AuthenticationError, ClientConfig, KalturaClient, NotFound


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, klog._HANDLER_MARK, False):
            root.removeHandler(handler)
            handler.close()
    structlog.reset_defaults()


async def test_no_secret_or_ks_in_log_file_or_stderr(simulator, tmp_path: Path, capfd) -> None:
    spec = simulator.partner.spec
    log_file = tmp_path / "run.jsonl"
    klog.configure_logging(json_file=log_file, console=True, level="DEBUG")
    logging.getLogger("aiohttp").setLevel(logging.DEBUG)
    logger = structlog.get_logger("kretain.test")
    cfg = ClientConfig(
        service_url=simulator.url,
        partner_id=spec.partner_id,
        admin_secret=spec.admin_secret,
        backoff_base=0.01,
    )
    logger.info("config", config=repr(cfg), admin_secret=spec.admin_secret)
    seen_ks: list[str] = []
    async with KalturaClient(cfg) as client:
        seen_ks.append(await client.ks())
        page = await client.list_entries({}, 1, 3)
        # An INVALID_KS message that echoes the KS (as Kaltura does for a bad KS string),
        # then a renewal: both KS values must stay out of the logs.
        simulator.knobs.fail_next("baseentry.get", "INVALID_KS", 1, seen_ks[0], "-1", "INVALID_STR")
        await client.get_entry(page.objects[0]["id"])
        seen_ks.append(await client.ks())
        try:
            await client.get_entry("0_zzzzzzzz")
        except NotFound:
            logger.exception("lookup failed", ks=seen_ks[-1], detail=f"using {seen_ks[-1]}")
        simulator.knobs.fail_next("baseentry.get", "INVALID_KS", 2, seen_ks[-1], "-1", "X")
        try:
            await client.get_entry(page.objects[0]["id"])
        except AuthenticationError as exc:
            logger.error("rejected", error=exc, message=exc.message)
    wrong = ClientConfig(
        service_url=simulator.url,
        partner_id=spec.partner_id,
        admin_secret=spec.admin_secret + "-wrong",
    )
    async with KalturaClient(wrong) as client:
        try:
            await client.ks()
        except AuthenticationError:
            logger.exception("session failed")
    logging.getLogger("aiohttp.client").warning("raw record with %s", seen_ks[0])

    assert seen_ks[0] != seen_ks[1]
    captured = capfd.readouterr()
    written = log_file.read_text()
    for text in (written, captured.err, captured.out):
        assert spec.admin_secret not in text
        for ks in seen_ks:
            assert ks not in text
    # ...and the logs did record what happened
    for event in (
        "kaltura.session_started",
        "kaltura.retry",
        "lookup failed",
        "rejected",
        "session failed",
        "raw record with ***",
    ):
        assert event in written, event
        assert event in captured.err, event
    assert "INVALID_KS" in written and "START_SESSION_ERROR" in written

"""log.py: redaction of secret keys and registered secrets, for structlog and stdlib."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from kretain import log as klog


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    klog.clear_secrets()
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, klog._HANDLER_MARK, False):
            root.removeHandler(handler)
            handler.close()
    structlog.reset_defaults()
    klog.clear_secrets()


@pytest.mark.parametrize(
    "key",
    [
        "ks",
        "KS",
        "widget_ks",
        "secret",
        "admin_secret",
        "adminSecret",
        "token",
        "app_token",
        "tokenHash",
        "token_hash",
        "password",
        "userPassword",
        "x-api-key".replace("-", "_"),
    ],
)
def test_secret_keys(key: str) -> None:
    assert klog.is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "links",
        "tasks",
        "blocks",
        "app_token_id",
        "token_type",
        "app_token_hash_type",
        "event",
        "entry_id",
        "kind",
        "status",
    ],
)
def test_not_secret_keys(key: str) -> None:
    assert not klog.is_secret_key(key)


def test_registered_secrets_masked_in_any_string() -> None:
    klog.register_secret("djJ8MTIzNDU2N3x+/=")
    klog.register_secret("ab")  # too short to register safely; ignored
    text = "url /ks/djJ8MTIzNDU2N3x+/= and djJ8MTIzNDU2N3x%2B%2F%3D and ab"
    assert klog.redact_text(text) == "url /ks/*** and *** and ab"


def test_processor_masks_nested_values_and_exceptions() -> None:
    klog.register_secret("s3cr3t-value")
    out = klog.redact_processor(
        None,
        "info",
        {
            "event": "calling with s3cr3t-value",
            "ks": "anything",
            "params": {"secret": "x", "filter": {"idIn": "0_a"}, "list": ["s3cr3t-value"]},
            "error": ValueError("bad s3cr3t-value"),
            "count": 3,
            "ks_empty": "",
        },
    )
    assert out["event"] == "calling with ***"
    assert out["ks"] == "***"
    assert out["params"] == {"secret": "***", "filter": {"idIn": "0_a"}, "list": ["***"]}
    assert out["error"] == "ValueError: bad ***"
    assert out["count"] == 3
    assert out["ks_empty"] == ""


def test_file_and_console_output_are_redacted(tmp_path: Path) -> None:
    secret = "admin-secret-4f1e2d3c"
    klog.register_secret(secret)
    stream = io.StringIO()
    log_file = tmp_path / "logs" / "run.jsonl"
    klog.configure_logging(json_file=log_file, console=True, level="DEBUG", stream=stream)
    logger = structlog.get_logger("kretain.test")
    with structlog.contextvars.bound_contextvars(run_id="r1"):
        logger.info("session", admin_secret=secret, note=f"value {secret}", entry_id="0_x")
    try:
        raise RuntimeError(f"boom with {secret}")
    except RuntimeError:
        logger.exception("failed")
    # foreign stdlib record (as aiohttp would log), with an exception
    try:
        raise OSError(f"socket said {secret}")
    except OSError:
        logging.getLogger("aiohttp.client").error("aiohttp %s", secret, exc_info=True)
    logging.getLogger("aiohttp.client").info("filtered below WARNING %s", secret)

    console = stream.getvalue()
    content = log_file.read_text()
    assert secret not in console and secret not in content
    lines = [json.loads(line) for line in content.splitlines()]
    assert [rec["event"] for rec in lines] == ["session", "failed", "aiohttp ***"]
    first = lines[0]
    assert first["admin_secret"] == "***" and first["note"] == "value ***"
    assert first["run_id"] == "r1" and first["entry_id"] == "0_x" and first["level"] == "info"
    assert "RuntimeError: boom with ***" in lines[1]["exception"]
    assert "OSError: socket said ***" in lines[2]["exception"]
    assert "event=session" in console and "RuntimeError: boom with ***" in console
    assert "filtered below WARNING" not in console


def test_reconfigure_replaces_handlers(tmp_path: Path) -> None:
    klog.configure_logging(json_file=tmp_path / "a.jsonl", console=False)
    klog.configure_logging(json_file=tmp_path / "b.jsonl", console=False)
    ours = [h for h in logging.getLogger().handlers if getattr(h, klog._HANDLER_MARK, False)]
    assert len(ours) == 1
    structlog.get_logger().warning("only in b")
    assert "only in b" in (tmp_path / "b.jsonl").read_text()
    assert (tmp_path / "a.jsonl").read_text() == ""

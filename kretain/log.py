"""Logging: structlog over stdlib, console on stderr, JSON lines to a file, redaction.

One shared processor chain serves structlog events and foreign stdlib records
(aiohttp, asyncio) alike, so the redaction step sees everything, including rendered
exception text. Two kinds of redaction:

- values of keys that look secret (``ks``, ``secret``, ``token``, ``password``,
  ``tokenHash``, ``adminSecret`` ...) become ``"***"``;
- any occurrence of a registered secret (:func:`register_secret`: admin secret,
  app token, every KS the client obtains) inside any string becomes ``"***"``.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

MASK = "***"
# A key is secret when one of its words (split on "_", "-", ".", camelCase) is in
# _SECRET_WORDS or its letters contain one of _SECRET_PARTS ...
_SECRET_WORDS = frozenset({"ks", "token"})
_SECRET_PARTS = ("secret", "password", "passwd", "tokenhash", "apikey", "privatekey")
# ...unless its last word says it is metadata about the secret, not the secret.
_NOT_SECRET_LAST = frozenset({"id", "ids", "type", "count", "status", "expiry", "lifetime"})
_MIN_SECRET_LEN = 4

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_HANDLER_MARK = "_kretain_handler"


def register_secret(value: str | None) -> None:
    """Mask every later occurrence of ``value`` (and its URL-encoded forms) in logs."""
    global _pattern
    if not value or len(value) < _MIN_SECRET_LEN:
        return
    forms = {value, quote(value, safe=""), quote_plus(value)}
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        # Longest first so a secret containing another is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def clear_secrets() -> None:
    """Forget registered secrets (tests)."""
    global _pattern
    with _lock:
        _secrets.clear()
        _pattern = None


def redact_text(text: str) -> str:
    """``text`` with every registered secret replaced by the mask."""
    pattern = _pattern
    return pattern.sub(MASK, text) if pattern is not None else text


_WORD_SPLIT = re.compile(r"[_\-.:\s]+|(?<=[a-z0-9])(?=[A-Z])")


def is_secret_key(key: str) -> bool:
    """True for keys like ``ks``, ``admin_secret``, ``adminSecret``, ``tokenHash``."""
    words = [w.lower() for w in _WORD_SPLIT.split(key) if w]
    if not words or words[-1] in _NOT_SECRET_LAST:
        return False
    compact = "".join(words)
    return any(w in _SECRET_WORDS for w in words) or any(p in compact for p in _SECRET_PARTS)


def _masked(key: Any, value: Any) -> bool:
    return isinstance(key, str) and is_secret_key(key) and value not in (None, "")


def _redact_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth > 8:
        return MASK
    if isinstance(value, dict):
        return {k: MASK if _masked(k, v) else _redact_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v, depth + 1) for v in value]
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    # Unknown objects would be repr()'d by the renderer, unredacted; do it here.
    return redact_text(repr(value))


def redact_processor(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secret keys and registered secrets everywhere."""
    out: EventDict = {}
    for key, value in event_dict.items():
        if key.startswith("_") or key == "exc_info":
            out[key] = value  # structlog internals (_record ...); exc_info is formatted earlier
        elif _masked(key, value):
            out[key] = MASK
        else:
            out[key] = _redact_value(value)
    return out


def shared_processors() -> list[Processor]:
    """The chain every event passes before rendering; redaction comes last."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        # Exceptions become a plain string *before* redaction, so tracebacks are masked.
        structlog.processors.format_exc_info,
        redact_processor,
    ]


def _level(level: int | str) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r}")
    return value


def configure_logging(
    *,
    json_file: Path | None = None,
    console: bool = True,
    level: int | str = "INFO",
    stream: Any = None,
    file_level: int | str = "INFO",
) -> None:
    """Route structlog and stdlib logging to stderr and/or a JSON-lines file.

    ``level`` is the console's level. The file records ``file_level`` (INFO) and above, or
    more when the console is more detailed: a run's log keeps its stage and entry outcomes
    even when the console shows only warnings.

    On a TTY the console gets structlog's ConsoleRenderer; otherwise plain
    ``key=value`` lines. Calling it again replaces the handlers it installed.
    """
    console_lvl = _level(level)
    file_lvl = min(_level(file_level), console_lvl)
    # The root level lets through what the most detailed handler wants; each handler filters.
    lvl = min(console_lvl, file_lvl) if json_file is not None else console_lvl
    chain = shared_processors()
    stream = stream if stream is not None else sys.stderr
    handlers: list[logging.Handler] = []
    if console:
        tty = hasattr(stream, "isatty") and stream.isatty()
        renderer: Processor = (
            structlog.dev.ConsoleRenderer(colors=True)
            if tty
            else structlog.processors.LogfmtRenderer(
                key_order=["timestamp", "level", "event"], drop_missing=True, bool_as_flag=False
            )
        )
        handlers.append(_handler(logging.StreamHandler(stream), chain, renderer))
        handlers[-1].setLevel(console_lvl)
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(json_file, encoding="utf-8")
        handlers.append(_handler(file_handler, chain, structlog.processors.JSONRenderer()))
        handlers[-1].setLevel(file_lvl)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        setattr(handler, _HANDLER_MARK, True)
        root.addHandler(handler)
    root.setLevel(lvl)
    # aiohttp's access/client loggers are chatty at INFO; keep their warnings.
    logging.getLogger("aiohttp").setLevel(max(lvl, logging.WARNING))

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *chain,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def _handler(
    handler: logging.Handler, chain: Iterable[Processor], renderer: Processor
) -> logging.Handler:
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=list(chain),  # stdlib records (aiohttp...) get redacted too
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    return handler

"""The JSON formatter: one object per line, context fields, tracebacks, and no secret even unfiltered."""

from __future__ import annotations

import json
import logging

from twinstar.control.json_log import JsonFormatter
from twinstar.redact import register_secrets

SECRET = "jsonlog-unit-secret-51c9e0"


def _record(message: str, *, exc: BaseException | None = None, **extra: str) -> logging.LogRecord:
    record = logging.LogRecord("twinstar.live", logging.ERROR, __file__, 1, "%s", (message,), None)
    if exc is not None:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    record.__dict__.update(extra)
    record.created = 1_700_000_000.123
    return record


def test_a_line_carries_time_level_logger_message_and_context() -> None:
    line = JsonFormatter().format(
        _record(
            "binanceusdm BTC/USDT:USDT  BUY 1 filled", venue="binanceusdm", symbol="BTC/USDT:USDT", event_id="two-1"
        )
    )
    assert json.loads(line) == {
        "time": "2023-11-14T22:13:20.123Z",
        "level": "error",
        "logger": "twinstar.live",
        "message": "binanceusdm BTC/USDT:USDT  BUY 1 filled",
        "venue": "binanceusdm",
        "symbol": "BTC/USDT:USDT",
        "event_id": "two-1",
    }


def test_a_traceback_stays_on_one_line_and_secrets_are_redacted_even_without_the_filter() -> None:
    register_secrets([SECRET])
    try:
        raise RuntimeError(f"GET /api?key={SECRET}")
    except RuntimeError as exc:
        line = JsonFormatter().format(_record(f"failed with {SECRET}", exc=exc))
    assert "\n" not in line and SECRET not in line
    parsed = json.loads(line)
    assert parsed["message"] == "failed with ***"
    assert parsed["error"].startswith("Traceback (most recent call last):")
    assert parsed["error"].endswith("RuntimeError: GET /api?key=***")

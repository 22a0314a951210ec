"""`--log-format json`: one JSON object per log line, for log shippers (Loki, Elasticsearch, journald).

Keys: ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``,
``message``, and where the record has them ``venue``, ``symbol``, ``event``
(the event's tag) and ``event_id`` (the order's client id), which the live
log attaches to every line it writes; ``error`` holds a traceback. The CLI's
redacting filter has already cleaned the record when it reaches the
formatter; every text is redacted once more here, so a record that reached
the handler some other way still carries no secret.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any, Final

from twinstar.redact import redact

_CONTEXT: Final = ("venue", "symbol", "event", "event_id")


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        """Return `record` as a JSON object on one line."""
        stamp = dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "time": stamp.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key in _CONTEXT:
            value = getattr(record, key, None)
            if value:
                line[key] = redact(str(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["error"] = redact(record.exc_text)
        if record.stack_info:
            line["stack"] = redact(record.stack_info)
        return json.dumps(line, ensure_ascii=False)

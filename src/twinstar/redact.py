"""Credentials out of every text the kernel writes: logs, error messages, events.

Two layers, applied together by `redact`:

- A process-wide registry of secret values. An adapter registers the key,
  secret, password and private key it read from the environment
  (`register_secrets`), so the exact values, and their URL- and JSON-escaped
  forms, are replaced wherever they turn up.
- Patterns for what a signed request carries besides the raw credentials,
  which no registry can know in advance: signatures (`signature=`, `sign=`,
  `X-BAPI-SIGN`, `OK-ACCESS-SIGN`, `ACCESS-SIGN`, `Api-Sign`, Lighter's `Sig`
  and `L1Sig`), key and passphrase headers (`X-MBX-APIKEY`, `X-BAPI-API-KEY`,
  `OK-ACCESS-KEY`, `OK-ACCESS-PASSPHRASE`, `ACCESS-KEY`, `ACCESS-PASSPHRASE`,
  `X-BX-APIKEY`, `Api-Key`), `Authorization` (Upbit's and Bithumb's JWT
  bearers, Lighter's auth token), `auth=` and `listenKey=` parameters, and any
  JWT. They match the shapes ccxt prints: dict reprs (`'X-MBX-APIKEY': '...'`),
  JSON (`"Sig":"..."`), header lines (`Authorization: Bearer ...`) and
  query strings (`&signature=...`).

Where the logging filter sits, and why: a filter on a logger only sees
records created on that exact logger (not its children, not records that
propagate into it), while a filter on a handler sees everything the handler
emits. So:

- The CLI owns logging, and puts `RedactingFilter` on its root handlers
  (`install_on_handlers`): every record that reaches stderr is covered, from
  ccxt, twinstar, aiohttp, asyncio and (with `logging.captureWarnings`) warnings.
- An embedding host owns its handlers, and the kernel installs none. Instead,
  when an adapter with credentials is built, `register_secrets` puts the
  filter on the loggers that can carry credentials: ccxt's
  `ccxt.base.exchange` (the only logger ccxt uses; at DEBUG it prints every
  request's URL, headers and body) and every `twinstar` logger that exists by
  then. A record is redacted in place before any handler of the host sees it,
  whatever the host's level or handlers. Redacting changes nothing else about
  the host's logging.

Error messages go through `redact` at the source (`CcxtExchange.scrub`), so
events, recorded streams and reports are built from clean text.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote, quote_plus

__all__ = ["REDACTED", "RedactingFilter", "install_on_handlers", "protect_loggers", "redact", "register_secrets"]

REDACTED: Final = "***"

# Shorter values would turn ordinary words into asterisks; no venue issues credentials this short.
MIN_SECRET_LENGTH: Final = 6

# Field names that carry a credential or a signature, as header, dict key or query parameter.
_NAME: Final = (
    r"[\w-]*?(?:api[-_]?key|secret|signature|sign|sig|passphrase|password|private[-_]?key"
    r"|access[-_]?key|access[-_]?token|authorization|auth|token|listen[-_]?key)"
)
# `'name': 'value'` and `"name": "value"` (dict reprs, JSON, JSON inside a string); the value may hold spaces.
_QUOTED: Final = re.compile(
    rf"(?P<q>\\?['\"])(?P<name>{_NAME})(?P=q)(?P<sep>\s*[:=]\s*)(?P<vq>\\?['\"])(?P<value>.*?)(?P=vq)",
    re.IGNORECASE,
)
# `name=value` (query strings, form bodies) and `Name: [Bearer] value` (header lines, free text).
_BARE: Final = re.compile(
    rf"(?<![\w-])(?P<name>{_NAME})(?P<sep>=|:[ \t]*)(?P<scheme>(?:Bearer|Basic|Token)[ \t]+)?"
    r"(?P<value>[^\s&,;'\"}\])]+)",
    re.IGNORECASE,
)
_JWT: Final = re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]+")

_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None  # one alternation of every registered form, longest first


def _forms(value: str) -> set[str]:
    """The value as-is and as it appears URL-encoded or inside a JSON string."""
    return {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}


def register_secrets(values: Iterable[str]) -> None:
    """Redact these values from now on, everywhere in this process; protect the loggers that can carry them."""
    global _pattern  # noqa: PLW0603 (the registry is process-wide on purpose: every adapter and logger shares it)
    fresh = {form for value in values if len(value) >= MIN_SECRET_LENGTH for form in _forms(value)} - _secrets
    if fresh:
        _secrets.update(fresh)
        ordered = sorted(_secrets, key=len, reverse=True)  # a longer form must win over a value inside it
        _pattern = re.compile("|".join(map(re.escape, ordered)))
    if _secrets:
        protect_loggers()


def _quoted(match: re.Match[str]) -> str:
    if match["value"] in ("", REDACTED):
        return match[0]
    return f"{match['q']}{match['name']}{match['q']}{match['sep']}{match['vq']}{REDACTED}{match['vq']}"


def _bare(match: re.Match[str]) -> str:
    return f"{match['name']}{match['sep']}{match['scheme'] or ''}{REDACTED}"


def redact(text: str) -> str:
    """Return `text` with every registered secret, signature and credential field replaced by `***`."""
    if _pattern is not None:
        text = _pattern.sub(REDACTED, text)
    text = _QUOTED.sub(_quoted, text)
    text = _BARE.sub(_bare, text)
    return _JWT.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts a record in place (message, arguments, traceback); it drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact `record` once; always let it through."""
        if getattr(record, "twinstar_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging would print the raw arguments, so redact those
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            # Formatters use a ready exc_text as it is, so the traceback is printed redacted.
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record.__dict__["twinstar_redacted"] = True
        return True


_FILTER: Final = RedactingFilter()

# The only logger ccxt writes to (base/exchange.py: `logging.getLogger(__name__)`).
CCXT_LOGGER: Final = "ccxt.base.exchange"


def _add_once(target: logging.Logger | logging.Handler) -> None:
    if not any(isinstance(f, RedactingFilter) for f in target.filters):
        target.addFilter(_FILTER)


def protect_loggers() -> None:
    """Put the redacting filter on ccxt's logger and on every twinstar logger created so far."""
    _add_once(logging.getLogger(CCXT_LOGGER))
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and (name == "twinstar" or name.startswith("twinstar.")):
            _add_once(logger)


def install_on_handlers(logger: logging.Logger | None = None) -> None:
    """Put the redacting filter on every handler of `logger` (the root logger by default): for the CLI."""
    for handler in (logger or logging.getLogger()).handlers:
        _add_once(handler)

"""ccxt's exception hierarchy mapped onto ErrorKind, in this one place.

Order matters: ccxt nests classes in ways that do not match what a trader
needs to know (`InvalidNonce` and `RateLimitExceeded` are `NetworkError`s,
`OrderNotFound` is an `InvalidOrder`, `ChecksumError` is an `InvalidNonce`),
so the most specific classes are matched first.
"""

from __future__ import annotations

import asyncio
from typing import Final

import aiohttp
import ccxt

from twinstar.adapters.base import ErrorKind

_TABLE: Final[tuple[tuple[type[BaseException], ErrorKind], ...]] = (
    (ccxt.ChecksumError, ErrorKind.NETWORK),  # an order-book checksum, not a clock problem
    (ccxt.InvalidNonce, ErrorKind.CLOCK_SKEW),  # timestamp outside recvWindow: resync, then retry
    (ccxt.RateLimitExceeded, ErrorKind.RATE_LIMIT),
    (ccxt.DDoSProtection, ErrorKind.RATE_LIMIT),  # a sibling of RateLimitExceeded, same remedy
    (ccxt.RequestTimeout, ErrorKind.TIMEOUT),
    (ccxt.ExchangeNotAvailable, ErrorKind.EXCHANGE_UNAVAILABLE),  # includes OnMaintenance
    (ccxt.NetworkError, ErrorKind.NETWORK),
    (ccxt.BadResponse, ErrorKind.UNKNOWN),  # an unparseable reply: the order may or may not exist
    (ccxt.OperationFailed, ErrorKind.EXCHANGE_UNAVAILABLE),  # ccxt's base of transient failures (e.g. -1001)
    (ccxt.InsufficientFunds, ErrorKind.INSUFFICIENT_FUNDS),
    (ccxt.OrderNotFound, ErrorKind.ORDER_NOT_FOUND),
    (ccxt.InvalidOrder, ErrorKind.INVALID_ORDER),
    (ccxt.AuthenticationError, ErrorKind.AUTH),  # includes PermissionDenied, AccountSuspended
    (ccxt.NotSupported, ErrorKind.NOT_SUPPORTED),
    (ccxt.BadRequest, ErrorKind.INVALID_ORDER),  # includes BadSymbol: the venue refused the request as sent
    (ccxt.ArgumentsRequired, ErrorKind.INVALID_ORDER),
    (asyncio.TimeoutError, ErrorKind.TIMEOUT),  # raised past ccxt's own wrapping (e.g. WebSocket waits)
    (aiohttp.ClientError, ErrorKind.NETWORK),
    (ConnectionError, ErrorKind.NETWORK),
)


def classify(exc: BaseException) -> ErrorKind:
    """Return the ErrorKind for an exception raised by ccxt (or the transport under it)."""
    for cls, kind in _TABLE:
        if isinstance(exc, cls):
            return kind
    return ErrorKind.UNKNOWN

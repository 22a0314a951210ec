from __future__ import annotations

import asyncio

import aiohttp
import ccxt
import pytest

from twinstar.adapters.base import ErrorKind
from twinstar.adapters.errors import classify

CASES = [
    (ccxt.RateLimitExceeded, ErrorKind.RATE_LIMIT),
    (ccxt.DDoSProtection, ErrorKind.RATE_LIMIT),
    (ccxt.RequestTimeout, ErrorKind.TIMEOUT),
    (ccxt.NetworkError, ErrorKind.NETWORK),
    (ccxt.ExchangeNotAvailable, ErrorKind.EXCHANGE_UNAVAILABLE),
    (ccxt.OnMaintenance, ErrorKind.EXCHANGE_UNAVAILABLE),
    (ccxt.InsufficientFunds, ErrorKind.INSUFFICIENT_FUNDS),
    (ccxt.InvalidOrder, ErrorKind.INVALID_ORDER),
    (ccxt.DuplicateOrderId, ErrorKind.INVALID_ORDER),
    (ccxt.OrderNotFound, ErrorKind.ORDER_NOT_FOUND),
    (ccxt.AuthenticationError, ErrorKind.AUTH),
    (ccxt.PermissionDenied, ErrorKind.AUTH),
    (ccxt.AccountSuspended, ErrorKind.AUTH),
    (ccxt.InvalidNonce, ErrorKind.CLOCK_SKEW),
    (ccxt.ChecksumError, ErrorKind.NETWORK),
    (ccxt.NotSupported, ErrorKind.NOT_SUPPORTED),
    (ccxt.BadSymbol, ErrorKind.INVALID_ORDER),
    (ccxt.BadRequest, ErrorKind.INVALID_ORDER),
    (ccxt.ArgumentsRequired, ErrorKind.INVALID_ORDER),
    (ccxt.ExchangeError, ErrorKind.UNKNOWN),
    (ccxt.BadResponse, ErrorKind.UNKNOWN),
    (ccxt.NullResponse, ErrorKind.UNKNOWN),
    (ccxt.OperationFailed, ErrorKind.EXCHANGE_UNAVAILABLE),
    (ccxt.CancelPending, ErrorKind.EXCHANGE_UNAVAILABLE),
    (asyncio.TimeoutError, ErrorKind.TIMEOUT),
    (aiohttp.ClientConnectionError, ErrorKind.NETWORK),
    (ConnectionResetError, ErrorKind.NETWORK),
    (ValueError, ErrorKind.UNKNOWN),
]


@pytest.mark.parametrize(("exc_type", "kind"), CASES, ids=[c[0].__name__ for c in CASES])
def test_every_ccxt_error_class_maps_to_its_kind(exc_type: type[Exception], kind: ErrorKind) -> None:
    assert classify(exc_type('binanceusdm {"code":-1}')) is kind


def test_retryable_and_ambiguous_flags_follow_the_design() -> None:
    assert [k for k in ErrorKind if k.retryable] == [
        ErrorKind.RATE_LIMIT,
        ErrorKind.NETWORK,
        ErrorKind.TIMEOUT,
        ErrorKind.EXCHANGE_UNAVAILABLE,
        ErrorKind.CLOCK_SKEW,
    ]
    # Ambiguous: the order may exist, so it must be looked up before any resend.
    assert [k for k in ErrorKind if k.ambiguous] == [
        ErrorKind.NETWORK,
        ErrorKind.TIMEOUT,
        ErrorKind.EXCHANGE_UNAVAILABLE,
        ErrorKind.UNKNOWN,
    ]

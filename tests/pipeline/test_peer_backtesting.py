"""TwinStar and backtesting.py agree on the same candles and SMA-cross rules (see bench/peers.py)."""

from __future__ import annotations

import warnings

import pytest
from bench.common import random_walk
from bench.peers import candle_events, run_backtesting_py, run_twinstar, sma_config

from twinstar.candles import load_candles
from twinstar.data import bundled_candles_path

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("source", ["bundled Coinbase BTC-USD 1h", "random walk 1m"])
async def test_trade_count_equal_and_gross_pnl_within_half_a_percent(source: str) -> None:
    frame = load_candles(bundled_candles_path()).frame if source.startswith("bundled") else random_walk(30_000)
    ours = await run_twinstar(candle_events(frame), sma_config(10, 30, 2.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # backtesting.py's own UserWarnings about its progress output
        peer = run_backtesting_py(frame, 10, 30, 2.0)
    assert ours.trades == peer.trades
    assert ours.trades > 500
    assert ours.gross_pnl == pytest.approx(peer.gross_pnl, rel=0.005)

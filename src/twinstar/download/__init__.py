"""Candle history from an exchange into the candle store: `python -m twinstar download`.

Pages through the venue's REST klines (ccxt `fetch_ohlcv`, under the
process-wide rate limiter every adapter shares), resumes after what the store
already holds, writes through the same `CandleStorage` live candles go
through, and reports the holes the venue's own history has.
"""

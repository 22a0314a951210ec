"""The SMA-cross rules of bench/peers.py in NautilusTrader, on the same candles.

Same rules as TwinStar and backtesting.py: SMA fast/slow on closes, strict
crossover, on a cross close any position and open one unit the other way, a
stop `stop_pct` from the signal candle's close (a reduce-only STOP_MARKET per
entry, cancelled when a signal closes the position), no trailing, no
commission. Only `engine.run()` is timed, as peers.py times only
`Backtest.run`; like that, it includes the engine's post-run analysis
(`run_analysis`, on by default).

How Nautilus fills on one-minute LAST bars (its bar execution model): the
matching engine replays each bar as four trades, open, high, low, close,
before the strategy sees the bar. A market order sent from `on_bar` fills at
that bar's close, which is the next bar's open in continuous data such as
`random_walk`: the same price TwinStar and backtesting.py use. A STOP_MARKET
triggers when a later bar's high or low reaches it and, on an L1 book, fills
at its trigger price (on a gap through the stop it would also fill at the
trigger, not at the open; `random_walk` opens at the previous close, so there
are no gaps). Prices are fixed-point with `PRICE_PRECISION` decimals, so the
SMAs see closes rounded to 1e-10.

Needs the optional `nautilus_trader` package; import this module only when it
is installed.
"""

from __future__ import annotations

import time
from decimal import Decimal

import polars as pl
from nautilus_trader.backtest.config import BacktestEngineConfig
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.indicators import SimpleMovingAverage
from nautilus_trader.model.currencies import BTC
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import AccountType, CurrencyType, OmsType, OrderSide, TimeInForce
from nautilus_trader.model.events import PositionClosed, PositionOpened
from nautilus_trader.model.identifiers import ClientOrderId, InstrumentId, Symbol, TraderId, Venue
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.objects import Currency, Money, Price, Quantity
from nautilus_trader.persistence.wranglers import BarDataWrangler
from nautilus_trader.trading.strategy import Strategy

from bench.peers import Outcome

PRICE_PRECISION = 10
VENUE = Venue("SIM")
INSTRUMENT_ID = InstrumentId(Symbol("SIMUSD-PERP"), VENUE)
BAR_TYPE = BarType.from_str(f"{INSTRUMENT_ID}-1-MINUTE-LAST-EXTERNAL")
# Bar volume is not part of the rules. Nautilus offers a quarter of a bar's
# volume at each of its four prices and slips what does not fit one tick per
# level, so give every bar a volume no one-unit order can exhaust.
BAR_VOLUME = 1_000_000.0
# Nautilus rounds every Money to its currency's precision: USD's 2 decimals
# would round each position's PnL to the cent. A 9-decimal dollar keeps the
# gross PnL comparable with the float sums of TwinStar and backtesting.py.
USD9 = Currency("USD9", 9, 0, "US dollar, 9 decimals", CurrencyType.FIAT)


def sim_instrument() -> CryptoPerpetual:
    """A linear USD9 perpetual with zero maker/taker fees and fine price precision."""
    return CryptoPerpetual(
        instrument_id=INSTRUMENT_ID,
        raw_symbol=INSTRUMENT_ID.symbol,
        base_currency=BTC,  # any base; only the quote and settlement matter
        quote_currency=USD9,
        settlement_currency=USD9,
        is_inverse=False,
        price_precision=PRICE_PRECISION,
        price_increment=Price(10.0**-PRICE_PRECISION, PRICE_PRECISION),
        size_precision=0,
        size_increment=Quantity.from_int(1),
        max_quantity=None,
        min_quantity=Quantity.from_int(1),
        max_notional=None,
        min_notional=None,
        max_price=None,
        min_price=None,
        margin_init=Decimal(0),
        margin_maint=Decimal(0),
        maker_fee=Decimal(0),
        taker_fee=Decimal(0),
        ts_event=0,
        ts_init=0,
    )


class SmaCrossConfig(StrategyConfig, frozen=True):  # type: ignore[misc]
    """Parameters of `SmaCross`."""

    instrument_id: InstrumentId
    bar_type: BarType
    fast: int = 10
    slow: int = 30
    stop_pct: float = 2.0


class SmaCross(Strategy):  # type: ignore[misc]
    """Strict SMA crossover, reverse on every cross, one stop per entry."""

    def __init__(self, config: SmaCrossConfig) -> None:
        super().__init__(config)
        self.fast = SimpleMovingAverage(config.fast)
        self.slow = SimpleMovingAverage(config.slow)
        self.prev_sign: int | None = None  # sign of fast - slow on the previous bar
        self.stop_price = 0.0  # stop of the entry in flight, placed once its position opens
        self.stop_id: ClientOrderId | None = None
        self.qty = Quantity.from_int(1)

    def on_start(self) -> None:
        self.register_indicator_for_bars(self.config.bar_type, self.fast)
        self.register_indicator_for_bars(self.config.bar_type, self.slow)
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        if not self.slow.initialized:
            return
        diff = self.fast.value - self.slow.value
        sign = (diff > 0) - (diff < 0)
        prev, self.prev_sign = self.prev_sign, sign
        if prev is None or sign == prev:
            return
        close = bar.close.as_double()
        pct = self.config.stop_pct / 100
        if prev < 0 < sign:
            self._reverse(OrderSide.BUY, close * (1 - pct))
        elif prev > 0 > sign:
            self._reverse(OrderSide.SELL, close * (1 + pct))

    def _reverse(self, side: OrderSide, stop_price: float) -> None:
        instrument_id = self.config.instrument_id
        if self.stop_id is not None:
            stop = self.cache.order(self.stop_id)
            if stop is not None and stop.is_open:
                self.cancel_order(stop)
            self.stop_id = None
        for position in self.cache.positions_open(instrument_id=instrument_id, strategy_id=self.id):
            self.close_position(position)
        self.stop_price = stop_price
        self.submit_order(self.order_factory.market(instrument_id, side, self.qty))

    def on_position_opened(self, event: PositionOpened) -> None:
        # HEDGING: every entry opens its own position; tie the stop to it.
        side = OrderSide.SELL if event.entry == OrderSide.BUY else OrderSide.BUY
        stop = self.order_factory.stop_market(
            self.config.instrument_id,
            side,
            self.qty,
            trigger_price=Price(self.stop_price, PRICE_PRECISION),
            time_in_force=TimeInForce.GTC,
            reduce_only=True,
        )
        self.stop_id = stop.client_order_id
        self.submit_order(stop, position_id=event.position_id)

    def on_position_closed(self, event: PositionClosed) -> None:
        # Closed by its stop (the stop is spent) or by a signal (already cancelled).
        self.stop_id = None


def run_nautilus(frame: pl.DataFrame, fast: int, slow: int, stop_pct: float) -> Outcome:
    """Run `SmaCross` on `frame`'s candles in a BacktestEngine; time only `engine.run()`."""
    import pandas as pd

    engine = BacktestEngine(
        BacktestEngineConfig(trader_id=TraderId("BENCH-001"), logging=LoggingConfig(log_level="ERROR"))
    )
    engine.add_venue(
        venue=VENUE,
        oms_type=OmsType.HEDGING,
        account_type=AccountType.MARGIN,
        starting_balances=[Money(1e12, USD9)],
        base_currency=USD9,
    )
    instrument = sim_instrument()
    engine.add_instrument(instrument)

    data = frame.select("open", "high", "low", "close").to_pandas()
    # Nautilus stamps a bar at its close: ts_event = open time + one minute.
    data.index = pd.to_datetime(frame["open_time_ms"].to_numpy() + 60_000, unit="ms", utc=True)
    bars = BarDataWrangler(BAR_TYPE, instrument).process(data, default_volume=BAR_VOLUME)
    engine.add_data(bars)
    engine.add_strategy(
        SmaCross(
            SmaCrossConfig(instrument_id=INSTRUMENT_ID, bar_type=BAR_TYPE, fast=fast, slow=slow, stop_pct=stop_pct)
        )
    )

    started = time.perf_counter()
    engine.run()
    seconds = time.perf_counter() - started

    closed = engine.cache.positions_closed()
    gross = sum(p.realized_pnl.as_double() for p in closed if p.realized_pnl is not None)  # fees are zero
    engine.dispose()
    return Outcome("nautilus_trader", len(closed), gross, seconds, frame.height)

"""A replay-mode kernel with the real simulated exchange and handlers, plus an event tap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import msgspec

from twinstar import Config, Kernel
from twinstar.adapters.sim import SimExchange
from twinstar.bus.bus import Bus
from twinstar.bus.events import CandleClosed, Event, SignalFired
from twinstar.clock import SimClock
from twinstar.handlers import build_pipeline

MINUTE_NS = 60_000_000_000


@dataclass
class Tap:
    events: list[Event] = field(default_factory=list)

    def attach(self, bus: Bus) -> None:
        bus.subscribe(Event, self.handle)

    async def handle(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


@dataclass
class Rig:
    kernel: Kernel
    clock: SimClock
    sim: SimExchange
    tap: Tap
    minute: int = 0

    async def candle(
        self, close: float, *, low: float | None = None, high: float | None = None, open_: float | None = None
    ) -> None:
        """Publish the next one-minute candle, closing at `close`."""
        self.minute += 1
        ts = (self.minute + 1) * MINUTE_NS
        self.clock.set_ns(ts)
        await self.kernel.publish(
            CandleClosed(
                ts_ns=ts,
                exchange="sim",
                symbol="BTC/USD",
                interval="1m",
                open_time_ms=self.minute * 60_000,
                open=open_ if open_ is not None else close,
                high=high if high is not None else close,
                low=low if low is not None else close,
                close=close,
                volume=1.0,
            )
        )

    async def signal(self, side: str, *, stop: float = 0.0, price: float = 100.0) -> None:
        await self.kernel.publish(
            SignalFired(
                ts_ns=self.clock.now_ns(),
                strategy="test",
                exchange="sim",
                symbol="BTC/USD",
                side=side,  # type: ignore[arg-type]
                price=price,
                stop_price=stop,
                reason="test",
                candle_open_time_ms=self.minute * 60_000,
            )
        )


def config(**risk: object) -> Config:
    base = Config(symbols=["BTC/USD"], interval="1m")
    risk_cfg = msgspec.structs.replace(base.risk, **{"order_qty": 1.0, "trailing_stop": False, **risk})
    sim_cfg = msgspec.structs.replace(base.sim, taker_fee=0.001, initial_balance=1_000.0)
    return msgspec.structs.replace(base, risk=risk_cfg, sim=sim_cfg)


@asynccontextmanager
async def rig(cfg: Config | None = None, *, with_strategy: bool = False) -> AsyncIterator[Rig]:
    cfg = cfg or config()
    clock = SimClock(MINUTE_NS, autojump=True)
    sim = SimExchange(clock, cfg.sim)
    parts = build_pipeline(cfg, clock, sim)
    if not with_strategy:
        parts = [p for p in parts if type(p).__name__ != "StrategyHandler"]
    tap = Tap()
    async with Kernel(cfg, clock=clock, components=[tap, *parts], mode="replay") as kernel:
        yield Rig(kernel, clock, sim, tap)

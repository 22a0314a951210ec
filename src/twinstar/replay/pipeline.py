"""The trading components of a live recording's replay: each venue answered from the recording."""

from __future__ import annotations

from collections.abc import Mapping

from twinstar.clock import Clock
from twinstar.config import Config, VenueConfig
from twinstar.handlers import VenueTrading, build_trading
from twinstar.handlers.position import PositionHandler
from twinstar.kernel import Component
from twinstar.replay.answers import VenueAnswers
from twinstar.replay.recorded import RecordedExchange


def _native_stop(venue: VenueConfig) -> bool:
    """Whether the live adapter of `venue` kept stops on the venue (else the kernel kept synthetic ones)."""
    from twinstar.adapters.venues import VENUES  # ccxt: only to learn the live adapter's stop model

    adapter = VENUES.get(venue.id)
    if adapter is not None:
        return adapter.native_stop
    return venue.market_type != "spot"


class RecordedVenues:
    """Builds one `RecordedExchange` per venue of the recorded config, and the pipeline on them."""

    def __init__(self, answers: Mapping[str, VenueAnswers]) -> None:
        self.answers = answers
        self.exchanges: list[RecordedExchange] = []
        self.positions: list[PositionHandler] = []

    def __call__(self, config: Config, clock: Clock) -> list[Component]:
        venues = []
        for venue in config.venues():
            answers = self.answers.get(venue.name) or VenueAnswers(venue.name)
            exchange = RecordedExchange(
                answers, clock, native_stop=_native_stop(venue), balance=config.sim.initial_balance
            )
            self.exchanges.append(exchange)
            venues.append(VenueTrading(exchange, venue.symbols, clock))
        parts = build_trading(config, clock, venues)
        self.positions = [part for part in parts if isinstance(part, PositionHandler)]
        return parts

    def at_input(self, index: int) -> None:
        """The replay feeds its `index`-th input event (1-based) next."""
        for exchange in self.exchanges:
            exchange.segment = index

    async def after_input(self) -> None:
        """Book the exits the venue made on its own that live knew of by now, as its reconciliation did."""
        for exchange, handler in zip(self.exchanges, self.positions, strict=True):
            if exchange.exit_due():
                await handler.reconciler.reconcile("replay")

    @property
    def departure(self) -> str:
        """The first request the recording had no answer for ("" while there is none)."""
        return next((exchange.departure for exchange in self.exchanges if exchange.departure), "")

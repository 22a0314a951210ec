"""Typed configuration: TOML file plus environment, secrets from env only.

A config file names the environment variables that hold API keys; it never
holds a key itself (an `api_key = "..."` line is refused as an unknown field).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Final, Literal

import msgspec


class ConfigError(ValueError):
    """A config file or value is wrong; the message is one line for the user."""


# A venue's name is a file name (its journal) and a path part (its stored candles).
_VENUE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class KernelConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Bus and lifecycle settings."""

    mailbox_size: int = 1024
    drain_timeout_s: float = 10.0


class ExchangeConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which venue to trade on; keys are read from the named env variables."""

    id: str = "sim"
    # What events, logs and the journal call this venue (default: `id`); two accounts on one exchange
    # need two names.
    name: str = ""
    market_type: Literal["swap", "spot"] = "swap"
    testnet: bool = False
    api_key_env: str = ""
    api_secret_env: str = ""
    password_env: str = ""
    # Lighter signs with an API private key (ccxt `privateKey`), not an HMAC secret.
    private_key_env: str = ""
    # Candles from the WebSocket stream where ccxt.pro has one ("auto"), or always by REST polling.
    candle_feed: Literal["auto", "stream", "poll"] = "auto"
    # Follow the account's orders on ccxt.pro's private stream where it has one: a stop the exchange
    # fills is booked within a second instead of at the next check. Off: REST checks only.
    order_stream: bool = True
    # Send every REST call to this base URL instead (a gateway, a proxy, a local emulator).
    api_base_url: str = ""
    options: dict[str, Any] = msgspec.field(default_factory=dict)

    def credentials(self) -> dict[str, str]:
        """Read the API credentials from the environment (empty when unset)."""
        found: dict[str, str] = {}
        for field, env_name in (
            ("apiKey", self.api_key_env),
            ("secret", self.api_secret_env),
            ("password", self.password_env),
            ("privateKey", self.private_key_env),
        ):
            if env_name:
                value = os.environ.get(env_name, "")
                if not value:
                    raise ConfigError(f"environment variable {env_name} (exchange.{field}) is not set")
                found[field] = value
        return found


class VenueConfig(ExchangeConfig, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One `[[exchanges]]` block: a venue, its keys and what it trades there.

    Empty `symbols` or `interval` take the top-level ones; `Config.venues`
    returns every block with both (and `name`) filled in.
    """

    symbols: list[str] = msgspec.field(default_factory=list)
    interval: str = ""


class SimConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The simulated exchange used for paper trading, replay and backtests."""

    initial_balance: float = 10_000.0
    quote_currency: str = "USD"
    taker_fee: float = 0.0004
    slippage_bps: float = 0.0
    leverage: float = 1.0


class StrategyConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which strategy to run and its parameters."""

    name: str = "sma_cross"
    params: dict[str, float | int | str | bool] = msgspec.field(default_factory=dict)


class RiskConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Position sizing and stop-loss policy."""

    # Fraction of free balance committed per entry (notional / balance).
    position_fraction: float = 0.95
    # A fixed quantity per entry instead (base units); 0 sizes by position_fraction.
    order_qty: float = 0.0
    # Stop distance used when a signal carries no stop of its own.
    stop_loss_pct: float = 2.0
    trailing_stop: bool = True
    # Move a trailing stop only when it tightens by at least this much (% of price):
    # every move is an API call, and venues rate-limit order amendments.
    trail_step_pct: float = 0.1
    # Ask the exchange for the position every N candles (and whenever a candle
    # reaches the stop): catches fills and changes made outside the bot.
    reconcile_every: int = 5
    sl_retry_backoff_s: list[float] = msgspec.field(default_factory=lambda: [1.0, 2.0, 3.0])
    # A position found on the exchange with no stop of ours (after a crash, a manual trade):
    # "protect" places a stop at once, "close" closes it at market.
    on_unprotected: Literal["protect", "close"] = "protect"
    # Live: compare every position, order and stop with the exchange this often (and after
    # every reconnect, and on the venue's private order stream where it has one).
    reconcile_interval_s: float = 60.0
    # A failed emergency close is tried again on this backoff (the last value repeats) until
    # the position is flat or protected.
    emergency_retry_s: list[float] = msgspec.field(default_factory=lambda: [1.0, 2.0, 5.0, 10.0])


class ExecutionConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Retry policy for orders."""

    rate_limit_backoff_s: list[float] = msgspec.field(default_factory=lambda: [5.0, 10.0, 15.0])
    network_backoff_s: list[float] = msgspec.field(default_factory=lambda: [1.0, 2.0, 4.0])
    partial_fill_warn_ratio: float = 0.9


class FeedConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How each (exchange, symbol, interval) feed is supervised."""

    # A stream that sends nothing for this long is dead: closed and reopened (whatever the interval).
    silence_s: float = 30.0
    # Reconnect backoff: doubles from the first value up to the second, each wait with up to 20% jitter.
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    # Consecutive failed reconnects after which the feed stops for good (`FeedStopped`); 0: never.
    max_attempts: int = 0
    # What happens to the symbol's open position when its feed stops: its stop stays ("protect")
    # or it is closed at market ("close").
    on_stopped: Literal["protect", "close"] = "protect"
    # Frames that keep arriving without one usable candle or trade for this long are reported.
    unusable_s: float = 60.0
    # A candle published late (after a reconnect or from a backfill) may open a trade.
    trade_late_candles: bool = False


class StorageConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where closed candles are kept (empty dir: no storage)."""

    dir: str = ""
    flush_every: int = 500
    # Flushed pieces are merged into the month files by a child process once this many have piled up.
    compact_every: int = 32


class JournalConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The order-intent journal of a live kernel (see `handlers.journal`)."""

    # Folder of the journal, one file per exchange; kept across runs, so a restart finds it.
    dir: str = "state"
    # fsync every record: survives a power cut too, at up to milliseconds per order.
    fsync: bool = False


class DataConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Recorded candles that feed the simulated exchange (empty: the bundled set)."""

    path: str = ""


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything a kernel needs to run; every field has a working default."""

    exchange: ExchangeConfig = msgspec.field(default_factory=ExchangeConfig)
    # Several venues in one kernel; without any, `exchange` with `symbols` and `interval` is the one venue.
    exchanges: list[VenueConfig] = msgspec.field(default_factory=list)
    symbols: list[str] = msgspec.field(default_factory=lambda: ["BTC/USD"])
    interval: str = "1h"
    strategy: StrategyConfig = msgspec.field(default_factory=StrategyConfig)
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    execution: ExecutionConfig = msgspec.field(default_factory=ExecutionConfig)
    sim: SimConfig = msgspec.field(default_factory=SimConfig)
    storage: StorageConfig = msgspec.field(default_factory=StorageConfig)
    data: DataConfig = msgspec.field(default_factory=DataConfig)
    kernel: KernelConfig = msgspec.field(default_factory=KernelConfig)
    journal: JournalConfig = msgspec.field(default_factory=JournalConfig)
    feed: FeedConfig = msgspec.field(default_factory=FeedConfig)

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """Read a TOML config file; raise ConfigError with a one-line reason."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
        return cls.from_toml(raw, source=str(path))

    @classmethod
    def from_toml(cls, raw: bytes | str, *, source: str = "<config>") -> Config:
        """Parse TOML text into a validated Config."""
        try:
            config = msgspec.toml.decode(raw, type=cls)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        except msgspec.DecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML ({exc})") from None
        config.validate()
        return config

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Build a Config from plain data (a recorded stream's header)."""
        try:
            config = msgspec.convert(data, type=cls)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"config: {exc}") from None
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        """Plain data for stream headers; holds env variable names, never secrets."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data

    def venues(self) -> list[VenueConfig]:
        """Every venue this config trades, each with its name, symbols and interval resolved.

        The one accessor for both shapes: `[[exchanges]]` blocks, or the single
        `[exchange]` with the top-level `symbols` and `interval`.
        """
        blocks = self.exchanges or [VenueConfig(**msgspec.structs.asdict(self.exchange))]
        return [
            msgspec.structs.replace(
                block,
                name=block.name or block.id,
                symbols=block.symbols or self.symbols,
                interval=block.interval or self.interval,
            )
            for block in blocks
        ]

    @property
    def paper(self) -> bool:
        """Whether this config paper-trades on the simulated exchange (which never shares a kernel)."""
        return self.venues()[0].id == "sim"

    def validate(self) -> None:
        """Check values that types alone cannot; raise ConfigError."""
        self._validate_venues()
        if self.kernel.mailbox_size < 1:
            raise ConfigError("kernel.mailbox_size must be at least 1")
        if not 0 < self.risk.position_fraction <= 1:
            # A share of the free balance: more would need leverage, which the kernel does not set (yet).
            raise ConfigError(f"risk.position_fraction must be in (0, 1], not {self.risk.position_fraction:g}")
        risk = self.risk
        if not 0 < risk.stop_loss_pct < 100:
            raise ConfigError("risk.stop_loss_pct must be in (0, 100): every position has a stop, above zero")
        if risk.order_qty < 0 or risk.trail_step_pct < 0:
            raise ConfigError("risk.order_qty and risk.trail_step_pct must be 0 or more")
        if risk.reconcile_every < 1:
            raise ConfigError("risk.reconcile_every must be at least 1 (candles between position checks)")
        waits = [*risk.sl_retry_backoff_s, *self.execution.rate_limit_backoff_s, *self.execution.network_backoff_s]
        if any(wait < 0 for wait in waits):
            raise ConfigError("risk.sl_retry_backoff_s and the execution backoffs must hold waits of 0 s or more")
        if not 0 <= self.execution.partial_fill_warn_ratio <= 1:
            raise ConfigError("execution.partial_fill_warn_ratio must be in [0, 1]")
        if self.risk.reconcile_interval_s <= 0:
            raise ConfigError("risk.reconcile_interval_s must be positive")
        if not self.risk.emergency_retry_s or min(self.risk.emergency_retry_s) <= 0:
            raise ConfigError("risk.emergency_retry_s must hold positive waits")
        feed = self.feed
        if feed.silence_s <= 0 or feed.unusable_s <= 0:
            raise ConfigError("feed.silence_s and feed.unusable_s must be positive")
        if not 0 < feed.backoff_initial_s <= feed.backoff_max_s:
            raise ConfigError("feed.backoff_initial_s must be positive and at most feed.backoff_max_s")
        if feed.max_attempts < 0:
            raise ConfigError("feed.max_attempts must be 0 (never stop) or more")
        if self.storage.flush_every < 1 or self.storage.compact_every < 1:
            raise ConfigError("storage.flush_every and storage.compact_every must be at least 1")

    def _validate_venues(self) -> None:
        if self.exchanges and self.exchange != ExchangeConfig():
            raise ConfigError(
                "both [exchange] and [[exchanges]] are set: move the [exchange] settings into an [[exchanges]] block"
            )
        venues = self.venues()
        names: set[str] = set()
        for venue in venues:
            where = f"exchange {venue.name!r}"
            if not _VENUE_NAME.fullmatch(venue.name):
                raise ConfigError(f"{where}: a name may hold only letters, digits, '-' and '_'")
            if venue.name in names:
                raise ConfigError(
                    f"{where} appears twice: give each [[exchanges]] block of one exchange its own `name`"
                )
            names.add(venue.name)
            if not venue.symbols:
                raise ConfigError(f"{where}: symbols: at least one symbol is needed")
            if len(set(venue.symbols)) != len(venue.symbols):
                raise ConfigError(f"{where}: symbols: a symbol is listed twice")
        if len(venues) > 1 and any(venue.id == "sim" for venue in venues):
            raise ConfigError('the simulated exchange (id "sim") trades alone: give every [[exchanges]] block an id')

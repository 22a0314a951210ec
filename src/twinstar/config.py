"""Typed configuration: TOML file plus environment, secrets from env only.

A config file names the environment variables that hold API keys; it never
holds a key itself (an `api_key = "..."` line is refused as an unknown field).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import msgspec


class ConfigError(ValueError):
    """A config file or value is wrong; the message is one line for the user."""


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class KernelConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Bus and lifecycle settings."""

    mailbox_size: int = 1024
    drain_timeout_s: float = 10.0


class ExchangeConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which venue to trade on; keys are read from the named env variables."""

    id: str = "sim"
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


class StorageConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where closed candles are kept (empty dir: no storage)."""

    dir: str = ""
    flush_every: int = 500


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

    def validate(self) -> None:
        """Check values that types alone cannot; raise ConfigError."""
        if not self.symbols:
            raise ConfigError("symbols: at least one symbol is needed")
        if self.kernel.mailbox_size < 1:
            raise ConfigError("kernel.mailbox_size must be at least 1")
        if not 0 < self.risk.position_fraction <= 10:
            raise ConfigError("risk.position_fraction must be in (0, 10]")
        if self.risk.stop_loss_pct <= 0:
            raise ConfigError("risk.stop_loss_pct must be positive: every position has a stop")
        if self.risk.reconcile_interval_s <= 0:
            raise ConfigError("risk.reconcile_interval_s must be positive")
        if not self.risk.emergency_retry_s or min(self.risk.emergency_retry_s) <= 0:
            raise ConfigError("risk.emergency_retry_s must hold positive waits")

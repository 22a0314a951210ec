"""Typed configuration: TOML file plus environment, secrets from env only.

A config file names the environment variables that hold API keys; it never
holds a key itself (an `api_key = "..."` line is refused as an unknown field).
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Final, Literal

import msgspec


class ConfigError(ValueError):
    """A config file or value is wrong; the message is one line for the user."""


# A venue's name is a file name (its journal) and a path part (its stored candles).
_VENUE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


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
    # Leverage set on every traded symbol at start and read back (0: the account's own, left alone);
    # `symbol_leverage` sets it per symbol instead. Entries are sized with it (`twinstar.handlers.sizing`).
    leverage: float = 0.0
    symbol_leverage: dict[str, float] = msgspec.field(default_factory=dict)
    # "cross" or "isolated", set at start and read back where the venue has it ("": left alone). Bybit's
    # unified account keeps one mode for the whole account.
    margin_mode: Literal["", "cross", "isolated"] = ""

    def leverage_for(self, symbol: str) -> float:
        """The leverage configured for `symbol` (0: none, the account's own)."""
        return self.symbol_leverage.get(symbol, self.leverage)

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


def _validate_margin(venue: VenueConfig, where: str) -> None:
    """Leverage within what venues offer, for symbols the venue trades, on markets that have it."""
    for symbol, value in {"": venue.leverage, **venue.symbol_leverage}.items():
        key = f"symbol_leverage[{symbol!r}]" if symbol else "leverage"
        if not (value == 0 and not symbol) and not 1 <= value <= 125:
            raise ConfigError(f"{where}: {key} must be in [1, 125] (or 0: left as the account has it), not {value:g}")
        if symbol and symbol not in venue.symbols:
            raise ConfigError(f"{where}: {key}: {symbol} is not among its symbols")
    if venue.market_type == "spot" and (venue.leverage or venue.symbol_leverage or venue.margin_mode):
        raise ConfigError(f'{where}: leverage and margin_mode need a derivatives market (market_type = "swap")')


class SimConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The simulated exchange used for paper trading, replay and backtests."""

    initial_balance: float = 10_000.0
    quote_currency: str = "USD"
    # Fees as a share of notional: market orders, stops and marketable limits pay `taker_fee`, limits that
    # rested on the book before they filled pay `maker_fee`.
    taker_fee: float = 0.0004
    maker_fee: float = 0.0004
    # Every market fill moves against the taker by `slippage_bps`, plus half a spread: `spread_bps` of the
    # price (a fixed spread), plus `spread_range_share` of the last candle's high - low (wider when it moves).
    slippage_bps: float = 0.0
    spread_bps: float = 0.0
    spread_range_share: float = 0.0
    leverage: float = 1.0
    # Funding rates of perpetuals (CSV or Parquet: time_ms, rate and optionally symbol); empty: no funding.
    funding_path: str = ""
    # When a resting limit fills: "through" once a candle trades beyond its price, "touch" once it reaches
    # it (backtesting.py's rule). See `twinstar.adapters.sim` for every fill rule.
    limit_fill: Literal["through", "touch"] = "through"


class StrategyConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which strategy to run and its parameters."""

    name: str = "sma_cross"
    params: dict[str, float | int | str | bool] = msgspec.field(default_factory=dict)


class RiskConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Position sizing and stop-loss policy."""

    # How an entry is sized (see `twinstar.handlers.sizing`): "fraction" of equity, a fixed "quote"
    # notional, or "risk" (what the stop loses, as a share of equity).
    sizing: Literal["fraction", "quote", "risk"] = "fraction"
    # "fraction": the share of equity all positions together may take as margin, split equally
    # between the position slots (one symbol: this share of equity per entry).
    position_fraction: float = 0.95
    # "quote": the notional of every entry, in the quote currency.
    quote_per_entry: float = 0.0
    # "risk": percent of equity lost when an entry's stop is hit.
    risk_per_trade_pct: float = 1.0
    # At most this many positions open at once per venue; 0: one per symbol.
    max_open_positions: int = 0
    # One symbol's notional at most this share of equity (times its leverage); 0: an equal slot, 1 / slots.
    max_symbol_share: float = 0.0
    # A fixed quantity per entry instead (base units); 0 sizes by `sizing`.
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
    # Kill switch (0: off). Breaching a limit publishes RiskLimitBreached and blocks new entries until
    # resumed (control API); notional is qty x last close, the day's loss is realised plus open PnL (UTC day).
    max_notional_per_symbol: float = 0.0
    max_notional_total: float = 0.0
    max_daily_loss: float = 0.0
    max_orders_per_minute: int = 0
    max_sl_update_failures: int = 0  # consecutive, per symbol
    flatten_on_breach: bool = False  # also close every position at market on a breach

    @property
    def limits_set(self) -> bool:
        """Whether any kill-switch limit is on."""
        return any(
            value > 0
            for value in (
                self.max_notional_per_symbol,
                self.max_notional_total,
                self.max_daily_loss,
                self.max_orders_per_minute,
                self.max_sl_update_failures,
            )
        )


class ExecutionConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Retry policy for orders."""

    rate_limit_backoff_s: list[float] = msgspec.field(default_factory=lambda: [5.0, 10.0, 15.0])
    network_backoff_s: list[float] = msgspec.field(default_factory=lambda: [1.0, 2.0, 4.0])
    partial_fill_warn_ratio: float = 0.9
    # An entry whose signal is older than this when it would be sent (queued behind an outage or a long
    # backoff) is refused (`OrderFailed`), never sent on a stale price; closes always go. 0: no bound.
    max_signal_age_s: float = 120.0


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


class ControlConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The opt-in control plane: status API and live page, remote control, metrics (`twinstar.control`)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8787  # 0: any free port
    # The environment variable holding the bearer token every request must carry; required off loopback.
    token_env: str = ""
    # Balance and open orders are read from each venue this often (REST calls: mind the rate limit).
    poll_interval_s: float = 15.0
    # The live page and the status stream get at most one update per this many seconds.
    push_interval_s: float = 1.0
    metrics: bool = True  # Prometheus text at /metrics (needs the `control` extra: prometheus-client)


class AlertsConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Alerts on fills, stop failures, emergency exits, feed stops, repairs and breaches (off when empty)."""

    webhook_url: str = ""  # POSTed {"text": ...} as JSON
    telegram_token_env: str = ""  # the environment variable holding the Telegram bot token
    telegram_chat_id: str = ""
    telegram_api_url: str = "https://api.telegram.org"
    # At most this many messages a minute; what comes meanwhile is sent together in the next one.
    max_per_minute: int = 20
    queue_size: int = 1000  # alerts waiting to be sent; beyond it the oldest are counted and dropped
    timeout_s: float = 10.0

    @property
    def enabled(self) -> bool:
        """Whether any alert channel is configured."""
        return bool(self.webhook_url or self.telegram_token_env)


class BridgeConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The NATS JetStream bridge of the bus to other hosts (empty `url`: off; see `twinstar.bridge`)."""

    # nats://IP:port (an address: resolving a name would take a thread); a cluster's servers separated by commas.
    url: str = ""
    # This kernel's name on the bridge, unique among the kernels sharing a NATS (default: its venue names).
    source: str = ""
    stream: str = "TWINSTAR"
    subject_prefix: str = "twinstar"
    # Event tags sent to the bridge ("*": every event, which a central recorder needs).
    publish: list[str] = msgspec.field(default_factory=lambda: ["*"])
    # Event tags taken from other kernels for this kernel's own venues (remote signals: "signal_fired").
    consume: list[str] = msgspec.field(default_factory=list)
    # The outbox keeps what NATS has not confirmed yet, so a kernel without NATS trades on and catches up.
    outbox_dir: str = "state"
    fsync: bool = False
    # JetStream drops a re-sent event id seen within this window.
    duplicate_window_s: float = 600.0
    # A consumed event not acknowledged within this time is delivered again.
    ack_wait_s: float = 30.0
    max_in_flight: int = 256  # publishes awaiting JetStream's confirmation at once
    reconnect_s: float = 1.0  # wait between attempts to reach NATS


class OrdersConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Resting orders (limit entries, take-profits); see `twinstar.handlers.brackets`."""

    # A limit entry of ours found resting at start: cancel it (the decision was made before the restart)
    # or adopt it (watch it again and book its fill as the entry).
    resting_on_restart: Literal["cancel", "adopt"] = "cancel"


class DataConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Recorded candles that feed the simulated exchange (empty: the bundled set)."""

    path: str = ""
    # A hole longer than the interval: refuse the file, reset (close the position at the gap), or fill it flat.
    gaps: Literal["refuse", "reset", "fill"] = "reset"
    # Names of a headerless file's columns in order ("-" skips one), e.g. "time,open,high,low,close,volume".
    columns: str = ""
    # What `path` holds: "auto" tells candles, Lean zips and trade files apart (see twinstar.backtest.inputs).
    format: Literal["auto", "candles", "lean", "trades", "binance-trades"] = "auto"


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
    control: ControlConfig = msgspec.field(default_factory=ControlConfig)
    alerts: AlertsConfig = msgspec.field(default_factory=AlertsConfig)
    bridge: BridgeConfig = msgspec.field(default_factory=BridgeConfig)
    orders: OrdersConfig = msgspec.field(default_factory=OrdersConfig)

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
            # A share of equity as margin: more exposure comes from leverage (`exchange.leverage`), not from here.
            raise ConfigError(f"risk.position_fraction must be in (0, 1], not {self.risk.position_fraction:g}")
        self._validate_money()
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
        if not 0 <= self.execution.max_signal_age_s < 86_400:
            raise ConfigError(
                f"execution.max_signal_age_s must be in [0, 86400) seconds (0: no bound), not "
                f"{self.execution.max_signal_age_s:g}"
            )
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
        self._validate_operations()
        self._validate_bridge()

    def _validate_operations(self) -> None:
        risk, control, alerts = self.risk, self.control, self.alerts
        limits = (risk.max_notional_per_symbol, risk.max_notional_total, risk.max_daily_loss)
        if min(*limits, risk.max_orders_per_minute, risk.max_sl_update_failures) < 0:
            raise ConfigError("risk kill-switch limits (max_notional_*, max_daily_loss, ...) must be 0 (off) or more")
        if not 0 <= control.port <= 65535:
            raise ConfigError(f"control.port must be in [0, 65535], not {control.port}")
        if control.poll_interval_s <= 0 or control.push_interval_s <= 0:
            raise ConfigError("control.poll_interval_s and control.push_interval_s must be positive")
        if control.enabled and not control.token_env and not _is_loopback(control.host):
            raise ConfigError(f"control.host {control.host!r} is not loopback: set control.token_env (a token)")
        if alerts.max_per_minute < 1 or alerts.queue_size < 1 or alerts.timeout_s <= 0:
            raise ConfigError("alerts.max_per_minute, alerts.queue_size must be at least 1; alerts.timeout_s positive")
        if alerts.telegram_token_env and not alerts.telegram_chat_id:
            raise ConfigError("alerts.telegram_chat_id is needed with alerts.telegram_token_env")
        for url in (alerts.webhook_url, alerts.telegram_api_url):
            if url and not url.startswith(("http://", "https://")):
                raise ConfigError(f"alerts: {url!r} is not an http(s) URL")

    def _validate_bridge(self) -> None:
        bridge = self.bridge
        if not bridge.url:
            return
        if "@" in bridge.url:
            # The config goes into every recording's header: a password in it would be recorded.
            raise ConfigError("bridge.url must not hold credentials (user:password@): config files hold no secrets")
        if not all(part.strip().startswith(("nats://", "tls://")) for part in bridge.url.split(",")):
            raise ConfigError(f"bridge.url must be nats://host:port (or tls://), not {bridge.url!r}")
        for part in bridge.url.split(","):
            host = part.strip().split("://", 1)[1].rsplit(":", 1)[0].strip("[]")
            try:
                ipaddress.ip_address(host)
            except ValueError:
                # asyncio resolves a host name on a worker thread, and the kernel runs none.
                raise ConfigError(f"bridge.url: give the NATS server's IP address, not the name {host!r}") from None
        for field, value in (("source", bridge.source), ("stream", bridge.stream)):
            if value and not _VENUE_NAME.fullmatch(value):
                raise ConfigError(f"bridge.{field} may hold only letters, digits, '-' and '_', not {value!r}")
        if not bridge.stream or not all(_VENUE_NAME.fullmatch(part) for part in bridge.subject_prefix.split(".")):
            raise ConfigError("bridge.stream and bridge.subject_prefix must be set (letters, digits, '-', '_', '.')")
        from twinstar.bus.events import EVENT_TYPES

        tags = {str(event_type.__struct_config__.tag) for event_type in EVENT_TYPES}
        for field, chosen in (("publish", bridge.publish), ("consume", bridge.consume)):
            unknown = sorted(set(chosen) - tags - ({"*"} if field == "publish" else set()))
            if unknown:
                raise ConfigError(f"bridge.{field}: unknown event tags {unknown} (known: {', '.join(sorted(tags))})")
        if bridge.duplicate_window_s <= 0 or bridge.ack_wait_s <= 0 or bridge.reconnect_s <= 0:
            raise ConfigError("bridge.duplicate_window_s, bridge.ack_wait_s and bridge.reconnect_s must be positive")
        if bridge.max_in_flight < 1:
            raise ConfigError("bridge.max_in_flight must be at least 1")

    def _validate_money(self) -> None:
        sim = self.sim
        for key, value in (("taker_fee", sim.taker_fee), ("maker_fee", sim.maker_fee)):
            if not -0.01 <= value < 0.1:  # a maker rebate is a negative fee
                raise ConfigError(f"sim.{key} must be in [-0.01, 0.1) (a share of notional), not {value:g}")
        for key, value in (("slippage_bps", sim.slippage_bps), ("spread_bps", sim.spread_bps)):
            if not 0 <= value < 10_000:
                raise ConfigError(f"sim.{key} must be in [0, 10000) basis points, not {value:g}")
        if not 0 <= sim.spread_range_share <= 1:
            raise ConfigError(f"sim.spread_range_share must be in [0, 1], not {sim.spread_range_share:g}")
        if not 1 <= sim.leverage <= 125:
            raise ConfigError(f"sim.leverage must be in [1, 125], not {sim.leverage:g}")
        risk = self.risk
        if risk.sizing == "quote" and not risk.quote_per_entry > 0 and not risk.order_qty > 0:
            raise ConfigError(f'risk.quote_per_entry must be positive with sizing "quote": {risk.quote_per_entry:g}')
        if risk.quote_per_entry < 0:
            raise ConfigError(f"risk.quote_per_entry must be 0 or more, not {risk.quote_per_entry:g}")
        if not 0 < risk.risk_per_trade_pct <= 100:
            raise ConfigError(f"risk.risk_per_trade_pct must be in (0, 100], not {risk.risk_per_trade_pct:g}")
        if risk.max_open_positions < 0:
            raise ConfigError(f"risk.max_open_positions must be 0 (one per symbol) or more: {risk.max_open_positions}")
        if not 0 <= risk.max_symbol_share <= 1:
            raise ConfigError(f"risk.max_symbol_share must be in [0, 1] (0: equal slots): {risk.max_symbol_share:g}")

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
            _validate_margin(venue, where)
        if len(venues) > 1 and any(venue.id == "sim" for venue in venues):
            raise ConfigError('the simulated exchange (id "sim") trades alone: give every [[exchanges]] block an id')

"""Config: several `[[exchanges]]` blocks, the single `[exchange]` of before, and what is refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from twinstar.config import Config, ConfigError, VenueConfig

TWO_VENUES = """
interval = "1m"
symbols = ["BTC/USDT:USDT"]

[[exchanges]]
id = "binanceusdm"
api_key_env = "BINANCE_KEY"
api_secret_env = "BINANCE_SECRET"
symbols = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"]

[[exchanges]]
id = "bybit"
interval = "5m"
api_key_env = "BYBIT_KEY"
api_secret_env = "BYBIT_SECRET"
"""


def test_each_block_is_a_venue_with_its_own_symbols_and_the_top_level_defaults() -> None:
    venues = Config.from_toml(TWO_VENUES).venues()
    assert [(v.name, v.id, v.symbols, v.interval, v.api_key_env) for v in venues] == [
        ("binanceusdm", "binanceusdm", ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"], "1m", "BINANCE_KEY"),
        ("bybit", "bybit", ["BTC/USDT:USDT"], "5m", "BYBIT_KEY"),  # symbols from the top level, its own interval
    ]


def test_the_single_exchange_section_still_reads_as_one_venue() -> None:
    config = Config.from_toml('symbols = ["BTC/USDT:USDT"]\ninterval = "1h"\n[exchange]\nid = "okx"\ntestnet = true\n')
    assert config.venues() == [
        VenueConfig(id="okx", name="okx", testnet=True, symbols=["BTC/USDT:USDT"], interval="1h")
    ]
    assert Config().venues() == [VenueConfig(id="sim", name="sim", symbols=["BTC/USD"], interval="1h")]
    assert Config().paper and not config.paper


def test_two_accounts_on_one_exchange_need_names() -> None:
    block = '[[exchanges]]\nid = "binanceusdm"\nsymbols = ["BTC/USDT:USDT"]\n'
    with pytest.raises(ConfigError, match=r"'binanceusdm' appears twice: give each .* its own `name`"):
        Config.from_toml(block + block)
    named = Config.from_toml(block + 'name = "main"\n' + block + 'name = "hedge"\n')
    assert [(v.name, v.id) for v in named.venues()] == [("main", "binanceusdm"), ("hedge", "binanceusdm")]
    with pytest.raises(ConfigError, match="'main' appears twice"):
        Config.from_toml(block + 'name = "main"\n' + '[[exchanges]]\nid = "bybit"\nname = "main"\n')


def test_both_shapes_at_once_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"both \[exchange\] and \[\[exchanges\]\]"):
        Config.from_toml('[exchange]\nid = "okx"\n[[exchanges]]\nid = "bybit"\n')


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ('[[exchanges]]\nid = "bybit"\nname = "../up"\n', "only letters, digits"),
        ('[[exchanges]]\nid = "bybit"\nsymbols = ["BTC/USDT:USDT", "BTC/USDT:USDT"]\n', "listed twice"),
        ('symbols = []\n[[exchanges]]\nid = "bybit"\n', "'bybit': symbols: at least one symbol"),
        ('[[exchanges]]\nid = "bybit"\n[[exchanges]]\nid = "sim"\n', "trades alone"),
        ('[[exchanges]]\nid = "bybit"\napi_key = "secret"\n', "unknown field `api_key`"),
    ],
)
def test_bad_blocks_are_refused_with_the_reason(blocks: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_toml(blocks)


def test_a_stream_header_round_trips_both_shapes() -> None:
    for config in (Config.from_toml(TWO_VENUES), Config.from_toml('[exchange]\nid = "okx"\nname = "main"\n')):
        assert Config.from_dict(config.to_dict()) == config
    old_header = Config().to_dict()
    del old_header["exchanges"], old_header["exchange"]["name"]  # recorded before either existed
    assert Config.from_dict(old_header) == Config()


def test_every_config_in_the_readme_reads() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.DOTALL)
    assert len(blocks) >= 2
    venues = [Config.from_toml(block).venues() for block in blocks]
    assert ["binanceusdm", "bybit", "bybit-hedge"] in [[v.name for v in block] for block in venues]

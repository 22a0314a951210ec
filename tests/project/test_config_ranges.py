"""Sizing, risk and retry values out of range are refused when the config is read, naming the key."""

from __future__ import annotations

import pytest

from twinstar.config import Config, ConfigError


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ("[risk]\nposition_fraction = 5", "risk.position_fraction must be in (0, 1], not 5"),
        ("[risk]\nposition_fraction = 0", "risk.position_fraction"),
        ("[risk]\nstop_loss_pct = 0", "risk.stop_loss_pct"),
        ("[risk]\nstop_loss_pct = 120", "risk.stop_loss_pct"),
        ("[risk]\norder_qty = -1", "risk.order_qty"),
        ("[risk]\nreconcile_every = 0", "risk.reconcile_every"),
        ("[risk]\nsl_retry_backoff_s = [1, -2]", "risk.sl_retry_backoff_s"),
        ("[execution]\nnetwork_backoff_s = [-1]", "execution backoffs"),
        ("[execution]\npartial_fill_warn_ratio = 2", "execution.partial_fill_warn_ratio"),
        ("[feed]\nbackoff_initial_s = 5\nbackoff_max_s = 1", "feed.backoff_initial_s"),
        ("[feed]\nmax_attempts = -1", "feed.max_attempts"),
        ("[storage]\ncompact_every = 0", "storage.compact_every"),
    ],
)
def test_a_value_out_of_range_is_refused_naming_its_key(toml: str, says: str) -> None:
    with pytest.raises(ConfigError, match=None) as refused:
        Config.from_toml(toml)
    assert says in str(refused.value)


def test_the_defaults_and_a_many_symbol_config_are_accepted() -> None:
    Config()
    Config.from_toml('symbols = ["BTC/USDT:USDT", "ETH/USDT:USDT"]\n[risk]\nposition_fraction = 0.1\n')

"""A trial's full config: the base config with the strategy, its parameters and the data filled in."""

from __future__ import annotations

from pathlib import Path

import msgspec

from twinstar.atomic import write_bytes_atomically
from twinstar.config import Config
from twinstar.optimize.space import ParamValue


def trial_config(base: Config, strategy: str, params: dict[str, ParamValue], data: str, interval: str) -> Config:
    """Return `base` trading `strategy` with `params` on the candles in `data`."""
    return msgspec.structs.replace(
        base,
        strategy=msgspec.structs.replace(base.strategy, name=strategy, params=dict(params)),
        data=msgspec.structs.replace(base.data, path=data),
        interval=interval,
    )


def write_config(config: Config, path: Path) -> None:
    """Write `config` as a TOML file that `python -m twinstar run --config` reads back unchanged."""
    write_bytes_atomically(path, msgspec.toml.encode(config.to_dict()))

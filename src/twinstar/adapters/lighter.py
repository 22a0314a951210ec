"""Lighter (zkLighter): orders are signed by the lighter-sdk signer library.

ccxt's `lighter` class signs transactions with the Go signer shipped in the
`lighter-sdk` wheel, whose own dependencies (urllib3<2.1) cannot be installed
beside ccxt's. The library is all we need, so install it alone:

    pip install --no-deps lighter-sdk

and TwinStar points ccxt's `options['libraryPath']` at the signer for this
platform inside the installed package. Without it, order calls fail with a
clear NOT_SUPPORTED result; market data works.
"""

from __future__ import annotations

import importlib.util
import platform
from pathlib import Path
from typing import Any

from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.clock import Clock
from twinstar.config import ExchangeConfig

_SIGNERS = {
    ("Linux", "x86_64"): "lighter-signer-linux-amd64.so",
    ("Linux", "aarch64"): "lighter-signer-linux-arm64.so",
    ("Darwin", "x86_64"): "lighter-signer-darwin-amd64.dylib",
    ("Darwin", "arm64"): "lighter-signer-darwin-arm64.dylib",
    ("Windows", "AMD64"): "lighter-signer-windows-amd64.dll",
}


def signer_library_path() -> Path | None:
    """Find the signer of the installed lighter-sdk for this platform, or None."""
    spec = importlib.util.find_spec("lighter")
    if spec is None or not spec.submodule_search_locations:
        return None
    name = _SIGNERS.get((platform.system(), platform.machine()))
    if name is None:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "signers" / name
        if candidate.exists():
            return candidate
    return None


class Lighter(CcxtExchange):
    """Lighter perpetuals (ccxt `lighter`)."""

    exchange_id = "lighter"

    def __init__(
        self,
        exchange_id: str | None = None,
        *,
        config: ExchangeConfig | None = None,
        clock: Clock,
        ccxt_options: dict[str, Any] | None = None,
    ) -> None:
        library = signer_library_path()
        options = dict(ccxt_options or {})
        if library is not None:
            options.setdefault("options", {})["libraryPath"] = str(library)
        super().__init__(exchange_id, config=config, clock=clock, ccxt_options=options)
        self.signer = library

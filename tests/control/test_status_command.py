"""`python -m twinstar status` prints a running kernel's status from its control API, as a user runs it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.control.helpers import TOKEN_ENV, live_session
from twinstar.bus.events import SLUpdated

pytestmark = pytest.mark.anyio


async def _status(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "twinstar",
        "status",
        *args,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()  # awaited: the kernel in this loop keeps answering meanwhile
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_status_prints_positions_feeds_and_venues_as_tables(tmp_path: Path) -> None:
    async with live_session(tmp_path) as s:
        await s.until(lambda: bool(s.tap.of(SLUpdated)), "a protected position")
        code, out, err = await _status("--url", s.url, "--token-env", TOKEN_ENV)
        refused, _, refusal = await _status("--url", s.url)
        config = tmp_path / "control.toml"
        config.write_text(f'[control]\nenabled = true\nport = {s.url.rsplit(":", 1)[1]}\ntoken_env = "{TOKEN_ENV}"\n')
        from_config, again, _ = await _status("--config", str(config))
        # One status view for many kernels: here the same one twice, by URL and by config, and a dead one.
        dead = "http://127.0.0.1:9"
        many = ("--url", s.url, "--url", dead, "--config", str(config), "--token-env", TOKEN_ENV)
        several, listed, why = await _status(*many)
    assert (code, err) == (0, ""), err
    lines = out.splitlines()
    assert lines[0] == "kernel running, entries open"
    position = lines[lines.index("positions:") + 2].split()
    assert position[:2] == ["binanceusdm", "BTC/USDT:USDT"]
    assert position[2] in ("long", "short") and float(position[5].replace(",", "")) > 0  # a stop in force
    feed = lines[lines.index("feeds:") + 2].split()
    assert feed[:4] == ["binanceusdm", "BTC/USDT:USDT", "1s", "ok"]
    assert lines[lines.index("venues:") + 2].split()[0] == "binanceusdm"
    assert refused == 1 and "answered HTTP 401" in refusal
    assert from_config == 0 and again.splitlines()[0] == "kernel running, entries open"
    headers = [line for line in listed.splitlines() if line.startswith("== ")]
    assert headers == [f"== {s.url}", f"== {dead}", f"== {s.url}"]
    assert listed.count("kernel running, entries open") == 2 and several == 1 and "cannot reach" in why


async def test_status_says_clearly_when_no_kernel_listens() -> None:
    code, out, err = await _status("--url", "http://127.0.0.1:9")
    assert (code, out) == (1, "")
    assert err.startswith("twinstar: cannot reach the control API at http://127.0.0.1:9: ClientConnectorError")
    assert "Traceback" not in err

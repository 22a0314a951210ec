"""Run `python -m twinstar run` on a live config as a user does: a subprocess, stopped by SIGINT.

The venue runs in the test's own event loop, so waiting here is always an
`await`: the venue keeps answering while the test watches the output grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

KEY_ENV, SECRET_ENV = "TW_E2E_KEY", "TW_E2E_SECRET"


#: Candles this long still signal when the poll feed publishes them (2 s after their close): the
#: strategy ignores a candle older than two intervals, so one-second candles would rarely trade.
INTERVAL_S = 4


def live_config(base_url: str, *, exchange: str = "binanceusdm", extra: str = "") -> str:
    """A live TOML config trading BTC/USDT:USDT on `INTERVAL_S` candles (sma_cross 2/3) on `base_url`."""
    return (
        f'symbols = ["BTC/USDT:USDT"]\ninterval = "{INTERVAL_S}s"\n'
        f'[exchange]\nid = "{exchange}"\napi_key_env = "{KEY_ENV}"\napi_secret_env = "{SECRET_ENV}"\n'
        f'api_base_url = "{base_url}"\ncandle_feed = "poll"\noptions = {{ fetchCurrencies = false }}\n'
        '[strategy]\nname = "sma_cross"\nparams = { fast = 2, slow = 3 }\n'
        "[risk]\nposition_fraction = 0.05\nstop_loss_pct = 2.0\n"
        '[journal]\ndir = "state"\n'
        f"{extra}"
    )


@dataclass
class LiveRun:
    """One running `twinstar run`: its working folder (everything it writes) and its captured output."""

    proc: asyncio.subprocess.Process
    cwd: Path
    out_dir: Path

    @property
    def stdout(self) -> str:
        """What the process printed on stdout so far."""
        return (self.out_dir / "stdout").read_text(errors="replace")

    @property
    def stderr(self) -> str:
        """What the process printed on stderr so far."""
        return (self.out_dir / "stderr").read_text(errors="replace")

    async def wait_for(self, done: Callable[[str], bool], *, what: str, limit_s: float = 120.0) -> str:
        """Wait until `done(stderr)`; fail if the process exits first or nothing comes within `limit_s`."""
        deadline = asyncio.get_running_loop().time() + limit_s  # bounds the wait; no assertion on time
        while not done(text := self.stderr):
            if self.proc.returncode is not None:
                raise AssertionError(f"twinstar exited ({self.proc.returncode}) before {what}:\n{text[-5000:]}")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no {what} in the output:\n{text[-5000:]}")
            await asyncio.sleep(0.2)
        return text

    async def interrupt(self) -> int:
        """Press Ctrl-C and wait for the process to finish; return its exit code."""
        self.proc.send_signal(signal.SIGINT)
        return await asyncio.wait_for(self.proc.wait(), 60)

    def written(self) -> dict[str, bytes]:
        """Every file the run wrote (run folder, journal, storage) and its captured output, by name."""
        files = {str(p.relative_to(self.cwd)): p.read_bytes() for p in sorted(self.cwd.rglob("*")) if p.is_file()}
        return {
            **files,
            "<stdout>": (self.out_dir / "stdout").read_bytes(),
            "<stderr>": (self.out_dir / "stderr").read_bytes(),
        }


@contextlib.asynccontextmanager
async def live_run(tmp_path: Path, config: str, env: dict[str, str], *args: str) -> AsyncIterator[LiveRun]:
    """Start `python -m twinstar [args] run --config live.toml` in `tmp_path/run`; kill it if the test fails."""
    cwd, out_dir = tmp_path / "run", tmp_path / "output"
    cwd.mkdir()
    out_dir.mkdir()
    (tmp_path / "live.toml").write_text(config)  # outside the run folder: only what the run wrote is in there
    with (out_dir / "stdout").open("wb") as stdout, (out_dir / "stderr").open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "twinstar",
            *args,
            "run",
            "--config",
            str(tmp_path / "live.toml"),
            cwd=cwd,
            env={**os.environ, **env},
            stdout=stdout,
            stderr=stderr,
        )
    try:
        yield LiveRun(proc, cwd, out_dir)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

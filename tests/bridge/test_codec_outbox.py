"""The bridge's message format, subject names, outbox and config, without a server."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.kernel.strategies import any_event
from twinstar.bridge.codec import SCHEMA_VERSION, BridgeFormatError, BridgeMessage, decode_message, encode_message
from twinstar.bridge.outbox import Entry, Outbox, read_outbox
from twinstar.bridge.subjects import subject_for, venue_filter
from twinstar.bus.events import Event, KernelStarted, SignalFired
from twinstar.config import Config, ConfigError

SIGNAL = SignalFired(
    ts_ns=5,
    strategy="s",
    exchange="binanceusdm",
    symbol="BTC/USDT:USDT",
    side="buy",
    price=1.0,
    stop_price=0.0,
    reason="r",
    candle_open_time_ms=7,
)


def test_a_message_round_trips_with_its_id_source_and_schema() -> None:
    data = encode_message("k:1:1", "k", SIGNAL)
    assert decode_message(data) == BridgeMessage(schema=SCHEMA_VERSION, id="k:1:1", source="k", event=SIGNAL)


@given(any_event, st.text(max_size=40))
def test_every_event_round_trips_through_the_bridge_and_keeps_a_safe_subject(event: Event, source: str) -> None:
    decoded = decode_message(encode_message(f"{source}:1:1", source, event))
    assert (decoded.event, decoded.source, decoded.id) == (event, source, f"{source}:1:1")
    tokens = subject_for("tw", event).split(".")
    assert len(tokens) == 4 and all(token and not set(token) & set("*> \t\r\n") for token in tokens)


def test_a_newer_schema_or_garbage_is_refused_in_one_line() -> None:
    newer = msgspec.msgpack.encode({"schema": SCHEMA_VERSION + 1, "id": "x", "source": "k", "event": {"type": "new"}})
    with pytest.raises(BridgeFormatError, match="schema 2, newer than this TwinStar reads"):
        decode_message(newer)
    with pytest.raises(BridgeFormatError, match="not a TwinStar bridge message"):
        decode_message(b"\x01garbage")


def test_subjects_are_named_by_venue_symbol_and_type() -> None:
    assert subject_for("tw", SIGNAL) == "tw.binanceusdm.BTC_USDT_USDT.signal_fired"
    assert subject_for("tw", KernelStarted(ts_ns=1)) == "tw._._.kernel_started"
    assert venue_filter("tw", "binanceusdm", "signal_fired") == "tw.binanceusdm.*.signal_fired"


def test_the_outbox_keeps_what_was_not_confirmed_and_never_reuses_a_sequence(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, "k")
    for index in range(5):
        outbox.append(f"s.{index}", bytes([index]))
    outbox.confirm(2)
    outbox.close()  # as after a crash: two confirmed, three waiting
    reopened = Outbox(tmp_path, "k")
    assert list(reopened.pending) == [Entry(3, "s.2", b"\x02"), Entry(4, "s.3", b"\x03"), Entry(5, "s.4", b"\x04")]
    assert (reopened.next_seq, reopened.epoch) == (6, outbox.epoch)
    reopened.confirm(5)
    reopened.close()
    emptied = Outbox(tmp_path, "k")  # compacted to nothing: the next id still follows the last one
    assert (list(emptied.pending), emptied.next_seq) == ([], 6)
    assert emptied.event_id("k", 6) == f"k:{outbox.epoch:x}:6"
    emptied.close()


def test_a_torn_outbox_tail_is_left_out(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, "k")
    outbox.append("s", b"whole")
    outbox.close()
    with outbox.path.open("ab") as file:
        file.write(b"\x20\x00\x00\x00torn")
    assert read_outbox(outbox.path) == (outbox.epoch, [Entry(1, "s", b"whole")])


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('url = "http://127.0.0.1:4222"', "bridge.url must be nats://host:port"),
        ('url = "nats://user:pw@127.0.0.1:4222"', "bridge.url must not hold credentials"),
        ('url = "nats://127.0.0.1:4222"\npublish = ["signal"]', "bridge.publish: unknown event tags ['signal']"),
        ('url = "nats://127.0.0.1:4222"\nmax_in_flight = 0', "bridge.max_in_flight must be at least 1"),
        ('url = "nats://127.0.0.1:4222"\nsource = "a.b"', "bridge.source may hold only letters"),
        (
            'url = "nats://nats.internal:4222"',
            "bridge.url: give the NATS server's IP address, not the name 'nats.internal'",
        ),
    ],
)
def test_a_bad_bridge_section_is_one_clear_error(section: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        Config.from_toml(f"[bridge]\n{section}\n")

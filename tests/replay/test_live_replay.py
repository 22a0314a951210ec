"""A live recording replays to what live did: orders answered by what the venue answered, not simulated."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from tests.replay.live_session import STOP_HIT, record_live_session
from twinstar.bus.events import (
    OrderFailed,
    OrderPlaced,
    PositionClosed,
    PositionOpened,
    SignalFired,
    encode,
)
from twinstar.bus.record import MAGIC, read_stream
from twinstar.divergence.compare import compare
from twinstar.replay import ReplayDivergedError, replay
from twinstar.session import sim_components

pytestmark = pytest.mark.anyio

DECISIONS = (SignalFired, OrderPlaced, OrderFailed, PositionOpened, PositionClosed)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One live session on the loopback venue, recorded once for every test here."""
    return anyio.run(record_live_session, tmp_path_factory.mktemp("live"))


def decisions(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Each kind of decision of a stream in its order, without the times (a live clock is the wall's)."""
    kinds: dict[str, list[dict[str, Any]]] = {kind.__name__: [] for kind in DECISIONS}
    for event in read_stream(path):
        if isinstance(event, DECISIONS):
            fields = msgspec.structs.asdict(event)
            del fields["ts_ns"]
            kinds[type(event).__name__].append(fields)
    return kinds


def pnl(path: Path) -> float:
    return sum(e.pnl for e in read_stream(path) if isinstance(e, PositionClosed))


def with_config(source: Path, target: Path, **changes: Any) -> Path:
    """`source` with its header's config changed by `changes` (section -> fields): the same market, other rules."""
    stream = read_stream(source)
    config = dict(stream.header.config)
    for section, fields in changes.items():
        config[section] = {**config[section], **fields}
    header = msgspec.msgpack.encode(msgspec.structs.replace(stream.header, config=config))
    frames = [header, *(encode(event) for event in stream)]
    target.write_bytes(MAGIC + b"".join(struct.pack("<I", len(frame)) + frame for frame in frames))
    return target


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "twinstar", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=50)


def test_the_venue_answered_what_the_simulator_would_not(live: Path) -> None:
    kinds = decisions(live)
    stops = [c for c in kinds["PositionClosed"] if c["reason"] == "stop_loss"]
    assert [(c["side"], c["exit_price"]) for c in stops] == [("long", STOP_HIT)]  # fired by the venue alone
    entries = [o for o in kinds["OrderPlaced"] if o["intent"] == "open"]
    assert entries and all(o["partial"] and o["filled_qty"] < o["requested_qty"] for o in entries)
    [refused] = kinds["OrderFailed"]  # too small to trade, or (balance read before the wallet emptied) no margin
    assert refused["intent"] == "open" and refused["error_kind"] in ("invalid_order", "insufficient_funds")


async def test_replay_answers_from_the_recording_and_decides_as_live(live: Path, tmp_path: Path) -> None:
    summary = await replay(live, output=tmp_path / "replayed.tws")
    assert summary.venue == "recorded"
    assert decisions(tmp_path / "replayed.tws") == decisions(live)
    assert pnl(tmp_path / "replayed.tws") == pnl(live) < 0
    divergence = compare(read_stream(live), read_stream(tmp_path / "replayed.tws"))
    assert (divergence.index, divergence.original_fills) == (-1, divergence.replayed_fills)


async def test_replaying_twice_writes_the_same_bytes(live: Path, tmp_path: Path) -> None:
    await replay(live, output=tmp_path / "first.tws")
    await replay(live, output=tmp_path / "second.tws")
    assert (tmp_path / "first.tws").read_bytes() == (tmp_path / "second.tws").read_bytes()


async def test_simulate_departs_from_live(live: Path, tmp_path: Path) -> None:
    summary = await replay(live, output=tmp_path / "simulated.tws", components=sim_components, simulate=True)
    assert summary.venue == "simulated"
    divergence = compare(read_stream(live), read_stream(tmp_path / "simulated.tws"))
    assert divergence.index >= 0
    assert divergence.original_fills != divergence.replayed_fills
    assert divergence.original_pnl == pnl(live) != divergence.replayed_pnl


async def test_other_decisions_than_live_end_the_replay_with_one_line(live: Path, tmp_path: Path) -> None:
    changed = with_config(live, tmp_path / "wider_stops.tws", risk={"stop_loss_pct": 3.0})
    with pytest.raises(ReplayDivergedError) as raised:
        await replay(changed)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("replay departs from the live recording: a stop for BTC/USDT:USDT at ")
    assert "where live placed one at " in message and "(client id tws-" in message


async def test_a_different_strategy_parameter_names_the_first_differing_decision(live: Path, tmp_path: Path) -> None:
    changed = with_config(live, tmp_path / "slower.tws", strategy={"params": {"fast": 3, "slow": 5}})
    with pytest.raises(ReplayDivergedError) as raised:
        await replay(changed)
    message = str(raised.value)
    assert "\n" not in message
    assert "first differing decision #0: recorded SignalFired " in message


def test_the_cli_replays_live_as_recorded_and_diff_shows_the_simulation_departing(live: Path, tmp_path: Path) -> None:
    recorded = cli("replay", live, "--output", tmp_path / "replayed.tws")
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert "orders answered by: recorded venue" in recorded.stdout
    assert decisions(tmp_path / "replayed.tws") == decisions(live)
    simulated = cli("replay", live, "--simulate", "--output", tmp_path / "simulated.tws")
    assert simulated.returncode == 0, simulated.stdout + simulated.stderr
    assert "orders answered by: simulated venue" in simulated.stdout
    assert decisions(tmp_path / "simulated.tws") != decisions(live)
    diff = cli("diff", live)
    assert diff.returncode == 1, diff.stdout + diff.stderr
    assert "first differing decision (#" in diff.stdout
    assert f"pnl: recorded {pnl(live):.6f}, simulated " in diff.stdout


def test_the_cli_reports_a_divergence_in_one_line(live: Path, tmp_path: Path) -> None:
    changed = with_config(live, tmp_path / "wider_stops.tws", risk={"stop_loss_pct": 3.0})
    result = cli("replay", changed)
    assert result.returncode == 1
    assert result.stdout.startswith("error: replay departs from the live recording: a stop for ")
    assert result.stdout.count("\n") == 1

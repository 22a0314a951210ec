"""The order-intent journal: what it keeps, what a torn tail costs, and a real SIGKILL mid-stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from twinstar.handlers.journal import DONE_KEPT, MAGIC, Flat, Journal, JournalState, Sent, StopInForce, read_journal


def _sent(cid: str, symbol: str = "BTC/USDT:USDT") -> Sent:
    return Sent(
        cid=cid,
        exchange="binanceusdm",
        symbol=symbol,
        side="buy",
        qty=0.01,
        intent="open",
        reduce_only=False,
        sent_ms=1,
    )


def _stop(symbol: str = "BTC/USDT:USDT", price: float = 29_000.0) -> StopInForce:
    return StopInForce(
        exchange="binanceusdm",
        symbol=symbol,
        side="long",
        qty=0.01,
        entry_price=30_000.0,
        stop_price=price,
        cid="tws-1",
    )


def test_the_state_survives_reopening_and_the_file_is_compacted(tmp_path: Path) -> None:
    path = tmp_path / "j"
    journal = Journal(path)
    for n in range(50):
        journal.sent(_sent(f"two-{n}"))
        journal.outcome(f"two-{n}", "filled", 0.01, 30_000.0)
        journal.write(_stop(price=29_000.0 + n))
    journal.sent(_sent("two-last"))
    journal.close()
    size = path.stat().st_size
    reopened = Journal(path)
    assert reopened.state == JournalState(
        pending={"two-last": _sent("two-last")},
        stops={("binanceusdm", "BTC/USDT:USDT"): _stop(price=29_049.0)},
        done={("binanceusdm", "BTC/USDT:USDT"): {f"two-{n}": None for n in range(50)}},
    )
    assert path.stat().st_size < size / 3  # rewritten to its live records: ids done, one pending, one stop
    assert reopened.known("binanceusdm", "BTC/USDT:USDT", "two-7") and reopened.known("x", "y", "two-last")
    assert not reopened.known("binanceusdm", "BTC/USDT:USDT", "two-50")
    reopened.write(Flat(exchange="binanceusdm", symbol="BTC/USDT:USDT"))
    reopened.close()
    assert Journal(path).state.stops == {}


def test_an_unknown_outcome_stays_pending_for_the_reconciler(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.sent(_sent("two-1"))
    assert journal.in_flight == {"two-1"}
    journal.outcome("two-1", "unknown", 0.0, 0.0)
    assert (journal.in_flight, list(journal.state.pending)) == (set(), ["two-1"])


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=0, max_value=400))
def test_a_torn_tail_keeps_every_complete_record(tmp_path_factory: object, cut: int) -> None:
    folder = Path(str(tmp_path_factory.mktemp("torn")))  # type: ignore[attr-defined]
    path = folder / "j"
    journal = Journal(path)
    records = [_sent(f"two-{n}") for n in range(6)]
    ends = []
    for record in records:
        journal.sent(record)
        ends.append(path.stat().st_size)
    journal.close()
    data = path.read_bytes()
    keep = max(len(MAGIC), len(data) - cut)
    path.write_bytes(data[:keep])
    state, torn = read_journal(path)
    complete = sum(1 for end in ends if end <= keep)
    assert list(state.pending) == [r.cid for r in records[:complete]]
    assert torn == (keep not in (len(MAGIC), *ends))


def test_a_sigkill_while_writing_loses_no_record_the_os_got(tmp_path: Path) -> None:
    path = tmp_path / "j"
    script = textwrap.dedent(
        f"""
        import sys
        from twinstar.handlers.journal import Journal, Sent
        journal = Journal({str(path)!r})
        n = 0
        while True:
            journal.sent(Sent(cid=f"two-{{n}}", exchange="x", symbol="BTC", side="buy", qty=1.0, intent="open",
                              reduce_only=False, sent_ms=n))
            if n == 2000:
                print("ready", flush=True)
            n += 1
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    os.kill(child.pid, signal.SIGKILL)  # mid-stream, at no chosen instant
    child.wait(timeout=30)
    child.stdout.close()
    state, _ = read_journal(path)
    cids = list(state.pending)
    assert len(cids) > 2000
    assert cids == [f"two-{n}" for n in range(len(cids))]  # a prefix, in order, none lost or mangled


def test_only_the_latest_resolved_ids_are_kept_per_symbol(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    for n in range(DONE_KEPT + 10):
        journal.sent(_sent(f"two-{n}"))
        journal.outcome(f"two-{n}", "failed", 0.0, 0.0)
    journal.close()
    kept = Journal(tmp_path / "j").state.done[("binanceusdm", "BTC/USDT:USDT")]
    assert list(kept) == [f"two-{n}" for n in range(10, DONE_KEPT + 10)]


def test_a_long_run_keeps_the_file_the_size_of_its_live_state(tmp_path: Path) -> None:
    """Compacted while running, every `compact_after` records: months of orders do not pile up on disk."""

    def trade(journal: Journal, rounds: int) -> None:
        for i in range(rounds):
            journal.sent(_sent(f"tws-{i}"))
            journal.outcome(f"tws-{i}", "filled", 0.01, 30_000.0)
            journal.write(_stop(price=29_000.0 + i))

    kept, grown = tmp_path / "kept.journal", tmp_path / "grown.journal"
    journal, unbounded = Journal(kept, compact_after=100), Journal(grown, compact_after=10**9)
    trade(journal, 2_000)
    trade(unbounded, 2_000)
    assert kept.stat().st_size * 20 < grown.stat().st_size  # 6,000 records against the live state and <= 100
    assert read_journal(kept) == read_journal(grown) == (journal.state, False)  # nothing lost by compacting
    journal.close()
    again = Journal(kept)
    assert again.known("binanceusdm", "BTC/USDT:USDT", "tws-1999") and again.stop_for("binanceusdm", "BTC/USDT:USDT")


def test_the_running_compaction_never_stands_before_an_order(tmp_path: Path) -> None:
    """A `Sent` is written just before its request leaves: the rewrite waits for the next record."""
    path = tmp_path / "j"
    journal = Journal(path, compact_after=3)
    journal.write(_stop(price=29_000.0))
    journal.write(_stop(price=29_001.0))
    before = path.stat().st_ino
    journal.sent(_sent("tws-0"))  # the third record: due, but an order is about to go out
    assert path.stat().st_ino == before
    journal.outcome("tws-0", "filled", 0.01, 30_000.0)
    assert path.stat().st_ino != before  # rewritten (atomically: a new file) once the venue answered
    journal.close()
    assert Journal(path).state == journal.state

from __future__ import annotations

import io
import threading

import pytest

from twinstar.report.terminal import Progress, print_table, table


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    progress = Progress(3, "candles", stream=out, every_s=0)
    progress.update(1)
    progress.update(3)
    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == ["candles: 1/3", "candles: 3/3"]
    assert lines[-1].startswith("candles: 3/3 (100.0%)")
    print_table([("trades", "7"), ("win rate", "42.0%")], title="sma", stream=out)
    assert out.getvalue().endswith(table([("trades", "7"), ("win rate", "42.0%")], title="sma") + "\n")


def test_a_rich_bar_and_table_on_a_terminal_start_no_thread() -> None:
    out = _Terminal()
    before = threading.active_count()
    progress = Progress(2_000, "candles", stream=out, every_s=0)
    progress.update(1_000)
    assert threading.active_count() == before  # no auto-refresh thread: we refresh on update
    progress.update(2_000)
    print_table([("trades", "7")], title="sma", stream=out)
    text = out.getvalue()
    assert "\x1b[" in text  # drawn with terminal control codes, not as plain lines
    assert "2000/2000" in text
    assert "trades" in text
    assert threading.active_count() == before


def test_without_rich_a_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("twinstar.report.terminal._rich_available", lambda: False)
    out = _Terminal()
    Progress(1, "candles", stream=out, every_s=0).update(1)
    assert out.getvalue().startswith("candles: 1/1 (100.0%)")

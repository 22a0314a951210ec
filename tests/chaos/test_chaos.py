"""The chaos run, reduced: a few SIGKILLs of a live kernel process and a few dozen ambiguous timeouts.

The same code as `nox -s chaos` (twinstar.testing.chaos), bounded by work, not
by time: 6 kills (each cycle ends within a few seconds whatever happens) and
48 timeouts on 8 venues side by side. Only loopback addresses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from twinstar.testing.chaos import ChaosReport
from twinstar.testing.chaos_kills import run_kills
from twinstar.testing.chaos_timeouts import run_timeouts

pytestmark = pytest.mark.anyio


@pytest.mark.timeout(120)
async def test_sigkills_all_over_the_lifecycle_leave_no_duplicate_no_naked_position_no_orphan(tmp_path: Path) -> None:
    figures = await run_kills(6, tmp_path, seed=7, final_s=2.0, give_up_s=5.0)
    report = ChaosReport(figures, None)
    assert figures.kills == 6
    assert figures.audits >= 3, report.table()  # most restarts got as far as their first candle
    assert sum(figures.lifecycle.values()) > 0, report.table()
    assert report.violations() == [], report.table()


@pytest.mark.timeout(120)
async def test_ambiguous_timeouts_never_double_an_order_nor_leave_a_fill_unprotected() -> None:
    figures = await run_timeouts(48, seed=7, lanes=8)
    report = ChaosReport(None, figures)
    assert figures.timeouts >= 48
    assert figures.entries > 0
    assert report.violations() == [], report.table()

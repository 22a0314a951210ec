"""Equity-curve chart as a standalone SVG file.

SVG written directly: none of our dependencies draws charts, and a polyline
with axes needs no plotting stack, no browser and no fonts on the machine.
Any browser or image viewer opens the file.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from pathlib import Path

_WIDTH, _HEIGHT = 960, 420
_LEFT, _RIGHT, _TOP, _BOTTOM = 90, 20, 50, 50
_MAX_POINTS = 2_000


def _downsample(times: Sequence[int], values: Sequence[float]) -> list[tuple[int, float]]:
    """Keep at most ~_MAX_POINTS points, each bucket's min and max, so dips stay visible."""
    n = len(values)
    if n <= _MAX_POINTS:
        return list(zip(times, values, strict=True))
    bucket = n / (_MAX_POINTS / 2)
    points: list[tuple[int, float]] = []
    start = 0
    while start < n:
        end = min(n, int(start + bucket) or start + 1)
        lo = min(range(start, end), key=values.__getitem__)
        hi = max(range(start, end), key=values.__getitem__)
        points.extend((times[i], values[i]) for i in sorted({lo, hi}))
        start = end
    if points[-1][0] != times[-1]:
        points.append((times[-1], values[-1]))  # the curve ends where the run ended
    return points


def _date(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d")


def equity_svg(times_ms: Sequence[int], equity: Sequence[float], *, title: str, baseline: float) -> str:
    """Render an equity curve (with the starting equity as a dashed line) to SVG text."""
    if not equity:
        times_ms, equity = [0], [baseline]
    points = _downsample(times_ms, equity)
    t0, t1 = points[0][0], points[-1][0]
    lo = min(*(v for _, v in points), baseline)
    hi = max(*(v for _, v in points), baseline)
    if hi == lo:
        hi, lo = hi + 1, lo - 1
    plot_w = _WIDTH - _LEFT - _RIGHT
    plot_h = _HEIGHT - _TOP - _BOTTOM

    def x(t: int) -> float:
        return _LEFT + (plot_w * (t - t0) / (t1 - t0) if t1 > t0 else 0)

    def y(v: float) -> float:
        return _TOP + plot_h * (hi - v) / (hi - lo)

    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
    ticks = []
    for k in range(5):
        value = lo + (hi - lo) * k / 4
        ticks.append(
            f'<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            f'stroke="#e5e7eb"/><text x="{_LEFT - 8}" y="{y(value) + 4:.1f}" text-anchor="end">'
            f"{value:,.0f}</text>"
        )
    final = equity[-1]
    colour = "#15803d" if final >= baseline else "#b91c1c"
    return f"""<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" \
viewBox="0 0 {_WIDTH} {_HEIGHT}" font-family="sans-serif" font-size="12" fill="#111827">
<rect width="100%" height="100%" fill="white"/>
<text x="{_LEFT}" y="28" font-size="16" font-weight="bold">{html.escape(title)}</text>
{"".join(ticks)}
<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{y(baseline):.1f}" y2="{y(baseline):.1f}" \
stroke="#6b7280" stroke-dasharray="4 4"/>
<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.5"/>
<text x="{_LEFT}" y="{_HEIGHT - 20}">{_date(t0)}</text>
<text x="{_WIDTH - _RIGHT}" y="{_HEIGHT - 20}" text-anchor="end">{_date(t1)}</text>
<text x="{_WIDTH - _RIGHT}" y="28" text-anchor="end">final equity {final:,.2f}</text>
</svg>
"""


def write_equity_chart(
    path: Path, times_ms: Sequence[int], equity: Sequence[float], *, title: str, baseline: float
) -> Path:
    """Write the equity curve to `path` (an .svg file) and return the path."""
    path.write_text(equity_svg(times_ms, equity, title=title, baseline=baseline), encoding="utf-8")
    return path

"""The status page as a person sees it: a live kernel, its page in headless Chromium, a screenshot.

Run by `nox -s control` (needs Debian's `chromium`): a kernel trades on the
loopback Binance venue with the control plane on; once it holds a protected
position, Chromium loads the page (token in the URL, as on a phone), runs
its script and follows the live stream. The DOM Chromium ends with must show
the position row, the feed row and the stream connected ("live"); then
screenshots (desktop and phone) go to `--out`. Exit 0 when all of that held.

    python -m tests.control.page_demo --out reports/control
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from tests.control.helpers import TOKEN, PageRows, live_session
from twinstar.bus.events import SLUpdated

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


async def _chromium(chromium: str, profile: str, *args: str) -> bytes:
    """Run Chromium to the end (awaited: the kernel in this loop keeps serving the page meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        chromium,
        *FLAGS,
        f"--user-data-dir={profile}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode != 0:
        raise SystemExit(f"chromium exited with {proc.returncode}")
    return out


async def main(out: Path) -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("needs Debian's Chromium: apt-get install chromium", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work, tempfile.TemporaryDirectory() as profile:
        async with live_session(Path(work)) as session:
            await session.until(lambda: bool(session.tap.of(SLUpdated)), "a protected position", tries=300)
            page = f"{session.url}/?token={TOKEN}"
            # The stream never ends, so Chromium is given (virtual) time to load, connect and redraw, then dumps.
            dom = (await _chromium(chromium, profile, "--virtual-time-budget=4000", "--dump-dom", page)).decode()
            for name, size in (("desktop", "1280,900"), ("phone", "412,915")):
                shot = out / f"control-{name}.png"
                await _chromium(
                    chromium,
                    profile,
                    f"--window-size={size}",
                    "--virtual-time-budget=4000",
                    f"--screenshot={shot}",
                    page,
                )
                print(f"screenshot: {shot}")
    (out / "control-dom.html").write_text(dom)
    rows = PageRows(dom)
    positions, feeds = rows.tables.get("position", {}), rows.tables.get("feed", {})
    problems = []
    if list(positions) != ["binanceusdm BTC/USDT:USDT"]:
        problems.append(f"position rows: {positions}")
    if feeds.get("binanceusdm BTC/USDT:USDT 1s", [None, None])[1] != "ok":
        problems.append(f"feed rows: {feeds}")
    if '<span id="conn">live</span>' not in dom:
        problems.append("the page never connected to the live stream")
    for problem in problems:
        print(f"page check failed: {problem}", file=sys.stderr)
    if not problems:
        cells = next(iter(positions.values()))
        print(f"page shows position {cells[:7]} and feed {next(iter(feeds.values()))[:4]}, stream live")
    return 1 if problems else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/control", help="folder for screenshots and the DOM")
    sys.exit(asyncio.run(main(Path(parser.parse_args().out))))

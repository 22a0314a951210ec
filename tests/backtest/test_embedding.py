"""The README's embedding example, run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"


def _example() -> str:
    section = README.read_text().split("### Embedding", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no python block under 'Embedding' in README.md"
    return match.group(1)


def test_the_readme_embedding_example_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / "embed.py").write_text(_example())
    result = subprocess.run(
        [sys.executable, "embed.py"], cwd=tmp_path, capture_output=True, text=True, timeout=55, check=False
    )
    assert result.returncode == 0, result.stderr
    paper, side, live = result.stdout.splitlines()
    trades, closes = re.fullmatch(r"paper: (\d+) trades, net PnL -?[\d,]+\.\d\d, (\d+) closes seen", paper).groups()  # type: ignore[union-attr]
    assert int(trades) > 100
    assert int(closes) in (int(trades), int(trades) - 1)  # the last one may still be open at the end
    counts = re.fullmatch(r"side by side: (\d+) trades, (\d+) trades, (\d+) trades", side).groups()  # type: ignore[union-attr]
    assert int(counts[0]) > int(counts[1]) > int(counts[2]) > 0  # faster averages trade more: separate kernels
    assert re.fullmatch(r"live: [1-9]\d* order\(s\) filled on the loopback venue", live)
    assert (tmp_path / "demo-live" / "events.tws").is_file()

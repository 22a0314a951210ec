"""`[control]`, `[alerts]` and the `[risk]` limits: defaults off, bad values refused in one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from twinstar import Config
from twinstar.clock import SimClock
from twinstar.config import ConfigError, ControlConfig
from twinstar.control import operations_components
from twinstar.control.auth import control_token


def test_everything_is_off_by_default() -> None:
    assert operations_components(Config(), SimClock(), []) == []


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[control]\nenabled = true\nhost = "0.0.0.0"',
            "control.host '0.0.0.0' is not loopback: set control.token_env",
        ),
        ('[control]\nenabled = true\nhost = "bot.example.org"', "is not loopback"),
        ("[control]\nport = 70000", r"control.port must be in \[0, 65535\], not 70000"),
        ("[control]\npoll_interval_s = 0", "control.poll_interval_s and control.push_interval_s must be positive"),
        ("[risk]\nmax_orders_per_minute = -1", r"risk kill-switch limits .* must be 0 \(off\) or more"),
        ("[risk]\nmax_notional_total = -5.0", r"risk kill-switch limits .* must be 0 \(off\) or more"),
        ('[alerts]\ntelegram_token_env = "T"', "alerts.telegram_chat_id is needed"),
        ('[alerts]\nwebhook_url = "ftp://x"', "is not an http"),
        ("[alerts]\nmax_per_minute = 0", "alerts.max_per_minute, alerts.queue_size must be at least 1"),
        ('[control]\ntoken = "abc"', "unknown field `token`"),  # a token never sits in a file
    ],
)
def test_bad_values_are_refused_with_one_line(toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Config.from_toml(toml)
    assert "\n" not in str(caught.value)


def test_loopback_hosts_need_no_token_and_others_start_only_with_one() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        assert Config.from_toml(f'[control]\nenabled = true\nhost = "{host}"').control.host == host
    remote = Config.from_toml('[control]\nenabled = true\nhost = "0.0.0.0"\ntoken_env = "TW_REMOTE_TOKEN"')
    os.environ.pop("TW_REMOTE_TOKEN", None)
    with pytest.raises(ConfigError, match="environment variable TW_REMOTE_TOKEN"):
        operations_components(remote, SimClock(), [])
    os.environ["TW_REMOTE_TOKEN"] = "short"
    with pytest.raises(ConfigError, match="must hold 16\\+ characters"):
        control_token(remote.control)
    os.environ["TW_REMOTE_TOKEN"] = "a-long-enough-remote-token"
    assert control_token(remote.control) == "a-long-enough-remote-token"
    assert control_token(ControlConfig()) == ""


def test_each_part_comes_only_when_asked_for() -> None:
    def names(toml: str) -> list[str]:
        return [type(part).__name__ for part in operations_components(Config.from_toml(toml), SimClock(), [])]

    assert names("[risk]\nmax_daily_loss = 100.0") == ["RiskMonitor"]
    assert names('[alerts]\nwebhook_url = "http://127.0.0.1:1/hook"') == ["Alerts"]
    assert names("[control]\nenabled = true\nport = 0") == ["StatusModel", "Metrics", "ControlServer"]
    assert names("[control]\nenabled = true\nport = 0\nmetrics = false") == ["StatusModel", "ControlServer"]


def test_a_port_in_use_is_refused_before_the_kernel_starts() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config = Config.from_toml(f"[control]\nenabled = true\nport = {port}")
        with pytest.raises(
            ConfigError, match=f"control plane cannot listen on 127.0.0.1:{port}: Address already in use"
        ):
            operations_components(config, SimClock(), [])


def test_a_kernel_without_it_never_imports_it(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from twinstar import Config\n"
        "from twinstar.clock import LiveClock\n"
        "from twinstar.live import live_components\n"
        "import twinstar.cli, twinstar.session\n"
        'config = Config.from_toml(\'symbols = ["BTC/USDT:USDT"]\\n[exchange]\\nid = "binanceusdm"\\n'
        'api_base_url = "http://127.0.0.1:9"\\n[journal]\\ndir = "state"\')\n'
        "parts = live_components(config, LiveClock(), run_dir=__import__('pathlib').Path('run'))\n"
        "print(len(parts), sorted(m for m in sys.modules if m.startswith(('twinstar.control', 'prometheus'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    count, imported = done.stdout.split(" ", 1)
    assert int(count) > 3 and imported.strip() == "[]"

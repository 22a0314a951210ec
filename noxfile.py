"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s typecheck`, `nox -s bench`, `nox -s chaos`."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"


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
    session.install("-e", ".[bench,nautilus]")
    for script in sorted(Path("bench").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs)


@nox.session
def chaos(session: nox.Session) -> None:
    """SIGKILL a live kernel 200 times across its order lifecycle, then 1,000 ambiguous timeouts (loopback)."""
    session.install("-e", ".")
    args = session.posargs or ["--kills", "200", "--timeouts", "1000"]
    session.run("python", "bench/chaos.py", *args)

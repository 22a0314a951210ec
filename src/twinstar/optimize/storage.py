"""Which Optuna storage a study lives in; every worker on every machine opens the same one.

Only storages that run without threads: an RDB URL (`sqlite:///study.db`,
`postgresql://...`; no heartbeat, which would start a thread) or a journal
file (`journal:PATH` or a plain path; file locks, one host or a shared
filesystem). Optuna's gRPC proxy runs a thread pool and is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

# SQLite serialises writers: a worker waits this long for another's write instead of failing.
_SQLITE_BUSY_S = 60


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Open the storage `url` names (see the module docstring); ValueError when it cannot be."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if url.startswith("grpc://"):
        raise ValueError("--storage: the gRPC proxy runs threads; point every worker at the database itself")
    if "://" in url:
        kwargs = {"connect_args": {"timeout": _SQLITE_BUSY_S}} if url.startswith("sqlite") else {}
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except (ImportError, ValueError) as exc:
            raise ValueError(f"--storage {url}: {exc}") from None
        except Exception as exc:  # SQLAlchemy's errors (bad URL, unreachable server) share no base we can name
            raise ValueError(f"--storage {url}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    path = Path(url.removeprefix("journal:"))
    if not path.parent.is_dir():
        raise ValueError(f"--storage {url}: folder {path.parent} does not exist")
    return JournalStorage(JournalFileBackend(str(path)))

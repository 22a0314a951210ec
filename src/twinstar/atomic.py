"""Crash-safe file replacement: write aside, fsync, rename, fsync the folder.

At any instant of a crash (SIGKILL, power cut) the target path holds either
the previous complete file or the new complete file, never a mix. A leftover
temp file carries `TEMP_MARK` in its name, so readers that look for
``*.parquet`` never see it, and `remove_stale_temps` deletes it at the next
start. Plain synchronous I/O on purpose: the kernel runs no threads, callers
keep each write small instead.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Final

TEMP_MARK: Final = ".tmp-"

# Distinguishes temp files of one process, so two writes in flight never share a name.
_sequence: Final = itertools.count(1)


def temp_path_for(target: Path) -> Path:
    """Return a fresh temp path beside `target` (same folder, so the rename stays atomic)."""
    return target.with_name(f"{target.name}{TEMP_MARK}{os.getpid()}-{next(_sequence)}")


def is_temp(path: Path) -> bool:
    """Whether `path` is an unfinished temp file of `replace_atomically`."""
    return TEMP_MARK in path.name


def fsync_dir(folder: Path) -> None:
    """Make the entries of `folder` (creations, renames) durable."""
    # Windows cannot open a directory; its rename is durable enough once it returns.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(folder: Path) -> None:
    """Create `folder` and any missing parents, durably (each new entry is fsynced)."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        # A file renamed into a folder whose own entry was lost in a crash is lost with it.
        fsync_dir(path.parent)


def replace_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Call `write(temp_path)`, make the result durable, then move it over `target`.

    The temp file is removed if `write` fails; a crash leaves it behind for
    `remove_stale_temps`.
    """
    temp = temp_path_for(target)
    try:
        write(temp)
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the data must be on disk before the name points at it
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)  # the rename itself must survive a power cut


def write_bytes_atomically(target: Path, data: bytes) -> None:
    """Replace `target` with `data` atomically (see `replace_atomically`)."""

    def write(temp: Path) -> None:
        temp.write_bytes(data)

    replace_atomically(target, write)


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temp files a crashed writer left below `folder`; return their paths.

    Only safe while no other process writes below `folder` (storage holds a
    lock on its root for that reason).
    """
    if not folder.exists():
        return []
    stale = sorted(p for p in folder.rglob(f"*{TEMP_MARK}*") if p.is_file())
    for path in stale:
        path.unlink(missing_ok=True)
    return stale

"""Crash-safe file replacement: write aside, fsync, rename, fsync the folder.

At any instant of a crash the target path holds either the previous complete
file or the new complete file, never a mix; a leftover temp file is ignored
by readers and removed by `remove_stale_temps`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

TEMP_MARK = ".tmp-"


def replace_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Call `write(temp_path)`, make it durable, then move it over `target`."""
    temp = target.with_name(f"{target.name}{TEMP_MARK}{os.getpid()}")
    try:
        write(temp)
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself must survive a power cut
    finally:
        os.close(dir_fd)


def remove_stale_temps(folder: Path) -> int:
    """Delete temp files a crashed writer left below `folder`; return how many."""
    stale = [p for p in folder.rglob(f"*{TEMP_MARK}*") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)

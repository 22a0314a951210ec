"""Replay a recorded stream through a fresh kernel: a live recording against what the venue answered."""

from __future__ import annotations

from twinstar.replay.run import ComponentsFactory as ComponentsFactory
from twinstar.replay.run import ReplayDivergedError as ReplayDivergedError
from twinstar.replay.run import ReplaySummary as ReplaySummary
from twinstar.replay.run import replay as replay

__all__ = ["ComponentsFactory", "ReplayDivergedError", "ReplaySummary", "replay"]

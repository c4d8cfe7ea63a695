"""The one failure the engine reports: a job that cannot be simulated."""

from __future__ import annotations


class SimulationError(Exception):
    """A job that cannot be simulated; the message is safe to show the caller
    (it names the input to change and never carries a stack trace)."""


def short(exc: BaseException, limit: int = 300) -> str:
    """An exception as one line of at most ``limit`` characters."""
    text = " ".join(str(exc).split())
    return text[:limit] if text else type(exc).__name__

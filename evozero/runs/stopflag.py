"""This process's stop request: set by a worker's signal handlers, read between the steps
of long work (a network's training), which then gives up so the worker can answer at once
instead of after minutes."""
from __future__ import annotations

_requested = False


class Stopped(Exception):
    """Long work gave up at a stop request; its caller rolls back to its last whole step."""


def request() -> None:
    """Ask long work in this process to stop (one store: safe in a signal handler)."""
    global _requested
    _requested = True


def clear() -> None:
    """Forget a stop request (a process that goes on to other work after one)."""
    global _requested
    _requested = False


def requested() -> bool:
    """Whether a stop was requested."""
    return _requested


def check() -> None:
    """Raise :class:`Stopped` if a stop was requested."""
    if _requested:
        raise Stopped()

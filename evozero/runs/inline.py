"""The in-process backend: a run's islands hosted by this very process.

A study runs many short runs in long-lived worker processes, one run per process at a
time; such a run's islands need no process of their own (and no new compile): an
:class:`InlineBackend` keeps them in a :class:`evozero.runs.workers.WorkerHost` and answers
each command synchronously, inside ``send``. It offers the calls of the other backends.
A stop request (Ctrl-C, SIGTERM) reaches long work through :mod:`evozero.runs.stopflag`,
which the run sets from its signal handler (:attr:`evozero.runs.flow.Run.inline`).
"""
from __future__ import annotations

import time
from collections import deque

from evozero.runs import stopflag
from evozero.runs.messages import Command, Reply
from evozero.runs.workers import WorkerHost


class InlineBackend:
    """One worker: this process (see the module docstring)."""

    workers = 1

    def __init__(self) -> None:
        self.host = WorkerHost()
        self._replies: deque[Reply] = deque()
        stopflag.clear()   # a stop request of an earlier run in this process is spent

    def send(self, worker: int, command: Command) -> None:
        """Carry out ``command`` now; its reply comes through :meth:`receive`."""
        self._replies.append(self.host.handle_safely(command))

    def receive(self, timeout: float) -> list[tuple[int, Reply | None]]:
        """The replies of the commands sent since the last call (waits ``timeout`` s when
        there are none: then nothing is in flight)."""
        if not self._replies:
            time.sleep(timeout)
            return []
        replies: list[tuple[int, Reply | None]] = [(0, reply) for reply in self._replies]
        self._replies.clear()
        return replies

    def death(self, worker: int) -> str:
        """This process never dies as a worker: an error reply stops the run first."""
        return "failed"

    def restart(self, worker: int) -> None:
        """Start over with an empty host (its islands reopen from their snapshots)."""
        self.host = WorkerHost()
        self._replies.clear()

    def interrupt(self) -> None:
        """Ask long work in this process to give up."""
        stopflag.request()

    def close(self) -> None:
        """Forget the islands."""
        self.host.islands.clear()
        self._replies.clear()

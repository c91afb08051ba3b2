"""The Ray backend: the same worker host as the local backend, as Ray actors.

``backend: ray`` with no ``address`` starts a local Ray; ``address: auto`` (or
``host:port``, or ``ray://host:10001``) joins a running cluster, whose nodes get the
``evozero`` and ``ops`` packages shipped with the job. Each worker is an actor holding a
:class:`evozero.runs.workers.WorkerHost`; commands are actor calls, which Ray runs in the
order they were sent, and a dead actor is replaced like a dead process. Ray cannot
interrupt an actor's command: a stopping run ends busy actors at its deadline instead, and
their islands keep their last snapshots.
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evozero.errors import EvozeroError
from evozero.runs.messages import Command, Reply
from evozero.runs.workers import WorkerHost

_INSTALL = 'pip install "evozero[ray]"'


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise EvozeroError(f"backend: ray needs Ray, which is not installed; install it with "
                           f"{_INSTALL}, or use backend: local") from None
    return ray


def connect(address: str | None) -> Any:
    """Ray, initialised: a new local instance (no address) or the cluster at ``address``."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    options: dict[str, Any] = {"include_dashboard": False, "configure_logging": False,
                               "log_to_driver": False}
    if address is not None:
        # Nodes of a cluster may not have this checkout: ship both packages with the job
        # (by folder: this module sits below the package it would otherwise import).
        root = Path(__file__).resolve().parents[2]
        options["runtime_env"] = {"py_modules": [str(root / "evozero"), str(root / "ops")]}
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise EvozeroError(f"address: cannot reach a Ray cluster at {address!r} ({error}); "
                           f"start one with `ray start --head` (and `ray start --address "
                           f"HEAD:6379` on the other machines), or remove address to start "
                           f"a local Ray") from None
    return ray


def cluster_cpus(address: str | None) -> int:
    """CPUs of the Ray cluster at ``address`` (of this machine for a local Ray)."""
    ray = connect(address)
    return max(int(ray.cluster_resources().get("CPU", 1)), 1)


class _Actor:
    """A worker host living in a Ray actor."""

    def __init__(self, make_host: Callable[[], Any]) -> None:
        self.host = make_host()

    def handle(self, command: Command) -> Reply:
        return self.host.handle_safely(command)


class RayBackend:
    """Workers as Ray actors, one CPU each (see the module docstring)."""

    def __init__(self, workers: int, address: str | None,
                 make_host: Callable[[], Any] = WorkerHost) -> None:
        self.ray = connect(address)
        self.make_host = make_host   # what an actor serves with (a study: its runs)
        self._started_here = address is None
        self.workers = workers
        self._actor_class = self.ray.remote(num_cpus=1, max_restarts=0)(_Actor)
        self._actors = [self._actor_class.remote(make_host) for _ in range(workers)]
        self._pending: dict[Any, tuple[int, int]] = {}   # reply ref -> (worker, sequence)
        self._sequence = itertools.count()
        self._deaths: dict[int, str] = {}

    def send(self, worker: int, command: Command) -> None:
        """Send a command (an actor call); its reply comes through :meth:`receive`."""
        ref = self._actors[worker].handle.remote(command)
        self._pending[ref] = (worker, next(self._sequence))

    def receive(self, timeout: float) -> list[tuple[int, Reply | None]]:
        """Replies that arrived within ``timeout`` s, in the order they were asked for; a
        None reply means the worker's actor died."""
        ray = self.ray
        if not self._pending:
            time.sleep(timeout)
            return []
        refs = list(self._pending)
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if not ready:
            return []
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        replies: list[tuple[int, Reply | None]] = []
        dead: set[int] = set()
        for ref in sorted(ready, key=lambda r: self._pending[r][1]):
            worker, _ = self._pending.pop(ref)
            if worker in dead:
                continue
            try:
                reply = ray.get(ref)
            except ray.exceptions.RayError as error:
                self._deaths[worker] = f"lost its Ray actor ({type(error).__name__})"
                dead.add(worker)
                continue
            replies.append((worker, reply))
            if reply["kind"] == "error":
                self._deaths[worker] = "stopped after an error"
                dead.add(worker)
        replies.extend((worker, None) for worker in sorted(dead))
        return replies

    def death(self, worker: int) -> str:
        """How a worker ended, for the message to the user."""
        return self._deaths.pop(worker, "died")

    def restart(self, worker: int) -> None:
        """Replace a worker's actor by a new one."""
        self._pending = {ref: owner for ref, owner in self._pending.items()
                         if owner[0] != worker}
        self.ray.kill(self._actors[worker], no_restart=True)
        self._actors[worker] = self._actor_class.remote(self.make_host)

    def interrupt(self, signum: int | None = None) -> None:
        """Nothing to do: Ray runs an actor's command to its end (see the module
        docstring)."""

    def close(self) -> None:
        """Stop every actor, and the local Ray this backend started."""
        for actor in self._actors:
            self.ray.kill(actor, no_restart=True)
        self._pending.clear()
        if self._started_here:
            self.ray.shutdown()

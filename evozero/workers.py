"""Workers host islands; backends carry commands to them and replies back.

A worker is a :class:`WorkerHost`: it keeps the islands the main process opened on it and
answers one command at a time with plain data. The local backend runs each host in a
process of its own (package ``multiprocess``, explicit start method) behind a pipe; the
Ray backend (:mod:`evozero.ray_backend`) runs the same host as a Ray actor. Both offer the
same four calls: ``send``, ``receive``, ``restart``, ``close``.

Commands are dicts with a ``kind``:

- ``open`` (``spec``, ``snapshot``): build an island, from a snapshot if given;
- ``advance`` (``island``, ``seconds``, ``arrivals``): take in migrants and evolve;
- ``snapshot`` (``island``): the island's whole state;
- ``finish`` (``island``): its result, and forget it.
"""
from __future__ import annotations

import os
import signal
import traceback
from collections import deque
from typing import Any, Optional

from evozero.island import Island, IslandSpec
from evozero.nas.island import NasIsland


def make_island(spec: IslandSpec, snapshot: Optional[dict[str, Any]] = None
                ) -> Island | NasIsland:
    """The island ``spec`` describes: a cell search when its config has a nas section,
    a program search otherwise."""
    kind = NasIsland if spec.config.nas is not None else Island
    return kind(spec, snapshot)


class WorkerHost:
    """The islands of one worker and the command handler (see the module docstring)."""

    def __init__(self) -> None:
        self.islands: dict[int, Island | NasIsland] = {}

    def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        """Carry out one command; returns its reply."""
        kind = command["kind"]
        if kind == "open":
            island = make_island(command["spec"], command.get("snapshot"))
            self.islands[command["spec"].island] = island
            return island.opened()
        island = self.islands[command["island"]]
        if kind == "advance":
            return island.advance(command["seconds"], command.get("arrivals"))
        if kind == "snapshot":
            return {"kind": "snapshot", "island": command["island"],
                    "snapshot": island.snapshot()}
        if kind == "finish":
            del self.islands[command["island"]]
            return {"kind": "finish", "island": command["island"], "result": island.result()}
        raise ValueError(f"unknown command {kind!r}")

    def handle_safely(self, command: dict[str, Any]) -> dict[str, Any]:
        """:meth:`handle`, with an exception turned into an ``error`` reply."""
        try:
            return self.handle(command)
        except Exception:  # reported to the main process, which restarts the worker
            return {"kind": "error", "island": command.get("island"),
                    "error": traceback.format_exc()}


def serve(connection: Any, main_end: Any = None) -> None:
    """A worker process's loop: commands in, replies out, until None, an error, or the
    main process is gone."""
    # Ctrl-C reaches the whole process group; the main process stops workers itself,
    # after their islands' snapshots are saved.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if main_end is not None:
        main_end.close()   # a forked copy of the main process's end would hide its death
    main = os.getppid()
    host = WorkerHost()
    while True:
        try:
            while not connection.poll(1.0):
                if os.getppid() != main:   # the main process died (e.g. SIGKILL)
                    return
            command = connection.recv()
        except (EOFError, OSError):
            return
        if command is None:
            return
        reply = host.handle_safely(command)
        try:
            connection.send(reply)
        except OSError:  # the main process is gone
            return
        if reply["kind"] == "error":
            return


def start_method() -> str:
    """fork where the platform has it (workers inherit the compiled kernels), else spawn."""
    import multiprocess
    return "fork" if "fork" in multiprocess.get_all_start_methods() else "spawn"


class LocalBackend:
    """One worker process per core of this machine, each behind a pipe.

    A worker has at most one command in flight; later ones wait here. Otherwise a large
    command (migrants) and a large reply (emigrants) could fill the pipe both ways at
    once, each side blocked writing while the other does not read.
    """

    def __init__(self, workers: int) -> None:
        import multiprocess
        self.context = multiprocess.get_context(start_method())
        self.workers = workers
        self._processes: list[Any] = [None] * workers
        self._connections: list[Any] = [None] * workers
        self._waiting: list[deque] = [deque() for _ in range(workers)]
        self._in_flight = [False] * workers
        for worker in range(workers):
            self._start(worker)

    def _start(self, worker: int) -> None:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=serve, args=(child, parent), daemon=True,
                                       name=f"evozero-worker-{worker + 1}")
        process.start()
        child.close()
        self._processes[worker] = process
        self._connections[worker] = parent

    def send(self, worker: int, command: dict[str, Any]) -> None:
        """Send a command (now, or after the worker's reply to the one in flight)."""
        self._waiting[worker].append(command)
        self._next(worker)

    def _next(self, worker: int) -> None:
        if self._in_flight[worker] or not self._waiting[worker]:
            return
        try:
            self._connections[worker].send(self._waiting[worker].popleft())
            self._in_flight[worker] = True
        except (OSError, ValueError):
            pass  # the worker is gone: receive() reports it

    def receive(self, timeout: float) -> list[tuple[int, Optional[dict[str, Any]]]]:
        """Replies that arrived within ``timeout`` s; a None reply means the worker died."""
        from multiprocess.connection import wait
        by_handle = {}
        for worker, (process, connection) in enumerate(zip(self._processes,
                                                           self._connections)):
            by_handle[connection] = worker
            by_handle[process.sentinel] = worker
        replies: list[tuple[int, Optional[dict[str, Any]]]] = []
        dead: set[int] = set()
        for handle in wait(list(by_handle), timeout):
            worker = by_handle[handle]
            connection = self._connections[worker]
            if worker in dead:
                continue
            # Replies already sent count even if the process died right after.
            failed = False
            while True:
                try:
                    if not connection.poll():
                        break
                    reply = connection.recv()
                except (EOFError, OSError):
                    break
                replies.append((worker, reply))
                failed = failed or reply["kind"] == "error"
                self._in_flight[worker] = False
                if not failed:
                    self._next(worker)
            if failed or not self._processes[worker].is_alive():
                dead.add(worker)
        replies.extend((worker, None) for worker in sorted(dead))
        return replies

    def death(self, worker: int) -> str:
        """How a worker ended, for the message to the user."""
        process = self._processes[worker]
        process.join(timeout=5)
        code = process.exitcode
        if code is None:
            return "stopped answering"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exited with code {code}"

    def restart(self, worker: int) -> None:
        """Replace a dead worker by a fresh process."""
        process = self._processes[worker]
        if process.is_alive():
            process.kill()
        process.join(timeout=5)
        self._connections[worker].close()
        self._waiting[worker].clear()
        self._in_flight[worker] = False
        self._start(worker)

    def close(self) -> None:
        """Stop every worker."""
        for worker, connection in enumerate(self._connections):
            if self._in_flight[worker]:
                self._processes[worker].kill()   # its reply is not wanted any more
            else:
                try:
                    connection.send(None)
                except (OSError, ValueError):
                    pass
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        for connection in self._connections:
            connection.close()


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1

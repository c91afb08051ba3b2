"""Workers host islands; backends carry commands to them and replies back.

A worker is a :class:`WorkerHost`: it keeps the islands the main process opened on it and
answers one command at a time with plain data. The local backend runs each host in a
process of its own (package ``multiprocess``, explicit start method) behind a pipe; the
Ray backend (:mod:`evozero.runs.ray_backend`) runs the same host as a Ray actor. Both offer the
same calls: ``send``, ``receive``, ``death``, ``restart``, ``interrupt``, ``close``.

Commands and replies are the dicts :mod:`evozero.runs.messages` declares: ``open``
builds the island class its spec names (from a snapshot if given), ``advance`` takes in
migrants and searches, ``snapshot`` sends the island's whole state, ``finish`` its result
(and forgets it).

An exception in a command becomes an ``error`` reply saying what failed: an island replays
its commands exactly from a snapshot, so such an error would only recur, and the run stops
with it. Only deaths from outside (a signal, a lost process, silence) are retried.

Faults a local worker survives or reports (see :func:`serve`): it sends a heartbeat every
quarter of ``EVOZERO_HEARTBEAT_SECONDS`` (default 30) from a thread of its own, so a long
but healthy command keeps it alive while a stopped or hung one is ended and its islands
restart from their snapshots; it dies with the main process (``PR_SET_PDEATHSIG`` on Linux,
and a watch of its parent); SIGUSR1 from the main process asks long work to give up
(:mod:`evozero.runs.stopflag`); SIGTERM does the same and then ends the worker.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from evozero.errors import EvozeroError
from evozero.runs import stopflag
from evozero.runs.island import IslandBase
from evozero.runs.messages import Command, ErrorReply, Reply

HEARTBEAT_VARIABLE = "EVOZERO_HEARTBEAT_SECONDS"
# Seconds a forked worker may take to read a command (it waits for it, idle; a spawned
# one may still be importing, and gets the whole heartbeat interval).
_SEND_SECONDS = 5.0
# Seconds a worker told to stop by SIGTERM still answers snapshot requests (the main
# process, if it got the signal too, takes its checkpoint in that time).
_TERMINATE_GRACE = 5.0


def heartbeat_seconds() -> float:
    """Silence after which a worker counts as dead (``EVOZERO_HEARTBEAT_SECONDS``)."""
    text = os.environ.get(HEARTBEAT_VARIABLE, "30")
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise EvozeroError(f"{HEARTBEAT_VARIABLE}: must be a number of seconds > 0, "
                           f"got {text!r}")
    return value


_DOING = {"open": "opening", "advance": "evolving", "snapshot": "taking its snapshot",
          "finish": "finishing"}


def _command_island(command: Command) -> int:
    """The island ``command`` is for (an open names it in its spec)."""
    return command["spec"].island if command["kind"] == "open" else command["island"]


def error_reply(command: Command, error: BaseException) -> ErrorReply:
    """The ``error`` reply for ``error`` raised by ``command``: a message for the user and,
    when the fault is evozero's own rather than the input's (``user`` False), its
    traceback and where it was raised."""
    island = _command_island(command)
    doing = _DOING.get(command["kind"], "answering")
    if isinstance(error, EvozeroError):
        return {"kind": "error", "island": island, "user": True, "doing": doing,
                "error": str(error)}
    if isinstance(error, MemoryError):
        return {"kind": "error", "island": island, "user": True, "doing": doing,
                "error": f"out of memory ({error or 'MemoryError'}); lower population_size, "
                         f"the task counts or sizes, or workers"}
    frame = traceback.extract_tb(error.__traceback__)[-1]
    return {"kind": "error", "island": island, "user": False, "doing": doing,
            "error": f"{type(error).__name__}: {error} (at {frame.filename}:{frame.lineno}, "
                     f"in {frame.name})",
            "traceback": "".join(traceback.format_exception(error))}


def job_error_reply(reply: dict[str, Any], error: Exception) -> dict[str, Any]:
    """A job host's ``error`` reply (a study's runs, a table's trainings): ``reply``'s
    fields with the message; ``user`` False, with the traceback, when the fault is
    evozero's own rather than the input's."""
    if isinstance(error, EvozeroError):
        return {**reply, "kind": "error", "user": True, "error": str(error)}
    return {**reply, "kind": "error", "user": False,
            "error": f"{type(error).__name__}: {error}",
            "traceback": "".join(traceback.format_exception(error))}


class WorkerHost:
    """The islands of one worker and the command handler (see the module docstring)."""

    def __init__(self) -> None:
        self.islands: dict[int, IslandBase] = {}

    def handle(self, command: Command) -> Reply:
        """Carry out one command; returns its reply."""
        if command["kind"] == "open":
            spec = command["spec"]
            opened = spec.island_class(spec, command.get("snapshot"))
            self.islands[spec.island] = opened
            return opened.opened()
        island = self.islands[command["island"]]
        if command["kind"] == "advance":
            return island.advance(command["seconds"], command.get("arrivals"))
        if command["kind"] == "snapshot":
            return {"kind": "snapshot", "island": command["island"],
                    "snapshot": island.snapshot()}
        if command["kind"] == "finish":
            del self.islands[command["island"]]
            return {"kind": "finish", "island": command["island"], "result": island.result()}
        raise ValueError(f"unknown command {command['kind']!r}")

    def handle_safely(self, command: Command) -> Reply:
        """:meth:`handle`, with an exception turned into an ``error`` reply and long work
        given up at a stop request into a ``stopped`` one (the island is then dropped:
        its state is no longer whole, and its last snapshot stands)."""
        try:
            return self.handle(command)
        except stopflag.Stopped:
            # An open stopped mid-way never added its island.
            island = _command_island(command)
            self.islands.pop(island, None)
            return {"kind": "stopped", "island": island}
        except Exception as error:  # reported to the main process, which stops the run
            return error_reply(command, error)


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies, even mid-command (Linux;
    elsewhere the worker's parent watch ends it when it next waits for a command). The
    kernel watches the thread that started the worker, so backends start workers from
    the thread that runs the run, never from a short-lived one."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:   # it died before the request was in place
        os._exit(1)


class _Terminate:
    """When a worker told to stop by SIGTERM ends (None: not told)."""

    by: float | None = None

    @classmethod
    def on_signal(cls, signum: int, frame: Any) -> None:
        stopflag.request()
        cls.by = time.monotonic() + _TERMINATE_GRACE


def _on_stop_request(signum: int, frame: Any) -> None:
    stopflag.request()


def _beat(connection: Any, lock: threading.Lock, every: float) -> None:
    # A thread of its own: kernels release the GIL, so it beats through long commands,
    # and falls silent only when the whole process is stopped or hung.
    while True:
        time.sleep(every)
        try:
            with lock:
                connection.send({"kind": "heartbeat"})
        except (OSError, ValueError):
            return


def serve(connection: Any, main_end: Any = None, parent: int | None = None,
          make_host: Callable[[], Any] = WorkerHost) -> None:
    """A worker process's loop: commands in, replies out (by the host ``make_host``
    makes, whose ``handle_safely`` answers a command), until None, an error, the end of a
    SIGTERM's grace, or the main process is gone."""
    main = parent if parent is not None else os.getppid()
    die_with_parent(main)
    # Ctrl-C and a terminal's hangup reach the whole process group; the main process
    # stops workers itself, after their islands' snapshots are saved.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # A fork inherits the main process's handler, which would ignore SIGTERM here.
    signal.signal(signal.SIGTERM, _Terminate.on_signal)
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, _on_stop_request)
    if main_end is not None:
        main_end.close()   # a forked copy of the main process's end would hide its death
    lock = threading.Lock()
    threading.Thread(target=_beat, args=(connection, lock, heartbeat_seconds() / 4),
                     daemon=True).start()
    host = make_host()
    while True:
        try:
            while not connection.poll(0.2):
                if os.getppid() != main:   # the main process died (e.g. SIGKILL)
                    return
                if _Terminate.by is not None and time.monotonic() > _Terminate.by:
                    _end_by_sigterm()
            command = connection.recv()
        except (EOFError, OSError):
            return
        if command is None:
            return
        if _Terminate.by is not None and command["kind"] != "snapshot":
            _end_by_sigterm()
        reply = host.handle_safely(command)
        try:
            with lock:
                connection.send(reply)
        except OSError:  # the main process is gone
            return
        if reply["kind"] == "error":
            return
        if reply["kind"] == "stopped" and _Terminate.by is not None:
            _end_by_sigterm()   # it dropped an island: end now, the island restarts


def _end_by_sigterm() -> None:
    # Die of the signal itself, so the main process reports how the worker ended.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(60)   # the signal ends the process first


def start_method() -> str:
    """fork where the platform has it (workers inherit the compiled kernels), else spawn."""
    import multiprocess
    return "fork" if "fork" in multiprocess.get_all_start_methods() else "spawn"


class LocalBackend:
    """One worker process per core of this machine, each behind a pipe.

    A worker has at most one command in flight; later ones wait here. Otherwise a large
    command (migrants) and a large reply (emigrants) could fill the pipe both ways at
    once, each side blocked writing while the other does not read. A worker silent for
    :func:`heartbeat_seconds` is killed and reported dead.
    """

    def __init__(self, workers: int, make_host: Callable[[], Any] = WorkerHost) -> None:
        import multiprocess
        self.context = multiprocess.get_context(start_method())
        self.workers = workers
        self.make_host = make_host   # what a worker serves with (a study: its runs)
        self.heartbeat = heartbeat_seconds()
        self._send_seconds = self.heartbeat if start_method() == "spawn" \
            else min(self.heartbeat, _SEND_SECONDS)
        self._processes: list[Any] = [None] * workers
        self._connections: list[Any] = [None] * workers
        self._waiting: list[deque] = [deque() for _ in range(workers)]
        self._in_flight = [False] * workers
        self._heard = [0.0] * workers           # when each worker was last heard from
        self._deaths: dict[int, str] = {}       # how a worker ended, when known here
        self._received = time.monotonic()       # when receive() last looked
        for worker in range(workers):
            self._start(worker)

    def _start(self, worker: int) -> None:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=serve,
                                       args=(child, parent, os.getpid(), self.make_host),
                                       daemon=True, name=f"evozero-worker-{worker + 1}")
        process.start()
        child.close()
        self._processes[worker] = process
        self._connections[worker] = parent
        self._heard[worker] = time.monotonic()

    def send(self, worker: int, command: Command) -> None:
        """Send a command (now, or after the worker's reply to the one in flight)."""
        self._waiting[worker].append(command)
        self._next(worker)

    def _next(self, worker: int) -> None:
        if self._in_flight[worker] or not self._waiting[worker]:
            return
        # A stopped worker does not read: past the time a healthy one needs, end it, so
        # the send fails instead of blocking this process.
        timer = threading.Timer(self._send_seconds, self._silenced,
                                args=(worker, self._processes[worker], self._send_seconds))
        timer.start()
        try:
            self._connections[worker].send(self._waiting[worker].popleft())
            self._in_flight[worker] = True
        except (OSError, ValueError):
            pass  # the worker is gone: receive() reports it
        finally:
            timer.cancel()

    def _silenced(self, worker: int, process: Any, seconds: float) -> None:
        if process.is_alive():
            self._deaths[worker] = (f"did not answer for {seconds:g} s (stopped or hung) "
                                    f"and was ended")
            process.kill()

    def receive(self, timeout: float) -> list[tuple[int, Reply | None]]:
        """Replies that arrived within ``timeout`` s; a None reply means the worker died
        (or fell silent and was ended)."""
        from multiprocess.connection import wait
        by_handle = {}
        for worker, (process, connection) in enumerate(zip(self._processes,
                                                           self._connections)):
            by_handle[connection] = worker
            by_handle[process.sentinel] = worker
        now = time.monotonic()
        if now - self._received > self.heartbeat / 2:
            # This process was away (stopped itself, or busy): the silence is its own.
            self._heard = [now] * self.workers
        replies: list[tuple[int, Reply | None]] = []
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
                self._heard[worker] = time.monotonic()
                if reply["kind"] == "heartbeat":
                    continue
                replies.append((worker, reply))
                failed = failed or reply["kind"] == "error"
                self._in_flight[worker] = False
                if not failed:
                    self._next(worker)
            if failed or not self._processes[worker].is_alive():
                dead.add(worker)
        self._received = now = time.monotonic()
        for worker, heard in enumerate(self._heard):
            if worker not in dead and now - heard > self.heartbeat:
                self._silenced(worker, self._processes[worker], self.heartbeat)
                dead.add(worker)
        replies.extend((worker, None) for worker in sorted(dead))
        return replies

    def death(self, worker: int) -> str:
        """How a worker ended, for the message to the user."""
        process = self._processes[worker]
        process.join(timeout=5)
        if worker in self._deaths:
            return self._deaths.pop(worker)
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

    def interrupt(self, signum: int | None = None) -> None:
        """Ask every worker's long work to give up (SIGUSR1), so it answers soon; or send
        ``signum`` (a study's workers stop their runs on SIGINT)."""
        if signum is None and not hasattr(signal, "SIGUSR1"):
            return
        for process in self._processes:
            if process.is_alive():
                try:
                    os.kill(process.pid, signum if signum is not None else signal.SIGUSR1)
                except ProcessLookupError:
                    pass

    def close(self) -> None:
        """Stop every worker: idle ones are told to, busy ones killed, and any still
        there after two seconds killed too."""
        for worker, connection in enumerate(self._connections):
            if self._in_flight[worker]:
                self._processes[worker].kill()   # its reply is not wanted any more
            else:
                try:
                    connection.send(None)
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + 2.0
        for process in self._processes:
            process.join(timeout=max(deadline - time.monotonic(), 0.0))
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

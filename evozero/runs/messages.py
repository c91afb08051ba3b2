"""The messages between the main process and the islands' workers, declared once.

Every message is a plain dict (it crosses a pipe or Ray as pickled data); these
TypedDicts name its keys. The main process (:mod:`evozero.runs.flow`) sends commands; a
worker (:mod:`evozero.runs.workers`, :mod:`evozero.runs.ray_backend`) answers each with
one reply, built by the island (:class:`evozero.runs.island.IslandBase`) or by the worker
for errors and stops. Local workers also send heartbeats between replies.

A candidate is what a search evolves: a program's text, or a cell's genome.
"""
# Optional keys live in a ``total=False`` subclass: typing.NotRequired is Python 3.11+.
from typing import TYPE_CHECKING, Any, Literal, TypedDict

if TYPE_CHECKING:
    from evozero.runs.island import IslandSpec


# -- commands ---------------------------------------------------------------------------

class OpenCommand(TypedDict):
    """Build the island ``spec`` describes, from ``snapshot`` when there is one."""

    kind: Literal["open"]
    spec: "IslandSpec"
    snapshot: dict[str, Any] | None


class _AdvanceCommandKeys(TypedDict):
    kind: Literal["advance"]
    island: int
    seconds: float


class AdvanceCommand(_AdvanceCommandKeys, total=False):
    """Take in ``arrivals`` (migrants, or None), then search for about ``seconds``."""

    arrivals: dict[str, Any] | None


class SnapshotCommand(TypedDict):
    """Send the island's whole state."""

    kind: Literal["snapshot"]
    island: int


class FinishCommand(TypedDict):
    """Send the island's result, and forget the island."""

    kind: Literal["finish"]
    island: int


Command = OpenCommand | AdvanceCommand | SnapshotCommand | FinishCommand


# -- what replies carry -----------------------------------------------------------------

class _IslandSummaryKeys(TypedDict):

    individuals: int
    train_steps: int
    structure_hits: int
    fingerprint_hits: int
    full_evaluations: int
    hurdle_stops: int
    budget_rejects: int
    saved_train_steps: int
    best: float
    filled: int
    migrants: int
    mean: float
    stdev: float
    kernel_seconds: float


class IslandSummary(_IslandSummaryKeys, total=False):
    """An island's counters (summed over islands by the main process) and its
    population's statistics; an island that ends by itself, whatever the budget (a
    supernet search), also says how far it is: ``progress`` in 0..1."""

    progress: float


class _DiscoveryKeys(TypedDict):
    island: int
    island_individual: int
    island_train_steps: int
    fitness: float
    candidate: str
    select_fitness: float | None


class Discovery(_DiscoveryKeys, total=False):
    """A new best of one island (``select_fitness`` None unless it was checked; a table
    search adds its island's simulated clock, ``search_clock``)."""

    search_clock: float


class _IslandResultKeys(TypedDict):
    candidate: str
    search_fitness: float
    select_fitness: float


class IslandResult(_IslandResultKeys, total=False):
    """An island's best candidate at its end; a cell search adds the best network's
    record and weights as ``details``."""

    details: dict[str, Any]


# -- replies ----------------------------------------------------------------------------

class AdvanceReply(TypedDict):
    """The reply to open and advance: what the island found since its last reply.
    ``evaluations`` holds a cell search's evaluation records (a program search reports
    none); ``emigrants`` is set at a migration point, ``result`` once it finished."""

    kind: Literal["island"]
    island: int
    status: str
    round: int
    events: list[Discovery]
    evaluations: list[dict[str, Any]]
    summary: IslandSummary
    emigrants: dict[str, Any] | None
    result: IslandResult | None


class SnapshotReply(TypedDict):
    """The reply to snapshot."""

    kind: Literal["snapshot"]
    island: int
    snapshot: dict[str, Any]


class FinishReply(TypedDict):
    """The reply to finish."""

    kind: Literal["finish"]
    island: int
    result: IslandResult


class StoppedReply(TypedDict):
    """A stop request ended the command; the island is dropped (its last snapshot
    stands)."""

    kind: Literal["stopped"]
    island: int


class _ErrorReplyKeys(TypedDict):
    kind: Literal["error"]
    island: int | None
    user: bool
    doing: str
    error: str


class ErrorReply(_ErrorReplyKeys, total=False):
    """A command raised: ``error`` for the user; ``user`` False when the fault is
    evozero's own, with its ``traceback``."""

    traceback: str


class Heartbeat(TypedDict):
    """A local worker is alive (sent while it works and while it waits)."""

    kind: Literal["heartbeat"]


Reply = AdvanceReply | SnapshotReply | FinishReply | StoppedReply | ErrorReply

"""The interface a run searches through: :class:`SearchDomain`.

The runs layer (flow, workers, islands, preflight) knows a search only through this
interface; program search (:class:`evozero.domains.ProgramDomain`) and cell search
(:class:`evozero.nas.domain.NasDomain`) implement it, and
:func:`evozero.domains.domain_for` picks one for a config. The command line goes through
the same object for what it shows, exports and plots of a run directory.

Lifecycle of a domain in a run: it is made once from the run's config (a cell search also
holds the config's nas section, which its code is handed instead of reading the config).
A new run (or study arm) first takes the config :meth:`~SearchDomain.settle` returns and
makes its domain from that. Before a run starts, and before a resume,
:meth:`~SearchDomain.check_inputs` reads what the config names and
:func:`evozero.runs.preflight.check_before_start` asks it for its memory parts and then
:meth:`~SearchDomain.check_population`. The flow then calls
:meth:`~SearchDomain.warm_up` once before it starts workers, :meth:`~SearchDomain.describe`
as each experiment begins, and builds every island's spec with
:meth:`~SearchDomain.island_spec` (the spec names the :attr:`~SearchDomain.island_class`
the workers build, and carries the domain's section). Each evaluation record an island
reports becomes an evaluations.jsonl line by :meth:`~SearchDomain.evaluation_line`; a
checkpoint's snapshots are checked by :meth:`~SearchDomain.check_snapshot` before any
worker gets one; when the search ends, :meth:`~SearchDomain.final_result` makes the
final.json record and the lines the run prints.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evozero.config import Config
from evozero.runs.island import IslandBase, IslandSpec
from evozero.runs.rundir import RunDir


class SearchDomain(ABC):
    """What a run searches over: programs or network cells (see the module docstring)."""

    #: The island class the workers build (it travels in the island spec, by name).
    island_class: type[IslandBase]
    #: What its candidates are: ``"programs"`` or ``"cells"`` (network cells), for code
    #: above the domains that treats them differently (a study's records and checks).
    candidates: str

    def __init__(self, config: Config, section: Any = None) -> None:
        self.config = config
        #: The domain's own config section, handed to its islands (None: none).
        self.section = section

    def island_spec(self, island: int, experiment: int, individuals: int,
                    train_steps: int) -> IslandSpec:
        """The spec of island ``island`` (from 0) of ``experiment`` with these budgets
        (-1: none)."""
        return IslandSpec(island=island, experiment=experiment, config=self.config,
                          individuals=individuals, train_steps=train_steps,
                          island_class=self.island_class, section=self.section)

    # -- before a run -----------------------------------------------------------------

    @abstractmethod
    def settle(self, say: Callable[[str], None]) -> Config:
        """The config as a new run keeps it: what it leaves to be measured or recorded
        when a run is created is filled in, so that every worker and every resume uses
        the same values (``say`` tells the user what was measured)."""

    @abstractmethod
    def check_inputs(self) -> None:
        """Read what the config names (task files, data set, device profiles), raising
        EvozeroError for one that would make the run fail later."""

    @abstractmethod
    def island_memory(self, config: Config, local: bool) -> dict[str, int]:
        """Estimated bytes, by part, one island of ``config`` (its own config) needs:
        in the main process (its snapshots) and, when ``local``, in its worker."""

    @abstractmethod
    def run_memory(self, processes: int) -> dict[str, int]:
        """Estimated bytes, by part, the run needs once besides its islands, with
        ``processes`` local processes."""

    @abstractmethod
    def check_population(self) -> None:
        """Check what the run starts from (after the memory check: it makes tasks)."""

    # -- during a run -------------------------------------------------------------------

    @abstractmethod
    def warm_up(self, say: Callable[[str], None]) -> None:
        """Compile or load what the islands run, so that workers start at once; ``say``
        tells the user about a long wait."""

    @abstractmethod
    def describe(self) -> str:
        """What one experiment does, for the line that starts it."""

    @abstractmethod
    def evaluation_line(self, record: dict[str, Any], experiment: int, island: int,
                        seconds: float) -> dict[str, Any]:
        """The evaluations.jsonl line of one evaluation record an island reported."""

    def fitness_problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` as a fitness a checkpoint keeps (None: nothing).
        A program's fitness is a finite number in [0, 1]."""
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not 0.0 <= value <= 1.0:
            return "must be a finite number in [0, 1]"
        return None

    @abstractmethod
    def check_candidate(self, text: Any, where: str) -> None:
        """Raise EvozeroError naming ``where`` unless ``text`` is a candidate of this
        domain's config in its text form (what best.txt holds), as a checkpoint keeps it."""

    @abstractmethod
    def check_snapshot(self, snapshot: Any, config: Config, where: str) -> None:
        """Raise EvozeroError unless ``snapshot`` is one an island of ``config`` (its own
        config) may continue from."""

    @abstractmethod
    def final_result(self, rundir: RunDir, state: Any, seconds: float
                     ) -> tuple[dict[str, Any], list[str]]:
        """The final.json record of a finished search (``state`` the flow's
        :class:`~evozero.runs.flow.RunState`) and the lines the run prints with it."""

    # -- a run directory ----------------------------------------------------------------

    @abstractmethod
    def show(self, rundir: RunDir, history: bool, as_json: bool) -> str:
        """What ``evozero show`` prints for ``rundir`` (its history when asked)."""

    @abstractmethod
    def export(self, rundir: RunDir, path: str, name: str) -> str:
        """Write the run's best as Python to ``path``; returns the line to print."""

    @abstractmethod
    def plot(self, runs: Sequence[tuple[str, SearchDomain]], output: str, x: str,
             compare: bool) -> Path:
        """Draw ``runs`` (each with its domain, this one's first) into ``output``;
        returns the path written."""

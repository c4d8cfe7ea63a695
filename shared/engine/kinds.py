"""Kinds of simulation: which jobs each takes, how each is checked and run.

Today there is one kind, the physics-based lithium-ion cell over time (SPM, SPMe,
DFN under a protocol). An equivalent-circuit model, an impedance spectrum or a pack
is another ``Kind``: one new module with a subclass (its checks, its ``simulate``
returning its own result shape, its catalog entry) and one line in ``KINDS``. The
submit function checks a job with ``check``; the solver process runs it with
``simulate``; neither needs to know which kind it is.

Nothing here imports PyBaMM until a kind is asked to check or run a job.
"""

from __future__ import annotations

from typing import Any, Optional


class Kind:
    """One kind of simulation."""

    name: str = ""

    def accepts(self, job) -> bool:
        raise NotImplementedError

    def check(self, job) -> list[dict[str, str]]:
        """Errors naming each field PyBaMM would reject (``[{"field", "error"}]``)."""
        raise NotImplementedError

    def check_values(self, job) -> list[dict[str, str]]:
        """The checks of the job's numbers alone, for a sweep member whose configuration
        (everything but numbers) ``check`` already accepted."""
        return self.check(job)

    def simulate(self, job, compiled: Optional[bool] = None, segment=None) -> dict[str, Any]:
        """Run one job; a JSON-ready result. Raises ``SimulationError``. With ``segment``
        (``shared.engine.checkpoint.Segment``; a kind whose long jobs run in segments)
        it may return a ``Checkpoint`` instead."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What the catalog lists for this kind."""
        return {}


class Cell(Kind):
    """A physics-based lithium-ion cell (SPM, SPMe, DFN) over time, under one protocol."""

    name = "cell"
    MODEL_NAMES = ("SPM", "SPMe", "DFN", "sodium_ion.BasicDFN")

    def accepts(self, job) -> bool:
        return job.model.name in self.MODEL_NAMES

    def check(self, job):
        from shared.engine import catalog

        return catalog.check(job)

    def check_values(self, job):
        from shared.engine import catalog

        return catalog.check_values(job)

    def simulate(self, job, compiled=None, segment=None):
        from shared.engine import simulate

        return simulate.simulate(job, compiled=compiled, segment=segment)

    def describe(self):
        from shared.engine import catalog

        return catalog.catalog()


from shared.engine.ecm import Ecm  # noqa: E402 - needs Kind above
from shared.engine.impedance import Impedance  # noqa: E402 - needs Kind above
from shared.engine.pack import Battery  # noqa: E402 - needs Kind above

KINDS: tuple[Kind, ...] = (Impedance(), Battery(), Ecm(), Cell())


def kind_of(job) -> Kind:
    for kind in KINDS:
        if kind.accepts(job):
            return kind
    raise ValueError(f"no kind of simulation takes model {job.model.name!r}")


def check(job) -> list[dict[str, str]]:
    return kind_of(job).check(job)


def described() -> dict[str, Any]:
    """The catalog entries of every kind but the cell (whose entry is the catalog's body)."""
    return {kind.name: kind.describe() for kind in KINDS if kind.name != Cell.name}


def check_values(job) -> list[dict[str, str]]:
    return kind_of(job).check_values(job)


def simulate(job, compiled: Optional[bool] = None, segment=None):
    """A result dict, or (with ``segment``, for a study that ran out of its segment's time)
    a ``shared.engine.checkpoint.Checkpoint``."""
    if segment is None:
        return kind_of(job).simulate(job, compiled=compiled)
    return kind_of(job).simulate(job, compiled=compiled, segment=segment)

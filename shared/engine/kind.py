"""What every kind of simulation is: which jobs it takes, how it checks and runs them,
and what the catalog lists for it. Each kind is one subclass in its own module
(``cell``, ``ecm``, ``impedance``, ``battery``), registered in ``kinds.KINDS``."""

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

"""What every protocol is: the part of a job that says how the cell is driven.

A protocol is one class (as PyBaMM's own experiment steps are): its fields are the
job's ``protocol`` object (validated by pydantic at submit), and its methods are
what the engine asks of it, in the order a job meets them:

* ``check``            at submit, the checks that need PyBaMM (the catalog calls it)
* ``cache_shape``      what about it is fixed for a built model (part of the cache key)
* ``prepare``          the static part: parameter values it sets, inputs it adds
* ``timeline``         per job: the solver's stop times, output grid, requested end
* ``solver_options`` / ``solve``   how IDAKLU runs it
* ``completed``        whether the requested protocol ran to its end (notes say why not)
* ``extra_results``    what it adds to a result (an experiment's cycles)

PyBaMM is imported inside the methods, so the submit function can validate the
shape of a job without loading it. A new protocol is one module in this folder
plus one line in ``REGISTERED`` (``shared/engine/protocols/__init__.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import numpy as np

from shared.contract.limits import Strict


@dataclass
class Timeline:
    """Per job: where the solver must stop, where outputs are sampled, the end asked for."""

    t_eval: Optional[Any] = None  # solver stop times (None: the protocol decides, as experiments do)
    t_interp: Optional[np.ndarray] = None  # output grid
    requested_end_s: Optional[float] = None


def output_grid(end_s: float, period_s: Optional[float], max_points: int) -> np.ndarray:
    """Evenly spaced output times from 0 to ``end_s``: every ``period_s``, at most ``max_points``."""
    n = max_points if period_s is None else min(max_points, int(math.floor(end_s / period_s)) + 1)
    return np.linspace(0.0, end_s, max(n, 2))


class Protocol(Strict):
    """Base of every protocol; subclasses declare ``type: Literal["..."]`` and their fields."""

    # Parameters PyBaMM itself controls under this protocol: never input parameters.
    fixed_parameters: ClassVar[tuple[str, ...]] = ()
    # Whether IDAKLU may run precompiled functions for it.
    can_compile: ClassVar[bool] = True
    # Whether PyBaMM needs the full state (no output_variables) and frees it only by gc.
    keeps_full_state: ClassVar[bool] = False

    # -- at submit ------------------------------------------------------------
    def check(self) -> list[dict[str, str]]:
        """Errors PyBaMM would raise for this protocol (``[{"field", "error"}]``)."""
        return []

    # -- planning -------------------------------------------------------------
    def cache_shape(self) -> dict[str, Any]:
        """What a built model of this protocol is specific to (not per-job numbers)."""
        return {"protocol": self.type}

    def prepare(self, static, parameter_values) -> list[str]:
        """Set what this protocol fixes in ``parameter_values`` (and on ``static``);
        return the names of the extra input parameters it feeds per job."""
        return []

    def timeline(self, job, static, inputs: dict[str, float], notes: list[str]) -> Timeline:
        """Per-job solver times; may set per-job ``inputs`` and add ``notes``."""
        return Timeline()

    # -- solving --------------------------------------------------------------
    def solver_options(self, plan) -> dict[str, Any]:
        """IDAKLU options (measured with bench/ against a 1e-9 reference).

        ``suppress_algebraic_error``: IDA's local error test covers the differential
        states (concentrations, temperature); the algebraic ones (potentials) are still
        solved to the Newton tolerance at every step. US06 then needs 42 % fewer steps
        and its max |dV| against the reference drops from 0.022 to 0.002 mV."""
        return {"suppress_algebraic_error": True}

    def solve(self, sim, plan):
        return sim.solve(plan.t_eval, inputs=plan.inputs, t_interp=plan.t_interp)

    # -- result ---------------------------------------------------------------
    def completed(self, solution, termination: str, plan) -> bool:
        """Whether the requested protocol ran to its end (default: to its final time)."""
        return termination == "final time"

    def cut_off_note(self, violations: list[str]) -> Optional[str]:
        """A note when the voltage left the cut-offs (None: no note needed)."""
        return None

    def extra_results(self, solution) -> dict[str, Any]:
        return {}

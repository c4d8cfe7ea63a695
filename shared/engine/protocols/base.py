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
* ``output_period`` / ``series_period``   the output period asked for, and the spacing
  of the series the solver returns (the result thins it to ``outputs.max_points``
  and says so when that coarsens the period asked for)

PyBaMM is imported inside the methods, so the submit function can validate the
shape of a job without loading it. A new protocol is one module in this folder
plus one line in ``REGISTERED`` (``shared/engine/protocols/__init__.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import numpy as np

from shared.contract.limits import LIMITS, Strict

# Two periods closer than this (relative) are the same period.
SAME = 1e-9


@dataclass
class Timeline:
    """Per job: where the solver must stop, where outputs are sampled, the end asked for."""

    t_eval: Optional[Any] = None  # solver stop times (None: the protocol decides, as experiments do)
    t_interp: Optional[np.ndarray] = None  # output grid
    requested_end_s: Optional[float] = None


def output_grid(end_s: float, period_s: Optional[float], max_points: int) -> np.ndarray:
    """Output times from 0 to ``end_s``: at every multiple of ``period_s`` and at ``end_s``
    (the last interval may be shorter); evenly spaced ``max_points`` (at least 2) when
    there is no period or it would take more than ``max_points``."""
    if period_s is not None:
        n = int(math.ceil(end_s / period_s * (1 - SAME)))  # multiples below end_s
        if n + 1 <= max_points:
            return np.append(np.arange(n) * float(period_s), float(end_s))
    return np.linspace(0.0, end_s, max(max_points, 2))


def output_grid_for(job, end_s: float, notes: list[str]) -> np.ndarray:
    """The solver's output grid for a job that runs to ``end_s``: every ``outputs.period_s``
    (up to ``max_output_points`` points: the result thins it to ``outputs.max_points``
    once the real end is known), or ``outputs.max_points`` evenly spaced points."""
    period = job.outputs.period_s
    if period is None:
        return output_grid(end_s, None, job.outputs.max_points)
    cap = int(LIMITS["max_output_points"])
    grid = output_grid(end_s, period, cap)
    spacing = float(grid[1] - grid[0])
    if spacing > period * (1 + SAME):
        notes.append(f"output period coarsened from {period:g} s to {spacing:.6g} s: at most {cap} points "
                     f"(max_output_points) over the requested {end_s:g} s")
    return grid


def uniform_spacing(grid) -> Optional[float]:
    """The spacing of an output grid whose points are evenly spaced but for a shorter
    last interval (None: irregular or no grid)."""
    if grid is None or len(grid) < 2:
        return None
    d = np.diff(np.asarray(grid, dtype=float))
    body = d[:-1] if len(d) > 1 else d
    step = float(body[0])
    if step <= 0 or not np.allclose(body, step, rtol=1e-7, atol=0.0) or d[-1] > step * (1 + 1e-7):
        return None
    return step


class Protocol(Strict):
    """Base of every protocol; subclasses declare ``type: Literal["..."]`` and their fields."""

    # Parameters PyBaMM itself controls under this protocol: never input parameters.
    fixed_parameters: ClassVar[tuple[str, ...]] = ()
    # Whether IDAKLU may run precompiled functions for it.
    can_compile: ClassVar[bool] = True
    # Whether the solver must keep the full state at every output point (no
    # output_variables; freed only by gc). No protocol needs it with PyBaMM 26.
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

    def output_period(self, job) -> Optional[float]:
        """The output period the job asked for (None: none)."""
        return job.outputs.period_s

    def series_period(self, plan) -> Optional[float]:
        """The spacing of the series the solver returns, before the result thins it
        (None: irregular, e.g. a drive cycle's own uneven knots)."""
        return uniform_spacing(plan.t_interp)

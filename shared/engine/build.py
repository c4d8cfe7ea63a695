"""Building a planned configuration into a ``pybamm.Simulation`` with its IDAKLU solver,
kept in the model cache of this process."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

import pybamm

from shared.engine import cache, precompiled
from shared.engine.errors import SimulationError, short
from shared.engine.models import make, model_options

# Solver tolerances: at least as tight as the original service's Casadi solver.
ATOL = 1e-6
RTOL = 1e-6


@dataclass
class Built:
    """A built simulation in the cache, and how it was built."""

    sim: Any
    built_s: float
    compiled: bool = False
    compiled_checked: bool = False

    def settle_compiled(self) -> None:
        """After the first solve: whether the functions really are compiled (a missing
        precompiled library leaves them interpreted)."""
        if self.compiled and not self.compiled_checked:
            self.compiled = precompiled.is_compiled(self.sim)
            self.compiled_checked = True


def build(job, plan, compiled: bool) -> Built:
    t0 = time.perf_counter()
    try:
        model = make(job.model.name, model_options(job))
    except Exception as exc:
        raise SimulationError(f"model.options: PyBaMM rejected the options: {short(exc)}") from exc
    options = plan.protocol.solver_options(plan)
    if plan.protocol.can_compile:
        options["compile"] = compiled
    # a protocol that keeps the full state (experiments) cannot name its outputs up front
    outputs = None if plan.protocol.keeps_full_state else plan.output_variables
    solver = pybamm.IDAKLUSolver(atol=ATOL, rtol=RTOL, output_variables=outputs, options=options)
    sim = pybamm.Simulation(model, parameter_values=plan.parameter_values, experiment=plan.experiment,
                            solver=solver)
    return Built(sim=sim, built_s=time.perf_counter() - t0, compiled=compiled)


def built_for(job, plan, compiled: Optional[bool] = None) -> tuple[Built, str]:
    """The cached built simulation for this plan (built on a miss), and "hit"/"miss".
    ``compiled``: ask for compiled solver functions (None: as ``precompiled`` says)."""
    if compiled is None:
        compiled = precompiled.use_compiled(plan.key)
    compiled = compiled and plan.protocol.can_compile
    precompiled.install()  # PyBaMM's compiles load from aot/, or compile only when asked (once per process)
    key = plan.key + (":compiled" if compiled else "")
    entry = cache.MODELS.get(key)
    if entry is not None:
        return entry, "hit"
    entry = build(job, plan, compiled=compiled)
    cache.MODELS.put(key, entry)
    return entry, "miss"

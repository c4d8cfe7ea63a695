"""The benchmark's three jobs, and the two ways of solving them outside the service.

* ``service_job(name)``    the ``Job`` the service runs (legacy bodies go through
                           ``LegacyRequest.to_job`` exactly as the submit function does);
* ``original_solve(job)``  what the old Flask service did per request: a new
                           ``pybamm.Simulation`` with every number baked in and
                           ``CasadiSolver(mode="safe", atol=rtol=1e-6)``;
* ``reference_solve(job)`` the same baked-in case with ``IDAKLUSolver(atol=rtol=1e-9)``,
                           the yardstick both are compared with.

Importing this module does not import PyBaMM (the cold-start child imports it first).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Optional

from local.stack import with_kit_drive_cycles
from shared.contract.legacy import JAVA_CELL, JAVA_DRIVE_CYCLE  # noqa: F401 - bench.e2e imports JAVA_CELL from here

REPO = Path(__file__).resolve().parent.parent


def setup_env() -> None:
    """Environment every bench process (and the stack it starts) runs with."""
    os.environ["PYBAMM_DISABLE_TELEMETRY"] = "true"
    # room for every job compiled and interpreted: no eviction mid-run
    os.environ.setdefault("MODEL_CACHE_ENTRIES", "16")
    os.environ["DRIVE_CYCLE_PATH"] = with_kit_drive_cycles(os.environ.get("DRIVE_CYCLE_PATH", ""))
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # CasadiSolver is deprecated


SPME_1C = {"model": {"name": "SPMe"}, "parameter_set": "Chen2020",
           "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 3600}}

JOB_NAMES = ("dfn_cell", "us06", "spme_1c")
LABELS = {
    "dfn_cell": "DFN cell (Java cell job: 5 A, 1 h, 5 A.h, 4.2/2.5 V)",
    "us06": "DFN US06 drive cycle, initial SOC 0.9",
    "spme_1c": "SPMe 1C discharge, 3600 s",
}


def service_job(name: str, **legacy_overrides):
    from shared.contract.job import Job
    from shared.contract.legacy import LegacyRequest

    if name == "dfn_cell":
        return LegacyRequest.model_validate({**JAVA_CELL, **legacy_overrides}).to_job("cell")
    if name == "us06":
        return LegacyRequest.model_validate({**JAVA_DRIVE_CYCLE, **legacy_overrides}).to_job("driveCycle")
    if name == "spme_1c":
        return Job.model_validate(SPME_1C)
    raise KeyError(name)


# ---------------------------------------------------------------------------
# Direct PyBaMM, numbers baked in (no input parameters, no cache)
# ---------------------------------------------------------------------------
def _baked_case(job) -> tuple[Any, Any, Any, Optional[float]]:
    """(model, parameter values, t_eval, initial_soc) with every number baked in."""
    import numpy as np
    import pybamm

    from shared.engine import drive_cycles
    from shared.engine.protocols import ConstantCurrent, DriveCycle
    from shared.engine.models import MODELS

    pv = pybamm.ParameterValues(job.parameter_set or "Chen2020")
    pv.update(dict(job.parameters))
    protocol = job.protocol
    if isinstance(protocol, ConstantCurrent):
        current = (protocol.current_A if protocol.current_A is not None
                   else protocol.c_rate * pv["Nominal cell capacity [A.h]"])
        pv.update({"Current function [A]": float(current)})
        t_eval = np.linspace(0.0, float(protocol.duration_s), 100)
    elif isinstance(protocol, DriveCycle):
        t_data, i_data = drive_cycles.load(protocol.name)
        pv.update({"Current function [A]": pybamm.Interpolant(t_data, i_data * protocol.scale, pybamm.t)})
        t_eval = np.asarray(t_data, dtype=float)  # the cycle's 1 Hz times
    else:
        raise ValueError("the bench only covers constant-current and drive-cycle jobs")
    model = MODELS[job.model.name](options=dict(job.model.options) or None)
    return model, pv, t_eval, job.conditions.initial_soc



def original_solve(job):
    """The old Flask service's per-request path: build and solve from scratch."""
    import pybamm

    model, pv, t_eval, soc = _baked_case(job)
    sim = pybamm.Simulation(model, parameter_values=pv,
                            solver=pybamm.CasadiSolver(mode="safe", atol=1e-6, rtol=1e-6))
    return sim.solve(t_eval, initial_soc=soc)


def reference_solve(job, t_interp):
    """A tight solve (IDAKLU, atol = rtol = 1e-9) reporting exactly at ``t_interp``."""
    import numpy as np
    import pybamm

    from shared.engine.protocols import DriveCycle

    model, pv, t_eval, soc = _baked_case(job)
    sim = pybamm.Simulation(model, parameter_values=pv, solver=pybamm.IDAKLUSolver(atol=1e-9, rtol=1e-9))
    t_interp = np.unique(np.asarray(t_interp, dtype=float))
    t_interp = t_interp[t_interp <= t_eval[-1]]
    # drive cycle: the profile's knots are stop points (as the service does); otherwise [0, end]
    stops = t_eval if isinstance(job.protocol, DriveCycle) else [0.0, float(t_eval[-1])]
    return sim.solve(stops, t_interp=t_interp, initial_soc=soc)

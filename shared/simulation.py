"""The PyBaMM simulation core: one ``Job`` in, one result dictionary out.

Everything PyBaMM-specific lives here (and in ``shared.catalog``); this module
knows nothing of HTTP or Pub/Sub.

A warm instance keeps built simulations in a small LRU cache. A cache entry is
one model configuration (model, options, parameter set, baked overrides,
protocol shape, outputs); the numbers that vary from job to job — cut-offs,
capacity, current, temperature, initial concentrations (initial SOC) — are PyBaMM
input parameters, so a new job with new numbers re-solves without rebuilding.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Optional

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import numpy as np  # noqa: E402
import pybamm  # noqa: E402

from shared import drive_cycles  # noqa: E402
from shared.schema import ConstantCurrent, DriveCycle, Experiment, Job  # noqa: E402

log = logging.getLogger(__name__)

# Solver tolerances: at least as tight as the original service's Casadi solver.
ATOL = 1e-6
RTOL = 1e-6

MODELS = {
    "SPM": pybamm.lithium_ion.SPM,
    "SPMe": pybamm.lithium_ion.SPMe,
    "DFN": pybamm.lithium_ion.DFN,
}

# Numbers that may change from job to job without rebuilding the model.
INPUT_CANDIDATES = (
    "Upper voltage cut-off [V]",
    "Lower voltage cut-off [V]",
    "Nominal cell capacity [A.h]",
    "Ambient temperature [K]",
    "Initial temperature [K]",
    "Initial concentration in negative electrode [mol.m-3]",
    "Initial concentration in positive electrode [mol.m-3]",
)

# Always computed (for the summary), whatever the job asks to see.
SUMMARY_VARIABLES = (
    "Time [s]",
    "Voltage [V]",
    "Current [A]",
    "Discharge capacity [A.h]",
    "Volume-averaged cell temperature [K]",
    "Average negative particle stoichiometry",
)


class SimulationError(Exception):
    """A job that cannot be simulated; the message is safe to show the caller."""


@dataclass
class _Entry:
    sim: Any
    input_names: tuple[str, ...]
    built_s: float
    uses: int = 0


@dataclass
class _Plan:
    key: str
    parameter_values: Any
    input_names: tuple[str, ...]
    inputs: dict[str, float]
    experiment: Any
    t_eval: Optional[list[float]]
    t_interp: Optional[np.ndarray]
    requested_end_s: Optional[float]
    output_variables: list[str]
    initial_soc: Optional[float]
    esoh: Optional[tuple[float, float]] = None
    notes: list[str] = field(default_factory=list)


class ModelCache:
    """LRU cache of built ``pybamm.Simulation`` objects for one process."""

    def __init__(self, max_entries: int = 8):
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Optional[_Entry]:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: _Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            old, _ = self._entries.popitem(last=False)
            log.info("model cache evicted %s", old[:12])
            gc.collect()

    def __len__(self) -> int:
        return len(self._entries)


CACHE = ModelCache(int(os.environ.get("MODEL_CACHE_ENTRIES", "8")))


# ---------------------------------------------------------------------------
# Parameter values
# ---------------------------------------------------------------------------
_BASE_SETS: dict[str, Any] = {}


def base_parameter_values(job: Job):
    """A fresh copy of the job's parameter set (named or BPX)."""
    if job.bpx is not None:
        digest = _digest(job.bpx)
        if digest not in _BASE_SETS:
            try:
                _BASE_SETS[digest] = pybamm.ParameterValues.create_from_bpx_obj(job.bpx)
            except Exception as exc:  # the BPX library's messages name the bad field
                raise SimulationError(f"bpx: not a valid BPX document: {_short(exc)}") from exc
        return _BASE_SETS[digest].copy()
    name = job.parameter_set or "Chen2020"
    if name not in _BASE_SETS:
        try:
            _BASE_SETS[name] = pybamm.ParameterValues(name)
        except Exception as exc:
            raise SimulationError(f"parameter_set: unknown parameter set {name!r}") from exc
    return _BASE_SETS[name].copy()


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.floating)) and not isinstance(v, bool)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text[:limit] if text else type(exc).__name__


def _model_options(job: Job) -> dict[str, str]:
    return dict(sorted(job.model.options.items()))


def initial_stoichiometries(soc: float, pv) -> tuple[float, float]:
    """Negative and positive stoichiometry at a state of charge (PyBaMM's eSOH)."""
    x, y = pybamm.lithium_ion.get_initial_stoichiometries(soc, pv)
    return float(x), float(y)


def _plan(job: Job) -> _Plan:
    pv = base_parameter_values(job)
    overrides = dict(job.parameters)
    unknown = [name for name in overrides if name not in pv.keys()]
    if unknown:
        raise SimulationError(
            f"parameters: {unknown} not in parameter set {job.parameter_set or 'bpx'}"
        )
    protocol = job.protocol
    notes: list[str] = []

    # Which numbers become inputs? Capacity is baked for experiments (C-rate steps
    # turn into currents when the experiment is built).
    candidates = [
        n for n in INPUT_CANDIDATES
        if not (isinstance(protocol, Experiment) and n == "Nominal cell capacity [A.h]")
    ]
    input_names = [n for n in candidates if n in pv.keys() and _is_number(pv[n])]
    baked = {k: v for k, v in overrides.items() if k not in input_names}
    pv.update(baked)
    inputs = {n: float(overrides.get(n, pv[n])) for n in input_names}

    if job.conditions.ambient_temperature_C is not None:
        kelvin = job.conditions.ambient_temperature_C + 273.15
        for n in ("Ambient temperature [K]", "Initial temperature [K]"):
            if n in input_names:
                inputs[n] = kelvin
            else:
                pv.update({n: kelvin})
                baked[n] = kelvin

    # Initial state of charge -> initial concentrations (inputs when numeric).
    soc = job.conditions.initial_soc
    esoh = None
    cn, cp = (
        "Initial concentration in negative electrode [mol.m-3]",
        "Initial concentration in positive electrode [mol.m-3]",
    )
    try:
        sto = pybamm.lithium_ion.get_min_max_stoichiometries(pv)
        esoh = (float(sto[0]), float(sto[1]))  # x_0, x_100
    except Exception:  # noqa: BLE001 - a set without eSOH data simply has no SOC
        esoh = None
    if soc is not None:
        try:
            x, y = initial_stoichiometries(soc, pv)
        except Exception as exc:
            raise SimulationError(f"conditions.initial_soc: PyBaMM could not set it: {_short(exc)}")
        cn_val = x * pv["Maximum concentration in negative electrode [mol.m-3]"]
        cp_val = y * pv["Maximum concentration in positive electrode [mol.m-3]"]
        if cn in input_names and cp in input_names:
            inputs[cn], inputs[cp] = float(cn_val), float(cp_val)
        else:
            pv.update({cn: cn_val, cp: cp_val})
            baked[cn], baked[cp] = cn_val, cp_val
    if esoh is not None and soc is None and cn in inputs:
        x_init = inputs[cn] / pv["Maximum concentration in negative electrode [mol.m-3]"]
        soc_est = (x_init - esoh[0]) / (esoh[1] - esoh[0])
        soc = float(min(1.0, max(0.0, soc_est)))

    capacity = float(inputs.get("Nominal cell capacity [A.h]", pv["Nominal cell capacity [A.h]"]))
    outputs = list(dict.fromkeys(list(SUMMARY_VARIABLES) + list(job.outputs.variables)))
    experiment = None
    t_eval = t_interp = None
    requested_end = None
    max_points = job.outputs.max_points

    if isinstance(protocol, ConstantCurrent):
        current = protocol.current_A if protocol.current_A is not None else protocol.c_rate * capacity
        if protocol.duration_s is not None:
            requested_end = float(protocol.duration_s)
        else:  # until a cut-off: allow 1.5x the time a full charge would take
            requested_end = min(1.5 * 3600.0 * capacity / abs(current), 48 * 3600.0)
            notes.append("runs until a voltage cut-off")
        pv.update({"Current function [A]": "[input]"})
        input_names.append("Current function [A]")
        inputs["Current function [A]"] = float(current)
        t_eval = [0.0, requested_end]
        t_interp = _grid(requested_end, job.outputs.period_s, max_points)
        shape = {"protocol": "constant_current"}
    elif isinstance(protocol, DriveCycle):
        if protocol.name is not None:
            try:
                t_data, i_data = drive_cycles.load(protocol.name)
            except drive_cycles.DriveCycleError as exc:
                raise SimulationError(f"protocol.name: {exc}") from exc
            cycle_id = protocol.name
        else:
            t_data = np.asarray(protocol.time_s, dtype=float)
            i_data = np.asarray(protocol.current_A, dtype=float)
            cycle_id = _digest([protocol.time_s, protocol.current_A])
        i_data = i_data * protocol.scale
        pv.update(
            {"Current function [A]": pybamm.Interpolant(t_data, i_data, pybamm.t, interpolator="linear")}
        )
        requested_end = float(t_data[-1])
        t_eval = [0.0, requested_end]
        period = job.outputs.period_s
        t_interp = _grid(requested_end, period, max_points)
        shape = {"protocol": "drive_cycle", "cycle": cycle_id, "scale": protocol.scale}
    elif isinstance(protocol, Experiment):
        steps = list(protocol.steps) * protocol.cycles
        try:
            if protocol.cycles > 1:
                experiment = pybamm.Experiment(
                    [tuple(protocol.steps)] * protocol.cycles, period=_period_str(protocol.period_s)
                )
            else:
                experiment = pybamm.Experiment(steps, period=_period_str(protocol.period_s))
        except Exception as exc:
            raise SimulationError(f"protocol.steps: PyBaMM cannot parse the experiment: {_short(exc)}")
        shape = {"protocol": "experiment", "steps": protocol.steps, "cycles": protocol.cycles,
                 "period": protocol.period_s}
    else:  # pragma: no cover - the schema's discriminator makes this unreachable
        raise SimulationError("protocol: unknown type")

    key = _digest(
        {
            "model": job.model.name,
            "options": _model_options(job),
            "set": job.parameter_set if job.bpx is None else _digest(job.bpx),
            "baked": {k: baked[k] for k in sorted(baked)},
            "inputs": sorted(input_names),
            "shape": shape,
            "outputs": outputs,
        }
    )
    for n in input_names:
        pv.update({n: "[input]"})
    return _Plan(
        key=key,
        parameter_values=pv,
        input_names=tuple(input_names),
        inputs=inputs,
        experiment=experiment,
        t_eval=t_eval,
        t_interp=t_interp,
        requested_end_s=requested_end,
        output_variables=outputs,
        initial_soc=soc,
        esoh=esoh,
        notes=notes,
    )


def _period_str(period_s: Optional[float]) -> Optional[str]:
    return None if period_s is None else f"{period_s} seconds"


def _grid(end_s: float, period_s: Optional[float], max_points: int) -> np.ndarray:
    n = max_points if period_s is None else min(max_points, int(math.floor(end_s / period_s)) + 1)
    n = max(n, 2)
    return np.linspace(0.0, end_s, n)


def _build(job: Job, plan: _Plan) -> _Entry:
    t0 = time.perf_counter()
    try:
        model = MODELS[job.model.name](options=_model_options(job) or None)
    except Exception as exc:
        raise SimulationError(f"model.options: PyBaMM rejected the options: {_short(exc)}") from exc
    if plan.experiment is None:
        solver = pybamm.IDAKLUSolver(atol=ATOL, rtol=RTOL, output_variables=plan.output_variables)
    else:
        # experiments need the full state between steps
        solver = pybamm.IDAKLUSolver(atol=ATOL, rtol=RTOL)
    sim = pybamm.Simulation(
        model,
        parameter_values=plan.parameter_values,
        experiment=plan.experiment,
        solver=solver,
    )
    return _Entry(sim=sim, input_names=plan.input_names, built_s=time.perf_counter() - t0)


def simulate(job: Job) -> dict[str, Any]:
    """Run one job; return a JSON-ready result. Raises ``SimulationError``."""
    t_start = time.perf_counter()
    plan = _plan(job)
    entry = CACHE.get(plan.key)
    cache_state = "hit" if entry is not None else "miss"
    if entry is None:
        entry = _build(job, plan)
        CACHE.put(plan.key, entry)
    entry.uses += 1
    log.info(
        "model cache %s key=%s entries=%d hits=%d misses=%d",
        cache_state, plan.key[:12], len(CACHE), CACHE.hits, CACHE.misses,
    )
    t_solve = time.perf_counter()
    try:
        if plan.experiment is None:
            solution = entry.sim.solve(plan.t_eval, inputs=plan.inputs, t_interp=plan.t_interp)
        else:
            solution = entry.sim.solve(inputs=plan.inputs)
    except pybamm.SolverError as exc:
        text = str(exc)
        if "non-positive at initial conditions" in text:
            events = text.split("]", 1)[0] + "]" if text.startswith("Events") else text
            raise SimulationError(
                "the cell starts outside its voltage cut-offs: "
                f"{events.replace('Events ', 'event ')} already crossed at t = 0 s "
                "(check the cut-offs and the initial state of charge)"
            ) from exc
        raise SimulationError(f"solver failure: {_short(exc)}") from exc
    except (ValueError, KeyError, TypeError, ZeroDivisionError) as exc:
        raise SimulationError(f"the simulation could not start: {_short(exc)}") from exc
    solve_s = time.perf_counter() - t_solve
    if solution is None:
        raise SimulationError("the experiment produced no solution (infeasible first step)")
    try:
        result = _result(job, plan, solution)
    finally:
        del solution
        if plan.experiment is not None:
            gc.collect()
    result["timings"] = {
        "cache": cache_state,
        "build_s": round(entry.built_s, 4) if cache_state == "miss" else 0.0,
        "solve_s": round(solve_s, 4),
        "total_s": round(time.perf_counter() - t_start, 4),
    }
    return result


def _values(solution, name: str) -> np.ndarray:
    entries = np.asarray(solution[name].entries, dtype=float)
    if entries.ndim != 1:
        raise SimulationError(
            f"outputs.variables: {name!r} is not a scalar (0-D) variable; pick a scalar one"
        )
    return entries


def _result(job: Job, plan: _Plan, solution) -> dict[str, Any]:
    t = _values(solution, "Time [s]")
    v = _values(solution, "Voltage [V]")
    i = _values(solution, "Current [A]")
    q = _values(solution, "Discharge capacity [A.h]")
    temp = _values(solution, "Volume-averaged cell temperature [K]")
    termination = str(solution.termination)
    end_time = float(t[-1])

    if plan.experiment is None:
        completed = termination == "final time"
        if not completed and job.protocol.type == "constant_current" and job.protocol.duration_s is None:
            completed = termination.startswith("event:") and "voltage" in termination.lower()
    else:
        n_cycles = len(getattr(solution, "cycles", []) or [])
        completed = n_cycles == job.protocol.cycles and termination == "final time"

    columns_all = {name: _values(solution, name) for name in plan.output_variables}
    # thin an experiment's solution to max_points (experiments sample per step)
    idx = np.arange(len(t))
    if len(t) > job.outputs.max_points:
        idx = np.unique(np.linspace(0, len(t) - 1, job.outputs.max_points).round().astype(int))
    columns = {name: columns_all[name][idx].tolist() for name in job.outputs.variables}

    energy_wh = float(np.trapezoid(v * i, t) / 3600.0) if len(t) > 1 else 0.0
    final_soc = None
    if plan.esoh is not None:
        x0, x100 = plan.esoh
        x_end = float(_values(solution, "Average negative particle stoichiometry")[-1])
        final_soc = round((x_end - x0) / (x100 - x0), 6)
    summary = {
        "Discharged capacity [A.h]": float(q[-1] - q[0]),
        "Discharged energy [W.h]": energy_wh,
        "Minimum voltage [V]": float(v.min()),
        "Maximum voltage [V]": float(v.max()),
        "Maximum cell temperature [degC]": float(temp.max() - 273.15),
        "Initial state of charge": None if plan.initial_soc is None else round(plan.initial_soc, 6),
        "Final state of charge": final_soc,
        "End time [s]": end_time,
        "Requested end time [s]": plan.requested_end_s,
    }
    result: dict[str, Any] = {
        "termination": termination,
        "completed": bool(completed),
        "stoppedEarly": not bool(completed),
        "endTime": end_time,
        "summary": summary,
        "notes": plan.notes,
    }
    if not job.outputs.summary_only:
        result["columns"] = columns
    if plan.experiment is not None:
        result["cycles"] = _cycle_summaries(solution)
    return result


def _cycle_summaries(solution) -> list[dict[str, Any]]:
    out = []
    for n, cycle in enumerate(getattr(solution, "cycles", []) or [], start=1):
        if cycle is None:
            continue
        ct = cycle["Time [s]"].entries
        cv = cycle["Voltage [V]"].entries
        ci = cycle["Current [A]"].entries
        cq = cycle["Discharge capacity [A.h]"].entries
        dq = np.diff(cq)
        out.append(
            {
                "cycle": n,
                "Start time [s]": float(ct[0]),
                "End time [s]": float(ct[-1]),
                "Discharged capacity [A.h]": float(dq[dq > 0].sum()),
                "Charged capacity [A.h]": float(-dq[dq < 0].sum()),
                "Discharged energy [W.h]": float(np.trapezoid(np.clip(cv * ci, 0, None), ct) / 3600.0),
                "Minimum voltage [V]": float(cv.min()),
                "Maximum voltage [V]": float(cv.max()),
            }
        )
    return out

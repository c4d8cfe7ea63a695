"""The PyBaMM simulation core: one ``Job`` in, one result dictionary out.

Everything PyBaMM-specific lives here (and in ``shared.engine.catalog``); this module
knows nothing of HTTP or Pub/Sub.

A warm instance keeps built simulations in a small LRU cache. A cache entry is
one model configuration (model, options, parameter set, baked overrides,
protocol shape, outputs); the numbers that vary from job to job — cut-offs,
capacity, current, temperature, initial concentrations (initial SOC) — are PyBaMM
input parameters, so a new job with new numbers re-solves without rebuilding.
"""

from __future__ import annotations

import copy
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

from shared.engine import drive_cycles, precompiled  # noqa: E402
from shared.contract.job import LIMITS, ConstantCurrent, DriveCycle, Experiment, Job  # noqa: E402

log = logging.getLogger(__name__)

# Solver tolerances: at least as tight as the original service's Casadi solver.
ATOL = 1e-6
RTOL = 1e-6
# IDAKLU settings for constant-current and drive-cycle jobs, measured with bench/
# against a 1e-9 reference:
# * suppress_algebraic_error: IDA's local error test covers the differential states
#   (concentrations, temperature); the algebraic ones (potentials) are still solved
#   to the Newton tolerance at every step. US06 then needs 42 % fewer steps and its
#   max |dV| against the reference drops from 0.022 to 0.002 mV. Experiments keep
#   the full error test: in a constant-voltage step the current is algebraic.
SOLVER_OPTIONS = {"suppress_algebraic_error": True}
# * dt_init (drive cycles): IDA restarts at every knot of the profile; its first
#   trial step is then a tenth of the shortest knot interval (at most 0.1 s) rather
#   than its own guess of ~1 ms. The error test still accepts or shrinks it.
DRIVE_CYCLE_FIRST_STEP_S = 0.1

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

# PyBaMM experiments control these themselves: they cannot be input parameters.
EXPERIMENT_BAKED = ("Nominal cell capacity [A.h]", "Ambient temperature [K]", "Initial temperature [K]")

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
    built_s: float
    compiled: bool = False
    compiled_checked: bool = False


@dataclass
class _Plan:
    key: str
    parameter_values: Any
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

    def trim_to_memory(self, max_rss_mb: float) -> None:
        """Evict the least recently used entries while this process is above ``max_rss_mb``."""
        while len(self._entries) > 1 and rss_mb() > max_rss_mb:
            old, _ = self._entries.popitem(last=False)
            gc.collect()
            log.info("model cache evicted %s (memory)", old[:12])

    def __len__(self) -> int:
        return len(self._entries)


def rss_mb() -> float:
    """Resident memory of this process [MB] (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


precompiled.install()  # PyBaMM loads precompiled libraries, and compiles only when asked
CACHE = ModelCache(int(os.environ.get("MODEL_CACHE_ENTRIES", "8")))
CACHE_MAX_RSS_MB = float(os.environ.get("MODEL_CACHE_MAX_RSS_MB", "1200"))


# ---------------------------------------------------------------------------
# Planning a job: what is built once (static) and what each job feeds in (inputs)
# ---------------------------------------------------------------------------
_BASE_SETS: dict[str, Any] = {}


def _base(job: Job) -> tuple[str, Any]:
    """(set id, the job's parameter set). Cached and shared: never mutate it."""
    if job.bpx is not None:
        set_id = "bpx:" + _digest(job.bpx)
        if set_id not in _BASE_SETS:
            try:
                _BASE_SETS[set_id] = pybamm.ParameterValues.create_from_bpx_obj(copy.deepcopy(job.bpx))
            except Exception as exc:  # the BPX library's messages name the bad field
                raise SimulationError(f"bpx: not a valid BPX document: {_short(exc)}") from exc
        return set_id, _BASE_SETS[set_id]
    name = job.parameter_set or "Chen2020"
    if name not in _BASE_SETS:
        try:
            _BASE_SETS[name] = pybamm.ParameterValues(name)
        except Exception as exc:
            raise SimulationError(f"parameter_set: unknown parameter set {name!r}") from exc
    return name, _BASE_SETS[name]


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


CN = "Initial concentration in negative electrode [mol.m-3]"
CP = "Initial concentration in positive electrode [mol.m-3]"
CN_MAX = "Maximum concentration in negative electrode [mol.m-3]"
CP_MAX = "Maximum concentration in positive electrode [mol.m-3]"


@dataclass
class _Static:
    """Everything about a job that does not change between jobs of one configuration."""

    parameter_values: Any  # inputs marked "[input]"; used to build
    numeric_pv: Any  # numbers only; used for eSOH
    input_names: tuple[str, ...]
    defaults: dict[str, float]
    esoh: Optional[tuple[float, float]]
    experiment: Any = None
    t_data: Optional[np.ndarray] = None
    soc_memo: dict = field(default_factory=dict)

    def concentrations(self, soc: float) -> tuple[float, float]:
        if soc not in self.soc_memo:
            try:
                x, y = initial_stoichiometries(soc, self.numeric_pv)
            except Exception as exc:
                raise SimulationError(f"conditions.initial_soc: PyBaMM could not set it: {_short(exc)}")
            self.soc_memo[soc] = (x * self.numeric_pv[CN_MAX], y * self.numeric_pv[CP_MAX])
        return self.soc_memo[soc]


_STATIC: OrderedDict[str, _Static] = OrderedDict()
_STATIC_MAX = 64


def _plan(job: Job) -> _Plan:
    set_id, base = _base(job)
    keys = base.keys()
    overrides = dict(job.parameters)
    unknown = [name for name in overrides if name not in keys]
    if unknown:
        raise SimulationError(f"parameters: {unknown} not in parameter set {job.parameter_set or 'bpx'}")
    protocol = job.protocol
    conditions = job.conditions

    # Numbers that become inputs (for experiments, capacity and temperatures are
    # baked: PyBaMM's experiment steps control them).
    input_names = [
        n for n in INPUT_CANDIDATES
        if n in keys and _is_number(base[n])
        and not (isinstance(protocol, Experiment) and n in EXPERIMENT_BAKED)
    ]
    baked = {k: v for k, v in overrides.items() if k not in input_names}
    if conditions.ambient_temperature_C is not None:
        kelvin = conditions.ambient_temperature_C + 273.15
        for n in ("Ambient temperature [K]", "Initial temperature [K]"):
            if n not in input_names:
                baked[n] = kelvin
    soc_as_input = CN in input_names and CP in input_names
    if conditions.initial_soc is not None and not soc_as_input:
        baked["initial state of charge"] = conditions.initial_soc

    if isinstance(protocol, ConstantCurrent):
        shape: dict[str, Any] = {"protocol": "constant_current"}
    elif isinstance(protocol, DriveCycle):
        cycle_id = protocol.name or _digest([protocol.time_s, protocol.current_A])
        shape = {"protocol": "drive_cycle", "cycle": cycle_id, "scale": protocol.scale}
    else:
        shape = {"protocol": "experiment", "steps": protocol.steps, "cycles": protocol.cycles,
                 "period": protocol.period_s}
    outputs = list(dict.fromkeys(list(SUMMARY_VARIABLES) + list(job.outputs.variables)))
    key = _digest({"model": job.model.name, "options": _model_options(job), "set": set_id,
                   "baked": baked, "inputs": input_names, "shape": shape, "outputs": outputs})
    static = _STATIC.get(key)
    if static is None:
        static = _make_static(job, base, baked, input_names)
        _STATIC[key] = static
        while len(_STATIC) > _STATIC_MAX:
            _STATIC.popitem(last=False)
    else:
        _STATIC.move_to_end(key)

    # Per-job numbers
    inputs = {n: float(overrides.get(n, static.defaults[n])) for n in static.input_names
              if n != "Current function [A]"}
    if conditions.ambient_temperature_C is not None:
        for n in ("Ambient temperature [K]", "Initial temperature [K]"):
            if n in inputs:
                inputs[n] = conditions.ambient_temperature_C + 273.15
    soc = conditions.initial_soc
    if soc is not None and soc_as_input:
        inputs[CN], inputs[CP] = static.concentrations(soc)
    if soc is None and static.esoh is not None and CN in inputs:
        x0, x100 = static.esoh
        soc = float(min(1.0, max(0.0, (inputs[CN] / static.numeric_pv[CN_MAX] - x0) / (x100 - x0))))

    notes: list[str] = []
    t_eval = t_interp = requested_end = None
    if isinstance(protocol, ConstantCurrent):
        capacity = inputs.get("Nominal cell capacity [A.h]", static.defaults.get("Nominal cell capacity [A.h]"))
        current = protocol.current_A if protocol.current_A is not None else protocol.c_rate * capacity
        if abs(current) > LIMITS["max_current_A"]:
            raise SimulationError(
                f"protocol.c_rate: {protocol.c_rate}C of {capacity} A.h is {abs(current):g} A; "
                f"the limit is {LIMITS['max_current_A']:g} A")
        if protocol.duration_s is not None:
            requested_end = float(protocol.duration_s)
        else:  # until a cut-off: allow 1.5x the time a full charge would take
            requested_end = min(1.5 * 3600.0 * capacity / abs(current), 48 * 3600.0)
            notes.append("runs until a voltage cut-off")
        inputs["Current function [A]"] = float(current)
        t_eval = [0.0, requested_end]
        t_interp = _grid(requested_end, job.outputs.period_s, job.outputs.max_points)
    elif isinstance(protocol, DriveCycle):
        requested_end = float(static.t_data[-1])
        # the profile's own time points are solver stop points: exact at every kink
        t_eval = static.t_data
        t_interp = _grid(requested_end, job.outputs.period_s, job.outputs.max_points)
        if job.outputs.period_s is None and len(static.t_data) <= job.outputs.max_points:
            t_interp = static.t_data

    return _Plan(key=key, parameter_values=static.parameter_values,
                 inputs=inputs, experiment=static.experiment, t_eval=t_eval, t_interp=t_interp,
                 requested_end_s=requested_end, output_variables=outputs, initial_soc=soc,
                 esoh=static.esoh, notes=notes)


def _make_static(job: Job, base, baked: dict[str, Any], input_names: list[str]) -> _Static:
    protocol = job.protocol
    numeric = base.copy()
    baked = dict(baked)
    soc = baked.pop("initial state of charge", None)
    numeric.update(baked)
    defaults = {n: float(numeric[n]) for n in input_names}
    try:
        sto = pybamm.lithium_ion.get_min_max_stoichiometries(numeric)
        esoh = (float(sto[0]), float(sto[1]))  # x_0, x_100
    except Exception:  # noqa: BLE001 - a set without eSOH data simply reports no SOC
        esoh = None
    static = _Static(parameter_values=None, numeric_pv=numeric, input_names=(), defaults=defaults,
                     esoh=esoh)
    if soc is not None:  # initial concentrations are not plain numbers in this set: bake them
        cn, cp = static.concentrations(soc)
        numeric.update({CN: cn, CP: cp})
    pv = numeric.copy()
    names = list(input_names)
    if isinstance(protocol, ConstantCurrent):
        names.append("Current function [A]")
    elif isinstance(protocol, DriveCycle):
        if protocol.name is not None:
            try:
                t_data, i_data = drive_cycles.load(protocol.name)
            except drive_cycles.DriveCycleError as exc:
                raise SimulationError(f"protocol.name: {exc}") from exc
        else:
            t_data = np.asarray(protocol.time_s, dtype=float)
            i_data = np.asarray(protocol.current_A, dtype=float)
        static.t_data = np.asarray(t_data, dtype=float)
        pv.update({"Current function [A]": pybamm.Interpolant(
            static.t_data, np.asarray(i_data, dtype=float) * protocol.scale, pybamm.t, interpolator="linear")})
    else:
        try:
            # one PyBaMM cycle per protocol cycle: the steps as a tuple, repeated
            static.experiment = pybamm.Experiment([tuple(protocol.steps)] * protocol.cycles,
                                                  period=_period_str(protocol.period_s))
        except Exception as exc:
            raise SimulationError(f"protocol.steps: PyBaMM cannot parse the experiment: {_short(exc)}")
    pv.update({n: "[input]" for n in names})
    static.parameter_values = pv
    static.input_names = tuple(names)
    return static


def _period_str(period_s: Optional[float]) -> Optional[str]:
    return None if period_s is None else f"{period_s} seconds"


def _grid(end_s: float, period_s: Optional[float], max_points: int) -> np.ndarray:
    n = max_points if period_s is None else min(max_points, int(math.floor(end_s / period_s)) + 1)
    n = max(n, 2)
    return np.linspace(0.0, end_s, n)


def _solver_options(plan: _Plan, threads: int, compiled: bool) -> dict[str, Any]:
    if plan.experiment is not None:
        return {}
    options: dict[str, Any] = dict(SOLVER_OPTIONS, compile=compiled)
    if threads > 1:
        options.update(num_threads=threads, num_solvers=threads)
    if plan.t_eval is not None and len(plan.t_eval) > 2:  # a drive cycle
        shortest = float(np.min(np.diff(plan.t_eval)))
        options["dt_init"] = min(DRIVE_CYCLE_FIRST_STEP_S, shortest / 10.0)
    return options


def _build(job: Job, plan: _Plan, threads: int, compiled: bool) -> _Entry:
    t0 = time.perf_counter()
    try:
        model = MODELS[job.model.name](options=_model_options(job) or None)
    except Exception as exc:
        raise SimulationError(f"model.options: PyBaMM rejected the options: {_short(exc)}") from exc
    options = _solver_options(plan, threads, compiled)
    if plan.experiment is None:
        solver = pybamm.IDAKLUSolver(atol=ATOL, rtol=RTOL, output_variables=plan.output_variables,
                                     options=options)
    else:
        # experiments need the full state between steps
        solver = pybamm.IDAKLUSolver(atol=ATOL, rtol=RTOL, options=options)
    sim = pybamm.Simulation(
        model,
        parameter_values=plan.parameter_values,
        experiment=plan.experiment,
        solver=solver,
    )
    return _Entry(sim=sim, built_s=time.perf_counter() - t0, compiled=compiled)


def _entry(job: Job, plan: _Plan, threads: int = 1, compiled: Optional[bool] = None) -> tuple[_Entry, str]:
    """The cached built simulation for this plan (built on a miss), and "hit"/"miss".
    ``compiled``: ask for compiled solver functions (None: as ``shared.engine.precompiled`` says)."""
    if compiled is None:
        compiled = precompiled.use_compiled(plan.key)
    compiled = compiled and plan.experiment is None
    key = plan.key + (f":batch{threads}" if threads > 1 else "") + (":compiled" if compiled else "")
    entry = CACHE.get(key)
    if entry is not None:
        state = "hit"
    else:
        state = "miss"
        entry = _build(job, plan, threads=threads, compiled=compiled)
        CACHE.put(key, entry)
    return entry, state


def _settle_compiled(entry: _Entry) -> None:
    """After the first solve: whether the functions really are compiled (a missing
    precompiled library leaves them interpreted)."""
    if entry.compiled and not entry.compiled_checked:
        entry.compiled = precompiled.is_compiled(entry.sim)
        entry.compiled_checked = True


def plan_key(job: Job) -> str:
    """The configuration a job belongs to (jobs with one key share a built model)."""
    return _plan(job).key


def simulate(job: Job, compiled: Optional[bool] = None) -> dict[str, Any]:
    """Run one job; return a JSON-ready result. Raises ``SimulationError``.
    ``compiled`` overrides ``SOLVER_COMPILE`` (the precompile build uses it)."""
    t_start = time.perf_counter()
    plan = _plan(job)
    entry, cache_state = _entry(job, plan, compiled=compiled)
    log.info(
        "model cache %s key=%s compiled=%s entries=%d hits=%d misses=%d rss_mb=%.0f",
        cache_state, plan.key[:12], entry.compiled, len(CACHE), CACHE.hits, CACHE.misses, rss_mb(),
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
    _settle_compiled(entry)
    if solution is None:
        raise SimulationError("the experiment produced no solution (infeasible first step)")
    try:
        result = _result(job, plan, solution)
    finally:
        del solution
        if plan.experiment is not None:
            gc.collect()
    CACHE.trim_to_memory(CACHE_MAX_RSS_MB)
    result["timings"] = {
        "cache": cache_state,
        "compiled": entry.compiled,
        "build_s": round(entry.built_s, 4) if cache_state == "miss" else 0.0,
        "solve_s": round(solve_s, 4),
        "total_s": round(time.perf_counter() - t_start, 4),
    }
    return result


def simulate_batch(jobs: list[Job], threads: int = 2) -> list[Any]:
    """Solve several jobs; those sharing a built model and time grid are solved as
    one list of inputs (IDAKLU runs ``threads`` solvers in parallel). Returns, in
    order, a result dict or the ``SimulationError`` of each job."""
    out: list[Any] = [None] * len(jobs)
    groups: dict[tuple, list[tuple[int, _Plan]]] = {}
    for k, job in enumerate(jobs):
        try:
            plan = _plan(job)
        except SimulationError as exc:
            out[k] = exc
            continue
        if plan.experiment is not None:
            out[k] = _safe(simulate, job)
            continue
        grid = (plan.key, tuple(plan.t_eval), None if plan.t_interp is None else tuple(plan.t_interp))
        groups.setdefault(grid, []).append((k, plan))
    for members in groups.values():
        first_k, first = members[0]
        entry, cache_state = _entry(jobs[first_k], first, threads=threads)
        t0 = time.perf_counter()
        try:
            solutions = entry.sim.solve(first.t_eval, inputs=[p.inputs for _, p in members],
                                        t_interp=first.t_interp)
        except Exception:  # noqa: BLE001 - fall back to one at a time for clear per-job errors
            for k, _ in members:
                out[k] = _safe(simulate, jobs[k])
            continue
        if not isinstance(solutions, list):
            solutions = [solutions]
        _settle_compiled(entry)
        solve_s = time.perf_counter() - t0
        for (k, plan), solution in zip(members, solutions):
            try:
                result = _result(jobs[k], plan, solution)
            except SimulationError as exc:
                out[k] = exc
                continue
            result["timings"] = {"cache": cache_state, "compiled": entry.compiled, "build_s": 0.0,
                                 "solve_s": round(solve_s / len(members), 5), "batch": len(members)}
            out[k] = result
    return out


def _safe(fn, job):
    try:
        return fn(job)
    except SimulationError as exc:
        return exc


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
        until_cut_off = job.protocol.type == "constant_current" and job.protocol.duration_s is None
        if until_cut_off:
            # complete only if a voltage cut-off ended it, not the service's time cap
            completed = termination.startswith("event:") and "voltage" in termination.lower()
            if termination == "final time":
                plan.notes.append(
                    f"stopped at the service's time cap ({plan.requested_end_s:g} s) before any cut-off")
        else:
            completed = termination == "final time"
    else:
        # an experiment is complete when every step of every cycle ran; a step that
        # ends on its own condition ("until 4.1 V") ends with an "[experiment]" event
        cycles = [c for c in (getattr(solution, "cycles", []) or []) if c is not None]
        last_steps = len(getattr(cycles[-1], "steps", []) or []) if cycles else 0
        completed = (
            len(cycles) == job.protocol.cycles
            and last_steps == len(job.protocol.steps)
            and (termination == "final time" or termination.endswith("[experiment]"))
        )

    # thin an experiment's solution to max_points (experiments sample per step)
    idx = np.arange(len(t))
    if len(t) > job.outputs.max_points:
        idx = np.unique(np.linspace(0, len(t) - 1, job.outputs.max_points).round().astype(int))
    columns = {name: _values(solution, name)[idx].tolist() for name in job.outputs.variables}

    cut_offs = _cut_offs(plan)
    violations = []
    if cut_offs is not None:
        lower, upper = cut_offs
        if v.min() < lower - 1e-3:
            violations.append(f"voltage fell to {v.min():.4f} V, below the {lower:g} V cut-off")
        if v.max() > upper + 1e-3:
            violations.append(f"voltage rose to {v.max():.4f} V, above the {upper:g} V cut-off")
    if violations and plan.experiment is not None:
        plan.notes.append("; ".join(violations) + " (PyBaMM relaxes cut-off events by 1 V inside experiment "
                          "steps: end steps with 'until ... V')")
    final_soc = None
    if plan.esoh is not None:
        x0, x100 = plan.esoh
        x_end = float(_values(solution, "Average negative particle stoichiometry")[-1])
        final_soc = round((x_end - x0) / (x100 - x0), 6)
    summary = {
        **_throughput(t, v, i, q),
        "Net discharged capacity [A.h]": float(q[-1] - q[0]),
        "Within voltage cut-offs": not violations,
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


def _cut_offs(plan: _Plan) -> Optional[tuple[float, float]]:
    lower, upper = "Lower voltage cut-off [V]", "Upper voltage cut-off [V]"
    values = {}
    for name in (lower, upper):
        if name in plan.inputs:
            values[name] = plan.inputs[name]
        else:
            v = plan.parameter_values[name] if name in plan.parameter_values.keys() else None
            if not _is_number(v):
                return None
            values[name] = float(v)
    return values[lower], values[upper]


def _cycle_summaries(solution) -> list[dict[str, Any]]:
    out = []
    for n, cycle in enumerate(getattr(solution, "cycles", []) or [], start=1):
        if cycle is None:
            continue
        ct = cycle["Time [s]"].entries
        cv = cycle["Voltage [V]"].entries
        ci = cycle["Current [A]"].entries
        cq = cycle["Discharge capacity [A.h]"].entries
        out.append(
            {
                "cycle": n,
                "Start time [s]": float(ct[0]),
                "End time [s]": float(ct[-1]),
                **_throughput(ct, cv, ci, cq),
                "Minimum voltage [V]": float(cv.min()),
                "Maximum voltage [V]": float(cv.max()),
            }
        )
    return out


def _throughput(t, v, i, q) -> dict[str, float]:
    """Charge and energy moved each way, on the sampled grid (discharge = positive current)."""
    dq = np.diff(q)
    power = v * i
    energy = (lambda p: float(np.trapezoid(p, t) / 3600.0)) if len(t) > 1 else (lambda p: 0.0)
    return {
        "Discharged capacity [A.h]": float(dq[dq > 0].sum()),
        "Charged capacity [A.h]": float(-dq[dq < 0].sum()),
        "Discharged energy [W.h]": energy(np.clip(power, 0, None)),
        "Charged energy [W.h]": energy(np.clip(-power, 0, None)),
    }

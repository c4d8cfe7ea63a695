"""Equivalent-circuit jobs: PyBaMM's Thevenin model (``pybamm.equivalent_circuit.Thevenin``)
under a constant current, an experiment or a drive cycle.

The cell is PyBaMM's ``ECM_Example`` set, or the job's own ``ecm_cell`` (tables
against SOC, and temperature where given: ``shared.contract.ecm``) turned into
PyBaMM interpolants with the signatures ``ECM_Example`` uses. Everything else (the
thermal model's masses and heat transfer, initial SOC and temperature) is
``ECM_Example``'s unless the job's ``parameters`` override it by PyBaMM name.

The protocols (``shared.engine.protocols``), the planning records (``plan.Static``,
``plan.Plan``), the built-model record and cache (``build.Built``, ``cache.MODELS``)
and the result (``results.result``) are the cell kind's, used as they are: the model
gets two variables the result reads ("Discharge capacity [A.h]" from the SOC, and
"Volume-averaged cell temperature [K]", the lumped cell's temperature).

PyBaMM is imported inside the functions: ``kinds`` loads this module without it.
"""

from __future__ import annotations

import os
import re
import time
from functools import lru_cache
from typing import Any, Optional

from shared.contract.ecm import (
    CAPACITANCE_RANGE_F, ENTROPIC_CHANGE_LIMIT_V_PER_K, RESISTANCE_RANGE_OHM, TEMPERATURE_RANGE_C, EcmCell)
from shared.contract.job import DEFAULT_OUTPUTS
from shared.contract.limits import LIMITS, VOLTAGE_RANGE_V
from shared.engine.errors import SimulationError, short
from shared.engine.kind import Kind

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

MODEL_NAME = "Thevenin"
EXAMPLE_SET = "ECM_Example"
PROTOCOLS = ("constant_current", "experiment", "drive_cycle")
RC = "number of rc elements"
DIFFUSION = "diffusion element"
# The options offered (PyBaMM's Thevenin also has "operating mode", which the protocols
# set themselves, and "calculate discharge energy", which changes nothing in it).
OPTIONS_OFFERED: dict[str, list] = {
    RC: list(range(0, LIMITS["max_ecm_rc_pairs"] + 1)),
    DIFFUSION: ["false", "true"],
}
DIFFUSION_TIME = "Diffusion time constant [s]"  # needed by the diffusion element, not in ECM_Example
INITIAL_OVERPOTENTIAL_LIMIT_V = 1.0  # an RC pair's overpotential at the start, either sign

SOC = "Initial SoC"
CAPACITY = "Cell capacity [A.h]"
NOMINAL = "Nominal cell capacity [A.h]"
LOWER, UPPER = "Lower voltage cut-off [V]", "Upper voltage cut-off [V]"
AMBIENT, INITIAL_T = "Ambient temperature [K]", "Initial temperature [K]"
OCV = "Open-circuit voltage [V]"
# Numbers that may change from job to job without rebuilding the model (as the cell's).
INPUT_CANDIDATES = (UPPER, LOWER, CAPACITY, NOMINAL, AMBIENT, INITIAL_T, SOC)
# ECM_Example's values a user's cell keeps (the thermal model, the initial state).
KEPT_FROM_EXAMPLE = (SOC, INITIAL_T, AMBIENT, "Current function [A]", "Cell thermal mass [J/K]",
                     "Cell-jig heat transfer coefficient [W/K]", "Jig thermal mass [J/K]",
                     "Jig-air heat transfer coefficient [W/K]")
# Ranges of the numbers a job may override (``parameters``), by PyBaMM name: (low, high,
# whether low itself is allowed).
RANGES = {
    SOC: (0.0, 1.0, False), CAPACITY: (0.0, 1000.0, False), NOMINAL: (0.0, 1000.0, False),
    AMBIENT: (200.0, 400.0, True), INITIAL_T: (200.0, 400.0, True),
    "Cell thermal mass [J/K]": (0.0, 1e9, False), "Jig thermal mass [J/K]": (0.0, 1e9, False),
    "Cell-jig heat transfer coefficient [W/K]": (0.0, 1e6, False),
    "Jig-air heat transfer coefficient [W/K]": (0.0, 1e6, False),
    DIFFUSION_TIME: (0.0, 1e7, False),
    OCV: (VOLTAGE_RANGE_V[0], VOLTAGE_RANGE_V[1], True),
    "Entropic change [V/K]": (-ENTROPIC_CHANGE_LIMIT_V_PER_K, ENTROPIC_CHANGE_LIMIT_V_PER_K, True),
    "RCR lookup limit [A]": (0.0, 1e4, False),
    "Current function [A]": (-LIMITS["max_current_A"], LIMITS["max_current_A"], True),
}
# The circuit's elements, numbered from 1 (R0 too), given as numbers in ``parameters``.
ELEMENT_RANGES = {
    re.compile(r"R\d+ \[Ohm\]"): (*RESISTANCE_RANGE_OHM, False),
    re.compile(r"C\d+ \[F\]"): (*CAPACITANCE_RANGE_F, False),
    re.compile(r"Element-\d+ initial overpotential \[V\]"): (-INITIAL_OVERPOTENTIAL_LIMIT_V,
                                                              INITIAL_OVERPOTENTIAL_LIMIT_V, True),
}


def parameter_range(name: str) -> Optional[tuple[float, float, bool]]:
    """(low, high, whether low itself is allowed) of a number ``parameters`` may give, by
    PyBaMM name; None for the cut-offs (the contract checks them)."""
    if name in RANGES:
        return RANGES[name]
    for pattern, bounds in ELEMENT_RANGES.items():
        if pattern.fullmatch(name):
            return bounds
    return None

# Variables the service adds to the model (the result and the default outputs read them).
ADDED_VARIABLES = ("Discharge capacity [A.h]", "Volume-averaged cell temperature [K]")
# Always computed (for the summary), whatever the job asks to see.
SUMMARY_VARIABLES = ("Time [s]", "Voltage [V]", "Current [A]", "Discharge capacity [A.h]",
                     "Volume-averaged cell temperature [K]", "SoC")


# -- the model ------------------------------------------------------------------------

def thevenin(options: dict[str, Any]):
    """PyBaMM's Thevenin model with the variables the result reads."""
    import pybamm

    model = pybamm.equivalent_circuit.Thevenin(options=options or None)
    p = model.param
    # dSoC/dt = -I / (Q * 3600), so this is the charge drawn since the start, in A.h
    model.variables["Discharge capacity [A.h]"] = (p.initial_soc - model.variables["SoC"]) * p.cell_capacity
    model.variables["Volume-averaged cell temperature [K]"] = model.variables["Cell temperature [K]"]
    return model


def model_options(job) -> dict[str, Any]:
    """The job's options as PyBaMM takes them, in a fixed order (part of cache keys): the
    number of RC elements as an integer, by default the ecm_cell's number of pairs."""
    options = dict(job.model.options)
    if RC in options:
        options[RC] = _as_int(options[RC])
    elif job.ecm_cell is not None:
        options[RC] = len(job.ecm_cell.rc_pairs)
    return dict(sorted(options.items()))


def _as_int(value) -> Any:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


@lru_cache(maxsize=16)
def _model_info(options: tuple) -> tuple[frozenset, frozenset, frozenset]:
    """(variable names, scalar variable names, parameter names) of the model with options."""
    model = thevenin(dict(options))
    names = frozenset(model.variables.keys())
    scalars = frozenset(k for k, v in model.variables.items() if not v.domain)
    return names, scalars, frozenset(model.get_parameter_info().keys())


# -- the cell's parameter values -----------------------------------------------------

def example_set():
    """PyBaMM's ECM_Example set (cached and shared: never mutate it)."""
    import pybamm

    from shared.engine import cache

    pv = cache.PARAMETER_SETS.get(EXAMPLE_SET)
    if pv is None:
        pv = pybamm.ParameterValues(EXAMPLE_SET)
        cache.PARAMETER_SETS.put(EXAMPLE_SET, pv)
    return pv


def _tables(cell: EcmCell) -> dict[str, Any]:
    """What of an ecm_cell is built into a model (not its capacity and cut-offs, which are
    per-job numbers)."""
    return cell.model_dump(mode="json", exclude={"capacity_Ah", "lower_voltage_cut_off_V",
                                                 "upper_voltage_cut_off_V"})


def base_values(job) -> tuple[str, Any]:
    """(set id, parameter values) of the job's cell: ECM_Example or its ecm_cell.
    Cached and shared: never mutate it."""
    from shared.engine import cache
    from shared.engine.parameters import digest

    if job.ecm_cell is None:
        return EXAMPLE_SET, example_set()
    set_id = "ecm:" + digest(_tables(job.ecm_cell))
    pv = cache.PARAMETER_SETS.get(set_id)
    if pv is None:
        pv = cell_values(job.ecm_cell)
        cache.PARAMETER_SETS.put(set_id, pv)
    return set_id, pv


def _clamped(x, axis) -> Any:
    """``x`` held within the axis' ends (tables are held constant beyond them)."""
    import pybamm

    return pybamm.maximum(pybamm.minimum(x, float(axis[-1])), float(axis[0]))


def _interpolant(name: str, soc_axis, temps, table, soc, t_cell):
    """A 1-D table against SOC, or a 2-D one (rows: temperatures [degC]) against
    temperature and SOC; linear, held constant beyond the axes."""
    import numpy as np
    import pybamm

    soc_axis = np.asarray(soc_axis, dtype=float)
    if temps is None:
        return pybamm.Interpolant(soc_axis, np.asarray(table, dtype=float), _clamped(soc, soc_axis), name=name)
    temps = np.asarray(temps, dtype=float)
    return pybamm.Interpolant((temps, soc_axis), np.asarray(table, dtype=float),
                              [_clamped(t_cell, temps), _clamped(soc, soc_axis)], name=name)


def cell_values(cell: EcmCell):
    """A user's cell as PyBaMM parameter values, with the function signatures of
    ECM_Example: OCV(SoC), R/C(cell temperature [degC], current [A], SoC) (no current
    dependence here), entropic change(OCV, cell temperature [degC])."""
    import numpy as np
    import pybamm

    example = example_set()
    soc, temps = list(cell.soc), cell.temperatures_C
    lower, upper = cell.cut_offs()
    values: dict[str, Any] = {name: example[name] for name in KEPT_FROM_EXAMPLE}
    values.update({CAPACITY: cell.capacity_Ah, NOMINAL: cell.capacity_Ah, LOWER: lower, UPPER: upper})

    def ocv(sto):
        return pybamm.Interpolant(np.asarray(soc), np.asarray(cell.ocv_V), _clamped(sto, soc),
                                  name="Open-circuit voltage [V]")

    def element(name, table):
        def f(t_cell, current, state_of_charge):
            return _interpolant(name, soc, temps, table, state_of_charge, t_cell)
        return f

    values["Open-circuit voltage [V]"] = ocv
    values["R0 [Ohm]"] = element("R0 [Ohm]", cell.r0_Ohm)
    for k, pair in enumerate(cell.rc_pairs, start=1):
        values[f"R{k} [Ohm]"] = element(f"R{k} [Ohm]", pair.r_Ohm)
        values[f"C{k} [F]"] = element(f"C{k} [F]", pair.c_F)
        values[f"Element-{k} initial overpotential [V]"] = 0.0
    if cell.entropic_change_V_per_K is None:
        values["Entropic change [V/K]"] = 0.0
    else:
        # a table at the OCV of each SOC point: linear in the OCV between the points is
        # linear in the SOC too (the OCV is linear in SOC between them)
        def entropic(ocv_v, t_cell):
            return _interpolant("Entropic change [V/K]", cell.ocv_V, temps, cell.entropic_change_V_per_K,
                                ocv_v, t_cell)
        values["Entropic change [V/K]"] = entropic
    return pybamm.ParameterValues(values)


def numbers(job, base) -> dict[str, float]:
    """The job's per-job numbers by PyBaMM name: the cell's, its ecm_cell's capacity and
    cut-offs, its ``parameters`` and its conditions."""
    out = {n: float(base[n]) for n in INPUT_CANDIDATES}
    if job.ecm_cell is not None:
        lower, upper = job.ecm_cell.cut_offs()
        out.update({CAPACITY: job.ecm_cell.capacity_Ah, NOMINAL: job.ecm_cell.capacity_Ah,
                    LOWER: lower, UPPER: upper})
    out.update({n: float(v) for n, v in job.parameters.items()})
    if job.conditions.ambient_temperature_C is not None:
        out[AMBIENT] = out[INITIAL_T] = job.conditions.ambient_temperature_C + 273.15
    if job.conditions.initial_soc is not None:
        out[SOC] = float(job.conditions.initial_soc)
    return out


# -- planning, building, solving -----------------------------------------------------

def plan(job):
    """The job's configuration key and per-job numbers (as ``shared.engine.plan``)."""
    from shared.engine import cache
    from shared.engine.parameters import digest
    from shared.engine.plan import Plan

    options = model_options(job)
    set_id, base = base_values(job)
    per_job = numbers(job, base)
    protocol = job.protocol
    input_names = [n for n in INPUT_CANDIDATES if n not in protocol.fixed_parameters]
    baked = {n: v for n, v in per_job.items() if n not in input_names}
    outputs = list(dict.fromkeys(list(SUMMARY_VARIABLES) + list(job.outputs.variables)))
    key = digest({"kind": "ecm", "model": MODEL_NAME, "options": options, "set": set_id, "baked": baked,
                  "inputs": input_names, "shape": protocol.cache_shape(), "outputs": outputs})
    static = cache.PLANS.get(key)
    if static is None:
        static = _static(job, base, baked, input_names)
        cache.PLANS.put(key, static)
    inputs = {n: per_job[n] for n in static.input_names if n in per_job}
    notes: list[str] = []
    timeline = protocol.timeline(job, static, inputs, notes)
    return Plan(key=key, protocol=protocol, parameter_values=static.parameter_values, inputs=inputs,
                experiment=static.experiment, t_eval=timeline.t_eval, t_interp=timeline.t_interp,
                requested_end_s=timeline.requested_end_s, output_variables=outputs,
                initial_soc=per_job[SOC], esoh=None, notes=notes)


def _static(job, base, baked: dict[str, float], input_names: list[str]):
    from shared.engine.plan import Static

    numeric = base.copy()
    numeric.update(baked, check_already_exists=False)  # (the diffusion time constant is new)
    static = Static(parameter_values=None, numeric_pv=numeric, input_names=(),
                    defaults={n: float(numeric[n]) for n in input_names}, esoh=None)
    static.mark_inputs(job, input_names)
    return static


def built_for(job, plan_):
    """The cached built simulation of this configuration (built on a miss), "hit"/"miss"."""
    import pybamm

    from shared.engine import cache
    from shared.engine.build import ATOL, RTOL, Built

    entry = cache.MODELS.get(plan_.key)
    if entry is not None:
        return entry, "hit"
    t0 = time.perf_counter()
    try:
        model = thevenin(model_options(job))
    except Exception as exc:
        raise SimulationError(f"model.options: PyBaMM rejected the options: {short(exc)}") from exc
    # interpreted: the model is a handful of equations (no precompiled functions)
    options = {**plan_.protocol.solver_options(plan_), "compile": False}
    solver = pybamm.IDAKLUSolver(atol=ATOL, rtol=RTOL, output_variables=plan_.output_variables, options=options)
    sim = pybamm.Simulation(model, parameter_values=plan_.parameter_values, experiment=plan_.experiment,
                            solver=solver)
    entry = Built(sim=sim, built_s=time.perf_counter() - t0, compiled=False)
    cache.MODELS.put(plan_.key, entry)
    return entry, "miss"


def simulate(job) -> dict[str, Any]:
    """Run one equivalent-circuit job; the result has the cell kind's shape."""
    import pybamm

    from shared.engine import cache
    from shared.engine import failures
    from shared.engine.results import result as result_of
    from shared.engine.results import values
    from shared.engine.timings import timings

    t_start = time.perf_counter()
    plan_ = plan(job)
    entry, cache_state = built_for(job, plan_)
    t_solve = time.perf_counter()
    try:
        solution = plan_.protocol.solve(entry.sim, plan_)
    except (pybamm.SolverError, pybamm.ModelError, ValueError, KeyError, TypeError, ZeroDivisionError) as exc:
        raise failures.translate(exc, job, plan_) from exc
    solve_s = time.perf_counter() - t_solve
    if solution is None:
        raise SimulationError("the experiment produced no solution (infeasible first step)")
    result = result_of(job, plan_, solution)
    result["summary"]["Final state of charge"] = round(float(values(solution, "SoC")[-1]), 6)
    del solution
    cache.trim_to_memory()
    result["timings"] = timings(cache_state, entry.built_s, solve_s, t_start)
    return result


# -- checks at submit ----------------------------------------------------------------

def check(job) -> list[dict[str, str]]:
    """Errors naming each field the Thevenin kind refuses (before anything is published)."""
    from shared.engine import failures

    if job.model.name != MODEL_NAME:
        return [{"field": "ecm_cell", "error": f"only for model {MODEL_NAME}; this job's model is "
                                               f"{job.model.name}"}]
    errors: list[dict[str, str]] = []
    explicit_set = "parameter_set" in job.model_fields_set and job.parameter_set is not None
    if job.bpx is not None:
        errors.append({"field": "bpx", "error": f"model {MODEL_NAME} takes {EXAMPLE_SET} or an ecm_cell, "
                                                f"not a BPX document"})
    if job.ecm_cell is not None and explicit_set:
        errors.append({"field": "parameter_set", "error": f"give either parameter_set ({job.parameter_set!r}) "
                                                          "or ecm_cell, not both"})
    elif explicit_set and job.parameter_set != EXAMPLE_SET:
        errors.append({"field": "parameter_set", "error": (
            f"{job.parameter_set!r} is not a parameter set of model {MODEL_NAME}: use {EXAMPLE_SET!r}, "
            f"or give your own cell as ecm_cell")})
    if job.protocol.type not in PROTOCOLS:
        errors.append({"field": "protocol.type", "error": (
            f"model {MODEL_NAME} runs {', '.join(PROTOCOLS)}; {job.protocol.type!r} needs a physics-based "
            f"model (SPM, SPMe, DFN)")})
    errors += _option_errors(job)
    if errors:
        return errors  # the rest needs a valid model and cell

    options = model_options(job)
    names, scalars, needed = _model_info(tuple(options.items()))
    _, base = base_values(job)
    keys = set(base.keys())
    source = "ECM_Example" if job.ecm_cell is None else "the ecm_cell"
    if job.ecm_cell is None and options.get(RC, 1) > 1:
        errors.append({"field": f"model.options.{RC}", "error": (
            f"{EXAMPLE_SET} defines 1 RC pair (R1 [Ohm], C1 [F]); for {options[RC]}, give your cell as "
            f"ecm_cell")})
    if options.get(DIFFUSION) == "true" and DIFFUSION_TIME not in job.parameters:
        errors.append({"field": f"model.options.{DIFFUSION}", "error": (
            f"the diffusion element needs parameters[{DIFFUSION_TIME!r}] (> 0), which {source} does not "
            f"define")})
    allowed = keys | ({DIFFUSION_TIME} if options.get(DIFFUSION) == "true" else set())
    for name, value in job.parameters.items():
        if name not in allowed:
            errors.append({"field": f"parameters.{name}", "error": f"not a parameter of {MODEL_NAME} with {source}"})
        elif parameter_range(name) is not None:
            lo, hi, closed = parameter_range(name)
            if not ((lo <= value) if closed else (lo < value)) or value > hi:
                errors.append({"field": f"parameters.{name}",
                               "error": f"must be in {'[' if closed else '('}{lo:g}, {hi:g}]"})
    for var in job.outputs.variables:
        if var not in names:
            errors.append({"field": "outputs.variables", "error": f"{var!r} is not a variable of {MODEL_NAME}"})
        elif var not in scalars:
            errors.append({"field": "outputs.variables", "error": f"{var!r} is not a scalar (0-D) variable"})
    errors += _state_errors(job, base)
    steps = failures.step_errors(job.protocol.steps) if job.protocol.type == "experiment" else []
    errors += steps or job.protocol.check()
    return errors


def _option_errors(job) -> list[dict[str, str]]:
    errors = []
    for name, value in job.model.options.items():
        offered = OPTIONS_OFFERED.get(name)
        if offered is None:
            errors.append({"field": f"model.options.{name}", "error": (
                f"not an option of {MODEL_NAME} here; offered: {sorted(OPTIONS_OFFERED)}")})
        elif _as_int(value) not in offered or isinstance(_as_int(value), bool):
            errors.append({"field": f"model.options.{name}", "error": f"{value!r} is not one of {offered}"})
    cell = job.ecm_cell
    if cell is not None and RC in job.model.options and _as_int(job.model.options[RC]) != len(cell.rc_pairs):
        errors.append({"field": f"model.options.{RC}", "error": (
            f"{job.model.options[RC]!r}, but ecm_cell.rc_pairs has {len(cell.rc_pairs)} pairs: they must match")})
    return errors


def _state_errors(job, base) -> list[dict[str, str]]:
    """The initial SOC strictly inside (0, 1) (PyBaMM's SoC events end a run at 0 and 1),
    the cut-offs ordered, and the OCV at the initial SOC within them."""
    import numpy as np
    import pybamm

    per_job = numbers(job, base)
    soc, lower, upper = per_job[SOC], per_job[LOWER], per_job[UPPER]
    field = "conditions.initial_soc" if job.conditions.initial_soc is not None else f"parameters.{SOC}"
    if not 0 < soc < 1:
        return [{"field": field, "error": f"{soc:g}: the Thevenin model's SoC events end a run at 0 and 1; "
                                          "give a value strictly between"}]
    given = [n for n in (LOWER, UPPER) if n in job.parameters]
    if lower >= upper:
        return [{"field": f"parameters.{(given or [LOWER])[0]}",
                 "error": f"the lower cut-off {lower:g} V must be below the upper cut-off {upper:g} V"}]
    if job.conditions.initial_soc is None and SOC not in job.parameters:
        # the set's own initial SOC: what the job gave is the cut-offs
        field = (f"parameters.{given[0]}" if given else
                 "ecm_cell" if job.ecm_cell is not None else "conditions.initial_soc")
    try:
        symbol = pybamm.FunctionParameter(OCV, {"SoC": pybamm.Scalar(soc)})
        ocv = float(job.parameters[OCV]) if OCV in job.parameters else float(np.ravel(base.evaluate(symbol))[0])
    except Exception:  # noqa: BLE001 - the solver's own check (failures.translate) still applies
        return []
    if not lower < ocv < upper:
        return [{"field": field, "error": (
            f"the open-circuit voltage at SOC {soc:g} is {ocv:.4g} V, outside the cut-offs {lower:g}-{upper:g} V")}]
    return []


# -- the catalog ---------------------------------------------------------------------

def describe() -> dict[str, Any]:
    names, scalars, _ = _model_info(tuple(sorted({RC: 1}.items())))
    example = example_set()
    return {
        "model": MODEL_NAME,
        "pybamm_model": "pybamm.equivalent_circuit.Thevenin",
        "options": OPTIONS_OFFERED,
        "option_defaults": {RC: "the ecm_cell's number of RC pairs, else 1", DIFFUSION: "false"},
        "thermal": "always on: PyBaMM's lumped cell and jig temperatures (its parameters below)",
        "parameter_sets": [EXAMPLE_SET],
        "protocols": list(PROTOCOLS),
        "parameters": sorted(k for k in example.keys() if isinstance(example[k], (int, float)))
                      + [f"{DIFFUSION_TIME} (with the diffusion element)"],
        "ecm_cell": {
            "axes": {"soc": f"2-{LIMITS['max_ecm_soc_points']} points, strictly increasing, in [0, 1]",
                     "temperatures_C": f"optional, 2-{LIMITS['max_ecm_temperatures']} points [degC], strictly "
                                       f"increasing, in {list(TEMPERATURE_RANGE_C)}"},
            "tables": {"ocv_V": "one value per SOC point",
                       "r0_Ohm": "one value per SOC point, or (with temperatures_C) one row per temperature",
                       "rc_pairs": f"up to {LIMITS['max_ecm_rc_pairs']} pairs of {{r_Ohm, c_F}}, tables as r0_Ohm",
                       "entropic_change_V_per_K": "optional, as r0_Ohm; needs ocv_V strictly increasing"},
            "ranges": {"R [Ohm]": f"({RESISTANCE_RANGE_OHM[0]:g}, {RESISTANCE_RANGE_OHM[1]:g}]",
                       "C [F]": f"({CAPACITANCE_RANGE_F[0]:g}, {CAPACITANCE_RANGE_F[1]:g}]",
                       "entropic change [V/K]": f"[-{ENTROPIC_CHANGE_LIMIT_V_PER_K:g}, "
                                                f"{ENTROPIC_CHANGE_LIMIT_V_PER_K:g}]"},
            "scalars": {"capacity_Ah": "(0, 1000]",
                        "lower_voltage_cut_off_V, upper_voltage_cut_off_V": "optional; default the OCV table's range"},
            "between_points": "linear; held constant beyond the axes' ends; no current dependence",
        },
        "default_outputs": DEFAULT_OUTPUTS,
        "output_variables": sorted(scalars),
        "added_variables": list(ADDED_VARIABLES),
    }


class Ecm(Kind):
    """An equivalent-circuit cell (PyBaMM's Thevenin model) over time, under one protocol.
    Takes every job with model Thevenin, and every job with an ecm_cell (to refuse it
    for other models)."""

    name = "ecm"

    def accepts(self, job) -> bool:
        return job.model.name == MODEL_NAME or job.ecm_cell is not None

    def check(self, job):
        return check(job)

    def simulate(self, job, compiled: Optional[bool] = None, segment=None):
        if segment is not None:
            raise SimulationError(f"a {MODEL_NAME} job does not run in segments")
        return simulate(job)

    def describe(self):
        return describe()

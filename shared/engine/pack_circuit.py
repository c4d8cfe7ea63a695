"""A pack of differing equivalent-circuit cells as one PyBaMM model (``pybamm.BaseModel``).

Each cell is PyBaMM's Thevenin cell with one RC pair and its lumped thermal model
(``pybamm.equivalent_circuit.Thevenin``'s equations, written per cell): state of
charge, RC overpotential, cell and jig temperatures are its differential states;
OCV(SoC), R0, R1 and C1 (of cell temperature, current and SoC) and the thermal
masses and heat transfer come from the cell's parameter values (``ECM_Example``).
Cell (s, p) — series element s, parallel position p, from 0 — has its capacity times
its capacity factor and R0 and R1 times its resistance factor.

The circuit: Ns series elements, each of Np branches in parallel; a branch is one
cell in series with its interconnect resistance R_ic (tab, weld and busbar share).
The cell currents I_sp and the element voltages V_s are algebraic variables with
Kirchhoff's laws as their equations:

    V_cell(s, p) - R_ic I_sp - V_s = 0      (every branch of an element at its voltage)
    sum_p I_sp - I_pack = 0                 (the element carries the pack current)

and the pack voltage is sum_s V_s. IDAKLU solves the DAE. The pack stops when any
cell reaches its voltage cut-offs (or its SoC 0 or 1), as a BMS would stop it.

The per-job numbers are PyBaMM input parameters (``INPUTS``): the pack current, each
cell's factors and initial state (SoC, RC overpotential, temperatures), the
interconnect resistance, the cut-offs, capacity and ambient temperature, and two
pack-voltage stops for experiment steps. So one built model per shape (Ns x Np, the
job's other ``parameters``, a drive cycle's profile) is kept in ``cache.MODELS`` and
a second job re-solves it; an experiment is one solve per step, each starting from
the last step's end state given as inputs.
"""

from __future__ import annotations

import math
import time
from types import SimpleNamespace
from typing import Any, Optional

KELVIN = 273.15

PACK_CURRENT = "Current function [A]"  # PyBaMM's name; the pack's, positive on discharge
INTERCONNECT = "Interconnect resistance [Ohm]"
STOP_FALLING = "Pack voltage stop, falling [V]"  # an experiment step's 'until' (discharge)
STOP_RISING = "Pack voltage stop, rising [V]"    # an experiment step's 'until' (charge)
NO_STOP_FALLING, NO_STOP_RISING = -1e6, 1e6
UPPER, LOWER = "Upper voltage cut-off [V]", "Lower voltage cut-off [V]"
CAPACITY, AMBIENT, INITIAL_T, SOC = ("Cell capacity [A.h]", "Ambient temperature [K]",
                                     "Initial temperature [K]", "Initial SoC")
RC_INITIAL = "Element-1 initial overpotential [V]"
OCV = "Open-circuit voltage [V]"
# the set's numbers made inputs (the job's values, else ECM_Example's)
SET_INPUTS = (UPPER, LOWER, CAPACITY, AMBIENT)
# the set's numbers the model reads only through the per-cell inputs
NOT_BAKED = SET_INPUTS + (PACK_CURRENT, INITIAL_T, SOC, RC_INITIAL, "Nominal cell capacity [A.h]")


def cell_name(s: int, p: int) -> str:
    return f"cell {s + 1}-{p + 1}"


def capacity_factor(name: str) -> str:
    return f"Capacity factor ({name})"


def resistance_factor(name: str) -> str:
    return f"Resistance factor ({name})"


def initial_soc(name: str) -> str:
    return f"Initial SoC ({name})"


def initial_rc(name: str) -> str:
    return f"Initial RC overpotential ({name}) [V]"


def initial_t_cell(name: str) -> str:
    return f"Initial cell temperature ({name}) [degC]"


def initial_t_jig(name: str) -> str:
    return f"Initial jig temperature ({name}) [degC]"


def model(series: int, parallel: int):
    """The pack's PyBaMM model (parameters by PyBaMM's ECM names; "Current function [A]"
    is the pack current, positive on discharge; the per-cell numbers are inputs)."""
    import pybamm

    param = pybamm.EcmParameters()
    m = pybamm.BaseModel(name=f"pack {series}S{parallel}P")
    current = param.current_with_time
    t_amb = param.T_amb(pybamm.t)
    r_ic = pybamm.InputParameter(INTERCONNECT)
    pack_voltage = pybamm.Scalar(0)
    low, high = param.voltage_low_cut, param.voltage_high_cut
    variables: dict[str, Any] = {}
    for s in range(series):
        v_element = pybamm.Variable(f"Element {s + 1} voltage [V]")
        branch_currents = []
        for p in range(parallel):
            name = cell_name(s, p)
            soc = pybamm.Variable(f"SoC ({name})")
            v_rc = pybamm.Variable(f"RC overpotential ({name}) [V]")
            t_cell = pybamm.Variable(f"Cell temperature ({name}) [degC]")
            t_jig = pybamm.Variable(f"Jig temperature ({name}) [degC]")
            i = pybamm.Variable(f"Current ({name}) [A]")
            k_q = pybamm.InputParameter(capacity_factor(name))
            k_r = pybamm.InputParameter(resistance_factor(name))
            ocv = param.ocv(soc)
            r0 = k_r * param.rcr_element("R0 [Ohm]", t_cell, i, soc)
            r1 = k_r * param.rcr_element("R1 [Ohm]", t_cell, i, soc)
            c1 = param.rcr_element("C1 [F]", t_cell, i, soc)
            tau = r1 * c1
            v_cell = ocv - i * r0 + v_rc
            q_irr = i ** 2 * r0 - i * v_rc
            q_rev = -i * (t_cell + KELVIN) * param.dUdT(ocv, t_cell)
            q_cell_jig = -param.k_cell_jig * (t_cell - t_jig)
            q_jig_air = -param.k_jig_air * (t_jig - t_amb)
            m.rhs.update({
                soc: -i / (k_q * param.cell_capacity) / 3600,
                v_rc: -v_rc / tau - i * r1 / tau,
                t_cell: (q_irr + q_rev + q_cell_jig) / param.cth_cell,
                t_jig: (q_jig_air - q_cell_jig) / param.cth_jig,
            })
            m.algebraic[i] = v_cell - r_ic * i - v_element
            soc0 = pybamm.InputParameter(initial_soc(name))
            m.initial_conditions.update({
                soc: soc0, v_rc: pybamm.InputParameter(initial_rc(name)),
                t_cell: pybamm.InputParameter(initial_t_cell(name)),
                t_jig: pybamm.InputParameter(initial_t_jig(name)),
                i: current / parallel,
            })
            m.events += [
                pybamm.Event(f"Minimum voltage [V] ({name})", v_cell - low),
                pybamm.Event(f"Maximum voltage [V] ({name})", high - v_cell),
                pybamm.Event(f"Minimum SoC ({name})", soc),
                pybamm.Event(f"Maximum SoC ({name})", 1 - soc),
            ]
            variables.update({
                f"Current ({name}) [A]": i, f"Voltage ({name}) [V]": v_cell, f"SoC ({name})": soc,
                f"Cell temperature ({name}) [degC]": t_cell, f"RC overpotential ({name}) [V]": v_rc,
                f"Jig temperature ({name}) [degC]": t_jig,
            })
            branch_currents.append(i)
        m.algebraic[v_element] = sum(branch_currents[1:], branch_currents[0]) - current
        m.initial_conditions[v_element] = param.ocv(pybamm.InputParameter(initial_soc(cell_name(s, 0))))
        variables[f"Element {s + 1} voltage [V]"] = v_element
        pack_voltage = pack_voltage + v_element
    m.events += [
        pybamm.Event(STOP_FALLING, pack_voltage - pybamm.InputParameter(STOP_FALLING)),
        pybamm.Event(STOP_RISING, pybamm.InputParameter(STOP_RISING) - pack_voltage),
    ]
    variables.update({
        "Time [s]": pybamm.t,
        "Battery voltage [V]": pack_voltage,
        "Battery current [A]": current,
    })
    m.variables = variables
    return m


# -- a pack job (model Thevenin with ``pack``) ------------------------------------------

VARIABLES_PER_CELL = ("Current", "Voltage", "SoC", "Cell temperature")
PROTOCOLS = ("constant_current", "drive_cycle", "experiment")
STEP_KINDS = ("Current", "CRate", "Rest")  # pybamm.step classes a pack's experiment runs
UNTIL_CUT_OFF_FACTOR = 1.5  # as constant_current: 1.5 x the hours a full charge lasts
DEFAULT_STEP_PERIOD_S = 60.0  # as PyBaMM's experiments
# the largest result the store is shown to hold: 20,000 points x 30 variables
MAX_VALUES = 20_000 * 30


def cell_columns(name: str) -> list[str]:
    return [f"Current ({name}) [A]", f"Voltage ({name}) [V]", f"SoC ({name})",
            f"Cell temperature ({name}) [degC]"]


def names_of(pack) -> list[str]:
    return [cell_name(s, p) for s in range(pack.series) for p in range(pack.parallel)]


def one_cell(job):
    """One cell of the pack as a Thevenin job (its checks): the pack's voltage limits over
    ``series`` as its cut-offs, the pack current over ``parallel`` (another protocol: a
    minute at 1C, for the cell's parameter and state checks)."""
    from shared.engine.pack import cell_parameters

    protocol = job.protocol
    if protocol.type == "constant_current":
        protocol = protocol.model_copy(deep=True)
        if protocol.current_A is not None:
            protocol.current_A = protocol.current_A / job.pack.parallel
    else:
        from shared.contract.job import Job

        protocol = Job.model_validate({"protocol": {"type": "constant_current", "c_rate": 1,
                                                    "duration_s": 60}}).protocol
    return job.model_copy(update={"pack": None, "parameters": cell_parameters(job), "protocol": protocol})


def numbers(job) -> dict[str, float]:
    """The job's per-job numbers by PyBaMM name (the pack's limits over series as the
    cell's cut-offs; conditions; ``parameters``), over ECM_Example's."""
    from shared.engine import ecm

    out = ecm.numbers(one_cell(job), ecm.example_set())
    out.setdefault(RC_INITIAL, float(ecm.example_set()[RC_INITIAL]))
    return out


def baked(job) -> dict[str, float]:
    """The job's ``parameters`` built into the model (the rest are inputs)."""
    from shared.engine.pack import cell_parameters

    return {n: float(v) for n, v in sorted(cell_parameters(job).items()) if n not in NOT_BAKED}


def cache_key(job) -> str:
    from shared.engine.parameters import digest

    protocol = job.protocol
    current = protocol.cache_shape() if protocol.type == "drive_cycle" else "input"
    return digest({"kind": "pack_circuit", "series": job.pack.series, "parallel": job.pack.parallel,
                   "baked": baked(job), "current": current})


def cycle_times(protocol):
    """A drive cycle's knot times [s]."""
    import numpy as np

    from shared.engine import drive_cycles

    if protocol.name is not None:
        return np.asarray(drive_cycles.load(protocol.name)[0], dtype=float)
    return np.asarray(protocol.time_s, dtype=float)


def built_for(job):
    """The cached built simulation of the job's shape (built on a miss), "hit"/"miss"."""
    import numpy as np
    import pybamm

    from shared.engine import cache, ecm
    from shared.engine.build import ATOL, RTOL, Built
    from shared.engine.protocols.drive_cycle import FIRST_STEP_S

    key = cache_key(job)
    entry = cache.MODELS.get(key)
    if entry is not None:
        return entry, "hit"
    t0 = time.perf_counter()
    pv = ecm.example_set().copy()
    pv.update(baked(job))
    pv.update({n: "[input]" for n in SET_INPUTS})
    # the cell path's IDAKLU option (protocols.base): ~6x faster here (5S10P, 1 h: 2.2 s, not 14 s)
    options: dict[str, Any] = {"suppress_algebraic_error": True}
    if job.protocol.type == "drive_cycle":
        job.protocol.prepare(SimpleNamespace(protocol_data={}), pv)  # the pack current's interpolant
        options["dt_init"] = min(FIRST_STEP_S, float(np.min(np.diff(cycle_times(job.protocol)))) / 10.0)
    else:
        pv[PACK_CURRENT] = "[input]"
    sim = pybamm.Simulation(model(job.pack.series, job.pack.parallel), parameter_values=pv,
                            solver=pybamm.IDAKLUSolver(atol=ATOL, rtol=RTOL, options=options))
    sim.build()
    entry = Built(sim=sim, built_s=time.perf_counter() - t0, compiled=False)
    cache.MODELS.put(key, entry)
    return entry, "miss"


def inputs_of(job, nums: dict[str, float]) -> dict[str, float]:
    """The model's inputs for the job at its start (the pack current apart)."""
    pack = job.pack
    out = {n: float(nums[n]) for n in SET_INPUTS}
    out.update({INTERCONNECT: float(pack.interconnect_resistance_Ohm or 0.0),
                STOP_FALLING: NO_STOP_FALLING, STOP_RISING: NO_STOP_RISING})
    t0 = float(nums[INITIAL_T]) - KELVIN
    for k, name in enumerate(names_of(pack)):
        out[capacity_factor(name)] = float(pack.capacity_factors[k]) if pack.capacity_factors else 1.0
        out[resistance_factor(name)] = float(pack.resistance_factors[k]) if pack.resistance_factors else 1.0
        out[initial_soc(name)] = float(pack.initial_socs[k]) if pack.initial_socs else float(nums[SOC])
        out[initial_rc(name)] = float(nums[RC_INITIAL])
        out[initial_t_cell(name)] = out[initial_t_jig(name)] = t0
    return out


def end_state(solution, names: list[str]) -> dict[str, float]:
    """Each cell's state at the solution's end, as the initial-state inputs of the next solve."""
    out = {}
    for name in names:
        for var, inp in ((f"SoC ({name})", initial_soc), (f"RC overpotential ({name}) [V]", initial_rc),
                         (f"Cell temperature ({name}) [degC]", initial_t_cell),
                         (f"Jig temperature ({name}) [degC]", initial_t_jig)):
            out[inp(name)] = float(solution[var].entries[-1])
    return out


def arrays_of(solution, names: list[str]) -> dict[str, Any]:
    """The result's series of one solve (so the solution itself can be freed)."""
    import numpy as np

    out = {var: np.asarray(solution[var].entries, dtype=float)
           for var in ("Time [s]", "Battery voltage [V]", "Battery current [A]")}
    out.update({c: np.asarray(solution[c].entries, dtype=float) for name in names for c in cell_columns(name)})
    if out["Battery current [A]"].size == 1:  # an input: one number
        out["Battery current [A]"] = np.full_like(out["Time [s]"], float(out["Battery current [A]"]))
    return out


def pack_current(job, nums: dict[str, float]) -> float:
    protocol = job.protocol
    if protocol.current_A is not None:
        return float(protocol.current_A)
    return float(protocol.c_rate) * float(nums[CAPACITY]) * job.pack.parallel


def step_current(step, job, nums: dict[str, float]) -> float:
    """A current, C-rate or rest step's pack current [A] (positive on discharge)."""
    if type(step).__name__ == "CRate":
        return float(step.value) * float(nums[CAPACITY]) * job.pack.parallel
    return float(step.value)


def ocv_of(soc: float, nums: dict[str, float]) -> float:
    """The cell's open-circuit voltage at ``soc`` [V]: ECM_Example's, or the job's number."""
    import numpy as np
    import pybamm

    from shared.engine import ecm

    if OCV in nums:
        return float(nums[OCV])
    symbol = pybamm.FunctionParameter("Open-circuit voltage [V]", {"SoC": pybamm.Scalar(soc)})
    return float(np.ravel(ecm.example_set().evaluate(symbol))[0])


def _grid(duration: float, period: float):
    import numpy as np

    from shared.contract.limits import LIMITS

    n = min(int(math.ceil(duration / period)) + 1, int(LIMITS["max_output_points"]))
    return np.linspace(0.0, duration, max(n, 2))


def run_experiment(job, sim, inputs: dict[str, float], nums: dict[str, float], notes: list[str]):
    """Each step one solve from the last step's end state; (pieces [(series, t offset)],
    termination, completed)."""
    import pybamm

    from shared.contract.limits import LIMITS

    protocol = job.protocol
    names = names_of(job.pack)
    period = protocol.period_s or job.outputs.period_s or DEFAULT_STEP_PERIOD_S
    steps = [pybamm.step.string(s) for s in protocol.steps] * protocol.cycles
    texts = list(protocol.steps) * protocol.cycles
    pieces, offset = [], 0.0
    state = dict(inputs)
    # the pack at rest at its start (a rest step's 'until' is towards a voltage from here)
    last_v = sum(ocv_of(state[initial_soc(cell_name(s, 0))], nums) for s in range(job.pack.series))
    for k, (step, text) in enumerate(zip(steps, texts)):
        duration = min(float(step.duration), LIMITS["max_duration_s"] - offset)
        if duration <= 0:
            notes.append(f"stopped at max_duration_s ({LIMITS['max_duration_s']:g} s) before step {k}")
            return pieces, "max_duration_s", False
        current = step_current(step, job, nums)
        stops = {STOP_FALLING: NO_STOP_FALLING, STOP_RISING: NO_STOP_RISING}
        for term in step.termination:
            v = float(term.value)
            falling = current > 0 or (current == 0 and last_v > v)
            stops[STOP_FALLING if falling else STOP_RISING] = v
        if last_v <= stops[STOP_FALLING] or last_v >= stops[STOP_RISING]:
            notes.append(f"step {k} ({text!r}) skipped: the pack is at {last_v:.4g} V, already past its 'until'")
            continue
        state.update({PACK_CURRENT: current, **stops})
        try:
            solution = sim.solve([0.0, duration], t_interp=_grid(duration, period), inputs=state)
        except pybamm.SolverError as exc:
            if "initial conditions" in str(exc) and "Pack voltage stop" in str(exc):
                notes.append(f"step {k} ({text!r}) skipped: its 'until' voltage is met at its start")
                continue
            raise
        pieces.append((arrays_of(solution, names), offset))
        termination = str(solution.termination)
        offset += float(pieces[-1][0]["Time [s]"][-1])
        last_v = float(pieces[-1][0]["Battery voltage [V]"][-1])
        state.update(end_state(solution, names))
        del solution
        if termination.startswith("event:") and "Pack voltage stop" not in termination:
            notes.append(f"stopped early in step {k} ({text!r}) at {offset:g} s: {termination[7:]}")
            return pieces, termination, False
    return pieces, "final time", True


def _thinned(n: int, most: int):
    import numpy as np

    if n <= most:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, most)).astype(int))


def simulate(job) -> dict[str, Any]:
    """Run a pack of equivalent-circuit cells; the service's result shape."""
    import numpy as np
    import pybamm

    from shared.contract.limits import LIMITS
    from shared.engine import cache
    from shared.engine.errors import SimulationError, short
    from shared.engine.timings import timings

    t0 = time.perf_counter()
    pack, protocol = job.pack, job.protocol
    ns, np_ = pack.series, pack.parallel
    nums = numbers(job)
    entry, cache_state = built_for(job)
    inputs = inputs_of(job, nums)
    names = names_of(pack)
    notes = [f"a pack of {ns} in series x {np_} in parallel equivalent-circuit cells (ECM_Example, Thevenin "
             f"with one RC pair and its lumped cell-jig thermal model each), solved as one PyBaMM model: "
             f"Kirchhoff's laws give each cell's current; the pack stops when any cell reaches a cut-off"]
    requested_end: Optional[float] = None
    t_solve = time.perf_counter()
    try:
        if protocol.type == "constant_current":
            current = pack_current(job, nums)
            inputs[PACK_CURRENT] = current
            if protocol.duration_s is not None:
                requested_end = float(protocol.duration_s)
            else:
                requested_end = min(UNTIL_CUT_OFF_FACTOR * 3600.0 * float(nums[CAPACITY]) * np_ / abs(current),
                                    LIMITS["max_duration_s"])
                notes.append("runs until a cell reaches a voltage cut-off")
            solution = entry.sim.solve([0.0, requested_end], inputs=inputs,
                                       t_interp=np.linspace(0.0, requested_end, job.outputs.max_points))
            pieces, termination = [(arrays_of(solution, names), 0.0)], str(solution.termination)
            completed = termination == "final time" if protocol.duration_s is not None \
                else termination.startswith("event: M") and "voltage" in termination
        elif protocol.type == "drive_cycle":
            timeline = protocol.timeline(job, SimpleNamespace(protocol_data={"t": cycle_times(protocol)}),
                                         inputs, notes)
            requested_end = timeline.requested_end_s
            solution = entry.sim.solve(timeline.t_eval, inputs=inputs, t_interp=timeline.t_interp)
            pieces, termination = [(arrays_of(solution, names), 0.0)], str(solution.termination)
            completed = termination == "final time"
        else:
            pieces, termination, completed = run_experiment(job, entry.sim, inputs, nums, notes)
            if not pieces:
                raise SimulationError("protocol.steps: no step ran (every step's 'until' was met at its start)")
    except (pybamm.SolverError, ValueError, ZeroDivisionError) as exc:
        raise SimulationError(f"the pack could not be solved: {short(exc)}") from exc
    solve_s = time.perf_counter() - t_solve
    until_cut_off = protocol.type == "constant_current" and protocol.duration_s is None
    if protocol.type != "experiment" and not until_cut_off and termination.startswith("event:"):
        notes.append(f"stopped early at {float(pieces[-1][0]['Time [s]'][-1]):g} s of {requested_end:g} s: "
                     f"{termination[7:]} (a cell's cut-off, as a BMS would stop the pack)")

    def joined(var):
        return np.concatenate([piece[var] for piece, _ in pieces])

    t = np.concatenate([piece["Time [s]"] + offset for piece, offset in pieces])
    keep = _thinned(len(t), job.outputs.max_points)
    full_t, full_v, full_i = t, joined("Battery voltage [V]"), joined("Battery current [A]")
    cells = {c: joined(c) for name in names for c in cell_columns(name)}
    currents = np.array([cells[f"Current ({name}) [A]"] for name in names])
    temps = np.array([cells[f"Cell temperature ({name}) [degC]"] for name in names])
    socs = np.array([cells[f"SoC ({name})"] for name in names])
    del pieces
    cache.trim_to_memory()

    def integral(y):
        return float(np.trapezoid(y, full_t) / 3600.0) if len(full_t) > 1 else 0.0

    power = full_v * full_i
    summary = {
        "Number of cells connected in series to make a battery": ns,
        "Number of cells connected in parallel": np_,
        "Battery discharged capacity [A.h]": integral(np.maximum(full_i, 0.0)),
        "Battery charged capacity [A.h]": integral(np.maximum(-full_i, 0.0)),
        "Battery discharged energy [W.h]": integral(np.maximum(power, 0.0)),
        "Battery charged energy [W.h]": integral(np.maximum(-power, 0.0)),
        "Battery minimum voltage [V]": float(full_v.min()),
        "Battery maximum voltage [V]": float(full_v.max()),
        "Maximum cell current [A]": float(currents.max()),
        "Minimum cell current [A]": float(currents.min()),
        "Maximum cell temperature [degC]": float(temps.max()),
        "Final SoC range": [float(socs[:, -1].min()), float(socs[:, -1].max())],
        "End time [s]": float(full_t[-1]),
    }
    if requested_end is not None:
        summary["Requested end time [s]"] = float(requested_end)
    result: dict[str, Any] = {
        "termination": termination,
        "completed": bool(completed),
        "stoppedEarly": not bool(completed),
        "endTime": float(full_t[-1]),
        "summary": summary,
        "notes": notes,
    }
    if not job.outputs.summary_only:
        columns = {"Time [s]": full_t[keep].tolist(), "Battery voltage [V]": full_v[keep].tolist(),
                   "Battery current [A]": np.asarray(full_i)[keep].tolist()}
        columns.update({k: val[keep].tolist() for k, val in cells.items()})
        result["columns"] = columns
    result["timings"] = timings(cache_state, entry.built_s, solve_s, t0)
    return result


# -- checks at submit ----------------------------------------------------------------

def check(job) -> list[dict[str, str]]:
    """What a pack of equivalent-circuit cells may not ask."""
    from shared.contract.job import DEFAULT_OUTPUTS
    from shared.contract.limits import LIMITS
    from shared.engine import ecm
    from shared.engine.pack import cut_off_errors, field_of

    pack = job.pack
    errors = []
    n = pack.series * pack.parallel
    if n > LIMITS["max_pack_circuit_cells"]:
        errors.append({"field": "pack", "error": f"{pack.series} x {pack.parallel} = {n} cells; a pack of "
                                                 f"equivalent-circuit cells has at most "
                                                 f"{LIMITS['max_pack_circuit_cells']} (max_pack_circuit_cells)"})
    if job.protocol.type not in PROTOCOLS:
        errors.append({"field": "protocol", "error": f"a pack of equivalent-circuit cells runs "
                                                     f"{', '.join(PROTOCOLS)}, not {job.protocol.type!r}"})
    extra = {k: v for k, v in job.model.options.items() if str(v) not in ("1", "false")}
    if extra:
        errors.append({"field": "model.options", "error": f"a pack's cells are Thevenin cells with one RC pair "
                                                          f"and no diffusion element, not {extra}"})
    if job.ecm_cell is not None:
        errors.append({"field": "ecm_cell", "error": "a pack's cells are ECM_Example cells (an ecm_cell is not "
                                                     "offered in packs yet)"})
    if list(job.outputs.variables) != list(DEFAULT_OUTPUTS):
        errors.append({"field": "outputs.variables", "error": "a pack of equivalent-circuit cells has fixed "
                                                              "columns (the battery's and each cell's); leave "
                                                              "outputs.variables out"})
    errors += cut_off_errors(job)
    if not errors:  # the cell's own checks (parameters, initial SOC, cut-offs), as the Thevenin kind's
        errors += [field_of(e, job) for e in ecm.check(one_cell(job))]
    if not errors:
        errors += _initial_soc_errors(job) + _protocol_errors(job)
    values = (3 + len(VARIABLES_PER_CELL) * n) * job.outputs.max_points
    if not job.outputs.summary_only and values > MAX_VALUES:
        errors.append({"field": "outputs.max_points",
                       "error": f"{3 + len(VARIABLES_PER_CELL) * n} columns x {job.outputs.max_points} points is "
                                f"above {MAX_VALUES} values; ask for at most "
                                f"{MAX_VALUES // (3 + len(VARIABLES_PER_CELL) * n)} points"})
    return errors


def _initial_soc_errors(job) -> list[dict[str, str]]:
    """Each cell's initial SoC strictly in (0, 1) with its OCV within the cut-offs."""
    if job.pack.initial_socs is None:
        return []
    nums = numbers(job)
    lower, upper = nums[LOWER], nums[UPPER]
    errors = []
    for k, soc in enumerate(job.pack.initial_socs):
        field = f"pack.initial_socs.{k}"
        if not 0 < soc < 1:
            errors.append({"field": field, "error": f"{soc:g}: the Thevenin cell's SoC events end a run at 0 "
                                                    "and 1; give a value strictly between"})
            continue
        ocv = ocv_of(soc, nums)
        if not lower < ocv < upper:
            errors.append({"field": field, "error": f"the open-circuit voltage at SoC {soc:g} is {ocv:.4g} V, "
                                                    f"outside the cell's cut-offs {lower:g}-{upper:g} V"})
    return errors


def _protocol_errors(job) -> list[dict[str, str]]:
    """Per-cell current limits; a drive cycle's own checks; the step kinds an experiment
    of a pack runs (current, C-rate, rest; 'until' a pack voltage)."""
    import pybamm

    from shared.contract.limits import LIMITS
    from shared.engine import failures

    protocol, np_ = job.protocol, job.pack.parallel
    nums = numbers(job)
    most = LIMITS["max_current_A"]
    if protocol.type == "constant_current":
        current = pack_current(job, nums)
        if abs(current) / np_ > most:
            return [{"field": "protocol", "error": f"{abs(current):g} A over {np_} in parallel is "
                                                   f"{abs(current) / np_:g} A a cell; the limit is {most:g} A"}]
        return []
    if protocol.type == "drive_cycle":
        return protocol.check()
    errors = failures.step_errors(list(protocol.steps))
    if errors:
        return errors
    for k, text in enumerate(protocol.steps):
        field = f"protocol.steps.{k}"
        step = pybamm.step.string(text)
        kind = type(step).__name__
        if kind not in STEP_KINDS:
            errors.append({"field": field, "error": f"step {k}, {text!r}: a pack of equivalent-circuit cells runs "
                                                    f"current, C-rate and rest steps, not {kind.lower()} steps"})
            continue
        others = [type(t).__name__ for t in step.termination if type(t).__name__ != "VoltageTermination"]
        if others:
            errors.append({"field": field, "error": f"step {k}, {text!r}: a pack's step ends 'until' a pack "
                                                    f"voltage [V] only, not {', '.join(others)}"})
        current = abs(step_current(step, job, nums))
        if current / np_ > most:
            errors.append({"field": field, "error": f"step {k}, {text!r}: {current:g} A over {np_} in parallel "
                                                    f"is {current / np_:g} A a cell; the limit is {most:g} A"})
    return errors

"""A pack of differing equivalent-circuit cells as one PyBaMM model (``pybamm.BaseModel``).

Each cell is PyBaMM's Thevenin cell with one RC pair and its lumped thermal model
(``pybamm.equivalent_circuit.Thevenin``'s equations, written per cell): state of
charge, RC overpotential, cell and jig temperatures are its differential states;
OCV(SoC), R0, R1 and C1 (of cell temperature, current and SoC) and the thermal
masses and heat transfer come from the cell's parameter values (``ECM_Example`` or a
job's ``ecm_cell``). Cell (s, p) — series element s, parallel position p, from 0 — has
its capacity times ``capacity_factors[s * parallel + p]`` and R0 and R1 times
``resistance_factors[s * parallel + p]``.

The circuit: Ns series elements, each of Np branches in parallel; a branch is one
cell in series with its interconnect resistance R_ic (tab, weld and busbar share).
The cell currents I_sp and the element voltages V_s are algebraic variables with
Kirchhoff's laws as their equations:

    V_cell(s, p) - R_ic I_sp - V_s = 0      (every branch of an element at its voltage)
    sum_p I_sp - I_pack = 0                 (the element carries the pack current)

and the pack voltage is sum_s V_s. IDAKLU solves the DAE. The pack stops when any
cell reaches its voltage cut-offs (or its SoC 0 or 1), as a BMS would stop it.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

KELVIN = 273.15


def cell_name(s: int, p: int) -> str:
    return f"cell {s + 1}-{p + 1}"


def model(series: int, parallel: int, capacity_factors: Sequence[float],
          resistance_factors: Sequence[float], interconnect_ohm: float):
    """The pack's PyBaMM model (parameters by PyBaMM's ECM names; "Current function [A]"
    is the pack current, positive on discharge)."""
    import pybamm

    param = pybamm.EcmParameters()
    m = pybamm.BaseModel(name=f"pack {series}S{parallel}P")
    current = param.current_with_time
    t_amb = param.T_amb(pybamm.t)
    r_ic = pybamm.Scalar(float(interconnect_ohm))
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
            k_q = float(capacity_factors[s * parallel + p])
            k_r = float(resistance_factors[s * parallel + p])
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
            m.initial_conditions.update({
                soc: param.initial_soc, v_rc: param.initial_rc_overpotential(1),
                t_cell: param.initial_T_cell, t_jig: param.initial_T_jig,
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
                f"Cell temperature ({name}) [degC]": t_cell,
            })
            branch_currents.append(i)
        m.algebraic[v_element] = sum(branch_currents[1:], branch_currents[0]) - current
        m.initial_conditions[v_element] = param.ocv(param.initial_soc)
        variables[f"Element {s + 1} voltage [V]"] = v_element
        pack_voltage = pack_voltage + v_element
    variables.update({
        "Time [s]": pybamm.t,
        "Battery voltage [V]": pack_voltage,
        "Battery current [A]": current,
    })
    m.variables = variables
    return m


def solve(parameter_values, series: int, parallel: int, capacity_factors, resistance_factors,
          interconnect_ohm: float, t_end: float, t_interp, current_A: float,
          inputs: Optional[dict] = None):
    """Build and solve the pack at a constant pack current; a ``pybamm.Solution``."""
    import pybamm

    pv = parameter_values.copy()
    pv["Current function [A]"] = float(current_A)
    m = model(series, parallel, capacity_factors, resistance_factors, interconnect_ohm)
    sim = pybamm.Simulation(m, parameter_values=pv,
                            solver=pybamm.IDAKLUSolver(atol=1e-6, rtol=1e-6))
    return sim.solve([0, float(t_end)], t_interp=t_interp, inputs=inputs or {})


# -- a pack job (model Thevenin with ``pack``) ------------------------------------------

VARIABLES_PER_CELL = ("Current", "Voltage", "SoC", "Cell temperature")
CELL_CAPACITY = "Cell capacity [A.h]"
UNTIL_CUT_OFF_FACTOR = 1.5  # as constant_current: 1.5 x the hours a full charge lasts
# the largest result the store is shown to hold: 20,000 points x 30 variables
MAX_VALUES = 20_000 * 30


def cell_columns(name: str) -> list[str]:
    return [f"Current ({name}) [A]", f"Voltage ({name}) [V]", f"SoC ({name})",
            f"Cell temperature ({name}) [degC]"]


def check(job) -> list[dict[str, str]]:
    """What a pack of equivalent-circuit cells may not ask."""
    from shared.contract.limits import LIMITS
    from shared.engine import ecm

    pack = job.pack
    errors = []
    n = pack.series * pack.parallel
    if n > LIMITS["max_pack_circuit_cells"]:
        errors.append({"field": "pack", "error": f"{pack.series} x {pack.parallel} = {n} cells; a pack of "
                                                 f"equivalent-circuit cells has at most "
                                                 f"{LIMITS['max_pack_circuit_cells']} (max_pack_circuit_cells)"})
    if job.protocol.type != "constant_current":
        errors.append({"field": "protocol", "error": "a pack of equivalent-circuit cells runs constant_current "
                                                     f"only, not {job.protocol.type!r}"})
    extra = {k: v for k, v in job.model.options.items() if str(v) not in ("1", "false")}
    if extra:
        errors.append({"field": "model.options", "error": f"a pack's cells are Thevenin cells with one RC pair "
                                                          f"and no diffusion element, not {extra}"})
    if job.ecm_cell is not None:
        errors.append({"field": "ecm_cell", "error": "a pack's cells are ECM_Example cells (an ecm_cell is not "
                                                     "offered in packs yet)"})
    from shared.contract.job import DEFAULT_OUTPUTS

    if list(job.outputs.variables) != list(DEFAULT_OUTPUTS):
        errors.append({"field": "outputs.variables", "error": "a pack of equivalent-circuit cells has fixed "
                                                              "columns (the battery's and each cell's); leave "
                                                              "outputs.variables out"})
    from shared.engine.pack import cut_off_errors, field_of

    errors += cut_off_errors(job)
    if not errors:  # the cell's own checks (parameters, initial SOC, cut-offs), as the Thevenin kind's
        errors += [field_of(e, job) for e in ecm.check(one_cell(job))]
    values = (3 + len(VARIABLES_PER_CELL) * n) * job.outputs.max_points
    if not job.outputs.summary_only and values > MAX_VALUES:
        errors.append({"field": "outputs.max_points",
                       "error": f"{3 + len(VARIABLES_PER_CELL) * n} columns x {job.outputs.max_points} points is "
                                f"above {MAX_VALUES} values; ask for at most "
                                f"{MAX_VALUES // (3 + len(VARIABLES_PER_CELL) * n)} points"})
    return errors


def one_cell(job):
    """One cell of the pack as a Thevenin job (its checks): the pack's voltage limits over
    ``series`` as its cut-offs, the pack current over ``parallel``."""
    from shared.engine.pack import cell_parameters

    protocol = job.protocol.model_copy(deep=True)
    if protocol.type == "constant_current" and protocol.current_A is not None:
        protocol.current_A = protocol.current_A / job.pack.parallel
    return job.model_copy(update={"pack": None, "parameters": cell_parameters(job), "protocol": protocol})


def simulate(job) -> dict[str, Any]:
    """Run a pack of equivalent-circuit cells; the service's result shape."""
    import time

    import numpy as np
    import pybamm

    from shared.contract.limits import LIMITS
    from shared.engine import ecm
    from shared.engine.errors import SimulationError, short
    from shared.engine.pack import cell_parameters
    from shared.engine.timings import timings

    t0 = time.perf_counter()
    pack, protocol, cond = job.pack, job.protocol, job.conditions
    ns, np_ = pack.series, pack.parallel
    pv = ecm.example_set().copy()
    pv.update(cell_parameters(job))
    if cond.initial_soc is not None:
        pv["Initial SoC"] = cond.initial_soc
    if cond.ambient_temperature_C is not None:
        pv["Ambient temperature [K]"] = pv["Initial temperature [K]"] = cond.ambient_temperature_C + KELVIN
    capacity = float(pv[CELL_CAPACITY])
    current = protocol.current_A if protocol.current_A is not None else protocol.c_rate * capacity * np_
    if abs(current) / np_ > LIMITS["max_current_A"]:
        raise SimulationError(f"protocol: {abs(current):g} A over {np_} in parallel is {abs(current) / np_:g} A "
                              f"a cell; the limit is {LIMITS['max_current_A']:g} A")
    notes = [f"a pack of {ns} in series x {np_} in parallel equivalent-circuit cells (ECM_Example, Thevenin "
             f"with one RC pair and its lumped cell-jig thermal model each), solved as one PyBaMM model: "
             f"Kirchhoff's laws give each cell's current; the pack stops when any cell reaches a cut-off"]
    if protocol.duration_s is not None:
        end = float(protocol.duration_s)
    else:
        end = min(UNTIL_CUT_OFF_FACTOR * 3600.0 * capacity * np_ / abs(current), LIMITS["max_duration_s"])
        notes.append("runs until a cell reaches a voltage cut-off")
    ones = [1.0] * (ns * np_)
    t_interp = np.linspace(0.0, end, job.outputs.max_points)
    t_solve = time.perf_counter()
    try:
        solution = solve(pv, ns, np_, pack.capacity_factors or ones, pack.resistance_factors or ones,
                         pack.interconnect_resistance_Ohm or 0.0, end, t_interp, current)
    except (pybamm.SolverError, ValueError, ZeroDivisionError) as exc:
        raise SimulationError(f"the pack could not be solved: {short(exc)}") from exc
    solve_s = time.perf_counter() - t_solve
    termination = str(solution.termination)
    names = [cell_name(s, p) for s in range(ns) for p in range(np_)]
    t = solution["Time [s]"].entries
    v = solution["Battery voltage [V]"].entries
    i = np.full_like(t, float(current))
    cells = {c: solution[c].entries for name in names for c in cell_columns(name)}
    currents = np.array([cells[f"Current ({name}) [A]"] for name in names])
    temps = np.array([cells[f"Cell temperature ({name}) [degC]"] for name in names])
    socs = np.array([cells[f"SoC ({name})"] for name in names])
    energy = np.trapezoid(v * i, t) / 3600.0 if len(t) > 1 else 0.0
    completed = termination == "final time" if protocol.duration_s is not None \
        else termination.startswith("event: M") and "voltage" in termination
    summary = {
        "Number of cells connected in series to make a battery": ns,
        "Number of cells connected in parallel": np_,
        "Battery discharged capacity [A.h]": float(max(current, 0.0) * t[-1] / 3600.0),
        "Battery charged capacity [A.h]": float(max(-current, 0.0) * t[-1] / 3600.0),
        "Battery discharged energy [W.h]": float(max(energy, 0.0)),
        "Battery charged energy [W.h]": float(max(-energy, 0.0)),
        "Battery minimum voltage [V]": float(v.min()),
        "Battery maximum voltage [V]": float(v.max()),
        "Maximum cell current [A]": float(currents.max()),
        "Minimum cell current [A]": float(currents.min()),
        "Maximum cell temperature [degC]": float(temps.max()),
        "Final SoC range": [float(socs[:, -1].min()), float(socs[:, -1].max())],
        "End time [s]": float(t[-1]),
        "Requested end time [s]": end,
    }
    result: dict[str, Any] = {
        "termination": termination,
        "completed": bool(completed),
        "stoppedEarly": not bool(completed),
        "endTime": float(t[-1]),
        "summary": summary,
        "notes": notes,
    }
    if not job.outputs.summary_only:
        columns = {"Time [s]": t.tolist(), "Battery voltage [V]": v.tolist(), "Battery current [A]": i.tolist()}
        columns.update({k: val.tolist() for k, val in cells.items()})
        result["columns"] = columns
    result["timings"] = timings("none", 0.0, solve_s, t0)
    return result

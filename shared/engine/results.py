"""From a PyBaMM solution to the service's result: columns, summary, completion."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from shared.contract.limits import LIMITS
from shared.engine.errors import SimulationError
from shared.engine.parameters import is_number

LOWER, UPPER = "Lower voltage cut-off [V]", "Upper voltage cut-off [V]"
TEMPERATURE = "Volume-averaged cell temperature [K]"
STOICHIOMETRY = "Average negative particle stoichiometry"


def values(solution, name: str) -> np.ndarray:
    entries = np.asarray(solution[name].entries, dtype=float)
    if entries.ndim != 1:
        raise SimulationError(
            f"outputs.variables: {name!r} is not a scalar (0-D) variable; pick a scalar one"
        )
    return entries


def result(job, plan, solution) -> dict[str, Any]:
    """The JSON-ready result of one solved job (without timings)."""
    t = values(solution, "Time [s]")
    v = values(solution, "Voltage [V]")
    i = values(solution, "Current [A]")
    q = values(solution, "Discharge capacity [A.h]")
    lacks = plan.lacks
    temp = None if TEMPERATURE in lacks else values(solution, TEMPERATURE)
    termination = str(solution.termination)
    end_time = float(t[-1])
    completed = plan.protocol.completed(solution, termination, plan)

    # thin to max_points (and to the period asked for, if the solver sampled finer)
    asked = plan.protocol.output_period(job)
    idx, period = sample(t, plan.protocol.series_period(plan), asked, job.outputs.max_points)
    if asked is not None and period is not None and len(idx) < len(t) and period > asked * (1 + 1e-9):
        if len(t) > job.outputs.max_points:
            why = f"max_points {job.outputs.max_points}" + (
                "" if job.outputs.max_points >= LIMITS["max_output_points"]
                else f" (outputs.max_points may be up to {LIMITS['max_output_points']})")
        else:
            why = f"a multiple of the {plan.protocol.series_period(plan):g} s the solver sampled at"
        plan.notes.append(f"output period coarsened from {asked:g} s to {period:.6g} s: {why}")
    columns = {name: values(solution, name)[idx].tolist() for name in job.outputs.variables}

    violations = _cut_off_violations(plan, v)
    note = plan.protocol.cut_off_note(violations) if violations else None
    if note:
        plan.notes.append(note)
    final_soc = None
    if temp is None:
        plan.notes.append(f"Maximum cell temperature [degC] is null: {job.model.name} has no {TEMPERATURE!r} "
                          "(it is isothermal, at the initial temperature)")
    if plan.esoh is not None and STOICHIOMETRY in lacks:
        plan.notes.append(f"Final state of charge is null: {job.model.name} has no {STOICHIOMETRY!r}")
    elif plan.esoh is not None:
        x0, x100 = plan.esoh
        x_end = float(values(solution, "Average negative particle stoichiometry")[-1])
        final_soc = round((x_end - x0) / (x100 - x0), 6)
    summary = {
        **throughput(t, v, i, q),
        "Net discharged capacity [A.h]": float(q[-1] - q[0]),
        "Within voltage cut-offs": not violations,
        "Minimum voltage [V]": float(v.min()),
        "Maximum voltage [V]": float(v.max()),
        "Maximum cell temperature [degC]": None if temp is None else float(temp.max() - 273.15),
        "Initial state of charge": None if plan.initial_soc is None else round(plan.initial_soc, 6),
        "Final state of charge": final_soc,
        "End time [s]": end_time,
        "Requested end time [s]": plan.requested_end_s,
        # the spacing of the returned series (within each step for experiments);
        # None: irregular (the solver's own steps, a drive cycle's uneven knots)
        "Output period [s]": None if period is None else round(float(period), 9),
    }
    out: dict[str, Any] = {
        "termination": termination,
        "completed": bool(completed),
        "stoppedEarly": not bool(completed),
        "endTime": end_time,
        "summary": summary,
        "notes": plan.notes,
    }
    if not job.outputs.summary_only:
        out["columns"] = columns
    out.update(plan.protocol.extra_results(solution))
    return out


def sample(t: np.ndarray, base: Optional[float], asked: Optional[float],
           max_points: int) -> tuple[np.ndarray, Optional[float]]:
    """Which points of a series at times ``t`` to return, and their period.

    ``base`` is the series' own spacing (None: irregular). Every point is returned when
    they fit in ``max_points`` and the series is no finer than the period ``asked``;
    otherwise the first point at or after each multiple of the output period (a
    multiple of ``base``, at least ``asked``, coarse enough for ``max_points``), and
    the last point."""
    n = len(t)
    span = float(t[-1] - t[0]) if n else 0.0
    need = span / (max_points - 1) if n > max_points else 0.0
    step = max(asked or 0.0, need)
    if n < 2 or span <= 0 or step <= 0 or (base is not None and step <= base * (1 + 1e-9)):
        if n > max_points:  # (no span to spread over)
            return np.arange(max_points), base
        return np.arange(n), base
    if base is not None:
        step = base * math.ceil(step / base * (1 - 1e-9))
    targets = t[0] + np.arange(math.ceil(span / step * (1 - 1e-9))) * step
    idx = np.searchsorted(t, targets - step * 1e-6, side="left")
    idx = np.unique(np.append(np.minimum(idx, n - 1), n - 1))
    return idx, step


def _cut_offs(plan) -> Optional[tuple[float, float]]:
    found = {}
    for name in (LOWER, UPPER):
        if name in plan.inputs:
            found[name] = plan.inputs[name]
        else:
            v = plan.parameter_values[name] if name in plan.parameter_values.keys() else None
            if not is_number(v):
                return None
            found[name] = float(v)
    return found[LOWER], found[UPPER]


def _cut_off_violations(plan, v: np.ndarray) -> list[str]:
    cut_offs = _cut_offs(plan)
    if cut_offs is None:
        return []
    lower, upper = cut_offs
    violations = []
    if v.min() < lower - 1e-3:
        violations.append(f"voltage fell to {v.min():.4f} V, below the {lower:g} V cut-off")
    if v.max() > upper + 1e-3:
        violations.append(f"voltage rose to {v.max():.4f} V, above the {upper:g} V cut-off")
    return violations


def cycle_summaries(solution) -> list[dict[str, Any]]:
    """One summary per cycle of an experiment's solution."""
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
                **throughput(ct, cv, ci, cq),
                "Minimum voltage [V]": float(cv.min()),
                "Maximum voltage [V]": float(cv.max()),
            }
        )
    return out


def throughput(t, v, i, q) -> dict[str, float]:
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

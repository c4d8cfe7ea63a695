"""From a PyBaMM solution to the service's result: columns, summary, completion."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from shared.engine.errors import SimulationError
from shared.engine.parameters import is_number

LOWER, UPPER = "Lower voltage cut-off [V]", "Upper voltage cut-off [V]"


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
    temp = values(solution, "Volume-averaged cell temperature [K]")
    termination = str(solution.termination)
    end_time = float(t[-1])
    completed = plan.protocol.completed(solution, termination, plan)

    # thin to max_points (experiments sample per step)
    idx = np.arange(len(t))
    if len(t) > job.outputs.max_points:
        idx = np.unique(np.linspace(0, len(t) - 1, job.outputs.max_points).round().astype(int))
    columns = {name: values(solution, name)[idx].tolist() for name in job.outputs.variables}

    violations = _cut_off_violations(plan, v)
    note = plan.protocol.cut_off_note(violations) if violations else None
    if note:
        plan.notes.append(note)
    final_soc = None
    if plan.esoh is not None:
        x0, x100 = plan.esoh
        x_end = float(values(solution, "Average negative particle stoichiometry")[-1])
        final_soc = round((x_end - x0) / (x100 - x0), 6)
    summary = {
        **throughput(t, v, i, q),
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

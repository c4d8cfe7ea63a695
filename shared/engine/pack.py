"""A pack of identical cells (``job.pack``): one cell's job, solved by the cell's kind,
reported for the cell and for the battery.

The model. Every cell is the same and sees the same conditions (no interconnect
resistance, no cell-to-cell variation, one temperature), so each of the ``parallel``
cells of a series element carries the pack current over Np and each of the ``series``
elements has the pack voltage over Ns. The service solves one cell:

* Ns is PyBaMM's own "Number of cells connected in series to make a battery" (a baked
  parameter of the cell's job): PyBaMM then reports "Battery voltage [V]" (Ns x the
  cell's "Voltage [V]", and its other "Battery ..." variables), and its experiment
  voltage terminations ("until 16.8 V") compare with that battery voltage. PyBaMM's
  voltage control ("Hold at 16.8 V") and its cut-off events use the cell's voltage:
  hold voltages and the pack's voltage limits are divided by Ns.
* Np: PyBaMM's "Number of electrodes connected in parallel to make a cell" multiplies
  the electrode area of one cell (A_cc); used for Np cells it would also put Np cells'
  heat into one cell's volume in thermal models. So the cell's own value is kept and
  the cell's current is the pack current over Np ("Battery current [A]" = Np x
  "Current [A]"); tests/test_pack.py shows the two give the same voltage isothermally.
* C-rates are of the pack's capacity (Np x the cell's): the same C-rate per cell.

Currents [A] and powers [W] in the protocol are the pack's: per cell, a current is
over Np, a power over Np x Ns, a resistance step R x Np / Ns.
"""

from __future__ import annotations

import re
from typing import Any

SERIES = "Number of cells connected in series to make a battery"
BATTERY_V = "Battery voltage [V]"
BATTERY_I = "Battery current [A]"
UPPER, LOWER = "Upper voltage cut-off [V]", "Lower voltage cut-off [V]"
CUT_OFF_FIELDS = {UPPER: "upper_voltage_V", LOWER: "lower_voltage_V"}
PROTOCOLS = ("constant_current", "drive_cycle", "experiment")

ASSUMPTIONS = (
    "each of the parallel cells carries the pack current / parallel, each "
    "series element has the pack voltage / series; no interconnect resistance, no cell-to-cell "
    "variation, every cell at the same temperature (the cell's own thermal model)")
PER_PACK = ("protocol currents [A], powers [W] and step voltages [V], C-rates (of parallel x the "
            "cell's capacity: the same C-rate per cell), pack.upper_voltage_V and pack.lower_voltage_V")
PER_CELL = "parameters (PyBaMM's cell parameters, cut-offs included), 'Voltage [V]', 'Current [A]', the summary"

# a number and an electrical unit in a step string ("4.2 V", "500mA", "2 W", "0.1 Ohm")
_QUANTITY = re.compile(r"(?<![\w.])([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)(\s*)(m?)(Ohm|A|V|W)\b")


def errors(job) -> list[dict[str, str]]:
    """What a pack job may not ask (before the cell's own checks)."""
    out = []
    if job.protocol.type not in PROTOCOLS:
        out.append({"field": "pack", "error": f"a pack runs the protocols {', '.join(PROTOCOLS)}, "
                                              f"not {job.protocol.type!r}"})
    if SERIES in job.parameters:
        out.append({"field": f"parameters.{SERIES}", "error": "give pack.series instead"})
    return out + cut_off_errors(job)


def cut_off_errors(job) -> list[dict[str, str]]:
    """A pack voltage limit and the cell's cut-off of the same side given together."""
    return [{"field": f"pack.{field}",
             "error": f"give either pack.{field} (the pack's) or parameters.{name} (the cell's), not both"}
            for name, field in CUT_OFF_FIELDS.items()
            if getattr(job.pack, field) is not None and name in job.parameters]


def cell_parameters(job) -> dict[str, float]:
    """The job's ``parameters`` for one cell: the pack's voltage limits over ``series`` as
    the cell's cut-offs."""
    parameters = dict(job.parameters)
    for name, field in CUT_OFF_FIELDS.items():
        if getattr(job.pack, field) is not None:
            parameters[name] = getattr(job.pack, field) / job.pack.series
    return parameters


def cell_job(job):
    """The job of one cell of the pack (``job.pack`` set; see the module's docstring)."""
    pack = job.pack
    ns, np_ = pack.series, pack.parallel
    parameters = cell_parameters(job)
    parameters[SERIES] = float(ns)
    protocol = job.protocol.model_copy(deep=True)
    if protocol.type == "constant_current" and protocol.current_A is not None:
        protocol.current_A = protocol.current_A / np_
    elif protocol.type == "drive_cycle":
        protocol.scale = protocol.scale / np_
    elif protocol.type == "experiment":
        protocol.steps = [cell_step(s, ns, np_) for s in protocol.steps]
    variables = [v for v in job.outputs.variables if v != BATTERY_I]
    for name in ("Current [A]", BATTERY_V):
        if name not in variables:
            variables.append(name)
    outputs = job.outputs.model_copy(update={"variables": variables})
    return job.model_copy(update={"pack": None, "parameters": parameters, "protocol": protocol,
                                  "outputs": outputs})


def cell_step(text: str, series: int, parallel: int) -> str:
    """One cell's experiment step from the pack's: before 'until', currents / Np, powers
    / (Np Ns), voltages (holds) / Ns, resistances x Np / Ns; in the 'until' condition,
    currents / Np and voltages as given (PyBaMM compares them with "Battery voltage [V]")."""
    head, sep, tail = text.partition(" until ")
    control = {"A": 1 / parallel, "W": 1 / (parallel * series), "V": 1 / series, "Ohm": parallel / series}
    condition = {"A": 1 / parallel, "V": 1.0, "W": 1.0, "Ohm": 1.0}

    def scaled(factors):
        def sub(m):
            number, space, milli, unit = m.groups()
            factor = factors[unit]
            if factor == 1.0:
                return m.group(0)
            return f"{float(number) * factor!r}{space}{milli}{unit}"
        return sub

    return _QUANTITY.sub(scaled(control), head) + sep + _QUANTITY.sub(scaled(condition), tail)


def field_of(error: dict[str, str], job) -> dict[str, str]:
    """A cell check's error, named as the pack job's field (the cut-offs the pack set)."""
    for name, field in CUT_OFF_FIELDS.items():
        if error.get("field") == f"parameters.{name}" and getattr(job.pack, field) is not None:
            return {"field": f"pack.{field}", "error": f"{error['error']} (the cell's cut-off is "
                                                       f"pack.{field} / series = "
                                                       f"{getattr(job.pack, field) / job.pack.series:g} V)"}
    return error


def battery_result(job, result: dict[str, Any]) -> dict[str, Any]:
    """The cell's result with the battery's columns, summary and notes added."""
    import numpy as np

    ns, np_ = job.pack.series, job.pack.parallel
    columns = result.get("columns")
    if columns is not None:
        current = columns["Current [A]"]
        columns[BATTERY_I] = (np.asarray(current, dtype=float) * np_).tolist()
        asked = set(job.outputs.variables) | {BATTERY_V, BATTERY_I}
        result["columns"] = {k: v for k, v in columns.items() if k in asked}
    summary = result.get("summary") or {}
    battery = {
        "Number of cells connected in series to make a battery": ns,
        "Number of cells connected in parallel": np_,
        "Battery discharged capacity [A.h]": _times(summary.get("Discharged capacity [A.h]"), np_),
        "Battery charged capacity [A.h]": _times(summary.get("Charged capacity [A.h]"), np_),
        "Battery discharged energy [W.h]": _times(summary.get("Discharged energy [W.h]"), np_ * ns),
        "Battery charged energy [W.h]": _times(summary.get("Charged energy [W.h]"), np_ * ns),
        "Battery minimum voltage [V]": _times(summary.get("Minimum voltage [V]"), ns),
        "Battery maximum voltage [V]": _times(summary.get("Maximum voltage [V]"), ns),
    }
    result["summary"] = {**summary, **battery}
    result.setdefault("notes", []).append(
        f"a pack of {ns} in series x {np_} in parallel identical cells: {ASSUMPTIONS}; 'Voltage [V]', "
        f"'Current [A]' and the summary's other figures are one cell's, '{BATTERY_V}' and '{BATTERY_I}' "
        f"the pack's")
    if ns > 1 or np_ > 1:
        result["notes"].append(
            f"the termination is stated in one cell's figures (PyBaMM solves one cell): a cell's voltage "
            f"x {ns} is the pack's, a cell's current x {np_} the pack's")
    return result


def _times(value, factor):
    return None if value is None else float(value) * factor


def _cell_models() -> tuple[str, ...]:
    from shared.engine.cell import Cell

    return Cell.MODEL_NAMES


def describe() -> dict[str, Any]:
    from shared.contract import pack as contract
    from shared.contract.limits import LIMITS

    return {
        "field": "pack",
        "models": list(_cell_models()),
        "protocols": list(PROTOCOLS),
        "limits": {"max_pack_series": LIMITS["max_pack_series"],
                   "max_pack_parallel": LIMITS["max_pack_parallel"]},
        "assumptions": ASSUMPTIONS,
        "per_pack": PER_PACK,
        "per_cell": PER_CELL,
        "battery_outputs": [BATTERY_V, BATTERY_I],
        "series_parameter": SERIES,
        "differing_cells": {
            "model": "Thevenin (ECM_Example cells, one RC pair, cell-jig thermal model each)",
            "protocols": ["constant_current", "drive_cycle", "experiment"],
            "experiment_steps": "current, C-rate and rest steps, 'for' a duration and/or 'until' a pack "
                                "voltage [V] (falling on discharge, rising on charge; on a rest, towards it)",
            "max_pack_circuit_cells": LIMITS["max_pack_circuit_cells"],
            "capacity_factors": list(contract.CAPACITY_FACTOR_RANGE),
            "resistance_factors": list(contract.RESISTANCE_FACTOR_RANGE),
            "interconnect_resistance_Ohm": list(contract.INTERCONNECT_RANGE_OHM),
            "initial_socs": "(0, 1), each cell's OCV within its cut-offs; default conditions.initial_soc, "
                            "else the set's",
            "model_cache": "one built model per Ns x Np (and drive cycle, and other parameters); the per-job "
                           "numbers are PyBaMM inputs",
            "assumptions": "Kirchhoff's laws between the cells: each parallel branch is a cell and its "
                           "interconnect resistance, every branch of a series element at one voltage, each "
                           "element carrying the pack current; the pack stops when any cell reaches a cut-off "
                           "(an experiment too, a drive cycle too: an honest early stop); "
                           "cells do not exchange heat",
            "cell_outputs": ["Current (cell s-p) [A]", "Voltage (cell s-p) [V]", "SoC (cell s-p)",
                             "Cell temperature (cell s-p) [degC]"],
        },
    }

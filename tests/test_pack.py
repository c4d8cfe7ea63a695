"""Packs of identical cells (``job.pack``): against direct PyBaMM solves of one cell,
the 400s for bad pack fields, the catalog entry, and end to end through the stack."""

from __future__ import annotations

import json

import numpy as np
import pybamm
import pytest
import requests

from shared.contract.job import Job
from shared.contract.limits import LIMITS
from shared.engine import kinds, pack
from tests.conftest import submit
from tests.test_submit_function import call, fields_of, published  # noqa: F401 - its settings fixture below
from tests.test_submit_function import settings  # noqa: F401 - autouse: known settings for call()

SERIES = "Number of cells connected in series to make a battery"
PARALLEL = "Number of electrodes connected in parallel to make a cell"


def direct(parameters: dict, current_A=None, experiment=None, t_end=None, t_eval=None, model=None):
    """One Chen2020 cell solved by PyBaMM directly (IDAKLU, the service's tolerances)."""
    pv = pybamm.ParameterValues("Chen2020")
    pv.update(parameters)
    if current_A is not None:
        pv["Current function [A]"] = current_A
    sim = pybamm.Simulation(model or pybamm.lithium_ion.SPM(), parameter_values=pv, experiment=experiment,
                            solver=pybamm.IDAKLUSolver(atol=1e-6, rtol=1e-6))
    if experiment is not None:
        return sim.solve()
    return sim.solve([0, t_end], t_interp=t_eval)


def test_step_strings_become_one_cells():
    """Currents / Np, powers / (Np Ns), holds / Ns, resistances x Np / Ns; 'until' voltages
    stay the pack's (PyBaMM compares them with 'Battery voltage [V]'), 'until' currents / Np."""
    assert pack.cell_step("Discharge at 10 A until 12 V", 4, 2) == "Discharge at 5.0 A until 12 V"
    assert pack.cell_step("Hold at 16.8 V until 100 mA", 4, 2) == "Hold at 4.2 V until 50.0 mA"
    assert pack.cell_step("Discharge at 80W for 10 minutes", 4, 2) == "Discharge at 10.0W for 10 minutes"
    assert pack.cell_step("Discharge at 1 Ohm for 1 hour", 4, 2) == "Discharge at 0.5 Ohm for 1 hour"
    same = "Charge at C/2 for 1 hour or until 16.8 V (10 seconds period)"
    assert pack.cell_step(same, 4, 2) == same


def test_constant_current_pack_is_ns_times_the_cells_voltage_and_np_times_its_current():
    """3S2P of Chen2020 SPM cells at a pack current of 10 A for 10 min, against PyBaMM
    solving one cell at 5 A: the cell's voltage within 1 mV, "Battery voltage [V]" = 3 x
    the cell's and "Battery current [A]" = 2 x its current within 1e-9 relative."""
    job = Job.model_validate({"model": {"name": "SPM"}, "pack": {"series": 3, "parallel": 2},
                              "protocol": {"type": "constant_current", "current_A": 10, "duration_s": 600},
                              "outputs": {"period_s": 10}})
    assert kinds.check(job) == []
    result = kinds.simulate(job)
    c = {k: np.asarray(v) for k, v in result["columns"].items()}
    theirs = direct({}, current_A=5.0, t_end=600, t_eval=c["Time [s]"])
    v_cell = theirs["Voltage [V]"](c["Time [s]"])
    assert np.max(np.abs(c["Voltage [V]"] - v_cell)) < 1e-3
    assert np.allclose(c["Battery voltage [V]"], 3 * c["Voltage [V]"], rtol=1e-9, atol=0)
    assert np.allclose(c["Battery current [A]"], 2 * theirs["Current [A]"](c["Time [s]"]), rtol=1e-9, atol=0)
    assert np.allclose(c["Current [A]"], 5.0)
    s = result["summary"]
    assert s["Battery discharged capacity [A.h]"] == pytest.approx(2 * s["Discharged capacity [A.h]"], rel=1e-12)
    assert s["Battery discharged capacity [A.h]"] == pytest.approx(10 * 600 / 3600, rel=1e-6)
    assert s["Battery discharged energy [W.h]"] == pytest.approx(6 * s["Discharged energy [W.h]"], rel=1e-12)
    assert s["Battery minimum voltage [V]"] == pytest.approx(3 * float(v_cell.min()), abs=3e-3)
    assert s["Number of cells connected in series to make a battery"] == 3
    assert s["Number of cells connected in parallel"] == 2
    assert any("identical cells" in n for n in result["notes"])
    assert any("termination is stated in one cell's figures" in n and "x 3" in n and "x 2" in n
               for n in result["notes"])


def test_experiment_pack_uses_pack_currents_voltages_and_c_rates():
    """A 4S3P CC-CV cycle given in pack figures (30 A to 13.2 V, rest, C/2 to 16.4 V, hold
    16.4 V to 1.5 A) against PyBaMM running one cell's (10 A to 3.3 V, C/2 to 4.1 V, hold
    4.1 V to 0.5 A): the same steps end at the same times (1 s), the voltage agrees within
    1 mV at every shared time, and the pack's voltage is 4 x the cell's."""
    pack_steps = ["Discharge at 30 A until 13.2 V", "Rest for 5 minutes",
                  "Charge at C/2 until 16.4 V", "Hold at 16.4 V until 1.5 A"]
    cell_steps = ["Discharge at 10 A until 3.3 V", "Rest for 5 minutes",
                  "Charge at C/2 until 4.1 V", "Hold at 4.1 V until 0.5 A"]
    job = Job.model_validate({"model": {"name": "SPM"}, "pack": {"series": 4, "parallel": 3},
                              "protocol": {"type": "experiment", "steps": pack_steps, "period_s": 30},
                              "outputs": {"max_points": 20000}})
    assert kinds.check(job) == []
    result = kinds.simulate(job)
    c = {k: np.asarray(v) for k, v in result["columns"].items()}
    assert result["completed"], result["termination"]
    theirs = direct({}, experiment=pybamm.Experiment(cell_steps, period="30 seconds"))
    assert float(c["Time [s]"][-1]) == pytest.approx(float(theirs["Time [s]"].entries[-1]), abs=1.0)
    t_theirs, v_theirs = theirs["Time [s]"].entries, theirs["Voltage [V]"].entries
    shared_times = np.intersect1d(np.round(c["Time [s]"], 6), np.round(t_theirs, 6))
    assert len(shared_times) > 20
    for t in shared_times:
        ours = c["Voltage [V]"][np.round(c["Time [s]"], 6) == t]
        other = v_theirs[np.round(t_theirs, 6) == t]
        assert np.max(np.abs(ours[:, None] - other[None, :]).min(axis=1)) < 1e-3
    assert np.allclose(c["Battery voltage [V]"], 4 * c["Voltage [V]"], rtol=1e-9, atol=0)
    assert np.allclose(c["Battery current [A]"], 3 * c["Current [A]"], rtol=1e-9, atol=0)
    assert result["summary"]["Battery minimum voltage [V]"] == pytest.approx(13.2, abs=4e-3)


def test_pybamms_electrodes_in_parallel_give_the_same_cell_voltage():
    """Why Np is a current split: PyBaMM's own 'Number of electrodes connected in parallel
    to make a cell' x 2 (and twice the capacity) at the pack current of 2P gives the voltage
    of one cell at half that current, within 1 mV (isothermal)."""
    t = np.linspace(0, 600, 61)
    split = direct({}, current_A=5.0, t_end=600, t_eval=t)
    pv = pybamm.ParameterValues("Chen2020")
    doubled = direct({PARALLEL: 2 * pv[PARALLEL], "Nominal cell capacity [A.h]": 2 * pv["Nominal cell capacity [A.h]"]},
                     current_A=10.0, t_end=600, t_eval=t)
    assert np.max(np.abs(split["Voltage [V]"](t) - doubled["Voltage [V]"](t))) < 1e-3


def test_drive_cycle_pack_current_is_split_over_parallel():
    """An inline drive cycle of pack currents on 1S4P: each cell carries a quarter (1e-9
    relative) and the battery current is the cycle's."""
    job = Job.model_validate({"model": {"name": "SPM"}, "pack": {"parallel": 4},
                              "protocol": {"type": "drive_cycle", "time_s": [0, 100, 200],
                                           "current_A": [8, 20, 8]},
                              "conditions": {"initial_soc": 0.8}})
    result = kinds.simulate(job)
    c = {k: np.asarray(v) for k, v in result["columns"].items()}
    expected = np.interp(c["Time [s]"], [0, 100, 200], [8, 20, 8])
    assert np.allclose(c["Battery current [A]"], expected, rtol=1e-9, atol=1e-9)
    assert np.allclose(c["Current [A]"], expected / 4, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------
# 400s: the field and the allowed range, nothing published
# --------------------------------------------------------------------------
CC = {"type": "constant_current", "c_rate": 1, "duration_s": 600}
BAD_PACKS = [
    # (pack job's changes, field named, text in the error)
    ({"pack": {"series": 0}}, "pack.series", "greater than or equal to 1"),
    ({"pack": {"series": 1001}}, "pack.series", "less than or equal to 1000"),
    ({"pack": {"parallel": 0}}, "pack.parallel", "greater than or equal to 1"),
    ({"pack": {"parallel": 5000}}, "pack.parallel", "less than or equal to 1000"),
    ({"pack": {"series": 2.5}}, "pack.series", "integer"),
    ({"pack": {"cells": 4}}, "pack.cells", "Extra inputs"),
    ({"pack": {"series": 4, "upper_voltage_V": 30}}, "pack.upper_voltage_V", "outside 2-22 V"),
    ({"pack": {"series": 4, "upper_voltage_V": 14, "lower_voltage_V": 15}}, "pack.lower_voltage_V", "must be below"),
    ({"pack": {"series": 4, "upper_voltage_V": 16.8},
      "parameters": {"Upper voltage cut-off [V]": 4.2}}, "pack.upper_voltage_V", "not both"),
    ({"pack": {"series": 4}, "parameters": {SERIES: 4}}, f"parameters.{SERIES}", "pack.series"),
    # cells that differ: the pack's limit used to win silently over the cell's cut-off
    ({"pack": {"series": 2, "lower_voltage_V": 6.6}, "model": {"name": "Thevenin"},
      "parameters": {"Lower voltage cut-off [V]": 3.0}}, "pack.lower_voltage_V", "not both"),
    ({"pack": {"series": 2}, "model": {"name": "Thevenin"}, "parameters": {"R0 [Ohm]": -0.1}},
     "parameters.R0 [Ohm]", "(0, 1000]"),
    ({"pack": {"series": 2}, "model": {"name": "Thevenin"},
      "protocol": {"type": "experiment", "steps": ["Discharge at 100 W for 1 hour"]}}, "protocol.steps.0",
     "not power steps"),
    ({"pack": {"series": 8, "parallel": 8}, "model": {"name": "Thevenin"}}, "pack", "at most 50"),
    ({"pack": {"series": 2, "parallel": 2, "capacity_factors": [1, 1, 1]}, "model": {"name": "Thevenin"}},
     "pack.capacity_factors", "must be 4 numbers (series x parallel = 2 x 2), not 3"),
    ({"pack": {"capacity_factors": [0.2]}, "model": {"name": "Thevenin"}}, "pack.capacity_factors.0",
     "greater than or equal to 0.5"),
    ({"pack": {"interconnect_resistance_Ohm": 1}, "model": {"name": "Thevenin"}},
     "pack.interconnect_resistance_Ohm", "less than or equal to 0.1"),
    ({"pack": {"resistance_factors": [1.2]}}, "pack", "offered with model Thevenin"),
    ({"pack": {"series": 2, "lower_voltage_V": 9}, "model": {"name": "Thevenin"}}, "pack.lower_voltage_V",
     "4.5 V must be below the upper cut-off 4.2 V"),
    ({"pack": {"series": 2}, "model": {"name": "Thevenin"}, "conditions": {"initial_soc": 0}},
     "conditions.initial_soc", "strictly between"),
    ({"pack": {"series": 2}, "model": {"name": "Thevenin"}, "parameters": {"Cell capacity [A.h]": -1}},
     "parameters.Cell capacity [A.h]", "must be in (0, 1000]"),
    ({"pack": {"series": 2}, "model": {"name": "Thevenin"}, "outputs": {"variables": ["Time [s]"]}},
     "outputs.variables", "fixed columns"),
    ({"pack": {"series": 10, "parallel": 5}, "model": {"name": "Thevenin"}, "outputs": {"max_points": 5000}},
     "outputs.max_points", "at most 2955 points"),
    ({"pack": {"series": 2}, "protocol": {"type": "ageing", "steps": ["Discharge at 1C until 2.5 V"],
                                           "cycles": 10, "end_of_life": {"capacity_percent": 80}}},
     "pack", "ageing"),
    ({"pack": {"series": 2}, "protocol": {"type": "experiment", "steps": ["Discharge at 1 parsec"]}},
     "protocol.steps", "Discharge at 1 parsec"),
    ({"pack": {"parallel": 2}, "protocol": {"type": "experiment", "steps": ["Discharge at 1200 A for 1 minute"]}},
     "protocol.steps.0", "limit of 500 A"),
]


@pytest.mark.parametrize("changes,field,text", BAD_PACKS)
def test_a_bad_pack_is_400_naming_the_field(published, changes, field, text):
    body = {"model": {"name": "SPM"}, "protocol": CC, **changes}
    status, reply, _ = call("POST", "/jobs", body)
    assert status == 400, reply
    assert field in fields_of(reply), reply
    assert any(text in e["error"] for e in reply["errors"] if e["field"] == field), reply
    assert published.envelopes == []


def test_a_pack_voltage_limit_the_cell_cannot_take_names_the_pack_field():
    """4S with only a lower limit of 18 V asks each Chen2020 cell for a 4.5 V lower cut-off,
    above its own 4.2 V upper one: the error names pack.lower_voltage_V and the cell's share."""
    job = Job.model_validate({"model": {"name": "SPM"}, "protocol": CC, "pack": {"series": 4, "lower_voltage_V": 18}})
    errors = kinds.check(job)
    assert [e["field"] for e in errors] == ["pack.lower_voltage_V"], errors
    assert "pack.lower_voltage_V / series = 4.5 V" in errors[0]["error"]
    # positive control: 10-16.8 V (2.5-4.2 V a cell) is accepted
    assert kinds.check(Job.model_validate({"model": {"name": "SPM"}, "protocol": CC, "pack": {
        "series": 4, "lower_voltage_V": 10, "upper_voltage_V": 16.8}})) == []


def test_the_catalog_lists_the_pack_limits_and_assumptions():
    """The pack kind's entry (the catalog lists every kind's ``describe`` under "kinds")."""
    entry = kinds.described()["pack"]
    assert entry["limits"] == {"max_pack_series": LIMITS["max_pack_series"],
                               "max_pack_parallel": LIMITS["max_pack_parallel"]}
    assert "no interconnect resistance" in entry["assumptions"]
    assert "C-rates" in entry["per_pack"] and "parameters" in entry["per_cell"]
    assert entry["battery_outputs"] == ["Battery voltage [V]", "Battery current [A]"]
    assert entry["differing_cells"]["max_pack_circuit_cells"] == LIMITS["max_pack_circuit_cells"]
    assert entry["differing_cells"]["interconnect_resistance_Ohm"] == [0.0, 0.1]


# --------------------------------------------------------------------------
# Cells that differ: Thevenin cells in one PyBaMM model (shared.engine.pack_circuit)
# --------------------------------------------------------------------------
def circuit_job(pack_fields: dict, current_A: float, duration_s: float = 1800, points: int = 181) -> Job:
    return Job.model_validate({"model": {"name": "Thevenin"}, "pack": pack_fields,
                               "protocol": {"type": "constant_current", "current_A": current_A,
                                            "duration_s": duration_s},
                               "outputs": {"max_points": points}})


def test_identical_circuit_cells_without_interconnect_reproduce_pybamms_thevenin():
    """2S3P of identical ECM_Example cells, no interconnect resistance, 150 A: each cell's
    voltage and the pack voltage / 2 equal PyBaMM's Thevenin cell at 50 A within 1 mV."""
    job = circuit_job({"series": 2, "parallel": 3}, current_A=150)
    assert kinds.check(job) == []
    result = kinds.simulate(job)
    c = {k: np.asarray(v) for k, v in result["columns"].items()}
    pv = pybamm.ParameterValues("ECM_Example")
    pv["Current function [A]"] = 50.0
    theirs = pybamm.Simulation(pybamm.equivalent_circuit.Thevenin(), parameter_values=pv,
                               solver=pybamm.IDAKLUSolver(atol=1e-6, rtol=1e-6)).solve([0, 1800], t_interp=c["Time [s]"])
    v_ref = theirs["Voltage [V]"](c["Time [s]"])
    assert np.max(np.abs(c["Battery voltage [V]"] / 2 - v_ref)) < 1e-3
    for name in ("cell 1-1", "cell 2-3"):
        assert np.max(np.abs(c[f"Voltage ({name}) [V]"] - v_ref)) < 1e-3
        assert np.allclose(c[f"Current ({name}) [A]"], 50.0, rtol=1e-6)
    assert result["completed"] and result["termination"] == "final time"


def test_differing_cells_obey_kirchhoff_and_share_current_by_capacity():
    """3S4P with capacities 0.85-1.15 x, resistances 0.8-1.3 x and 2 mOhm interconnects at
    200 A: in every series element the cell currents sum to the pack current at every
    output time (1e-6 A), every parallel branch has one voltage (cell voltage minus its
    interconnect drop, 0.1 mV: exact at the solver's steps, the output times are IDAKLU's
    interpolation between them, and V(I, state) is nonlinear), and by the end the largest
    cell carries more than the smallest."""
    capacity = [0.85, 1.0, 1.15, 1.0, 1.0, 1.0, 1.0, 1.0, 1.1, 0.9, 1.0, 1.0]
    resistance = [1.0, 1.0, 1.0, 1.0, 0.8, 1.3, 1.0, 1.0, 1.0, 1.0, 1.2, 0.9]
    job = circuit_job({"series": 3, "parallel": 4, "capacity_factors": capacity, "resistance_factors": resistance,
                       "interconnect_resistance_Ohm": 0.002}, current_A=200)
    assert kinds.check(job) == []
    result = kinds.simulate(job)
    c = {k: np.asarray(v) for k, v in result["columns"].items()}
    element_voltages = []
    for s in range(1, 4):
        currents = np.array([c[f"Current (cell {s}-{p}) [A]"] for p in range(1, 5)])
        assert np.max(np.abs(currents.sum(axis=0) - 200.0)) < 1e-6
        branch = np.array([c[f"Voltage (cell {s}-{p}) [V]"] - 0.002 * currents[p - 1] for p in range(1, 5)])
        assert np.max(np.abs(branch - branch[0])) < 1e-4
        element_voltages.append(branch[0])
    assert np.allclose(np.sum(element_voltages, axis=0), c["Battery voltage [V]"], atol=3e-4)
    assert c["Current (cell 1-3) [A]"][-1] > c["Current (cell 1-1) [A]"][-1] + 1.0
    assert np.ptp([c[f"Current (cell 1-{p}) [A]"][-1] for p in range(1, 5)]) > 1.0
    assert result["summary"]["Maximum cell temperature [degC]"] > 25.0


# --------------------------------------------------------------------------
# End to end: the real local stack (emulators, functions-framework processes)
# --------------------------------------------------------------------------
E2E = {"model": {"name": "SPM"}, "pack": {"series": 2, "parallel": 3},
       "protocol": {"type": "constant_current", "current_A": 15, "duration_s": 300},
       "outputs": {"max_points": 50}}


def succeeded_on_stack(stack, receiver, body: dict) -> tuple[str, dict]:
    """Submit one job to the stack; (its id, its callback), which must say succeeded."""
    reply = submit(stack, "/jobs", body)
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["jobId"]
    result = receiver.wait_for([job_id], timeout_s=120)[job_id]
    assert result["status"] == "succeeded", result
    return job_id, result


@pytest.mark.slow
def test_a_pack_job_end_to_end(stack, receiver):
    job_id, result = succeeded_on_stack(stack, receiver, E2E)
    c = {k: np.asarray(v) for k, v in result["columns"].items()}
    assert np.allclose(c["Battery voltage [V]"], 2 * c["Voltage [V]"], rtol=1e-9, atol=0)
    assert np.allclose(c["Battery current [A]"], 15.0) and np.allclose(c["Current [A]"], 5.0)
    assert result["summary"]["Battery discharged capacity [A.h]"] == pytest.approx(15 * 300 / 3600, rel=1e-6)
    stored = requests.get(f"{stack.submit_url}/jobs/{job_id}/result", timeout=30).json()
    assert stored["columns"]["Battery voltage [V]"] == result["columns"]["Battery voltage [V]"]


@pytest.mark.slow
def test_a_pack_sweep_over_series(stack, receiver):
    """Members 1S, 2S, 4S of 3P at the same pack current: the same cell voltage (1e-9
    relative), battery voltage Ns x it."""
    body = {"base": E2E, "vary": {"pack.series": [1, 2, 4]}}
    reply = requests.post(stack.submit_url + "/sweeps", data=json.dumps(body), timeout=60,
                          headers={"Content-Type": "application/json"})
    assert reply.status_code == 202, reply.text
    results = receiver.wait_for(reply.json()["jobIds"], timeout_s=180)
    by_series = {r["sweep"]["values"]["pack.series"]: r for r in results.values()}
    assert sorted(by_series) == [1, 2, 4]
    cell = np.asarray(by_series[1]["columns"]["Voltage [V]"])
    for ns, r in by_series.items():
        assert r["status"] == "succeeded", r
        assert r["summary"]["Number of cells connected in series to make a battery"] == ns
        assert np.allclose(r["columns"]["Voltage [V]"], cell, rtol=1e-9, atol=0)
        assert np.allclose(r["columns"]["Battery voltage [V]"], ns * cell, rtol=1e-9, atol=0)


@pytest.mark.slow
def test_a_pack_of_differing_cells_end_to_end(stack, receiver):
    """2S2P Thevenin cells, one of them 20 % smaller, through the stack: per-cell currents
    in the callback, Kirchhoff within 1e-6 A at every time, the smaller cell carrying less."""
    body = {"model": {"name": "Thevenin"},
            "pack": {"series": 2, "parallel": 2, "capacity_factors": [0.8, 1.0, 1.0, 1.0],
                     "interconnect_resistance_Ohm": 0.001},
            "protocol": {"type": "constant_current", "current_A": 100, "duration_s": 1200},
            "outputs": {"max_points": 121}}
    _, result = succeeded_on_stack(stack, receiver, body)
    c = {k: np.asarray(v) for k, v in result["columns"].items()}
    for s in (1, 2):
        assert np.max(np.abs(c[f"Current (cell {s}-1) [A]"] + c[f"Current (cell {s}-2) [A]"] - 100.0)) < 1e-6
    assert c["Current (cell 1-1) [A]"][-1] < c["Current (cell 1-2) [A]"][-1]


def test_a_pack_of_sodium_ion_cells_is_series_times_the_cells_voltage():
    """Packs take the sodium-ion DFN as they take the lithium-ion models: 2S2P of
    Chayambuka2022 cells at a pack current of 2 x the cell's 1C, battery voltage = 2 x the
    cell's and battery current = 2 x the cell's, within 1e-9 relative; the cell's voltage
    within 1 mV of PyBaMM's BasicDFN solving one cell at 1C."""
    import pybamm

    pv = pybamm.ParameterValues("Chayambuka2022")
    cell_a = float(pv["Nominal cell capacity [A.h]"])
    body = {"model": {"name": "sodium_ion.BasicDFN"}, "pack": {"series": 2, "parallel": 2},
            "protocol": {"type": "constant_current", "current_A": 2 * cell_a, "duration_s": 600},
            "outputs": {"period_s": 10}}
    job = Job.model_validate(body)
    assert kinds.check(job) == []
    result = kinds.simulate(job)
    c = {k: np.asarray(v) for k, v in result["columns"].items()}
    assert np.allclose(c["Battery voltage [V]"], 2 * c["Voltage [V]"], rtol=1e-9, atol=0)
    assert np.allclose(c["Battery current [A]"], 2 * c["Current [A]"], rtol=1e-9, atol=0)
    assert np.allclose(c["Current [A]"], cell_a)
    pv.update({"Current function [A]": cell_a})
    sim = pybamm.Simulation(pybamm.sodium_ion.BasicDFN(), parameter_values=pv,
                            solver=pybamm.IDAKLUSolver(atol=1e-8, rtol=1e-8))
    ref = sim.solve([0, 600], t_interp=c["Time [s]"])
    assert np.max(np.abs(ref["Voltage [V]"](c["Time [s]"]) - c["Voltage [V]"])) < 1e-3

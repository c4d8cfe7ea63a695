"""Equivalent-circuit jobs (model Thevenin): against a direct PyBaMM solve, the 400s,
and through the real local stack.

Tolerance of every comparison with PyBaMM: max |dV| <= 1 mV on the service's time grid.
The reference is ``pybamm.equivalent_circuit.Thevenin`` with IDAKLU at 1e-8, built here
from PyBaMM's own ``ECM_Example`` set (or from plain numbers), not by the service's code.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pybamm
import pytest
import requests

from shared.contract.job import Job
from shared.engine import cache, ecm, kinds
from tests.conftest import submit

TOLERANCE_V = 1e-3
EXPERIMENT = ["Discharge at 1C for 10 minutes", "Rest for 5 minutes", "Charge at 0.5C until 4.1 V",
              "Hold at 4.1 V until 5 A"]
# an inline drive cycle: 10 s knots, +-100 A pulses (ECM_Example is a 100 A.h cell)
CYCLE_T = [float(t) for t in range(0, 610, 10)]
CYCLE_I = [float(100 * np.sin(t / 37.0) + 20 * np.cos(t / 11.0)) for t in CYCLE_T]


def job(**fields) -> Job:
    body = {"model": {"name": "Thevenin"},
            "protocol": {"type": "constant_current", "current_A": 50, "duration_s": 1800}}
    body.update(fields)
    return Job.model_validate(body)


def solve(j: Job) -> dict:
    assert kinds.check(j) == []
    return kinds.simulate(j)


def reference(pv_updates: dict, *, protocol: str, t_interp=None, experiment=None, period=None,
              model_options=None, parameter_values=None):
    """A direct PyBaMM Thevenin solve (IDAKLU 1e-8)."""
    pv = parameter_values if parameter_values is not None else pybamm.ParameterValues("ECM_Example")
    pv.update(pv_updates, check_already_exists=False)
    solver = pybamm.IDAKLUSolver(atol=1e-8, rtol=1e-8)
    model = pybamm.equivalent_circuit.Thevenin(options=model_options)
    if protocol == "experiment":
        exp = pybamm.Experiment([tuple(experiment)], period=f"{period} seconds")
        return pybamm.Simulation(model, parameter_values=pv, experiment=exp, solver=solver).solve()
    if protocol == "drive_cycle":
        pv.update({"Current function [A]": pybamm.Interpolant(
            np.array(CYCLE_T), np.array(CYCLE_I), pybamm.t, interpolator="linear")})
        return pybamm.Simulation(model, parameter_values=pv, solver=solver).solve(np.array(CYCLE_T), t_interp=t_interp)
    return pybamm.Simulation(model, parameter_values=pv, solver=solver).solve(
        [0, float(t_interp[-1])], t_interp=t_interp)


def max_dv(result: dict, ref) -> float:
    t = np.array(result["columns"]["Time [s]"])
    v = np.array(result["columns"]["Voltage [V]"])
    t_ref, v_ref = ref["Time [s]"].entries, ref["Voltage [V]"].entries
    if len(t_ref) == len(t) and np.allclose(t_ref, t, atol=1e-6):
        return float(np.max(np.abs(v - v_ref)))  # the same grid (experiments: steps' ends repeated)
    return float(np.max(np.abs(v - np.interp(t, t_ref, v_ref))))


# -- ECM_Example against PyBaMM, each protocol ---------------------------------------

def test_constant_current_with_ecm_example_matches_pybamm():
    """50 A for 30 min from SOC 0.8 at 10 degC: |dV| <= 1 mV."""
    r = solve(job(conditions={"initial_soc": 0.8, "ambient_temperature_C": 10}))
    t = np.array(r["columns"]["Time [s]"])
    ref = reference({"Current function [A]": 50.0, "Initial SoC": 0.8, "Ambient temperature [K]": 283.15,
                     "Initial temperature [K]": 283.15}, protocol="constant_current", t_interp=t)
    assert max_dv(r, ref) <= TOLERANCE_V
    assert r["termination"] == "final time" and r["completed"] is True
    s = r["summary"]
    assert s["Discharged capacity [A.h]"] == pytest.approx(25.0, rel=1e-3)
    assert s["Final state of charge"] == pytest.approx(0.8 - 25.0 / 100.0, abs=1e-4)
    assert s["Initial state of charge"] == 0.8
    assert s["Maximum cell temperature [degC]"] > 10.0


def test_experiment_with_ecm_example_matches_pybamm():
    """Discharge, rest, charge, hold (a voltage-controlled step) at a 10 s period: |dV| <= 1 mV."""
    r = solve(job(protocol={"type": "experiment", "steps": EXPERIMENT, "period_s": 10},
                  conditions={"initial_soc": 0.5}))
    ref = reference({"Initial SoC": 0.5}, protocol="experiment", experiment=EXPERIMENT, period=10)
    assert max_dv(r, ref) <= TOLERANCE_V
    assert r["completed"] is True and len(r["cycles"]) == 1
    assert r["summary"]["Maximum voltage [V]"] == pytest.approx(4.1, abs=1e-3)
    assert r["cycles"][0]["Discharged capacity [A.h]"] == pytest.approx(100 / 6, rel=1e-3)


def test_drive_cycle_with_ecm_example_matches_pybamm():
    """An inline +-100 A profile from SOC 0.6: |dV| <= 1 mV at the profile's knots."""
    r = solve(job(protocol={"type": "drive_cycle", "time_s": CYCLE_T, "current_A": CYCLE_I},
                  conditions={"initial_soc": 0.6}))
    t = np.array(r["columns"]["Time [s]"])
    assert np.allclose(t, CYCLE_T)
    ref = reference({"Initial SoC": 0.6}, protocol="drive_cycle", t_interp=t)
    assert max_dv(r, ref) <= TOLERANCE_V
    assert r["completed"] is True
    assert np.allclose(r["columns"]["Current [A]"], CYCLE_I, atol=1e-9)


# -- a user's own cell -----------------------------------------------------------------

def ecm_example_as_tables(current_A: float = 100.0) -> dict:
    """ECM_Example sampled on its own temperature knots and a 0.01 SOC grid, at one
    current (its resistances depend on |I| too; tables here do not)."""
    pv = pybamm.ParameterValues("ECM_Example")
    soc = [round(0.01 * k, 2) for k in range(101)]
    temps = [-20.0, -10.0, 0.0, 10.0, 20.0, 30.0, 40.0, 50.0]

    def value(name, *args):
        return float(np.ravel(pv.evaluate(pv[name](*[pybamm.Scalar(a) for a in args])))[0])

    ocv = [value("Open-circuit voltage [V]", s) for s in soc]
    table = {n: [[value(n, T, current_A, s) for s in soc] for T in temps] for n in ("R0 [Ohm]", "R1 [Ohm]", "C1 [F]")}
    dudt = [[value("Entropic change [V/K]", u, T) for u in ocv] for T in temps]
    return {"capacity_Ah": 100, "soc": soc, "temperatures_C": temps, "ocv_V": ocv, "r0_Ohm": table["R0 [Ohm]"],
            "rc_pairs": [{"r_Ohm": table["R1 [Ohm]"], "c_F": table["C1 [F]"]}],
            "entropic_change_V_per_K": dudt, "lower_voltage_cut_off_V": 3.2, "upper_voltage_cut_off_V": 4.2}


@pytest.fixture(scope="module")
def example_tables() -> dict:
    return ecm_example_as_tables()


def test_tables_sampled_from_ecm_example_reproduce_it(example_tables):
    """ECM_Example as 2-D tables (8 temperatures x 101 SOC points, at 100 A): a 100 A
    discharge from SOC 0.9 and a +-1C experiment reproduce PyBaMM's ECM_Example within 1 mV."""
    r = solve(job(ecm_cell=example_tables, protocol={"type": "constant_current", "current_A": 100, "duration_s": 2400},
                  conditions={"initial_soc": 0.9, "ambient_temperature_C": 15}))
    t = np.array(r["columns"]["Time [s]"])
    ref = reference({"Current function [A]": 100.0, "Initial SoC": 0.9, "Ambient temperature [K]": 288.15,
                     "Initial temperature [K]": 288.15}, protocol="constant_current", t_interp=t)
    assert max_dv(r, ref) <= TOLERANCE_V
    assert r["summary"]["Maximum cell temperature [degC]"] > 16.0  # it heats, so temperature matters

    steps = ["Discharge at 1C for 20 minutes", "Rest for 10 minutes", "Charge at 1C for 15 minutes"]
    r = solve(job(ecm_cell=example_tables, protocol={"type": "experiment", "steps": steps, "period_s": 10},
                  conditions={"initial_soc": 0.7}))
    ref = reference({"Initial SoC": 0.7}, protocol="experiment", experiment=steps, period=10)
    assert max_dv(r, ref) <= TOLERANCE_V


def test_two_rc_pairs_of_constant_tables_match_pybamm_with_numbers():
    """A 2-RC cell with 1-D constant tables and a linear OCV against the same cell given
    to PyBaMM as plain numbers and a function: |dV| <= 1 mV, under a drive cycle."""
    soc = [0.0, 0.5, 1.0]
    cell = {"capacity_Ah": 5.0, "soc": soc, "ocv_V": [3.0, 3.6, 4.2], "r0_Ohm": [0.02] * 3,
            "rc_pairs": [{"r_Ohm": [0.01] * 3, "c_F": [2000.0] * 3}, {"r_Ohm": [0.005] * 3, "c_F": [40000.0] * 3}],
            "lower_voltage_cut_off_V": 2.8, "upper_voltage_cut_off_V": 4.3}
    currents = [c / 20.0 for c in CYCLE_I]  # +-5 A on a 5 A.h cell
    r = solve(job(ecm_cell=cell, model={"name": "Thevenin", "options": {"number of rc elements": 2}},
                  protocol={"type": "drive_cycle", "time_s": CYCLE_T, "current_A": currents},
                  conditions={"initial_soc": 0.5},
                  outputs={"variables": ["Time [s]", "Voltage [V]", "Element-2 overpotential [V]"]}))
    example = pybamm.ParameterValues("ECM_Example")
    pv = pybamm.ParameterValues({
        **{n: example[n] for n in ("Initial temperature [K]", "Ambient temperature [K]", "Cell thermal mass [J/K]",
                                   "Cell-jig heat transfer coefficient [W/K]", "Jig thermal mass [J/K]",
                                   "Jig-air heat transfer coefficient [W/K]")},
        "Initial SoC": 0.5, "Cell capacity [A.h]": 5.0, "Nominal cell capacity [A.h]": 5.0,
        "Upper voltage cut-off [V]": 4.3, "Lower voltage cut-off [V]": 2.8,
        "Open-circuit voltage [V]": lambda sto: 3.0 + 1.2 * sto, "Entropic change [V/K]": 0.0,
        "R0 [Ohm]": 0.02, "R1 [Ohm]": 0.01, "C1 [F]": 2000.0, "R2 [Ohm]": 0.005, "C2 [F]": 40000.0,
        "Element-1 initial overpotential [V]": 0.0, "Element-2 initial overpotential [V]": 0.0,
        "Current function [A]": pybamm.Interpolant(np.array(CYCLE_T), np.array(currents), pybamm.t)})
    model = pybamm.equivalent_circuit.Thevenin(options={"number of rc elements": 2})
    ref = pybamm.Simulation(model, parameter_values=pv, solver=pybamm.IDAKLUSolver(atol=1e-8, rtol=1e-8)).solve(
        np.array(CYCLE_T), t_interp=np.array(r["columns"]["Time [s]"]))
    assert max_dv(r, ref) <= TOLERANCE_V
    assert max(abs(x) for x in r["columns"]["Element-2 overpotential [V]"]) > 1e-3  # the second pair acts


def test_cold_and_warm_solve_times(example_tables, capsys):
    """A new configuration builds once (cache miss), the next job reuses it (hit) and is faster."""
    cache.MODELS.clear()
    cold = solve(job(conditions={"initial_soc": 0.7}))
    warm = solve(job(conditions={"initial_soc": 0.6}))
    assert cold["timings"]["cache"] == "miss" and warm["timings"]["cache"] == "hit"
    assert warm["timings"]["total_s"] < cold["timings"]["total_s"]
    t0 = time.perf_counter()
    tables_cold = solve(job(ecm_cell=example_tables, conditions={"initial_soc": 0.7}))
    tables_s = time.perf_counter() - t0
    tables_warm = solve(job(ecm_cell={**example_tables, "capacity_Ah": 80}, conditions={"initial_soc": 0.7}))
    assert tables_warm["timings"]["cache"] == "hit"  # capacity is a per-job number
    with capsys.disabled():
        print(f"\nECM timings: ECM_Example cold {cold['timings']} warm {warm['timings']}; 2-D tables cold "
              f"{tables_s:.3f} s {tables_cold['timings']} warm {tables_warm['timings']}")


# -- refusals (400 before anything is published) --------------------------------------

@pytest.fixture
def call():
    from tests.test_submit_function import call as call_submit

    return call_submit


BASE = {"model": {"name": "Thevenin"}, "protocol": {"type": "constant_current", "current_A": 10, "duration_s": 60}}
TABLES = {"capacity_Ah": 5, "soc": [0, 0.5, 1], "ocv_V": [3.0, 3.6, 4.2], "r0_Ohm": [0.02, 0.02, 0.02],
          "rc_pairs": [{"r_Ohm": [0.01, 0.01, 0.01], "c_F": [2000, 2000, 2000]}]}


@pytest.mark.parametrize("change, field, words", [
    ({"parameter_set": "Chen2020"}, "parameter_set", ["'Chen2020'", "Thevenin", "ECM_Example"]),
    ({"model": {"name": "DFN"}, "ecm_cell": TABLES}, "ecm_cell", ["only for model Thevenin", "DFN"]),
    # refused by the contract whichever kind would take the job (a pack, an impedance spectrum)
    ({"model": {"name": "SPM"}, "ecm_cell": TABLES, "pack": {"series": 2}}, "ecm_cell",
     ["only for model Thevenin", "SPM"]),
    ({"model": {"name": "SPMe"}, "ecm_cell": TABLES, "protocol": {"type": "impedance", "frequencies_Hz": [1, 10]}},
     "ecm_cell", ["only for model Thevenin", "SPMe"]),
    ({"ecm_cell": TABLES, "parameter_set": "ECM_Example"}, "parameter_set", ["either"]),
    ({"model": {"name": "Thevenin", "options": {"thermal": "lumped"}}}, "model.options.thermal",
     ["number of rc elements"]),
    ({"model": {"name": "Thevenin", "options": {"number of rc elements": 7}}},
     "model.options.number of rc elements", ["[0, 1, 2, 3]"]),
    ({"model": {"name": "Thevenin", "options": {"number of rc elements": 2}}},
     "model.options.number of rc elements", ["ECM_Example defines 1 RC pair"]),
    ({"model": {"name": "Thevenin", "options": {"number of rc elements": 2}}, "ecm_cell": TABLES},
     "model.options.number of rc elements", ["must match"]),
    ({"model": {"name": "Thevenin", "options": {"diffusion element": "true"}}},
     "model.options.diffusion element", ["Diffusion time constant [s]"]),
    ({"protocol": {"type": "ageing", "steps": ["Discharge at 1C until 3.2 V"], "cycles": 10}}, "protocol.type",
     ["ageing"]),
    ({"outputs": {"variables": ["Time [s]", "Electrolyte concentration [mol.m-3]"]}}, "outputs.variables",
     ["not a variable of Thevenin"]),
    ({"parameters": {"Negative electrode porosity": 0.3}}, "parameters.Negative electrode porosity",
     ["not a parameter"]),
    ({"parameters": {"Cell thermal mass [J/K]": -1}}, "parameters.Cell thermal mass [J/K]", ["(0, 1e+09]"]),
    # numbers given for the circuit's elements (these used to pass the checks and fail in the worker)
    ({"parameters": {"R0 [Ohm]": -1}}, "parameters.R0 [Ohm]", ["(0, 1000]"]),
    ({"parameters": {"R1 [Ohm]": 0}}, "parameters.R1 [Ohm]", ["(0, 1000]"]),
    ({"parameters": {"C1 [F]": 0}}, "parameters.C1 [F]", ["(0, 1e+09]"]),
    ({"parameters": {"Element-1 initial overpotential [V]": 100}},
     "parameters.Element-1 initial overpotential [V]", ["[-1, 1]"]),
    ({"parameters": {"Entropic change [V/K]": 5}}, "parameters.Entropic change [V/K]", ["[-0.01, 0.01]"]),
    ({"parameters": {"Open-circuit voltage [V]": 9}}, "parameters.Open-circuit voltage [V]", ["[0.5, 5.5]"]),
    # the job gave only cut-offs the set's own initial SOC is outside of: the cut-offs are named
    ({"ecm_cell": {**TABLES, "lower_voltage_cut_off_V": 3.7}}, "ecm_cell", ["outside the cut-offs 3.7-4.2 V"]),
    ({"parameters": {"Upper voltage cut-off [V]": 3.5}}, "parameters.Upper voltage cut-off [V]",
     ["outside the cut-offs 3.2-3.5 V"]),
    ({"conditions": {"initial_soc": 1.0}}, "conditions.initial_soc", ["strictly between"]),
    ({"ecm_cell": {**TABLES, "soc": [0, 0.6, 0.5]}}, "ecm_cell.soc", ["strictly increasing"]),
    ({"ecm_cell": {**TABLES, "soc": [0, 0.5, 1.2]}}, "ecm_cell.soc", ["[0, 1]"]),
    ({"ecm_cell": {**TABLES, "ocv_V": [3.0, 4.2]}}, "ecm_cell.ocv_V", ["one value per SOC point: 3"]),
    ({"ecm_cell": {**TABLES, "r0_Ohm": [0.02, 0, 0.02]}}, "ecm_cell.r0_Ohm", ["(0, 1000] Ohm"]),
    ({"ecm_cell": {**TABLES, "rc_pairs": [{"r_Ohm": [0.01] * 3, "c_F": [2000, -1, 2000]}]}}, "ecm_cell.rc_pairs",
     ["pair 1 c_F", "(0, 1e+09] F"]),
    ({"ecm_cell": {**TABLES, "temperatures_C": [0, 25]}}, "ecm_cell.r0_Ohm", ["2 rows", "3 values"]),
    ({"ecm_cell": {**TABLES, "soc": [k / 200 for k in range(201)]}}, "ecm_cell.soc", ["101"]),
    ({"ecm_cell": {**TABLES, "rc_pairs": [TABLES["rc_pairs"][0]] * 4}}, "ecm_cell.rc_pairs", ["3"]),
    ({"ecm_cell": {**TABLES, "lower_voltage_cut_off_V": 4.0, "upper_voltage_cut_off_V": 3.9}}, "ecm_cell",
     ["below the upper"]),
    ({"ecm_cell": {**TABLES, "ocv_V": [3.0, 3.0, 4.2], "entropic_change_V_per_K": [0, 0, 0]}},
     "ecm_cell.entropic_change_V_per_K", ["strictly increasing"]),
])
def test_refusals_name_the_field_and_nothing_is_published(call, monkeypatch, change, field, words):
    """Each bad Thevenin job is a 400 listing the field, with the allowed values or range."""
    import shared.delivery.publisher

    published = []
    monkeypatch.setattr(shared.delivery.publisher, "publish_encoded", lambda encoded: published.append(encoded))
    status, reply, _ = call("POST", "/jobs", {**BASE, **change})
    assert status == 400, reply
    errors = [e for e in reply["errors"] if e["field"] == field]
    assert errors, reply["errors"]
    text = " ".join(e["error"] for e in errors)
    for w in words:
        assert w in text, (w, text)
    assert published == []


def test_catalog_lists_the_thevenin_kind():
    entry = kinds.described()["ecm"]
    assert entry["model"] == "Thevenin" and entry["parameter_sets"] == ["ECM_Example"]
    assert entry["options"]["number of rc elements"] == [0, 1, 2, 3]
    assert set(entry["protocols"]) == {"constant_current", "experiment", "drive_cycle"}
    wanted = {"Voltage [V]", "SoC", "Discharge capacity [A.h]", "Cell temperature [degC]"}
    assert wanted <= set(entry["output_variables"])
    assert "r0_Ohm" in entry["ecm_cell"]["tables"]


# -- through the real local stack ------------------------------------------------------

@pytest.mark.slow
def test_ecm_job_sweep_and_reuse_end_to_end(stack, receiver):
    """A user-cell Thevenin job through the emulators, a sweep over its capacity (the
    discharged charge scales with it), and the same job again with reuse answered from
    the store."""
    body = {"model": {"name": "Thevenin"}, "ecm_cell": TABLES, "reuse": True,
            "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 600},
            "conditions": {"initial_soc": 0.8}, "outputs": {"max_points": 50}}
    reply = submit(stack, "/jobs", body)
    assert reply.status_code == 202, reply.text
    first = reply.json()["jobId"]
    result = receiver.wait_for([first], timeout_s=120)[first]
    assert result["status"] == "succeeded", result.get("error")
    assert len(result["columns"]["Voltage [V]"]) == 50
    assert result["summary"]["Discharged capacity [A.h]"] == pytest.approx(5 / 6, rel=1e-3)

    sweep = requests.post(stack.submit_url + "/sweeps", timeout=60, headers={"Content-Type": "application/json"},
                          data=json.dumps({"base": body, "vary": {"ecm_cell.capacity_Ah": [2.5, 10]}}))
    assert sweep.status_code == 202, sweep.text
    members = receiver.wait_for(sweep.json()["jobIds"], timeout_s=120)
    by_index = {r["sweep"]["index"]: r for r in members.values()}
    assert [by_index[i]["status"] for i in (0, 1)] == ["succeeded", "succeeded"]
    # 1C of each capacity for 10 minutes
    assert by_index[0]["summary"]["Discharged capacity [A.h]"] == pytest.approx(2.5 / 6, rel=1e-3)
    assert by_index[1]["summary"]["Discharged capacity [A.h]"] == pytest.approx(10 / 6, rel=1e-3)

    again = submit(stack, "/jobs", body)
    assert again.status_code == 202, again.text
    second = again.json()["jobId"]
    reused = receiver.wait_for([second], timeout_s=60)[second]
    assert reused["status"] == "succeeded" and reused.get("reusedFrom") == first
    assert reused["columns"]["Voltage [V]"] == result["columns"]["Voltage [V]"]

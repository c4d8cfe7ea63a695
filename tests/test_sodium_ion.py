"""Sodium-ion cells: ``pybamm.sodium_ion.BasicDFN`` with ``Chayambuka2022``.

Reference: a fresh ``pybamm.Simulation`` of the same case (the set's values with the
job's numbers baked in, IDAKLU at 1e-8; 1e-7 for the experiment, where IDAS at 1e-8
fails its consistent-initialisation line search at the rest step). Tolerance: max |ΔV| ≤ 1 mV on the service's
own output grid (away from experiment step changes, where the voltage jumps).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pybamm
import pytest
import requests

from shared.contract.job import Job
from shared.engine import kinds
from shared.engine import simulate as simulation
from shared.engine.models import LACKS
from tests.conftest import submit
from tests.test_submit_function import call, published, settings  # noqa: F401 - fixtures

TOLERANCE_V = 1e-3
MODEL = "sodium_ion.BasicDFN"
SET = "Chayambuka2022"
CAPACITY = 0.003  # Chayambuka2022's nominal cell capacity [A.h]
BASE = {"model": {"name": MODEL}, "parameter_set": SET}


def job(**kw) -> Job:
    j = Job.model_validate({**BASE, **kw})
    assert kinds.check(j) == []
    return j


def direct(t=None, soc=None, current=None, experiment=None, t_eval=None, temperature_K=None, tol=1e-8):
    pv = pybamm.ParameterValues(SET)
    if current is not None:
        pv.update({"Current function [A]": current})
    if temperature_K is not None:
        pv.update({"Ambient temperature [K]": temperature_K, "Initial temperature [K]": temperature_K})
    sim = pybamm.Simulation(pybamm.sodium_ion.BasicDFN(), parameter_values=pv, experiment=experiment,
                            solver=pybamm.IDAKLUSolver(atol=tol, rtol=tol))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if experiment is not None:
            return sim.solve(initial_soc=soc)
        return sim.solve(t_eval if t_eval is not None else [0, float(t[-1])], t_interp=t, initial_soc=soc)


def run(j: Job) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulation.simulate(j)


def max_dv(result, ref, exclude=()):
    t = np.array(result["columns"]["Time [s]"])
    v = np.array(result["columns"]["Voltage [V]"])
    keep = t <= ref.t[-1]
    for boundary in exclude:
        keep &= np.abs(t - boundary) > 5.0
    return float(np.max(np.abs(v[keep] - ref["Voltage [V]"](t[keep]))))


def test_the_model_lacks_just_what_the_service_says_it_lacks():
    names = set(pybamm.sodium_ion.BasicDFN().variables.keys())
    from shared.engine.plan import SUMMARY_VARIABLES

    assert {v for v in SUMMARY_VARIABLES if v not in names} == set(LACKS[MODEL])


def test_constant_current_until_cut_off_matches_direct_pybamm():
    j = job(protocol={"type": "constant_current", "c_rate": 1}, outputs={"max_points": 201})
    result = run(j)
    t = np.array(result["columns"]["Time [s]"])
    end = result["summary"]["Requested end time [s]"]  # the service's cap; the cut-off comes first
    ref = direct(np.append(t[t < t[-1]], end), current=CAPACITY)
    assert result["termination"] == ref.termination == "event: Minimum voltage [V]"
    assert ref.t[-1] == pytest.approx(t[-1], abs=0.1)  # the same cut-off time (solver tolerances apart)
    assert result["completed"] is True
    assert max_dv(result, ref) <= TOLERANCE_V
    s = result["summary"]
    assert s["Minimum voltage [V]"] == pytest.approx(2.0, abs=1e-3)
    assert s["Discharged capacity [A.h]"] == pytest.approx(float(ref["Discharge capacity [A.h]"].entries[-1]),
                                                           rel=1e-3)
    # what the model cannot give is null, and a note says why
    assert s["Maximum cell temperature [degC]"] is None and s["Final state of charge"] is None
    assert any("Maximum cell temperature" in n for n in result["notes"])
    assert any("Final state of charge is null" in n for n in result["notes"])
    assert 0.9 < s["Initial state of charge"] <= 1.0  # from PyBaMM's eSOH and the set's concentrations


@pytest.mark.parametrize("soc, temperature_C", [(0.6, None), (0.9, 35.0)])
def test_initial_soc_and_temperature_match_direct_pybamm(soc, temperature_C):
    j = job(protocol={"type": "constant_current", "c_rate": 0.5, "duration_s": 1800},
            conditions={"initial_soc": soc, "ambient_temperature_C": temperature_C}, outputs={"max_points": 91})
    result = run(j)
    ref = direct(np.array(result["columns"]["Time [s]"]), soc=soc, current=CAPACITY / 2,
                 temperature_K=None if temperature_C is None else temperature_C + 273.15)
    assert result["termination"] == ref.termination
    assert max_dv(result, ref) <= TOLERANCE_V
    assert result["summary"]["Initial state of charge"] == pytest.approx(soc)


def test_cccv_experiment_matches_direct_pybamm():
    steps = ["Discharge at 1C until 2.5 V", "Rest for 10 minutes", "Charge at C/2 until 4.0 V",
             "Hold at 4.0 V until C/20"]
    j = job(protocol={"type": "experiment", "steps": steps, "period_s": 20}, conditions={"initial_soc": 0.9},
            outputs={"max_points": 5000})
    result = run(j)
    ref = direct(soc=0.9, experiment=pybamm.Experiment([tuple(steps)], period="20 seconds"), tol=1e-7)
    assert len(ref.sub_solutions) == 4 and ref.t[-1] == pytest.approx(result["endTime"], abs=1.0)
    boundaries = [s.t[-1] for s in ref.sub_solutions]
    assert max_dv(result, ref, exclude=boundaries) <= TOLERANCE_V
    assert result["completed"] is True and [c["cycle"] for c in result["cycles"]] == [1]


def test_drive_cycle_matches_direct_pybamm():
    t = np.arange(0.0, 901.0, 10.0)
    current = CAPACITY * (0.8 + 1.2 * np.sin(t / 60.0))  # 2C peaks, some charging
    j = job(protocol={"type": "drive_cycle", "time_s": t.tolist(), "current_A": current.tolist()})
    result = run(j)
    pv_current = pybamm.Interpolant(t, current, pybamm.t, interpolator="linear")
    ref = direct(np.array(result["columns"]["Time [s]"]), current=pv_current, t_eval=t)
    assert result["termination"] == ref.termination
    assert max_dv(result, ref) <= TOLERANCE_V


@pytest.mark.parametrize("body, field, text", [
    ({"model": {"name": MODEL, "options": {"thermal": "lumped"}}}, "model.options", "takes no model options"),
    ({"protocol": {"type": "ageing", "steps": ["Discharge at 1C until 2.5 V", "Charge at 1C until 4.0 V"],
                   "cycles": 10}}, "protocol.type", "lithium-ion degradation models"),
    ({"parameter_set": "Chen2020"}, "parameter_set", "Chen2020 does not run with sodium_ion.BasicDFN"),
    ({"model": {"name": "DFN"}}, "parameter_set", "Chayambuka2022 does not run with DFN"),
])
def test_what_sodium_ion_cannot_do_is_a_400_naming_the_field(published, body, field, text):
    full = {**BASE, "protocol": {"type": "constant_current", "c_rate": 1}, **body}
    status, reply, _ = call("POST", "/jobs", full)
    assert status == 400, reply
    matching = [e["error"] for e in reply["errors"] if e["field"] == field]
    assert matching and text in matching[0], reply["errors"]
    assert published.calls == 0


def test_a_sodium_ion_job_naming_no_set_gets_its_own_set_and_runs(published, firestore_emulator):
    """Chen2020 (the default for lithium-ion models) is not a sodium-ion cell: a sodium-ion
    job that names no set gets Chayambuka2022, and the message carries it."""
    body = {"model": {"name": MODEL}, "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 60}}
    assert Job.model_validate(body).parameter_set == SET
    status, reply, _ = call("POST", "/jobs", body)
    assert status == 202, reply
    assert published.envelopes[-1].job.parameter_set == SET
    explicit = Job.model_validate({**body, "parameter_set": "Chen2020"})
    assert explicit.parameter_set == "Chen2020"  # a set the job names is kept (and refused by the check)


def test_the_catalog_lists_the_sodium_ion_model_and_its_set(published):
    status, reply, _ = call("GET", "/catalog")
    assert status == 200
    assert MODEL in reply["models"] and MODEL in reply["models_without_options"]
    assert reply["parameter_set_details"][SET]["models"] == [MODEL]
    assert "Voltage [V]" in reply["output_variables"][MODEL]


# -- through the real local stack ------------------------------------------------------

@pytest.mark.slow
def test_sodium_ion_job_and_sweep_end_to_end(stack, receiver):
    """One sodium-ion job through the emulators (its voltage equals the in-process
    engine's), then a sweep over the C-rate (the charge moved scales with it)."""
    body = {**BASE, "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 1200},
            "outputs": {"max_points": 61}}
    reply = submit(stack, "/jobs", body)
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["jobId"]
    result = receiver.wait_for([job_id], timeout_s=120)[job_id]
    assert result["status"] == "succeeded", result.get("error")
    here = run(Job.model_validate(body))
    np.testing.assert_allclose(result["columns"]["Voltage [V]"], here["columns"]["Voltage [V]"], atol=1e-6)
    assert result["summary"]["Maximum cell temperature [degC]"] is None

    sweep = requests.post(stack.submit_url + "/sweeps", timeout=60, headers={"Content-Type": "application/json"},
                          data=json.dumps({"base": body, "vary": {"protocol.c_rate": [0.5, 1.5]}}))
    assert sweep.status_code == 202, sweep.text
    members = receiver.wait_for(sweep.json()["jobIds"], timeout_s=120)
    by_index = {r["sweep"]["index"]: r for r in members.values()}
    assert [by_index[i]["status"] for i in (0, 1)] == ["succeeded", "succeeded"]
    q = [by_index[i]["summary"]["Discharged capacity [A.h]"] for i in (0, 1)]
    assert q[0] == pytest.approx(CAPACITY * 0.5 * 1200 / 3600, rel=1e-3)
    assert q[1] == pytest.approx(3 * q[0], rel=1e-3)

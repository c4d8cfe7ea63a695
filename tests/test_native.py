"""The native job API against direct PyBaMM solves, and its PyBaMM-aware checks.

Reference: a fresh ``pybamm.Simulation`` of the same case with every number
baked in and a tighter solver tolerance (1e-8). Tolerance: max |ΔV| ≤ 1 mV on
the service's own time grid (away from experiment step changes, where the
voltage jumps and either side is right).
"""

import copy
import json

import numpy as np
import pybamm
import pytest

from shared.engine import catalog
from shared.engine import simulate as simulation
from shared.contract.job import Job, job_json_schema
from tests.conftest import REPO

TOLERANCE_V = 1e-3
MODELS = {"SPM": pybamm.lithium_ion.SPM, "SPMe": pybamm.lithium_ion.SPMe, "DFN": pybamm.lithium_ion.DFN}


def job(**kw) -> Job:
    return Job.model_validate(kw)


def direct(j: Job, t: np.ndarray, soc=None, current=None, experiment=None):
    pv = pybamm.ParameterValues(j.parameter_set)
    pv.update(dict(j.parameters))
    if j.conditions.ambient_temperature_C is not None:
        k = j.conditions.ambient_temperature_C + 273.15
        pv.update({"Ambient temperature [K]": k, "Initial temperature [K]": k})
    if current is not None:
        pv.update({"Current function [A]": current})
    sim = pybamm.Simulation(MODELS[j.model.name](options=j.model.options or None), parameter_values=pv,
                            experiment=experiment, solver=pybamm.IDAKLUSolver(atol=1e-8, rtol=1e-8))
    if experiment is not None:
        return sim.solve(initial_soc=soc)
    return sim.solve([0, float(t[-1])], t_interp=t, initial_soc=soc)


def max_dv(result, ref, exclude=()):
    t = np.array(result["columns"]["Time [s]"])
    v = np.array(result["columns"]["Voltage [V]"])
    keep = np.ones_like(t, dtype=bool)
    for boundary in exclude:
        keep &= np.abs(t - boundary) > 5.0
    keep &= t <= ref.t[-1]
    return float(np.max(np.abs(v[keep] - ref["Voltage [V]"](t[keep]))))


@pytest.mark.parametrize("model", ["SPM", "SPMe", "DFN"])
@pytest.mark.parametrize("parameter_set", ["Chen2020", "Marquis2019", "Mohtat2020", "NCA_Kim2011", "Prada2013"])
def test_constant_current_matches_direct_pybamm(model, parameter_set):
    j = job(model={"name": model}, parameter_set=parameter_set,
            protocol={"type": "constant_current", "c_rate": 1, "duration_s": 1800},
            conditions={"initial_soc": 0.9}, outputs={"max_points": 181})
    result = simulation.simulate(j)
    capacity = pybamm.ParameterValues(parameter_set)["Nominal cell capacity [A.h]"]
    ref = direct(j, np.array(result["columns"]["Time [s]"]), soc=0.9, current=capacity)
    assert result["termination"] == ref.termination
    assert max_dv(result, ref) <= TOLERANCE_V


@pytest.mark.parametrize("model", ["SPMe", "DFN"])
def test_cccv_experiment_matches_direct_pybamm_and_summarises_cycles(model):
    steps = ["Discharge at 1C until 3.0 V", "Rest for 10 minutes", "Charge at C/2 until 4.1 V",
             "Hold at 4.1 V until C/20"]
    j = job(model={"name": model}, parameter_set="Chen2020",
            protocol={"type": "experiment", "steps": steps, "cycles": 2, "period_s": 30},
            conditions={"initial_soc": 1.0}, outputs={"max_points": 20000})
    result = simulation.simulate(j)
    ref = direct(j, None, soc=1.0, experiment=pybamm.Experiment([tuple(steps)] * 2, period="30 seconds"))
    boundaries = [s.t[-1] for s in ref.sub_solutions]
    assert max_dv(result, ref, exclude=boundaries) <= TOLERANCE_V
    assert result["completed"] is True
    cycles = result["cycles"]
    assert [c["cycle"] for c in cycles] == [1, 2]
    for c in cycles:
        assert c["Discharged capacity [A.h]"] > 3.0 and c["Charged capacity [A.h]"] > 3.0
        assert c["Minimum voltage [V]"] >= 3.0 - 1e-3 and c["Maximum voltage [V]"] <= 4.1 + 1e-3


def test_inline_drive_cycle_matches_direct_pybamm_and_conserves_charge():
    t_data = list(np.arange(0.0, 301.0, 1.0))
    i_data = list(2.5 + 2.0 * np.sin(np.arange(0, 301) / 20.0))
    j = job(model={"name": "SPMe"}, parameter_set="Chen2020",
            protocol={"type": "drive_cycle", "time_s": t_data, "current_A": i_data, "scale": 2.0},
            conditions={"initial_soc": 0.8})
    result = simulation.simulate(j)
    current = pybamm.Interpolant(np.array(t_data), 2.0 * np.array(i_data), pybamm.t, interpolator="linear")
    ref = direct(j, np.array(result["columns"]["Time [s]"]), soc=0.8, current=current)
    assert max_dv(result, ref) <= TOLERANCE_V
    t = np.array(result["columns"]["Time [s]"])
    i = np.array(result["columns"]["Current [A]"])
    integral = np.trapezoid(i, t) / 3600.0
    assert result["summary"]["Discharged capacity [A.h]"] == pytest.approx(integral, rel=1e-3)
    assert np.allclose(i, 2.0 * np.array(i_data), atol=1e-9)


def test_constant_current_conserves_charge():
    j = job(model={"name": "DFN"}, protocol={"type": "constant_current", "current_A": 3.0, "duration_s": 2000})
    result = simulation.simulate(j)
    assert result["summary"]["Discharged capacity [A.h]"] == pytest.approx(3.0 * 2000 / 3600, rel=1e-3)


def test_cold_cell_delivers_less_than_a_warm_one_and_temperatures_stay_physical():
    def run(celsius):
        return simulation.simulate(job(model={"name": "SPMe", "options": {"thermal": "lumped"}},
                                       protocol={"type": "constant_current", "c_rate": 1},
                                       conditions={"ambient_temperature_C": celsius, "initial_soc": 1.0},
                                       outputs={"variables": ["Time [s]", "Voltage [V]",
                                                              "Volume-averaged cell temperature [K]"]}))
    cold, warm = run(0.0), run(45.0)
    for r, ambient in ((cold, 0.0), (warm, 45.0)):
        assert r["termination"] == "event: Minimum voltage [V]" and r["completed"] is True
        temps = np.array(r["columns"]["Volume-averaged cell temperature [K]"]) - 273.15
        assert ambient - 0.5 <= temps.min() and temps.max() <= ambient + 40  # self-heating, no runaway
        assert r["summary"]["Maximum cell temperature [degC]"] > ambient  # a 1C discharge warms the cell
    assert cold["summary"]["Discharged capacity [A.h]"] < warm["summary"]["Discharged capacity [A.h]"]


def test_bpx_cell_runs_and_reports_soc():
    doc = json.loads((REPO / "examples" / "lgm50_like_bpx.json").read_text())
    original = copy.deepcopy(doc)
    r = simulation.simulate(job(model={"name": "DFN"}, parameter_set=None, bpx=doc,
                                protocol={"type": "constant_current", "c_rate": 1},
                                conditions={"initial_soc": 0.8}))
    assert r["termination"] == "event: Minimum voltage [V]"
    assert r["summary"]["Initial state of charge"] == pytest.approx(0.8)
    assert r["summary"]["Final state of charge"] < 0.1
    assert doc == original  # the job's document was not mutated into objects


def test_summary_only_omits_the_series():
    r = simulation.simulate(job(model={"name": "SPM"}, protocol={"type": "constant_current", "c_rate": 0.5,
                                                               "duration_s": 600},
                                outputs={"summary_only": True}))
    assert "columns" not in r and r["summary"]["End time [s]"] == pytest.approx(600)


@pytest.mark.parametrize("body, field", [
    ({"parameters": {"Nominal cell capacity [A.h]": 5, "Colour of the can": 3}}, "parameters.Colour of the can"),
    ({"outputs": {"variables": ["Voltage [V]", "Flux capacitor [GW]"]}}, "outputs.variables"),
    ({"outputs": {"variables": ["Electrolyte concentration [mol.m-3]"]}}, "outputs.variables"),
    ({"model": {"name": "DFN", "options": {"thermal": "sauna"}}}, "model.options"),
    ({"parameter_set": "NoSuchCell2099"}, "parameter_set"),
    ({"protocol": {"type": "experiment", "steps": ["Discharge at 1C until the cows come home"]}}, "protocol.steps"),
    ({"protocol": {"type": "drive_cycle", "name": "NEDC"}}, "protocol.name"),
    ({"protocol": {"type": "experiment", "steps": ["Rest for 1 hour", "Discharge at 50C until 2.5 V"]}},
     "protocol.steps.1"),
    ({"protocol": {"type": "experiment", "steps": ["Charge at 900 A for 1 minute"]}}, "protocol.steps.0"),
    ({"protocol": {"type": "experiment", "steps": ["Rest for 100 hours"], "cycles": 500}}, "protocol"),
])
def test_pybamm_aware_checks_name_the_field(body, field):
    base = {"protocol": {"type": "constant_current", "c_rate": 1}}
    errors = catalog.check(Job.model_validate({**base, **body}))
    assert field in {e["field"] for e in errors}, errors


def test_catalog_lists_what_the_checks_accept():
    c = catalog.catalog()
    assert set(c["models"]) == {"SPM", "SPMe", "DFN", "sodium_ion.BasicDFN"}
    assert "Chen2020" in c["parameter_sets"] and "US06" in c["drive_cycles"]["installed"]
    assert "Voltage [V]" in c["output_variables"]["DFN"]
    assert c["limits"]["max_cycles"] > 0


def test_published_schema_file_is_generated_from_the_code():
    on_disk = json.loads((REPO / "schema" / "job.schema.json").read_text())
    assert on_disk == job_json_schema(), "run `make schema` and commit schema/job.schema.json"


def test_a_run_stopped_by_the_service_time_cap_is_not_called_complete():
    r = simulation.simulate(job(model={"name": "SPM"}, protocol={"type": "constant_current", "current_A": 5.0},
                                parameters={"Nominal cell capacity [A.h]": 0.5}))
    assert r["termination"] == "final time"
    assert r["completed"] is False and r["stoppedEarly"] is True
    assert any("time cap" in n for n in r["notes"])


def test_experiment_summary_separates_discharged_charged_and_net():
    r = simulation.simulate(job(model={"name": "SPM"}, conditions={"initial_soc": 0.5},
                                protocol={"type": "experiment", "steps": ["Discharge at 1C for 10 minutes",
                                                                          "Charge at 1C for 20 minutes"]}))
    s = r["summary"]
    assert s["Discharged capacity [A.h]"] == pytest.approx(5.0 / 6, rel=0.02)
    assert s["Charged capacity [A.h]"] == pytest.approx(5.0 / 3, rel=0.02)
    assert s["Net discharged capacity [A.h]"] == pytest.approx(-5.0 / 6, rel=0.02)
    assert s["Discharged energy [W.h]"] > 0 and s["Charged energy [W.h]"] > s["Discharged energy [W.h]"]


def test_experiment_voltage_past_a_cut_off_is_flagged():
    """PyBaMM relaxes cut-off events by 1 V inside experiment steps; the result must say so."""
    r = simulation.simulate(job(model={"name": "SPM"}, conditions={"initial_soc": 0.3},
                                protocol={"type": "experiment", "steps": ["Discharge at 1C for 1 hour"]}))
    assert r["summary"]["Minimum voltage [V]"] < 2.5
    assert r["summary"]["Within voltage cut-offs"] is False
    assert any("below the 2.5 V cut-off" in n for n in r["notes"])


def test_c_rate_current_above_the_limit_fails_with_the_field():
    with pytest.raises(simulation.SimulationError) as info:
        simulation.simulate(job(model={"name": "SPM"}, parameters={"Nominal cell capacity [A.h]": 900},
                                protocol={"type": "constant_current", "c_rate": 10, "duration_s": 60}))
    assert "protocol.c_rate" in str(info.value)

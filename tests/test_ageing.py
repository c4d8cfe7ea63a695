"""Ageing studies (protocol "ageing"): per-cycle degradation rows equal to a direct PyBaMM
solve, PyBaMM's end-of-life rule, series only for the saved cycles in flat memory,
failures that keep the cycles before them, and the checks at submit.

Reference: a fresh ``pybamm.Simulation`` of the same experiment with the service's
solver tolerances (``shared.engine.build``), solved in one call as PyBaMM documents.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pybamm
import pytest
from pydantic import ValidationError

from shared.contract.job import Job, error_list
from shared.contract.limits import LIMITS
from shared.engine import catalog, kinds
from shared.engine.build import ATOL, RTOL
from shared.engine.errors import SimulationError
from shared.engine.protocols import ageing
from tests.conftest import REPO

OPTIONS = {"SEI": "solvent-diffusion limited", "SEI porosity change": "true", "lithium plating": "partially reversible"}
STEPS = ["Discharge at 1C until 2.5 V", "Charge at 0.3C until 4.2 V", "Hold at 4.2 V until C/100"]
COMPARED = ("Capacity [A.h]", "Loss of lithium inventory [%]", "Loss of capacity to negative SEI [A.h]",
            "Loss of capacity to negative lithium plating [A.h]", "Throughput capacity [A.h]")


def study(**protocol) -> dict:
    return {"model": {"name": "SPM", "options": OPTIONS}, "parameter_set": "OKane2022",
            "protocol": {"type": "ageing", "steps": STEPS, **protocol}}


def run(body: dict) -> dict:
    job = Job.model_validate(body)
    assert catalog.check(job) == []
    return kinds.simulate(job)


def direct(cycles: int, termination=None):
    sim = pybamm.Simulation(pybamm.lithium_ion.SPM(dict(OPTIONS)), parameter_values=pybamm.ParameterValues("OKane2022"),
                            experiment=pybamm.Experiment([tuple(STEPS)] * cycles, termination=termination),
                            solver=pybamm.IDAKLUSolver(atol=ATOL, rtol=RTOL))
    return sim.solve()


@pytest.fixture(scope="module")
def reference():
    """20 cycles, every cycle's full solution kept (PyBaMM's default)."""
    return direct(20)


# --------------------------------------------------------------------------
# (a) the rows equal a direct PyBaMM solve, cycle for cycle
# --------------------------------------------------------------------------
@pytest.mark.parametrize("chunk", [ageing.CHUNK_CYCLES, 6])
def test_per_cycle_rows_equal_a_direct_pybamm_solve(reference, chunk, monkeypatch):
    """Across chunk boundaries too (6: chunks of 6, 6, 6 and 2 cycles of a 6-cycle experiment)."""
    monkeypatch.setattr(ageing, "CHUNK_CYCLES", chunk)
    r = run(study(cycles=20, save_cycles={"every": 5}))
    assert r["completed"] is True and r["stoppedEarly"] is False
    assert [row["cycle"] for row in r["cycles"]] == list(range(1, 21))
    want = reference.summary_variables
    for name in COMPARED:
        got = np.array([row[name] for row in r["cycles"]], dtype=float)
        np.testing.assert_allclose(got, np.array(want[name], dtype=float), rtol=1e-4, atol=0, err_msg=name)
    capacities = np.array(want["Capacity [A.h]"])
    fade = np.array([row["Capacity fade [%]"] for row in r["cycles"]])
    # (a difference of nearly equal capacities: compared in percentage points)
    np.testing.assert_allclose(fade, (1 - capacities / capacities[0]) * 100, rtol=0, atol=1e-4)
    # the series-derived numbers against each cycle's own series
    for row, cycle in zip(r["cycles"], reference.cycles, strict=True):
        v = cycle["Voltage [V]"].entries
        t = cycle["Time [s]"].entries
        assert row["Minimum voltage [V]"] == pytest.approx(v.min(), abs=1e-6)
        assert row["Maximum voltage [V]"] == pytest.approx(v.max(), abs=1e-6)
        assert row["Start time [s]"] == pytest.approx(t[0], rel=1e-5)
        assert row["Duration [s]"] == pytest.approx(t[-1] - t[0], rel=1e-5)
        assert row["Discharged capacity [A.h]"] == pytest.approx(row["Capacity [A.h]"], rel=0.05)
    # series only for the saved cycles: the first, every 5th, the last
    assert r["saved_cycles"] == [1, 5, 10, 15, 20]
    columns = r["columns"]
    assert set(columns["Cycle number"]) == {1, 5, 10, 15, 20}
    assert len(columns["Cycle number"]) == len(columns["Time [s]"]) <= 2000  # outputs.max_points
    cycle_of = np.array(columns["Cycle number"])
    t = np.array(columns["Time [s]"])
    for k in r["saved_cycles"]:
        mine = t[cycle_of == k]
        row = r["cycles"][k - 1]
        assert mine[0] == pytest.approx(row["Start time [s]"]) and mine[-1] == pytest.approx(row["End time [s]"])
        ref = reference.cycles[k - 1]
        v = np.array(columns["Voltage [V]"])[cycle_of == k]
        inner = np.ones_like(mine, dtype=bool)  # away from step changes, where the voltage jumps
        for step in ref.steps:
            inner &= np.abs(mine - step.t[-1]) > 5
        assert np.max(np.abs(v[inner] - ref["Voltage [V]"](mine[inner]))) < 1e-3


# --------------------------------------------------------------------------
# (b) end of life at the cycle PyBaMM's own termination stops at
# --------------------------------------------------------------------------
@pytest.mark.parametrize("end_of_life, termination", [
    ({"capacity_Ah": 5.092}, "5.092 Ah capacity"),
    ({"capacity_percent": 99.9}, "99.9% capacity"),
])
def test_end_of_life_stops_at_the_cycle_pybamm_s_termination_does(end_of_life, termination):
    ref = direct(60, termination=[termination])
    assert ref.termination == "experiment capacity limit reached"
    k = len(ref.cycles)
    assert 15 <= k < 60  # reached, well inside the study
    r = run(study(cycles=60, end_of_life=end_of_life))
    assert r["completed"] is True and r["stoppedEarly"] is False
    assert r["termination"] == "experiment capacity limit reached"
    eol = r["end_of_life"]
    assert eol["reached"] is True and eol["cycle"] == k and eol["criterion"] == termination
    assert len(r["cycles"]) == k and r["saved_cycles"] == [1, k]
    capacities = [row["Capacity [A.h]"] for row in r["cycles"]]
    assert capacities[-1] <= eol["capacity_threshold_Ah"] < capacities[-2]
    np.testing.assert_allclose(capacities, ref.summary_variables["Capacity [A.h]"], rtol=1e-4)


def test_an_end_of_life_not_reached_is_a_complete_study_that_says_so():
    r = run(study(cycles=3, end_of_life={"capacity_percent": 50}))
    assert r["completed"] is True and len(r["cycles"]) == 3
    assert r["end_of_life"] == {"reached": False, "cycle": None, "criterion": "50% capacity",
                                "capacity_threshold_Ah": pytest.approx(r["cycles"][0]["Capacity [A.h]"] / 2)}


# --------------------------------------------------------------------------
# (c) series only for the saved cycles, in flat memory
# --------------------------------------------------------------------------
MEASURE = textwrap.dedent("""
    import json, os, sys
    os.environ["PYBAMM_DISABLE_TELEMETRY"] = "true"
    import pybamm
    from shared.contract.job import Job
    from shared.engine import kinds
    from shared.engine.build import ATOL, RTOL
    kb = lambda key: next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key)) / 1024
    body, options, steps = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
    out = {}
    before = kb("VmRSS:")
    body["protocol"]["cycles"] = 40
    r = kinds.simulate(Job.model_validate(body))
    out["after_40_mb"] = kb("VmHWM:") - before  # with the model built and the caches warm
    body["protocol"]["cycles"] = 200
    r = kinds.simulate(Job.model_validate(body))
    out["after_200_mb"] = kb("VmHWM:") - before
    out["cycles"], out["saved"], out["completed"] = len(r["cycles"]), r["saved_cycles"], r["completed"]
    del r
    # what keeping every cycle costs: PyBaMM's default solve of the same 200 cycles
    sim = pybamm.Simulation(pybamm.lithium_ion.SPM(options), parameter_values=pybamm.ParameterValues("OKane2022"),
                            experiment=pybamm.Experiment([tuple(steps)] * 200),
                            solver=pybamm.IDAKLUSolver(atol=ATOL, rtol=RTOL))
    start = kb("VmRSS:")
    solution = sim.solve()
    out["keep_every_cycle_mb"] = kb("VmHWM:") - start
    print(json.dumps(out))
""")


def test_a_200_cycle_study_keeps_series_of_the_saved_cycles_only_in_flat_memory():
    """VmHWM of a fresh interpreter (ru_maxrss would keep the forking pytest's peak):
    measured ~36 MB after 40 cycles and ~44 MB after 200 (1000: ~45 MB); PyBaMM keeping
    every cycle of the same 200 cycles: ~230 MB."""
    body = study(cycles=200, save_cycles={"every": 100})
    out = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(body), json.dumps(OPTIONS), json.dumps(STEPS)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    m = json.loads(out.stdout.strip().splitlines()[-1])
    assert m["cycles"] == 200 and m["completed"] is True and m["saved"] == [1, 100, 200]
    assert m["after_200_mb"] - m["after_40_mb"] < 20, m  # flat: 160 more cycles cost next to nothing
    assert m["after_200_mb"] < m["keep_every_cycle_mb"] / 3, m


def test_summary_only_returns_rows_without_series():
    r = run({**study(cycles=2), "outputs": {"summary_only": True}})
    assert "columns" not in r and len(r["cycles"]) == 2 and r["saved_cycles"] == [1, 2]


# --------------------------------------------------------------------------
# failures and the service's wall time keep the cycles before them
# --------------------------------------------------------------------------
@pytest.mark.parametrize("cycle, step", [(5, 2), (7, 1)])
def test_a_solver_failure_in_cycle_k_keeps_the_k_minus_1_cycles_before_it(cycle, step, monkeypatch):
    """(7, 1) with chunks of 6: the first step of a chunk, which PyBaMM raises instead of
    returning a partial solution."""
    monkeypatch.setattr(ageing, "CHUNK_CYCLES", 6)
    original = ageing._Recorder._on_step

    def failing(self, solution):
        if len(self.rows) + 1 == cycle and len(self._cycle_steps) + 1 == step:
            raise pybamm.SolverError("IDA_CONV_FAIL: injected")
        original(self, solution)

    monkeypatch.setattr(ageing._Recorder, "_on_step", failing)
    r = run(study(cycles=10, save_cycles={"every": 3}))
    assert r["completed"] is False and r["stoppedEarly"] is True
    assert [row["cycle"] for row in r["cycles"]] == list(range(1, cycle))
    assert r["termination"] == f"solver error in cycle {cycle}"
    assert any(f"cycle {cycle}" in n and "Newton iteration did not converge" in n and f"{cycle - 1} cycle(s)" in n
               for n in r["notes"]), r["notes"]
    assert r["saved_cycles"] == sorted({1, 3, 6, cycle - 1} & set(range(1, cycle)))
    assert r["endTime"] == pytest.approx(r["cycles"][-1]["End time [s]"])


@pytest.mark.parametrize("step", [1, 2])
def test_a_failure_in_the_first_cycle_is_an_error_saying_why(step, monkeypatch):
    original = ageing._Recorder._on_step

    def failing(self, solution):
        if not self.rows and len(self._cycle_steps) + 1 == step:
            raise pybamm.SolverError("IDA_CONV_FAIL: injected")
        original(self, solution)

    monkeypatch.setattr(ageing._Recorder, "_on_step", failing)
    with pytest.raises(SimulationError) as info:
        run(study(cycles=5))
    assert "Newton iteration did not converge" in str(info.value)


def test_the_study_stops_before_the_service_s_wall_time_budget_with_what_it_has(monkeypatch):
    budget = ageing.get_settings().job_time_budget_s
    # leave ~2 s of the budget for this study
    monkeypatch.setattr(ageing, "MARGIN_FRACTION", 0.0)
    monkeypatch.setattr(ageing, "MARGIN_S", budget - 2.0)
    r = run(study(cycles=2000))
    assert r["completed"] is False and r["termination"] == "service time budget reached"
    assert 0 < len(r["cycles"]) < 2000
    assert any("JOB_TIME_BUDGET_S" in n and f"{len(r['cycles'])} of 2000 cycles" in n for n in r["notes"])
    assert r["saved_cycles"][-1] == len(r["cycles"])


# --------------------------------------------------------------------------
# (d) checks at submit
# --------------------------------------------------------------------------
def fields(body) -> set[str]:
    try:
        job = Job.model_validate(body)
    except ValidationError as exc:
        return {e["field"] for e in error_list(exc)}
    return {e["field"] for e in catalog.check(job)}


@pytest.mark.parametrize("change, field", [
    ({"cycles": LIMITS["max_ageing_cycles"] + 1}, "protocol.cycles"),
    ({"cycles": 0}, "protocol.cycles"),
    ({"end_of_life": {"capacity_percent": 80, "capacity_Ah": 4.0}}, "protocol.end_of_life"),
    ({"end_of_life": {}}, "protocol.end_of_life"),
    ({"end_of_life": {"capacity_percent": 120}}, "protocol.end_of_life.capacity_percent"),
    ({"save_cycles": {"every": 1}, "cycles": LIMITS["max_saved_cycles"] + 1}, "protocol.save_cycles"),
    ({"save_cycles": {"cycles": [5, 50]}, "cycles": 10}, "protocol.save_cycles.cycles"),
    ({"steps": ["Discharge at 1C until the cows come home"]}, "protocol.steps"),
    ({"steps": ["Discharge at 50C until 2.5 V"]}, "protocol.steps.0"),
    ({"period_s": 0.001}, "protocol.period_s"),
    ({"colour": "red"}, "protocol.colour"),
    ({"progress_every_cycles": 0}, "protocol.progress_every_cycles"),
    ({"progress_every_cycles": 1, "cycles": 1000}, "protocol.progress_every_cycles"),
])
def test_bad_studies_are_refused_naming_the_field(change, field):
    body = study(cycles=100)
    body["protocol"].update(change)
    assert field in fields(body)


def test_too_many_progress_callbacks_are_refused_with_the_allowed_range():
    job = Job.model_validate(study(cycles=1000, progress_every_cycles=5))
    errors = [e for e in catalog.check(job) if e["field"] == "protocol.progress_every_cycles"]
    assert len(errors) == 1 and "allowed 10 to 5000" in errors[0]["error"], errors
    assert catalog.check(Job.model_validate(study(cycles=1000, progress_every_cycles=10))) == []


def test_the_48_h_limit_of_experiments_does_not_apply_to_a_study():
    body = study(cycles=LIMITS["max_ageing_cycles"], steps=["Rest for 10 hours"])
    assert fields(body) == set()
    experiment = {**body, "protocol": {"type": "experiment", "steps": ["Rest for 10 hours"], "cycles": 500}}
    assert "protocol" in fields(experiment)


def test_an_option_the_set_cannot_carry_is_refused_naming_the_option():
    body = {**study(cycles=10), "parameter_set": "Chen2020"}
    assert "model.options.lithium plating" in fields(body)
    body = {**study(cycles=10), "model": {"name": "DFN", "options": {"particle mechanics": "swelling and cracking"}},
            "parameter_set": "Chen2020"}
    assert "model.options.particle mechanics" in fields(body)


def test_the_catalog_lists_which_sets_carry_each_degradation_option_as_check_decides():
    table = catalog.catalog()["option_parameter_sets"]
    assert set(table) == set(catalog.DEGRADATION_OPTIONS)
    assert catalog.OPTIONS_OFFERED["lithium plating"] == catalog.DEGRADATION_OPTIONS["lithium plating"]
    assert "OKane2022" in table["lithium plating"]["partially reversible"]
    assert "Chen2020" not in table["lithium plating"]["partially reversible"]
    for option, values in table.items():
        for value, carriers in values.items():
            with_sei = option in catalog._WITH_SEI and value not in ("none", "false")
            options = {option: value, **({"SEI": "reaction limited"} if with_sei else {})}
            for name in catalog.PARAMETER_SETS:
                if with_sei and name not in table["SEI"]["reaction limited"]:
                    continue
                job = Job.model_validate({"model": {"name": "SPM", "options": options}, "parameter_set": name,
                                          "protocol": {"type": "ageing", "steps": STEPS, "cycles": 1}})
                refused = any(e["field"].startswith("model.options") for e in catalog.check(job))
                assert refused == (name not in carriers), (option, value, name)
    # the same for every model (the catalog lists SPM's)
    assert catalog.option_parameter_sets("SPMe") == table == catalog.option_parameter_sets("DFN")


def test_the_limits_and_the_protocol_are_published():
    c = catalog.catalog()
    assert "ageing" in c["protocols"]
    assert c["limits"]["max_ageing_cycles"] >= 5000 and c["limits"]["max_saved_cycles"] > 0


def test_the_callback_and_the_stored_body_carry_the_study_s_own_keys():
    """body_for passes an ageing result's end of life and saved cycles on (the stored
    result is this body), with one row per cycle."""
    from shared.contract.envelope import Envelope
    from shared.delivery import callback

    job = Job.model_validate(study(cycles=3, save_cycles={"every": 2}))
    result = kinds.simulate(job)
    body = callback.body_for(Envelope(job_id="ageing-1", kind="native", submitted_at="t", job=job),
                             "s", "f", 1, result=result)
    assert body["end_of_life"] == result["end_of_life"] and body["saved_cycles"] == result["saved_cycles"]
    assert [row["cycle"] for row in body["cycles"]] == [1, 2, 3]


def test_the_cli_draws_capacity_and_lithium_inventory_against_cycle_number(tmp_path):
    """cli.plots.plot_ageing: a PNG for an ageing result (its rows), nothing for a result without rows."""
    from cli.plots import is_ageing, plot_ageing

    result = run(study(cycles=3, end_of_life={"capacity_percent": 99.99}))
    assert is_ageing(result) and result["end_of_life"]["reached"] is True
    png = plot_ageing([("SPM", result)], tmp_path / "ageing.png", title="3 cycles")
    assert png is not None and png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert plot_ageing([("cc", {"status": "succeeded", "columns": {"Time [s]": [0, 1]}})], tmp_path / "x.png") is None
    assert not (tmp_path / "x.png").exists()

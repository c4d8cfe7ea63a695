"""Packs of differing Thevenin cells (``shared.engine.pack_circuit``): drive cycles,
experiments and per-cell initial SoC, the model cache, and the 400s. Correctness
against Kirchhoff's laws and a direct PyBaMM Thevenin solve."""

from __future__ import annotations

import numpy as np
import pybamm
import pytest

from shared.contract.job import Job
from shared.engine import cache, drive_cycles, kinds, pack_circuit
from tests.conftest import submit
from tests.test_submit_function import call, fields_of, published  # noqa: F401
from tests.test_submit_function import settings  # noqa: F401 - autouse: known settings for call()

CYCLE_T = [0.0, 60.0, 120.0, 180.0, 240.0, 300.0]
CYCLE_I = [50.0, 200.0, -80.0, 120.0, 0.0, 150.0]  # pack currents [A]


def job_of(pack: dict, protocol: dict, **more) -> Job:
    body = {"model": {"name": "Thevenin"}, "pack": pack, "protocol": protocol, **more}
    body.setdefault("outputs", {"max_points": 400})
    return Job.model_validate(body)


def columns(result) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=float) for k, v in result["columns"].items()}


def element_sums(c, series: int, parallel: int) -> np.ndarray:
    """Each element's cell currents summed, shape (series, points)."""
    return np.array([sum(c[f"Current (cell {s}-{p}) [A]"] for p in range(1, parallel + 1))
                     for s in range(1, series + 1)])


def direct_thevenin(current, t_eval, t_interp=None, initial_soc=None):
    """PyBaMM's own Thevenin cell (ECM_Example) at a constant current or a current
    interpolant of time, IDAKLU at the service's tolerances."""
    pv = pybamm.ParameterValues("ECM_Example")
    pv["Current function [A]"] = current
    if initial_soc is not None:
        pv["Initial SoC"] = initial_soc
    sim = pybamm.Simulation(pybamm.equivalent_circuit.Thevenin(), parameter_values=pv,
                            solver=pybamm.IDAKLUSolver(atol=1e-6, rtol=1e-6))
    return sim.solve(t_eval, t_interp=t_interp)


def test_drive_cycle_kirchhoff_and_the_cycle_is_the_pack_current():
    """2S3P of differing cells with 1 mOhm interconnects on an inline cycle of pack
    currents (charge included): at every output time each element's cell currents sum to
    the cycle's current within 1e-6 A, and "Battery current [A]" is the cycle's (1e-9 A)."""
    job = job_of({"series": 2, "parallel": 3, "capacity_factors": [0.8, 1.0, 1.2, 1.0, 0.9, 1.1],
                  "resistance_factors": [1.0, 1.5, 1.0, 0.8, 1.0, 1.0], "interconnect_resistance_Ohm": 0.001},
                 {"type": "drive_cycle", "time_s": CYCLE_T, "current_A": CYCLE_I},
                 conditions={"initial_soc": 0.7}, outputs={"period_s": 2.0, "max_points": 400})
    assert kinds.check(job) == []
    result = kinds.simulate(job)
    c = columns(result)
    expected = np.interp(c["Time [s]"], CYCLE_T, CYCLE_I)
    assert np.max(np.abs(c["Battery current [A]"] - expected)) < 1e-9
    assert np.max(np.abs(element_sums(c, 2, 3) - expected)) < 1e-6
    assert result["completed"] and result["termination"] == "final time"
    assert c["Time [s]"][-1] == pytest.approx(300.0)
    # the cells do differ: the small cell 1-1 does not carry a third
    assert np.max(np.abs(c["Current (cell 1-1) [A]"] - expected / 3)) > 1.0


def test_identical_cells_on_us06_reproduce_pybamms_thevenin():
    """2S3P of identical cells, no interconnect, US06 x 60 as the pack current: each series
    element's voltage (pack voltage / 2) and every cell's equal PyBaMM's Thevenin cell on
    US06 x 20 within 1 mV at every knot, and each cell carries a third (1e-6 A)."""
    job = job_of({"series": 2, "parallel": 3}, {"type": "drive_cycle", "name": "US06", "scale": 60},
                 conditions={"initial_soc": 0.8}, outputs={"max_points": 1000})
    assert kinds.check(job) == []
    result = kinds.simulate(job)
    c = columns(result)
    t_data, i_data = drive_cycles.load("US06")
    t_data = np.asarray(t_data, dtype=float)
    current = pybamm.Interpolant(t_data, np.asarray(i_data, dtype=float) * 20, pybamm.t, interpolator="linear")
    theirs = direct_thevenin(current, t_data, t_interp=c["Time [s]"], initial_soc=0.8)
    v_ref = theirs["Voltage [V]"](c["Time [s]"])
    assert result["completed"], result["termination"]
    assert np.max(np.abs(c["Battery voltage [V]"] / 2 - v_ref)) < 1e-3
    for s in (1, 2):
        for p in (1, 2, 3):
            assert np.max(np.abs(c[f"Voltage (cell {s}-{p}) [V]"] - v_ref)) < 1e-3
            assert np.max(np.abs(c[f"Current (cell {s}-{p}) [A]"] - c["Battery current [A]"] / 3)) < 1e-6


def test_a_drive_cycle_stops_honestly_at_a_cells_cut_off():
    """A 1S2P pack at SoC 0.15 with one cell half the size, on a cycle of 400 A pack
    discharge: it stops before the cycle's end when the small cell reaches its lower
    cut-off; termination and a note say so, and completed is false."""
    job = job_of({"series": 1, "parallel": 2, "capacity_factors": [0.5, 1.0]},
                 {"type": "drive_cycle", "time_s": [0, 1800], "current_A": [400, 400]},
                 conditions={"initial_soc": 0.15})
    assert kinds.check(job) == []
    result = kinds.simulate(job)
    assert not result["completed"] and result["stoppedEarly"]
    assert result["termination"].startswith("event: Minimum voltage [V] (cell 1-")
    assert result["endTime"] < 1800
    assert any(n.startswith("stopped early at") and "of 1800 s" in n for n in result["notes"])
    c = columns(result)
    assert min(c["Voltage (cell 1-1) [V]"][-1], c["Voltage (cell 1-2) [V]"][-1]) == pytest.approx(3.2, abs=1e-3)


def test_unbalanced_parallel_cells_balance_at_rest():
    """2S2P at rest (pack current 0) with the cells of element 1 at SoC 0.3 and 0.7 and
    element 2 balanced at 0.5: in element 1 the two cells' currents sum to zero within
    1e-6 A at every time, the emptier cell charges from the fuller, the current decays
    (below 2 % of its start after 2 h) and the SoC gap closes, charge conserved (1e-6);
    element 2 carries no current (1e-6 A)."""
    job = job_of({"series": 2, "parallel": 2, "initial_socs": [0.3, 0.7, 0.5, 0.5],
                  "interconnect_resistance_Ohm": 0.0005},
                 {"type": "constant_current", "current_A": 0, "duration_s": 7200})
    assert kinds.check(job) == []
    result = kinds.simulate(job)
    c = columns(result)
    i1, i2 = c["Current (cell 1-1) [A]"], c["Current (cell 1-2) [A]"]
    assert np.max(np.abs(i1 + i2)) < 1e-6
    assert i1[0] < -10.0 and i2[0] > 10.0  # negative: charging
    assert abs(i1[-1]) < 0.02 * abs(i1[0])
    assert np.all(np.diff(np.abs(i1)) <= 1e-6)
    soc1, soc2 = c["SoC (cell 1-1)"], c["SoC (cell 1-2)"]
    assert soc2[-1] - soc1[-1] < 0.1 * (0.7 - 0.3)
    assert np.max(np.abs(soc1 + soc2 - 1.0)) < 1e-6
    assert np.max(np.abs(c["Current (cell 2-1) [A]"])) < 1e-6 and np.max(np.abs(c["Current (cell 2-2) [A]"])) < 1e-6
    assert result["completed"]


def test_a_cell_at_its_own_initial_soc_matches_pybamm():
    """1S1P with initial_socs [0.62] at 50 A for 20 min is PyBaMM's Thevenin cell started at
    SoC 0.62 (1 mV): the per-cell SoC is the cell's initial state, not the set's."""
    job = job_of({"series": 1, "parallel": 1, "initial_socs": [0.62]},
                 {"type": "constant_current", "current_A": 50, "duration_s": 1200}, outputs={"max_points": 121})
    c = columns(kinds.simulate(job))
    theirs = direct_thevenin(50.0, [0, 1200], t_interp=c["Time [s]"], initial_soc=0.62)
    assert np.max(np.abs(c["Battery voltage [V]"] - theirs["Voltage [V]"](c["Time [s]"]))) < 1e-3
    assert c["SoC (cell 1-1)"][0] == pytest.approx(0.62, abs=1e-12)


def test_experiment_steps_stop_at_pack_voltages_and_obey_kirchhoff():
    """2S2P of differing cells: discharge at 1C until 6.7 V, rest 10 min, charge at 50 A
    until 8.1 V, rest 5 min. Every element's cell currents sum to the step's pack current
    at every time (1e-6 A); the discharge ends at 6.7 V and the charge at 8.1 V (1 mV);
    the rests carry no pack current; the experiment completes."""
    steps = ["Discharge at 1C until 6.7 V", "Rest for 10 minutes", "Charge at 50 A until 8.1 V",
             "Rest for 5 minutes"]
    job = job_of({"series": 2, "parallel": 2, "capacity_factors": [0.8, 1.0, 1.1, 1.0],
                  "resistance_factors": [1.0, 1.3, 1.0, 1.0], "interconnect_resistance_Ohm": 0.001},
                 {"type": "experiment", "steps": steps, "period_s": 30},
                 conditions={"initial_soc": 0.8}, outputs={"max_points": 2000})
    assert kinds.check(job) == []
    result = kinds.simulate(job)
    assert result["completed"], (result["termination"], result["notes"])
    c = columns(result)
    i_pack = c["Battery current [A]"]
    assert np.max(np.abs(element_sums(c, 2, 2) - i_pack)) < 1e-6
    assert set(np.round(np.unique(i_pack), 9)) == {200.0, 0.0, -50.0}  # 1C of 2 x 100 A.h
    v = c["Battery voltage [V]"]
    assert v[i_pack > 0].min() == pytest.approx(6.7, abs=1e-3)
    assert v[i_pack < 0].max() == pytest.approx(8.1, abs=1e-3)
    assert np.all(np.diff(c["Time [s]"]) >= 0)
    # the rests: 10 + 5 minutes at zero pack current
    rest = c["Time [s]"][i_pack == 0]
    assert rest.size > 20
    assert result["summary"]["Battery discharged capacity [A.h]"] > 0 and \
        result["summary"]["Battery charged capacity [A.h]"] > 0


def test_an_experiment_stops_at_a_cells_cut_off():
    """Discharge at 1C until 5 V on 2S1P: a cell reaches its 3.2 V cut-off before the pack
    reaches 5 V (the cells' sum is 6.4 V then); the run stops there, not completed, and a
    note names the step."""
    job = job_of({"series": 2, "parallel": 1, "capacity_factors": [0.9, 1.0]},
                 {"type": "experiment", "steps": ["Discharge at 1C until 5 V", "Rest for 1 hour"]},
                 conditions={"initial_soc": 0.5})
    assert kinds.check(job) == []
    result = kinds.simulate(job)
    assert not result["completed"]
    assert result["termination"] == "event: Minimum voltage [V] (cell 1-1)"
    assert any("stopped early in step 0" in n for n in result["notes"])


def test_a_step_already_past_its_until_is_skipped_with_a_note():
    """2S2P at SoC 0.5 (pack OCV 7.39 V): "Discharge at 1C until 8 V" is skipped with a note
    (PyBaMM's experiments end such a step at once) and the rest after it runs its minute."""
    job = job_of({"series": 2, "parallel": 2}, {"type": "experiment",
                                                "steps": ["Discharge at 1C until 8 V", "Rest for 1 minute"]})
    result = kinds.simulate(job)
    assert any("step 0 ('Discharge at 1C until 8 V') skipped" in n for n in result["notes"])
    assert result["completed"] and result["endTime"] == pytest.approx(60.0)
    assert np.all(np.asarray(result["columns"]["Battery current [A]"]) == 0.0)


def test_a_second_job_hits_the_cache_and_equals_a_cold_one():
    """Two 2S2P jobs with different factors, currents, temperatures and SoCs: the second
    re-solves the first's built model (timings "cache": "hit", no build) and its result is
    the same job's solved cold after clearing the cache, to rounding: every column within
    1e-9 absolute (measured: 1e-12 A, 4e-15 V; IDA's floating-point path differs in the last
    bits after a previous solve), the same number of points and the same termination."""
    first = job_of({"series": 2, "parallel": 2, "capacity_factors": [0.9, 1.0, 1.0, 1.1]},
                   {"type": "constant_current", "current_A": 80, "duration_s": 900}, outputs={"max_points": 91})
    second = job_of({"series": 2, "parallel": 2, "resistance_factors": [1.2, 1.0, 0.8, 1.0],
                     "initial_socs": [0.6, 0.65, 0.7, 0.6], "interconnect_resistance_Ohm": 0.002},
                    {"type": "constant_current", "current_A": -60, "duration_s": 900},
                    conditions={"ambient_temperature_C": 35}, outputs={"max_points": 91})
    cache.MODELS.clear()
    assert kinds.simulate(first)["timings"]["cache"] == "miss"
    warm = kinds.simulate(second)
    assert warm["timings"]["cache"] == "hit" and warm["timings"]["build_s"] == 0.0
    cache.MODELS.clear()
    cold = kinds.simulate(second)
    assert cold["timings"]["cache"] == "miss"
    assert warm["columns"].keys() == cold["columns"].keys() and warm["termination"] == cold["termination"]
    for name, values in warm["columns"].items():
        assert len(values) == len(cold["columns"][name])
        assert np.max(np.abs(np.asarray(values) - np.asarray(cold["columns"][name]))) < 1e-9, name
    assert warm["columns"]["Cell temperature (cell 1-1) [degC]"][0] == pytest.approx(35.0)
    # and the inputs really changed the answer
    assert warm["columns"]["Battery voltage [V]"] != kinds.simulate(first)["columns"]["Battery voltage [V]"]
    # a drive cycle is its own built model (its profile is built in), cached in turn
    cycle = job_of({"series": 2, "parallel": 2}, {"type": "drive_cycle", "time_s": CYCLE_T, "current_A": CYCLE_I})
    assert [kinds.simulate(cycle)["timings"]["cache"] for _ in range(2)] == ["miss", "hit"]
    assert pack_circuit.cache_key(cycle) != pack_circuit.cache_key(first)


# --------------------------------------------------------------------------
# 400s: the field and the allowed range, nothing published
# --------------------------------------------------------------------------
THEVENIN = {"model": {"name": "Thevenin"}}
BAD = [
    ({"pack": {"series": 2}, "protocol": {"type": "experiment", "steps": ["Hold at 8.2 V until 5 A"]}},
     "protocol.steps.0", "'Hold at 8.2 V until 5 A': a pack of equivalent-circuit cells runs current, "
                         "C-rate and rest steps, not voltage steps"),
    ({"pack": {"series": 2}, "protocol": {"type": "experiment",
                                          "steps": ["Rest for 1 minute", "Discharge at 300 W for 1 minute"]}},
     "protocol.steps.1", "not power steps"),
    ({"pack": {"series": 2}, "protocol": {"type": "experiment", "steps": ["Discharge at 2 Ohm for 1 minute"]}},
     "protocol.steps.0", "not resistance steps"),
    ({"pack": {"series": 2}, "protocol": {"type": "experiment", "steps": ["Discharge at 1C until 10 A"]}},
     "protocol.steps.0", "'until' a pack voltage [V] only, not CurrentTermination"),
    ({"pack": {"parallel": 2}, "protocol": {"type": "experiment", "steps": ["Discharge at 1100 A for 1 minute"]}},
     "protocol.steps.0", "550 A a cell; the limit is 500 A"),
    ({"pack": {"series": 2}, "protocol": {"type": "drive_cycle", "name": "NoSuchCycle"}},
     "protocol.name", "unknown drive cycle"),
    ({"pack": {"series": 2, "parallel": 2, "initial_socs": [0.5, 0.5, 0.5]}},
     "pack.initial_socs", "must be 4 numbers (series x parallel = 2 x 2), not 3"),
    ({"pack": {"series": 1, "parallel": 2, "initial_socs": [0.5, 1.2]}},
     "pack.initial_socs.1", "less than or equal to 1"),
    ({"pack": {"series": 1, "parallel": 2, "initial_socs": [0.0, 0.5]}},
     "pack.initial_socs.0", "strictly between"),
    ({"pack": {"series": 1, "parallel": 2, "initial_socs": [0.5, 0.999], "upper_voltage_V": 4.0}},
     "pack.initial_socs.1", "outside the cell's cut-offs"),
    ({"model": {"name": "SPM"}, "pack": {"parallel": 2, "initial_socs": [0.4, 0.6]}},
     "pack", "offered with model Thevenin"),
]


@pytest.mark.parametrize("changes,field,text", BAD)
def test_a_bad_circuit_pack_is_400_naming_the_field(published, changes, field, text):
    body = {**THEVENIN, "protocol": {"type": "constant_current", "current_A": 10, "duration_s": 60}, **changes}
    status, reply, _ = call("POST", "/jobs", body)
    assert status == 400, reply
    assert field in fields_of(reply), reply
    assert any(text in e["error"] for e in reply["errors"] if e["field"] == field), reply
    assert published.envelopes == []


def test_the_400s_positive_control():
    """The same shapes with allowed values pass the checks."""
    for pack, protocol in (
            ({"series": 2}, {"type": "experiment", "steps": ["Discharge at 1C until 6.8 V", "Rest for 1 minute"]}),
            ({"series": 1, "parallel": 2, "initial_socs": [0.4, 0.6]},
             {"type": "constant_current", "current_A": 0, "duration_s": 60}),
            ({"series": 2}, {"type": "drive_cycle", "name": "US06"})):
        assert kinds.check(job_of(pack, protocol)) == [], (pack, protocol)


# --------------------------------------------------------------------------
# End to end: the real local stack
# --------------------------------------------------------------------------
@pytest.mark.slow
def test_a_circuit_pack_experiment_end_to_end(stack, receiver):
    """A 2S2P experiment with per-cell SoCs through the stack: succeeded, Kirchhoff within
    1e-6 A at every time in the callback."""
    body = {**THEVENIN, "pack": {"series": 2, "parallel": 2, "initial_socs": [0.7, 0.8, 0.75, 0.75]},
            "protocol": {"type": "experiment", "steps": ["Discharge at 100 A for 10 minutes", "Rest for 5 minutes"]},
            "outputs": {"max_points": 200}}
    reply = submit(stack, "/jobs", body)
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["jobId"]
    result = receiver.wait_for([job_id], timeout_s=120)[job_id]
    assert result["status"] == "succeeded", result
    c = columns(result)
    assert np.max(np.abs(element_sums(c, 2, 2) - c["Battery current [A]"])) < 1e-6
    assert set(np.round(np.unique(c["Battery current [A]"]), 9)) == {100.0, 0.0}

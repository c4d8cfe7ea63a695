"""The simulation core against a direct PyBaMM solve of the same case.

Reference: a fresh ``pybamm.Simulation`` with every number baked in (no input
parameters, no cache) and a tighter solver tolerance (1e-8). Tolerance: max
|ΔV| ≤ 1 mV on the service's own time grid.
"""

import numpy as np
import pybamm
import pytest

from shared.engine import cache as engine_cache
from shared.engine import simulate as simulation
from shared.contract.job import Job
from shared.contract.legacy import LegacyRequest
from tests.conftest import JAVA_CELL, JAVA_DRIVE_CYCLE

TOLERANCE_V = 1e-3


def reference(job: Job, t_eval, initial_soc=None, current=None):
    pv = pybamm.ParameterValues(job.parameter_set)
    pv.update(dict(job.parameters))
    if current is not None:
        pv.update({"Current function [A]": current})
    model = {"DFN": pybamm.lithium_ion.DFN, "SPMe": pybamm.lithium_ion.SPMe,
             "SPM": pybamm.lithium_ion.SPM}[job.model.name](options=job.model.options or None)
    sim = pybamm.Simulation(model, parameter_values=pv,
                            solver=pybamm.IDAKLUSolver(atol=1e-8, rtol=1e-8))
    return sim.solve([0, float(t_eval[-1])], t_interp=np.asarray(t_eval), initial_soc=initial_soc)


def test_java_cell_job_matches_direct_pybamm():
    job = LegacyRequest.model_validate(JAVA_CELL).to_job("cell")
    result = simulation.simulate(job)
    t = np.array(result["columns"]["Time [s]"])
    v = np.array(result["columns"]["Voltage [V]"])
    ref = reference(job, np.linspace(0, 3600, 101), current=5.0)
    assert result["termination"] == ref.termination == "event: Minimum voltage [V]"
    assert abs(result["endTime"] - ref.t[-1]) < 1.0
    v_ref = ref["Voltage [V]"](t)
    assert np.max(np.abs(v - v_ref)) <= TOLERANCE_V
    # the cut-off was honoured and the early stop is reported
    assert v.min() >= 2.5 - 1e-6
    assert result["completed"] is False and result["stoppedEarly"] is True


def test_us06_default_initial_soc_runs_the_whole_cycle_within_cut_offs():
    job = LegacyRequest.model_validate(JAVA_DRIVE_CYCLE).to_job("driveCycle")
    result = simulation.simulate(job)
    t = np.array(result["columns"]["Time [s]"])
    v = np.array(result["columns"]["Voltage [V]"])
    assert result["termination"] == "final time" and result["completed"] is True
    assert t[-1] == pytest.approx(600.0)
    assert v.max() <= 4.2 and v.min() >= 2.5
    # reference: PyBaMM's own drive-cycle recipe with the same current profile
    from shared.engine import drive_cycles
    t_data, i_data = drive_cycles.load("US06")
    current = pybamm.Interpolant(t_data, i_data, pybamm.t, interpolator="linear")
    ref = reference(job, t, initial_soc=0.9, current=current)
    assert np.max(np.abs(v - ref["Voltage [V]"](t))) <= TOLERANCE_V


def test_us06_from_a_full_cell_stops_at_the_upper_cut_off_and_says_so():
    job = LegacyRequest.model_validate(JAVA_DRIVE_CYCLE).to_job("driveCycle")
    job.conditions.initial_soc = 1.0
    result = simulation.simulate(job)
    assert result["termination"] == "event: Maximum voltage [V]"
    assert result["completed"] is False and result["endTime"] < 600
    assert max(result["columns"]["Voltage [V]"]) <= 4.2 + 1e-6


def test_warm_cache_reuses_the_built_model_with_new_numbers():
    base = LegacyRequest.model_validate(JAVA_CELL).to_job("cell")
    simulation.simulate(base)
    other = LegacyRequest.model_validate({**JAVA_CELL, "controlCurrent": 2.5, "time": 0.5}).to_job("cell")
    result = simulation.simulate(other)
    assert result["timings"]["cache"] == "hit"
    assert result["termination"] == "final time"
    assert result["summary"]["Discharged capacity [A.h]"] == pytest.approx(2.5 * 0.5, rel=1e-6)


def test_impossible_cut_offs_fail_with_a_readable_reason():
    job = LegacyRequest.model_validate({**JAVA_CELL, "upperVoltage": 3.0, "lowerVoltage": 2.9}).to_job("cell")
    with pytest.raises(simulation.SimulationError) as info:
        simulation.simulate(job)
    assert "outside its voltage cut-offs" in str(info.value)
    assert "Maximum voltage [V]" in str(info.value)


def test_cache_is_bounded_by_entries_and_memory():
    cache = engine_cache.LruCache("test", max_entries=2)
    for key in "abc":
        cache.put(key, object())
    assert len(cache) == 2 and cache.get("a") is None and cache.get("c") is not None
    engine_cache.trim_to_memory(max_rss_mb=0.0, caches=(cache,))  # any process is above 0 MB: keep only the newest
    assert len(cache) == 1
    assert engine_cache.rss_mb() > 10


def test_parameter_sets_and_bpx_documents_share_the_bounded_caches_and_the_memory_policy(monkeypatch):
    """Every distinct parameter set (a BPX document is one) is an entry of a bounded
    cache: a warm worker does not keep them for good."""
    monkeypatch.setattr(engine_cache.PARAMETER_SETS, "max_entries", 2)
    engine_cache.PARAMETER_SETS.clear()
    for name in ("Chen2020", "Marquis2019", "Mohtat2020"):
        simulation.simulate(Job.model_validate({"model": {"name": "SPM"}, "parameter_set": name,
                                                "conditions": {"initial_soc": 0.8},
                                                "protocol": {"type": "constant_current", "c_rate": 1,
                                                             "duration_s": 60}}))
    assert len(engine_cache.PARAMETER_SETS) == 2
    assert engine_cache.PARAMETER_SETS.get("Chen2020") is None  # the least recently used went
    assert engine_cache.PARAMETER_SETS in engine_cache.ALL and engine_cache.MODELS in engine_cache.ALL
    engine_cache.trim_to_memory(max_rss_mb=0.0)  # the one policy: every cache down to its newest entry
    assert [len(c) for c in engine_cache.ALL] == [1, 1, 1]


def test_a_job_without_initial_soc_does_not_inherit_the_previous_jobs_soc():
    """PyBaMM's reused Simulation keeps the last initial_soc; the cache must not."""
    base = {**JAVA_CELL, "time": 0.1}
    default = simulation.simulate(LegacyRequest.model_validate(base).to_job("cell"))
    half = LegacyRequest.model_validate(base).to_job("cell")
    half.conditions.initial_soc = 0.5
    at_half = simulation.simulate(half)
    again = simulation.simulate(LegacyRequest.model_validate(base).to_job("cell"))
    assert at_half["timings"]["cache"] == again["timings"]["cache"] == "hit"
    assert at_half["summary"]["Initial state of charge"] == pytest.approx(0.5)
    assert again["summary"]["Initial state of charge"] == default["summary"]["Initial state of charge"]
    assert again["columns"]["Voltage [V]"] == default["columns"]["Voltage [V]"]


def test_inline_drive_cycles_with_different_values_do_not_share_a_built_model():
    """A drive-cycle interpolant is fixed when the model is built: the cache key must see the values."""
    def cycle(amps):
        return Job.model_validate({"model": {"name": "SPM"}, "conditions": {"initial_soc": 0.8},
                                   "protocol": {"type": "drive_cycle", "time_s": [0, 50, 100],
                                                "current_A": [amps, amps, amps]}})
    one, two = simulation.simulate(cycle(1.0)), simulation.simulate(cycle(2.0))
    assert two["summary"]["Discharged capacity [A.h]"] == pytest.approx(
        2 * one["summary"]["Discharged capacity [A.h]"], rel=1e-6)

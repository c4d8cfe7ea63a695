"""Output periods, point caps and the published limits, for every protocol.

A period asked for is honoured, or the result says why not (a cap on points) and
carries the period it has (``summary["Output period [s]"]``); experiments sample at
their period across all their cycles, stop at ``max_duration_s``, and refuse periods
that would exceed ``max_output_points``; a maximal inline drive cycle fits in a
request and in a Pub/Sub message; an experiment's per-cycle summaries are those of a
full-state solve, without its memory.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pybamm
import pytest
from pydantic import ValidationError

from shared.contract.envelope import Envelope
from shared.contract.job import Job
from shared.contract.limits import LIMITS
from shared.delivery import messages
from shared.engine import kinds
from shared.engine.build import ATOL, RTOL
from shared.engine.errors import SimulationError
from shared.engine.results import cycle_summaries
from shared.settings import get_settings
from tests.conftest import REPO

SPM_1C = {"model": {"name": "SPM"}, "protocol": {"type": "constant_current", "c_rate": 1}}
CYCLE = ["Discharge at 1C for 10 minutes", "Charge at 1C for 10 minutes"]
# 40 cycles of a CCCV-like cycle at 1C: ~3.2 h each, ~129 h in all
LONG_CCCV = ["Discharge at 1C until 3.0 V", "Rest for 10 minutes", "Charge at C/2 until 4.1 V",
             "Hold at 4.1 V until C/20"]


def run(body: dict) -> dict:
    return kinds.simulate(Job.model_validate(body))


def times(result) -> np.ndarray:
    return np.array(result["columns"]["Time [s]"])


def coarsened(result) -> list[str]:
    return [n for n in result["notes"] if n.startswith("output period coarsened")]


# --------------------------------------------------------------------------
# constant current: the period asked for, or a note saying why not
# --------------------------------------------------------------------------
@pytest.mark.parametrize("period", [1.0, 0.001])
def test_a_period_on_a_1c_discharge_is_honoured_or_the_result_says_why_not(period):
    r = run({**SPM_1C, "outputs": {"period_s": period}})  # ~3,570 s until 2.5 V; max_points 2000
    t = times(r)
    got = r["summary"]["Output period [s]"]
    assert len(t) <= 2000
    assert np.allclose(np.diff(t)[:-1], got, rtol=1e-9)  # evenly spaced but for the last interval
    assert t[-1] == r["endTime"]
    if got > period * (1 + 1e-9):
        assert any(re.fullmatch(rf"output period coarsened from {period:g} s to {got:.6g} s: max_points 2000.*", n)
                   for n in r["notes"]), r["notes"]
    assert got == (2.0 if period == 1.0 else pytest.approx(1.89009, rel=1e-5))
    if period == 0.001:  # first the solver's grid: max_output_points over the requested 5,400 s
        assert any("0.270014 s: at most 20000 points (max_output_points)" in n for n in r["notes"])


def test_a_period_is_honoured_when_max_points_allows_it():
    r = run({**SPM_1C, "outputs": {"period_s": 1, "max_points": LIMITS["max_output_points"]}})
    t = times(r)
    assert r["summary"]["Output period [s]"] == 1.0 and not coarsened(r)
    assert np.allclose(np.diff(t)[:-1], 1.0) and len(t) == int(np.ceil(r["endTime"])) + 1


def test_without_a_period_the_summary_still_says_the_spacing():
    r = run({"model": {"name": "SPM"}, "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 600},
             "outputs": {"max_points": 61}})
    assert r["summary"]["Output period [s]"] == 10.0 and np.allclose(np.diff(times(r)), 10.0)


# --------------------------------------------------------------------------
# experiments: the period across every cycle
# --------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["protocol", "outputs"])
def test_an_experiment_samples_at_its_period_across_many_cycles(where):
    protocol = {"type": "experiment", "steps": CYCLE, "cycles": 30}
    outputs = {"max_points": LIMITS["max_output_points"]}
    (protocol if where == "protocol" else outputs)["period_s"] = 10
    r = run({"model": {"name": "SPM"}, "protocol": protocol, "outputs": outputs, "conditions": {"initial_soc": 0.5}})
    assert r["completed"] is True and len(r["cycles"]) == 30
    assert r["summary"]["Output period [s]"] == 10.0 and not coarsened(r)
    t = times(r)
    steps = np.diff(t)
    assert np.all(steps[steps > 1e-6] <= 10.0 + 1e-6)  # 10 s within steps (and a repeated point between them)
    for c in r["cycles"]:
        inside = t[(t >= c["Start time [s]"]) & (t <= c["End time [s]"])]
        assert len(np.unique(inside.round(6))) == 121  # every 10 s of the cycle's 20 minutes


def test_a_long_experiment_thinned_to_max_points_keeps_an_even_period_and_says_so():
    # 30 cycles x 20 min at 10 s is ~3,660 points: the default max_points (2000) halves the rate
    r = run({"model": {"name": "SPM"}, "conditions": {"initial_soc": 0.5},
             "protocol": {"type": "experiment", "steps": CYCLE, "cycles": 30, "period_s": 10}})
    t = times(r)
    assert len(t) <= 2000 and r["summary"]["Output period [s]"] == 20.0
    assert coarsened(r) == ["output period coarsened from 10 s to 20 s: max_points 2000 "
                            f"(outputs.max_points may be up to {LIMITS['max_output_points']})"]
    assert np.allclose(np.diff(t), 20.0)
    # every cycle is still in the series, not 4 points of each
    for c in r["cycles"]:
        assert np.sum((t >= c["Start time [s]"]) & (t <= c["End time [s]"])) >= 60


# --------------------------------------------------------------------------
# experiments: max_duration_s
# --------------------------------------------------------------------------
def test_an_experiment_stops_at_max_duration_s_and_says_so():
    r = run({"model": {"name": "SPM"}, "conditions": {"initial_soc": 1.0},
             "protocol": {"type": "experiment", "steps": LONG_CCCV, "cycles": 40}})
    assert r["endTime"] == pytest.approx(LIMITS["max_duration_s"])
    assert r["termination"] == "experiment time limit reached"
    assert r["completed"] is False and r["stoppedEarly"] is True
    assert 1 < len(r["cycles"]) < 40
    assert any(n.startswith("stopped at the service's time limit (max_duration_s: 172800 s = 48 h) in cycle")
               for n in r["notes"]), r["notes"]


def test_an_experiment_of_exactly_max_duration_s_is_complete():
    hours = int(LIMITS["max_duration_s"] // 3600)
    r = run({"model": {"name": "SPM"}, "protocol": {"type": "experiment", "steps": ["Rest for 1 hour"],
                                                    "cycles": hours}})
    assert r["endTime"] == pytest.approx(LIMITS["max_duration_s"])
    assert r["completed"] is True and r["termination"] == "final time" and len(r["cycles"]) == hours


@pytest.mark.parametrize("steps, cycles, refused", [
    (["Rest for 1 hour"], 49, True),  # 49 h of timed steps
    (["Discharge at 1C for 20 minutes", "Rest for 5 hours"], 10, True),
    (["Rest for 1 hour"], 48, False),
    (["Discharge at 1C for 1 hour or until 2.5 V", "Rest for 1 hour"], 40, False),  # may end early: capped at run time
])
def test_an_experiment_whose_timed_steps_alone_exceed_max_duration_s_is_refused(steps, cycles, refused):
    errors = kinds.check(Job.model_validate(
        {"model": {"name": "SPM"}, "protocol": {"type": "experiment", "steps": steps, "cycles": cycles}}))
    assert ("protocol" in {e["field"] for e in errors}) is refused, errors


# --------------------------------------------------------------------------
# experiments: the minimum period
# --------------------------------------------------------------------------
def test_a_period_too_small_for_max_output_points_is_refused_naming_protocol_period_s():
    body = {"model": {"name": "DFN"}, "protocol": {"type": "experiment", "period_s": 0.001,
                                                   "steps": ["Discharge at 1C until 2.5 V"]}}
    errors = kinds.check(Job.model_validate(body))
    assert [e["field"] for e in errors] == ["protocol.period_s"]
    # a 1C "until" step may run PyBaMM's default 2 h: 7,200 s / 20,000 points
    assert "minimum output period of 0.36 s" in errors[0]["error"]
    with pytest.raises(SimulationError, match=r"^protocol\.period_s: 0\.001 s is below"):
        run(body)  # (never reaches PyBaMM's solver: no 86-million-point grid)
    # the minimum itself is accepted, and any period of max_duration_s / max_output_points or more
    for period in (0.36, LIMITS["max_duration_s"] / LIMITS["max_output_points"]):
        ok = {**body, "protocol": {**body["protocol"], "period_s": period}}
        assert kinds.check(Job.model_validate(ok)) == []
    # a long experiment's minimum is max_duration_s / max_output_points
    long = {**body, "protocol": {"type": "experiment", "period_s": 5, "steps": LONG_CCCV, "cycles": 40}}
    assert "minimum output period of 8.64 s" in kinds.check(Job.model_validate(long))[0]["error"]
    # a CCCV cycle's "until" steps may run PyBaMM's defaults (2 h, 4 h, 24 h): bounded, 2 s is fine
    cccv = {**body, "protocol": {"type": "experiment", "period_s": 2, "steps": LONG_CCCV}}
    assert "minimum output period of 5.43 s" in kinds.check(Job.model_validate(cccv))[0]["error"]
    bounded = ["Discharge at 1C for 2 hours or until 3.0 V", "Rest for 10 minutes",
               "Charge at C/2 for 3 hours or until 4.1 V", "Hold at 4.1 V for 2 hours or until C/20"]
    cccv["protocol"]["steps"] = bounded
    assert kinds.check(Job.model_validate(cccv)) == []


def test_a_step_period_too_small_is_refused_naming_the_step():
    errors = kinds.check(Job.model_validate({"model": {"name": "SPM"}, "protocol": {
        "type": "experiment", "steps": ["Rest for 1 minute", "Discharge at 1C until 2.5 V (0.001 second period)"]}}))
    assert [e["field"] for e in errors] == ["protocol.steps.1"]


def test_an_outputs_period_too_small_for_an_experiment_is_coarsened_with_a_note():
    r = run({"model": {"name": "SPM"}, "protocol": {"type": "experiment", "steps": ["Discharge at 1C until 2.5 V"]},
             "outputs": {"period_s": 0.001, "max_points": LIMITS["max_output_points"]}})
    assert r["summary"]["Output period [s]"] == 0.36
    assert coarsened(r) == ["output period coarsened from 0.001 s to 0.36 s: at most 20000 points "
                            "(max_output_points) over the 7200 s the experiment may run"]


# --------------------------------------------------------------------------
# currents: every protocol
# --------------------------------------------------------------------------
def test_experiment_c_rates_stay_within_max_current_a():
    with pytest.raises(SimulationError, match=r"^protocol\.steps\.0: 10C of 100 A\.h is 1000 A; the limit is 500 A"):
        run({"model": {"name": "SPM"}, "parameters": {"Nominal cell capacity [A.h]": 100},
             "protocol": {"type": "experiment", "steps": ["Discharge at 10C for 1 minute"]}})


def test_a_scaled_named_drive_cycle_stays_within_max_current_a():
    body = {"model": {"name": "SPM"}, "protocol": {"type": "drive_cycle", "name": "US06", "scale": 100}}
    assert [e["field"] for e in kinds.check(Job.model_validate(body))] == ["protocol.scale"]
    with pytest.raises(SimulationError, match=r"^protocol\.scale: US06 peaks at"):
        run(body)


# --------------------------------------------------------------------------
# drive cycles: the point limit fits the request and message limits
# --------------------------------------------------------------------------
def maximal_inline_cycle(n: int) -> dict:
    """``n`` knots over max_drive_cycle_duration_s, currents of full-precision floats."""
    rng = np.random.default_rng(7)
    return {"type": "drive_cycle", "time_s": np.linspace(0.0, LIMITS["max_drive_cycle_duration_s"], n).tolist(),
            "current_A": (rng.uniform(-0.999, 0.999, n) * LIMITS["max_current_A"]).tolist()}


def test_a_maximal_inline_drive_cycle_fits_in_a_request_and_a_message():
    n = LIMITS["max_drive_cycle_points"]
    body = {"model": {"name": "DFN"}, "protocol": maximal_inline_cycle(n), "conditions": {"initial_soc": 0.9}}
    raw = json.dumps(body).encode()  # as a client sends it (", " separators)
    assert len(raw) <= get_settings().max_request_bytes - 16 * 1024, len(raw)  # with room for the rest of a job
    job = Job.model_validate_json(raw)
    data, _ = messages.encode(Envelope(job_id="j", kind="native", submitted_at="2026-01-01T00:00:00Z", job=job))
    assert len(data) <= messages.MAX_MESSAGE_BYTES - 16 * 1024
    with pytest.raises(ValidationError):  # and the limit is what the contract enforces
        Job.model_validate({**body, "protocol": maximal_inline_cycle(n + 1)})


def test_the_published_schema_carries_the_drive_cycle_limit():
    schema = json.loads((REPO / "schema" / "job.schema.json").read_text())
    assert f'"maxItems": {LIMITS["max_drive_cycle_points"]}' in json.dumps(schema)


# --------------------------------------------------------------------------
# experiments: per-cycle summaries without the full state
# --------------------------------------------------------------------------
def test_per_cycle_summaries_equal_those_of_a_full_state_solve():
    steps = ["Discharge at 1C for 20 minutes", "Rest for 5 minutes", "Charge at C/2 until 4.1 V",
             "Hold at 4.1 V until C/20"]
    r = run({"model": {"name": "SPM"}, "conditions": {"initial_soc": 1.0},
             "protocol": {"type": "experiment", "steps": steps, "cycles": 20, "period_s": 30}})
    # PyBaMM as documented: every cycle's full state kept
    sim = pybamm.Simulation(pybamm.lithium_ion.SPM(), parameter_values=pybamm.ParameterValues("Chen2020"),
                            experiment=pybamm.Experiment([tuple(steps)] * 20, period="30 seconds"),
                            solver=pybamm.IDAKLUSolver(atol=ATOL, rtol=RTOL))
    full = sim.solve(initial_soc=1.0)
    assert full.all_ys[0].shape[0] > 10  # (the reference really holds the state)
    expected = cycle_summaries(full)
    assert r["completed"] is True and [c["cycle"] for c in r["cycles"]] == list(range(1, 21))
    for got, want in zip(r["cycles"], expected, strict=True):
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), (got["cycle"], key)


MEASURE = textwrap.dedent("""
    import json, os, sys
    os.environ["PYBAMM_DISABLE_TELEMETRY"] = "true"
    from shared.contract.job import Job
    from shared.engine import kinds
    import pybamm  # noqa: F401
    job = Job.model_validate(json.loads(sys.argv[1]))
    kb = lambda key: next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key)) / 1024
    before = kb("VmRSS:")
    r = kinds.simulate(job)
    # VmHWM: this process's own peak (ru_maxrss keeps the forking parent's peak across exec)
    print(json.dumps({"growth_mb": kb("VmHWM:") - before,
                      "cycles": len(r["cycles"]), "completed": r["completed"]}))
""")


def test_a_40_cycle_dfn_experiment_does_not_hold_every_cycle_s_full_state():
    """Peak RSS over the solve, in a fresh interpreter: ~45-60 MB with output variables
    only; ~200-520 MB when every point of every cycle kept the DFN's full state."""
    body = {"model": {"name": "DFN"}, "conditions": {"initial_soc": 1.0},
            "protocol": {"type": "experiment", "cycles": 40,  # ~33 h
                         "steps": ["Discharge at 1C for 20 minutes", "Rest for 5 minutes",
                                   "Charge at 1C until 4.1 V", "Rest for 5 minutes"]}}
    out = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(body)], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    assert measured["cycles"] == 40 and measured["completed"] is True
    assert measured["growth_mb"] < 200, measured


def test_a_power_step_beyond_the_current_limit_at_the_cut_off_is_refused():
    """Found by an adversarial run: "Discharge at 1e9 W" ran at 6.7e8 A. A power step
    may draw at most the current limit at the lower cut-off; 10 W passes (control)."""
    from shared.engine.errors import SimulationError

    def job(watts):
        return Job.model_validate({"model": {"name": "SPM"}, "protocol": {
            "type": "experiment", "steps": [f"Discharge at {watts} W for 1 minute"]}})

    with pytest.raises(SimulationError, match="the limit is 500 A"):
        kinds.simulate(job(2000))
    assert kinds.simulate(job(10))["termination"]

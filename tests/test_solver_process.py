"""The solver process: a typed boundary (a Job in, a result out or a SimulationError),
a memory bound that ends a job with a readable reason, and a killed solver that says
which signal killed it."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from shared.contract.job import Job
from shared.engine.errors import SimulationError
from shared.engine.solver_process import OutOfMemory, SolverCrashed, SolverProcess

SPM = Job.model_validate({"model": {"name": "SPM"}, "protocol": {"type": "constant_current", "c_rate": 1,
                                                                  "duration_s": 60}})


def test_a_job_in_a_result_out_and_a_readable_failure():
    sp = SolverProcess()
    try:
        result = sp.run(SPM, timeout_s=120)
        assert result["termination"] == "final time" and result["columns"]["Time [s]"][-1] == pytest.approx(60)
        bad = SPM.model_copy(update={"parameters": {"No such parameter [m]": 1.0}})
        with pytest.raises(SimulationError, match="No such parameter"):
            sp.run(bad, timeout_s=120)
        assert sp.run(SPM, timeout_s=120)["timings"]["cache"] == "hit"  # the same child, still warm
    finally:
        sp.close()


def test_a_solver_over_its_memory_bound_is_stopped_with_a_reason():
    """A bound below what PyBaMM alone needs (~250 MB): every job ends out of memory,
    with a sentence saying how to ask for less; the positive control has no bound."""
    bounded = SolverProcess(max_rss_mb=120)
    try:
        with pytest.raises(OutOfMemory) as info:
            bounded.run(SPM.model_copy(update={"model": SPM.model.model_copy(update={"name": "DFN"})}), 120)
        assert "out of memory" in str(info.value) and "120 MB" in str(info.value)
        assert "fewer output points" in str(info.value)
        assert bounded.pid is None  # stopped
    finally:
        bounded.close()
    unbounded = SolverProcess(max_rss_mb=None)
    try:
        assert unbounded.run(SPM, 120)["termination"] == "final time"
    finally:
        unbounded.close()


def test_a_killed_solver_names_the_signal():
    sp = SolverProcess()
    try:
        sp.run(SPM, 120)  # started and warm
        long_job = Job.model_validate({"model": {"name": "DFN"}, "protocol": {
            "type": "experiment", "cycles": 100, "steps": ["Discharge at 1C until 2.5 V", "Charge at 1C until 4.2 V"]}})
        pid = sp.pid
        threading.Timer(1.5, lambda: os.kill(pid, signal.SIGKILL)).start()
        t0 = time.monotonic()
        with pytest.raises(SolverCrashed) as info:
            sp.run(long_job, 120)
        assert "killed by signal SIGKILL" in str(info.value) and time.monotonic() - t0 < 30
        assert sp.run(SPM, 120)["termination"] == "final time"  # a fresh child takes the next job
    finally:
        sp.close()

"""An ageing study run in segments (as the worker runs it across invocations): each
segment that runs out of its time ends in a checkpoint, the next resumes from it (a
pickle round trip in between), and the rows equal one uninterrupted direct PyBaMM solve
within 1e-4 relative, cycle for cycle, with the same end-of-life cycle."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from shared.contract.job import Job
from shared.engine import kinds
from shared.engine.protocols import ageing
from shared.engine.checkpoint import Checkpoint, CheckpointError, Segment, unpack
from tests.test_ageing import COMPARED, direct, study


def run_in_segments(body: dict, budget_s: float) -> tuple[dict, list[Checkpoint]]:
    job = Job.model_validate(body)
    resume, checkpoints = None, []
    for _ in range(200):
        out = kinds.simulate(job, segment=Segment(resume=resume, budget_s=budget_s))
        if not isinstance(out, Checkpoint):
            return out, checkpoints
        out = pickle.loads(pickle.dumps(out))  # as it crosses the solver process's pipe
        unpack(out.data, out.sha256)  # verified, as the worker does before it resumes
        checkpoints.append(out)
        resume = out.data
    raise AssertionError("the study did not finish")


def test_a_study_through_checkpoints_equals_one_direct_pybamm_solve(monkeypatch):
    monkeypatch.setattr(ageing, "CHUNK_CYCLES", 6)  # (segments of a few chunks each)
    termination = "5.092 Ah capacity"
    ref = direct(60, termination=[termination])
    k = len(ref.cycles)
    r, checkpoints = run_in_segments(study(cycles=60, end_of_life={"capacity_Ah": 5.092},
                                           save_cycles={"every": 10}), budget_s=0.2)  # small enough for >= 3 segments on a fast machine
    assert len(checkpoints) >= 3
    done = [c.cycles_done for c in checkpoints]
    assert done == sorted(set(done)) and 0 < done[0] and done[-1] < k  # progress every segment
    assert all(c.cycles_planned == 60 and c.latest_capacity_Ah > 5.09 for c in checkpoints)
    assert r["completed"] is True and r["termination"] == "experiment capacity limit reached"
    assert [row["cycle"] for row in r["cycles"]] == list(range(1, k + 1))  # none lost, none twice
    assert r["end_of_life"]["reached"] is True and r["end_of_life"]["cycle"] == k
    for name in COMPARED:
        got = np.array([row[name] for row in r["cycles"]], dtype=float)
        np.testing.assert_allclose(got, np.array(ref.summary_variables[name], dtype=float), rtol=1e-4, atol=0,
                                   err_msg=name)
    assert r["saved_cycles"] == [1, 10, 20, 30, k]
    assert set(r["columns"]["Cycle number"]) == {1, 10, 20, 30, k}


def test_resuming_from_checkpoints_is_exact(monkeypatch):
    """A resumed state carries on exactly as the uninterrupted solve would: the rows of a
    study continued through checkpoints (chunks of 7 cycles, 0.15 s segments) equal one
    uninterrupted direct PyBaMM solve to 1e-9 relative (the 1e-4 above is the issue's
    bound; this is what the recorder delivers since a restored state is given the
    simulation's own model)."""
    monkeypatch.setattr(ageing, "CHUNK_CYCLES", 7)
    ref = direct(30)
    r, checkpoints = run_in_segments(study(cycles=30, save_cycles={"every": 10}), budget_s=0.15)
    assert len(checkpoints) >= 2 and r["completed"] is True
    assert [row["cycle"] for row in r["cycles"]] == list(range(1, 31))
    for name in COMPARED:
        got = np.array([row[name] for row in r["cycles"]], dtype=float)
        np.testing.assert_allclose(got, np.array(ref.summary_variables[name], dtype=float), rtol=1e-9, atol=0,
                                   err_msg=name)


def test_a_damaged_checkpoint_is_refused():
    job = Job.model_validate(study(cycles=40))
    out = kinds.simulate(job, segment=Segment(budget_s=0.2))
    assert isinstance(out, Checkpoint)
    damaged = bytearray(out.data)
    damaged[len(damaged) // 2] ^= 0xFF
    with pytest.raises(CheckpointError, match="SHA-256"):
        unpack(bytes(damaged), out.sha256)
    with pytest.raises(CheckpointError):  # unreadable, even unverified: the job fails, never resumes from it
        kinds.simulate(job, segment=Segment(resume=bytes(damaged[:1000]), budget_s=0.2))
    other = Job.model_validate(study(cycles=40) | {"protocol": {"type": "ageing", "steps": [
        "Discharge at 0.5C until 2.5 V", "Charge at 0.3C until 4.2 V"], "cycles": 40}})
    with pytest.raises(CheckpointError, match="another study"):
        kinds.simulate(other, segment=Segment(resume=out.data, budget_s=0.2))


def test_the_last_segment_allowed_stops_with_the_cycles_it_has_and_says_why():
    job = Job.model_validate(study(cycles=40))
    first = kinds.simulate(job, segment=Segment(budget_s=0.3))
    assert isinstance(first, Checkpoint)
    r = kinds.simulate(job, segment=Segment(resume=first.data, budget_s=0.3, may_continue=False,
                                            stop_reason="the study reached max_continuations (1)"))
    assert isinstance(r, dict) and r["completed"] is False
    assert len(r["cycles"]) > first.cycles_done
    assert any("max_continuations (1)" in note for note in r["notes"])


def test_each_segment_writes_every_row_to_the_progress_file_the_worker_reads(tmp_path, monkeypatch):
    """With ``Segment.progress_path`` the engine appends each cycle's row as it ends (a
    resumed segment first writes the restored rows): the last segment's file holds the
    study's rows 1..N, equal to the result's."""
    import json

    monkeypatch.setattr(ageing, "CHUNK_CYCLES", 6)
    job = Job.model_validate(study(cycles=30))
    resume, files = None, []
    for k in range(100):
        path = tmp_path / f"progress-{k}.jsonl"
        out = kinds.simulate(job, segment=Segment(resume=resume, budget_s=0.2, progress_path=str(path)))
        files.append([row for line in path.read_text().splitlines() for row in json.loads(line)])
        if not isinstance(out, Checkpoint):
            break
        resume = out.data
    assert len(files) >= 2
    assert [r["cycle"] for r in files[0]] == list(range(1, len(files[0]) + 1))
    assert files[-1] == out["cycles"] and [r["cycle"] for r in files[-1]] == list(range(1, 31))

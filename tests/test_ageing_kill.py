"""End to end (emulators + functions-framework): the worker's whole process group
(functions-framework, its workers, their solver processes) is SIGKILLed while a segment
of an ageing study runs, after at least one checkpoint. Pub/Sub redelivers the segment
to the restarted worker, which resumes from the last stored checkpoint.

Proven: exactly one outcome reaches the receiver (one final body, "succeeded"); every
cycle is there once (1..N, contiguous); the rows equal one uninterrupted in-process run
of the same study within 1e-4 relative, cycle for cycle; the progress callbacks the job
asked for are all "running", not final, keyed apart from the outcome, and each carries
the rows 1..k; GET /jobs/<id> ends with the final progress (N of N cycles).
"""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest
import requests

from cli.receiver import Receiver
from local.stack import Stack
from shared.contract.job import Job
from shared.engine import kinds
from tests.test_ageing import COMPARED, study
from tests.test_faults import log_count

pytestmark = pytest.mark.slow

CYCLES = 200
EVERY = 25


def view_of(stack: Stack, job_id: str) -> dict:
    return requests.get(f"{stack.submit_url}/jobs/{job_id}", timeout=30).json()


def test_a_worker_killed_mid_segment_loses_no_cycle_and_counts_none_twice(tmp_path_factory):
    body = study(cycles=CYCLES, save_cycles={"every": 100}, progress_every_cycles=EVERY)
    with Receiver() as receiver:
        with Stack.on_free_ports(job_manager_url=receiver.url, log_dir=tmp_path_factory.mktemp("stack-ageing-kill"),
                                 worker_processes=1, extra_env={"SEGMENT_BUDGET_S": 3}) as stack:
            reply = requests.post(stack.submit_url + "/jobs", data=json.dumps(body),
                                  headers={"Content-Type": "application/json"}, timeout=60)
            assert reply.status_code == 202, reply.text
            job_id = reply.json()["jobId"]
            # wait for a checkpoint, then for the next segment to be well under way
            deadline = time.monotonic() + 120
            while int((view_of(stack, job_id).get("progress") or {}).get("continuations") or 0) < 1:
                assert time.monotonic() < deadline, "no checkpoint was stored"
                time.sleep(0.2)
            while log_count(stack, "simulation started", job_id) < 2:
                assert time.monotonic() < deadline, "the second segment never started"
                time.sleep(0.1)
            time.sleep(1.5)
            before = view_of(stack, job_id)
            assert before["status"] == "running", "the study finished before the kill; it is too short"
            checkpoints = log_count(stack, "segment checkpointed; continues", job_id)

            os.killpg(stack.procs["worker"].pid, signal.SIGKILL)
            stack.restart_worker()

            result = receiver.wait_for([job_id], 150)[job_id]
            time.sleep(2)  # no second outcome follows
            final = view_of(stack, job_id)
            starts = log_count(stack, "simulation started", job_id)
            progress_keys = [k for k in receiver.statuses if k.startswith(f"{job_id}:progress:")]
            progress_bodies = [receiver.results[k] for k in progress_keys]
            outcomes = receiver.statuses[job_id]

    assert outcomes == ["succeeded"]  # exactly one final outcome
    assert result["status"] == "succeeded" and result["completed"] is True
    # the killed segment ran again from the last checkpoint (one more start than segments)
    assert starts >= checkpoints + 2, (starts, checkpoints)
    assert [row["cycle"] for row in result["cycles"]] == list(range(1, CYCLES + 1))  # none lost, none twice
    assert final["status"] == "succeeded"
    assert final["progress"]["cyclesDone"] == CYCLES and final["progress"]["etaSeconds"] == 0
    assert final["progress"]["continuations"] >= 2

    assert progress_bodies, "no progress callback arrived"
    for key, sent in zip(progress_keys, progress_bodies):
        assert sent["status"] == "running" and sent["final"] is False and sent["id"] == job_id
        done = sent["progress"]["cyclesDone"]
        assert key == f"{job_id}:progress:{done}" and 0 < done < CYCLES
        assert [row["cycle"] for row in sent["cycles"]] == list(range(1, done + 1))
        # rows sent while it ran are the rows of the result (a re-run segment resumes from the same state)
        for got, want in zip(sent["cycles"], result["cycles"]):
            np.testing.assert_allclose(got["Capacity [A.h]"], want["Capacity [A.h]"], rtol=1e-4)

    whole = kinds.simulate(Job.model_validate(body))
    for name in COMPARED:
        got = np.array([row[name] for row in result["cycles"]], dtype=float)
        want = np.array([row[name] for row in whole["cycles"]], dtype=float)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=0, err_msg=name)

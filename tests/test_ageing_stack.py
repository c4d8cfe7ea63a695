"""End to end (emulators + functions-framework): an ageing study forced through >= 3
continuations (SEGMENT_BUDGET_S of 2 s; 300 cycles, so >= 3 segments even on a fast machine) ends in exactly one succeeded callback whose rows
equal the uninterrupted in-process run's within 1e-4, and GET /jobs/<id> showed its
progress while it ran and the final progress (every cycle done) at the end."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import requests

from cli.receiver import Receiver
from local.stack import Stack
from shared.contract.job import Job
from shared.engine import kinds
from tests.test_ageing import COMPARED, study

pytestmark = pytest.mark.slow


def test_a_study_continued_across_invocations_equals_one_uninterrupted_run(tmp_path_factory):
    cycles = 300
    body = study(cycles=cycles, save_cycles={"every": 100})
    with Receiver() as receiver:
        with Stack.on_free_ports(job_manager_url=receiver.url, log_dir=tmp_path_factory.mktemp("stack-ageing"),
                                 extra_env={"SEGMENT_BUDGET_S": 2}) as stack:
            reply = requests.post(stack.submit_url + "/jobs", data=json.dumps(body),
                                  headers={"Content-Type": "application/json"}, timeout=60)
            assert reply.status_code == 202, reply.text
            job_id = reply.json().get("jobId") or reply.json().get("id")
            seen = []
            deadline = time.monotonic() + 240
            while True:
                view = requests.get(f"{stack.submit_url}/jobs/{job_id}", timeout=30).json()
                if view.get("progress"):
                    seen.append(view["progress"])
                if view["status"] in ("succeeded", "failed", "cancelled"):
                    break
                assert time.monotonic() < deadline, view
                time.sleep(0.3)
            assert view["status"] == "succeeded", view
            result = receiver.wait_for([job_id], 60)[job_id]
            time.sleep(2)  # no second callback follows
            assert receiver.statuses[job_id] == ["succeeded"]
    assert seen and max(p["continuations"] for p in seen) >= 3
    running = [p for p in seen if p["cyclesDone"] < cycles]
    assert running, "no progress was seen while the study ran"
    last = running[-1]
    assert last["cyclesPlanned"] == cycles and 0 < last["cyclesDone"] < cycles and last["latestCapacityAh"] > 5
    assert last["etaSeconds"] is not None
    # the last segment records the final progress too
    assert seen[-1]["cyclesDone"] == cycles and seen[-1]["etaSeconds"] == 0 and seen[-1]["continuations"] >= 3
    assert [row["cycle"] for row in result["cycles"]] == list(range(1, cycles + 1))  # none lost, none twice
    whole = kinds.simulate(Job.model_validate(body))
    for name in COMPARED:
        got = np.array([row[name] for row in result["cycles"]], dtype=float)
        want = np.array([row[name] for row in whole["cycles"]], dtype=float)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=0, err_msg=name)
    assert result["saved_cycles"] == [1, 100, 200, 300]

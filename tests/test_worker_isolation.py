"""One long job does not stall short ones while another worker process is free.

The local stack runs 2 worker processes (the Cloud Functions instances) with 2
gunicorn threads each. A push that reaches a process whose solver is busy is refused
at once (like an instance with concurrency 1), so the emulator delivers it again,
to the free process or later, instead of it waiting behind the long solve."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from cli.receiver import Receiver
from local.stack import Stack
from tests.conftest import submit

pytestmark = pytest.mark.slow
RUN = uuid.uuid4().hex[:8]
# a DFN ageing study of 5,000 CCCV cycles: several minutes of solving (300 plain cycles
# took 21 s), cancelled once the short jobs are in
LONG = {"model": {"name": "DFN"}, "protocol": {
    "type": "ageing", "cycles": 5000,
    "steps": ["Discharge at 1C until 2.5 V", "Charge at 1C until 4.2 V", "Hold at 4.2 V until C/50"]}}
SHORT = {"model": {"name": "SPM"}, "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 60}}


def test_short_jobs_are_not_held_behind_a_long_one(tmp_path_factory):
    with Receiver() as receiver:
        with Stack.on_free_ports(job_manager_url=receiver.url, log_dir=tmp_path_factory.mktemp("stack-hol"),
                                 worker_processes=2, worker_threads=2) as stack:
            warm = [submit(stack, "/jobs", {**SHORT, "id": f"warm-{RUN}-{k}"}).json()["jobId"] for k in range(4)]
            receiver.wait_for(warm, 120)  # both processes have a warm solver

            long_id = submit(stack, "/jobs", {**LONG, "id": f"long-{RUN}"}).json()["jobId"]
            time.sleep(2.0)
            t0 = time.monotonic()
            short_ids = [submit(stack, "/jobs", {**SHORT, "id": f"short-{RUN}-{k}"}).json()["jobId"]
                         for k in range(6)]
            receiver.wait_for(short_ids, 180)
            shorts_done = time.monotonic() - t0
            assert long_id not in receiver.results, "the long job ended first: it is too short for this test"
            cancel = requests.post(f"{stack.submit_url}/jobs/{long_id}/cancel", timeout=30)
            assert cancel.status_code == 202, cancel.text  # it was still running
            long_done = receiver.wait_for([long_id], 120)
    assert long_done[long_id]["status"] == "cancelled"
    assert all(receiver.results[i]["status"] == "succeeded" for i in short_ids)
    # six 60 s SPM jobs on the free process, done while the long job (~6 min of solving)
    # still ran: usually ~10 s; in about half the runs the emulator kept redelivering one
    # refused push to the busy process for ~2 minutes (its logs: a refusal every 2 s), so
    # the bound is the long job's time, not the usual figure
    assert shorts_done < 170, shorts_done

"""The job store end to end: the real Pub/Sub and Firestore emulators, both functions
as functions-framework processes and a real HTTP receiver.

* The Java Job Manager's exact requests get the original synchronous body, and it
  deserialises under the Job Manager's strict rules (no unknown properties).
* A receiver that answers 404 to everything, or is down for longer than every
  redelivery, loses no result: the store has it and shows the callback's state.
* Cancel: a queued job is never simulated, a running one is stopped; one
  ``cancelled`` outcome each; the next job runs normally.
* The store paused (SIGSTOP) during a burst: every accepted job ends in exactly
  one outcome; a submission the store could not record got 503.
* A sweep of 50 members: counts converge, pagination returns each job once, and
  result reuse skips the solve.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, Optional, Union

import pytest
import requests
from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt

from cli.receiver import Receiver
from local.stack import Stack
from tests.conftest import JAVA_CELL, JAVA_DRIVE_CYCLE

pytestmark = pytest.mark.slow
RUN = uuid.uuid4().hex[:8]
JSON = {"Content-Type": "application/json"}
FAST_NATIVE = {"model": {"name": "SPM"}, "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 60}}
# an inline profile of 5,000 knots over 5.5 h, alternating charge and discharge: a DFN
# solve of 10-30 s on this machine, to cancel while it runs
LONG_DRIVE_CYCLE = {"model": {"name": "DFN", "options": {"thermal": "lumped"}}, "conditions": {"initial_soc": 0.6}, "protocol": {
    "type": "drive_cycle", "time_s": [4.0 * k for k in range(5000)],
    "current_A": [(1 if k % 2 else -1) * (1 + k % 7) for k in range(5000)]}}


# --------------------------------------------------------------------------
# The Java Job Manager's entity, as its default Jackson ObjectMapper reads it:
# no property outside these, numbers where Double/Long, a known SimulationType.
# --------------------------------------------------------------------------
Number = Optional[Union[StrictInt, StrictFloat]]


class SimulationResults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    simResultsId: Optional[StrictInt] = None
    current: Number = None
    dcap: Number = None
    time: Number = None
    voltage: Number = None


class Simulation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Optional[StrictInt] = None
    simulationType: Optional[Literal["cell", "batteryPack", "driveCycle"]] = None
    simulationResults: Optional[list[SimulationResults]] = None
    jobStarted: Optional[Union[str, bool]] = None  # a String field: Jackson takes a JSON boolean as text


def parse_as_job_manager(text: str) -> Simulation:
    return Simulation.model_validate(json.loads(text))


def test_the_strict_parser_refuses_an_unknown_property():
    """Positive control: today's old 202 body is exactly what broke the Job Manager."""
    with pytest.raises(ValueError):
        parse_as_job_manager(json.dumps({"jobId": "x", "status": "queued", "simulationType": "cell"}))


# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store_stack(tmp_path_factory):
    with Receiver() as r:
        s = Stack.on_free_ports(job_manager_url=r.url, log_dir=tmp_path_factory.mktemp("stack-store"),
                                extra_env={"LEGACY_WAIT_S": 40, "STORE_TIMEOUT_S": 3, "STALE_QUEUED_S": 30})
        with s:
            yield s, r


def post(stack, path, body, headers=None, timeout=90):
    return requests.post(stack.submit_url + path, data=json.dumps(body), headers={**JSON, **(headers or {})},
                         timeout=timeout)


def get(stack, path, **params):
    return requests.get(stack.submit_url + path, params=params, timeout=30)


def wait_finished(stack, job_id, timeout_s=120) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        record = get(stack, f"/jobs/{job_id}").json()
        if record.get("status") in ("succeeded", "failed", "cancelled"):
            return record
        assert time.monotonic() < deadline, record
        time.sleep(0.2)


def test_java_job_manager_requests_get_the_original_synchronous_body(store_stack):
    stack, receiver = store_stack
    with ThreadPoolExecutor(3) as pool:  # its listener has 3 concurrent consumers
        replies = list(pool.map(lambda pb: post(stack, *pb), [
            ("/cell/simulate", JAVA_CELL), ("/drivecycle/simulate", JAVA_DRIVE_CYCLE),
            ("/cell/simulate", {**JAVA_CELL, "controlCurrent": 2.5, "time": 0.5})]))
    for reply, kind in zip(replies, ("cell", "driveCycle", "cell")):
        assert reply.status_code == 200, reply.text
        body = json.loads(reply.text)
        assert set(body) == {"jobStarted", "simulationType", "simulationResults"}
        parsed = parse_as_job_manager(reply.text)
        assert parsed.jobStarted is True and parsed.simulationType == kind
        assert all(set(row) == {"time", "voltage", "current", "dcap"} for row in body["simulationResults"])
        assert reply.headers["X-Job-Status"] == "succeeded"
        job_id = reply.headers["X-Job-Id"]
        assert reply.headers["Location"] == f"/jobs/{job_id}"
        # the same result is in the store and went to the callback as well
        stored = get(stack, f"/jobs/{job_id}/result").json()
        assert stored["result"] == body["simulationResults"]
        assert receiver.wait_for([job_id], 30)[job_id]["result"] == body["simulationResults"]
    cell, drive, _ = (json.loads(r.text) for r in replies)
    # the cell job reaches 2.5 V at about 3555 s: its 101-point grid ends there
    assert 90 <= len(cell["simulationResults"]) <= 101 and 3500 < cell["simulationResults"][-1]["time"] < 3600
    assert len(drive["simulationResults"]) == 601
    assert replies[0].headers["X-Job-Termination"] == "event: Minimum voltage [V]"


def test_a_failed_job_answers_a_parseable_body_saying_so(store_stack):
    stack, _ = store_stack
    reply = post(stack, "/cell/simulate", {**JAVA_CELL, "upperVoltage": 3.0, "lowerVoltage": 2.9})
    assert reply.status_code == 200, reply.text
    parsed = parse_as_job_manager(reply.text)
    assert parsed.jobStarted is False and parsed.simulationResults is None and parsed.simulationType == "cell"
    assert reply.headers["X-Job-Status"] == "failed"
    assert "voltage cut-offs" in reply.headers["X-Job-Error"]


def test_a_wait_past_the_limit_answers_a_parseable_not_finished_body(tmp_path_factory):
    """LEGACY_WAIT_S of 1 s against a job of several seconds: 202, the body parses,
    the headers say it is not finished and where to look; the job still finishes."""
    with Receiver() as r:
        with Stack.on_free_ports(job_manager_url=r.url, log_dir=tmp_path_factory.mktemp("stack-wait"),
                                 extra_env={"LEGACY_WAIT_S": 1}) as stack:
            reply = post(stack, "/drivecycle/simulate", JAVA_DRIVE_CYCLE)
            assert reply.status_code == 202, reply.text
            parsed = parse_as_job_manager(reply.text)
            assert parsed.jobStarted is False and parsed.simulationResults is None
            assert reply.headers["X-Job-Status"] in ("queued", "running")
            job_id = reply.headers["X-Job-Id"]
            assert reply.headers["Location"] == f"/jobs/{job_id}" and reply.headers["Retry-After"]
            assert wait_finished(stack, job_id)["status"] == "succeeded"


def test_prefer_respond_async_keeps_the_immediate_202(store_stack):
    stack, receiver = store_stack
    reply = post(stack, "/cell/simulate", {**JAVA_CELL, "time": 0.05}, headers={"Prefer": "respond-async"})
    assert reply.status_code == 202 and reply.json()["status"] == "queued"
    job_id = reply.json()["jobId"]
    assert receiver.wait_for([job_id], 60)[job_id]["status"] == "succeeded"


def test_native_prefer_wait_answers_with_the_finished_job(store_stack):
    stack, _ = store_stack
    reply = post(stack, "/jobs", FAST_NATIVE, headers={"Prefer": "wait=60"})
    assert reply.status_code == 200, reply.text
    view = reply.json()
    assert view["status"] == "succeeded" and view["summary"]["End time [s]"] == pytest.approx(60.0)
    assert "columns" not in view  # the status view carries no series
    result = get(stack, view["result"]).json()
    assert len(result["columns"]["Time [s]"]) >= 2
    csv_text = get(stack, view["result"], format="csv").text.splitlines()
    assert csv_text[0].split(",")[0] == "Time [s]" and len(csv_text) == len(result["columns"]["Time [s]"]) + 1


def test_a_native_id_that_exists_is_409_and_not_published_again(store_stack):
    stack, receiver = store_stack
    job_id = f"dup-{RUN}"
    first = post(stack, "/jobs", {**FAST_NATIVE, "id": job_id})
    assert first.status_code == 202
    second = post(stack, "/jobs", {**FAST_NATIVE, "id": job_id})
    assert second.status_code == 409 and second.json()["status"] in ("queued", "running", "succeeded")
    receiver.wait_for([job_id], 60)
    time.sleep(2)
    assert [d for d in receiver.deliveries if d[1] == job_id] == [("/simulationResult", job_id)]
    bad = post(stack, "/jobs", {**FAST_NATIVE, "id": "../etc"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "id"


def test_unknown_ids_are_404(store_stack):
    stack, _ = store_stack
    assert get(stack, "/jobs/no-such-job").status_code == 404
    assert get(stack, "/jobs/no-such-job/result").status_code == 404
    assert requests.post(stack.submit_url + "/jobs/no-such-job/cancel", timeout=30).status_code == 404
    assert get(stack, "/sweeps/no-such-sweep").status_code == 404


# --------------------------------------------------------------------------
# Callbacks that cannot land lose nothing
# --------------------------------------------------------------------------
def test_a_receiver_answering_404_to_everything_loses_no_result(store_stack):
    """The latest Job Manager has no /simulateCell: the result is still stored and
    the job says its callback was rejected with 404."""
    stack, receiver = store_stack
    receiver.reject_with = 404
    try:
        reply = post(stack, "/cell/simulate", {**JAVA_CELL, "time": 0.1})
        assert reply.status_code == 200 and parse_as_job_manager(reply.text).jobStarted is True
        job_id = reply.headers["X-Job-Id"]
        deadline = time.monotonic() + 30
        while (view := get(stack, f"/jobs/{job_id}").json())["callback"]["state"] == "pending":
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        receiver.reject_with = None
    assert view["status"] == "succeeded"
    assert view["callback"]["state"] == "rejected" and view["callback"]["status"] == 404
    assert ("/simulateCell", job_id) in receiver.rejections
    assert len(get(stack, f"/jobs/{job_id}/result").json()["result"]) == 101


def test_a_receiver_down_longer_than_every_redelivery_loses_no_result(tmp_path_factory):
    from local.stack import free_port

    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    with Stack.on_free_ports(job_manager_url=nowhere, log_dir=tmp_path_factory.mktemp("stack-down"),
                             max_delivery_attempts=5,  # Pub/Sub's minimum
                             extra_env={"CALLBACK_TOTAL_BUDGET_S": 1, "CALLBACK_TIMEOUT_S": 1}) as stack:
        reply = post(stack, "/jobs", FAST_NATIVE, headers={"Prefer": "wait=60"})
        assert reply.status_code == 200
        job_id = reply.json()["jobId"]
        deadline = time.monotonic() + 90
        while True:  # redelivered (the store keeps the result: it is resent, not re-simulated),
            # then dead-lettered: the dead-letter function makes one last attempt (the 6th)
            view = get(stack, f"/jobs/{job_id}").json()
            if view["callback"]["attempts"] >= 6:
                break
            assert time.monotonic() < deadline, view
            time.sleep(0.5)
        assert view["status"] == "succeeded" and view["callback"]["state"] == "undelivered"
        assert view["deliveryAttempts"] == 1  # simulated once
        assert get(stack, f"/jobs/{job_id}/result").json()["summary"]["End time [s]"] == pytest.approx(60.0)


# --------------------------------------------------------------------------
# Cancel
# --------------------------------------------------------------------------
def test_cancel_a_queued_job_it_is_never_simulated(store_stack):
    stack, receiver = store_stack
    stack.stop_process("worker", timeout_s=0)  # nothing takes the job: it stays queued
    try:
        reply = post(stack, "/jobs", FAST_NATIVE)
        job_id = reply.json()["jobId"]
        assert get(stack, f"/jobs/{job_id}").json()["status"] == "queued"
        cancel = requests.post(f"{stack.submit_url}/jobs/{job_id}/cancel", timeout=30)
        assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
    finally:
        stack.restart_worker()
    body = receiver.wait_for([job_id], 60)[job_id]
    assert body["status"] == "cancelled" and body["result"] == []
    time.sleep(2)
    assert receiver.statuses[job_id] == ["cancelled"]
    view = get(stack, f"/jobs/{job_id}").json()
    assert view["status"] == "cancelled" and view["startedAt"] is None
    again = requests.post(f"{stack.submit_url}/jobs/{job_id}/cancel", timeout=30)
    assert again.status_code == 409
    # the next job runs normally
    nxt = post(stack, "/jobs", FAST_NATIVE, headers={"Prefer": "wait=60"})
    assert nxt.status_code == 200 and nxt.json()["status"] == "succeeded"


def test_cancel_a_running_drive_cycle_stops_it(store_stack):
    stack, receiver = store_stack
    reply = post(stack, "/jobs", LONG_DRIVE_CYCLE)
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["jobId"]
    deadline = time.monotonic() + 60
    while get(stack, f"/jobs/{job_id}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1.0)
    t0 = time.monotonic()
    cancel = requests.post(f"{stack.submit_url}/jobs/{job_id}/cancel", timeout=30)
    assert cancel.status_code == 202 and cancel.json()["cancelRequested"] is True
    view = wait_finished(stack, job_id, 30)
    stopped_in = time.monotonic() - t0
    assert view["status"] == "cancelled" and stopped_in < 5, (view, stopped_in)
    body = receiver.wait_for([job_id], 30)[job_id]
    assert body["status"] == "cancelled"
    time.sleep(2)
    assert receiver.statuses[job_id] == ["cancelled"]  # exactly one outcome, never "succeeded"
    nxt = post(stack, "/jobs", FAST_NATIVE, headers={"Prefer": "wait=60"})
    assert nxt.status_code == 200 and nxt.json()["status"] == "succeeded"


# --------------------------------------------------------------------------
# The store unreachable during a burst
# --------------------------------------------------------------------------
def test_store_paused_during_a_burst_every_accepted_job_ends_once(store_stack):
    stack, receiver = store_stack
    bodies = [{**JAVA_CELL, "time": 0.05, "id": f"burst-{RUN}-{k}"} for k in range(12)]

    def send(body):
        try:
            return body["id"], post(stack, "/cell/simulate", body, headers={"Prefer": "respond-async"}, timeout=60)
        except requests.RequestException as exc:
            return body["id"], exc

    with ThreadPoolExecutor(6) as pool:
        before = list(pool.map(send, bodies[:4]))
        stack.pause_firestore()
        try:
            during = list(pool.map(send, bodies[4:]))
            time.sleep(max(0.0, 10 - 3))
        finally:
            stack.resume_firestore()
    replies = before + during
    accepted = [i for i, r in replies if not isinstance(r, Exception) and r.status_code == 202]
    refused = [i for i, r in replies if not isinstance(r, Exception) and r.status_code == 503]
    assert len(accepted) >= 4 and refused, [(i, getattr(r, "status_code", r)) for i, r in replies]
    assert len(accepted) + len(refused) == len(bodies)
    results = receiver.wait_for(accepted, 180)
    time.sleep(3)
    for job_id in accepted:
        assert results[job_id]["status"] == "succeeded"
        assert len(receiver.statuses[job_id]) == 1 or set(receiver.statuses[job_id]) == {"succeeded"}
        assert get(stack, f"/jobs/{job_id}").json()["status"] == "succeeded"
    for job_id in refused:  # refused: never queued, so never simulated or reported
        assert job_id not in receiver.results


# --------------------------------------------------------------------------
# Sweeps, lists and result reuse
# --------------------------------------------------------------------------
def test_a_sweep_of_50_counts_pages_and_reuse(store_stack):
    stack, receiver = store_stack
    base = {**FAST_NATIVE, "reuse": True}
    rates = [round(0.2 + 0.05 * k, 3) for k in range(50)]
    sweep = post(stack, "/sweeps", {"base": base, "vary": {"protocol.c_rate": rates}})
    assert sweep.status_code == 202, sweep.text
    sweep_id, ids = sweep.json()["sweepId"], sweep.json()["jobIds"]
    assert len(ids) == 50
    deadline = time.monotonic() + 240
    while True:
        view = get(stack, f"/sweeps/{sweep_id}").json()
        assert view["total"] == 50 and sum(view["counts"].values()) == 50
        if view["counts"]["succeeded"] == 50:
            break
        assert time.monotonic() < deadline, view["counts"]
        time.sleep(1)
    assert [m["index"] for m in view["members"]] == list(range(50))
    assert all(m["summary"]["End time [s]"] > 0 for m in view["members"])

    seen, token, pages = [], None, 0
    while True:
        params = {"sweep": sweep_id, "limit": 7, **({"page_token": token} if token else {})}
        page = get(stack, "/jobs", **params).json()
        seen += [j["jobId"] for j in page["jobs"]]
        pages += 1
        token = page["nextPageToken"]
        if not token:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen)) and pages == 8

    # the same sweep widened by 5 new rates: the 50 known members are reused, 5 are solved
    again = post(stack, "/sweeps", {"base": base, "vary": {"protocol.c_rate": rates + [3.0, 3.1, 3.2, 3.3, 3.4]}})
    ids2 = again.json()["jobIds"]
    results = receiver.wait_for(ids2, 240)
    reused = [i for i in ids2 if results[i].get("reusedFrom")]
    assert len(reused) == 50
    # each from an identical earlier job (the first sweep's, or an earlier 1C job of this module)
    assert sum(results[i]["reusedFrom"] in ids for i in reused) >= 49
    fresh = [i for i in ids2 if i not in reused]
    assert len(fresh) == 5 and all(results[i]["timings"]["solve_s"] > 0 for i in fresh)
    one = next(i for i in reused if results[i]["reusedFrom"] in ids)
    assert results[one]["summary"] == receiver.wait_for([results[one]["reusedFrom"]], 30)[results[one]["reusedFrom"]]["summary"]
    assert get(stack, f"/jobs/{one}").json()["reusedFrom"] == results[one]["reusedFrom"]


# --------------------------------------------------------------------------
# A job whose message was lost is published again
# --------------------------------------------------------------------------
def test_a_job_whose_message_was_lost_is_requeued_and_ends_once(store_stack, monkeypatch):
    """A record queued long ago whose message never reached a worker (recorded here
    straight in the store, never published): POST /maintenance/requeue publishes it
    again (the local stack does so every 15 s, Cloud Scheduler in the cloud); it then
    runs and ends in one outcome. A fresh queued job is left alone."""
    from shared.contract.envelope import Envelope
    from shared.contract.job import Job
    from shared.settings import get_settings
    from shared.store import jobs as job_store

    stack, receiver = store_stack
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", stack.firestore_host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", stack.project)
    get_settings.cache_clear()
    job_store.reset()
    try:
        lost = Envelope(job_id=f"lost-{RUN}", kind="native", submitted_at="2026-01-01T00:00:00.000Z",
                        job=Job.model_validate(FAST_NATIVE))
        job_store.store().create(lost)
        reply = requests.post(stack.submit_url + "/maintenance/requeue", timeout=30)
        assert reply.status_code == 200 and lost.job_id in reply.json()["requeued"]
        body = receiver.wait_for([lost.job_id], 60)[lost.job_id]
        assert body["status"] == "succeeded"
        assert get(stack, f"/jobs/{lost.job_id}").json()["status"] == "succeeded"
        again = requests.post(stack.submit_url + "/maintenance/requeue", timeout=30).json()
        assert lost.job_id not in again["requeued"]  # finished: left alone
        time.sleep(2)
        assert receiver.statuses[lost.job_id] == ["succeeded"]
    finally:
        get_settings.cache_clear()
        job_store.reset()

"""The worker function in process, against a real HTTP receiver.

Each test builds the push body Pub/Sub would deliver, calls
``functions.worker.handle`` as functions-framework would, and looks at what the
receiver (``cli.receiver.Receiver``, the Job Manager's stand-in) got. The worker's
PyBaMM child process starts once for the module (a few seconds) and is closed at
the end. Fast enough for Cloud Build's unit stage (``-m "not slow"``).
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cli.receiver import Receiver
from functions import worker
from shared.contract.job import Job
from shared.delivery import callback, messages
from shared.settings import get_settings
from tests.conftest import JAVA_CELL, Envelope, LegacyRequest, envelope
from tests.test_messages import push_body

ALLOWED_PATH = "/own-results"


@pytest.fixture(scope="module")
def job_manager():
    """A real receiver standing in for the Java Job Manager, for the whole module."""
    with Receiver() as r, pytest.MonkeyPatch.context() as mp:
        mp.setenv("JOB_MANAGER_URL", r.url)
        mp.setenv("CALLBACK_TOTAL_BUDGET_S", "3")
        mp.setenv("CALLBACK_URL_ALLOWLIST", r.url + ALLOWED_PATH)
        mp.delenv("CALLBACK_SIGNING_KEY", raising=False)
        mp.delenv("MAX_DELIVERY_ATTEMPTS", raising=False)
        get_settings.cache_clear()
        try:
            yield r
        finally:
            get_settings.cache_clear()


@pytest.fixture(scope="module", autouse=True)
def solver_process():
    """The worker's PyBaMM child process: started by the first job, closed after the module."""
    yield
    worker.solver().close()


@pytest.fixture(autouse=True)
def fresh_settings(job_manager):
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def push(env: Envelope, **extra) -> dict:
    """The push body Pub/Sub delivers for one envelope (as the submit function publishes it)."""
    data, attributes = messages.encode(env)
    return {**push_body(data, attributes), **extra}


def with_id(job_id: str, kind: str = "cell", job: Job | None = None, **fields) -> Envelope:
    """The Java cell job's envelope (tests.conftest.envelope) under another id."""
    update = {"job_id": job_id, "kind": kind, **fields}
    if job is not None:
        update["job"] = job
    return envelope().model_copy(update=update)


def deliveries_to(receiver: Receiver, job_id: str) -> list[str]:
    return [path for path, key in receiver.deliveries if key == job_id]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# Poison messages: acknowledged (no exception), reported where a job id is known
# --------------------------------------------------------------------------
def test_undecodable_data_is_acked_and_reported_failed(job_manager):
    event = {"message": {"data": "%%% not base64", "messageId": "1",
                         "attributes": {"jobId": "poison-b64", "kind": "cell"}}}

    body = worker.handle(event, event_id="e1")

    assert body["status"] == "failed"
    received = job_manager.wait_for(["poison-b64"], timeout_s=5)["poison-b64"]
    assert received["status"] == "failed" and "not base64 JSON" in received["error"]
    assert received["result"] == []
    assert deliveries_to(job_manager, "poison-b64") == ["/simulateCell"]


def test_a_schema_invalid_job_is_acked_and_reported_failed_with_the_reason(job_manager):
    bad = json.dumps({"job_id": "poison-schema", "kind": "native", "submitted_at": "x",
                      "job": {"protocol": {"type": "warp_drive"}}}).encode()

    worker.handle(push_body(bad, {"jobId": "poison-schema"}), event_id="e1")

    received = job_manager.wait_for(["poison-schema"], timeout_s=5)["poison-schema"]
    assert received["status"] == "failed"
    assert received["error"].startswith("the job message is invalid") and "protocol" in received["error"]
    assert deliveries_to(job_manager, "poison-schema") == ["/simulationResult"]


def test_valid_json_that_is_not_an_envelope_uses_the_attribute_job_id(job_manager):
    worker.handle(push_body(b'["just", "a", "list"]', {"jobId": "poison-list", "kind": "driveCycle"}),
                  event_id="e1")

    received = job_manager.wait_for(["poison-list"], timeout_s=5)["poison-list"]
    assert received["status"] == "failed" and received["simulationType"] == "driveCycle"
    assert deliveries_to(job_manager, "poison-list") == ["/simulateDriveCycle"]


@pytest.mark.parametrize("event", [
    {"subscription": "projects/p/subscriptions/s"},                      # no message at all
    {"message": "not an object"},
    {"message": {"data": "%%% not base64", "attributes": {}}},           # no job id anywhere
    None,
], ids=["no-message", "message-not-object", "no-job-id", "none"])
def test_poison_without_a_job_id_is_acked_and_reports_nothing(job_manager, event):
    before = len(job_manager.deliveries)

    body = worker.handle(event, event_id="e1")

    assert body == {}
    assert len(job_manager.deliveries) == before


def test_a_callback_url_outside_the_allowlist_is_reported_to_the_job_manager(job_manager, firestore_emulator):
    job = Job.model_validate({"model": {"name": "SPM"},
                              "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 60}})
    env = with_id("foreign-callback", kind="native", job=job, callback_url="http://169.254.169.254/latest/meta-data")

    body = worker.handle(push(env), event_id="e1")

    assert body["status"] == "failed" and "allowlist" in body["error"]
    received = job_manager.wait_for(["foreign-callback"], timeout_s=5)["foreign-callback"]
    assert received["status"] == "failed" and "allowlist" in received["error"]
    assert deliveries_to(job_manager, "foreign-callback") == ["/simulationResult"]


# --------------------------------------------------------------------------
# Simulations
# --------------------------------------------------------------------------
def test_the_java_cell_job_simulates_and_posts_legacy_rows(job_manager, firestore_emulator):
    body = worker.handle(push(with_id("java-cell")), event_id="e1")

    assert body["status"] == "succeeded", body.get("error")
    received = job_manager.wait_for(["java-cell"], timeout_s=5)["java-cell"]
    assert deliveries_to(job_manager, "java-cell") == ["/simulateCell"]
    assert received["status"] == "succeeded" and received["error"] is None
    assert received["id"] == "java-cell" and received["simulationType"] == "cell"
    rows = received["result"]
    assert len(rows) > 50
    assert all(set(row) == {"time", "voltage", "current", "dcap"} for row in rows)
    assert rows[0]["time"] == 0.0 and rows[0]["dcap"] == 0.0
    assert all(row["current"] == pytest.approx(5.0) for row in rows)
    assert all(2.5 - 1e-3 <= row["voltage"] <= 4.2 + 1e-3 for row in rows)
    # 1 h at 5 A on a 5 A.h cell reaches 2.5 V just before the hour, and says so
    assert received["termination"] == "event: Minimum voltage [V]" and received["stoppedEarly"] is True
    assert 3000 < received["endTime"] < 3600
    assert job_manager.encodings["java-cell"] == [""]  # legacy callbacks are never compressed


def test_a_native_job_posts_columns_to_an_allowlisted_callback_url(job_manager, firestore_emulator):
    job = Job.model_validate({"model": {"name": "SPM"},
                              "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 600},
                              "outputs": {"variables": ["Time [s]", "Voltage [V]"], "max_points": 11}})
    env = with_id("native-own-url", kind="native", job=job, callback_url=job_manager.url + ALLOWED_PATH + "/1")

    worker.handle(push(env), event_id="e1")

    received = job_manager.wait_for(["native-own-url"], timeout_s=5)["native-own-url"]
    assert deliveries_to(job_manager, "native-own-url") == [ALLOWED_PATH + "/1"]
    assert received["status"] == "succeeded", received.get("error")
    assert set(received["columns"]) == {"Time [s]", "Voltage [V]"}
    assert len(received["columns"]["Time [s]"]) == 11 and received["completed"] is True


def test_a_cell_starting_above_its_cut_off_gets_one_failed_callback(job_manager, firestore_emulator):
    job = LegacyRequest.model_validate({**JAVA_CELL, "upperVoltage": 3.0}).to_job("cell")

    body = worker.handle(push(with_id("above-cut-off", job=job)), event_id="e1")

    assert body["status"] == "failed"
    received = job_manager.wait_for(["above-cut-off"], timeout_s=5)["above-cut-off"]
    assert deliveries_to(job_manager, "above-cut-off") == ["/simulateCell"]
    assert received["status"] == "failed" and received["result"] == []
    assert received["error"].startswith("the cell starts outside its voltage cut-offs")
    assert "Maximum voltage [V]" in received["error"] and "already crossed at t = 0 s" in received["error"]
    assert "Traceback" not in received["error"]


def test_a_native_job_with_an_unknown_parameter_gets_one_failed_callback(job_manager, firestore_emulator):
    # published straight to the topic: the submit function would have refused it
    job = Job.model_validate({"model": {"name": "SPM"}, "parameters": {"Frobnication [V]": 1.0},
                              "protocol": {"type": "constant_current", "c_rate": 1}})

    worker.handle(push(with_id("unknown-parameter", kind="native", job=job)), event_id="e1")

    received = job_manager.wait_for(["unknown-parameter"], timeout_s=5)["unknown-parameter"]
    assert deliveries_to(job_manager, "unknown-parameter") == ["/simulationResult"]
    assert received["status"] == "failed"
    assert "Frobnication [V]" in received["error"] and "Chen2020" in received["error"]


def test_the_delivery_attempt_travels_in_the_callback(job_manager, firestore_emulator):
    worker.handle(push(with_id("second-attempt"), deliveryAttempt=2), event_id="e1")

    received = job_manager.wait_for(["second-attempt"], timeout_s=5)["second-attempt"]
    assert received["status"] == "succeeded" and received["deliveryAttempt"] == 2


# --------------------------------------------------------------------------
# The receiver's answers
# --------------------------------------------------------------------------
def test_a_receiver_answering_404_is_permanent_so_the_message_is_acked(monkeypatch, firestore_emulator):
    hits: list[str] = []

    class NotFound(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            hits.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("JOB_MANAGER_URL", f"http://127.0.0.1:{server.server_address[1]}")
        get_settings.cache_clear()

        body = worker.handle(push(with_id("rejected")), event_id="e1")  # returns: no redelivery
    finally:
        server.shutdown()
        server.server_close()

    assert body["status"] == "succeeded"
    assert hits == ["/simulateCell"]  # asked once, not retried


def test_a_receiver_that_is_down_makes_the_invocation_fail_for_redelivery(monkeypatch, job_manager, firestore_emulator):
    monkeypatch.setenv("JOB_MANAGER_URL", f"http://127.0.0.1:{free_port()}")
    get_settings.cache_clear()

    with pytest.raises(callback.CallbackUndelivered):
        worker.handle(push(with_id("receiver-down")), event_id="e1")

    assert "receiver-down" not in job_manager.results


def test_a_poison_report_to_a_receiver_that_is_down_fails_for_redelivery(monkeypatch):
    monkeypatch.setenv("JOB_MANAGER_URL", f"http://127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    event = {"message": {"data": "%%%", "attributes": {"jobId": "poison-down", "kind": "cell"}}}

    with pytest.raises(callback.CallbackUndelivered):
        worker.handle(event, event_id="e1")


def test_a_receiver_answering_503_once_still_gets_the_result(job_manager, firestore_emulator):
    job_manager.fail_next = 1
    try:
        body = worker.handle(push(with_id("flaky-once")), event_id="e1")
        unanswered = job_manager.fail_next
    finally:
        job_manager.fail_next = 0

    assert unanswered == 0  # the 503 was served, and the worker tried again
    assert body["status"] == "succeeded"
    received = job_manager.wait_for(["flaky-once"], timeout_s=5)["flaky-once"]
    assert received["status"] == "succeeded"
    assert deliveries_to(job_manager, "flaky-once") == ["/simulateCell"]  # the 503 was not recorded as one


def test_on_the_last_delivery_attempt_the_job_is_reported_failed_without_simulating(monkeypatch, job_manager, firestore_emulator):
    monkeypatch.setattr(worker, "solver", lambda: pytest.fail("the worker simulated on its last attempt"))

    body = worker.handle(push(with_id("last-attempt"), deliveryAttempt=5), event_id="e1")

    assert body["status"] == "failed" and "5 delivery attempts" in body["error"]
    assert job_manager.wait_for(["last-attempt"], timeout_s=5)["last-attempt"]["status"] == "failed"

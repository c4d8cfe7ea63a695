"""The submit function in process: routing, every reply status, sweeps, publishing.

Each test builds a real (werkzeug/flask) request, calls ``functions.submit.handle``
as functions-framework would, and looks at the (body, status, headers) it returns
and at what it handed to the publisher. Publishing is replaced by a recorder, so
no emulator is needed and these run in Cloud Build's unit stage (``-m "not slow"``).
"""

from __future__ import annotations

import io
import json

import pytest
from flask import Request
from werkzeug.test import EnvironBuilder

import shared.delivery.publisher
from functions import submit
from shared.delivery import messages
from shared.delivery.messages import MessageTooLarge
from shared.settings import get_settings
from tests.conftest import JAVA_CELL, JAVA_DRIVE_CYCLE, Envelope

ALLOWED_CALLBACKS = "https://results.example.org/callbacks"
NATIVE_JOB = {"model": {"name": "SPM"}, "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 600}}


class Recorder:
    """Stands in for ``shared.delivery.publisher.publish_encoded`` (no Pub/Sub emulator in
    these in-process tests): keeps every envelope its messages carry."""

    def __init__(self, fail_with: Exception | None = None):
        self.envelopes: list[Envelope] = []
        self.calls = 0
        self.fail_with = fail_with

    def __call__(self, encoded):
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        envelopes = [Envelope.model_validate_json(data) for data, _ in encoded]
        self.envelopes.extend(envelopes)
        return [f"message-{len(self.envelopes) - len(envelopes) + k}" for k in range(len(envelopes))]


@pytest.fixture(autouse=True)
def settings(monkeypatch):
    """A known configuration, read afresh by every test (get_settings is cached). The
    legacy routes answer at once here (no worker runs in process); their synchronous
    reply is tested end to end in tests/test_job_store.py. Tests that get a job accepted
    record it in the store: they ask for the Firestore emulator (``firestore_emulator``);
    rejections happen before the store is touched."""
    for name in ("API_KEY", "MAX_REQUEST_BYTES", "CALLBACK_URL_ALLOWLIST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CALLBACK_URL_ALLOWLIST", ALLOWED_CALLBACKS)
    monkeypatch.setenv("LEGACY_SYNC_REPLY", "false")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def published(monkeypatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(shared.delivery.publisher, "publish_encoded", recorder)
    return recorder


def call(method: str, path: str, body=None, *, data: bytes | str | None = None, headers=None):
    """Send one request to the submit function; return (status, JSON reply, headers)."""
    if body is not None:
        data = json.dumps(body)
    environ = EnvironBuilder(method=method, path=path, data=data, headers=headers or {},
                             content_type="application/json" if data is not None else None).get_environ()
    text, status, reply_headers = submit.handle(Request(environ))
    assert reply_headers["Content-Type"] == "application/json"
    return status, json.loads(text), reply_headers


def fields_of(reply: dict) -> list[str]:
    return [e["field"] for e in reply["errors"]]


# --------------------------------------------------------------------------
# The Java Job Manager's two bodies
# --------------------------------------------------------------------------
def test_java_cell_job_is_queued_as_one_dfn_chen2020_job(published, firestore_emulator):
    status, reply, _ = call("POST", "/cell/simulate", JAVA_CELL)

    assert status == 202, reply
    assert reply["status"] == "queued" and reply["simulationType"] == "cell"
    assert len(published.envelopes) == 1
    envelope = published.envelopes[0]
    assert envelope.job_id == reply["jobId"] and envelope.kind == "cell"
    assert envelope.job.model.name == "DFN" and envelope.job.parameter_set == "Chen2020"
    assert envelope.job.protocol.type == "constant_current"
    assert envelope.job.protocol.current_A == 5.0 and envelope.job.protocol.duration_s == 3600.0
    assert envelope.job.parameters["Nominal cell capacity [A.h]"] == 5.0
    assert envelope.callback_url is None


def test_java_drive_cycle_job_is_queued_as_us06(published, firestore_emulator):
    status, reply, _ = call("POST", "/drivecycle/simulate", JAVA_DRIVE_CYCLE)

    assert status == 202, reply
    assert reply["status"] == "queued" and reply["simulationType"] == "driveCycle"
    assert len(published.envelopes) == 1
    envelope = published.envelopes[0]
    assert envelope.job_id == reply["jobId"] and envelope.kind == "driveCycle"
    assert envelope.job.model.name == "DFN" and envelope.job.parameter_set == "Chen2020"
    assert envelope.job.protocol.type == "drive_cycle" and envelope.job.protocol.name == "US06"


def test_each_job_gets_its_own_id(published, firestore_emulator):
    first = call("POST", "/cell/simulate", JAVA_CELL)[1]["jobId"]
    second = call("POST", "/cell/simulate", JAVA_CELL)[1]["jobId"]

    assert first != second
    assert [e.job_id for e in published.envelopes] == [first, second]


def test_a_legacy_id_sent_by_the_caller_is_kept(published, firestore_emulator):
    status, reply, _ = call("POST", "/cell/simulate", {**JAVA_CELL, "id": "jm-42.run:7"})

    assert status == 202, reply
    assert reply["jobId"] == "jm-42.run:7"
    assert [e.job_id for e in published.envelopes] == ["jm-42.run:7"]


# --------------------------------------------------------------------------
# 400: the reply names the field, and nothing is published
# --------------------------------------------------------------------------
TOO_DEEP = "[" * 40 + "]" * 40

INVALID_LEGACY = [
    # (route, raw body, field named, text in the error)
    ("/cell/simulate", {**JAVA_CELL, "nominalCell": 0}, "nominalCell", "greater than 0"),
    ("/cell/simulate", {**JAVA_CELL, "lowerVoltage": 4.3}, "body", "lowerVoltage (4.3 V) must be below upperVoltage"),
    ("/cell/simulate", {**JAVA_CELL, "time": 0}, "time", "duration"),
    ("/cell/simulate", {**JAVA_CELL, "upperVoltage": 9.0}, "upperVoltage", "5.5"),
    ("/cell/simulate", {**JAVA_CELL, "nominalCell": True}, "nominalCell", "not true/false"),
    ("/cell/simulate", {**JAVA_CELL, "id": "no spaces allowed"}, "id", "pattern"),
    ("/cell/simulate", JAVA_DRIVE_CYCLE, "simulationType", "does not match this route"),
    ("/drivecycle/simulate", JAVA_CELL, "simulationType", "does not match this route"),
    ("/cell/simulate", "{not json", "body", "not valid JSON"),
    ("/cell/simulate", b"\xff\xfe\x00", "body", "not valid JSON"),
    ("/cell/simulate", [JAVA_CELL], "body", "expected a JSON object"),
    ("/cell/simulate", {"nested": json.loads(TOO_DEEP)}, "body", "nested deeper than"),
]


@pytest.mark.parametrize("path, body, field, text", INVALID_LEGACY,
                         ids=[f"{p}:{f}:{t[:18]}" for p, _, f, t in INVALID_LEGACY])
def test_an_invalid_legacy_body_is_rejected_naming_the_field(published, path, body, field, text):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)

    status, reply, _ = call("POST", path, data=data)

    assert status == 400, reply
    assert reply["error"] == "invalid request"
    matching = [e for e in reply["errors"] if e["field"] == field]
    assert matching, reply["errors"]
    assert any(text in e["error"] for e in matching), reply["errors"]
    assert published.calls == 0 and published.envelopes == []


def test_the_recorder_does_record_the_valid_bodies_the_invalid_ones_were_made_from(published, firestore_emulator):
    """Positive control for the test above: with the one bad field taken out, each is published."""
    for path, body in [("/cell/simulate", JAVA_CELL), ("/drivecycle/simulate", JAVA_DRIVE_CYCLE),
                       ("/cell/simulate", {**JAVA_CELL, "id": "no-spaces-allowed"}),
                       ("/cell/simulate", {"nested": json.loads("[" * 30 + "]" * 30)})]:
        status, reply, _ = call("POST", path, body)
        assert status == 202, (path, body, reply)

    assert published.calls == 4
    assert [e.kind for e in published.envelopes] == ["cell", "driveCycle", "cell", "cell"]


def test_a_legacy_body_may_leave_out_every_field(published, firestore_emulator):
    status, reply, _ = call("POST", "/cell/simulate", {})

    assert status == 202, reply
    job = published.envelopes[0].job
    assert job.parameters["Nominal cell capacity [A.h]"] == 8.6  # the original service's defaults
    assert job.protocol.current_A == 5.0 and job.protocol.duration_s == 3600.0


# --------------------------------------------------------------------------
# Routing, size limit and the API key
# --------------------------------------------------------------------------
def test_an_unknown_path_is_404_and_lists_the_routes(published):
    status, reply, _ = call("POST", "/simulate", JAVA_CELL)

    assert status == 404
    assert "/simulate" in reply["error"]
    assert "/cell/simulate" in reply["routes"] and "/jobs" in reply["routes"]
    assert published.calls == 0


def test_a_trailing_slash_reaches_the_same_route(published, firestore_emulator):
    status, reply, _ = call("POST", "/cell/simulate/", JAVA_CELL)

    assert status == 202, reply
    assert len(published.envelopes) == 1


@pytest.mark.parametrize("method, path, allow", [
    ("GET", "/cell/simulate", "POST"),
    ("PUT", "/jobs", "GET, POST"),  # GET /jobs lists the stored jobs
    ("POST", "/catalog", "GET"),
    ("DELETE", "/healthz", "GET"),
])
def test_a_wrong_method_is_405_with_an_allow_header(published, method, path, allow):
    status, reply, headers = call(method, path, data="{}")

    assert status == 405
    assert headers["Allow"] == allow
    assert method in reply["error"]
    assert published.calls == 0


def test_a_body_over_max_request_bytes_is_413(monkeypatch, published, firestore_emulator):
    monkeypatch.setenv("MAX_REQUEST_BYTES", "200")
    get_settings.cache_clear()
    body = {**JAVA_CELL, "padding": "x" * 300}

    status, reply, _ = call("POST", "/cell/simulate", body)

    assert status == 413
    assert fields_of(reply) == ["body"] and "limit is 200 bytes" in reply["errors"][0]["error"]
    assert published.calls == 0
    # control: the same limit admits the Java body itself
    assert call("POST", "/cell/simulate", JAVA_CELL)[0] == 202


def test_a_chunked_body_over_max_request_bytes_is_413(monkeypatch, published):
    """Without a Content-Length the function reads at most the limit + 1 byte."""
    monkeypatch.setenv("MAX_REQUEST_BYTES", "200")
    get_settings.cache_clear()
    chunked = {"wsgi.input_terminated": True}  # what a server sets for Transfer-Encoding: chunked
    big = json.dumps({**JAVA_CELL, "padding": "x" * 300}).encode()

    stream = io.BytesIO(big)
    environ = EnvironBuilder(method="POST", path="/cell/simulate", input_stream=stream,
                             content_type="application/json", environ_overrides=chunked).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    text, status, _ = submit.handle(Request(environ))

    assert status == 413, text
    assert "exceeds 200 bytes" in json.loads(text)["errors"][0]["error"]
    assert stream.tell() == 201  # the rest of the body was never read
    assert published.calls == 0


def test_with_an_api_key_set_a_request_without_it_is_401(monkeypatch, published):
    monkeypatch.setenv("API_KEY", "s3cret")
    get_settings.cache_clear()

    assert call("POST", "/cell/simulate", JAVA_CELL)[0] == 401
    assert call("POST", "/cell/simulate", JAVA_CELL, headers={"X-API-Key": "wrong"})[0] == 401
    assert call("POST", "/cell/simulate", JAVA_CELL, headers={"X-API-Key": "s3cret "})[0] == 401
    assert published.calls == 0


def test_with_an_api_key_set_the_right_key_is_accepted(monkeypatch, published, firestore_emulator):
    monkeypatch.setenv("API_KEY", "s3cret")
    get_settings.cache_clear()

    status, reply, _ = call("POST", "/cell/simulate", JAVA_CELL, headers={"X-API-Key": "s3cret"})

    assert status == 202, reply
    assert len(published.envelopes) == 1


# --------------------------------------------------------------------------
# Native jobs (these checks import PyBaMM once)
# --------------------------------------------------------------------------
def test_a_native_job_is_queued_with_its_allowlisted_callback(published, firestore_emulator):
    job = {**NATIVE_JOB, "callback_url": ALLOWED_CALLBACKS + "/run-1", "id": "native-1"}

    status, reply, _ = call("POST", "/jobs", job)

    assert status == 202, reply
    assert reply == {"jobId": "native-1", "status": "queued", "simulationType": "native"}
    assert len(published.envelopes) == 1
    envelope = published.envelopes[0]
    assert envelope.kind == "native" and envelope.job_id == "native-1"
    assert envelope.job.model.name == "SPM" and envelope.job.protocol.c_rate == 1
    assert envelope.callback_url == ALLOWED_CALLBACKS + "/run-1"


INVALID_NATIVE = [
    ({**NATIVE_JOB, "parameters": {"Frobnication [V]": 1.0}}, "parameters.Frobnication [V]"),
    ({**NATIVE_JOB, "outputs": {"variables": ["Time [s]", "Flux capacitor [W]"]}}, "outputs.variables"),
    ({**NATIVE_JOB, "protocol": {"type": "experiment", "steps": ["Dance until dawn"]}}, "protocol.steps"),
    ({**NATIVE_JOB, "callback_url": "https://results.example.org/callbacksevil"}, "callback_url"),
    ({**NATIVE_JOB, "callback_url": "http://169.254.169.254/computeMetadata"}, "callback_url"),
    ({**NATIVE_JOB, "protocol": {"type": "constant_current", "c_rate": 1, "current_A": 5}}, "protocol"),
    ({**NATIVE_JOB, "modle": {"name": "SPM"}}, "modle"),
]


@pytest.mark.parametrize("body, field", INVALID_NATIVE, ids=[f for _, f in INVALID_NATIVE])
def test_an_invalid_native_job_is_rejected_naming_the_field(published, body, field):
    status, reply, _ = call("POST", "/jobs", body)

    assert status == 400, reply
    assert field in fields_of(reply), reply["errors"]
    assert published.calls == 0


def test_get_catalog_lists_models_and_parameter_sets(published, firestore_emulator):
    status, reply, _ = call("GET", "/catalog")

    assert status == 200
    assert {"SPM", "SPMe", "DFN"} <= set(reply["models"])
    assert "Chen2020" in reply["parameter_sets"]
    assert reply["limits"]["max_sweep_members"] == 1000


def test_get_schema_is_the_native_jobs_json_schema(published):
    status, reply, _ = call("GET", "/schema")

    assert status == 200
    assert reply["title"] == "Battery simulation job"
    assert "protocol" in reply["required"] and "callback_url" in reply["properties"]


def test_get_healthz_is_ok(published):
    assert call("GET", "/healthz") == (200, {"status": "ok"}, {"Content-Type": "application/json"})


# --------------------------------------------------------------------------
# Sweeps
# --------------------------------------------------------------------------
def test_a_grid_sweep_publishes_one_job_per_member(published, firestore_emulator):
    sweep = {"base": NATIVE_JOB, "vary": {"protocol.c_rate": [0.5, 1, 2]}}

    status, reply, _ = call("POST", "/sweeps", sweep)

    assert status == 202, reply
    assert reply["members"] == 3 and reply["status"] == "queued"
    assert reply["jobIds"] == [f"{reply['sweepId']}-{k:04d}" for k in range(3)]
    assert published.calls == 1  # one publish call: the sweep goes out whole
    assert [e.job_id for e in published.envelopes] == reply["jobIds"]
    for index, (envelope, c_rate) in enumerate(zip(published.envelopes, [0.5, 1, 2])):
        assert envelope.kind == "native"
        assert envelope.sweep == {"sweepId": reply["sweepId"], "index": index, "total": 3,
                                  "values": {"protocol.c_rate": c_rate}}
        assert envelope.job.protocol.c_rate == c_rate
        assert envelope.job.protocol.duration_s == 600  # the rest of the base is kept


def test_a_sweep_with_one_invalid_member_is_rejected_whole(published):
    sweep = {"base": NATIVE_JOB, "vary": {"protocol.c_rate": [0.5, 1, 50]}}  # 50C is above the limit

    status, reply, _ = call("POST", "/sweeps", sweep)

    assert status == 400, reply
    assert any(f.startswith("member 2: ") and "c_rate" in f for f in fields_of(reply)), reply["errors"]
    assert published.calls == 0 and published.envelopes == []


def test_a_sweep_member_pybamm_rejects_is_named(published, firestore_emulator):
    sweep = {"base": NATIVE_JOB, "vary": {"parameter_set": ["Chen2020", "NoSuchCell2031"]}}

    status, reply, _ = call("POST", "/sweeps", sweep)

    assert status == 400, reply
    assert "member 1: parameter_set" in fields_of(reply), reply["errors"]
    assert published.calls == 0


def test_a_sweep_base_may_not_carry_an_id(published):
    status, reply, _ = call("POST", "/sweeps", {"base": {**NATIVE_JOB, "id": "x"}, "vary": {"protocol.c_rate": [1]}})

    assert status == 400
    assert fields_of(reply) == ["base.id"]
    assert published.calls == 0


def test_a_sweep_too_large_to_publish_is_413(monkeypatch, firestore_emulator):
    recorder = Recorder(fail_with=MessageTooLarge("the job is 300000 bytes once encoded; the limit is 262144 bytes"))
    monkeypatch.setattr(shared.delivery.publisher, "publish_encoded", recorder)

    status, reply, _ = call("POST", "/sweeps", {"base": NATIVE_JOB, "vary": {"protocol.c_rate": [0.5, 1]}})

    assert status == 413, reply
    assert reply["errors"] == [{"field": "body", "error": "the job is 300000 bytes once encoded; "
                                                          "the limit is 262144 bytes"}]
    assert recorder.calls == 1


def test_a_real_oversized_job_is_413_before_anything_is_sent(monkeypatch):
    """The real publisher encodes every message before it sends one: an oversized
    member stops the sweep with 413 and the Pub/Sub client is never reached."""
    monkeypatch.setattr(shared.delivery.publisher, "_publisher",
                        lambda: pytest.fail("the Pub/Sub client was reached"))
    monkeypatch.setattr(messages, "MAX_MESSAGE_BYTES", 2000)
    inline = {"type": "drive_cycle", "time_s": list(range(200)), "current_A": [1.0] * 200}

    status, reply, _ = call("POST", "/sweeps", {"base": {**NATIVE_JOB, "protocol": inline},
                                                "vary": {"conditions.initial_soc": [0.5, 0.9]}})

    assert status == 413, reply
    assert "the limit is 2000 bytes" in reply["errors"][0]["error"]


def test_a_publish_failure_is_503_in_json_without_details(monkeypatch, firestore_emulator):
    recorder = Recorder(fail_with=RuntimeError("pubsub exploded at 10.0.0.7"))
    monkeypatch.setattr(shared.delivery.publisher, "publish_encoded", recorder)

    status, reply, _ = call("POST", "/sweeps", {"base": NATIVE_JOB, "vary": {"protocol.c_rate": [0.5, 1]}})

    assert status == 503
    assert reply == {"error": "the job could not be queued; try again"}
    assert recorder.calls == 1
    # the same failure on a legacy route
    assert call("POST", "/cell/simulate", JAVA_CELL)[:2] == (503, reply)


# --------------------------------------------------------------------------
# Found by an adversarial run: checked before anything is accepted, ids that cannot exist
# --------------------------------------------------------------------------
SMALL_NATIVE = {"model": {"name": "SPM"}, "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 60}}


@pytest.mark.parametrize("wait", ["abc", "", "nan", "inf", "-1"])
def test_a_bad_prefer_wait_is_400_before_anything_is_recorded_or_published(published, firestore_emulator, wait):
    status, reply, _ = call("POST", "/jobs", {**SMALL_NATIVE, "id": f"pw-{abs(hash(wait))}"},
                            headers={"Prefer": f"wait={wait}"})
    assert status == 400 and reply["errors"][0]["field"] == "Prefer"
    assert published.envelopes == []
    assert call("GET", f"/jobs/pw-{abs(hash(wait))}")[0] == 404  # never recorded


@pytest.mark.parametrize("job_id", ["nl-test\n", "a" * 128 + "\n", "..", "__x__", "a/b"])
def test_a_native_id_outside_the_rule_is_400(published, job_id):
    status, reply, _ = call("POST", "/jobs", {**SMALL_NATIVE, "id": job_id})
    assert status == 400 and reply["errors"][0]["field"] == "id" and published.envelopes == []


@pytest.mark.parametrize("path", ["/jobs/..", "/jobs/__x__", "/jobs/__x__/result", "/sweeps/__a__"])
def test_an_id_no_job_can_have_is_404_on_the_store_routes(path):
    assert call("GET", path)[0] == 404


@pytest.mark.parametrize("token", ["Li4=", "X194X18=", "!!!!", "YS9i"])
def test_a_page_token_this_service_did_not_give_is_400(firestore_emulator, token):
    status, reply, _ = call("GET", f"/jobs?page_token={token}")
    assert status == 400 and reply["errors"][0]["field"] == "page_token"


def test_a_legacy_id_reused_for_another_request_is_409_not_the_other_job_s_result(
        published, firestore_emulator, monkeypatch):
    monkeypatch.setenv("LEGACY_SYNC_REPLY", "true")
    get_settings.cache_clear()
    job_id = f"reused-{len(published.envelopes)}-{id(published)}"
    assert call("POST", "/cell/simulate", {**JAVA_CELL, "id": job_id}, headers={"Prefer": "respond-async"})[0] == 202
    status, reply, _ = call("POST", "/cell/simulate", {**JAVA_CELL, "id": job_id, "controlCurrent": 1.0})
    assert status == 409 and "another request" in reply["error"]
    status, reply, _ = call("POST", "/drivecycle/simulate", {**JAVA_DRIVE_CYCLE, "id": job_id})
    assert status == 409
    assert [e.job_id for e in published.envelopes] == [job_id]  # published once

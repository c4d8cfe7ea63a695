"""The callback body (legacy superset), target resolution, signing, and delivery
retries against a real HTTP receiver on 127.0.0.1."""


import pytest

from cli.receiver import Receiver
from shared.delivery import callback, signing
from shared.settings import Settings
from tests.conftest import envelope

RESULT = {
    "termination": "event: Minimum voltage [V]", "completed": False, "stoppedEarly": True, "endTime": 20.0,
    "summary": {"Discharged capacity [A.h]": 0.02}, "timings": {"cache": "hit"},
    "columns": {"Time [s]": [0.0, 10.0, 20.0], "Voltage [V]": [4.1, 4.0, 3.9],
                "Current [A]": [5.0, 5.0, 5.0], "Discharge capacity [A.h]": [0.0, 0.01, 0.02]},
}


def test_legacy_body_is_a_superset_of_the_original():
    body = callback.body_for(envelope(), "t0", "t1", 1, result=RESULT)
    assert body["id"] == "job-1"
    assert body["result"][1] == {"time": 10.0, "voltage": 4.0, "current": 5.0, "dcap": 0.01}
    assert body["status"] == "succeeded" and body["simulationType"] == "cell"
    assert body["jobStarted"] == "t0"
    assert body["termination"] == "event: Minimum voltage [V]" and body["stoppedEarly"] is True
    assert body["endTime"] == 20.0 and body["error"] is None


def test_failure_body_names_the_reason_and_has_an_empty_result():
    body = callback.body_for(envelope(), "t0", "t1", 2, error="solver failure: x")
    assert body["status"] == "failed" and body["error"] == "solver failure: x" and body["result"] == []


def test_native_body_is_columnar():
    body = callback.body_for(envelope("native"), "t0", "t1", 1, result=RESULT)
    assert body["columns"]["Voltage [V]"] == [4.1, 4.0, 3.9] and "result" not in body


def test_targets_follow_the_original_paths_and_the_allowlist():
    s = Settings(job_manager_url="http://127.0.0.1:8083/", callback_url_allowlist="https://jm.example.com/hooks")
    assert callback.resolve_target("cell", None, s) == "http://127.0.0.1:8083/simulateCell"
    assert callback.resolve_target("driveCycle", None, s) == "http://127.0.0.1:8083/simulateDriveCycle"
    assert callback.resolve_target("native", "https://jm.example.com/hooks/a", s) == "https://jm.example.com/hooks/a"
    for url in ("http://169.254.169.254/computeMetadata", "https://jm.example.com.evil.net/hooks",
                "https://user:pw@jm.example.com/hooks", "file:///etc/passwd", "https://jm.example.com/other"):
        with pytest.raises(callback.CallbackNotAllowed):
            callback.resolve_target("native", url, s)


def test_signature_verifies_and_tampering_fails():
    body = b'{"id":"x"}'
    headers = signing.sign(body, "k1", now=1000)
    assert signing.verify(body, headers, "k1", now=1010)
    assert not signing.verify(body + b" ", headers, "k1", now=1010)  # tampered body
    assert not signing.verify(body, headers, "k2", now=1010)  # wrong key
    assert not signing.verify(body, {}, "k1", now=1010)  # unsigned
    assert not signing.verify(body, headers, "k1", now=1000 + 301)  # stale


def test_delivery_retries_5xx_then_succeeds_with_idempotency_headers():
    with Receiver(signing_key="secret") as r:
        r.fail_next = 2
        s = Settings(callback_signing_key="secret", callback_total_budget_s=20)
        status = callback.deliver(r.url + "/simulateCell", {"id": "j1", "result": []}, "j1", 3, settings=s)
        assert status == 200
        assert r.results["j1"]["id"] == "j1" and r.rejected == 0
        assert r.deliveries == [("/simulateCell", "j1")]


def test_unsigned_callback_is_refused_by_a_verifying_receiver():
    with Receiver(signing_key="secret") as r:
        with pytest.raises(callback.CallbackRejected):
            callback.deliver(r.url + "/x", {"id": "j2"}, "j2", settings=Settings(callback_signing_key=""))
        assert r.rejected == 1 and "j2" not in r.results


def test_large_native_callbacks_are_gzipped_and_still_verify():
    with Receiver(signing_key="k") as r:
        s = Settings(callback_signing_key="k", callback_gzip_min_bytes=100)
        big = {"id": "j3", "columns": {"Voltage [V]": [3.7] * 1000}}
        callback.deliver(r.url + "/simulationResult", big, "j3", settings=s, compress=True)
        callback.deliver(r.url + "/simulationResult", {**big, "id": "j4"}, "j4", settings=s, compress=False)
        assert r.results["j3"] == big and r.encodings["j3"] == ["gzip"]
        assert r.encodings["j4"] == [""]  # control: compression is what the flag asked for


def test_undeliverable_callback_raises_so_pubsub_redelivers():
    s = Settings(callback_total_budget_s=1.0, callback_timeout_s=0.5)
    with pytest.raises(callback.CallbackUndelivered):
        callback.deliver("http://127.0.0.1:9/none", {"id": "j4"}, "j4", settings=s)


def test_non_finite_numbers_become_null_instead_of_breaking_delivery():
    with Receiver() as r:
        callback.deliver(r.url + "/x", {"id": "j5", "summary": {"Final state of charge": float("nan")},
                                        "columns": {"Voltage [V]": [4.0, float("inf")]}}, "j5")
        assert r.results["j5"]["summary"]["Final state of charge"] is None
        assert r.results["j5"]["columns"]["Voltage [V]"] == [4.0, None]


@pytest.mark.parametrize("url", [
    "https://jm.example.com/hooks/../admin/x",
    "https://jm.example.com/hooks/%2e%2e/admin",
    "https://jm.example.com/hooks/..%2fadmin",
    "https://jm.example.com/hooksevil",
])
def test_allowlist_cannot_be_escaped_with_dot_segments_or_prefix_tricks(url):
    s = Settings(callback_url_allowlist="https://jm.example.com/hooks")
    with pytest.raises(callback.CallbackNotAllowed):
        callback.resolve_target("native", url, s)
    assert callback.resolve_target("native", "https://jm.example.com/hooks/job-1", s) == \
        "https://jm.example.com/hooks/job-1"  # control: inside the prefix is allowed


def test_redirects_are_not_followed():
    """A 307 from the receiver is a permanent answer, not a new target for the signed body."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    hits = []

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            hits.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(307)
            self.send_header("Location", "/elsewhere")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(callback.CallbackRejected):
            callback.deliver(f"http://127.0.0.1:{server.server_address[1]}/cb", {"id": "j6"}, "j6")
        assert hits == ["/cb"]
    finally:
        server.shutdown()


def test_a_job_on_its_last_delivery_attempt_is_reported_failed_not_retried(monkeypatch, firestore_emulator):
    from functions import worker
    from shared.delivery import messages
    from shared.settings import get_settings
    from tests.test_messages import push_body

    with Receiver() as r:
        monkeypatch.setenv("JOB_MANAGER_URL", r.url)
        get_settings.cache_clear()
        try:
            data, attributes = messages.encode(envelope().model_copy(update={"job_id": "job-last-attempt"}))
            event = {**push_body(data, attributes), "deliveryAttempt": 5}
            body = worker.handle(event)
        finally:
            get_settings.cache_clear()
        assert body["status"] == "failed" and "5 delivery attempts" in body["error"]
        assert r.results["job-last-attempt"]["status"] == "failed"
        assert r.paths["job-last-attempt"] == "/simulateCell"

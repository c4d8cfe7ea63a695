"""battery-sim without a receiver: submit --poll, status, result, list and cancel
against the real local stack (emulators + both functions, the job store on the
Firestore emulator), run in process; and the parts that need no stack."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from cli.main import choose_mode, main, report
from local.stack import free_port
from tests.conftest import submit

FAST_NATIVE = {"model": {"name": "SPM"}, "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 60}}
BAD_LEGACY = {"simulationType": "cell", "upperVoltage": 3.0, "lowerVoltage": 2.9}  # starts outside its cut-offs
# an inline profile of 5,000 knots (the inline limit) over 5.5 h, alternating charge and
# discharge: a DFN solve of 10-30 s here, to cancel while it runs
LONG_DRIVE_CYCLE = {"model": {"name": "DFN", "options": {"thermal": "lumped"}}, "conditions": {"initial_soc": 0.6},
                    "protocol": {"type": "drive_cycle", "time_s": [4.0 * k for k in range(5000)],
                                 "current_A": [(1 if k % 2 else -1) * (1 + k % 7) for k in range(5000)]}}
PNG = b"\x89PNG\r\n\x1a\n"


def write(tmp_path, name, body) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(body))
    return str(path)


def wait_finished(stack, job_id, timeout_s=120) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        view = requests.get(f"{stack.submit_url}/jobs/{job_id}", timeout=30).json()
        if view.get("status") in ("succeeded", "failed", "cancelled"):
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.2)


def field(text: str, name: str) -> str:
    """The value on a ``name   value`` line of ``battery-sim status``."""
    found = re.search(rf"^{re.escape(name)} {{2,}}(\S.*)$", text, re.M)
    assert found, (name, text)
    return found.group(1).rstrip()


# --------------------------------------------------------------------------
# No stack needed
# --------------------------------------------------------------------------
@pytest.mark.parametrize("url, callback_url, mode, expected", [
    ("https://europe-west1-proj.cloudfunctions.net/submit-job", None, None, "poll"),
    ("http://10.0.0.7:8084", None, None, "poll"),
    ("http://127.0.0.1:8084", None, None, "receiver"),
    ("http://localhost:8084", None, None, "receiver"),
    ("http://[::1]:8084", None, None, "receiver"),
    ("https://x.run.app", "https://me.example.com/results", None, "receiver"),
    ("http://127.0.0.1:8084", None, "poll", "poll"),
    ("https://x.run.app", None, "receiver", "receiver"),
])
def test_polling_is_the_default_for_a_deployed_service_and_the_receiver_locally(url, callback_url, mode, expected):
    assert choose_mode(url, mode, callback_url) == expected


def test_a_failed_body_gets_no_plot_and_its_whole_error(tmp_path, capsys):
    error = "the cell starts outside its voltage cut-offs: " + "a long explanation " * 6 + "END"
    bodies = [{"id": "bad-1", "status": "failed", "termination": "failed", "error": error, "result": []}]
    assert report(bodies, tmp_path, no_plot=False, title="job bad-1") == 1
    out = capsys.readouterr()
    assert "bad-1: failed: " + " ".join(error.split()) in out.out
    assert "no plot: no job has a series to draw" in out.out
    assert not (tmp_path / "plot.png").exists()
    assert "Warning" not in out.err
    assert (tmp_path / "results.json").exists()
    from cli.plots import plot_results

    assert plot_results([("bad-1", bodies[0])], tmp_path / "direct.png") is None
    assert not (tmp_path / "direct.png").exists()


class _OldService:
    """A service that answers the legacy route synchronously (200, the Job Manager's
    body) whatever Prefer says, and has no job store (every other path: 404)."""

    def __init__(self):
        self.prefer: list[str] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                service.prefer.append(self.headers.get("Prefer", ""))
                rows = [{"time": 60.0 * k, "voltage": 4.1 - 0.01 * k, "current": 5.0, "dcap": 0.08 * k}
                        for k in range(5)]
                self._send(200, {"jobStarted": True, "simulationType": "cell", "simulationResults": rows},
                           {"X-Job-Id": "legacy-1", "X-Job-Status": "succeeded", "Location": "/jobs/legacy-1"})

            def do_GET(self):  # noqa: N802
                self._send(404, {"error": f"no route {self.path}"})

            def _send(self, status, body, headers=None):
                raw = json.dumps(body).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("mode", ["--poll", "--receiver"])
def test_a_synchronous_legacy_reply_is_taken_as_the_finished_job(mode, tmp_path, capsys):
    with _OldService() as service:
        rc = main(["submit", write(tmp_path, "cell.json", {"simulationType": "cell", "time": 0.1}), mode,
                   "--url", service.url, "--listen", f"127.0.0.1:{free_port()}", "--out", str(tmp_path),
                   "--timeout", "5"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert service.prefer == ["respond-async"]
    assert "legacy-1" in out.out and "succeeded" in out.out
    (body,) = json.loads((tmp_path / "results.json").read_text())
    assert body["id"] == "legacy-1" and len(body["result"]) == 5
    assert (tmp_path / "plot.png").read_bytes()[:8] == PNG


# --------------------------------------------------------------------------
# Against the stack
# --------------------------------------------------------------------------
@contextmanager
def port_taken():
    """A port something else listens on (and never answers): a receiver cannot start there."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


@pytest.mark.slow
def test_submit_poll_gets_the_results_from_the_store_with_no_receiver(stack, tmp_path, capsys):
    job = write(tmp_path, "job.json", FAST_NATIVE)
    with port_taken() as port:
        # positive control: a receiver cannot run on this port, so the receiver path fails here
        assert main(["submit", job, "--receiver", "--url", stack.submit_url, "--listen", f"127.0.0.1:{port}",
                     "--out", str(tmp_path / "control")]) == 2
        assert "cannot listen" in capsys.readouterr().err
        rc = main(["submit", job, "--poll", "--url", stack.submit_url, "--listen", f"127.0.0.1:{port}",
                   "--out", str(tmp_path / "out"), "--timeout", "120"])
    out = capsys.readouterr()
    assert rc == 0, out.out + out.err
    assert "polling" in out.err and "1/1 done (succeeded)" in out.err
    (body,) = json.loads((tmp_path / "out" / "results.json").read_text())
    assert body["status"] == "succeeded" and body["termination"] == "final time"
    assert body["id"] in out.out and len(body["columns"]["Time [s]"]) > 10
    csv_lines = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("job,sweep index,Time [s],Voltage [V]")
    assert len(csv_lines) == 1 + len(body["columns"]["Time [s]"])
    assert (tmp_path / "out" / "plot.png").read_bytes()[:8] == PNG
    # the result the CLI saved is the one in the store
    stored = requests.get(f"{stack.submit_url}/jobs/{body['id']}/result", timeout=30).json()
    assert stored == body


@pytest.mark.slow
def test_submit_poll_of_a_sweep_counts_members_done(stack, tmp_path, capsys):
    sweep = {"base": FAST_NATIVE, "vary": {"protocol.c_rate": [0.5, 1, 2]}}
    rc = main(["submit", write(tmp_path, "sweep.json", sweep), "--poll", "--url", stack.submit_url,
               "--out", str(tmp_path), "--timeout", "180"])
    out = capsys.readouterr()
    assert rc == 0, out.out + out.err
    assert "3/3 done" in out.err
    rows = [line for line in out.out.splitlines() if line.startswith("#")]
    assert len(rows) == 3 and all("succeeded" in r for r in rows) and "c_rate=2" in rows[2]
    bodies = json.loads((tmp_path / "results.json").read_text())
    assert [b["sweep"]["index"] for b in bodies] == [0, 1, 2]


@pytest.mark.slow
def test_a_failed_job_writes_no_plot_and_prints_its_whole_error(stack, tmp_path, capsys):
    rc = main(["submit", write(tmp_path, "bad.json", BAD_LEGACY), "--poll", "--url", stack.submit_url,
               "--out", str(tmp_path), "--timeout", "120"])
    out = capsys.readouterr()
    assert rc == 1, out.out + out.err
    (body,) = json.loads((tmp_path / "results.json").read_text())
    view = requests.get(f"{stack.submit_url}/jobs/{body['id']}", timeout=30).json()
    assert view["status"] == "failed" and len(view["error"]) > 48  # longer than the table's cell
    assert f"{body['id']}: failed: {' '.join(view['error'].split())}" in out.out.splitlines()
    assert "no plot: no job has a series to draw" in out.out
    assert not (tmp_path / "plot.png").exists()
    assert "Warning" not in out.err


@pytest.fixture(scope="module")
def finished(stack):
    """A finished native job and a finished sweep of three, submitted straight to the service."""
    job_id = submit(stack, "/jobs", FAST_NATIVE).json()["jobId"]
    sweep = submit(stack, "/sweeps", {"base": FAST_NATIVE, "vary": {"protocol.duration_s": [30, 40, 50]}}).json()
    for i in [job_id, *sweep["jobIds"]]:
        wait_finished(stack, i)
    return job_id, sweep["sweepId"], sweep["jobIds"]


@pytest.mark.slow
def test_status_of_a_job_and_of_a_sweep(stack, finished, capsys):
    job_id, sweep_id, members = finished
    assert main(["status", job_id, "--url", stack.submit_url]) == 0
    text = capsys.readouterr().out
    assert field(text, "job") == job_id and field(text, "kind") == "native"
    assert field(text, "status") == "succeeded: final time"
    assert field(text, "end time") == "60 s"
    assert field(text, "callback").startswith("delivered (HTTP 200")
    assert field(text, "result").startswith(f"/jobs/{job_id}/result")
    assert "Discharged capacity [A.h]: 0.08333" in text

    assert main(["status", job_id, "--json", "--url", stack.submit_url]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["jobId"] == job_id and view["status"] == "succeeded" and view["job"]["model"]["name"] == "SPM"

    assert main(["status", sweep_id, "--url", stack.submit_url]) == 0  # not a job: tried as a sweep
    text = capsys.readouterr().out
    assert "3/3 finished (succeeded 3)" in text
    assert all(m in text for m in members)

    assert main(["status", "no-such-id", "--url", stack.submit_url]) == 2
    assert "no job or sweep no-such-id" in capsys.readouterr().err


@pytest.mark.slow
def test_result_fetches_tabulates_saves_and_plots(stack, finished, tmp_path, capsys):
    job_id, sweep_id, members = finished
    assert main(["result", job_id, "--out", str(tmp_path / "job"), "--url", stack.submit_url]) == 0
    out = capsys.readouterr().out
    assert job_id in out and "final time" in out
    (body,) = json.loads((tmp_path / "job" / "results.json").read_text())
    assert body == requests.get(f"{stack.submit_url}/jobs/{job_id}/result", timeout=30).json()
    assert (tmp_path / "job" / "plot.png").read_bytes()[:8] == PNG

    assert main(["result", sweep_id, "--sweep", "--out", str(tmp_path / "sweep"), "--no-plot",
                 "--url", stack.submit_url]) == 0
    out = capsys.readouterr().out
    assert len([line for line in out.splitlines() if line.startswith("#")]) == 3
    assert [b["id"] for b in json.loads((tmp_path / "sweep" / "results.json").read_text())] == members
    assert not (tmp_path / "sweep" / "plot.png").exists()

    assert main(["result", job_id, "--csv", "--out", str(tmp_path / "csv"), "--url", stack.submit_url]) == 0
    csv_text = capsys.readouterr().out
    assert csv_text.splitlines()[0].startswith("Time [s],Voltage [V]")
    assert len(csv_text.splitlines()) == 1 + len(body["columns"]["Time [s]"])
    assert not (tmp_path / "csv").exists()


@pytest.mark.slow
def test_list_filters_pages_and_follows_next_page_tokens(stack, finished, capsys):
    job_id, sweep_id, members = finished
    assert main(["list", "--sweep", sweep_id, "--limit", "1", "--url", stack.submit_url]) == 0
    out = capsys.readouterr().out
    assert sum(m in out for m in members) == 1 and "1 job; more: --all or --page-token" in out

    assert main(["list", "--sweep", sweep_id, "--limit", "1", "--all", "--url", stack.submit_url]) == 0
    out = capsys.readouterr().out
    rows = [line.split()[0] for line in out.splitlines() if line.startswith(sweep_id)]
    assert sorted(rows) == members  # every member once, over three pages
    assert "3 jobs" in out and "more:" not in out

    assert main(["list", "--status", "succeeded", "--limit", "200", "--json", "--url", stack.submit_url]) == 0
    listed = json.loads(capsys.readouterr().out)["jobs"]
    assert job_id in [j["jobId"] for j in listed] and all(j["status"] == "succeeded" for j in listed)
    assert all("job" not in j for j in listed)


@pytest.mark.slow
def test_cancel_queued_running_finished_and_unknown_jobs_and_a_sweep(stack, tmp_path, capsys):
    url = ["--url", stack.submit_url]
    stack.stop_process("worker", timeout_s=0)  # nothing takes the jobs: they stay queued
    try:
        queued = submit(stack, "/jobs", FAST_NATIVE).json()["jobId"]
        sweep = submit(stack, "/sweeps", {"base": FAST_NATIVE, "vary": {"protocol.c_rate": [0.5, 1]}}).json()
        assert main(["cancel", queued, *url]) == 0
        assert capsys.readouterr().out.strip() == f"job {queued} cancelled (it had not started)"
        assert main(["cancel", sweep["sweepId"], "--sweep", *url]) == 0
        assert "2 members cancelled or stopping, 0 already finished" in capsys.readouterr().out
        # cancelled before it ran: no stored result yet; the status view stands in for it
        assert main(["result", queued, "--out", str(tmp_path), *url]) == 1
        out = capsys.readouterr().out
        assert "cancelled" in out and "no plot" in out
        assert main(["list", "--sweep", sweep["sweepId"], "--status", "cancelled", *url]) == 0
        assert "2 jobs" in capsys.readouterr().out
    finally:
        stack.restart_worker()
    assert main(["cancel", queued, *url]) == 1
    assert f"job {queued} is already cancelled" in capsys.readouterr().out
    assert main(["cancel", sweep["sweepId"], "--sweep", *url]) == 1
    assert "0 members cancelled or stopping, 2 already finished; nothing to cancel" in capsys.readouterr().out
    assert main(["cancel", "no-such-job", *url]) == 2
    assert "no job no-such-job (for a sweep, add --sweep)" in capsys.readouterr().err

    reply = submit(stack, "/jobs", LONG_DRIVE_CYCLE)
    assert reply.status_code == 202, reply.text
    running = reply.json()["jobId"]
    deadline = time.monotonic() + 60
    while requests.get(f"{stack.submit_url}/jobs/{running}", timeout=30).json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert main(["cancel", running, *url]) == 0
    assert "is running: cancel requested" in capsys.readouterr().out
    assert wait_finished(stack, running, 60)["status"] == "cancelled"
    assert main(["status", running, *url]) == 0
    assert field(capsys.readouterr().out, "status") == "cancelled"

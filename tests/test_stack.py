"""`make dev`'s stack: comes up on the configured ports, and Ctrl-C stops every
child — including both emulators' Java processes, which outlive a killed gcloud.
(A SIGKILLed stack and a taken port: tests/test_stack_children.py.)"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from local.stack import free_port
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def processes_mentioning(text: str) -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            out.append(f"{pid}: {cmdline[:120]}")
    return out


def test_ctrl_c_stops_the_emulators_java_processes_and_both_functions():
    ports = {"PUBSUB_EMULATOR_PORT": free_port(), "FIRESTORE_EMULATOR_PORT": free_port(),
             "SUBMIT_PORT": free_port(), "WORKER_PORT": free_port()}
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "JOB_MANAGER_URL": "http://127.0.0.1:9"}
    proc = subprocess.Popen([sys.executable, "-m", "local.stack"], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        banner = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            banner.append(line)
            if "Ctrl-C stops everything" in line or not line:
                break
        text = "".join(banner)
        assert f"http://127.0.0.1:{ports['SUBMIT_PORT']}" in text, text
        assert requests.get(f"http://127.0.0.1:{ports['SUBMIT_PORT']}/healthz", timeout=5).status_code == 200
        emulator_flag = f"--port={ports['PUBSUB_EMULATOR_PORT']}"
        assert any("java" in p for p in processes_mentioning(emulator_flag))
        assert f"127.0.0.1:{ports['FIRESTORE_EMULATOR_PORT']}" in text, text
        assert requests.get(f"http://127.0.0.1:{ports['FIRESTORE_EMULATOR_PORT']}/", timeout=5).text.strip() == "Ok"
        firestore_flag = f"--port={ports['FIRESTORE_EMULATOR_PORT']}"
        assert any("java" in p for p in processes_mentioning(firestore_flag))
        worker_flag = f"--port {ports['WORKER_PORT']}"
        assert processes_mentioning(worker_flag)  # control: the check below can see the worker

        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
        assert proc.wait(60) == 0
        time.sleep(1)
        assert processes_mentioning(emulator_flag) == []
        assert processes_mentioning(firestore_flag) == []
        assert processes_mentioning(worker_flag) == []
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{ports['SUBMIT_PORT']}/healthz", timeout=2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

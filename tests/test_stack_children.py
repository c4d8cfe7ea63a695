"""The stack's children die with it however it ends, and a taken port is named.

- ``python -m local.stack`` (make dev) SIGKILLed alone — not its process group —
  leaves no process behind within seconds: not the emulators' Java processes
  (grandchildren, via gcloud), not the functions' gunicorn workers, and no
  listener on any of its ports.
- The same for a stack that is only a Python process with plain ``sh``/``sleep``
  children and grandchildren (no Cloud SDK needed; fast).
- A port that is already taken stops ``python -m local.stack`` at once, with a
  message naming the port and its setting.
- ``pause_firestore()`` / ``resume_firestore()``: a store outage that keeps the data.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import requests

from local.stack import Stack, free_port, port_in_use
from tests.conftest import REPO

PORT_VARS = ("SUBMIT_PORT", "WORKER_PORT", "PUBSUB_EMULATOR_PORT", "FIRESTORE_EMULATOR_PORT")


# --------------------------------------------------------------------------
# /proc helpers (Linux)
# --------------------------------------------------------------------------
def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) of a process, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat[stat.rfind(")") + 2:].split()  # comm may hold spaces and parentheses
    return rest[0], int(rest[19])


def alive(pid: int, start: int) -> bool:
    """The same process (pid and start time) still exists and is not a zombie."""
    st = _stat(pid)
    return st is not None and st[1] == start and st[0] not in ("Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if int(rest[2]) == pgid and rest[0] not in ("Z", "X"):
            out.append(int(entry))
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def marked(marker: str) -> dict[int, int]:
    """pid -> start time of every live process whose environment holds ``marker``
    (the stack passes its environment on to every child and grandchild)."""
    needle = marker.encode() + b"\0"
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if needle in env + b"\0":
            st = _stat(int(entry))
            if st is not None and st[0] not in ("Z", "X"):
                out[int(entry)] = st[1]
    return out


def listening_pids(port: int) -> set[int]:
    """Pids holding a listening TCP socket on ``port`` (IPv4 or IPv6, any address)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A = LISTEN
                inodes.add(fields[9])
    if not inodes:
        return set()
    targets = {f"socket:[{i}]" for i in inodes}
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}") in targets:
                    pids.add(int(entry))
                    break
            except OSError:
                continue
    return pids


def distinct_free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


def kill_marked(marker: str) -> None:
    """Clean up after a failed test: only processes carrying this test's marker."""
    for pid in marked(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def survivors_after(before: dict[int, int], marker: str, timeout_s: float) -> tuple[list[str], float]:
    """Wait up to ``timeout_s`` for every process in ``before`` (and every marked one)
    to be gone; return what is left (pid: cmdline) and the seconds waited."""
    t0 = time.monotonic()
    while True:
        left = {pid for pid, start in before.items() if alive(pid, start)} | set(marked(marker))
        if not left or time.monotonic() - t0 > timeout_s:
            return [f"{pid}: {cmdline(pid)[:160]}" for pid in sorted(left)], time.monotonic() - t0
        time.sleep(0.1)


# --------------------------------------------------------------------------
# Fast: the watchdog alone, with plain processes
# --------------------------------------------------------------------------
def test_sigkilled_stack_takes_its_children_and_grandchildren_along(tmp_path):
    """A Python process that spawns through Stack._spawn (children in their own
    sessions, each with a grandchild) is SIGKILLed: everything it started goes."""
    marker = f"STACK_CHILDREN_TEST=fast-{uuid.uuid4().hex}"
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from local.stack import Stack
        stack = Stack(log_dir=Path({str(tmp_path)!r}))
        for name in ("a", "b"):
            stack._spawn(name, ["sh", "-c", "sleep 300 & sleep 300; wait"], stack.env())
        # a group that ignores SIGTERM: the watchdog must SIGKILL it after its grace
        stack._spawn("stubborn", ["sh", "-c", "trap '' TERM; sleep 300 & sleep 300; wait"], stack.env())
        print("up", flush=True)
        time.sleep(300)
    """)
    env = {**os.environ, marker.split("=")[0]: marker.split("=", 1)[1]}
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        deadline = time.monotonic() + 5
        while True:  # the stack, its watchdog, 3 x (sh + 2 sleeps), once the shells have forked
            before = marked(marker)
            sleeps = [pid for pid in before if cmdline(pid).startswith("sleep")]
            if len(sleeps) == 6 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(sleeps) == 6, [cmdline(p) for p in before]  # control: the scan sees the grandchildren
        assert len(before) == 11, [cmdline(p) for p in before]

        os.kill(proc.pid, signal.SIGKILL)  # the stack alone, not its group
        proc.wait(5)
        left, waited = survivors_after(before, marker, timeout_s=10)
        assert left == [], left
        assert waited < 6, waited  # grace 3 s for the stubborn group, then SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        kill_marked(marker)


def test_a_stopped_stack_leaves_nothing_and_ends_its_watchdog(tmp_path):
    stack = Stack(log_dir=tmp_path)
    proc = stack._spawn("a", ["sh", "-c", "sleep 300 & sleep 300; wait"], stack.env())
    watchdog = stack._watchdog
    assert watchdog is not None and watchdog.poll() is None
    stack.stop()
    assert watchdog.poll() is not None
    assert group_members(proc.pid) == []  # zombies aside: init may not have reaped the orphans yet


def test_the_firestore_emulator_port_is_read_like_the_others_and_passed_to_both_functions(monkeypatch):
    monkeypatch.setenv("FIRESTORE_EMULATOR_PORT", "18087")
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "elsewhere:1")
    stack = Stack.from_env()
    assert stack.firestore_port == 18087 and stack.firestore_host == "127.0.0.1:18087"
    assert stack.env()["FIRESTORE_EMULATOR_HOST"] == "127.0.0.1:18087"
    assert stack.ports()["FIRESTORE_EMULATOR_PORT"] == 18087
    assert Stack().firestore_port == 8087  # the default, Settings().firestore_emulator_port


def test_check_ports_names_each_taken_port_and_its_setting():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert port_in_use(port)
        stack = Stack.on_free_ports(worker_port=port)
        with pytest.raises(RuntimeError, match=rf"port {port} \(WORKER_PORT\) is already in use on 127\.0\.0\.1"):
            stack.check_ports()
    assert not port_in_use(port)
    Stack.on_free_ports().check_ports()  # free ports pass


# --------------------------------------------------------------------------
# Slow: make dev's entry point with the real emulators and functions
# --------------------------------------------------------------------------
def _stack_env(ports: dict[str, int], marker: str) -> dict[str, str]:
    key, value = marker.split("=", 1)
    return {**os.environ, **{k: str(v) for k, v in ports.items()},
            "JOB_MANAGER_URL": "http://127.0.0.1:9", key: value}


@pytest.mark.slow
def test_make_dev_sigkilled_alone_leaves_no_process_and_frees_its_ports():
    ports = dict(zip(PORT_VARS, distinct_free_ports(len(PORT_VARS))))
    marker = f"STACK_CHILDREN_TEST=dev-{uuid.uuid4().hex}"
    proc = subprocess.Popen([sys.executable, "-m", "local.stack"], cwd=REPO, env=_stack_env(ports, marker),
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        banner = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120:
            line = proc.stdout.readline()
            banner.append(line)
            if "Ctrl-C stops everything" in line or not line:
                break
        text = "".join(banner)
        assert "Ctrl-C stops everything" in text, text
        assert f"Firestore emulator  127.0.0.1:{ports['FIRESTORE_EMULATOR_PORT']}" in text, text
        up_s = time.monotonic() - t0

        # positive controls: every port has a listener, and the marker finds it
        owners = {name: listening_pids(port) for name, port in ports.items()}
        before = marked(marker)  # after the owners: a gunicorn worker may just have been forked
        for name, pids in owners.items():
            assert pids, f"nothing listens on {name}={ports[name]}"
            assert pids <= set(before), (name, pids, sorted(before))
        javas = [pid for pid in before if "java" in cmdline(pid)]
        assert len(javas) >= 2, [cmdline(p)[:120] for p in before]  # both emulators' Java processes
        assert proc.pid in before

        os.kill(proc.pid, signal.SIGKILL)  # the stack alone: its children are in other sessions
        proc.wait(5)
        left, waited = survivors_after(before, marker, timeout_s=10)
        assert left == [], left
        listening = {name: listening_pids(port) for name, port in ports.items()}
        assert not any(listening.values()), listening
        assert not any(port_in_use(port) for port in ports.values())
        print(f"stack up in {up_s:.1f} s; {len(before)} processes gone {waited:.1f} s after SIGKILL")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        kill_marked(marker)


@pytest.mark.slow
def test_make_dev_fails_at_once_naming_a_taken_port():
    ports = dict(zip(PORT_VARS, distinct_free_ports(len(PORT_VARS))))
    marker = f"STACK_CHILDREN_TEST=taken-{uuid.uuid4().hex}"
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        ports["SUBMIT_PORT"] = held.getsockname()[1]
        t0 = time.monotonic()
        try:
            done = subprocess.run([sys.executable, "-m", "local.stack"], cwd=REPO, env=_stack_env(ports, marker),
                                  capture_output=True, text=True, timeout=60)
        finally:
            kill_marked(marker)
        took = time.monotonic() - t0
    assert done.returncode != 0
    expected = f"port {ports['SUBMIT_PORT']} (SUBMIT_PORT) is already in use on 127.0.0.1"
    assert expected in done.stderr, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert "starting" not in done.stdout  # nothing was started
    assert took < 20, took


@pytest.mark.slow
def test_pause_firestore_is_an_outage_that_keeps_the_data(tmp_path, monkeypatch):
    stack = Stack.on_free_ports(log_dir=tmp_path)
    try:
        stack.start_firestore()
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", stack.firestore_host)
        from google.cloud import firestore

        client = firestore.Client(project=stack.project)
        doc = client.collection("pause-test").document("one")
        doc.set({"n": 1})

        stack.pause_firestore()
        with pytest.raises(requests.RequestException):
            requests.get(f"http://{stack.firestore_host}/", timeout=1.5)
        javas = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
                 if "java" in cmdline(pid) and f"--port={stack.firestore_port}" in cmdline(pid)]
        assert javas and all(_stat(pid)[0] == "T" for pid in javas)  # stopped, not gone

        stack.resume_firestore()
        assert requests.get(f"http://{stack.firestore_host}/", timeout=5).text.strip() == "Ok"
        assert doc.get().to_dict() == {"n": 1}  # the in-memory data survived the outage
        client.close()

        stack.pause_firestore()  # stopping a paused emulator still stops it
    finally:
        stack.stop()
    time.sleep(0.5)
    assert [p for p in map(int, filter(str.isdigit, os.listdir("/proc")))
            if f"--port={stack.firestore_port}" in cmdline(p)] == []

"""The local stack: the official Pub/Sub and Firestore emulators and both
functions as real ``functions-framework`` processes on 127.0.0.1.

    python -m local.stack            # foreground; Ctrl-C stops every child

Ports, names and URLs come from ``shared.settings`` (``SUBMIT_PORT``,
``WORKER_PORT``, ``PUBSUB_EMULATOR_PORT``, ``FIRESTORE_EMULATOR_PORT``,
``JOB_MANAGER_URL``, ``GOOGLE_CLOUD_PROJECT``, ``PUBSUB_TOPIC``,
``MAX_DELIVERY_ATTEMPTS``). Before starting, every port the stack binds is
checked; a taken one fails at once, naming the port and its setting.

Each child runs in its own process group, so stopping the stack also stops
an emulator's Java process (which outlives a killed ``gcloud`` parent) and the
worker's gunicorn workers and solver processes. Children also die with the
stack however it ends (SIGKILL included): a small watchdog process (``_WATCHDOG``,
in its own session) holds the read end of a pipe only the stack can write to;
the stack tells it each child's process group, and when the pipe reaches EOF —
the stack has exited, by whatever means — it SIGTERMs every group still
registered and SIGKILLs it after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from shared.settings import Settings

_DEFAULTS = Settings.model_construct()  # the defaults alone (no environment)
LOCAL_MAX_DELIVERY_ATTEMPTS = 20
REPO = Path(__file__).resolve().parent.parent
KIT_DRIVE_CYCLES = REPO.parent / "shared" / "data" / "drive_cycles"


def with_kit_drive_cycles(path: str) -> str:
    """A DRIVE_CYCLE_PATH value that also holds the kit's drive-cycle folder beside the
    checkout (when there is one), added once."""
    parts = [p for p in path.split(os.pathsep) if p]
    if KIT_DRIVE_CYCLES.is_dir() and str(KIT_DRIVE_CYCLES) not in parts:
        parts.append(str(KIT_DRIVE_CYCLES))
    return os.pathsep.join(parts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortInUse(RuntimeError):
    """A port the stack needs is already taken (``str()`` names each port and its setting)."""


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``host:port`` cannot be bound — as the servers bind it (SO_REUSEADDR,
    so a port in TIME_WAIT still counts as free; a listener, on 127.0.0.1 or any
    address, does not)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


# The watchdog: run as ``python -c _WATCHDOG GRACE_S`` with the read end of the
# stack's pipe as stdin. Lines "+PGID" / "-PGID" register / forget a child's
# process group. On EOF (the stack is gone, however it ended), SIGTERM or SIGHUP,
# it SIGTERMs (and SIGCONTs, in case one is paused) every registered group, waits
# up to GRACE_S for them to empty, then SIGKILLs what is left. Standard library only.
_WATCHDOG = r"""
import os, signal, sys, time
grace = float(sys.argv[1])
groups = set()

def alive(g):
    try:
        os.killpg(g, 0)
        return True
    except OSError:
        return False

def finish(*_):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGCONT):
        for g in groups:
            try:
                os.killpg(g, sig)
            except OSError:
                pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(g) for g in groups):
        time.sleep(0.1)
    for g in groups:
        try:
            os.killpg(g, signal.SIGKILL)
        except OSError:
            pass
    os._exit(0)

signal.signal(signal.SIGTERM, finish)
signal.signal(signal.SIGHUP, finish)
signal.signal(signal.SIGINT, signal.SIG_IGN)
for line in sys.stdin.buffer:
    line = line.strip()
    if line[:1] == b"+":
        groups.add(int(line[1:]))
    elif line[:1] == b"-":
        groups.discard(int(line[1:]))
finish()
"""


def wait_for(url: str, timeout_s: float, proc: subprocess.Popen | None = None, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what or url} exited with code {proc.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise TimeoutError(f"{what or url} not ready after {timeout_s} s")


@dataclass
class Stack:
    project: str = _DEFAULTS.google_cloud_project
    topic: str = _DEFAULTS.pubsub_topic
    emulator_port: int = _DEFAULTS.pubsub_emulator_port  # the Pub/Sub emulator
    firestore_port: int = _DEFAULTS.firestore_emulator_port  # the Firestore emulator (the job store)
    submit_port: int = _DEFAULTS.submit_port
    worker_port: int = _DEFAULTS.worker_port
    dead_letter_port: int = _DEFAULTS.dead_letter_port
    job_manager_url: str = _DEFAULTS.job_manager_url
    worker_processes: int = 2
    worker_threads: int = 2
    # The subscription's dead-letter limit, and the worker's. Locally a push refused by a
    # busy worker process costs a delivery attempt too (Cloud Functions never sends one
    # to a busy instance), so the local default is higher than the cloud's 5.
    max_delivery_attempts: int = LOCAL_MAX_DELIVERY_ATTEMPTS
    log_dir: Path = REPO / ".stack"
    extra_env: dict = field(default_factory=dict)
    procs: dict = field(default_factory=dict)
    requeue_every_s: float = 15.0  # 0: no periodic requeue of stuck jobs
    watchdog_grace_s: float = 3.0  # after the stack is gone: SIGTERM, this long, then SIGKILL
    _watchdog: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _watchdog_fd: int | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_env(cls, **overrides) -> "Stack":
        s = Settings()
        values = dict(
            emulator_port=s.pubsub_emulator_port, firestore_port=s.firestore_emulator_port,
            submit_port=s.submit_port, worker_port=s.worker_port, dead_letter_port=s.dead_letter_port,
            job_manager_url=s.job_manager_url, project=s.google_cloud_project, topic=s.pubsub_topic,
            max_delivery_attempts=(s.max_delivery_attempts if "MAX_DELIVERY_ATTEMPTS" in os.environ
                                   else LOCAL_MAX_DELIVERY_ATTEMPTS),
        )
        values.update(overrides)
        return cls(**values)

    @classmethod
    def on_free_ports(cls, **overrides) -> "Stack":
        values = dict(emulator_port=free_port(), firestore_port=free_port(), submit_port=free_port(),
                      worker_port=free_port(), dead_letter_port=free_port())
        values.update(overrides)
        return cls(**values)

    # -- URLs ---------------------------------------------------------------
    @property
    def emulator_host(self) -> str:
        return f"127.0.0.1:{self.emulator_port}"

    @property
    def firestore_host(self) -> str:
        return f"127.0.0.1:{self.firestore_port}"

    @property
    def submit_url(self) -> str:
        return f"http://127.0.0.1:{self.submit_port}"

    @property
    def worker_url(self) -> str:
        return f"http://127.0.0.1:{self.worker_port}"

    @property
    def dead_letter_url(self) -> str:
        return f"http://127.0.0.1:{self.dead_letter_port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PUBSUB_EMULATOR_HOST": self.emulator_host,
            "FIRESTORE_EMULATOR_HOST": self.firestore_host,
            "GOOGLE_CLOUD_PROJECT": self.project,
            "PUBSUB_TOPIC": self.topic,
            "JOB_MANAGER_URL": self.job_manager_url,
            "DRIVE_CYCLE_PATH": with_kit_drive_cycles(os.environ.get("DRIVE_CYCLE_PATH", "")),
            "MAX_DELIVERY_ATTEMPTS": str(self.max_delivery_attempts),
            "PYBAMM_DISABLE_TELEMETRY": "true",
            "PYTHONUNBUFFERED": "1",
            **{k: str(v) for k, v in self.extra_env.items()},
        }

    # -- lifecycle ----------------------------------------------------------
    def ports(self) -> dict[str, int]:
        """Every port the stack binds on 127.0.0.1, by the setting that names it."""
        return {"PUBSUB_EMULATOR_PORT": self.emulator_port, "FIRESTORE_EMULATOR_PORT": self.firestore_port,
                "SUBMIT_PORT": self.submit_port, "WORKER_PORT": self.worker_port,
                "DEAD_LETTER_PORT": self.dead_letter_port}

    def check_ports(self) -> None:
        """Raise PortInUse naming every needed port that is already taken."""
        taken = [f"port {port} ({name}) is already in use on 127.0.0.1: stop what holds it "
                 f"(an earlier make dev?) or set {name} to a free port"
                 for name, port in self.ports().items() if port_in_use(port)]
        if taken:
            raise PortInUse("\n".join(taken))

    def _watch(self, line: str) -> None:
        """Tell the watchdog (started on first use) to register / forget a process group."""
        if self._watchdog is None or self._watchdog.poll() is not None:
            read_fd, write_fd = os.pipe()  # both non-inheritable: no other child holds the write end
            try:
                self._watchdog = subprocess.Popen(
                    [sys.executable, "-c", _WATCHDOG, str(self.watchdog_grace_s)], stdin=read_fd,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            except BaseException:
                os.close(write_fd)
                raise
            finally:
                os.close(read_fd)
            self._watchdog_fd = write_fd
        os.write(self._watchdog_fd, f"{line}\n".encode())

    def _stop_watchdog(self) -> None:
        if self._watchdog_fd is not None:
            os.close(self._watchdog_fd)  # EOF: it kills any group still registered, then exits
            self._watchdog_fd = None
        if self._watchdog is not None:
            try:
                self._watchdog.wait(self.watchdog_grace_s + 5)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait()
            self._watchdog = None

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{name}-{os.getpid()}.log", "ab") as out:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs[name] = proc
        try:
            self._watch(f"+{proc.pid}")  # its own session: pid == process group id
        except BaseException:
            self.stop_process(name, timeout_s=0)
            raise
        return proc

    def start(self) -> "Stack":
        self.check_ports()
        try:
            self.start_emulators()
            self.create_topics()
            self.start_functions()
        except BaseException:
            self.stop()
            raise
        return self

    def _gcloud(self) -> str:
        gcloud = shutil.which("gcloud")
        if gcloud is None:
            raise RuntimeError("gcloud not found: install the Cloud SDK and its pubsub-emulator "
                               "and cloud-firestore-emulator components")
        return gcloud

    def _spawn_pubsub(self) -> subprocess.Popen:
        return self._spawn("emulator", [self._gcloud(), "beta", "emulators", "pubsub", "start",
                                        f"--host-port={self.emulator_host}", f"--project={self.project}"],
                           self.env())

    def _spawn_firestore(self) -> subprocess.Popen:
        return self._spawn("firestore", [self._gcloud(), "emulators", "firestore", "start",
                                         f"--host-port={self.firestore_host}"],
                           self.env())

    def start_emulators(self) -> None:
        """Both emulators, started together and then waited for (each takes a few seconds)."""
        pubsub, firestore = self._spawn_pubsub(), self._spawn_firestore()
        wait_for(f"http://{self.emulator_host}/", 60, pubsub, "Pub/Sub emulator")
        wait_for(f"http://{self.firestore_host}/", 60, firestore, "Firestore emulator")

    def start_emulator(self) -> None:
        """The Pub/Sub emulator alone."""
        wait_for(f"http://{self.emulator_host}/", 60, self._spawn_pubsub(), "Pub/Sub emulator")

    def start_firestore(self) -> None:
        """The Firestore emulator alone."""
        wait_for(f"http://{self.firestore_host}/", 60, self._spawn_firestore(), "Firestore emulator")

    def pause_firestore(self) -> None:
        """A job-store outage that keeps the data: SIGSTOP the Firestore emulator's whole
        process group (gcloud and its Java process). Requests to it hang until
        ``resume_firestore()``; a restarted emulator would come back empty."""
        os.killpg(self.procs["firestore"].pid, signal.SIGSTOP)

    def resume_firestore(self) -> None:
        os.killpg(self.procs["firestore"].pid, signal.SIGCONT)

    def create_topics(self) -> None:
        os.environ["PUBSUB_EMULATOR_HOST"] = self.emulator_host
        from local import pubsub_setup

        pubsub_setup.create(self.project, self.topic, push_endpoint=self.worker_url + "/",
                            max_delivery_attempts=self.max_delivery_attempts,
                            dead_letter_endpoint=self.dead_letter_url + "/")

    def start_functions(self) -> None:
        ff = str(Path(sys.executable).with_name("functions-framework"))
        env = self.env()
        submit = self._spawn("submit", [ff, "--target", "submit_job", "--signature-type", "http",
                                        "--host", "127.0.0.1", "--port", str(self.submit_port)],
                             {**env, "WORKERS": "1"})
        worker = self._spawn_worker(env)
        dead = self._spawn("dead-letters", [ff, "--target", "record_dead_letter", "--signature-type", "cloudevent",
                                            "--host", "127.0.0.1", "--port", str(self.dead_letter_port)],
                           {**env, "WORKERS": "1", "THREADS": "2"})
        wait_for(self.submit_url + "/healthz", 60, submit, "submit function")
        wait_for(self.worker_url + "/", 60, worker, "worker function")
        wait_for(self.dead_letter_url + "/", 60, dead, "dead-letter function")
        if self.requeue_every_s:
            self.start_requeue()

    def stop_process(self, name: str, timeout_s: float = 10) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            os.killpg(proc.pid, signal.SIGCONT)  # a paused group (pause_firestore) acts on it too
        except ProcessLookupError:
            pass
        else:
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
            try:  # the whole group, e.g. the emulator's Java child or the solver processes
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(5)
        if self._watchdog_fd is not None and self._watchdog.poll() is None:
            try:  # the group is gone and its id may be reused: the watchdog forgets it
                os.write(self._watchdog_fd, f"-{proc.pid}\n".encode())
            except OSError:
                pass

    def _requeue_loop(self) -> None:
        """What Cloud Scheduler does in the cloud: every ``requeue_every_s`` ask the submit
        function to publish again the jobs stuck queued or running (their message lost)."""
        headers = {"X-API-Key": str(self.extra_env["API_KEY"])} if self.extra_env.get("API_KEY") else {}
        while not self._requeue_stop.wait(self.requeue_every_s):
            try:
                requests.post(self.submit_url + "/maintenance/requeue", headers=headers, timeout=30)
            except requests.RequestException:
                pass

    def start_requeue(self) -> None:
        import threading

        self._requeue_stop = threading.Event()
        threading.Thread(target=self._requeue_loop, daemon=True, name="requeue").start()

    def stop(self) -> None:
        if getattr(self, "_requeue_stop", None) is not None:
            self._requeue_stop.set()
        try:
            for name in list(self.procs)[::-1]:
                self.stop_process(name)
        finally:
            self._stop_watchdog()

    def _spawn_worker(self, env: dict[str, str]) -> subprocess.Popen:
        """The worker: WORKER_PROCESSES gunicorn processes play the Cloud Functions
        instances. Each runs one simulation at a time (its solver process has a lock,
        like an instance with concurrency 1); 2 threads only let it accept the next
        push while one runs — with 1 thread gunicorn's sync worker makes the emulator
        wait about 2 s between pushes (``worker_threads``)."""
        ff = str(Path(sys.executable).with_name("functions-framework"))
        return self._spawn("worker", [ff, "--target", "run_simulation", "--signature-type", "cloudevent",
                                      "--host", "127.0.0.1", "--port", str(self.worker_port)],
                           {**env, "WORKERS": str(self.worker_processes), "THREADS": str(self.worker_threads)})

    def restart_worker(self) -> None:
        self.stop_process("worker", timeout_s=0)
        worker = self._spawn_worker(self.env())
        wait_for(self.worker_url + "/", 60, worker, "worker function")

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def firestore_only(log_dir: Path):
    """The Firestore emulator alone, on a free port, for code run in this process (tests,
    benchmarks): ``FIRESTORE_EMULATOR_HOST`` points at it and the settings and the store
    client are read afresh, both on the way in and out. Yields the ``Stack``."""
    from shared.settings import get_settings
    from shared.store import jobs as job_store

    stack = Stack.on_free_ports(log_dir=log_dir)
    previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
    try:
        stack.start_firestore()
        os.environ["FIRESTORE_EMULATOR_HOST"] = stack.firestore_host
        get_settings.cache_clear()
        job_store.reset()
        yield stack
    finally:
        stack.stop()
        if previous is None:
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = previous
        get_settings.cache_clear()
        job_store.reset()


def main() -> int:
    stack = Stack.from_env()
    try:
        stack.check_ports()
    except PortInUse as e:
        for line in str(e).splitlines():
            print(f"local.stack: {line}", file=sys.stderr, flush=True)
        return 2
    stop = {"now": False}

    def _signal(signum, frame):
        stop["now"] = True

    signal.signal(signal.SIGINT, _signal)
    signal.signal(signal.SIGTERM, _signal)
    print("starting the Pub/Sub and Firestore emulators and both functions ...", flush=True)
    stack.start()
    print(f"""
  submit function     {stack.submit_url}   (POST /cell/simulate, /drivecycle/simulate, /jobs; GET /catalog)
  worker function     {stack.worker_url}   (push endpoint of subscription {stack.topic}-push)
  dead-letter function {stack.dead_letter_url}  (push endpoint of subscription {stack.topic}-dead-push)
  Pub/Sub emulator    {stack.emulator_host}   (project {stack.project}, topic {stack.topic})
  Firestore emulator  {stack.firestore_host}   (the job store, FIRESTORE_EMULATOR_HOST)
  callbacks go to     {stack.job_manager_url}
  logs                {stack.log_dir}/
Ctrl-C stops everything.""", flush=True)
    try:
        while not stop["now"]:
            for name, proc in stack.procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping", flush=True)
                    stop["now"] = True
            time.sleep(0.5)
    finally:
        print("stopping ...", flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

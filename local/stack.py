"""The local stack: the official Pub/Sub emulator and both functions as real
``functions-framework`` processes on 127.0.0.1.

    python -m local.stack            # foreground; Ctrl-C stops every child

Ports, names and URLs come from ``shared.settings`` (``SUBMIT_PORT``,
``WORKER_PORT``, ``PUBSUB_EMULATOR_PORT``, ``JOB_MANAGER_URL``,
``GOOGLE_CLOUD_PROJECT``, ``PUBSUB_TOPIC``, ``MAX_DELIVERY_ATTEMPTS``). Each child runs in its own process group, so stopping
the stack also stops the emulator's Java process (which outlives a killed
``gcloud`` parent).
"""

from __future__ import annotations

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
    emulator_port: int = _DEFAULTS.pubsub_emulator_port
    submit_port: int = _DEFAULTS.submit_port
    worker_port: int = _DEFAULTS.worker_port
    job_manager_url: str = _DEFAULTS.job_manager_url
    worker_processes: int = 2
    worker_threads: int = 2
    max_delivery_attempts: int = _DEFAULTS.max_delivery_attempts  # the subscription's dead-letter limit, and the worker's
    log_dir: Path = REPO / ".stack"
    extra_env: dict = field(default_factory=dict)
    procs: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides) -> "Stack":
        s = Settings()
        values = dict(
            emulator_port=s.pubsub_emulator_port, submit_port=s.submit_port, worker_port=s.worker_port,
            job_manager_url=s.job_manager_url, project=s.google_cloud_project, topic=s.pubsub_topic,
            max_delivery_attempts=s.max_delivery_attempts,
        )
        values.update(overrides)
        return cls(**values)

    @classmethod
    def on_free_ports(cls, **overrides) -> "Stack":
        values = dict(emulator_port=free_port(), submit_port=free_port(), worker_port=free_port())
        values.update(overrides)
        return cls(**values)

    # -- URLs ---------------------------------------------------------------
    @property
    def emulator_host(self) -> str:
        return f"127.0.0.1:{self.emulator_port}"

    @property
    def submit_url(self) -> str:
        return f"http://127.0.0.1:{self.submit_port}"

    @property
    def worker_url(self) -> str:
        return f"http://127.0.0.1:{self.worker_port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PUBSUB_EMULATOR_HOST": self.emulator_host,
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
    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_dir / f"{name}-{os.getpid()}.log", "ab")
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs[name] = proc
        return proc

    def start(self) -> "Stack":
        try:
            self.start_emulator()
            self.create_topics()
            self.start_functions()
        except BaseException:
            self.stop()
            raise
        return self

    def start_emulator(self) -> None:
        gcloud = shutil.which("gcloud")
        if gcloud is None:
            raise RuntimeError("gcloud not found: install the Cloud SDK and its pubsub-emulator component")
        proc = self._spawn("emulator", [gcloud, "beta", "emulators", "pubsub", "start",
                                        f"--host-port={self.emulator_host}", f"--project={self.project}"],
                           self.env())
        wait_for(f"http://{self.emulator_host}/", 60, proc, "Pub/Sub emulator")

    def create_topics(self) -> None:
        os.environ["PUBSUB_EMULATOR_HOST"] = self.emulator_host
        from local import pubsub_setup

        pubsub_setup.create(self.project, self.topic, push_endpoint=self.worker_url + "/",
                            max_delivery_attempts=self.max_delivery_attempts)

    def start_functions(self) -> None:
        ff = str(Path(sys.executable).with_name("functions-framework"))
        env = self.env()
        submit = self._spawn("submit", [ff, "--target", "submit_job", "--signature-type", "http",
                                        "--host", "127.0.0.1", "--port", str(self.submit_port)],
                             {**env, "WORKERS": "1"})
        worker = self._spawn_worker(env)
        wait_for(self.submit_url + "/healthz", 60, submit, "submit function")
        wait_for(self.worker_url + "/", 60, worker, "worker function")

    def stop_process(self, name: str, timeout_s: float = 10) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pass
        try:  # the whole group, e.g. the emulator's Java child or the solver processes
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)

    def stop(self) -> None:
        for name in list(self.procs)[::-1]:
            self.stop_process(name)

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


def main() -> int:
    stack = Stack.from_env()
    stop = {"now": False}

    def _signal(signum, frame):
        stop["now"] = True

    signal.signal(signal.SIGINT, _signal)
    signal.signal(signal.SIGTERM, _signal)
    print("starting the Pub/Sub emulator and both functions ...", flush=True)
    stack.start()
    print(f"""
  submit function   {stack.submit_url}   (POST /cell/simulate, /drivecycle/simulate, /jobs; GET /catalog)
  worker function   {stack.worker_url}   (push endpoint of subscription {stack.topic}-push)
  Pub/Sub emulator  {stack.emulator_host}   (project {stack.project}, topic {stack.topic})
  callbacks go to   {stack.job_manager_url}
  logs              {stack.log_dir}/
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

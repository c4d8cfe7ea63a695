"""Runs the engine in a long-lived child process.

The child keeps the warm caches between jobs. The parent waits for each result
with the job's time budget; if the budget runs out, or PyBaMM crashes the child (a
segfault in a solver is not a Python exception), the child is killed and replaced,
and the job fails with a readable reason instead of taking the whole instance down.
IDAKLU holds the GIL while it solves, so only a separate process can be stopped
mid-solve.

The boundary is typed: ``run`` takes a ``Job`` and returns its result, or raises
``SimulationError`` (``JobTimeout`` and ``SolverCrashed`` are kinds of it) whose
message is safe to show the caller.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import Any, Callable, Optional

from shared.engine.errors import SimulationError

log = logging.getLogger(__name__)


class JobTimeout(SimulationError):
    pass


class SolverCrashed(SimulationError):
    pass


class OutOfMemory(SimulationError):
    pass


class Cancelled(Exception):
    """The job was cancelled while it ran; the solver process was stopped."""


CANCEL_POLL_S = 1.0  # how often a running job asks the store whether it was cancelled
MEMORY_POLL_S = 0.2  # how often the solver process's memory is read (it can grow ~120 MB/s)


def rss_mb(pid: int) -> float:
    """Resident memory of a process [MB] (Linux /proc; 0 if unknown)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


def _exit_text(code: Optional[int]) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}" if code is not None else "no exit code: it was killed (its memory?) or hung"


def _serve(conn) -> None:  # runs in the child
    from shared import logs

    logs.configure()
    from shared.engine import kinds, precompiled

    precompiled.install()
    conn.send("ready")
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        segment = None
        if isinstance(job, tuple):  # ("segment", job, Segment): a study run in segments
            _, job, segment = job
        try:
            conn.send((True, kinds.simulate(job, segment=segment)))
        except SimulationError as exc:
            conn.send((False, str(exc)))
        except Exception as exc:  # noqa: BLE001 - reported as a failed job, never a stack trace
            logging.getLogger(__name__).exception("simulation crashed")
            conn.send((False, f"internal simulation error ({type(exc).__name__})"))


class SolverProcess:
    """One child at a time; one job at a time (a lock serialises callers)."""

    def __init__(self, start_timeout_s: float = 120.0, max_rss_mb: Optional[float] = None):
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self.max_rss_mb = max_rss_mb
        self._proc = None
        self._conn = None
        self.start_timeout_s = start_timeout_s
        self.jobs_run = 0

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_serve, args=(child,), daemon=True, name="pybamm-solver")
        t0 = time.perf_counter()
        proc.start()
        child.close()
        if not parent.poll(self.start_timeout_s):
            proc.kill()
            raise SolverCrashed("the solver process did not start")
        parent.recv()
        self._proc, self._conn = proc, parent
        log.info("solver process started", extra={"fields": {"pid": proc.pid,
                                                              "startup_s": round(time.perf_counter() - t0, 3)}})

    def _stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def run(self, job, timeout_s: float, should_stop: Optional[Callable[[], bool]] = None,
            segment=None) -> Any:
        """The result of one job (a ``shared.contract.job.Job``); raises ``SimulationError``,
        or ``Cancelled`` when ``should_stop()`` (asked every ``MEMORY_POLL_S``) turns true.
        With ``segment`` (``shared.engine.checkpoint.Segment``: an ageing study run in
        segments) the answer is the result dict or a ``Checkpoint``; the caller decides."""
        message = job if segment is None else ("segment", job, segment)
        with self._lock:
            if should_stop is not None and should_stop():  # cancelled while it waited for this process
                raise Cancelled()
            if self._proc is None or not self._proc.is_alive():
                self._stop()
                self._start()
            try:
                self._conn.send(message)
            except (BrokenPipeError, OSError):  # the child died between jobs: one fresh start
                self._stop()
                self._start()
                self._conn.send(message)
            deadline = time.monotonic() + timeout_s
            limit = self.max_rss_mb
            pid = self._proc.pid
            peak = 0.0
            try:
                while not self._conn.poll(max(0.0, min(MEMORY_POLL_S, deadline - time.monotonic()))):
                    now = time.monotonic()
                    if now >= deadline:
                        self._stop()
                        raise JobTimeout(
                            f"timeout: the simulation exceeded this service's {timeout_s:g} s time budget")
                    if limit:
                        peak = max(peak, rss_mb(pid))
                        if peak > limit:
                            self._stop()
                            raise OutOfMemory(
                                f"out of memory: the simulation needed more than this service's {limit:.0f} MB "
                                "and was stopped; ask for less: fewer output points (outputs.max_points, "
                                "outputs.period_s), fewer cycles or a shorter protocol, or a smaller model (SPM)")
                    if should_stop is not None and should_stop():  # cheap: it limits its own store reads
                        self._stop()
                        raise Cancelled()
                ok, value = self._conn.recv()
            except (EOFError, OSError) as exc:
                code = self._proc.exitcode if self._proc is not None else None
                if code is None and self._proc is not None:
                    self._proc.join(1)
                    code = self._proc.exitcode
                self._stop()
                raise SolverCrashed(f"the solver process crashed ({_exit_text(code)})") from exc
            self.jobs_run += 1
            if not ok:
                raise SimulationError(value)
            return value

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None else None

    def close(self) -> None:
        with self._lock:
            self._stop()

"""End to end through the local stack: Pub/Sub emulator + submit and worker
functions (functions-framework) + a callback receiver, all on 127.0.0.1.

A burst of N legacy cell jobs is submitted at once (one thread per request, each
with its own ``id`` and a slightly different ``controlCurrent``); latency per job
is the receiver's arrival time minus the time just before that job's POST. Each
POST carries ``Prefer: respond-async`` (202 at once, as every POST got before the
job store): without it the submit function holds each request open until its job
has finished (the Java Job Manager's synchronous reply, see ``bench.sync``), and a
burst would measure the submit function's request threads instead.
The first burst meets cold workers (the solver processes start on first use);
the second burst, on the same stack, meets warm ones.
"""

from __future__ import annotations

import tempfile
import threading
import time
from datetime import datetime
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np
import requests

from bench.jobs import JAVA_CELL
from bench.procmem import GroupSampler


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _p50(xs: list[float]):
    return round(float(np.median(xs)), 3) if xs else None


def _max(xs: list[float]):
    return round(float(max(xs)), 3) if xs else None


def _burst(stack, receiver, arrivals: dict, tag: str, n: int,
           timeout_s: float) -> dict[str, Any]:
    ids = [f"bench-{tag}-{k:03d}" for k in range(n)]
    wanted = set(ids)
    submitted: dict[str, float] = {}
    acks: dict[str, tuple[int, float]] = {}
    url = stack.submit_url + "/cell/simulate"
    session_local = threading.local()

    def post(k: int) -> None:
        s = getattr(session_local, "s", None)
        if s is None:
            s = session_local.s = requests.Session()
        body = {**JAVA_CELL, "id": ids[k], "controlCurrent": round(4.5 + 0.02 * k, 3)}
        t = time.time()
        submitted[ids[k]] = t
        r = s.post(url, json=body, headers={"Prefer": "respond-async"}, timeout=60)
        acks[ids[k]] = (r.status_code, time.time() - t)

    t0 = time.time()
    with ThreadPoolExecutor(max_workers=min(n, 32)) as pool:
        list(pool.map(post, range(n)))
    submit_done = time.time()
    missing: list[str] = []
    try:
        receiver.wait_for(ids, timeout_s)
    except TimeoutError:
        missing = [i for i in ids if i not in receiver.results]
    got = [i for i in ids if i in receiver.results]
    time.sleep(0.05)  # on_result runs just after the receiver wakes its waiters
    lat = np.array([arrivals[i] - submitted[i] for i in got if i in arrivals])
    last = max((arrivals[i] for i in got if i in arrivals), default=float("nan"))
    bodies = [receiver.results[i] for i in got]
    # phases from the callback body's own timestamps (same machine clock, ms resolution)
    wait_s, run_s, back_s = [], [], []
    for i in got:
        b = receiver.results[i]
        try:
            started, finished = _epoch(b["jobStarted"]), _epoch(b["jobFinished"])
        except (KeyError, TypeError, ValueError):
            continue
        wait_s.append(started - submitted[i])
        run_s.append(finished - started)
        if i in arrivals:
            back_s.append(arrivals[i] - finished)
    solve = [b["timings"]["solve_s"] for b in bodies if b.get("timings")]
    cache = [b["timings"].get("cache") for b in bodies if b.get("timings")]
    ack_s = np.array([a[1] for a in acks.values()])
    wall = last - t0
    return {
        "jobs": n,
        "accepted_202": sum(1 for c, _ in acks.values() if c == 202),
        "results": len(got),
        "succeeded": sum(1 for b in bodies if b.get("status") == "succeeded"),
        "missing": missing,
        "deliveries": sum(1 for _, key in receiver.deliveries if key in wanted),
        "submit_all_s": round(submit_done - t0, 3),
        "submit_ack_p50_s": round(float(np.percentile(ack_s, 50)), 4) if len(ack_s) else None,
        "latency_p50_s": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
        "latency_p95_s": round(float(np.percentile(lat, 95)), 3) if len(lat) else None,
        "latency_max_s": round(float(lat.max()), 3) if len(lat) else None,
        "latency_min_s": round(float(lat.min()), 3) if len(lat) else None,
        "wall_s": round(wall, 3),
        "jobs_per_min": round(len(got) / wall * 60.0, 1) if wall > 0 else None,
        "worker_solve_p50_s": round(float(np.median(solve)), 4) if solve else None,
        "phase_p50_s": {"submit_to_start": _p50(wait_s), "start_to_finish": _p50(run_s),
                        "finish_to_arrival": _p50(back_s)},
        "phase_max_s": {"submit_to_start": _max(wait_s), "start_to_finish": _max(run_s),
                        "finish_to_arrival": _max(back_s)},
        "worker_cache_misses": sum(1 for c in cache if c == "miss"),
    }


def _busy_refusals(log_dir: Path) -> int:
    """Pushes a busy worker instance refused (Pub/Sub redelivers them after a back-off)."""
    n = 0
    for f in log_dir.glob("worker-*.log"):
        with open(f, errors="replace") as fh:
            n += sum(1 for line in fh if "busy with another job" in line)
    return n



def arrival_recorder() -> tuple[dict[str, float], Callable[[str, dict], None]]:
    """``(arrivals, on_result)``: a receiver callback that records the wall time each job
    id's first callback arrived."""
    arrivals: dict[str, float] = {}
    lock = threading.Lock()

    def on_result(path: str, body: dict) -> None:
        t = time.time()
        with lock:
            arrivals.setdefault(str(body.get("id")), t)

    return arrivals, on_result

def run(n: int, worker_processes: int = 2, warm_burst: bool = True, timeout_s: float | None = None,
        log=print, worker_threads: int | None = None) -> dict[str, Any]:
    """``worker_threads``: an experiment only - start the worker function with THREADS=n
    instead of the stack's default (2)."""
    from cli.receiver import Receiver
    from local.stack import Stack

    arrivals, on_result = arrival_recorder()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    timeout_s = timeout_s or 120.0 + 3.0 * n
    out: dict[str, Any] = {"worker_processes": worker_processes, "stack_logs": str(log_dir),
                           "prefer": "respond-async"}
    with Receiver(on_result=on_result) as receiver:
        t0 = time.perf_counter()
        threads = {} if worker_threads is None else {"worker_threads": worker_threads}
        stack = Stack.on_free_ports(job_manager_url=receiver.url, worker_processes=worker_processes,
                                    log_dir=log_dir, **threads)
        with stack:
            out["stack_start_s"] = round(time.perf_counter() - t0, 2)
            log(f"  stack up in {out['stack_start_s']} s (logs {log_dir})")
            pgid = stack.procs["worker"].pid  # started with start_new_session: pid == pgid
            out["worker_threads"] = (f"{stack.worker_threads} "
                                     f"({'bench override' if worker_threads is not None else 'stack default'})")
            with GroupSampler(pgid) as sampler:
                out["cold"] = _burst(stack, receiver, arrivals, "cold", n, timeout_s)
                log(f"  cold burst: {out['cold']['results']}/{n} results, p50 {out['cold']['latency_p50_s']} s")
                if warm_burst:
                    out["warm"] = _burst(stack, receiver, arrivals, "warm", n, timeout_s)
                    log(f"  warm burst: {out['warm']['results']}/{n} results, "
                        f"p50 {out['warm']['latency_p50_s']} s")
            out["worker_pushes_refused_busy"] = _busy_refusals(log_dir)
            out["processes"] = sampler.report()
            out["peak_group_rss_MB"] = round(sampler.peak_total_rss_kb / 1024, 1)
            out["rss_samples"] = sampler.samples
    return out

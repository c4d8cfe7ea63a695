"""The Java Job Manager's synchronous reply against the callback, on the warm local stack.

One job at a time (each figure is one job's latency), the Java cell body with its
own ``id``, alternately

  sync   POST /cell/simulate without ``Prefer``: the submit function waits for the
         outcome and answers 200 with the original body; timed request -> reply;
  async  the same with ``Prefer: respond-async``: 202 at once; timed request -> the
         callback's arrival at the receiver.

The order within each pair alternates (sync first, then async first) so a drift in
the machine's speed falls on both. After a sync reply its own callback is awaited
before the next job, so no job overlaps another; its arrival is recorded too. The
stack is warmed first (both worker processes' solver processes started and used).
"""

from __future__ import annotations

import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import requests

from bench.jobs import JAVA_CELL


def _epoch(iso: Optional[str]) -> Optional[float]:
    if not iso or not isinstance(iso, str):
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _pcts(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"n": 0}
    a = np.asarray(xs, dtype=float)
    return {"n": len(xs), "p50_s": float(np.percentile(a, 50)), "p90_s": float(np.percentile(a, 90)),
            "min_s": float(a.min()), "max_s": float(a.max())}


def run(n: int, warmup: int = 6, timeout_s: float = 90.0, worker_processes: int = 2,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    from cli.receiver import Receiver
    from local.stack import Stack

    from bench.e2e import arrival_recorder

    arrivals, on_result = arrival_recorder()

    run_id = uuid.uuid4().hex[:8]
    log_dir = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    out: dict[str, Any] = {"worker_processes": worker_processes, "stack_logs": str(log_dir)}
    session = requests.Session()
    with Receiver(on_result=on_result) as receiver:
        t0 = time.perf_counter()
        stack = Stack.on_free_ports(job_manager_url=receiver.url, worker_processes=worker_processes,
                                    log_dir=log_dir)
        with stack:
            out["stack_start_s"] = round(time.perf_counter() - t0, 2)
            log(f"  stack up in {out['stack_start_s']} s (logs {log_dir})")
            url = stack.submit_url + "/cell/simulate"

            def post(job_id: str, prefer_async: bool) -> requests.Response:
                headers = {"Prefer": "respond-async"} if prefer_async else {}
                return session.post(url, json={**JAVA_CELL, "id": job_id}, headers=headers, timeout=120)

            def sync_job(job_id: str) -> dict[str, Any]:
                t_wall = time.time()
                t = time.perf_counter()
                r = post(job_id, False)
                reply_s = time.perf_counter() - t
                if r.status_code != 200 or r.json().get("jobStarted") is not True:
                    raise RuntimeError(f"sync {job_id}: {r.status_code} {r.text[:300]}")
                rows = len(r.json().get("simulationResults") or [])
                receiver.wait_for([job_id], timeout_s)  # its own callback: no overlap with the next job
                arrival = arrivals.get(job_id)
                return {"id": job_id, "reply_s": reply_s, "rows": rows,
                        "own_callback_s": None if arrival is None else arrival - t_wall,
                        "status_header": r.headers.get("X-Job-Status")}

            def async_job(job_id: str) -> dict[str, Any]:
                t_wall = time.time()
                t = time.perf_counter()
                r = post(job_id, True)
                ack_s = time.perf_counter() - t
                if r.status_code != 202:
                    raise RuntimeError(f"async {job_id}: {r.status_code} {r.text[:300]}")
                body = receiver.wait_for([job_id], timeout_s)[job_id]
                while job_id not in arrivals:  # on_result runs just after wait_for wakes
                    time.sleep(0.001)
                arrival = arrivals[job_id]
                if body.get("status") != "succeeded":
                    raise RuntimeError(f"async {job_id}: {body.get('status')} {body.get('error')}")
                started, finished = _epoch(body.get("jobStarted")), _epoch(body.get("jobFinished"))
                return {"id": job_id, "callback_s": arrival - t_wall, "ack_s": ack_s,
                        "submit_to_start_s": None if started is None else started - t_wall,
                        "start_to_finish_s": None if started is None or finished is None else finished - started,
                        "finish_to_arrival_s": None if finished is None else arrival - finished,
                        "solve_s": (body.get("timings") or {}).get("solve_s")}

            # warm-up: a few at once (each worker process starts its solver process), then one by one
            t = time.perf_counter()
            ids = [f"bench-sync-{run_id}-warm-{k}" for k in range(warmup)]
            half = max(2, warmup // 2)
            with ThreadPoolExecutor(max_workers=half) as pool:
                list(pool.map(lambda i: post(i, True), ids[:half]))
            receiver.wait_for(ids[:half], timeout_s + 60)
            for k, job_id in enumerate(ids[half:]):
                (sync_job if k % 2 else async_job)(job_id)
            out["warmup_jobs"] = warmup
            out["warmup_s"] = round(time.perf_counter() - t, 2)
            log(f"  warmed with {warmup} jobs in {out['warmup_s']} s")

            syncs: list[dict] = []
            asyncs: list[dict] = []
            for k in range(n):
                sid, aid = f"bench-sync-{run_id}-{k:03d}-s", f"bench-sync-{run_id}-{k:03d}-a"
                if k % 2 == 0:
                    syncs.append(sync_job(sid))
                    asyncs.append(async_job(aid))
                else:
                    asyncs.append(async_job(aid))
                    syncs.append(sync_job(sid))
    reply = [x["reply_s"] for x in syncs]
    cb = [x["callback_s"] for x in asyncs]
    own = [x["own_callback_s"] for x in syncs if x["own_callback_s"] is not None]
    paired = [x["reply_s"] - x["own_callback_s"] for x in syncs if x["own_callback_s"] is not None]

    def phase(key: str) -> Optional[float]:
        xs = [x[key] for x in asyncs if x.get(key) is not None]
        return float(np.median(xs)) if xs else None

    out.update({
        "n": n,
        "sync_reply": _pcts(reply),
        "async_callback": _pcts(cb),
        "async_ack": _pcts([x["ack_s"] for x in asyncs]),
        "sync_jobs_own_callback": _pcts(own),
        "sync_minus_own_callback": _pcts(paired),
        "p50_difference_s": float(np.percentile(reply, 50) - np.percentile(cb, 50)),
        "p90_difference_s": float(np.percentile(reply, 90) - np.percentile(cb, 90)),
        "async_phase_p50_s": {k: phase(k + "_s") for k in ("submit_to_start", "start_to_finish",
                                                          "finish_to_arrival")},
        "async_worker_solve_p50_s": phase("solve"),
        "sync_rows": sorted({x["rows"] for x in syncs}),
        "jobs": {"sync": syncs, "async": asyncs},
    })
    log(f"  sync reply p50 {out['sync_reply']['p50_s'] * 1e3:.0f} ms, callback p50 "
        f"{out['async_callback']['p50_s'] * 1e3:.0f} ms, difference {out['p50_difference_s'] * 1e3:+.0f} ms")
    return out

"""The job store's cost to a warm job on the worker, against the Firestore emulator.

For the Java cell job (DFN), the worker's store calls per job are, as
``functions/worker.py`` makes them:

    store.peek(envelope)                                   one read: run, cancelled or finished?
    store.start(envelope)                         claim: a transaction, in a thread while the job solves
    store.finish(job_id, body, reuse_key=...)              the result's gzip chunks + the outcome
    store.record_callback(job_id, "delivered", 200)        the callback's state

The cost added to a job is measured as the worker pays it: a warm solve in the
solver process with the store calls around it (the claim overlapping the solve)
against a warm solve in the solver process alone, in turns; the difference of the
medians is the store's cost.

This section starts the Firestore emulator alone (``Stack.start_firestore``),
points this process's store at it, builds the job's real callback body once
(``kinds.simulate`` + ``callback.body_for``) and then, in turns, times one warm
``simulate(job)`` and one job's three store calls (each job has its own id and is
first recorded as the submit function records it, outside the timing). The figures:
store ms added per job, warm simulate ms, and the store's share of the two.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable


def _ms_stats(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "median_ms": statistics.median(xs) * 1e3, "min_ms": min(xs) * 1e3,
            "max_ms": max(xs) * 1e3, "p90_ms": _pct(xs, 90) * 1e3}


def _pct(xs: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(xs, q))


def run(n: int, warmup: int = 3, log: Callable[[str], None] = print) -> dict[str, Any]:
    from bench.jobs import service_job
    from local.stack import firestore_only
    from shared.contract.envelope import Envelope
    from shared.delivery import callback
    from shared.engine import kinds
    from shared.store import jobs as job_store

    job = service_job("dfn_cell")
    log_dir = Path(tempfile.mkdtemp(prefix="bench-store-"))
    out: dict[str, Any] = {"job": "dfn_cell", "emulator_logs": str(log_dir)}
    t0 = time.perf_counter()
    with firestore_only(log_dir) as stack:
        out["emulator_start_s"] = round(time.perf_counter() - t0, 2)
        store = job_store.store()
        log(f"  Firestore emulator up in {out['emulator_start_s']} s at {stack.firestore_host}")

        run_id = uuid.uuid4().hex[:8]

        def envelope(k: int) -> Envelope:
            return Envelope(job_id=f"bench-store-{run_id}-{k:04d}", kind="cell",
                            submitted_at=job_store.now_iso(), job=job)

        # the job's real result body, from one engine run
        first_s_t0 = time.perf_counter()
        result = kinds.simulate(job)
        first_sim_s = time.perf_counter() - first_s_t0
        env0 = envelope(0)
        started = job_store.now_iso()
        body0 = callback.body_for(env0, started, job_store.now_iso(), 1, result=result)
        reuse_key = job.reuse_key()

        from concurrent.futures import ThreadPoolExecutor

        from shared.engine.solver_process import SolverProcess

        claims = ThreadPoolExecutor(max_workers=1)
        solver = SolverProcess()
        solver.run(job, 120)  # the child's warm model

        def one_job(k: int) -> tuple[float, float, float, float, float, dict]:
            """A warm solve with the worker's store calls around it: (total, peek, claim
            wait after the solve, finish, record_callback) in s, and the stored outcome."""
            env = envelope(k)
            store.create(env)  # what the submit function records; not the worker's cost
            body = {**body0, "id": env.job_id, "jobSubmitted": env.submitted_at}
            a = time.perf_counter()
            state, _ = store.peek(env)
            b = time.perf_counter()
            assert state == "run", state
            claim = claims.submit(store.start, env)
            solver.run(job, 120)  # in a child process, as on the worker: the claim really overlaps
            c = time.perf_counter()
            claimed, _ = claim.result()
            d = time.perf_counter()
            assert claimed == "run", claimed
            update = store.finish(env.job_id, body, reuse_key=reuse_key)
            e = time.perf_counter()
            store.record_callback(env.job_id, "delivered", 200)
            f = time.perf_counter()
            return f - a, b - a, d - c, e - d, f - e, update

        first = one_job(0)  # first calls: the gRPC channel, the emulator's first transaction
        for k in range(1, warmup):
            one_job(k)
            solver.run(job, 120)
        sim_s, with_s, peek_s, wait_s, finish_s, cb_s = [], [], [], [], [], []
        update: dict = {}
        for k in range(warmup, warmup + n):  # in turns: a warm solve alone, then one with the store
            t = time.perf_counter()
            solver.run(job, 120)
            sim_s.append(time.perf_counter() - t)
            total, p, w, fi, cb, update = one_job(k)
            with_s.append(total)
            peek_s.append(p)
            wait_s.append(w)
            finish_s.append(fi)
            cb_s.append(cb)
        claims.shutdown()
        solver.close()
        total_s = [max(0.0, x - statistics.median(sim_s)) for x in with_s]  # per job, against the median solve
        # the stored record is whole: read it back once
        check_id = envelope(warmup + n - 1).job_id
        record = store.get(check_id)
        stored = store.result(check_id, record)
        assert record and record["status"] == "succeeded" and record["callback"]["state"] == "delivered"
        assert stored is not None and stored["result"] == body0["result"], "stored body differs"

        sim_ms = statistics.median(sim_s) * 1e3
        st_ms = statistics.median(with_s) * 1e3 - sim_ms  # the store's cost: with minus without
        out.update({
            "n": n,
            "first_simulate_s": round(first_sim_s, 4),
            "first_job_ms": {"total_with_solve": first[0] * 1e3, "peek": first[1] * 1e3,
                             "claim_wait": first[2] * 1e3, "finish": first[3] * 1e3,
                             "record_callback": first[4] * 1e3},
            "result_rows": len(body0.get("result") or []),
            "result_gzip_bytes": update.get("result", {}).get("bytes"),
            "result_chunks": update.get("result", {}).get("chunks"),
            "store_total": _ms_stats(total_s),
            "store_peek": _ms_stats(peek_s),
            "store_claim_wait": _ms_stats(wait_s),
            "store_finish": _ms_stats(finish_s),
            "store_record_callback": _ms_stats(cb_s),
            "warm_simulate": _ms_stats(sim_s),
            "warm_simulate_with_store": _ms_stats(with_s),
            "store_median_ms": st_ms,
            "warm_simulate_median_ms": sim_ms,
            "store_share_of_solve_plus_store": st_ms / (sim_ms + st_ms),
        })
        log(f"  store {st_ms:.1f} ms/job added (peek {out['store_peek']['median_ms']:.1f}, claim wait "
            f"{out['store_claim_wait']['median_ms']:.1f}, finish {out['store_finish']['median_ms']:.1f}, "
            f"record_callback {out['store_record_callback']['median_ms']:.1f}); warm simulate {sim_ms:.1f} ms; "
            f"share {out['store_share_of_solve_plus_store'] * 100:.1f} %")
    return out

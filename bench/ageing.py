"""Ageing studies, measured side by side in one run (``python -m bench.ageing``; also the
section "ageing" of ``python -m bench.run``).

The study: SPM (or DFN) with SEI (solvent-diffusion limited, porosity change) and
partially reversible lithium plating, ``OKane2022``, cycles of "Discharge at 1C until
2.5 V", "Charge at 0.3C until 4.2 V", "Hold at 4.2 V until C/100".

(a) throughput: cycles per second of the service's engine path — the study in a solver
    process, in segments of ``--segment-s`` (15 s: 20 times more checkpoints than the
    300 s of SEGMENT_BUDGET_S, so that a 500-cycle study has some), each checkpoint stored in the job
    store (Firestore emulator) and read back and verified before the next segment, as
    the worker does — against one direct PyBaMM solve of the same experiment (a fresh
    ``pybamm.Simulation``, the service's solver tolerances, every 100th cycle saved,
    "Capacity [A.h]" and "Loss of lithium inventory [%]" read for every cycle), in
    turns; the same direct solve computing what the service's rows are made of (the
    solver's output variables over every step: voltage, current, charge, temperature,
    stoichiometry; the seven summary variables a row reports), which separates what
    the rows cost from what the service adds; and the same engine path in one segment
    (no checkpoint), which separates what checkpoints and the store cost. All include
    PyBaMM's model build; PyBaMM's import and the solver process's start do not.
(b) memory: the solver process's peak RSS (VmHWM) after studies of 100, 500 and 1,000
    SPM cycles (every 100th cycle's series kept), each in a fresh solver process.
(c) end to end on the local stack (emulators + functions + a receiver): submit to
    callback for a 1,000-cycle SPM study and a 200-cycle DFN study, with
    SEGMENT_BUDGET_S of ``--e2e-segment-s`` (20 s, so that both continue across
    invocations: with the default 300 s the SPM study would run in one), and
    the worker process group's peak memory while they ran.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

OPTIONS = {"SEI": "solvent-diffusion limited", "SEI porosity change": "true",
           "lithium plating": "partially reversible"}
STEPS = ["Discharge at 1C until 2.5 V", "Charge at 0.3C until 4.2 V", "Hold at 4.2 V until C/100"]
COMPARED = ("Capacity [A.h]", "Loss of lithium inventory [%]")


def study(model: str, cycles: int, every: int = 100, **protocol) -> dict[str, Any]:
    return {"model": {"name": model, "options": OPTIONS}, "parameter_set": "OKane2022",
            "protocol": {"type": "ageing", "steps": STEPS, "cycles": cycles,
                         "save_cycles": {"every": min(every, cycles)}, **protocol}}


# -- (a) throughput -----------------------------------------------------------------


def direct_solve(model: str, cycles: int, every: int, as_rows: bool = False) -> tuple[float, dict[str, list]]:
    """One PyBaMM solve of the whole study: wall seconds, and its summary rows.
    ``as_rows``: with what the service's rows are made of (its solver output variables,
    every summary variable a row reports), not only the two compared ones."""
    import pybamm

    from shared.engine.build import ATOL, RTOL
    from shared.engine.plan import SUMMARY_VARIABLES
    from shared.engine.protocols.ageing import DEGRADATION, THROUGHPUT

    t0 = time.perf_counter()
    outputs = list(SUMMARY_VARIABLES) if as_rows else None
    sim = pybamm.Simulation(getattr(pybamm.lithium_ion, model)(dict(OPTIONS)),
                            parameter_values=pybamm.ParameterValues("OKane2022"),
                            experiment=pybamm.Experiment([tuple(STEPS)] * cycles),
                            solver=pybamm.IDAKLUSolver(atol=ATOL, rtol=RTOL, output_variables=outputs))
    solution = sim.solve(save_at_cycles=min(every, cycles))
    names = list(dict.fromkeys([*COMPARED, *DEGRADATION, THROUGHPUT])) if as_rows else COMPARED
    rows = {name: [float(x) for x in solution.summary_variables[name]] for name in names}
    return time.perf_counter() - t0, rows


def service_solve(store, job, segment_s: float) -> tuple[float, dict[str, Any], int, float]:
    """The study through the engine path as the worker runs it: a fresh solver process,
    segments of ``segment_s``, each checkpoint stored and loaded back (verified). Wall
    seconds (the process's start excluded), the result, checkpoints, seconds in the store."""
    from shared.contract.envelope import Envelope
    from shared.engine.checkpoint import Checkpoint, Segment
    from shared.engine.solver_process import SolverProcess
    from shared.store import jobs as job_store

    envelope = Envelope(job_id=f"bench-ageing-{uuid.uuid4().hex[:10]}", kind="native",
                        submitted_at=job_store.now_iso(), job=job)
    store.create(envelope)
    proc = SolverProcess()
    proc._start()  # the child's imports are not the study's
    try:
        seq, resume, in_store = 0, None, 0.0
        t0 = time.perf_counter()
        while True:
            out = proc.run(job, 3600, segment=Segment(resume=resume, budget_s=segment_s))
            if not isinstance(out, Checkpoint):
                return time.perf_counter() - t0, out, seq, in_store
            seq += 1
            s0 = time.perf_counter()
            progress = {"cyclesDone": out.cycles_done, "cyclesPlanned": out.cycles_planned,
                        "latestCapacityAh": out.latest_capacity_Ah, "etaSeconds": out.eta_s(),
                        "wallSeconds": out.wall_s}
            assert store.save_checkpoint(envelope.job_id, seq, out.data, out.sha256, progress)
            resume = store.load_checkpoint(envelope.job_id, store.get(envelope.job_id)["checkpoint"])
            in_store += time.perf_counter() - s0
    finally:
        proc.close()


def throughput(cycles: int, turns: int, segment_s: float, log: Callable[[str], None]) -> dict[str, Any]:
    from local.stack import firestore_only
    from shared.contract.job import Job
    from shared.store import jobs as job_store

    import pybamm  # noqa: F401 - imported here, so that no side's time has PyBaMM's import

    import shared.engine.build  # noqa: F401

    job = Job.model_validate(study("SPM", cycles))
    with firestore_only(Path(tempfile.mkdtemp(prefix="bench-ageing-"))):
        store = job_store.store()
        direct_s, rows_s, service_s, whole_s, store_s, checkpoints = [], [], [], [], [], []
        worst = dict.fromkeys(COMPARED, 0.0)
        for turn in range(turns):  # in turns, so that load on a shared machine falls on both
            d, want = direct_solve("SPM", cycles, 100)
            r, _ = direct_solve("SPM", cycles, 100, as_rows=True)
            s, result, n, in_store = service_solve(store, job, segment_s)
            w, _, _, _ = service_solve(store, job, 1e9)  # the same engine in one segment: no checkpoint
            direct_s.append(d)
            rows_s.append(r)
            whole_s.append(w)
            service_s.append(s)
            store_s.append(in_store)
            checkpoints.append(n)
            for name in COMPARED:
                got = [row[name] for row in result["cycles"]]
                assert len(got) == len(want[name]) == cycles, (len(got), len(want[name]))
                worst[name] = max(worst[name], max(abs(g - w) / abs(w) for g, w in zip(got, want[name]) if w))
            log(f"  turn {turn + 1}: direct {cycles / d:.1f} cycles/s (with the rows' outputs {cycles / r:.1f}), "
                f"service {cycles / s:.1f} cycles/s "
                f"({n} checkpoints, {in_store:.2f} s in the store), service in one segment {cycles / w:.1f} cycles/s")
    d, s, w = statistics.median(direct_s), statistics.median(service_s), statistics.median(whole_s)
    r = statistics.median(rows_s)
    return {"model": "SPM", "cycles": cycles, "turns": turns, "segment_s": segment_s,
            "direct_s": [round(x, 2) for x in direct_s], "service_s": [round(x, 2) for x in service_s],
            "direct_cycles_per_s": round(cycles / d, 2), "service_cycles_per_s": round(cycles / s, 2),
            "ratio": round(d / s, 3), "direct_rows_s": [round(x, 2) for x in rows_s],
            "direct_rows_cycles_per_s": round(cycles / r, 2), "ratio_to_direct_rows": round(r / s, 3),
            "one_segment_s": [round(x, 2) for x in whole_s],
            "one_segment_cycles_per_s": round(cycles / w, 2), "checkpoint_cost": round(s / w - 1, 3),
            "checkpoints": checkpoints, "store_s": [round(x, 2) for x in store_s],
            "max_rel_diff_vs_direct": worst}


# -- (b) memory ----------------------------------------------------------------------


def memory(counts: list[int], log: Callable[[str], None]) -> list[dict[str, Any]]:
    from bench.procmem import _status_kb
    from shared.contract.job import Job
    from shared.engine.solver_process import SolverProcess

    out = []
    for n in counts:
        proc = SolverProcess()
        proc._start()
        try:
            idle = _status_kb(proc.pid).get("VmHWM", 0) / 1024
            t0 = time.perf_counter()
            result = proc.run(Job.model_validate(study("SPM", n)), 3600)
            wall = time.perf_counter() - t0
            peak = _status_kb(proc.pid).get("VmHWM", 0) / 1024
        finally:
            proc.close()
        assert len(result["cycles"]) == n, len(result["cycles"])
        out.append({"cycles": n, "peak_rss_MB": round(peak, 1), "after_start_MB": round(idle, 1),
                    "saved_cycles": len(result["saved_cycles"]), "wall_s": round(wall, 1)})
        log(f"  {n} cycles: solver process peak RSS {peak:.0f} MB (after its start {idle:.0f} MB), "
            f"{len(result['saved_cycles'])} saved cycles, {wall:.1f} s")
    return out


# -- (c) end to end ------------------------------------------------------------------


def end_to_end(cases: list[tuple[str, int]], segment_s: float, log: Callable[[str], None]) -> list[dict[str, Any]]:
    import requests

    from bench.procmem import GroupSampler
    from cli.receiver import Receiver
    from local.stack import Stack

    out = []
    with Receiver() as receiver:
        stack = Stack.on_free_ports(job_manager_url=receiver.url, worker_processes=1,
                                    log_dir=Path(tempfile.mkdtemp(prefix="bench-ageing-e2e-")),
                                    extra_env={"SEGMENT_BUDGET_S": segment_s})
        with stack:
            for model, cycles in cases:
                with GroupSampler(stack.procs["worker"].pid) as sampler:
                    t0 = time.monotonic()
                    reply = requests.post(stack.submit_url + "/jobs", json=study(model, cycles), timeout=60)
                    assert reply.status_code == 202, reply.text
                    job_id = reply.json()["jobId"]
                    body = receiver.wait_for([job_id], 3600)[job_id]
                    wall = time.monotonic() - t0
                view = requests.get(f"{stack.submit_url}/jobs/{job_id}", timeout=30).json()
                solver_peak = max((p["peak_rss_MB"] for p in sampler.report() if p["role"] == "pybamm-solver"),
                                  default=None)
                row = {"model": model, "cycles": cycles, "status": body["status"],
                       "cycles_done": len(body.get("cycles") or []), "termination": body.get("termination"),
                       "wall_s": round(wall, 1), "cycles_per_s": round(len(body.get("cycles") or []) / wall, 2),
                       "continuations": (view.get("progress") or {}).get("continuations"),
                       "solver_peak_rss_MB": solver_peak,
                       "worker_group_peak_rss_MB": round(sampler.peak_total_rss_kb / 1024, 1)}
                out.append(row)
                log(f"  {model} {cycles} cycles: {row['status']}, {row['cycles_done']} cycles in {wall:.1f} s "
                    f"({row['cycles_per_s']} cycles/s), {row['continuations']} continuations, solver peak "
                    f"{solver_peak} MB")
    return out


# -- the run ---------------------------------------------------------------------------


def run(quick: bool = False, log: Callable[[str], None] = print, only: Optional[list[str]] = None,
        segment_s: float = 15.0, e2e_segment_s: float = 20.0, cycles: Optional[int] = None,
        turns: Optional[int] = None) -> dict[str, Any]:
    only = only or ["throughput", "memory", "e2e"]
    res: dict[str, Any] = {}
    if "throughput" in only:
        log("[ageing] (a) cycles per second: service engine path (segments + checkpoints in the store) "
            "vs a direct PyBaMM solve")
        res["throughput"] = throughput(cycles or (100 if quick else 500), turns or (1 if quick else 2), segment_s, log)
    if "memory" in only:
        log("[ageing] (b) solver process peak RSS against cycles (SPM, every 100th cycle's series kept)")
        res["memory"] = memory([50, 100, 200] if quick else [100, 500, 1000], log)
    if "e2e" in only:
        log(f"[ageing] (c) end to end on the local stack (SEGMENT_BUDGET_S {e2e_segment_s:g} s)")
        cases = [("SPM", 200), ("DFN", 20)] if quick else [("SPM", 1000), ("DFN", 200)]
        res["e2e"] = end_to_end(cases, e2e_segment_s, log)
    report(res, log)
    return res


def report(res: dict[str, Any], log: Callable[[str], None] = print) -> None:
    log("")
    log("ageing studies, side by side")
    t = res.get("throughput")
    if t:
        log(f"  (a) {t['cycles']} SPM cycles: direct PyBaMM {t['direct_cycles_per_s']} cycles/s | service "
            f"{t['service_cycles_per_s']} cycles/s ({t['checkpoints']} checkpoints of {t['segment_s']:g} s segments) "
            f"| ratio {t['ratio']} (goal >= 0.9: {'met' if t['ratio'] >= 0.9 else 'NOT met'})")
        log(f"      direct PyBaMM computing what the rows are made of (its solver's output variables, the rows' "
            f"summary variables): {t['direct_rows_cycles_per_s']} cycles/s, ratio {t['ratio_to_direct_rows']}")
        log(f"      the same engine in one segment (no checkpoint): {t['one_segment_cycles_per_s']} cycles/s, so "
            f"checkpoints and the store cost {t['checkpoint_cost'] * 100:+.1f} %; rows vs direct, "
            "max relative difference: " + ", ".join(f"{k} {v:.1e}" for k, v in t['max_rel_diff_vs_direct'].items()))
    m = res.get("memory")
    if m:
        cells = " | ".join(f"{r['cycles']} cycles {r['peak_rss_MB']} MB" for r in m)
        growth = m[-1]["peak_rss_MB"] - m[0]["peak_rss_MB"]
        log(f"  (b) solver peak RSS: {cells} (growth {growth:+.0f} MB from {m[0]['cycles']} to {m[-1]['cycles']} "
            "cycles; goal: flat)")
    for r in res.get("e2e") or []:
        log(f"  (c) {r['model']} {r['cycles']} cycles end to end: {r['wall_s']} s ({r['cycles_per_s']} cycles/s), "
            f"{r['status']}, {r['continuations']} continuations, solver peak {r['solver_peak_rss_MB']} MB")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="ageing studies: service vs direct PyBaMM, memory, end to end")
    ap.add_argument("--quick", action="store_true", help="fewer cycles")
    ap.add_argument("--only", default="throughput,memory,e2e", help="comma-separated: throughput, memory, e2e")
    ap.add_argument("--segment-s", type=float, default=15.0, help="(a) segment budget [s]")
    ap.add_argument("--e2e-segment-s", type=float, default=20.0, help="(c) SEGMENT_BUDGET_S [s]")
    ap.add_argument("--cycles", type=int, default=None, help="(a) cycles (500; --quick 100)")
    ap.add_argument("--turns", type=int, default=None, help="(a) turns, each side once a turn (2; --quick 1)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
    res = run(args.quick, print, args.only.split(","), args.segment_s, args.e2e_segment_s, args.cycles, args.turns)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: the original per-request path against this service, side by side.

    python -m bench.run                       # full run (about 10 minutes on 2 cores)
    python -m bench.run --quick               # fewer repetitions, a small end-to-end burst
    python -m bench.run --e2e-jobs 50 --json out/bench.json
    python -m bench.run --only store,sync     # the job store's figures alone

Jobs (the same in every section):
  dfn_cell  the Java Job Manager's cell job: DFN, Chen2020, 5 A for 1 h, 5 A.h, 4.2/2.5 V
  us06      the Java drive-cycle job: DFN, US06 from initial SOC 0.9 (the service default)
  spme_1c   a native job: SPMe, Chen2020, 1C (5 A) for 3600 s

Sections
  cold     fresh interpreter: import shared.engine.simulate, then the first simulate(job)
  inproc   original path (new Simulation + CasadiSolver "safe" per request) interleaved
           with warm simulate(job) calls; accuracy against a 1e-9 IDAKLU reference
  overhead share of a warm call outside the solver (result timings) + cProfile breakdown
  ipc      SolverProcess round trip against a direct simulate call
  store    the job store's cost to a warm DFN cell job on the worker (start, finish,
           record_callback against the Firestore emulator) interleaved with warm simulate(job)
  e2e      the local stack (emulator + functions-framework): bursts of N legacy cell jobs
  sync     the warm local stack, one job at a time: the Java Job Manager's synchronous reply
           (POST /cell/simulate, no Prefer) against the callback's arrival (Prefer: respond-async)
  ageing   ageing studies (bench/ageing.py): service vs direct PyBaMM cycles/s, solver memory
           over 100/500/1,000 cycles, 1,000 SPM and 200 DFN cycles end to end (about 8 minutes)

The machine may be shared: load averages are recorded before and after every section.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import logging
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from bench.jobs import JOB_NAMES, LABELS, REPO, setup_env
from cli.output import format_table as table

setup_env()

SECTIONS = ("cold", "inproc", "overhead", "ipc", "store", "e2e", "sync", "ageing")


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------
def say(*args) -> None:
    print(*args, flush=True)


def med(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def stats(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "median": med(xs), "min": min(xs), "max": max(xs)}


def fmt_s(x: Optional[float]) -> str:
    if x is None or x != x:
        return "-"
    if x < 0.1:
        return f"{x * 1000:.1f} ms"
    return f"{x:.3f} s"


def fmt_spread(st: dict[str, Any]) -> str:
    if not st.get("n"):
        return "-"
    return f"{fmt_s(st['median'])} [{fmt_s(st['min'])}..{fmt_s(st['max'])}] n={st['n']}"


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def timed(fn: Callable, *args) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


# ---------------------------------------------------------------------------
# 1. cold start in a fresh interpreter
# ---------------------------------------------------------------------------
def section_cold(reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in JOB_NAMES:
        runs = []
        for _ in range(reps):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "bench.cold", name], cwd=REPO, env=os.environ.copy(),
                                  capture_output=True, text=True, timeout=600)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                raise RuntimeError(f"bench.cold {name} failed:\n{proc.stderr[-2000:]}")
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
            run = json.loads(line)
            run["process_wall_s"] = wall
            runs.append(run)
        out[name] = {
            "runs": runs,
            "import_s": stats([r["import_s"] for r in runs]),
            "first_job_s": stats([r["first_job_s"] for r in runs]),
            "import_plus_first_s": stats([r["import_plus_first_s"] for r in runs]),
            "process_wall_s": stats([r["process_wall_s"] for r in runs]),
        }
        say(f"  {name}: import {fmt_s(out[name]['import_s']['median'])}, first job "
            f"{fmt_s(out[name]['first_job_s']['median'])}")
    return out


# ---------------------------------------------------------------------------
# 2. original per-request path vs warm service, same jobs, interleaved
# ---------------------------------------------------------------------------
def _max_dv(t_a, v_a, sol_b, t_end_b: float) -> tuple[float, int, float]:
    """(max |v_a - V_b(t_a)|, points compared, t of the max) over the points of t_a
    inside both solutions' time range; V_b is interpolated by PyBaMM."""
    import numpy as np

    t_a = np.asarray(t_a, dtype=float)
    v_a = np.asarray(v_a, dtype=float)
    mask = t_a <= min(t_a[-1], t_end_b) + 1e-9
    vb = np.asarray(sol_b["Voltage [V]"](t_a[mask]), dtype=float).ravel()
    err = np.abs(v_a[mask] - vb)
    k = int(np.argmax(err))
    return float(err[k]), int(mask.sum()), float(t_a[mask][k])


@contextlib.contextmanager
def solver_compile(mode: str) -> Iterator[None]:
    """Run with SOLVER_COMPILE=mode (auto | always | never), then restore it."""
    old = os.environ.get("SOLVER_COMPILE")
    os.environ["SOLVER_COMPILE"] = mode
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SOLVER_COMPILE", None)
        else:
            os.environ["SOLVER_COMPILE"] = old


def section_inproc(n_orig: int, n_warm: int) -> dict[str, Any]:
    import numpy as np

    from bench.jobs import original_solve, reference_solve, service_job
    from shared.engine import simulate as simulation

    out: dict[str, Any] = {}
    for name in JOB_NAMES:
        job = service_job(name)
        first_s, first = timed(simulation.simulate, job)  # cache miss in this process
        with solver_compile("never"):  # the same configuration, interpreted (CasADi's VM)
            interp_first_s, _ = timed(simulation.simulate, job)
        per_round = -(-n_warm // n_orig)  # ceil
        orig_s, orig_integr, warm_s, warm_timings, interp_s = [], [], [], [], []
        orig_sol = None
        for _ in range(n_orig):  # interleaved: original, then service and interpreted in turn
            t, orig_sol = timed(original_solve, job)
            orig_s.append(t)
            orig_integr.append(float(getattr(orig_sol.integration_time, "value", orig_sol.integration_time)))
            for _ in range(per_round):
                t, res = timed(simulation.simulate, job)
                warm_s.append(t)
                warm_timings.append(res["timings"])
                with solver_compile("never"):
                    interp_s.append(timed(simulation.simulate, job)[0])
        svc_t = np.asarray(res["columns"]["Time [s]"], dtype=float)
        svc_v = np.asarray(res["columns"]["Voltage [V]"], dtype=float)
        orig_t = np.asarray(orig_sol.t, dtype=float)
        orig_v = np.asarray(orig_sol["Voltage [V]"].entries, dtype=float)
        ref_s, ref = timed(reference_solve, job, np.concatenate([svc_t, orig_t]))
        ref_end = float(ref.t[-1])
        dv_svc_orig, n1, t1 = _max_dv(svc_t, svc_v, orig_sol, float(orig_t[-1]))
        dv_svc_ref, n2, _ = _max_dv(svc_t, svc_v, ref, ref_end)
        dv_orig_ref, n3, _ = _max_dv(orig_t, orig_v, ref, ref_end)
        # the original's answer read on the service's grid (what svc-orig compares with) vs the reference
        common = svc_t[svc_t <= min(float(orig_t[-1]), ref_end) + 1e-9]
        v_orig_interp = np.asarray(orig_sol["Voltage [V]"](common), dtype=float).ravel()
        dv_orig_interp_ref, _, _ = _max_dv(common, v_orig_interp, ref, ref_end)
        o, w = med(orig_s), med(warm_s)
        out[name] = {
            "label": LABELS[name],
            "in_process_first_s": first_s,
            "first_timings": first["timings"],
            "original_s": stats(orig_s),
            "original_integration_s": stats(orig_integr),
            "warm_s": stats(warm_s),
            "warm_solve_s": stats([x["solve_s"] for x in warm_timings]),
            "warm_cache": sorted({x["cache"] for x in warm_timings}),
            "ratio_original_over_warm": o / w,
            "compiled": first["timings"]["compiled"],
            "interpreted_first_s": interp_first_s,
            "interpreted_warm_s": stats(interp_s),
            "ratio_original_over_interpreted": o / med(interp_s),
            "termination": {"service": res["termination"], "original": str(orig_sol.termination),
                            "reference": str(ref.termination)},
            "end_time_s": {"service": float(svc_t[-1]), "original": float(orig_t[-1]), "reference": ref_end},
            "points": {"service": len(svc_t), "original": len(orig_t)},
            "dv_service_vs_original_V": dv_svc_orig,
            "dv_service_vs_reference_V": dv_svc_ref,
            "dv_original_vs_reference_V": dv_orig_ref,
            "dv_original_interpolated_vs_reference_V": dv_orig_interp_ref,
            "dv_service_vs_original_at_s": t1,
            "dv_points": {"service_vs_original": n1, "service_vs_reference": n2, "original_vs_reference": n3},
            "reference_solve_s": ref_s,
            "_warm_timings": warm_timings,
        }
        say(f"  {name}: original {fmt_s(o)}, warm {fmt_s(w)} (compiled={first['timings']['compiled']}), "
            f"ratio {o / w:.1f}x; interpreted {fmt_s(med(interp_s))}, ratio {o / med(interp_s):.1f}x")
        say(f"  {name}: "
            f"dV svc-orig {dv_svc_orig * 1e3:.3f} mV, svc-ref {dv_svc_ref * 1e3:.3f} mV, "
            f"orig-ref {dv_orig_ref * 1e3:.3f} mV")
    return out


# ---------------------------------------------------------------------------
# 3. overhead outside the solver, and the solver-process round trip
# ---------------------------------------------------------------------------
def _cum(st: pstats.Stats, file_tail: str, func: str) -> float:
    total = 0.0
    for (filename, _, fn), (_, _, _, ct, _) in st.stats.items():  # type: ignore[attr-defined]
        if fn == func and filename.replace("\\", "/").endswith(file_tail):
            total += ct
    return total


def section_overhead(inproc: Optional[dict], n: int, show_profile: bool) -> dict[str, Any]:
    from bench.jobs import service_job
    from shared.engine import simulate as simulation

    job = service_job("dfn_cell")
    if inproc and "dfn_cell" in inproc:
        timings = inproc["dfn_cell"]["_warm_timings"]
    else:
        simulation.simulate(job)
        timings = [simulation.simulate(job)["timings"] for _ in range(n)]
    shares = [(t["total_s"] - t["solve_s"]) / t["total_s"] for t in timings if t["total_s"] > 0]
    # where the time goes in a warm call (cProfile adds its own overhead: read shares, not ms)
    simulation.simulate(job)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        simulation.simulate(job)
    prof.disable()
    st = pstats.Stats(prof)
    total = _cum(st, "shared/engine/simulate.py", "simulate")
    parts = {
        "simulate (total)": total,
        "plan (per-job numbers)": _cum(st, "shared/engine/plan.py", "plan"),
        "Simulation.solve (PyBaMM)": _cum(st, "pybamm/simulation/simulation.py", "solve"),
        "  compiled IDAKLU solve": _cum(st, "~", "<built-in method pybammsolvers.idaklu.solve>"),
        "  IDAKLU _post_process_solution": _cum(st, "pybamm/solvers/idaklu_solver.py", "_post_process_solution"),
        "  consistent initialisation": _cum(st, "pybamm/solvers/idaklu_solver.py", "_set_consistent_initialization"),
        "  _set_initial_conditions": _cum(st, "pybamm/solvers/base_solver.py", "_set_initial_conditions"),
        "result (columns, summary)": _cum(st, "shared/engine/results.py", "result"),
    }
    breakdown = {k: {"s_per_call": v / n, "share": (v / total if total else float("nan"))} for k, v in parts.items()}
    if show_profile:
        say("  cProfile of warm DFN cell calls, top 20 by cumulative time:")
        st.sort_stats("cumulative").print_stats(20)
    return {"overhead_share": stats(shares), "timings_n": len(timings), "profile_calls": n,
            "profile_breakdown": breakdown}


def section_ipc(n: int) -> dict[str, Any]:
    from bench.jobs import service_job
    from shared.engine import simulate as simulation
    from shared.engine.solver_process import SolverProcess

    job = service_job("dfn_cell")
    simulation.simulate(job)
    sp = SolverProcess()
    try:
        # the child logs JSON lines to the stderr it inherits at spawn: give it a file instead
        child_log = tempfile.NamedTemporaryFile(prefix="bench-solver-", suffix=".log", delete=False)
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(child_log.fileno(), 2)
            first_s, _ = timed(sp.run, job, 120)  # a Job in, the result out (SimulationError raised)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            child_log.close()
        direct, ipc, child_total, gap = [], [], [], []
        for _ in range(n):
            t, _ = timed(simulation.simulate, job)
            direct.append(t)
            t, result = timed(sp.run, job, 60)
            ipc.append(t)
            child_total.append(result["timings"]["total_s"])
            gap.append(t - result["timings"]["total_s"])
        pid = sp.pid
    finally:
        sp.close()
    d, r = med(direct), med(ipc)
    return {"solver_process_first_job_s": first_s, "direct_s": stats(direct), "round_trip_s": stats(ipc),
            "child_simulate_total_s": stats(child_total), "ipc_overhead_s": r - d,
            "ipc_overhead_share": (r - d) / r if r else float("nan"),
            "ipc_overhead_vs_child_s": med(gap), "ipc_overhead_vs_child_share": med(gap) / r if r else float("nan"),
            "solver_pid": pid, "solver_log": child_log.name}


# ---------------------------------------------------------------------------
# goals and printing
# ---------------------------------------------------------------------------
def goals(res: dict[str, Any]) -> list[dict[str, Any]]:
    g: list[dict[str, Any]] = []

    def add(goal: str, target: str, measured: Optional[float], unit: str, ok: Optional[bool],
            note: str = "") -> None:
        g.append({"goal": goal, "target": target, "measured": measured, "unit": unit,
                  "pass": ok, "note": note})

    cold = res.get("cold")
    m = cold["dfn_cell"]["import_plus_first_s"]["median"] if cold else None
    add("cold start, DFN cell: import + first job", "<= 3 s", m, "s", None if m is None else m <= 3.0)
    inproc = res.get("inproc")
    for name, target in (("dfn_cell", 20.0), ("us06", 5.0)):
        m = inproc[name]["ratio_original_over_warm"] if inproc else None
        add(f"speed-up original/warm, {name}", f">= {target:g}x", m, "x", None if m is None else m >= target)
        m = inproc[name]["ratio_original_over_interpreted"] if inproc else None
        add(f"  for comparison: interpreted (SOLVER_COMPILE=never), {name}", "-", m, "x", None)
    for name in JOB_NAMES:
        for key, what in (("dv_service_vs_original_V", "service vs original"),
                          ("dv_service_vs_reference_V", "service vs 1e-9 reference")):
            m = inproc[name][key] * 1e3 if inproc else None
            note = ""
            if inproc and key == "dv_service_vs_original_V" and m > 1.0:
                r = inproc[name]
                note = (f"original itself is {r['dv_original_vs_reference_V'] * 1e3:.3f} mV from the reference on "
                        f"its {r['points']['original']}-point grid; {r['dv_original_interpolated_vs_reference_V'] * 1e3:.1f}"
                        f" mV once interpolated onto the service grid (max at t={r['dv_service_vs_original_at_s']:.0f} s)")
            add(f"max |dV| {what}, {name}", "<= 1 mV", m, "mV", None if m is None else m <= 1.0, note)
    ov = res.get("overhead")
    m = ov["overhead_share"]["median"] * 100 if ov else None
    add("overhead outside the solver, warm DFN cell", "<= 20 %", m, "%", None if m is None else m <= 20.0)
    st = res.get("store")
    m = st["store_median_ms"] if st else None
    add("job store: ms added per warm DFN cell job on the worker (median)", "<= 10 ms", m, "ms",
        None if m is None else m <= 10.0)
    m = st["store_share_of_solve_plus_store"] * 100 if st else None
    add("job store: share of (warm DFN solve + store), in-process", "<= 15 %", m, "%",
        None if m is None else m <= 15.0)
    sy = res.get("sync")
    if st and sy and sy["async_callback"].get("n"):
        m = st["store_median_ms"] / (sy["async_callback"]["p50_s"] * 1e3) * 100
        add("  for comparison: store ms / one warm job end to end (callback p50, sync section)", "-", m, "%", None)
    m = sy["p50_difference_s"] * 1e3 if sy else None
    add("sync reply p50 - callback arrival p50 (one job at a time)", "<= +100 ms", m, "ms",
        None if m is None else m <= 100.0)
    return g


def fmt_num(x: Optional[float], unit: str) -> str:
    if x is None:
        return "not run"
    if unit == "x":
        return f"{x:.1f}x"
    if unit == "mV":
        return f"{x:.3f} mV"
    if unit == "%":
        return f"{x:.1f} %"
    if unit == "sims/s":
        return f"{x:.1f}/s"
    if unit == "ms":
        return f"{x:.1f} ms"
    return f"{x:.2f} {unit}"


def print_report(res: dict[str, Any]) -> None:
    meta = res["meta"]
    say("")
    say("=" * 100)
    say(f"bench: PyBaMM {meta['pybamm']}, Python {meta['python']}, {meta['cpus']} CPUs, "
        f"{'QUICK' if meta['quick'] else 'full'} run, commit {meta['commit']}")
    say(f"load average at start {meta['load_start']}, at end {meta.get('load_end')}")
    if meta.get("uncommitted"):
        say(f"working tree differs from the commit in: {', '.join(meta['uncommitted'])}")
    say(meta["precompiled"])
    for sec, (a, b) in res.get("load", {}).items():
        say(f"  {sec:9s} load {a} -> {b}")
    peak = max([meta["load_start"][0], (meta.get("load_end") or [0])[0]]
               + [x[0] for ab in res.get("load", {}).values() for x in ab])
    if peak > 0.75 * (meta["cpus"] or 1):
        say(f"  WARNING: 1-min load reached {peak} on {meta['cpus']} CPUs (this bench keeps about one busy): other "
            "work was running; timings, ratios and batch throughput are noisy (compare medians with [min..max])")
    if "cold" in res:
        say("\n[1] cold start in a fresh interpreter (median [min..max])")
        rows = []
        for name in JOB_NAMES:
            c = res["cold"][name]
            t = c["runs"][-1]["timings"]
            rows.append([name, fmt_spread(c["import_s"]), fmt_spread(c["first_job_s"]),
                         fmt_s(c["import_plus_first_s"]["median"]), f"{t['build_s']:.3f}/{t['solve_s']:.3f}",
                         fmt_s(c["process_wall_s"]["median"])])
        say(table(["job", "import shared.engine.simulate", "first simulate(job)", "import+first",
                   "build/solve s (last)", "process wall"], rows))
    if "inproc" in res:
        say("\n[2] per request: original path (new Simulation + CasadiSolver safe 1e-6) vs warm service "
            "(median [min..max])")
        rows = []
        for name in JOB_NAMES:
            r = res["inproc"][name]
            rows.append([name, fmt_spread(r["original_s"]), fmt_spread(r["warm_s"]),
                         f"{r['ratio_original_over_warm']:.1f}x", fmt_s(r["in_process_first_s"]),
                         "yes" if r["compiled"] else "no",
                         fmt_s(r["interpreted_warm_s"]["median"]), f"{r['ratio_original_over_interpreted']:.1f}x"])
        say(table(["job", "original per request", "service warm simulate()", "orig/warm",
                   "service 1st call", "precompiled", "interpreted warm", "orig/interp"], rows))
        say("\n    accuracy: max |dV| on the service's grid (original interpolated linearly by PyBaMM); "
            "reference = IDAKLU 1e-9 at the exact points;\n    orig(interp)-ref = the original's answer read on "
            "the service's grid vs the reference (interpolation error of its coarser grid)")
        rows = []
        for name in JOB_NAMES:
            r = res["inproc"][name]
            e = r["end_time_s"]
            rows.append([name, f"{r['dv_service_vs_original_V'] * 1e3:.3f} @{r['dv_service_vs_original_at_s']:.0f}s",
                         f"{r['dv_service_vs_reference_V'] * 1e3:.3f}",
                         f"{r['dv_original_interpolated_vs_reference_V'] * 1e3:.3f}",
                         f"{r['dv_original_vs_reference_V'] * 1e3:.3f}",
                         f"{r['points']['service']}/{r['points']['original']}",
                         f"{e['service']:.2f}/{e['original']:.2f}/{e['reference']:.2f}",
                         r["termination"]["service"]])
        say(table(["job", "svc-orig mV @t", "svc-ref mV", "orig(interp)-ref mV", "orig-ref mV (orig grid)",
                   "points svc/orig",
                   "end s svc/orig/ref", "termination (svc)"], rows))
    if "overhead" in res:
        o = res["overhead"]
        say(f"\n[3] overhead outside the solver, warm DFN cell: (total_s - solve_s)/total_s = "
            f"{o['overhead_share']['median'] * 100:.2f} % (median of {o['timings_n']}, max "
            f"{o['overhead_share']['max'] * 100:.2f} %)")
        say(f"    cProfile of {o['profile_calls']} warm calls (share of simulate):")
        for k, v in o["profile_breakdown"].items():
            say(f"      {k:34s} {v['s_per_call'] * 1e3:8.2f} ms/call  {v['share'] * 100:6.1f} %")
    if "ipc" in res:
        p = res["ipc"]
        say(f"\n    SolverProcess round trip (warm DFN cell): {fmt_spread(p['round_trip_s'])}; direct simulate "
            f"{fmt_spread(p['direct_s'])}")
        say(f"    IPC overhead = round trip - the child's own total_s: {fmt_s(p['ipc_overhead_vs_child_s'])} "
            f"({p['ipc_overhead_vs_child_share'] * 100:.1f} % of the round trip); difference of medians "
            f"(round trip - direct, load-sensitive) {fmt_s(p['ipc_overhead_s'])}; first job through a new "
            f"solver process (spawn + import + build + solve) {fmt_s(p['solver_process_first_job_s'])}")
    if "store" in res:
        st = res["store"]

        def ms(d: dict) -> str:
            return f"{d['median_ms']:.1f} [{d['min_ms']:.1f}..{d['max_ms']:.1f}]"

        say(f"\n[store] the job store's cost to a warm DFN cell job on the worker: Firestore emulator, "
            f"{st['n']} jobs interleaved with warm simulate(job); result {st['result_rows']} rows, "
            f"{st['result_gzip_bytes']} B gzip in {st['result_chunks']} chunk(s) (median [min..max] ms)")
        say(table(["peek", "claim wait (after the solve)", "finish (result + outcome)", "record_callback",
                   "warm simulate", "simulate + store", "store added (median)", "store / (solve + store)"],
                  [[ms(st["store_peek"]), ms(st["store_claim_wait"]), ms(st["store_finish"]),
                    ms(st["store_record_callback"]), ms(st["warm_simulate"]), ms(st["warm_simulate_with_store"]),
                    f"{st['store_median_ms']:.1f}", f"{st['store_share_of_solve_plus_store'] * 100:.1f} %"]]))
        f = st["first_job_ms"]
        say(f"    first job (new channel): peek {f['peek']:.1f}, claim wait {f['claim_wait']:.1f}, finish "
            f"{f['finish']:.1f}, record_callback {f['record_callback']:.1f} ms; emulator up in "
            f"{st['emulator_start_s']} s")
        sy = res.get("sync")
        if sy and sy["async_callback"].get("n"):
            cbp50 = sy["async_callback"]["p50_s"] * 1e3
            say(f"    end to end (sync section, one warm job at a time): callback p50 {cbp50:.0f} ms; the store's "
                f"{st['store_median_ms']:.1f} ms is {st['store_median_ms'] / cbp50 * 100:.1f} % of it")
    if "e2e" in res:
        e = res["e2e"]
        say(f"\n[4] end to end: stack with {e['worker_processes']} worker processes, THREADS="
            f"{e['worker_threads']}, legacy /cell/simulate with Prefer: {e.get('prefer', '-')}, stack up in "
            f"{e['stack_start_s']} s")
        rows = []
        for phase in ("cold", "warm"):
            if phase not in e:
                continue
            x = e[phase]
            rows.append([phase, f"{x['results']}/{x['jobs']}", x["succeeded"], x["deliveries"],
                         fmt_s(x["submit_all_s"]), fmt_s(x["latency_p50_s"]), fmt_s(x["latency_p95_s"]),
                         fmt_s(x["latency_max_s"]), f"{x['jobs_per_min']}", fmt_s(x["worker_solve_p50_s"])])
        say(table(["burst", "results", "ok", "callbacks", "submit all", "p50", "p95", "max", "jobs/min",
                   "worker solve p50"], rows))
        if e.get("worker_pushes_refused_busy") is not None:
            say(f"    pushes refused by a busy worker instance (redelivered after Pub/Sub's back-off), both bursts: "
                f"{e['worker_pushes_refused_busy']}")
        say("    where the latency goes (p50 / max, from the callback's jobStarted/jobFinished):")
        rows = []
        for phase in ("cold", "warm"):
            if phase not in e:
                continue
            p50, mx = e[phase]["phase_p50_s"], e[phase]["phase_max_s"]
            rows.append([phase] + [f"{fmt_s(p50[k])} / {fmt_s(mx[k])}"
                                   for k in ("submit_to_start", "start_to_finish", "finish_to_arrival")])
        say(table(["burst", "submit -> worker starts", "worker start -> finish", "finish -> callback arrives"],
                  rows))
        say("    peak RSS by process (VmHWM):")
        say(table(["pid", "role", "parent", "peak RSS MB"],
                  [[p["pid"], p["role"], p["ppid"], p["peak_rss_MB"]] for p in e["processes"]]))
        solvers = [p["peak_rss_MB"] for p in e["processes"] if p["role"] == "pybamm-solver"]
        say(f"    peak RSS per solver process: {', '.join(f'{x} MB' for x in solvers) or '-'}; peak of the "
            f"worker group's summed RSS {e['peak_group_rss_MB']} MB ({e['rss_samples']} samples)")
    if "sync" in res:
        sy = res["sync"]

        def pp(d: dict) -> list[str]:
            if not d.get("n"):
                return ["-", "-", "-", "0"]
            return [f"{d['p50_s'] * 1e3:.0f} ms", f"{d['p90_s'] * 1e3:.0f} ms",
                    f"{d['min_s'] * 1e3:.0f}..{d['max_s'] * 1e3:.0f} ms", str(d["n"])]

        say(f"\n[sync] the Java Job Manager's synchronous reply vs the callback, warm stack "
            f"({sy['worker_processes']} worker processes), one legacy cell job at a time, alternating "
            f"(warmed with {sy['warmup_jobs']} jobs)")
        say(table(["", "p50", "p90", "min..max", "n"], [
            ["sync: POST -> 200 reply (original body)"] + pp(sy["sync_reply"]),
            ["async: POST (respond-async) -> callback arrives"] + pp(sy["async_callback"]),
            ["  async: POST -> 202"] + pp(sy["async_ack"]),
            ["  sync jobs: POST -> their own callback arrives"] + pp(sy["sync_jobs_own_callback"]),
            ["  sync jobs: reply - own callback (paired)"] + pp(sy["sync_minus_own_callback"])]))
        ph = sy["async_phase_p50_s"]
        say(f"    sync - callback: p50 {sy['p50_difference_s'] * 1e3:+.0f} ms, p90 "
            f"{sy['p90_difference_s'] * 1e3:+.0f} ms (goal: p50 within +100 ms)")
        say(f"    async job phases p50 (callback body's jobStarted/jobFinished): submit -> worker starts "
            f"{fmt_s(ph['submit_to_start'])}, start -> finish {fmt_s(ph['start_to_finish'])} (solve "
            f"{fmt_s(sy['async_worker_solve_p50_s'])}), finish -> callback arrives {fmt_s(ph['finish_to_arrival'])}")
    say("\n[goals]")
    say(table(["goal", "target", "measured", "result"],
              [[g["goal"], g["target"], fmt_num(g["measured"], g["unit"]),
                ("not run" if g["measured"] is None else "-") if g["pass"] is None
                else ("PASS" if g["pass"] else "FAIL")] for g in res["goals"]]))
    for g in res["goals"]:
        if g.get("note"):
            say(f"  note ({g['goal']}): {g['note']}")
    say("=" * 100)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return None
    if hasattr(obj, "item"):
        return obj.item()
    return obj


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="original per-request path vs this service, side by side")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and a small end-to-end burst")
    ap.add_argument("--e2e-jobs", type=int, default=None, help="jobs per end-to-end burst (default 50; 10 with --quick)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here, e.g. out/bench.json")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}")
    ap.add_argument("--profile", action="store_true", help="print the cProfile top 20 of warm DFN cell calls")
    ap.add_argument("--store-jobs", type=int, default=None,
                    help="store: jobs timed (default 30; 10 with --quick)")
    ap.add_argument("--sync-jobs", type=int, default=None,
                    help="sync: jobs of each kind, sync and async (default 20; 6 with --quick)")
    ap.add_argument("--no-warm-burst", action="store_true", help="end to end: the cold burst only")
    ap.add_argument("--worker-threads", type=int, default=None,
                    help="experiment: start the worker function with THREADS=N (the stack uses 2)")
    args = ap.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        ap.error(f"unknown sections {bad}; choose from {SECTIONS}")
    quick = args.quick
    e2e_jobs = args.e2e_jobs if args.e2e_jobs is not None else (10 if quick else 50)
    reps = dict(cold=1 if quick else 3, orig=2 if quick else 5, warm=4 if quick else 10,
                prof=3 if quick else 10, ipc=3 if quick else 10,
                store=args.store_jobs if args.store_jobs is not None else (10 if quick else 30),
                sync=args.sync_jobs if args.sync_jobs is not None else (6 if quick else 20))
    logging.getLogger("shared").setLevel(logging.WARNING)

    res: dict[str, Any] = {"meta": {
        "quick": quick, "python": platform.python_version(), "pybamm": _pybamm_version(),
        "cpus": os.cpu_count(), "load_start": load(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "commit": _commit(), "uncommitted": _uncommitted(), "repetitions": reps, "e2e_jobs": e2e_jobs,
        "drive_cycle_path": os.environ.get("DRIVE_CYCLE_PATH"), "precompiled": _precompiled()}, "load": {}}
    say(res["meta"]["precompiled"])
    t_all = time.perf_counter()

    def run(name: str, fn: Callable[[], Any]) -> None:
        if name not in only:
            return
        say(f"[{name}] ...")
        before = load()
        t0 = time.perf_counter()
        res[name] = fn()
        res["load"][name] = (before, load())
        say(f"[{name}] done in {time.perf_counter() - t0:.1f} s")

    run("cold", lambda: section_cold(reps["cold"]))
    run("inproc", lambda: section_inproc(reps["orig"], reps["warm"]))
    run("overhead", lambda: section_overhead(res.get("inproc"), reps["prof"], args.profile))
    run("ipc", lambda: section_ipc(reps["ipc"]))

    def store():
        from bench import store as store_mod

        return store_mod.run(reps["store"], log=lambda m: say(m))

    run("store", store)

    def e2e():
        from bench import e2e as e2e_mod

        return e2e_mod.run(e2e_jobs, worker_processes=2, warm_burst=not args.no_warm_burst,
                           log=lambda m: say(m), worker_threads=args.worker_threads)

    run("e2e", e2e)

    def sync():
        from bench import sync as sync_mod

        return sync_mod.run(reps["sync"], log=lambda m: say(m))

    run("sync", sync)

    def ageing():
        from bench import ageing as ageing_mod

        return ageing_mod.run(quick, log=lambda m: say(m))

    run("ageing", ageing)
    res["meta"]["load_end"] = load()
    res["meta"]["total_s"] = round(time.perf_counter() - t_all, 1)
    res["goals"] = goals(res)
    print_report(res)
    say(f"total {res['meta']['total_s']} s")
    if args.json:
        path = args.json if args.json.is_absolute() else Path.cwd() / args.json
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_jsonable(res), indent=2))
        say(f"wrote {path}")
    return 0


def _precompiled() -> str:
    import io

    from shared.engine import build_precompiled, precompiled

    text = io.StringIO()
    build_precompiled.check(out=text)
    return f"precompiled solver functions (SOLVER_COMPILE={precompiled.mode()}): " + text.getvalue().strip()


def _pybamm_version() -> str:
    import pybamm

    return pybamm.__version__


def _uncommitted() -> list[str]:
    """Files that differ from the commit (the run measured the working tree, not only the commit)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                             capture_output=True, text=True, timeout=10).stdout
    except Exception:  # noqa: BLE001
        return []
    return [line[3:] for line in out.splitlines() if line.strip()]


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "?"
    except Exception:  # noqa: BLE001
        return "?"


if __name__ == "__main__":
    sys.exit(main())

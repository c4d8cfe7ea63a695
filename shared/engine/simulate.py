"""One physics-based cell job in, one result dictionary out: plan, build (or take
from the cache), solve, summarise. This module knows nothing of HTTP, Pub/Sub or
callbacks; the solver process (``solver_process``) runs it in a child.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Optional

import pybamm

from shared.engine import cache
from shared.engine.build import built_for
from shared.engine.checkpoint import Checkpoint, Segment
from shared.engine.errors import SimulationError
from shared.engine.plan import plan as plan_job
from shared.engine.results import result as result_of

log = logging.getLogger(__name__)


def plan_key(job) -> str:
    """The configuration a job belongs to (jobs with one key share a built model)."""
    return plan_job(job).key


def simulate(job, compiled: Optional[bool] = None, segment: Optional[Segment] = None):
    """Run one job; return a JSON-ready result. Raises ``SimulationError``.
    ``compiled`` overrides ``SOLVER_COMPILE`` (the precompile build uses it). ``segment``
    (a study that can run in segments: ageing) says where to resume from and for how
    long; such a run returns a ``Checkpoint`` instead of a result when its time is up."""
    t_start = time.perf_counter()
    if segment is not None:
        if not hasattr(job.protocol, "_segment"):
            raise SimulationError(f"a {job.protocol.type} job does not run in segments")
        job = job.model_copy(deep=True)
        job.protocol._segment = segment
    plan = plan_job(job)
    entry, cache_state = built_for(job, plan, compiled=compiled)
    log.info(
        "model cache %s key=%s compiled=%s entries=%d hits=%d misses=%d rss_mb=%.0f",
        cache_state, plan.key[:12], entry.compiled, len(cache.MODELS), cache.MODELS.hits,
        cache.MODELS.misses, cache.rss_mb(),
    )
    t_solve = time.perf_counter()
    try:
        solution = plan.protocol.solve(entry.sim, plan)
    except pybamm.SolverError as exc:
        raise _solver_failure(exc, job, plan) from exc
    except (ValueError, KeyError, TypeError, ZeroDivisionError, pybamm.ModelError) as exc:
        raise _solver_failure(exc, job, plan) from exc
    solve_s = time.perf_counter() - t_solve
    entry.settle_compiled()
    if solution is None:
        raise SimulationError("the experiment produced no solution (infeasible first step)")
    if isinstance(solution, Checkpoint):
        cache.trim_to_memory()
        return solution
    try:
        result = result_of(job, plan, solution)
    finally:
        del solution
        if plan.protocol.keeps_full_state:
            gc.collect()
    cache.trim_to_memory()
    result["timings"] = {
        "cache": cache_state,
        "compiled": entry.compiled,
        "build_s": round(entry.built_s, 4) if cache_state == "miss" else 0.0,
        "solve_s": round(solve_s, 4),
        "total_s": round(time.perf_counter() - t_start, 4),
    }
    return result


def _solver_failure(exc: Exception, job=None, plan=None) -> SimulationError:
    """A solve-time exception as a sentence naming the input to change (``failures``)."""
    from shared.engine import failures

    return failures.translate(exc, job, plan)

"""The ``timings`` record of a result (as ``shared.engine.simulate`` writes it)."""

from __future__ import annotations

import time


def timings(cache_state: str, built_s: float, solve_s: float, t_start: float,
            compiled: bool = False) -> dict:
    """cache "hit"/"miss"/"none"; the build's seconds count only on a miss; total since
    ``t_start`` (``time.perf_counter()``)."""
    return {
        "cache": cache_state,
        "compiled": compiled,
        "build_s": round(built_s, 4) if cache_state == "miss" else 0.0,
        "solve_s": round(solve_s, 4),
        "total_s": round(time.perf_counter() - t_start, 4),
    }

"""Cold start, measured in a fresh interpreter: ``python -m bench.cold JOB_NAME``.

Prints one JSON line: the time to ``import shared.engine.simulate`` (which imports
PyBaMM) and the time of the first ``simulate(job)`` (plan + build + first solve).
"""

from __future__ import annotations

import json
import sys
import time

T_MAIN = time.perf_counter()

from bench.jobs import setup_env  # noqa: E402  (no PyBaMM import)

setup_env()


def main(argv: list[str]) -> int:
    name = argv[0]
    t0 = time.perf_counter()
    from shared.engine import simulate as simulation  # noqa: F401  - imports pybamm, numpy, casadi

    import_s = time.perf_counter() - t0
    from bench.jobs import service_job

    job = service_job(name)  # pydantic only: negligible
    t1 = time.perf_counter()
    result = simulation.simulate(job)
    first_job_s = time.perf_counter() - t1
    print(json.dumps({
        "job": name,
        "import_s": import_s,
        "first_job_s": first_job_s,
        "import_plus_first_s": import_s + first_job_s,
        "timings": result["timings"],
        "termination": result["termination"],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

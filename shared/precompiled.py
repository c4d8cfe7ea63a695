"""Precompiled solver functions for the configurations this service sees most.

IDAKLU can run its CasADi functions (residual, Jacobian, events, outputs) as
native code instead of CasADi's interpreter: warm solves get about 1.3x faster,
but compiling one configuration takes 10-20 s of gcc, far too long for an
invocation. So the build compiles the standard configurations ahead of time
into ``aot/`` and lists them in ``aot/manifest.json``; at run time a
configuration uses compiled functions only when it is listed (``SOLVER_COMPILE``
= ``auto``, the default) and everything else runs interpreted, as before.

    python -m shared.precompiled            # build aot/ (needs gcc; ~1-2 min)
    python -m shared.precompiled --check    # what is listed, and whether it fits this install

The libraries are built with portable flags (``-march=x86-64-v2``, not
``-march=native``), so a build machine's CPU features never reach a runtime
CPU that lacks them. A library is found by a hash of the CasADi functions, so a
different PyBaMM or CasADi version simply finds nothing; the manifest records
both versions and is ignored when they differ.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Optional

from shared.settings import REPO_ROOT

AOT_DIR = Path(os.environ.get("PYBAMM_CASADI_AOT_CACHE") or REPO_ROOT / "aot")
# PyBaMM reads this variable when it compiles or loads a library.
os.environ["PYBAMM_CASADI_AOT_CACHE"] = str(AOT_DIR)
MANIFEST = "manifest.json"
PORTABLE_FLAGS = ("-O3", "-fPIC", "-march=x86-64-v2")

# SOLVER_COMPILE: auto (default) = listed configurations only; always = every
# configuration (the first job of each pays the compile); never = interpreted.
_MODES = {"": "auto", "auto": "auto", "always": "always", "1": "always", "true": "always", "yes": "always",
          "never": "never", "0": "never", "false": "never", "no": "never"}


def mode() -> str:
    value = os.environ.get("SOLVER_COMPILE", "").strip().lower()
    if value not in _MODES:
        raise ValueError(f"SOLVER_COMPILE must be one of auto, always, never (got {value!r})")
    return _MODES[value]


def standard_jobs() -> dict[str, Any]:
    """The configurations the build compiles: the Java Job Manager's two job kinds
    and the native API's constant-current default for each model."""
    from shared.schema import Job, LegacyRequest

    legacy = {"time": 1.0, "upperVoltage": 4.2, "lowerVoltage": 2.5, "nominalCell": 5.0, "controlCurrent": 5.0}
    jobs = {
        "legacy cell (DFN, constant current)": LegacyRequest.model_validate(
            {**legacy, "simulationType": "cell"}).to_job("cell"),
        "legacy drive cycle (DFN, US06)": LegacyRequest.model_validate(
            {**legacy, "simulationType": "driveCycle", "time": 0.0}).to_job("driveCycle"),
    }
    for model in ("DFN", "SPMe", "SPM"):
        jobs[f"native {model} constant current"] = Job.model_validate(
            {"model": {"name": model}, "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 600}})
    return jobs


def _versions() -> dict[str, str]:
    import casadi
    import pybamm

    return {"pybamm": pybamm.__version__, "casadi": casadi.__version__, "machine": platform.machine()}


@functools.lru_cache(maxsize=1)
def _listed() -> frozenset[str]:
    """Plan keys of the precompiled configurations that fit this install."""
    try:
        manifest = json.loads((AOT_DIR / MANIFEST).read_text())
    except (OSError, ValueError):
        return frozenset()
    if manifest.get("versions") != _versions():
        return frozenset()
    return frozenset(manifest.get("configurations", {}))


def use_compiled(plan_key: str) -> bool:
    """Whether a configuration is built with compiled solver functions."""
    m = mode()
    return m == "always" or (m == "auto" and plan_key in _listed())


@contextlib.contextmanager
def _portable_flags() -> Iterator[None]:
    """PyBaMM's IDAKLU set-up compiles with -march=native and offers no setting for
    the flags; for the build only, hand it the portable ones."""
    import pybamm.codegen.compilation as compilation
    import pybamm.solvers.idaklu_solver as idaklu_solver

    original = idaklu_solver.aot_compile
    idaklu_solver.aot_compile = functools.partial(compilation.aot_compile, flags=PORTABLE_FLAGS)
    try:
        yield
    finally:
        idaklu_solver.aot_compile = original


def build(names: Optional[list[str]] = None, out=sys.stdout) -> dict[str, Any]:
    """Compile the standard configurations (or those named) into AOT_DIR and write the manifest."""
    os.environ["SOLVER_COMPILE"] = "always"
    from shared import simulation

    AOT_DIR.mkdir(parents=True, exist_ok=True)
    jobs = standard_jobs()
    unknown = sorted(set(names or []) - set(jobs))
    if unknown:
        raise SystemExit(f"unknown configuration(s) {unknown}; choose from {sorted(jobs)}")
    configurations = {}
    with _portable_flags():
        for label, job in jobs.items():
            if names and label not in names:
                continue
            t0 = time.perf_counter()
            try:
                result = simulation.simulate(job)
            except simulation.SimulationError as exc:  # e.g. a drive cycle not installed here
                print(f"{label}: skipped: {exc}", file=out, flush=True)
                continue
            key = simulation.plan_key(job)
            configurations.setdefault(key, []).append(label)
            print(f"{label}: {time.perf_counter() - t0:.1f} s, key {key[:12]}, "
                  f"compiled={result['timings']['compiled']}", file=out, flush=True)
    manifest = {"versions": _versions(), "flags": list(PORTABLE_FLAGS), "configurations": configurations}
    (AOT_DIR / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    _listed.cache_clear()
    return manifest


def check(out=sys.stdout) -> int:
    path = AOT_DIR / MANIFEST
    if not path.is_file():
        print(f"{path}: none (run python -m shared.precompiled)", file=out)
        return 1
    manifest = json.loads(path.read_text())
    fits = manifest.get("versions") == _versions()
    print(f"{path}: built for {manifest.get('versions')}; this install {_versions()}: "
          f"{'fits' if fits else 'does NOT fit (ignored)'}", file=out)
    for key, labels in manifest.get("configurations", {}).items():
        print(f"  {key[:12]}  {'; '.join([labels] if isinstance(labels, str) else labels)}", file=out)
    return 0 if fits else 1


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="compile the standard configurations' solver functions into aot/")
    ap.add_argument("--check", action="store_true", help="only report what is precompiled")
    ap.add_argument("--only", action="append", metavar="LABEL", help="one configuration (repeatable)")
    args = ap.parse_args(argv)
    if args.check:
        return check()
    build(args.only)
    return check()


if __name__ == "__main__":
    sys.exit(main())

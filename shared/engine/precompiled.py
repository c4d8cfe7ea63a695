"""Precompiled solver functions for the configurations this service sees most.

IDAKLU can run its CasADi functions (residual, Jacobian, events, outputs) as
native code instead of CasADi's interpreter: warm solves get 1.2-2x faster, but
compiling one configuration takes 10-25 s of gcc, far too long for an
invocation. So the build compiles the standard configurations ahead of time
into ``aot/`` and lists them, with their library files, in
``aot/manifest.json``.

At run time (``SOLVER_COMPILE``):

* ``auto`` (default): a configuration the manifest lists is built with compiled
  functions, and those are *loaded, never compiled*: a library that is missing
  (a different US06 file, a different CasADi build) leaves that function
  interpreted. Nothing runs gcc on a worker.
* ``always``: every configuration is compiled on its first job (PyBaMM's own
  flags, into PyBaMM's temporary cache), unless ``aot/`` already has it.
* ``never``: interpreted only.

    python -m shared.engine.precompiled            # (re)build aot/ (needs gcc; about a minute)
    python -m shared.engine.precompiled --check    # what is listed, and whether it fits this install

Libraries are built with portable flags (``-march=x86-64-v2``), so a build
machine's CPU features never reach a runtime CPU that lacks them. The manifest
records the PyBaMM and CasADi versions and is ignored (with a warning) when they
differ from the running ones.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Optional

from shared.settings import REPO_ROOT

log = logging.getLogger(__name__)

AOT_DIR = Path(os.environ.get("AOT_DIR") or REPO_ROOT / "aot")
MANIFEST = "manifest.json"
PORTABLE_FLAGS = ("-O3", "-fPIC", "-march=x86-64-v2")
LIBRARY_PREFIX = "pybamm_"  # how PyBaMM names its libraries

_MODES = {"": "auto", "auto": "auto", "always": "always", "1": "always", "true": "always", "yes": "always",
          "never": "never", "0": "never", "false": "never", "no": "never"}


def mode() -> str:
    """SOLVER_COMPILE, normalised to auto | always | never."""
    value = os.environ.get("SOLVER_COMPILE", "").strip().lower()
    if value not in _MODES:
        raise ValueError(f"SOLVER_COMPILE must be one of auto, always, never (got {value!r})")
    return _MODES[value]


mode()  # a bad setting stops the process at start-up, not each job


def standard_jobs() -> dict[str, Any]:
    """The configurations the build compiles: the Java Job Manager's two job kinds
    and the native API's constant-current default for each model."""
    from shared.contract.job import JAVA_CELL, JAVA_DRIVE_CYCLE, Job, LegacyRequest

    jobs = {
        "legacy cell (DFN, constant current)": LegacyRequest.model_validate(JAVA_CELL).to_job("cell"),
        "legacy drive cycle (DFN, US06)": LegacyRequest.model_validate(JAVA_DRIVE_CYCLE).to_job("driveCycle"),
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
    path = AOT_DIR / MANIFEST
    if not path.is_file():
        return frozenset()
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("precompiled: %s is unreadable (%s); every configuration runs interpreted", path, exc)
        return frozenset()
    if manifest.get("versions") != _versions():
        log.warning("precompiled: %s was built for %s, this install is %s; every configuration runs interpreted",
                    path, manifest.get("versions"), _versions())
        return frozenset()
    return frozenset(manifest.get("configurations", {}))


def use_compiled(plan_key: str) -> bool:
    """Whether a configuration is built with compiled solver functions."""
    m = mode()
    return m == "always" or (m == "auto" and plan_key in _listed())


# ---------------------------------------------------------------------------
# Where PyBaMM compiles: every caller (IDAKLU set-up, solution observation, the
# algebraic solver) goes through pybamm.codegen.compilation._aot_compile.
# ---------------------------------------------------------------------------
_building = False


def library_name(fns: list) -> str:
    """The file PyBaMM compiles these functions into (its own naming: a hash of
    each function's name and serialised form)."""
    todo = [fn for fn in fns if fn.class_name() != "External"]
    hasher = hashlib.sha1(usedforsecurity=False)
    for fn in todo:
        hasher.update(fn.name().encode())
        hasher.update(b"\0")
        hasher.update(fn.serialize().encode())
        hasher.update(b"\0")
    label = todo[0].name() if len(todo) == 1 else "bundle"
    suffix = ".dylib" if sys.platform == "darwin" else ".dll" if sys.platform == "win32" else ".so"
    return f"{LIBRARY_PREFIX}{label}_{hasher.hexdigest()[:16]}{suffix}"


def _aot_compile(pybamm_aot_compile, fns, **kwargs):
    if _building:  # the build: portable flags, into aot/
        return pybamm_aot_compile(fns, **{**kwargs, "cache_dir": str(AOT_DIR), "flags": PORTABLE_FLAGS})
    if (AOT_DIR / library_name(fns)).is_file():  # precompiled: load it
        return pybamm_aot_compile(fns, **{**kwargs, "cache_dir": str(AOT_DIR)})
    if mode() == "always":  # PyBaMM's own flags and temporary cache
        return pybamm_aot_compile(fns, **kwargs)
    return list(fns)  # auto: never run gcc on a worker; this function stays interpreted


def install() -> None:
    """Route PyBaMM's compiles through ``_aot_compile`` (once per process)."""
    import pybamm.codegen.compilation as compilation

    if not isinstance(compilation._aot_compile, functools.partial):
        compilation._aot_compile = functools.partial(_aot_compile, compilation._aot_compile)


def is_compiled(sim) -> bool:
    """Whether a solved simulation's IDAKLU really runs compiled functions."""
    setup = getattr(sim.solver, "_setup", None) or {}
    fn = setup.get("rootfn_casadi")
    return fn is not None and fn.class_name() == "External"


# ---------------------------------------------------------------------------
# The build
# ---------------------------------------------------------------------------
def build(names: Optional[list[str]] = None, out=sys.stdout) -> dict[str, Any]:
    """Compile the standard configurations (or those named) into a clean AOT_DIR
    and write the manifest. Fails if any configuration could not be compiled."""
    global _building
    from shared.engine import simulate as simulation

    jobs = standard_jobs()
    unknown = sorted(set(names or []) - set(jobs))
    if unknown:
        raise SystemExit(f"unknown configuration(s) {unknown}; choose from {sorted(jobs)}")
    AOT_DIR.mkdir(parents=True, exist_ok=True)
    for old in [*AOT_DIR.glob(f"{LIBRARY_PREFIX}*"), AOT_DIR / MANIFEST]:
        old.unlink(missing_ok=True)
    install()
    configurations: dict[str, dict[str, Any]] = {}
    failed = []
    _building = True
    try:
        for label, job in jobs.items():
            if names and label not in names:
                continue
            t0 = time.perf_counter()
            before = set(AOT_DIR.iterdir())
            try:
                result = simulation.simulate(job, compiled=True)
            except simulation.SimulationError as exc:  # e.g. a drive cycle not installed here
                failed.append(f"{label}: {exc}")
                continue
            if not result["timings"]["compiled"]:
                failed.append(f"{label}: PyBaMM fell back to interpreted functions (see its warning)")
                continue
            key = simulation.plan_key(job)
            conf = configurations.setdefault(key, {"labels": [], "libraries": []})
            conf["labels"].append(label)
            conf["libraries"] = sorted(set(conf["libraries"]) | {p.name for p in set(AOT_DIR.iterdir()) - before})
            print(f"{label}: {time.perf_counter() - t0:.1f} s, key {key[:12]}", file=out, flush=True)
    finally:
        _building = False
    manifest = {"versions": _versions(), "flags": list(PORTABLE_FLAGS), "configurations": configurations}
    (AOT_DIR / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    _listed.cache_clear()
    if failed:
        raise SystemExit("not precompiled:\n  " + "\n  ".join(failed))
    return manifest


def check(out=sys.stdout) -> int:
    path = AOT_DIR / MANIFEST
    if not path.is_file():
        print(f"{path}: none (run python -m shared.engine.precompiled)", file=out)
        return 1
    manifest = json.loads(path.read_text())
    fits = manifest.get("versions") == _versions()
    print(f"{path}: built for {manifest.get('versions')}; this install {_versions()}: "
          f"{'fits' if fits else 'does NOT fit (ignored)'}", file=out)
    missing = []
    for key, conf in manifest.get("configurations", {}).items():
        print(f"  {key[:12]}  {'; '.join(conf['labels'])}", file=out)
        missing += [name for name in conf["libraries"] if not (AOT_DIR / name).is_file()]
    if missing:
        print(f"  missing libraries: {missing}", file=out)
    return 0 if fits and not missing else 1


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
    # run the imported module, the one shared.engine.simulate routes PyBaMM's compiles through
    from shared.engine import precompiled

    sys.exit(precompiled.main())

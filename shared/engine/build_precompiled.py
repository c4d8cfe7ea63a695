"""Build step: compile the standard configurations' solver functions into ``aot/``.

    python -m shared.engine.build_precompiled            # (re)build aot/ (needs gcc; about a minute)
    python -m shared.engine.build_precompiled --check    # what is listed, and whether it fits this install

Run by ``make aot`` and by Cloud Build before the unit tests; never on a worker.
What a worker does with the result is ``shared.engine.precompiled``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Optional

from shared.engine import precompiled
from shared.engine.precompiled import LIBRARY_PREFIX, MANIFEST, PORTABLE_FLAGS


def standard_jobs() -> dict[str, Any]:
    """The configurations the build compiles: the Java Job Manager's two job kinds
    and the native API's constant-current default for each model."""
    from shared.contract.job import Job
    from shared.contract.legacy import JAVA_CELL, JAVA_DRIVE_CYCLE, LegacyRequest

    jobs = {
        "legacy cell (DFN, constant current)": LegacyRequest.model_validate(JAVA_CELL).to_job("cell"),
        "legacy drive cycle (DFN, US06)": LegacyRequest.model_validate(JAVA_DRIVE_CYCLE).to_job("driveCycle"),
    }
    for model in ("DFN", "SPMe", "SPM"):
        jobs[f"native {model} constant current"] = Job.model_validate(
            {"model": {"name": model}, "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 600}})
    return jobs


def build(names: Optional[list[str]] = None, out=sys.stdout) -> dict[str, Any]:
    """Compile the standard configurations (or those named) into a clean AOT_DIR
    and write the manifest. Fails if any configuration could not be compiled."""
    from shared.engine import simulate
    from shared.engine.errors import SimulationError

    jobs = standard_jobs()
    unknown = sorted(set(names or []) - set(jobs))
    if unknown:
        raise SystemExit(f"unknown configuration(s) {unknown}; choose from {sorted(jobs)}")
    aot = precompiled.aot_dir()
    aot.mkdir(parents=True, exist_ok=True)
    for old in [*aot.glob(f"{LIBRARY_PREFIX}*"), aot / MANIFEST]:
        old.unlink(missing_ok=True)
    precompiled.install()
    configurations: dict[str, dict[str, Any]] = {}
    failed = []
    precompiled._building = True
    try:
        for label, job in jobs.items():
            if names and label not in names:
                continue
            t0 = time.perf_counter()
            before = set(aot.iterdir())
            try:
                result = simulate.simulate(job, compiled=True)
            except SimulationError as exc:  # e.g. a drive cycle not installed here
                failed.append(f"{label}: {exc}")
                continue
            if not result["timings"]["compiled"]:
                failed.append(f"{label}: PyBaMM fell back to interpreted functions (see its warning)")
                continue
            key = simulate.plan_key(job)
            conf = configurations.setdefault(key, {"labels": [], "libraries": []})
            conf["labels"].append(label)
            conf["libraries"] = sorted(set(conf["libraries"]) | {p.name for p in set(aot.iterdir()) - before})
            print(f"{label}: {time.perf_counter() - t0:.1f} s, key {key[:12]}", file=out, flush=True)
    finally:
        precompiled._building = False
    manifest = {"versions": precompiled._versions(), "flags": list(PORTABLE_FLAGS),
                "configurations": configurations}
    (aot / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    precompiled._listed.cache_clear()
    if failed:
        raise SystemExit("not precompiled:\n  " + "\n  ".join(failed))
    return manifest


def check(out=sys.stdout) -> int:
    """Print what aot/ holds and whether it fits this install; 0 if it does and is whole."""
    path = precompiled.aot_dir() / MANIFEST
    if not path.is_file():
        print(f"{path}: none (run python -m shared.engine.build_precompiled)", file=out)
        return 1
    manifest = json.loads(path.read_text())
    versions = precompiled._versions()
    fits = manifest.get("versions") == versions
    print(f"{path}: built for {manifest.get('versions')}; this install {versions}: "
          f"{'fits' if fits else 'does NOT fit (ignored)'}", file=out)
    missing = []
    for key, conf in manifest.get("configurations", {}).items():
        print(f"  {key[:12]}  {'; '.join(conf['labels'])}", file=out)
        missing += [name for name in conf["libraries"] if not (path.parent / name).is_file()]
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
    sys.exit(main())

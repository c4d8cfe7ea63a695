"""Drive cycles by name from PyBaMM's data registry, verified by SHA-256.

A deployed function never downloads: the build step (``python -m
shared.engine.drive_cycles fetch``) places registered cycles in ``drive_cycles/``.
At run time a cycle is looked up in that folder, then in the folders of
``DRIVE_CYCLE_PATH``, then in PyBaMM's own cache; every file found is checked
against the hash PyBaMM's registry records for it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from shared.settings import get_settings

# Cycles of pybamm-data v1.0.2 (the hashes PyBaMM's DataLoader registry records).
REGISTRY: dict[str, str] = {
    "US06": "5909eb2ec7983fae86a050ff3b35a2041d0ab698710a6b0f95d5816e348077ba",
    "UDDS": "9fe6558c17aad3cc08109186923aeb7459cd3097a381c44e854bf22dd12a5a2a",
    "WLTC": "bb2f95018a44ac1425cb9c787c34721192af502c7385f1358f28e4f75df11fd8",
    "car_current": "4305b91b9df073cb048c25dd3fae725e06a94fe200e322e5c08db290d6799e36",
}


class DriveCycleError(ValueError):
    pass


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _search_dirs() -> list[Path]:
    s = get_settings()
    dirs = [Path(s.drive_cycles_dir)]
    dirs += [Path(p) for p in s.drive_cycle_path.split(os.pathsep) if p]
    dirs.append(Path(os.environ.get("PYBAMM_DATA_CACHE", Path.home() / ".cache" / "pybamm")))
    return dirs


def find(name: str) -> Path | None:
    """The verified file for a registered cycle, or None if it is not installed."""
    if name not in REGISTRY:
        raise DriveCycleError(f"unknown drive cycle {name!r}; registered: {sorted(REGISTRY)}")
    for d in _search_dirs():
        for candidate in (d / f"{name}.csv", *d.glob(f"*/{name}.csv")):
            if candidate.is_file() and _sha256(candidate) == REGISTRY[name]:
                return candidate
    return None


def available() -> list[str]:
    """Registered cycles that are installed here (the catalog lists these)."""
    return sorted(n for n in REGISTRY if find(n) is not None)


@lru_cache(maxsize=16)
def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(time [s], current [A])`` of a registered drive cycle."""
    path = find(name)
    if path is None:
        raise DriveCycleError(
            f"drive cycle {name!r} is registered but not installed on this deployment; "
            f"installed: {available()}"
        )
    data = np.loadtxt(path, comments="#", delimiter=",")
    return data[:, 0].copy(), data[:, 1].copy()


def fetch(dest: Path, names: list[str]) -> None:
    """Build step: download registered cycles with PyBaMM's DataLoader into ``dest``."""
    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
    import pybamm

    dest.mkdir(parents=True, exist_ok=True)
    loader = pybamm.DataLoader()
    for name in names:
        src = Path(loader.get_data(f"{name}.csv"))
        if _sha256(src) != REGISTRY[name]:
            raise DriveCycleError(f"{src} does not match the registered hash of {name}")
        shutil.copyfile(src, dest / f"{name}.csv")
        print(f"placed {name}.csv in {dest}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download registered cycles into drive_cycles/")
    f.add_argument("names", nargs="*", default=["US06", "UDDS", "WLTC"])
    f.add_argument("--dest", type=Path, default=get_settings().drive_cycles_dir)
    sub.add_parser("check", help="list registered cycles and where each was found")
    args = parser.parse_args(argv)
    if args.cmd == "fetch":
        fetch(args.dest, args.names)
        return 0
    missing = 0
    for name in sorted(REGISTRY):
        path = find(name)
        print(f"{name:12s} {path or 'not installed'}")
        missing += path is None
    return 0


if __name__ == "__main__":
    sys.exit(main())

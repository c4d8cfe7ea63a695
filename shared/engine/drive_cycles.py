"""Drive cycles by name from PyBaMM's data registry, verified by SHA-256.

The registered cycles (name, file, SHA-256, source) are listed in the repository's
``drive_cycles/registry.json``. A deployed function never downloads: the build step
(``python -m shared.engine.drive_cycles fetch``) places registered cycles in
``drive_cycles/``. At run time a cycle is looked up in that folder, then in the
folders of ``DRIVE_CYCLE_PATH``, then in PyBaMM's own cache; every file found is
checked against the hash the registry records for it. ``check`` exits 1 when a
cycle it checks (every registered one, or those named with ``--require``) is not
installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from shared.settings import REPO_ROOT, get_settings


class DriveCycleError(ValueError):
    pass


# Always the repository's folder, even when DRIVE_CYCLES_DIR points elsewhere.
REGISTRY_FILE = REPO_ROOT / "drive_cycles" / "registry.json"


def _read_registry(path: Path) -> dict[str, str]:
    """name -> SHA-256 from ``registry.json`` (each entry's file must be ``NAME.csv``)."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DriveCycleError(f"cannot read the drive-cycle registry {path}: {exc}") from exc
    registry = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict) or entry.get("file") != f"{name}.csv" \
                or not re.fullmatch(r"[0-9a-f]{64}", str(entry.get("sha256", ""))):
            raise DriveCycleError(f"{path}: entry {name!r} needs \"file\": \"{name}.csv\" "
                                  f"and a lowercase hex \"sha256\"")
        registry[name] = entry["sha256"]
    return registry


# name -> SHA-256 of the cycles of pybamm-data v1.0.2 (the hashes PyBaMM's DataLoader
# registry records), from registry.json.
REGISTRY: dict[str, str] = _read_registry(REGISTRY_FILE)


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
        if name not in REGISTRY:
            raise DriveCycleError(f"unknown drive cycle {name!r}; registered: {sorted(REGISTRY)}")
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
    c = sub.add_parser("check", help="list registered cycles and where each was found; "
                                     "exit 1 if one that is checked is not installed")
    c.add_argument("--require", action="append", choices=sorted(REGISTRY), metavar="NAME",
                   help="check only this cycle (repeatable); default: every registered cycle")
    args = parser.parse_args(argv)
    if args.cmd == "fetch":
        fetch(args.dest, args.names)
        return 0
    required = set(args.require or REGISTRY)
    missing = []
    for name in sorted(REGISTRY):
        path = find(name)
        print(f"{name:12s} {path or 'not installed'}")
        if path is None and name in required:
            missing.append(name)
    if missing:
        print(f"missing: {' '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

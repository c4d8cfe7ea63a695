"""The physics-based models a job may name (``model.name``), and the options a
parameter set needs to run (a composite electrode's phases, MSMR, a half-cell)."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import pybamm  # noqa: E402

MODELS = {
    "SPM": pybamm.lithium_ion.SPM,
    "SPMe": pybamm.lithium_ion.SPMe,
    "DFN": pybamm.lithium_ion.DFN,
    "sodium_ion.BasicDFN": pybamm.sodium_ion.BasicDFN,
}
# The chemistry of each model: it runs with the parameter sets of that chemistry
# (a set's own "chemistry" entry).
CHEMISTRY = {"SPM": "lithium_ion", "SPMe": "lithium_ion", "DFN": "lithium_ion",
             "sodium_ion.BasicDFN": "sodium_ion"}
# Models that take PyBaMM model options (PyBaMM's basic models take none).
TAKES_OPTIONS = frozenset({"SPM", "SPMe", "DFN"})
# Summary variables a model does not have: its summary reports null for what needs
# them, with a note (tests/test_sodium_ion.py checks this against the model).
LACKS = {
    "sodium_ion.BasicDFN": ("Volume-averaged cell temperature [K]", "Average negative particle stoichiometry"),
}



@lru_cache(maxsize=64)
def lacks(name: str, options: tuple, wanted: tuple) -> tuple[str, ...]:
    """Which of the ``wanted`` variables model ``name`` with ``options`` does not have
    (building it once per process and configuration; ``LACKS`` saves that)."""
    if name in LACKS:
        return tuple(v for v in wanted if v in LACKS[name])
    if not options:
        return ()  # PyBaMM's lithium-ion models have every summary variable
    names = make(name, dict(options)).variables.keys()
    return tuple(v for v in wanted if v not in names)


SETS_FILE = Path(__file__).with_name("parameter_sets.json")


@lru_cache(maxsize=1)
def described_sets() -> dict[str, dict[str, Any]]:
    """What each parameter set is (cell, electrodes) and the options it needs, as written
    down in ``parameter_sets.json``."""
    return json.loads(SETS_FILE.read_text())


def _tuples(value):
    """JSON lists as the tuples PyBaMM's options use ("particle phases": ("2", "1"))."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def set_options(parameter_set: str | None) -> dict[str, Any]:
    """The model options a parameter set needs to run (empty for most)."""
    entry = described_sets().get(parameter_set or "", {})
    return {k: _tuples(v) for k, v in entry.get("options", {}).items()}


def make(name: str, options: dict[str, Any] | None = None):
    """A new PyBaMM model (a ValueError if it takes no options but is given some)."""
    if name not in TAKES_OPTIONS:
        if options:
            raise ValueError(f"{name} takes no model options")
        return MODELS[name]()
    return MODELS[name](options=dict(options) if options else None)


def model_options(job) -> dict[str, Any]:
    """A job's model options — its parameter set's own, then the job's — in a fixed
    order (they are part of cache keys)."""
    own = set_options(job.parameter_set) if job.bpx is None and job.model.name in TAKES_OPTIONS else {}
    return dict(sorted({**own, **job.model.options}.items()))

"""Parameter sets by name or from a BPX document, cached (bounded, see ``cache``)."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import numpy as np
import pybamm

from shared.engine import cache
from shared.engine.errors import SimulationError, short

DEFAULT_SET = "Chen2020"


def digest(obj: Any) -> str:
    """A stable hash of a JSON-like value (cache keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.floating)) and not isinstance(v, bool)


def base_set(job) -> tuple[str, Any]:
    """(set id, the job's parameter set). Cached and shared: never mutate it."""
    if job.bpx is not None:
        set_id = "bpx:" + digest(job.bpx)
        pv = cache.PARAMETER_SETS.get(set_id)
        if pv is None:
            try:
                pv = pybamm.ParameterValues.create_from_bpx_obj(copy.deepcopy(job.bpx))
            except Exception as exc:  # the BPX library's messages name the bad field
                raise SimulationError(f"bpx: not a valid BPX document: {short(exc)}") from exc
            cache.PARAMETER_SETS.put(set_id, pv)
        return set_id, pv
    name = job.parameter_set or DEFAULT_SET
    pv = cache.PARAMETER_SETS.get(name)
    if pv is None:
        try:
            pv = pybamm.ParameterValues(name)
        except Exception as exc:
            raise SimulationError(f"parameter_set: unknown parameter set {name!r}") from exc
        cache.PARAMETER_SETS.put(name, pv)
    return name, pv


def initial_stoichiometries(soc: float, pv) -> tuple[float, float]:
    """Negative and positive stoichiometry at a state of charge (PyBaMM's eSOH)."""
    x, y = pybamm.lithium_ion.get_initial_stoichiometries(soc, pv)
    return float(x), float(y)


def set_initial_state(soc: float, pv, options: dict) -> None:
    """Set a set's initial state at a state of charge in place, as PyBaMM's simulations do
    (``pybamm.lithium_ion.set_initial_state``: composite, MSMR and half-cell sets too)."""
    try:
        pybamm.lithium_ion.set_initial_state(soc, pv, options=options, inplace=True)
    except Exception as exc:
        raise SimulationError(f"conditions.initial_soc: PyBaMM could not set it: {short(exc)}") from exc

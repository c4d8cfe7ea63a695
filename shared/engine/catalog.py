"""What PyBaMM offers this service, and the job checks that need PyBaMM.

Used by the submit function (before anything is published) and the ``GET
/catalog`` route.
"""

from __future__ import annotations

import copy
import os
from functools import lru_cache
from typing import Any

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import pybamm  # noqa: E402

from shared.contract.job import DEFAULT_OUTPUTS, Job  # noqa: E402
from shared.contract.limits import LIMITS  # noqa: E402
from shared.engine import drive_cycles, protocols  # noqa: E402
from shared.engine.errors import short as _short  # noqa: E402
from shared.engine.models import MODELS  # noqa: E402

# The parameter sets offered. tests/test_native.py compares five of them (Chen2020,
# Marquis2019, Mohtat2020, NCA_Kim2011, Prada2013) with a direct PyBaMM solve for
# SPM, SPMe and DFN.
PARAMETER_SETS = (
    "Chen2020", "Marquis2019", "Ecker2015", "OKane2022", "ORegan2022",
    "Mohtat2020", "Prada2013", "NCA_Kim2011", "Ai2020",
)
OPTIONS_OFFERED = {
    "thermal": ["isothermal", "lumped", "x-lumped", "x-full"],
    "SEI": ["none", "constant", "reaction limited", "solvent-diffusion limited"],
    "lithium plating": ["none", "reversible", "irreversible"],
    "particle": ["Fickian diffusion", "uniform profile", "quadratic profile", "quartic profile"],
    "cell geometry": ["arbitrary", "pouch"],
}


@lru_cache(maxsize=32)
def _model_info(name: str, options: tuple) -> tuple[frozenset, frozenset]:
    """(all variable names, scalar variable names) of a model."""
    model = MODELS[name](options=dict(options) or None)
    names = frozenset(model.variables.keys())
    scalars = frozenset(k for k, v in model.variables.items() if not v.domain)
    return names, scalars


@lru_cache(maxsize=32)
def _parameter_names(set_name: str) -> frozenset:
    return frozenset(pybamm.ParameterValues(set_name).keys())


def check(job: Job) -> list[dict[str, str]]:
    """Errors naming each field PyBaMM would reject; empty if the job is runnable."""
    errors: list[dict[str, str]] = []
    options = tuple(sorted(job.model.options.items()))
    try:
        names, scalars = _model_info(job.model.name, options)
    except Exception as exc:  # noqa: BLE001 - PyBaMM names the bad option
        errors.append({"field": "model.options", "error": _short(exc)})
        names = scalars = None

    if job.bpx is not None:
        try:
            pybamm.ParameterValues.create_from_bpx_obj(copy.deepcopy(job.bpx))
            param_names = None
        except Exception as exc:  # noqa: BLE001
            errors.append({"field": "bpx", "error": f"not a valid BPX document: {_short(exc)}"})
            param_names = None
    else:
        if job.parameter_set not in pybamm.parameter_sets:
            errors.append({"field": "parameter_set", "error": f"unknown; one of {list(PARAMETER_SETS)}"})
            param_names = None
        else:
            param_names = _parameter_names(job.parameter_set)
    if param_names is not None:
        for name in job.parameters:
            if name not in param_names:
                errors.append({"field": f"parameters.{name}",
                               "error": f"not a parameter of {job.parameter_set}"})

    if scalars is not None:
        for var in job.outputs.variables:
            if var not in names:
                errors.append({"field": "outputs.variables", "error": f"{var!r} is not a variable of {job.model.name}"})
            elif var not in scalars:
                errors.append({"field": "outputs.variables",
                               "error": f"{var!r} is not a scalar (0-D) variable"})

    errors += job.protocol.check()
    return errors


def catalog() -> dict[str, Any]:
    variables = {name: sorted(_model_info(name, ())[1]) for name in MODELS}
    return {
        "models": sorted(MODELS),
        "options": OPTIONS_OFFERED,
        "parameter_sets": list(PARAMETER_SETS),
        "drive_cycles": {"registered": sorted(drive_cycles.REGISTRY), "installed": drive_cycles.available()},
        "protocols": list(protocols.TYPES),
        "default_outputs": DEFAULT_OUTPUTS,
        "output_variables": variables,
        "limits": LIMITS,
        "pybamm_version": pybamm.__version__,
    }

"""What PyBaMM offers this service, and the job checks that need PyBaMM.

Used by the submit function (before anything is published) and, through the cell
kind, by ``GET /catalog`` (``kinds.catalog()`` composes it with every other kind's
entry).
"""

from __future__ import annotations

import logging
import os
import re
from functools import lru_cache
from typing import Any

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import pybamm  # noqa: E402

from shared.contract.job import DEFAULT_OUTPUTS, Job  # noqa: E402
from shared.contract.limits import LIMITS  # noqa: E402
from shared.engine import compatibility, drive_cycles, failures, physical, protocols  # noqa: E402
from shared.engine.errors import SimulationError  # noqa: E402
from shared.engine.errors import short as _short  # noqa: E402
from shared.engine.models import MODELS, TAKES_OPTIONS, described_sets, make  # noqa: E402
from shared.engine.models import model_options, set_options  # noqa: E402
from shared.engine.parameters import base_set  # noqa: E402

log = logging.getLogger(__name__)

# The parameter sets offered: every set PyBaMM ships that solves with at least one
# offered model (``compatibility``: measured, kept in compatibility.json).
# tests/test_parameter_sets.py compares every offered pair with a direct PyBaMM solve.
PARAMETER_SETS = tuple(compatibility.offered_sets())
# The sets degradation options (ageing studies) are offered with: lithium-ion sets that
# solve with SPM, SPMe and DFN and need no options of their own.
DEGRADATION_SETS = tuple(
    s for s in PARAMETER_SETS
    if all(compatibility.offered(s, m) for m in ("SPM", "SPMe", "DFN")) and not set_options(s))
# Degradation options (ageing studies): the catalog lists, for each value, the offered
# parameter sets that carry every parameter it needs (``option_parameter_sets``).
DEGRADATION_OPTIONS = {
    "SEI": ["none", "constant", "reaction limited", "solvent-diffusion limited", "electron-migration limited",
            "interstitial-diffusion limited", "ec reaction limited"],
    "SEI porosity change": ["false", "true"],
    "lithium plating": ["none", "reversible", "partially reversible", "irreversible"],
    "loss of active material": ["none", "stress-driven", "reaction-driven", "stress and reaction-driven"],
    "particle mechanics": ["none", "swelling only", "swelling and cracking"],
}
# Options that act through SEI growth (alone they add nothing): their needs are counted
# with this SEI model on, less what the SEI model itself needs.
_WITH_SEI = {"SEI porosity change": ("SEI", "reaction limited"),
             "loss of active material": ("SEI", "reaction limited")}
OPTIONS_OFFERED = {
    "thermal": ["isothermal", "lumped", "x-lumped", "x-full"],
    **DEGRADATION_OPTIONS,
    "particle": ["Fickian diffusion", "uniform profile", "quadratic profile", "quartic profile"],
    "cell geometry": ["arbitrary", "pouch"],
}


@lru_cache(maxsize=32)
def _model_info(name: str, options: tuple) -> tuple[frozenset, frozenset, frozenset]:
    """(all variable names, scalar variable names, parameter names it needs) of a model."""
    model = make(name, dict(options))
    names = frozenset(model.variables.keys())
    scalars = frozenset(k for k, v in model.variables.items() if not v.domain)
    return names, scalars, frozenset(model.get_parameter_info().keys())


def _needed_alone(name: str, option: tuple, base: tuple = ()) -> frozenset:
    """The parameters a model needs with this one option (and the set's own options
    ``base``; empty if it cannot be built so)."""
    try:
        return _model_info(name, tuple(sorted(dict(base + (option,)).items())))[2]
    except Exception:  # noqa: BLE001 - an option that needs another one to build
        return frozenset()


def _missing_parameters(job: Job, needed: frozenset, keys: set, source: str) -> list[dict[str, str]]:
    """What the model with its options needs that the parameter set lacks, blamed on the
    option that needs it (``model.options.<option>``), else on the parameter set."""
    missing = sorted(needed - keys)
    if not missing:
        return []
    errors = []
    base = tuple(sorted(set_options(job.parameter_set).items())) if job.bpx is None else ()
    plain = _model_info(job.model.name, base)[2]
    blamed: set[str] = set()
    for option in sorted(job.model.options.items()):
        mine = sorted((_needed_alone(job.model.name, option, base) - plain) & set(missing))
        if mine:
            blamed.update(mine)
            errors.append({"field": f"model.options.{option[0]}", "error": (
                f"{option[0]!r}: {option[1]!r} needs {_listed(mine)}, which {source} does not define; choose "
                "another option or a parameter set that has them")})
    rest = [m for m in missing if m not in blamed]
    if rest:
        options = ", ".join(f"{k}: {v}" for k, v in sorted(job.model.options.items()))
        field = "model.options" if job.model.options else ("bpx" if job.bpx is not None else "parameter_set")
        with_options = f" with {{{options}}}" if options else ""
        errors.append({"field": field, "error": (
            f"{job.model.name}{with_options} needs {_listed(rest)}, which {source} does not define")})
    return errors


def _listed(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _guarded(check_fn, *args) -> list[dict[str, str]]:
    """A physical check that must never turn a request into a 500: if it breaks, the job
    goes on unchecked by it (the solver's failures are translated too) and the log says so."""
    try:
        return check_fn(*args)
    except Exception:  # noqa: BLE001
        log.exception("physical check %s failed; skipped", check_fn.__name__)
        return []


# The names a BPX expression may use (the BPX standard's functions of x and T). The bpx
# package turns an expression into Python code and runs it: anything else (exit,
# print, range, ...) must not reach it.
BPX_EXPRESSION_NAMES = frozenset({
    "x", "T", "e", "pi", "exp", "log", "log10", "sqrt", "tanh", "sinh", "cosh", "arcsinh", "arccosh",
    "arctanh", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "abs", "sign", "minimum", "maximum",
    "heaviside"})
_NAME = re.compile(r"(?<![0-9.])[A-Za-z_][A-Za-z_0-9]*")


def bpx_expression_errors(bpx: dict) -> list[dict[str, str]]:
    """Every string of a BPX document's parameterisation that names anything but the
    allowed functions and variables (``BPX_EXPRESSION_NAMES``)."""
    errors = []
    stack = [("bpx.Parameterisation", bpx.get("Parameterisation"))]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}.{k}", v) for k, v in enumerate(value))
        elif isinstance(value, str):
            unknown = sorted({n for n in _NAME.findall(value) if n not in BPX_EXPRESSION_NAMES})
            if unknown:
                errors.append({"field": path, "error": f"the expression uses {unknown}; an expression may use "
                               f"only x, T, numbers and {sorted(BPX_EXPRESSION_NAMES - {'x', 'T'})}"})
    return errors


def check(job: Job) -> list[dict[str, str]]:
    """Errors naming each field PyBaMM would reject, or whose value is physically
    impossible (``physical``); empty if the job is runnable."""
    if job.bpx is not None:
        unsafe = bpx_expression_errors(job.bpx)
        if unsafe:  # refused before the bpx package turns them into code
            return unsafe
    errors: list[dict[str, str]] = _model_errors(job)
    if errors:
        return errors
    options = tuple(sorted(model_options(job).items()))
    try:
        names, scalars, needed = _model_info(job.model.name, options)
    except Exception as exc:  # noqa: BLE001 - PyBaMM names the bad option
        errors.append({"field": "model.options", "error": _short(exc)})
        names = scalars = needed = None

    pv = set_id = None
    if job.bpx is not None:
        document = _guarded(physical.check_bpx_document, job.bpx)
        errors += document
        try:
            set_id, pv = base_set(job)
        except SimulationError as exc:
            text = str(exc).removeprefix("bpx: ")
            # the BPX schema's verdict always; PyBaMM's later failures (e.g. its eSOH on a
            # negative concentration) only when the document's own fields do not say why
            if not document or "validation error" in text or "Invalid BPX" in text:
                errors.append({"field": "bpx", "error": text})
        else:
            if not document:
                errors += _guarded(physical.check_bpx_values, job.bpx, pv)
        source = "the BPX document"
    elif job.parameter_set not in pybamm.parameter_sets:
        errors.append({"field": "parameter_set", "error": f"unknown; one of {list(PARAMETER_SETS)}"})
        source = ""
    elif compatibility.pair_error(job.parameter_set, job.model.name):
        errors.append({"field": "parameter_set",
                       "error": compatibility.pair_error(job.parameter_set, job.model.name)})
        return errors + job.protocol.check()
    else:
        try:
            set_id, pv = base_set(job)
        except SimulationError as exc:
            errors.append({"field": "parameter_set", "error": str(exc).removeprefix("parameter_set: ")})
        source = f"parameter set {job.parameter_set}"
    if pv is not None:
        keys = set(pv.keys())
        unknown = [n for n in job.parameters if n not in keys]
        for name in unknown:
            errors.append({"field": f"parameters.{name}",
                           "error": f"not a parameter of {job.parameter_set if job.bpx is None else 'the BPX cell'}"})
        known = {n: v for n, v in job.parameters.items() if n in keys}
        errors += _guarded(physical.check_overrides, known, pv, set_id)
        if needed is not None:
            errors += _missing_parameters(job, needed, keys, source)

    if scalars is not None:
        for var in job.outputs.variables:
            if var not in names:
                errors.append({"field": "outputs.variables", "error": f"{var!r} is not a variable of {job.model.name}"})
            elif var not in scalars:
                errors.append({"field": "outputs.variables",
                               "error": f"{var!r} is not a scalar (0-D) variable"})

    if job.bpx is None and job.conditions.initial_soc is not None:
        refused = compatibility.initial_soc_error(job.parameter_set, job.model.name)
        if refused:
            errors.append({"field": "conditions.initial_soc", "error": refused})
    steps = failures.step_errors(job.protocol.steps) if job.protocol.type == "experiment" else []
    # an unparseable step: its own sentence, not PyBaMM's message about the whole list
    errors += steps or job.protocol.check()
    return errors


def _model_errors(job: Job) -> list[dict[str, str]]:
    """What the model and the set's own options refuse before anything is built: options
    for a model that takes none, an option that changes one the set needs, degradation
    options or an ageing study with a set not offered for them."""
    name, options = job.model.name, job.model.options
    if name not in TAKES_OPTIONS:
        errors = []
        if options:
            errors.append({"field": "model.options", "error": (
                f"{name} takes no model options (PyBaMM's basic model); give none")})
        if job.protocol.type == "ageing":
            errors.append({"field": "protocol.type", "error": (
                f"the ageing protocol is for the lithium-ion degradation models (SPM, SPMe, DFN); {name} "
                "has no degradation submodels")})
        return errors
    if job.bpx is not None:
        return []
    errors = []
    own = set_options(job.parameter_set)
    for key, value in sorted(options.items()):
        if key in own and own[key] != value:
            errors.append({"field": f"model.options.{key}", "error": (
                f"{job.parameter_set} runs with its own {key!r}: {own[key]!r}; leave it out")})
    if job.parameter_set in PARAMETER_SETS and job.parameter_set not in DEGRADATION_SETS:
        for key in sorted(set(options) & set(DEGRADATION_OPTIONS)):
            errors.append({"field": f"model.options.{key}", "error": (
                f"degradation options are offered with {list(DEGRADATION_SETS)}, not "
                f"{job.parameter_set}")})
        if job.protocol.type == "ageing" and compatibility.offered(job.parameter_set, name):
            errors.append({"field": "protocol.type", "error": (
                f"ageing studies are offered with {list(DEGRADATION_SETS)}, not {job.parameter_set}")})
    return errors


def check_values(job: Job) -> list[dict[str, str]]:
    """The physical range checks of the job's ``parameters`` alone: for a sweep member
    whose configuration (everything but numbers) ``check`` already accepted."""
    try:
        set_id, pv = base_set(job)
    except SimulationError:
        return []  # check() reported it for the configuration
    keys = pv.keys()
    return _guarded(physical.check_overrides, {n: v for n, v in job.parameters.items() if n in keys}, pv, set_id)


def _option_needs(name: str, option: str, value: str) -> frozenset:
    """What model ``name`` needs with this one option value (the parameters ``check``
    looks for), counted with SEI growth on for the options that act through it. Built
    outside ``_model_info``'s cache, which serves the checks of real jobs."""
    info = _model_info.__wrapped__
    needed = info(name, ((option, value),))[2]
    companion = _WITH_SEI.get(option)
    if companion is not None and value not in ("none", "false"):
        needed |= info(name, tuple(sorted((companion, (option, value)))))[2] - info(name, (companion,))[2]
    return needed


@lru_cache(maxsize=len(MODELS))
def option_parameter_sets(name: str = "SPM") -> dict[str, dict[str, list[str]]]:
    """For each degradation option value, the offered parameter sets that define every
    parameter model ``name`` needs with it (so ``check`` accepts the pair). The catalog
    lists SPM's: the degradation submodels are the same in SPM, SPMe and DFN
    (tests/test_ageing.py checks that the three tables agree). ~1 s, once per process."""
    keys = {s: frozenset(pybamm.ParameterValues(s).keys()) for s in DEGRADATION_SETS}
    table: dict[str, dict[str, list[str]]] = {}
    for option, offered in DEGRADATION_OPTIONS.items():
        table[option] = {}
        for value in offered:
            needed = _option_needs(name, option, value)
            table[option][value] = [s for s in DEGRADATION_SETS if needed <= keys[s]]
    return table


def catalog() -> dict[str, Any]:
    """The physics-based cell's catalog: the body of ``GET /catalog`` (``kinds.catalog()``
    adds the other kinds under ``"kinds"``)."""
    variables = {name: sorted(_model_info(name, ())[1]) for name in MODELS}
    return {
        "models": sorted(MODELS),
        "options": OPTIONS_OFFERED,
        "option_parameter_sets": option_parameter_sets(),
        "parameter_sets": list(PARAMETER_SETS),
        "parameter_set_details": {s: set_details(s) for s in PARAMETER_SETS},
        "models_without_options": sorted(set(MODELS) - TAKES_OPTIONS),
        "drive_cycles": {"registered": sorted(drive_cycles.REGISTRY), "installed": drive_cycles.available()},
        "protocols": list(protocols.TYPES),
        "default_outputs": DEFAULT_OUTPUTS,
        "output_variables": variables,
        "limits": LIMITS,
        "pybamm_version": pybamm.__version__,
    }


_FOOTCITE = re.compile(r":footcite:t?:`([^`]+)`")


def docstring_summary(name: str) -> str:
    """The first paragraph of PyBaMM's own docstring of a set, citations as plain keys."""
    text = pybamm.parameter_sets.get_docstring(name) or ""
    first = text.strip().split("\n\n")[0]
    return " ".join(_FOOTCITE.sub(r"\1", first).split())


@lru_cache(maxsize=64)
def set_details(name: str) -> dict[str, Any]:
    """What a set is and what it works with (the catalog's ``parameter_set_details``)."""
    written = described_sets().get(name, {})
    entry = pybamm.parameter_sets[name]
    models = compatibility.models_for(name)
    return {
        "chemistry": entry.get("chemistry"),
        "cell": written.get("cell"),
        "electrodes": written.get("electrodes"),
        "description": docstring_summary(name),
        "citations": list(entry.get("citations", [])),
        "models": models,
        "options": set_options(name),
        "initial_soc": [m for m in models if compatibility.initial_soc_error(name, m) is None],
        "degradation": name in DEGRADATION_SETS,
    }


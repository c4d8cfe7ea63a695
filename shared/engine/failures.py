"""PyBaMM's rejections and solver failures, as sentences that say which input to change.

* ``step_errors``: experiment step strings PyBaMM cannot parse (at submit), one error
  per step (``protocol.steps.<k>``) saying which part of the step is wrong.
* ``translate``: an exception raised while solving a job, as a ``SimulationError``
  naming the input to change (``simulate.simulate`` calls it). What can be checked
  cheaply is checked at submit (``catalog.check``, ``physical``); these are what
  only the solver finds.
"""

from __future__ import annotations

import ast
import math
import re
from typing import Any, Optional

from shared.engine.errors import SimulationError, short

LOWER = "Lower voltage cut-off [V]"
UPPER = "Upper voltage cut-off [V]"
CN = "Initial concentration in negative electrode [mol.m-3]"
CP = "Initial concentration in positive electrode [mol.m-3]"
CN_MAX = "Maximum concentration in negative electrode [mol.m-3]"
CP_MAX = "Maximum concentration in positive electrode [mol.m-3]"

# -- experiment steps ------------------------------------------------------------------

EXAMPLES = "'Discharge at 1C until 2.5 V', 'Rest for 1 hour', 'Charge at C/2 until 4.2 V', 'Hold at 4.2 V until C/50'"
_NUMBER = r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?"
_RATE = re.compile(rf"^(C/{_NUMBER}|{_NUMBER}\s*(C|mA|A|mV|V|mW|W|Ohm))$")
_DURATION = re.compile(rf"^{_NUMBER}\s*(seconds?|s|sec|minutes?|m|min|hours?|h|hr)$")
_CONDITION = re.compile(rf"^[<>]?\s*(C/{_NUMBER}|{_NUMBER}\s*(C|mA|A|mV|V))$")


# The field of a step PyBaMM cannot parse (``{k}``: the step's index). The list, as the
# protocol's own check names it and tests/test_native.py and tests/test_submit_function.py
# expect; the message names the step. "protocol.steps.{k}" would name the step itself, as
# the experiment's rate limits do.
STEP_FIELD = "protocol.steps"


def step_errors(steps: list[str]) -> list[dict[str, str]]:
    """One error per step string PyBaMM cannot parse, saying which part of it is wrong."""
    import pybamm

    errors = []
    for k, text in enumerate(steps):
        try:
            pybamm.step.string(text)
        except Exception as exc:  # noqa: BLE001 - PyBaMM's parser raises what it meets
            errors.append({"field": STEP_FIELD.format(k=k),
                           "error": f"step {k}, {text!r}: {why_step(text, exc)}"})
    return errors


def why_step(text: str, exc: Optional[BaseException] = None) -> str:
    """Which part of an experiment step is wrong, in words."""
    if "oC" in text:
        return "give the temperature in conditions.ambient_temperature_C, not in a step"
    body = re.sub(r"\s*\([^)]*period\)\s*$", "", text.strip())
    condition = duration = None
    if " until " in body:
        body, condition = body.split(" until ", 1)
        body = re.sub(r"\s+or$", "", body)
    if " for " in body:
        body, duration = body.split(" for ", 1)
    if condition is None and duration is None:
        return f"a step needs 'for <duration>' or 'until <condition>', e.g. {EXAMPLES}"
    words = body.split()
    instruction = words[0] if words else ""
    if instruction == "Rest":
        if len(words) > 1:
            return f"'Rest' takes no rate ('{body}'); write 'Rest for 1 hour'"
    elif instruction in ("Discharge", "Charge", "Hold"):
        if " at " not in body:
            return f"'{instruction}' needs a rate after 'at', e.g. '{instruction} at 1C'"
        value = body.split(" at ", 1)[1].strip()
        if not _RATE.match(value):
            return (f"'{value}' is not a rate: use a C-rate ('1C', 'C/2'), a current ('2 A', '500 mA'), a voltage "
                    "('4.2 V'), a power ('10 W') or a resistance ('2 Ohm')")
        if instruction == "Hold" and not re.search(r"(mV|V)$", value):
            return f"'Hold' holds a voltage: write 'Hold at 4.2 V until C/50', not 'Hold at {value}'"
    else:
        return f"'{instruction}' is not an instruction: a step starts with Discharge, Charge, Rest or Hold"
    if duration is not None and not _DURATION.match(duration.strip()):
        return (f"'{duration}' is not a duration: use seconds, minutes or hours ('30 seconds', '10 minutes', "
                "'1 hour')")
    if condition is not None and not _CONDITION.match(condition.strip()):
        return (f"'{condition}' is not an end condition: use a voltage ('until 2.5 V'), a current "
                "('until 50 mA') or a C-rate ('until C/50')")
    detail = f" ({short(exc, 160)})" if exc is not None else ""
    return f"PyBaMM cannot parse this step{detail}; steps read like {EXAMPLES}"


# -- solver failures -------------------------------------------------------------------

IDA_MEANING = {
    "IDA_TOO_MUCH_WORK": "it took too many steps",
    "IDA_TOO_MUCH_ACC": "it could not reach the accuracy asked",
    "IDA_ERR_FAIL": "its error test failed repeatedly",
    "IDA_CONV_FAIL": "its Newton iteration did not converge",
    "IDA_LSETUP_FAIL": "its linear solver setup failed (usually a NaN or infinite value in the equations)",
    "IDA_LSOLVE_FAIL": "its linear solve failed (usually a NaN or infinite value in the equations)",
    "IDA_RES_FAIL": "the equations could not be evaluated",
    "IDA_REP_RES_ERR": "the equations could not be evaluated",
    "IDA_CONSTR_FAIL": "a constraint could not be met",
    "IDA_FIRST_RES_FAIL": "the equations could not be evaluated at the start",
    "IDA_LINESEARCH_FAIL": "it found no consistent initial state",
    "IDA_NO_RECOVERY": "it could not recover from a failed evaluation",
    "IDA_BAD_K": "it stopped without a solution (no consistent state was found)",
}


def translate(exc: BaseException, job: Any = None, plan: Any = None) -> SimulationError:
    """A solve-time exception as a ``SimulationError`` that names the input to change."""
    import pybamm

    text = str(exc)
    try:
        if "non-positive at initial conditions" in text:
            return _crossed_at_start(text, job, plan)
        if isinstance(exc, pybamm.SolverError) or re.search(r"IDA_[A-Z_]+", text):
            return _solver(text, job)
        if isinstance(exc, ZeroDivisionError):
            return _division_by_zero(job)
        if isinstance(exc, KeyError) and "not found" in text:
            return _missing_parameter(text, job)
        if "outside of variable bounds" in text:
            var = re.search(r"for variable '([^'(]+)", text)
            name = f" of '{var.group(1).strip()}'" if var else ""
            return SimulationError(f"the cell's initial state is outside the physical bounds{name}: "
                                   f"{_suspects(job, 'change')}")
    except Exception:  # noqa: BLE001 - a translation must never hide the failure itself
        pass
    return SimulationError(f"the simulation could not start: {short(exc)}")


def _events(text: str) -> list[str]:
    m = re.search(r"Events (\[.*?\]) are non-positive", text)
    if m:
        try:
            return [str(e) for e in ast.literal_eval(m.group(1))]
        except (ValueError, SyntaxError):
            pass
    return []


def _value(plan, name: str) -> Optional[float]:
    if plan is None:
        return None
    if name in (plan.inputs or {}):
        return float(plan.inputs[name])
    try:
        v = plan.parameter_values[name]
    except (KeyError, TypeError):
        return None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _cut_off_field(job, name: str) -> str:
    if job is not None and job.bpx is not None and name not in job.parameters:
        return f"bpx.Parameterisation.Cell.{name}"
    return f"parameters.{name}"


def _user_set(job, name: str) -> bool:
    return job is not None and (name in job.parameters or job.bpx is not None)


def initial_ocv(plan) -> Optional[float]:
    """The cell's open-circuit voltage at the start of a planned job (None if unknown)."""
    import numpy as np
    import pybamm

    cn, cp, cn_max, cp_max = (_value(plan, n) for n in (CN, CP, CN_MAX, CP_MAX))
    if None in (cn, cp, cn_max, cp_max) or cn_max <= 0 or cp_max <= 0:
        return None
    temperature = _value(plan, "Initial temperature [K]") or _value(plan, "Reference temperature [K]") or 298.15
    param = pybamm.LithiumIonParameters()
    expr = (param.p.prim.U(pybamm.Scalar(cp / cp_max), temperature)
            - param.n.prim.U(pybamm.Scalar(cn / cn_max), temperature))
    try:
        with np.errstate(all="ignore"):
            v = float(np.asarray(plan.parameter_values.process_symbol(expr).evaluate(inputs=plan.inputs)).ravel()[0])
    except Exception:  # noqa: BLE001
        return None
    return v if math.isfinite(v) else None


def _crossed_at_start(text: str, job, plan) -> SimulationError:
    events = _events(text)
    listed = " and ".join(f"'{e}'" for e in events)
    head = (f"the cell starts outside its voltage cut-offs: event{'s' if len(events) > 1 else ''} {listed} "
            "already crossed at t = 0 s" if events else
            "the cell starts outside its limits: a stop condition already holds at t = 0 s")
    lower, upper = _value(plan, LOWER), _value(plan, UPPER)
    f_lower, f_upper = _cut_off_field(job, LOWER), _cut_off_field(job, UPPER)
    if lower is not None and upper is not None and lower >= upper:
        return SimulationError(
            f"{head}, because the cut-offs are inverted: the lower cut-off ({lower:g} V) is not below the upper "
            f"cut-off ({upper:g} V); correct {f_lower} and {f_upper}")
    below = any("minimum voltage" in e.lower() for e in events)
    above = any("maximum voltage" in e.lower() for e in events)
    if not (below or above) or lower is None or upper is None:
        return SimulationError(f"{head}; check conditions.initial_soc and the initial concentrations")
    ocv = initial_ocv(plan)
    span = f"cut-offs {lower:g}–{upper:g} V"
    if below:
        cut, name, field, soc_hint = lower, "lower", f_lower, "start the cell at a higher conditions.initial_soc"
    else:
        cut, name, field, soc_hint = upper, "upper", f_upper, "start the cell at a lower conditions.initial_soc"
    side = "below" if below else "above"
    if ocv is not None and (ocv <= lower if below else ocv >= upper):
        if _user_set(job, LOWER if below else UPPER):
            return SimulationError(
                f"{head}: the cell's open-circuit voltage at the start is {ocv:.3f} V, {side} the {name} cut-off "
                f"{field} = {cut:g} V ({span}); change that cut-off, or {soc_hint}")
        return SimulationError(
            f"{head}: the cell's open-circuit voltage at the start is {ocv:.3f} V, {side} the {name} cut-off of "
            f"{cut:g} V ({span}); {soc_hint}")
    rest = f" although its open-circuit voltage is {ocv:.3f} V" if ocv is not None else ""
    overrides = list(job.parameters) if job is not None else []
    if overrides:
        shown = ", ".join(f"parameters.{n} = {job.parameters[n]:g}" for n in overrides[:5])
        fix = (f"reduce the current ({_current_field(job)}), or check the overrides that shape the cell's "
               f"resistance ({shown})")
    else:
        fix = f"reduce the current ({_current_field(job)}), {soc_hint}, or move {field}"
    return SimulationError(
        f"{head}: the voltage under load is already {side} the {name} cut-off of {cut:g} V{rest} ({span}), "
        f"so the voltage drop at this current is too large: {fix}")


def _current_field(job) -> str:
    protocol = getattr(job, "protocol", None)
    kind = getattr(protocol, "type", "")
    if kind == "constant_current":
        return "protocol.c_rate" if protocol.c_rate is not None else "protocol.current_A"
    if kind == "drive_cycle":
        return "protocol.scale"
    if kind == "experiment":
        return "the rates in protocol.steps"
    return "the protocol's current"


def _suspects(job, verb: str = "check") -> str:
    """Which inputs shape the equations: what to check when the solver gives up."""
    if job is None:
        return "check the parameters and reduce the current"
    parts = []
    names = list(job.parameters)
    if names:
        shown = ", ".join(f"parameters.{n} = {job.parameters[n]:g}" for n in names[:5])
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        parts.append(f"{verb} the overrides ({shown}{more}): each must make physical sense for this cell")
    if job.bpx is not None:
        parts.append(f"{verb} the BPX document's values (OCP curves, diffusivities, conductivities, "
                     "concentrations, stoichiometry limits)")
    parts.append(f"reduce the current ({_current_field(job)})")
    if not names and job.bpx is None:
        parts.append("start at another conditions.initial_soc")
    return "; or ".join(parts)


def _solver(text: str, job) -> SimulationError:
    code = re.search(r"(IDA_[A-Z_]+)", text)
    flag = re.search(r"flag:?\s*(-?\d+)", text)
    at = re.search(r"[Aa]t t ?= ?([-+0-9.eE]+)", text)
    what = code.group(1) if code else "solver error"
    if flag:
        what += f", flag {flag.group(1)}"
    meaning = IDA_MEANING.get(code.group(1), "") if code else short(text, 160)
    when = f" at t = {float(at.group(1)):g} s" if at else ""
    return SimulationError(
        f"the solver could not integrate this cell's equations{when} ({what}"
        f"{': ' + meaning if meaning else ''}): {_suspects(job)}")


def _division_by_zero(job) -> SimulationError:
    zeros = [n for n, v in (job.parameters.items() if job is not None else ()) if v == 0]
    if zeros:
        listed = ", ".join(f"parameters.{n}" for n in zeros)
        return SimulationError(f"the model divides by a parameter that is zero: {listed} = 0; give it a "
                               "positive value")
    if job is not None and job.bpx is not None:
        return SimulationError("the model divides by a value of the BPX document that is zero: check its "
                               "lengths, areas, volumes, concentrations and capacity")
    return SimulationError("the model divides by zero while setting up this cell: check the parameters")


def _missing_parameter(text: str, job) -> SimulationError:
    m = re.search(r"Parameter '([^']+)' not found", text)
    name = m.group(1) if m else short(text, 120)
    if job is None:
        return SimulationError(f"the model needs the parameter '{name}', which the parameter set does not define")
    source = "the BPX document" if job.bpx is not None else f"parameter set {job.parameter_set}"
    options = ", ".join(f"{k}: {v}" for k, v in job.model.options.items())
    needs = f"{job.model.name} with {{{options}}}" if options else job.model.name
    return SimulationError(
        f"model.options: {needs} needs the parameter '{name}', which {source} does not define; remove the option "
        "or choose a parameter set that has it")

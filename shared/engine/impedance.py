"""Impedance spectra (protocol "impedance"): ``pybamm.EISSimulation`` of a physics-based
cell at rest, at one or several states of charge.

A built EIS simulation is kept in the model cache per configuration (model, options,
parameter set, baked overrides); the temperatures are PyBaMM input parameters and the
state of charge is set on the built model (PyBaMM recomputes its initial conditions
without rebuilding), so a job with new numbers re-solves in milliseconds.

PyBaMM imports inside the functions: ``kinds`` loads this module without PyBaMM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

from shared.contract.job import DEFAULT_OUTPUTS
from shared.contract.limits import LIMITS
from shared.engine.kind import Kind

MODEL_NAMES = ("SPM", "SPMe", "DFN")
SURFACE_FORM = "surface form"
SURFACE_FORM_VALUE = "differential"
TEMPERATURES = ("Ambient temperature [K]", "Initial temperature [K]")
COLUMNS = ("State of charge", "Frequency [Hz]", "Z_re [Ohm]", "Z_im [Ohm]", "|Z| [Ohm]", "Phase [deg]")
TERMINATION = "impedance spectrum"
SIGN_CONVENTION = (
    "PyBaMM's convention: Z = -dV/dI with discharge current positive, so Z_re > 0 and a capacitive "
    "arc has Z_im < 0 (a Nyquist plot draws -Z_im upwards); Phase [deg] = atan2(Z_im, Z_re), "
    "negative for a capacitive arc")
SURFACE_FORM_NOTE = (f"model option {SURFACE_FORM!r}: {SURFACE_FORM_VALUE!r} set by the service "
                     "(PyBaMM's EISSimulation needs the double-layer capacitance)")
REFUSED = {
    "Thevenin": "PyBaMM's EISSimulation needs the 'surface form' option, which the equivalent-circuit "
                "model does not have (unverified without it)",
    "sodium_ion.BasicDFN": "PyBaMM's basic sodium-ion DFN has no 'surface form' option (no double-layer "
                           "capacitance, so no verified spectrum)",
}


def with_surface_form(job):
    """The job with the model option EISSimulation needs (the job is not changed)."""
    model = job.model.model_copy(update={"options": {**job.model.options, SURFACE_FORM: SURFACE_FORM_VALUE}})
    return job.model_copy(update={"model": model})


def shape_errors(job) -> list[dict[str, str]]:
    """What an impedance job may not ask for, before PyBaMM is asked anything."""
    errors = []
    name = job.model.name
    if name not in MODEL_NAMES:
        why = REFUSED.get(name, "not offered")
        errors.append({"field": "model.name", "error": f"impedance spectra are offered for {list(MODEL_NAMES)}; "
                                                       f"{name!r}: {why}"})
    surface = job.model.options.get(SURFACE_FORM)
    if surface is not None and surface != SURFACE_FORM_VALUE:
        errors.append({"field": f"model.options.{SURFACE_FORM}", "error": (
            f"impedance jobs run with {SURFACE_FORM!r}: {SURFACE_FORM_VALUE!r} (the service sets it); "
            f"{surface!r} conflicts: leave the option out")})
    for extra in ("ecm_cell", "pack"):
        if getattr(job, extra, None) is not None:
            errors.append({"field": extra, "error": "impedance spectra are offered for one physics-based cell; "
                                                    f"leave {extra} out"})
    if job.protocol.socs is not None and job.conditions.initial_soc is not None:
        errors.append({"field": "protocol.socs", "error": "give either protocol.socs or conditions.initial_soc, "
                                                          "not both"})
    if list(job.outputs.variables) != list(DEFAULT_OUTPUTS) or job.outputs.period_s is not None:
        errors.append({"field": "outputs", "error": f"an impedance result has fixed columns {list(COLUMNS)}; "
                                                    "leave outputs.variables and outputs.period_s out"})
    return errors


@dataclass
class Built:
    """A built EIS simulation in the model cache."""

    sim: Any
    input_names: tuple[str, ...]
    defaults: dict[str, float]
    built_s: float
    set_soc: Optional[float] = None  # the parameter set's own state of charge (no SOC asked)


def _configuration(job):
    """(cache key, base parameter values, baked overrides, input names)."""
    from shared.engine.models import model_options
    from shared.engine.parameters import base_set, digest, is_number

    set_id, base = base_set(job)
    unknown = [n for n in job.parameters if n not in base.keys()]
    if unknown:
        from shared.engine.errors import SimulationError

        raise SimulationError(f"parameters: {unknown} not in parameter set {job.parameter_set or 'bpx'}")
    inputs = tuple(n for n in TEMPERATURES if n in base.keys() and is_number(base[n]))
    baked = {k: v for k, v in job.parameters.items() if k not in inputs}
    if job.conditions.ambient_temperature_C is not None:
        for n in TEMPERATURES:
            if n not in inputs:
                baked[n] = job.conditions.ambient_temperature_C + 273.15
    from_set = job.protocol.socs is None and job.conditions.initial_soc is None
    key = digest({"kind": "impedance", "model": job.model.name, "options": model_options(with_surface_form(job)),
                  "set": set_id, "baked": baked, "inputs": inputs, "soc from set": from_set})
    return key, base, baked, inputs


def _build(job, base, baked, input_names) -> Built:
    import pybamm

    from shared.engine.errors import SimulationError, short
    from shared.engine.models import MODELS, model_options

    t0 = time.perf_counter()
    try:
        model = MODELS[job.model.name](options=model_options(with_surface_form(job)))
    except Exception as exc:
        raise SimulationError(f"model.options: PyBaMM rejected the options: {short(exc)}") from exc
    pv = base.copy()
    pv.update(baked)
    defaults = {n: float(pv[n]) for n in input_names}
    set_soc = _set_soc(pv)
    pv.update({n: "[input]" for n in input_names})
    try:
        sim = pybamm.EISSimulation(model, parameter_values=pv)
    except Exception as exc:
        raise SimulationError(f"PyBaMM could not set up the impedance model: {short(exc)}") from exc
    return Built(sim=sim, input_names=input_names, defaults=defaults, built_s=time.perf_counter() - t0,
                 set_soc=set_soc)


def _set_soc(pv) -> Optional[float]:
    """The state of charge of the set's own initial concentrations (PyBaMM's eSOH), if it has one."""
    import pybamm

    try:
        sto = pybamm.lithium_ion.get_min_max_stoichiometries(pv)
        x0, x100 = float(sto[0]), float(sto[1])
        x = pv["Initial concentration in negative electrode [mol.m-3]"] / pv[
            "Maximum concentration in negative electrode [mol.m-3]"]
        return round(float(min(1.0, max(0.0, (x - x0) / (x100 - x0)))), 6)
    except Exception:  # noqa: BLE001 - a set without eSOH data, or a concentration given as a function
        return None


def spectra(job, compiled: Optional[bool] = None) -> tuple[list[tuple[Optional[float], Any]], Built, str, float]:
    """([(state of charge, complex impedance array)], the built entry, "hit"/"miss", solve seconds)."""
    import numpy as np

    from shared.engine import cache
    from shared.engine.errors import SimulationError, short

    key, base, baked, input_names = _configuration(job)
    entry = cache.MODELS.get(key)
    state = "hit"
    if entry is None:
        entry = _build(job, base, baked, input_names)
        cache.MODELS.put(key, entry)
        state = "miss"
    inputs = {n: float(job.parameters.get(n, entry.defaults[n])) for n in sorted(entry.input_names)}
    if job.conditions.ambient_temperature_C is not None:
        for n in inputs:
            inputs[n] = job.conditions.ambient_temperature_C + 273.15
    socs = job.protocol.socs or [job.conditions.initial_soc]
    frequencies = job.protocol.frequencies()
    out = []
    t0 = time.perf_counter()
    for soc in socs:
        try:
            solution = entry.sim.solve(frequencies, inputs=dict(inputs) or None, initial_soc=soc)
        except Exception as exc:  # noqa: BLE001 - PyBaMM's eSOH or the linear solve
            field_name = "protocol.socs" if job.protocol.socs else "conditions.initial_soc"
            where = f"at state of charge {soc}" if soc is not None else "at the set's initial state"
            raise SimulationError(f"{field_name}: PyBaMM could not compute the impedance {where}: "
                                  f"{short(exc)}") from exc
        z = np.asarray(solution["Impedance [Ohm]"], dtype=complex)
        if not np.all(np.isfinite(z)):
            raise SimulationError(f"the impedance {('at state of charge ' + str(soc)) if soc is not None else ''} "
                                  "is not finite at some frequency; try a narrower frequency range")
        out.append((soc if soc is not None else entry.set_soc, z))
    return out, entry, state, time.perf_counter() - t0


def ambient_temperature_C(job, entry: Built) -> Optional[float]:
    """The ambient temperature the spectra were computed at: the job's, else its override
    of the set's, else the set's own."""
    if job.conditions.ambient_temperature_C is not None:
        return float(job.conditions.ambient_temperature_C)
    kelvin = job.parameters.get(TEMPERATURES[0], entry.defaults.get(TEMPERATURES[0]))
    return None if kelvin is None else float(kelvin) - 273.15


def result(job, computed, notes: list[str], temperature_C: Optional[float] = None) -> dict[str, Any]:
    """The JSON-ready result envelope (as the time-domain results: termination, completed,
    stoppedEarly, endTime, summary, notes, columns), one row per frequency and state of charge."""
    import numpy as np

    frequencies = job.protocol.frequencies()
    cols: dict[str, list] = {name: [] for name in COLUMNS}
    hf, lf = int(np.argmax(frequencies)), int(np.argmin(frequencies))
    high, low = [], []
    for soc, z in computed:
        cols["State of charge"] += [soc] * len(z)
        cols["Frequency [Hz]"] += [float(f) for f in frequencies]
        cols["Z_re [Ohm]"] += z.real.tolist()
        cols["Z_im [Ohm]"] += z.imag.tolist()
        cols["|Z| [Ohm]"] += np.abs(z).tolist()
        cols["Phase [deg]"] += np.degrees(np.angle(z)).tolist()
        high.append(float(z[hf].real))
        low.append(float(abs(z[lf])))
    t = temperature_C
    summary = {
        "Frequencies": len(frequencies),
        "Minimum frequency [Hz]": float(min(frequencies)),
        "Maximum frequency [Hz]": float(max(frequencies)),
        "States of charge": [soc for soc, _ in computed],
        "Initial state of charge": computed[0][0],
        "Ambient temperature [degC]": None if t is None else float(t),
        "Z_re at the maximum frequency [Ohm]": high,
        "|Z| at the minimum frequency [Ohm]": low,
    }
    out: dict[str, Any] = {
        "termination": TERMINATION,
        "completed": True,
        "stoppedEarly": False,
        "endTime": None,
        "summary": summary,
        "notes": notes,
    }
    if not job.outputs.summary_only:
        out["columns"] = cols
    return out


class Impedance(Kind):
    """An impedance spectrum of a physics-based lithium-ion cell (SPM, SPMe, DFN) at rest."""

    name = "impedance"

    def accepts(self, job) -> bool:
        return job.protocol.type == "impedance"

    def check(self, job):
        return self._check(job, values_only=False)

    def check_values(self, job):
        return self._check(job, values_only=True)

    def _check(self, job, values_only: bool):
        """The impedance job's own shape, then the cell's checks with the surface form set."""
        errors = shape_errors(job)
        if errors:
            return errors
        from shared.engine import catalog

        cell_check = catalog.check_values if values_only else catalog.check
        return cell_check(with_surface_form(job))

    def simulate(self, job, compiled=None, segment=None):
        from shared.engine import cache
        from shared.engine.errors import SimulationError
        from shared.engine.timings import timings

        if segment is not None:
            raise SimulationError("an impedance job does not run in segments")
        errors = shape_errors(job)
        if errors:
            raise SimulationError("; ".join(f"{e['field']}: {e['error']}" for e in errors))
        t0 = time.perf_counter()
        computed, entry, state, solve_s = spectra(job, compiled)
        notes = [SIGN_CONVENTION, SURFACE_FORM_NOTE]
        if computed[0][0] is None:
            notes.append("the parameter set's own initial concentrations were used (no state of charge known)")
        out = result(job, computed, notes, ambient_temperature_C(job, entry))
        cache.trim_to_memory()
        out["timings"] = timings(state, entry.built_s, solve_s, t0)
        return out

    def describe(self):
        return {
            "protocol": "impedance",
            "models": list(MODEL_NAMES),
            "refused_models": REFUSED,
            "options_set": {SURFACE_FORM: SURFACE_FORM_VALUE},
            "fields": {
                "frequencies_Hz": "a list of frequencies [Hz]",
                "frequency_range": "{min_Hz, max_Hz, points | points_per_decade}, log-spaced, both ends included",
                "socs": "states of charge in [0, 1], one spectrum each (or conditions.initial_soc)",
            },
            "limits": {k: LIMITS[k] for k in ("min_impedance_frequency_Hz", "max_impedance_frequency_Hz",
                                               "max_impedance_frequencies", "max_impedance_socs")},
            "columns": list(COLUMNS),
            "sign_convention": SIGN_CONVENTION,
        }

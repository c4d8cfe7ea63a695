"""Physical range checks: numbers a cell cannot have, refused at submit.

PyBaMM takes any number for any parameter; a negative diffusivity or a porosity of
1.5 then either "succeeds" with nonsense or fails seconds later in the solver with
a message about IDA flags. Here each parameter is judged by its meaning, read from
its PyBaMM name (the unit in the name helps: "[m]" is a length, "[m2.s-1]" a
diffusivity), and a few relations between parameters are checked (cut-offs
ordered, initial concentration below the maximum, stoichiometry limits ordered,
cut-offs reachable by the cell's open-circuit voltage).

Applied to a job's ``parameters`` overrides (field ``parameters.<name>``) and to a
BPX document: its own fields by their path (``bpx.Parameterisation.Negative
electrode.Porosity``), then the parameter values PyBaMM derives from it (field
``bpx``). Only numbers are judged; functions are skipped, tables are judged by
their values (an OCP table must vary). A parameter set's own values are trusted:
only what the caller gives is judged (tests/test_inputs.py checks every offered
set passes every rule).

Each error is ``{"field": ..., "error": "<value> is outside <range>: <why>"}``.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from shared.contract.limits import VOLTAGE_RANGE_V

INF = math.inf
LOWER = "Lower voltage cut-off [V]"
UPPER = "Upper voltage cut-off [V]"
CUT_OFFS = (LOWER, UPPER)
MAX_CAPACITY_AH = 1000.0  # the same limit as the job contract's (shared/contract/job.py)
TEMPERATURE_RANGE_K = (200.0, 400.0)
# Tolerance of the "fractions add up to at most 1" check (sets round their values).
FRACTION_SLACK = 1e-6


def _num(v: float) -> str:
    if v == INF:
        return "∞"
    if v == -INF:
        return "−∞"
    return f"{v:g}"


@dataclass(frozen=True)
class Range:
    """An allowed range and why (``whole``: whole numbers only)."""

    lo: float = -INF
    hi: float = INF
    lo_open: bool = False
    hi_open: bool = False
    whole: bool = False
    why: str = ""

    def holds(self, v: float) -> bool:
        if not math.isfinite(v):
            return False
        if self.whole and v != int(v):
            return False
        if v < self.lo or (self.lo_open and v == self.lo):
            return False
        if v > self.hi or (self.hi_open and v == self.hi):
            return False
        return True

    def text(self, unit: str = "") -> str:
        if self.whole:
            return f"the whole numbers ≥ {_num(self.lo)}"
        left = "(" if self.lo_open or self.lo == -INF else "["
        right = ")" if self.hi_open or self.hi == INF else "]"
        return f"{left}{_num(self.lo)}, {_num(self.hi)}{right}" + (f" {unit}" if unit else "")


def positive(why: str) -> Range:
    return Range(0.0, INF, lo_open=True, why=why)


def non_negative(why: str) -> Range:
    return Range(0.0, INF, why=why)


VOLTAGE = Range(VOLTAGE_RANGE_V[0], VOLTAGE_RANGE_V[1], why="the service's voltage range")
WHOLE = Range(1.0, INF, whole=True, why="a count of electrodes or cells")

EXACT: dict[str, Range] = {
    "Nominal cell capacity [A.h]": Range(0.0, MAX_CAPACITY_AH, lo_open=True,
                                         why=f"a capacity is positive, and the service's limit is "
                                             f"{MAX_CAPACITY_AH:g} A.h"),
    LOWER: VOLTAGE,
    UPPER: VOLTAGE,
    "Open-circuit voltage at 0% SOC [V]": VOLTAGE,
    "Open-circuit voltage at 100% SOC [V]": VOLTAGE,
    "Number of electrodes connected in parallel to make a cell": WHOLE,
    "Number of electrode pairs connected in parallel to make a cell": WHOLE,
    "Number of cells connected in series to make a battery": WHOLE,
    "Cation transference number": Range(0.0, 1.0, why="the fraction of the current carried by cations"),
    "Thermodynamic factor": positive("the electrolyte's thermodynamic factor is positive"),
    "Contact resistance [Ohm]": non_negative("a resistance cannot be negative"),
    "Ratio of lithium moles to SEI moles": positive("a ratio of amounts is positive"),
    "Initial state-of-charge": Range(0.0, 1.0, why="a state of charge is a fraction"),
}

# Either sign is physical (or a fit may give either): never judged.
NOT_JUDGED = ("activation energy", "entropic", "partial molar volume", "expansion coefficient")

# (words in the lower-case name, words that must not be in it, range); first match wins
KEYWORDS: tuple[tuple[tuple[str, ...], tuple[str, ...], Range], ...] = (
    (("stoichiometry",), (), Range(0.0, 1.0, why="a stoichiometry is a fraction of the maximum concentration")),
    (("porosity",), ("times",), Range(0.0, 1.0, lo_open=True, why="a porosity is the electrolyte's volume fraction")),
    (("volume fraction",), (), Range(0.0, 1.0, lo_open=True, why="a volume fraction is a fraction of the volume")),
    (("transport efficiency",), (), Range(0.0, 1.0, lo_open=True,
                                          why="effective transport is a fraction of bulk transport")),
    # 1 is allowed: PyBaMM's MSMR_Example sets it for a reaction it switches off
    (("transfer coefficient",), ("heat",), Range(0.0, 1.0, lo_open=True,
                                                 why="a charge-transfer coefficient is a symmetry factor")),
    (("bruggeman",), (), non_negative("a negative Bruggeman exponent makes effective transport exceed bulk "
                                      "transport")),
    (("poisson's ratio",), (), Range(-1.0, 0.5, lo_open=True, why="elastic stability")),
    (("emissivity",), (), Range(0.0, 1.0, why="an emissivity is a fraction")),
    (("specific heat capacity",), (), positive("a heat capacity is positive")),
    (("heat transfer coefficient",), (), non_negative("a heat transfer coefficient cannot be negative")),
    (("thermal conductivity",), (), positive("a thermal conductivity is positive")),
    (("conductivity",), (), positive("a conductivity is positive (zero stops the current)")),
    (("diffusivity",), (), positive("a diffusivity is positive (zero or less stops or reverses diffusion)")),
    (("resistivity",), (), non_negative("a resistivity cannot be negative")),
    (("density",), ("current density",), positive("a density is positive")),
)


POSITIVE_UNITS = {
    "m-1": "a surface area per unit volume is positive",
    "A.h": "a capacity is positive",
    "F.m-2": "a capacitance is positive",
    "Pa": "a modulus or stress is positive",
    "mol.m-2.s-1": "a reaction rate constant is positive",
}


def unit_of(name: str) -> str:
    m = re.search(r"\[([^\]]*)\]\s*$", name)
    return m.group(1) if m else ""


def rule_for(name: str) -> Optional[Range]:
    """The allowed range of a parameter, from its name (None: not judged)."""
    if name in EXACT:
        return EXACT[name]
    low = name.lower()
    if any(w in low for w in NOT_JUDGED):
        return None
    for words, unless, rng in KEYWORDS:
        if all(w in low for w in words) and not any(u in low for u in unless):
            return rng
    unit = unit_of(name)
    if unit == "K":
        return Range(*TEMPERATURE_RANGE_K, why="a temperature in kelvin the service simulates")
    if unit == "mol.m-3":
        if "maximum concentration" in low:
            return positive("a maximum concentration is positive")
        if "electrolyte" in low:
            return positive("the electrolyte must hold lithium ions (its concentration is positive)")
        if low.startswith("initial concentration in") and "electrode" in low:
            return Range(0.0, INF, lo_open=True, why="an electrode's initial concentration is positive "
                                                     "(and below its maximum)")
        return non_negative("a concentration cannot be negative")
    if unit == "m":
        if low.startswith("initial") or any(w in low for w in ("coordinate", "current collector", "crack")):
            return non_negative("a length cannot be negative")
        return positive("a length is positive (the model divides by it)")
    if unit in ("m2", "m3"):
        return positive("an area or volume is positive")
    if unit in POSITIVE_UNITS:
        return positive(POSITIVE_UNITS[unit])
    if unit in ("m-2", "s-1", "m.s-1"):
        return non_negative("a rate or count per area cannot be negative")
    if unit == "A.m-2":
        if "electrode" in low:
            return positive("an electrode's exchange-current density is positive")
        return non_negative("an exchange-current density cannot be negative")
    return None


def _error(field: str, value: float, rng: Range, unit: str = "", note: str = "") -> dict[str, str]:
    return {"field": field, "error": f"{value:g} is outside {rng.text(unit)}: {rng.why}{note}"}


def judge(name: str, value: Any) -> Optional[str]:
    """Why a number is not allowed for this parameter (None if it is, or is not judged)."""
    rng = rule_for(name)
    v = _as_float(value)
    if rng is None or v is None or rng.holds(v):
        return None
    return _error("", v, rng, unit_of(name))["error"]


def _is_number(v: Any) -> bool:
    import numpy as np

    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _as_float(v: Any) -> Optional[float]:
    """A number as a float (a JSON integer too large for one: infinity); None otherwise."""
    if not _is_number(v):
        return None
    try:
        return float(v)
    except OverflowError:
        return INF if v > 0 else -INF


# -- relations between parameters ---------------------------------------------------

def _relations(get: Callable[[str], Any], judged: Callable[[str], bool],
               field: Callable[[str], str]) -> list[dict[str, str]]:
    """Cross-parameter rules on numbers (``get(name)``: a parameter's value, None if
    absent); reported only when a judged name takes part."""
    errors: list[dict[str, str]] = []

    def num(name):
        return _as_float(get(name))

    lo, up = num(LOWER), num(UPPER)
    if lo is not None and up is not None and lo >= up and (judged(LOWER) or judged(UPPER)):
        if judged(LOWER) or not judged(UPPER):
            errors.append({"field": field(LOWER), "error": (
                f"{lo:g} is outside [{VOLTAGE_RANGE_V[0]:g}, {up:g}) V: the lower voltage cut-off ({lo:g} V) "
                f"must be below the upper cut-off ({up:g} V)")})
        else:
            errors.append({"field": field(UPPER), "error": (
                f"{up:g} is outside ({lo:g}, {VOLTAGE_RANGE_V[1]:g}] V: the upper voltage cut-off ({up:g} V) "
                f"must be above the lower cut-off ({lo:g} V)")})
    v0, v100 = num("Open-circuit voltage at 0% SOC [V]"), num("Open-circuit voltage at 100% SOC [V]")
    names = ("Open-circuit voltage at 0% SOC [V]", "Open-circuit voltage at 100% SOC [V]")
    if v0 is not None and v100 is not None and v0 >= v100 and any(judged(n) for n in names):
        allowed = (f"[{VOLTAGE_RANGE_V[0]:g}, {v100:g}) V" if judged(names[0])
                   else f"({v0:g}, {VOLTAGE_RANGE_V[1]:g}] V")
        name = names[0] if judged(names[0]) else names[1]
        errors.append({"field": field(name), "error": (
            f"{num(name):g} is outside {allowed}: the open-circuit voltage at 0% SOC ({v0:g} V) must be "
            f"below the one at 100% SOC ({v100:g} V)")})

    for electrode in ("negative", "positive"):
        c0_name = f"Initial concentration in {electrode} electrode [mol.m-3]"
        cmax_name = f"Maximum concentration in {electrode} electrode [mol.m-3]"
        c0, cmax = num(c0_name), num(cmax_name)
        if c0 is not None and cmax is not None and cmax > 0 and not (0 < c0 < cmax):
            if judged(c0_name):
                errors.append({"field": field(c0_name), "error": (
                    f"{c0:g} is outside (0, {cmax:g}) mol.m-3: an electrode's initial concentration must lie "
                    f"between 0 and its maximum concentration ({cmax:g} mol.m-3)")})
            elif judged(cmax_name):
                errors.append({"field": field(cmax_name), "error": (
                    f"{cmax:g} is outside ({c0:g}, ∞) mol.m-3: the maximum concentration must exceed the "
                    f"{electrode} electrode's initial concentration ({c0:g} mol.m-3)")})
        eps_name = f"{electrode.capitalize()} electrode porosity"
        am_name = f"{electrode.capitalize()} electrode active material volume fraction"
        eps, am = num(eps_name), num(am_name)
        if eps is not None and am is not None and eps + am > 1 + FRACTION_SLACK and (judged(eps_name)
                                                                                     or judged(am_name)):
            name, other, v, w = ((eps_name, am_name, eps, am) if judged(eps_name)
                                 else (am_name, eps_name, am, eps))
            errors.append({"field": field(name), "error": (
                f"{v:g} is outside (0, {1 - w:g}]: the {electrode} electrode's porosity and active material "
                f"volume fraction share its volume ({other} is {w:g}; together {eps + am:g} > 1)")})
        smin_name = f"{electrode.capitalize()} electrode minimum stoichiometry"
        smax_name = f"{electrode.capitalize()} electrode maximum stoichiometry"
        smin, smax = num(smin_name), num(smax_name)
        if smin is not None and smax is not None and smin >= smax and (judged(smin_name) or judged(smax_name)):
            errors.append({"field": field(smin_name), "error": (
                f"{smin:g} is outside [0, {smax:g}): the {electrode} electrode's minimum stoichiometry must be "
                f"below its maximum stoichiometry ({smax:g})")})
    return errors


# -- cut-offs against the cell's open-circuit voltage --------------------------------

OCV_POINTS = 101


def ocv_span(pv, window: tuple[float, float, float, float]) -> Optional[tuple[float, float]]:
    """(lowest, highest) open-circuit voltage of the cell as it goes from (x_0, y_0) to
    (x_100, y_100) — negative and positive stoichiometries — at the reference temperature,
    from PyBaMM's own OCP functions (None if they cannot be evaluated)."""
    import numpy as np
    import pybamm

    x0, x100, y100, y0 = (float(w) for w in window)
    s = np.linspace(0.0, 1.0, OCV_POINTS)
    x, y = x0 + s * (x100 - x0), y0 + s * (y100 - y0)
    param = pybamm.LithiumIonParameters()
    try:
        temperature = float(pv["Reference temperature [K]"])
        expr = param.p.prim.U(pybamm.Vector(y), temperature) - param.n.prim.U(pybamm.Vector(x), temperature)
        with np.errstate(all="ignore"):
            v = np.asarray(pv.process_symbol(expr).evaluate(), dtype=float).ravel()
    except Exception:  # noqa: BLE001 - an OCP PyBaMM cannot evaluate here: the solver will say
        return None
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    return float(v.min()), float(v.max())


def lithium_window(pv) -> Optional[tuple[float, float, float, float]]:
    """The stoichiometries the cell's lithium inventory allows, (x_0, x_100, y_100, y_0):
    PyBaMM's eSOH limits (from the electrode capacities and the initial concentrations,
    no solve). None if PyBaMM finds them inconsistent."""
    import numpy as np
    import pybamm

    try:
        param = pybamm.LithiumIonParameters()
        with np.errstate(all="ignore"):
            esoh = pybamm.lithium_ion.ElectrodeSOHSolver(pv, param=param)
            inputs = {"Q_n": pv.evaluate(param.n.Q_init), "Q_p": pv.evaluate(param.p.Q_init),
                      "Q_Li": pv.evaluate(param.Q_Li_particles_init)}
            return tuple(float(v) for v in esoh._get_lims(inputs))  # noqa: SLF001 - no public equivalent
    except Exception:  # noqa: BLE001
        return None


def _cut_off_errors(lo: float, up: float, span: tuple[float, float], where: str,
                    field: Callable[[str], str]) -> list[dict[str, str]]:
    v_lo, v_hi = span
    errors = []
    if lo >= v_hi:
        errors.append({"field": field(LOWER), "error": (
            f"{lo:g} is outside [{VOLTAGE_RANGE_V[0]:g}, {v_hi:.3f}) V: the lower cut-off must be below the cell's "
            f"open-circuit voltage at some state of charge, and this cell's OCV spans {v_lo:.3f}–{v_hi:.3f} V "
            f"{where} (check the cut-offs and the OCP curves)")})
    if up <= v_lo:
        errors.append({"field": field(UPPER), "error": (
            f"{up:g} is outside ({v_lo:.3f}, {VOLTAGE_RANGE_V[1]:g}] V: the upper cut-off must be above the cell's "
            f"open-circuit voltage at some state of charge, and this cell's OCV spans {v_lo:.3f}–{v_hi:.3f} V "
            f"{where} (check the cut-offs and the OCP curves)")})
    return errors


# -- overrides of a parameter set ---------------------------------------------------

def check_overrides(overrides: dict[str, float], base, set_id: str) -> list[dict[str, str]]:
    """Errors for a job's ``parameters`` over the parameter set ``base`` (names already
    known to be in the set)."""
    field = lambda name: f"parameters.{name}"  # noqa: E731
    errors = []
    for name, value in overrides.items():
        rng = rule_for(name)
        if rng is not None and not rng.holds(float(value)):
            errors.append(_error(field(name), float(value), rng, unit_of(name)))
    if errors:
        return errors
    keys = base.keys()

    def get(name):
        return overrides[name] if name in overrides else (base[name] if name in keys else None)

    errors = _relations(get, lambda n: n in overrides, field)
    if errors or not any(n in overrides for n in CUT_OFFS):
        return errors
    lo, up = get(LOWER), get(UPPER)
    if not (_is_number(lo) and _is_number(up)):
        return errors
    # the cell's reachable OCV depends on everything but the cut-offs: cached without them
    rest = tuple(sorted((k, float(v)) for k, v in overrides.items() if k not in CUT_OFFS))
    span = _set_span(set_id, rest, base)
    if span is not None:
        errors += _cut_off_errors(float(lo), float(up), span, "over the stoichiometries its lithium allows", field)
    return errors


_SPANS: dict[tuple, Optional[tuple[float, float]]] = {}
_SPANS_MAX = 256
_SPANS_LOCK = threading.Lock()  # the submit function checks jobs on several threads


def _set_span(set_id: str, rest: tuple, base) -> Optional[tuple[float, float]]:
    """The OCV span of a parameter set with these (non-cut-off) overrides, cached."""
    key = (set_id, rest)
    with _SPANS_LOCK:
        if key in _SPANS:
            return _SPANS[key]
    pv = base.copy()
    pv.update(dict(rest))
    window = lithium_window(pv)
    span = None if window is None else ocv_span(pv, window)
    with _SPANS_LOCK:
        while len(_SPANS) >= _SPANS_MAX:
            _SPANS.pop(next(iter(_SPANS)))
        _SPANS[key] = span
    return span


# -- BPX documents --------------------------------------------------------------------

def _is_table(v: Any) -> bool:
    return isinstance(v, dict) and isinstance(v.get("x"), list) and isinstance(v.get("y"), list)


def _leaves(doc: dict, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict, str, Any]]:
    for key, value in doc.items():
        if isinstance(value, dict) and not _is_table(value):
            yield from _leaves(value, path + (key,))
        else:
            yield path, doc, key, value


def _section(doc: Any, *path: str) -> dict:
    for key in path:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc if isinstance(doc, dict) else {}


def check_bpx_document(doc: dict) -> list[dict[str, str]]:
    """Errors in a BPX document's own fields, by their path (before PyBaMM reads it:
    PyBaMM's own reading may fail on them with a less useful message). The document
    is any JSON object here: what is not a number or a table is left to the BPX schema."""
    errors: list[dict[str, str]] = []
    sections = {k: v for k, v in doc.items() if k != "Header" and isinstance(v, dict)}
    for path, parent, key, value in _leaves(sections):
        field = "bpx." + ".".join(path + (key,))
        v = _as_float(value)
        if v is not None:
            rng = rule_for(key)
            if rng is not None and not rng.holds(v):
                errors.append(_error(field, v, rng, unit_of(key)))
            smax = _as_float(parent.get("Maximum stoichiometry"))
            if key == "Minimum stoichiometry" and smax is not None and 0 <= v <= 1 and 0 <= smax <= 1 and v >= smax:
                errors.append({"field": field, "error": (
                    f"{v:g} is outside [0, {smax:g}): the minimum stoichiometry must be below the maximum "
                    f"stoichiometry ({smax:g})")})
        elif _is_table(value):
            errors += _table_errors(field, key, value)
    cell = _section(doc, "Parameterisation", "Cell")
    lo, up = _as_float(cell.get(LOWER)), _as_float(cell.get(UPPER))
    if lo is not None and up is not None and VOLTAGE.holds(lo) and VOLTAGE.holds(up) and lo >= up:
        errors.append({"field": f"bpx.Parameterisation.Cell.{LOWER}", "error": (
            f"{lo:g} is outside [{VOLTAGE_RANGE_V[0]:g}, {up:g}) V: the lower voltage cut-off ({lo:g} V) must be "
            f"below the upper cut-off ({up:g} V); the two are inverted")})
    return errors


def check_bpx_values(doc: dict, pv) -> list[dict[str, str]]:
    """Errors in what PyBaMM derives from a BPX document whose own fields passed
    (``pv``: its parameter values), and its cut-offs against its OCV."""
    errors: list[dict[str, str]] = []
    cell = _section(doc, "Parameterisation", "Cell")
    lo, up = _as_float(cell.get(LOWER)), _as_float(cell.get(UPPER))
    # the values PyBaMM derives from the document (e.g. active material fractions)
    values = {k: pv[k] for k in pv.keys()}
    derived = []
    for name, value in values.items():
        why = judge(name, value)
        if why is not None:
            derived.append({"field": "bpx", "error": f"{why} (PyBaMM's {name!r}, derived from the document)"})
    derived += [{"field": "bpx", "error": e["error"] + f" (PyBaMM's {e['field']!r}, derived from the document)"}
                for e in _relations(values.get, lambda n: True, lambda n: n)]
    if derived:
        return derived

    # cut-offs against the OCV over the document's own stoichiometry window
    window = tuple(values.get(f"{e} electrode {b} stoichiometry") for e, b in
                   (("Negative", "minimum"), ("Negative", "maximum"), ("Positive", "minimum"),
                    ("Positive", "maximum")))
    if all(_is_number(w) for w in window) and lo is not None and up is not None:
        span = ocv_span(pv, window)
        if span is not None:
            errors += _cut_off_errors(lo, up, span, "between its minimum and maximum stoichiometries",
                                      lambda n: f"bpx.Parameterisation.Cell.{n}")
    return errors


def _table_errors(field: str, key: str, table: dict) -> list[dict[str, str]]:
    ys = [y for y in (_as_float(v) for v in table["y"]) if y is not None]
    if not ys:
        return []
    if key.startswith("OCP") and "entropic" not in key.lower():
        if max(ys) - min(ys) < 1e-6:
            return [{"field": field, "error": (
                f"every value is {ys[0]:g} V: an open-circuit potential must change with stoichiometry "
                "(a constant one gives the cell no voltage–charge relation)")}]
        return []
    rng = rule_for(key)
    if rng is None:
        return []
    bad = [y for y in ys if not rng.holds(y)]
    if bad:
        low = min(bad)
        worst = low if (low < rng.lo or (rng.lo_open and low == rng.lo) or not math.isfinite(low)) else max(bad)
        return [_error(field, worst, rng, unit_of(key), note=" (a value in its table)")]
    return []

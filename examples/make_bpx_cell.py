"""Write ``examples/lgm50_like_bpx.json``: a BPX document for a cell like the LG M50.

Every number is derived from PyBaMM's Chen2020 set, so that PyBaMM reading this
document (``ParameterValues.create_from_bpx_obj``) simulates the same cell as
``ParameterValues("Chen2020")``: an isothermal 1C DFN discharge agrees within
0.1 mV (``tests/test_bpx_example.py`` checks 1 mV). How each field is obtained:

* Geometry, porosities, transport efficiencies (porosity ** Bruggeman), solid
  conductivities, particle radii and diffusivities, maximum concentrations,
  transference number, cut-offs, capacity, temperatures: copied. Chen2020's solid
  Bruggeman coefficient is 0, so its electrode conductivities are already the
  "effective" ones BPX expects. BPX gives one electrode area; PyBaMM makes the
  electrode square, which changes nothing in a 1D model.
* Surface area per unit volume: 3 * active material volume fraction / radius,
  which is what PyBaMM computes for Chen2020 and inverts for BPX.
* Stoichiometry limits: PyBaMM's eSOH for Chen2020 at 0 % and 100 % SOC (the
  cut-offs), and "Initial state-of-charge" 1.0 gives the same lithium inventory.
* Reaction rate constants and their activation energies: from Chen2020's
  exchange-current density functions (see ``_kinetics``).
* Open-circuit potentials: tabulated, as a cell supplier's BPX file would give
  them, on stoichiometries placed so that linear interpolation (how PyBaMM reads
  a BPX table) is within ``OCP_TABLE_TOLERANCE_V`` of Chen2020's fit everywhere
  (the graphite curve is steep below x = 0.1: 101 evenly spaced points were up to
  14 mV off above x = 0.02, 30 mV below it, and cost ~5-6 mV at the end of a 1C
  discharge; 426 + 165 points here).
* Electrolyte diffusivity and conductivity: Chen2020's Nyman (2008) fits as BPX
  expressions in x = concentration [mol.m-3] (their values at 1 M, as constants,
  cost ~7 mV at 1C as the concentration moves away from 1 M). Neither fit, nor the
  particle diffusivities, depend on temperature: activation energies are 0.

Not the same as Chen2020, and why it does not matter to the voltage of an
isothermal model: BPX's lumped thermal data (a cell density and specific heat
capacity; Chen2020 has no cell-level values, these are assumed) stand in for
Chen2020's per-layer densities, heat capacities and thermal conductivities, and
PyBaMM gives BPX cells current collectors of zero thickness; a thermal model of
this cell therefore heats somewhat differently from Chen2020's. Chen2020's SEI and
double-layer parameters have no BPX field and take no part in a DFN discharge.

Run: ``python -m examples.make_bpx_cell``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import numpy as np  # noqa: E402
import pybamm  # noqa: E402

OUT = Path(__file__).with_name("lgm50_like_bpx.json")
OCP_TABLE_TOLERANCE_V = 2e-5
ELECTROLYTE_DIFFUSIVITY = "8.794e-11 * (x / 1000) ** 2 - 3.972e-10 * (x / 1000) + 4.862e-10"
ELECTROLYTE_CONDUCTIVITY = "0.1297 * (x / 1000) ** 3 - 2.51 * (x / 1000) ** 1.5 + 3.329 * (x / 1000)"


def _evaluate(fn, *args) -> np.ndarray:
    """A Chen2020 function evaluated through PyBaMM's expression tree (numbers or arrays)."""
    syms = [pybamm.Vector(np.atleast_1d(a)) if np.ndim(a) else pybamm.Scalar(a) for a in args]
    return np.asarray(fn(*syms).evaluate(), dtype=float).ravel()


def _ocp_table(fn, lo: float, hi: float, tol: float = OCP_TABLE_TOLERANCE_V) -> dict:
    """Tabulate an OCP on [lo, hi] at points of a 1e-5 grid (chosen by recursive
    bisection) where linear interpolation is within ``tol`` of ``fn`` on the whole grid."""
    x = np.arange(round(lo * 1e5), round(hi * 1e5) + 1) / 1e5
    y = _evaluate(fn, x)
    keep = {0, len(x) - 1}

    def split(i: int, j: int) -> None:
        line = y[i] + (y[j] - y[i]) * (x[i:j + 1] - x[i]) / (x[j] - x[i])
        if j - i > 1 and np.max(np.abs(line - y[i:j + 1])) > tol:
            m = (i + j) // 2
            keep.add(m)
            split(i, m)
            split(m, j)

    split(0, len(x) - 1)
    idx = sorted(keep)
    return {"x": [float(v) for v in x[idx]], "y": [round(float(v), 7) for v in y[idx]]}


def _kinetics(p: pybamm.ParameterValues, side: str, c_max: float, c_e0: float,
              T_ref: float) -> tuple[float, float]:
    """(BPX reaction rate constant [mol.m-2.s-1], its activation energy [J.mol-1]) that
    reproduce Chen2020's exchange-current density for one electrode.

    Chen2020:  j0 = m_ref * exp(E_r/R * (1/298.15 - 1/T)) * sqrt(c_e * c_s * (c_max - c_s))
    (m_ref = 6.48e-7 and 3.42e-6 A.m-2.(m3.mol-1)^1.5, E_r = 35000 and 17800 J.mol-1).
    BPX:       j0 = F * k * exp(Ea/R * (1/T_ref - 1/T)) * sqrt(c_e/c_e0 * c_s/c_max * (1 - c_s/c_max)),
    which PyBaMM (pybamm/parameters/bpx.py) implements as m_ref = k * F / (c_max * sqrt(c_e0)),
    c_e0 being the BPX initial electrolyte concentration. Hence
        k = m_ref * c_max * sqrt(c_e0) / F     (7.04e-6 negative, 7.07e-5 positive),
        Ea = E_r, with T_ref = 298.15 K as in Chen2020.
    Both are read off the Chen2020 function itself: k from j0 at (c_e0, half-full
    particle, T_ref), Ea from the ratio of j0 at two temperatures; then the BPX form is
    checked against the function at other concentrations and temperatures.
    """
    j0 = p[f"{side} electrode exchange-current density [A.m-2]"]
    F, R = pybamm.constants.F.value, pybamm.constants.R.value

    def chen(c_e, sto, T):
        return float(_evaluate(j0, c_e, sto * c_max, c_max, T)[0])

    k = chen(c_e0, 0.5, T_ref) / (F * np.sqrt(0.5 * 0.5))
    T1, T2 = T_ref - 20.0, T_ref + 20.0
    Ea = R * np.log(chen(c_e0, 0.5, T2) / chen(c_e0, 0.5, T1)) / (1 / T1 - 1 / T2)
    Ea = float(round(Ea, 6))  # 35000.0 and 17800.0 (up to rounding of the logarithm)
    for c_e, sto, T in ((300.0, 0.1, 268.15), (1700.0, 0.9, 318.15), (1000.0, 0.02, T_ref)):
        bpx = F * k * np.exp(Ea / R * (1 / T_ref - 1 / T)) * np.sqrt(c_e / c_e0 * sto * (1 - sto))
        assert abs(bpx / chen(c_e, sto, T) - 1) < 1e-9, (side, c_e, sto, T)
    return float(k), Ea


def build() -> dict:
    p = pybamm.ParameterValues("Chen2020")
    area = p["Electrode height [m]"] * p["Electrode width [m]"]
    T_ref = p["Reference temperature [K]"]
    c_e0 = p["Initial concentration in electrolyte [mol.m-3]"]
    x_100, y_100 = pybamm.lithium_ion.get_initial_stoichiometries(1.0, p)
    x_0, y_0 = pybamm.lithium_ion.get_initial_stoichiometries(0.0, p)

    def transport_efficiency(domain: str) -> float:
        return p[f"{domain} porosity"] ** p[f"{domain} Bruggeman coefficient (electrolyte)"]

    def electrode(side: str, ocp, stoich_min, stoich_max) -> dict:
        c_max = p[f"Maximum concentration in {side.lower()} electrode [mol.m-3]"]
        k, Ea = _kinetics(p, side, c_max, c_e0, T_ref)
        return {
            "Thickness [m]": p[f"{side} electrode thickness [m]"],
            "Porosity": p[f"{side} electrode porosity"],
            "Transport efficiency": transport_efficiency(f"{side} electrode"),
            "Conductivity [S.m-1]": p[f"{side} electrode conductivity [S.m-1]"],
            "Minimum stoichiometry": float(stoich_min),
            "Maximum stoichiometry": float(stoich_max),
            "Maximum concentration [mol.m-3]": c_max,
            "Particle radius [m]": p[f"{side} particle radius [m]"],
            "Surface area per unit volume [m-1]": 3 * p[f"{side} electrode active material volume fraction"]
            / p[f"{side} particle radius [m]"],
            "Diffusivity [m2.s-1]": p[f"{side} particle diffusivity [m2.s-1]"],
            "Diffusivity activation energy [J.mol-1]": 0.0,
            "OCP [V]": ocp,
            "Entropic change coefficient [V.K-1]": p[f"{side} electrode OCP entropic change [V.K-1]"],
            "Reaction rate constant [mol.m-2.s-1]": k,
            "Reaction rate constant activation energy [J.mol-1]": Ea,
        }

    neg_ocp = _ocp_table(p["Negative electrode OCP [V]"], 0.001, 0.999)
    pos_ocp = _ocp_table(p["Positive electrode OCP [V]"], 0.25, 0.999)
    return {
        "Header": {
            "BPX": "1.0.0",
            "Title": "LG M50-like cylindrical cell (from PyBaMM's Chen2020 values)",
            "Description": "Example BPX document for the battery simulation service",
            "Model": "DFN",
        },
        "Parameterisation": {
            "Cell": {
                "Electrode area [m2]": area,
                "External surface area [m2]": p["Cell cooling surface area [m2]"],
                "Volume [m3]": p["Cell volume [m3]"],
                "Number of electrode pairs connected in parallel to make a cell":
                    int(p["Number of electrodes connected in parallel to make a cell"]),
                "Lower voltage cut-off [V]": p["Lower voltage cut-off [V]"],
                "Upper voltage cut-off [V]": p["Upper voltage cut-off [V]"],
                "Nominal cell capacity [A.h]": p["Nominal cell capacity [A.h]"],
                "Reference temperature [K]": T_ref,
                "Density [kg.m-3]": 2940.0,
                "Specific heat capacity [J.K-1.kg-1]": 1000.0,
            },
            "Electrolyte": {
                "Cation transference number": p["Cation transference number"],
                "Diffusivity [m2.s-1]": ELECTROLYTE_DIFFUSIVITY,
                "Diffusivity activation energy [J.mol-1]": 0.0,
                "Conductivity [S.m-1]": ELECTROLYTE_CONDUCTIVITY,
                "Conductivity activation energy [J.mol-1]": 0.0,
            },
            "Negative electrode": electrode("Negative", neg_ocp, x_0, x_100),
            "Positive electrode": electrode("Positive", pos_ocp, y_100, y_0),
            "Separator": {"Thickness [m]": p["Separator thickness [m]"], "Porosity": p["Separator porosity"],
                          "Transport efficiency": transport_efficiency("Separator")},
        },
        "State": {
            "Initial conditions": {"Initial state-of-charge": 1.0,
                                   "Initial temperature [K]": p["Initial temperature [K]"],
                                   "Initial electrolyte concentration [mol.m-3]": c_e0},
            "Thermal environment": {"Ambient temperature [K]": p["Ambient temperature [K]"],
                                    "Heat transfer coefficient [W.m-2.K-1]":
                                        p["Total heat transfer coefficient [W.m-2.K-1]"]},
        },
    }


def _check_electrolyte_expressions(p: pybamm.ParameterValues) -> None:
    """The BPX expressions are Chen2020's electrolyte functions (typed out, so check)."""
    from bpx import Function

    c = np.linspace(50.0, 4000.0, 80)
    for text, name in ((ELECTROLYTE_DIFFUSIVITY, "Electrolyte diffusivity [m2.s-1]"),
                       (ELECTROLYTE_CONDUCTIVITY, "Electrolyte conductivity [S.m-1]")):
        ours = np.array([Function.validate(text).to_python_function()(v) for v in c])
        assert np.allclose(ours, _evaluate(p[name], c, 298.15), rtol=1e-12, atol=0), name


def render(doc: dict) -> str:
    """The file's exact text."""
    return json.dumps(doc, indent=1) + "\n"


if __name__ == "__main__":
    _check_electrolyte_expressions(pybamm.ParameterValues("Chen2020"))
    doc = build()
    OUT.write_text(render(doc))
    pv = pybamm.ParameterValues.create_from_bpx_obj(doc)
    print(f"wrote {OUT}; PyBaMM reads it: capacity {pv['Nominal cell capacity [A.h]']} A.h")

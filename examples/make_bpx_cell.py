"""Write ``examples/lgm50_like_bpx.json``: a BPX document for a cell like the LG M50.

The numbers come from PyBaMM's Chen2020 set; the open-circuit potentials are
tabulated on 101 stoichiometries, as a cell supplier's BPX file would give them.
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


def _table(fn, x) -> dict:
    y = [float(fn(pybamm.Scalar(v)).evaluate()) for v in x]
    return {"x": [float(v) for v in x], "y": y}


def build() -> dict:
    p = pybamm.ParameterValues("Chen2020")
    area = p["Electrode height [m]"] * p["Electrode width [m]"]
    x_100, y_100 = pybamm.lithium_ion.get_initial_stoichiometries(1.0, p)
    x_0, y_0 = pybamm.lithium_ion.get_initial_stoichiometries(0.0, p)

    def electrode(side: str, ocp, stoich_min, stoich_max) -> dict:
        return {
            "Thickness [m]": p[f"{side} electrode thickness [m]"],
            "Porosity": p[f"{side} electrode porosity"],
            "Transport efficiency": p[f"{side} electrode porosity"] ** 1.5,
            "Conductivity [S.m-1]": p[f"{side} electrode conductivity [S.m-1]"],
            "Minimum stoichiometry": float(stoich_min),
            "Maximum stoichiometry": float(stoich_max),
            "Maximum concentration [mol.m-3]": p[f"Maximum concentration in {side.lower()} electrode [mol.m-3]"],
            "Particle radius [m]": p[f"{side} particle radius [m]"],
            "Surface area per unit volume [m-1]": 3 * p[f"{side} electrode active material volume fraction"]
            / p[f"{side} particle radius [m]"],
            "Diffusivity [m2.s-1]": p[f"{side} particle diffusivity [m2.s-1]"],
            "Diffusivity activation energy [J.mol-1]": 0.0,
            "OCP [V]": ocp,
            "Entropic change coefficient [V.K-1]": 0.0,
            "Reaction rate constant [mol.m-2.s-1]": 2e-7 if side == "Negative" else 8e-7,
            "Reaction rate constant activation energy [J.mol-1]": 35000.0 if side == "Negative" else 17800.0,
        }

    neg_ocp = _table(p["Negative electrode OCP [V]"], np.linspace(0.001, 0.999, 101))
    pos_ocp = _table(p["Positive electrode OCP [V]"], np.linspace(0.25, 0.999, 101))
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
                "External surface area [m2]": 0.0053,
                "Volume [m3]": 2.42e-5,
                "Number of electrode pairs connected in parallel to make a cell": 1,
                "Lower voltage cut-off [V]": 2.5,
                "Upper voltage cut-off [V]": 4.2,
                "Nominal cell capacity [A.h]": 5.0,
                "Reference temperature [K]": 298.15,
                "Density [kg.m-3]": 2940.0,
                "Specific heat capacity [J.K-1.kg-1]": 1000.0,
            },
            "Electrolyte": {
                "Cation transference number": 0.2594,
                "Diffusivity [m2.s-1]": 1.77e-10,
                "Diffusivity activation energy [J.mol-1]": 0.0,
                "Conductivity [S.m-1]": 0.95,
                "Conductivity activation energy [J.mol-1]": 0.0,
            },
            "Negative electrode": electrode("Negative", neg_ocp, x_0, x_100),
            "Positive electrode": electrode("Positive", pos_ocp, y_100, y_0),
            "Separator": {"Thickness [m]": p["Separator thickness [m]"], "Porosity": p["Separator porosity"],
                          "Transport efficiency": p["Separator porosity"] ** 1.5},
        },
        "State": {
            "Initial conditions": {"Initial state-of-charge": 1.0, "Initial temperature [K]": 298.15,
                                  "Initial electrolyte concentration [mol.m-3]": 1000.0},
            "Thermal environment": {"Ambient temperature [K]": 298.15, "Heat transfer coefficient [W.m-2.K-1]": 10.0},
        },
    }


if __name__ == "__main__":
    doc = build()
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    pv = pybamm.ParameterValues.create_from_bpx_obj(doc)
    print(f"wrote {OUT}; PyBaMM reads it: capacity {pv['Nominal cell capacity [A.h]']} A.h")

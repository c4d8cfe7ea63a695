"""Planning a job: what is built once per configuration (``Static``) and the numbers
each job feeds in (``Plan.inputs``).

A configuration is model, options, parameter set, baked overrides, protocol shape
and outputs; the numbers that vary from job to job — cut-offs, capacity, current,
temperature, initial concentrations (initial SOC) — are PyBaMM input parameters,
so a new job with new numbers re-solves a built model without rebuilding it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import pybamm

from shared.engine import cache
from shared.engine.errors import SimulationError, short
from shared.engine.models import lacks as model_lacks
from shared.engine.models import model_options, set_options
from shared.engine.parameters import base_set, digest, initial_stoichiometries, is_number, set_initial_state

# Numbers that may change from job to job without rebuilding the model.
INPUT_CANDIDATES = (
    "Upper voltage cut-off [V]",
    "Lower voltage cut-off [V]",
    "Nominal cell capacity [A.h]",
    "Ambient temperature [K]",
    "Initial temperature [K]",
    "Initial concentration in negative electrode [mol.m-3]",
    "Initial concentration in positive electrode [mol.m-3]",
)
TEMPERATURES = ("Ambient temperature [K]", "Initial temperature [K]")

# Always computed (for the summary), whatever the job asks to see (but those a model
# lacks: ``models.LACKS``).
SUMMARY_VARIABLES = (
    "Time [s]",
    "Voltage [V]",
    "Current [A]",
    "Discharge capacity [A.h]",
    "Volume-averaged cell temperature [K]",
    "Average negative particle stoichiometry",
)

CN = "Initial concentration in negative electrode [mol.m-3]"
CP = "Initial concentration in positive electrode [mol.m-3]"
CN_MAX = "Maximum concentration in negative electrode [mol.m-3]"
CP_MAX = "Maximum concentration in positive electrode [mol.m-3]"


@dataclass
class Static:
    """Everything about a job that does not change between jobs of one configuration."""

    parameter_values: Any  # inputs marked "[input]"; used to build
    numeric_pv: Any  # numbers only; used for eSOH
    input_names: tuple[str, ...]
    defaults: dict[str, float]
    esoh: Optional[tuple[float, float]]  # (x_0, x_100) of the negative electrode
    experiment: Any = None  # a pybamm.Experiment, for protocols that run one
    protocol_data: dict = field(default_factory=dict)  # whatever else a protocol keeps
    soc_memo: dict = field(default_factory=dict)

    def mark_inputs(self, job, input_names) -> None:
        """The parameter values to build with: the numbers, with ``input_names`` and the
        protocol's own inputs (``prepare``) marked "[input]"."""
        pv = self.numeric_pv.copy()
        names = list(input_names) + job.protocol.prepare(self, pv)
        pv.update({n: "[input]" for n in names})
        self.parameter_values = pv
        self.input_names = tuple(names)

    def concentrations(self, soc: float) -> tuple[float, float]:
        if soc not in self.soc_memo:
            try:
                x, y = initial_stoichiometries(soc, self.numeric_pv)
            except Exception as exc:
                raise SimulationError(f"conditions.initial_soc: PyBaMM could not set it: {short(exc)}")
            self.soc_memo[soc] = (x * self.numeric_pv[CN_MAX], y * self.numeric_pv[CP_MAX])
        return self.soc_memo[soc]


@dataclass
class Plan:
    """One job, ready to solve: its configuration key and its per-job numbers."""

    key: str
    protocol: Any  # the job's protocol object (shared.engine.protocols)
    parameter_values: Any
    inputs: dict[str, float]
    experiment: Any
    t_eval: Optional[Any]
    t_interp: Optional[np.ndarray]
    requested_end_s: Optional[float]
    output_variables: list[str]
    initial_soc: Optional[float]
    esoh: Optional[tuple[float, float]] = None
    notes: list[str] = field(default_factory=list)
    lacks: tuple[str, ...] = ()  # summary variables the model does not have


def plan(job) -> Plan:
    set_id, base = base_set(job)
    keys = base.keys()
    overrides = dict(job.parameters)
    unknown = [name for name in overrides if name not in keys]
    if unknown:
        raise SimulationError(f"parameters: {unknown} not in parameter set {job.parameter_set or 'bpx'}")
    protocol = job.protocol
    conditions = job.conditions

    # Numbers that become inputs (a protocol may fix some itself: experiments set
    # capacity and temperatures).
    input_names = [
        n for n in INPUT_CANDIDATES
        if n in keys and is_number(base[n]) and n not in protocol.fixed_parameters
    ]
    baked = {k: v for k, v in overrides.items() if k not in input_names}
    if conditions.ambient_temperature_C is not None:
        kelvin = conditions.ambient_temperature_C + 273.15
        for n in TEMPERATURES:
            if n not in input_names:
                baked[n] = kelvin
    # a set that needs its own options (composite, MSMR, half-cell) gets its initial
    # state from PyBaMM's set_initial_state, baked
    own_options = bool(set_options(job.parameter_set)) if job.bpx is None else False
    soc_as_input = CN in input_names and CP in input_names and not own_options
    if conditions.initial_soc is not None and not soc_as_input:
        baked["initial state of charge"] = conditions.initial_soc

    options = model_options(job)
    lacks = model_lacks(job.model.name, tuple(options.items()) if own_options else (), SUMMARY_VARIABLES)
    summary = [v for v in SUMMARY_VARIABLES if v not in lacks]
    outputs = list(dict.fromkeys(summary + list(job.outputs.variables)))
    key = digest({"model": job.model.name, "options": options, "set": set_id,
                  "baked": baked, "inputs": input_names, "shape": protocol.cache_shape(), "outputs": outputs})
    static = cache.PLANS.get(key)
    if static is None:
        static = _make_static(job, base, baked, input_names, options if own_options else None)
        cache.PLANS.put(key, static)

    # Per-job numbers
    inputs = {n: float(overrides.get(n, static.defaults[n])) for n in static.input_names
              if n in static.defaults}
    if conditions.ambient_temperature_C is not None:
        for n in TEMPERATURES:
            if n in inputs:
                inputs[n] = conditions.ambient_temperature_C + 273.15
    soc = conditions.initial_soc
    if soc is not None and soc_as_input:
        inputs[CN], inputs[CP] = static.concentrations(soc)
    if soc is None and static.esoh is not None and CN in inputs:
        x0, x100 = static.esoh
        soc = float(min(1.0, max(0.0, (inputs[CN] / static.numeric_pv[CN_MAX] - x0) / (x100 - x0))))

    notes: list[str] = []
    timeline = protocol.timeline(job, static, inputs, notes)
    return Plan(key=key, protocol=protocol, parameter_values=static.parameter_values,
                inputs=inputs, experiment=static.experiment, t_eval=timeline.t_eval,
                t_interp=timeline.t_interp, requested_end_s=timeline.requested_end_s,
                output_variables=outputs, initial_soc=soc, esoh=static.esoh, notes=notes, lacks=lacks)


def _make_static(job, base, baked: dict[str, Any], input_names: list[str],
                 own_options: Optional[dict] = None) -> Static:
    """``own_options``: the model options of a set that needs its own (its initial state
    is PyBaMM's ``set_initial_state`` with them; it reports no SOC of its own)."""
    numeric = base.copy()
    baked = dict(baked)
    soc = baked.pop("initial state of charge", None)
    numeric.update(baked)
    defaults = {n: float(numeric[n]) for n in input_names}
    esoh = None
    if own_options is None:
        try:
            sto = pybamm.lithium_ion.get_min_max_stoichiometries(numeric)
            esoh = (float(sto[0]), float(sto[1]))  # x_0, x_100
        except Exception:  # noqa: BLE001 - a set without eSOH data simply reports no SOC
            esoh = None
    static = Static(parameter_values=None, numeric_pv=numeric, input_names=(), defaults=defaults, esoh=esoh)
    if soc is not None and own_options is not None:
        set_initial_state(soc, numeric, own_options)
        defaults.update({n: float(numeric[n]) for n in input_names if is_number(numeric[n])})
    elif soc is not None:  # initial concentrations are not plain numbers in this set: bake them
        cn, cp = static.concentrations(soc)
        numeric.update({CN: cn, CP: cp})
    static.mark_inputs(job, input_names)
    return static

"""The native job: what a battery engineer asks the service to simulate.

Pydantic does the structural and range checks; the checks that need PyBaMM
(parameter names, variable names, experiment strings) are the catalog's
(``shared.engine.catalog``). Legacy requests (``shared.contract.legacy``) become
a ``Job`` too: it is the only thing the worker and the engine ever see.

    python -m shared.contract.job > schema/job.schema.json      (make schema)
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field, StrictInt, field_validator, model_validator

from shared.contract.ecm import EcmCell
from shared.contract.limits import LIMITS, VOLTAGE_RANGE_V, Strict
from shared.contract.pack import Pack
from shared.engine.protocols import TYPES as PROTOCOL_TYPES
from shared.engine.protocols import AnyProtocol

DEFAULT_OUTPUTS = ["Time [s]", "Voltage [V]", "Current [A]", "Discharge capacity [A.h]"]


# Lithium-ion physics-based models (pybamm.lithium_ion), the equivalent-circuit model
# (pybamm.equivalent_circuit.Thevenin) and the sodium-ion DFN (pybamm.sodium_ion.BasicDFN).
MODEL_NAMES = ("SPM", "SPMe", "DFN", "Thevenin", "sodium_ion.BasicDFN")
# A model whose chemistry the default set (Chen2020) is not: its own set when a job names none.
MODEL_DEFAULT_SETS = {"sodium_ion.BasicDFN": "Chayambuka2022"}


class ModelSpec(Strict):
    name: Literal[MODEL_NAMES] = "DFN"
    options: dict[str, Union[str, StrictInt]] = Field(
        default_factory=dict,
        description='PyBaMM model options, e.g. {"thermal": "lumped"}; Thevenin: {"number of rc elements": 2}',
    )


class Conditions(Strict):
    ambient_temperature_C: Optional[float] = Field(default=None, ge=-40, le=80)
    initial_soc: Optional[float] = Field(default=None, ge=0, le=1)


class Outputs(Strict):
    variables: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=lambda: list(DEFAULT_OUTPUTS), min_length=1, max_length=30
    )
    period_s: Optional[float] = Field(default=None, gt=0, le=86400)
    max_points: int = Field(default=2000, ge=2, le=LIMITS["max_output_points"])
    summary_only: bool = False
    columnar: bool = True


class Job(Strict):
    """A native simulation job (also what legacy requests become)."""

    model: ModelSpec = Field(default_factory=ModelSpec)
    parameter_set: Optional[str] = Field(
        default="Chen2020", max_length=64,
        description="a PyBaMM parameter set (GET /catalog lists them with their models); default Chen2020, "
                    "Chayambuka2022 for sodium_ion.BasicDFN, ECM_Example for Thevenin")
    bpx: Optional[dict[str, Any]] = Field(
        default=None, description="a BPX document describing the cell (replaces parameter_set)"
    )
    parameters: dict[str, float] = Field(
        default_factory=dict,
        description="overrides: exact PyBaMM parameter names (with units) to numbers",
        max_length=100,
    )
    ecm_cell: Optional[EcmCell] = Field(
        default=None, description="model Thevenin only: the user's own cell as tables against SOC "
                                  "(an HPPC fit), replacing parameter_set")
    pack: Optional[Pack] = Field(
        default=None, description="a battery of identical cells in series and parallel")
    protocol: AnyProtocol
    conditions: Conditions = Field(default_factory=Conditions)
    outputs: Outputs = Field(default_factory=Outputs)
    callback_url: Optional[str] = Field(default=None, max_length=2048)
    reuse: bool = Field(default=False, description="answer from the store if an identical job already "
                                                   "succeeded (same inputs, PyBaMM and service version)")

    def reuse_key(self) -> str:
        """What makes two jobs the same simulation: every input that reaches the engine,
        and the PyBaMM and service versions (not where the result goes)."""
        from shared import SERVICE_VERSION

        inputs = self.model_dump(mode="json", exclude={"callback_url", "reuse"})
        text = json.dumps([inputs, _pybamm_version(), SERVICE_VERSION], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @field_validator("parameters")
    @classmethod
    def _finite_parameters(cls, v: dict[str, float]):
        for name, value in v.items():
            if not math.isfinite(value):
                raise ValueError(f"parameter {name!r} must be a finite number")
        return v

    @field_validator("ecm_cell")
    @classmethod
    def _ecm_cell_is_for_thevenin(cls, v, info):
        model = info.data.get("model")
        if v is not None and model is not None and model.name != "Thevenin":
            raise ValueError(f"an equivalent-circuit cell is only for model Thevenin, not {model.name!r}")
        return v

    @model_validator(mode="after")
    def _the_models_own_default_set(self):
        if "parameter_set" in self.model_fields_set or self.bpx is not None:
            return self
        if self.model.name == "Thevenin":  # the set it runs, so the stored job says so and resubmits
            self.__dict__["parameter_set"] = None if self.ecm_cell is not None else "ECM_Example"
        elif self.model.name in MODEL_DEFAULT_SETS:
            self.__dict__["parameter_set"] = MODEL_DEFAULT_SETS[self.model.name]  # a default still: not marked as given
        return self

    @model_validator(mode="after")
    def _cut_offs(self):
        p = self.parameters
        up, lo = p.get("Upper voltage cut-off [V]"), p.get("Lower voltage cut-off [V]")
        for name, v in (("Upper voltage cut-off [V]", up), ("Lower voltage cut-off [V]", lo)):
            if v is not None and not (VOLTAGE_RANGE_V[0] <= v <= VOLTAGE_RANGE_V[1]):
                raise ValueError(
                    f"parameters.{name} = {v} is outside {VOLTAGE_RANGE_V[0]}–{VOLTAGE_RANGE_V[1]} V"
                )
        if up is not None and lo is not None and lo >= up:
            raise ValueError(
                f"Lower voltage cut-off [V] ({lo}) must be below Upper voltage cut-off [V] ({up})"
            )
        cap = p.get("Nominal cell capacity [A.h]")
        if cap is not None and not (0 < cap <= 1000):
            raise ValueError("parameters.Nominal cell capacity [A.h] must be in (0, 1000] A.h")
        if self.bpx is not None and self.parameter_set not in (None, "Chen2020"):
            raise ValueError("give either parameter_set or bpx, not both")
        return self


@functools.lru_cache(maxsize=1)
def _pybamm_version() -> str:
    from importlib.metadata import version

    return version("pybamm")


def error_list(exc) -> list[dict[str, str]]:
    """Turn a pydantic ValidationError into ``[{"field", "error"}]`` for a 400 body
    (the union's protocol tags are dropped from the field path)."""
    out = []
    for e in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in e.get("loc", ()) if p not in PROTOCOL_TYPES)
        msg = e.get("msg", "invalid")
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        out.append({"field": loc or "body", "error": msg})
    return out


def job_json_schema() -> dict[str, Any]:
    """The native job's JSON Schema (``schema/job.schema.json`` is generated from it)."""
    schema = Job.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Battery simulation job"
    return schema


if __name__ == "__main__":
    import json as _json

    print(_json.dumps(job_json_schema(), indent=1))

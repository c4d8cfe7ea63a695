"""Job schemas: the Java Job Manager's legacy body and the native job API.

Pydantic models do the structural and range checks; checks that need PyBaMM
(parameter names, variable names, experiment strings) live in
``shared.engine.catalog``. Both kinds of request become one ``Job`` — the only thing
the worker and the simulation core ever see.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

# Service limits (also published by the catalog endpoint).
LIMITS = {
    "max_duration_s": 48 * 3600.0,
    "max_cycles": 500,
    "max_experiment_steps": 50,
    "max_drive_cycle_points": 20_000,
    "max_drive_cycle_duration_s": 48 * 3600.0,
    "max_output_points": 20_000,
    "max_current_A": 500.0,
    "max_c_rate": 20.0,
    "max_sweep_members": 1000,
}

VOLTAGE_RANGE_V = (0.5, 5.5)
DEFAULT_OUTPUTS = ["Time [s]", "Voltage [V]", "Current [A]", "Discharge capacity [A.h]"]
# Drive cycles start from this state of charge unless the job says otherwise: a
# full cell would hit the 4.2 V cut-off on the first regenerative pulse.
DRIVE_CYCLE_DEFAULT_INITIAL_SOC = 0.9


def _finite(v: Optional[float], name: str) -> Optional[float]:
    if v is not None and not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number")
    return v


# --------------------------------------------------------------------------
# Legacy body from the Java Job Manager (Jackson serialisation of its DTO)
# --------------------------------------------------------------------------
# The exact bodies it sends today (no id); the tests, the demo, the benchmark and
# the precompiled configurations all use these.
JAVA_CELL = {"simulationType": "cell", "time": 1.0, "upperVoltage": 4.2, "lowerVoltage": 2.5,
             "nominalCell": 5.0, "controlCurrent": 5.0}
JAVA_DRIVE_CYCLE = {"simulationType": "driveCycle", "time": 0.0, "upperVoltage": 4.2,
                    "lowerVoltage": 2.5, "nominalCell": 5.0, "controlCurrent": 0.0}


class LegacyRequest(BaseModel):
    """``{"simulationType","time","upperVoltage","lowerVoltage","nominalCell","controlCurrent"}``.

    Absent or ``null`` fields take the original service's defaults.
    """

    model_config = ConfigDict(extra="ignore")

    id: Optional[str] = Field(default=None, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    simulationType: Optional[str] = None
    time: Optional[float] = Field(default=None, ge=0, description="duration [h] (cell jobs)")
    upperVoltage: Optional[float] = Field(default=None, ge=VOLTAGE_RANGE_V[0], le=VOLTAGE_RANGE_V[1])
    lowerVoltage: Optional[float] = Field(default=None, ge=VOLTAGE_RANGE_V[0], le=VOLTAGE_RANGE_V[1])
    nominalCell: Optional[float] = Field(default=None, gt=0, le=1000)
    controlCurrent: Optional[float] = Field(
        default=None, ge=-LIMITS["max_current_A"], le=LIMITS["max_current_A"]
    )

    @field_validator("id", mode="before")
    @classmethod
    def _id_to_str(cls, v: Any) -> Any:
        # Jackson may send a numeric id; keep it as text
        if isinstance(v, (int,)) and not isinstance(v, bool):
            return str(v)
        return v

    @field_validator("time", "upperVoltage", "lowerVoltage", "nominalCell", "controlCurrent", mode="before")
    @classmethod
    def _not_boolean(cls, v, info):
        if isinstance(v, bool):
            raise ValueError(f"{info.field_name} must be a number, not true/false")
        return v

    @field_validator("time", "upperVoltage", "lowerVoltage", "nominalCell", "controlCurrent")
    @classmethod
    def _finite_numbers(cls, v, info):
        return _finite(v, info.field_name)

    @model_validator(mode="after")
    def _cross_checks(self):
        upper = 4.2 if self.upperVoltage is None else self.upperVoltage
        lower = 2.5 if self.lowerVoltage is None else self.lowerVoltage
        if lower >= upper:
            raise ValueError(
                f"lowerVoltage ({lower} V) must be below upperVoltage ({upper} V)"
            )
        return self

    def errors_for(self, simulation_type: str) -> list[dict[str, str]]:
        """Checks that depend on the route (a cell job needs a positive duration)."""
        if simulation_type != "cell" or self.time is None:
            return []
        max_h = LIMITS["max_duration_s"] / 3600
        if not 0 < self.time <= max_h:
            return [{"field": "time", "error": f"a cell job's duration must be in (0, {max_h:g}] hours"}]
        return []

    def to_job(self, simulation_type: str) -> "Job":
        upper = 4.2 if self.upperVoltage is None else self.upperVoltage
        lower = 2.5 if self.lowerVoltage is None else self.lowerVoltage
        capacity = 8.6 if self.nominalCell is None else self.nominalCell
        parameters = {
            "Upper voltage cut-off [V]": upper,
            "Lower voltage cut-off [V]": lower,
            "Nominal cell capacity [A.h]": capacity,
        }
        if simulation_type == "cell":
            hours = 1.0 if self.time is None else self.time
            current = 5.0 if self.controlCurrent is None else self.controlCurrent
            protocol: Protocol = ConstantCurrent(
                type="constant_current", current_A=current, duration_s=hours * 3600.0
            )
            conditions = Conditions()
            outputs = Outputs(max_points=101)
        else:
            protocol = DriveCycle(type="drive_cycle", name="US06")
            conditions = Conditions(initial_soc=DRIVE_CYCLE_DEFAULT_INITIAL_SOC)
            outputs = Outputs(period_s=1.0)
        return Job(
            model=ModelSpec(name="DFN"),
            parameter_set="Chen2020",
            parameters=parameters,
            protocol=protocol,
            conditions=conditions,
            outputs=outputs,
        )


# --------------------------------------------------------------------------
# Native job
# --------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    name: Literal["SPM", "SPMe", "DFN"] = "DFN"
    options: dict[str, str] = Field(
        default_factory=dict,
        description='PyBaMM model options, e.g. {"thermal": "lumped"}',
    )


class ConstantCurrent(_Strict):
    """Constant current (A, positive = discharge) or C-rate, for a duration or until a cut-off."""

    type: Literal["constant_current"]
    current_A: Optional[float] = Field(
        default=None, ge=-LIMITS["max_current_A"], le=LIMITS["max_current_A"]
    )
    c_rate: Optional[float] = Field(default=None, ge=-LIMITS["max_c_rate"], le=LIMITS["max_c_rate"])
    duration_s: Optional[float] = Field(default=None, gt=0, le=LIMITS["max_duration_s"])

    @model_validator(mode="after")
    def _one_of(self):
        if (self.current_A is None) == (self.c_rate is None):
            raise ValueError("give exactly one of current_A or c_rate")
        if self.duration_s is None:
            # until a cut-off: bounded by the time the charge would take at this rate, x1.2
            rate = self.c_rate
            if rate == 0 or self.current_A == 0:
                raise ValueError("a zero current needs a duration_s")
        return self


class Experiment(_Strict):
    """PyBaMM experiment step strings, repeated ``cycles`` times."""

    type: Literal["experiment"]
    steps: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=LIMITS["max_experiment_steps"]
    )
    cycles: int = Field(default=1, ge=1, le=LIMITS["max_cycles"])
    period_s: Optional[float] = Field(
        default=None, gt=0, le=3600, description="output period within each step"
    )


class DriveCycle(_Strict):
    """A registered drive cycle by name, or inline time [s] / current [A] arrays."""

    type: Literal["drive_cycle"]
    name: Optional[str] = Field(default=None, max_length=64)
    time_s: Optional[list[float]] = Field(default=None, max_length=LIMITS["max_drive_cycle_points"])
    current_A: Optional[list[float]] = Field(
        default=None, max_length=LIMITS["max_drive_cycle_points"]
    )
    scale: float = Field(default=1.0, gt=0, le=100)

    @model_validator(mode="after")
    def _name_or_arrays(self):
        inline = self.time_s is not None or self.current_A is not None
        if (self.name is None) == (not inline):
            raise ValueError("give either name or both time_s and current_A")
        if inline:
            if self.time_s is None or self.current_A is None:
                raise ValueError("time_s and current_A must both be given")
            if len(self.time_s) != len(self.current_A):
                raise ValueError("time_s and current_A must have the same length")
            if len(self.time_s) < 2:
                raise ValueError("a drive cycle needs at least 2 points")
            if any(not math.isfinite(x) for x in self.time_s + self.current_A):
                raise ValueError("drive-cycle values must be finite")
            if self.time_s[0] != 0:
                raise ValueError("time_s must start at 0")
            if any(b <= a for a, b in zip(self.time_s, self.time_s[1:])):
                raise ValueError("time_s must be strictly increasing")
            if self.time_s[-1] > LIMITS["max_drive_cycle_duration_s"]:
                raise ValueError(
                    f"drive cycle lasts {self.time_s[-1]} s; the limit is "
                    f"{LIMITS['max_drive_cycle_duration_s']} s"
                )
            if max(abs(c) for c in self.current_A) * self.scale > LIMITS["max_current_A"]:
                raise ValueError(f"scaled |current| exceeds {LIMITS['max_current_A']} A")
        return self


Protocol = Annotated[
    Union[ConstantCurrent, Experiment, DriveCycle], Field(discriminator="type")
]


class Conditions(_Strict):
    ambient_temperature_C: Optional[float] = Field(default=None, ge=-40, le=80)
    initial_soc: Optional[float] = Field(default=None, ge=0, le=1)


class Outputs(_Strict):
    variables: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=lambda: list(DEFAULT_OUTPUTS), min_length=1, max_length=30
    )
    period_s: Optional[float] = Field(default=None, gt=0, le=86400)
    max_points: int = Field(default=2000, ge=2, le=LIMITS["max_output_points"])
    summary_only: bool = False
    columnar: bool = True


class Job(_Strict):
    """A native simulation job (also what legacy requests become)."""

    model: ModelSpec = Field(default_factory=ModelSpec)
    parameter_set: Optional[str] = Field(default="Chen2020", max_length=64)
    bpx: Optional[dict[str, Any]] = Field(
        default=None, description="a BPX document describing the cell (replaces parameter_set)"
    )
    parameters: dict[str, float] = Field(
        default_factory=dict,
        description="overrides: exact PyBaMM parameter names (with units) to numbers",
        max_length=100,
    )
    protocol: Protocol
    conditions: Conditions = Field(default_factory=Conditions)
    outputs: Outputs = Field(default_factory=Outputs)
    callback_url: Optional[str] = Field(default=None, max_length=2048)

    @field_validator("parameters")
    @classmethod
    def _finite_parameters(cls, v: dict[str, float]):
        for name, value in v.items():
            if not math.isfinite(value):
                raise ValueError(f"parameter {name!r} must be a finite number")
        return v

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


class Envelope(BaseModel):
    """What travels in one Pub/Sub message: one job and where its result goes."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    job_id: str
    kind: Literal["cell", "driveCycle", "native"]
    submitted_at: str
    job: Job
    callback_url: Optional[str] = None  # requested by the caller; None = the Job Manager
    sweep: Optional[dict[str, Any]] = None


def error_list(exc) -> list[dict[str, str]]:
    """Turn a pydantic ValidationError into ``[{"field", "error"}]`` for a 400 body."""
    out = []
    for e in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("constant_current", "experiment", "drive_cycle"))
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

"""The Java Job Manager's contract, in one place: the bodies it sends, what they mean
in PyBaMM's terms, where its results go and the shape it reads them in.

It POSTs ``{"simulationType","time","upperVoltage","lowerVoltage","nominalCell",
"controlCurrent"}`` to ``/cell/simulate`` or ``/drivecycle/simulate`` and gets its
results at ``/simulateCell`` / ``/simulateDriveCycle`` as ``{"id", "result": [{"time",
"voltage", "current", "dcap"}, ...]}`` plus status fields, never compressed.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.contract.job import Conditions, Job, ModelSpec, Outputs
from shared.contract.limits import LIMITS, VOLTAGE_RANGE_V, finite, job_id_error
from shared.engine.protocols import ConstantCurrent, DriveCycle

KINDS = ("cell", "driveCycle")
ROUTES = {"/cell/simulate": "cell", "/drivecycle/simulate": "driveCycle"}
CALLBACK_PATHS = {"cell": "/simulateCell", "driveCycle": "/simulateDriveCycle"}
# the short names of the result rows, and the PyBaMM variables they carry
COLUMNS = {
    "time": "Time [s]",
    "voltage": "Voltage [V]",
    "current": "Current [A]",
    "dcap": "Discharge capacity [A.h]",
}

# The exact bodies it sends today (no id); the tests, the demo, the benchmark and
# the precompiled configurations all use these.
JAVA_CELL = {"simulationType": "cell", "time": 1.0, "upperVoltage": 4.2, "lowerVoltage": 2.5,
             "nominalCell": 5.0, "controlCurrent": 5.0}
JAVA_DRIVE_CYCLE = {"simulationType": "driveCycle", "time": 0.0, "upperVoltage": 4.2,
                    "lowerVoltage": 2.5, "nominalCell": 5.0, "controlCurrent": 0.0}

# The original service's values for absent or null fields.
DEFAULTS = {"time": 1.0, "upperVoltage": 4.2, "lowerVoltage": 2.5, "nominalCell": 8.6, "controlCurrent": 5.0}
# Drive cycles start from this state of charge unless the job says otherwise: a
# full cell would hit the 4.2 V cut-off on the first regenerative pulse.
DRIVE_CYCLE_DEFAULT_INITIAL_SOC = 0.9


def is_legacy(kind: Optional[str]) -> bool:
    return kind in KINDS


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

    @field_validator("id")
    @classmethod
    def _id_rule(cls, v):
        problem = None if v is None else job_id_error(v)
        if problem:
            raise ValueError(f"id {problem}")
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
        return finite(v, info.field_name)

    def value(self, name: str) -> float:
        """A field's value, or the original service's default when absent."""
        v = getattr(self, name)
        return DEFAULTS[name] if v is None else v

    @model_validator(mode="after")
    def _cross_checks(self):
        upper, lower = self.value("upperVoltage"), self.value("lowerVoltage")
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

    def to_job(self, simulation_type: str) -> Job:
        """The native job this request means: DFN, Chen2020, PyBaMM's parameter names."""
        parameters = {
            "Upper voltage cut-off [V]": self.value("upperVoltage"),
            "Lower voltage cut-off [V]": self.value("lowerVoltage"),
            "Nominal cell capacity [A.h]": self.value("nominalCell"),
        }
        if simulation_type == "cell":
            protocol: Any = ConstantCurrent(
                type="constant_current", current_A=self.value("controlCurrent"),
                duration_s=self.value("time") * 3600.0)
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


def result_rows(columns: dict[str, list[float]]) -> list[dict[str, float]]:
    """A result's columns as the Job Manager's rows ``[{"time","voltage","current","dcap"}]``."""
    n = len(columns.get(COLUMNS["time"], []))
    return [{short: columns[long][k] for short, long in COLUMNS.items()} for k in range(n)]


def result_columns(rows: list[dict[str, float]]) -> dict[str, list[float]]:
    """The Job Manager's rows back as columns named by PyBaMM variable."""
    return {long: [r[short] for r in rows] for short, long in COLUMNS.items()}


def sync_reply(kind: str, outcome: Optional[dict[str, Any]]) -> dict[str, Any]:
    """The original service's synchronous reply, exactly: ``{"jobStarted", "simulationType",
    "simulationResults"}`` — ``jobStarted`` true with the rows when the job succeeded;
    false with ``null`` results when it failed, was cancelled or is not finished (the
    reply's headers say which). Nothing else: the Job Manager's entity admits no other
    property."""
    if outcome is not None and outcome.get("status") == "succeeded":
        rows = [{short: row.get(short) for short in COLUMNS} for row in outcome.get("result") or []]
        return {"jobStarted": True, "simulationType": kind, "simulationResults": rows}
    return {"jobStarted": False, "simulationType": kind, "simulationResults": None}

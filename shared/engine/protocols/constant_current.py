"""Constant current (A, positive = discharge) or C-rate, for a duration or until a cut-off."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from shared.contract.limits import LIMITS
from shared.engine.errors import SimulationError
from shared.engine.protocols.base import Protocol, Timeline, output_grid_for

CURRENT = "Current function [A]"
CAPACITY = "Nominal cell capacity [A.h]"
# "Until a cut-off": allow this many times the hours a full charge lasts at this rate.
UNTIL_CUT_OFF_FACTOR = 1.5


class ConstantCurrent(Protocol):
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
            # until a cut-off: the run is bounded by the time a full charge lasts at
            # this rate (x UNTIL_CUT_OFF_FACTOR), so the rate must not be zero
            if self.c_rate == 0 or self.current_A == 0:
                raise ValueError("a zero current needs a duration_s")
        return self

    def prepare(self, static, parameter_values) -> list[str]:
        return [CURRENT]  # the current is a per-job input

    def timeline(self, job, static, inputs, notes) -> Timeline:
        capacity = inputs.get(CAPACITY, static.defaults.get(CAPACITY))
        current = self.current_A if self.current_A is not None else self.c_rate * capacity
        if abs(current) > LIMITS["max_current_A"]:
            raise SimulationError(
                f"protocol.c_rate: {self.c_rate}C of {capacity} A.h is {abs(current):g} A; "
                f"the limit is {LIMITS['max_current_A']:g} A")
        if self.duration_s is not None:
            end = float(self.duration_s)
        else:
            end = min(UNTIL_CUT_OFF_FACTOR * 3600.0 * capacity / abs(current), LIMITS["max_duration_s"])
            notes.append("runs until a voltage cut-off")
        inputs[CURRENT] = float(current)
        return Timeline(t_eval=[0.0, end], t_interp=output_grid_for(job, end, notes), requested_end_s=end)

    def completed(self, solution, termination, plan) -> bool:
        if self.duration_s is not None:
            return termination == "final time"
        # until a cut-off: complete only if a voltage cut-off ended it, not the service's time cap
        if termination == "final time":
            plan.notes.append(
                f"stopped at the service's time cap ({plan.requested_end_s:g} s) before any cut-off")
        return termination.startswith("event:") and "voltage" in termination.lower()

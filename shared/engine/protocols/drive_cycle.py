"""A current profile: a registered drive cycle by name, or inline time [s] / current [A] arrays."""

from __future__ import annotations

import math
from typing import Literal, Optional

import numpy as np
from pydantic import Field, model_validator

from shared.contract.limits import LIMITS
from shared.engine.errors import SimulationError
from shared.engine.protocols.base import Protocol, Timeline, output_grid_for

# IDA restarts at every knot of the profile; its first trial step is then a tenth of
# the shortest knot interval (at most this) rather than its own guess of ~1 ms. The
# error test still accepts or shrinks it (measured with bench/: US06 needs far fewer
# steps and Jacobians).
FIRST_STEP_S = 0.1


class DriveCycle(Protocol):
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

    def check(self) -> list[dict[str, str]]:
        from shared.engine import drive_cycles

        if self.name is None:
            return []
        if self.name not in drive_cycles.REGISTRY:
            return [{"field": "protocol.name",
                     "error": f"unknown drive cycle; registered: {sorted(drive_cycles.REGISTRY)}"}]
        if drive_cycles.find(self.name) is None:
            return [{"field": "protocol.name",
                     "error": f"not installed here; available: {drive_cycles.available()}"}]
        try:
            _, i_data = drive_cycles.load(self.name)
        except drive_cycles.DriveCycleError as exc:
            return [{"field": "protocol.name", "error": str(exc)}]
        error = self._scaled_current_error(i_data)
        return [{"field": "protocol.scale", "error": error}] if error else []

    def _scaled_current_error(self, i_data) -> Optional[str]:
        peak = float(np.max(np.abs(np.asarray(i_data, dtype=float)))) * self.scale
        if peak > LIMITS["max_current_A"]:
            return (f"{self.name} peaks at {peak / self.scale:g} A; scaled by {self.scale:g} that is "
                    f"{peak:g} A, above the limit of {LIMITS['max_current_A']:g} A")
        return None

    def cache_shape(self):
        from shared.engine.parameters import digest

        return {"protocol": self.type, "cycle": self.name or digest([self.time_s, self.current_A]),
                "scale": self.scale}

    def prepare(self, static, parameter_values) -> list[str]:
        import pybamm

        from shared.engine import drive_cycles

        if self.name is not None:
            try:
                t_data, i_data = drive_cycles.load(self.name)
            except drive_cycles.DriveCycleError as exc:
                raise SimulationError(f"protocol.name: {exc}") from exc
            error = self._scaled_current_error(i_data)
            if error:
                raise SimulationError(f"protocol.scale: {error}")
        else:
            t_data, i_data = self.time_s, self.current_A
        t_data = np.asarray(t_data, dtype=float)
        static.protocol_data["t"] = t_data
        parameter_values.update({"Current function [A]": pybamm.Interpolant(
            t_data, np.asarray(i_data, dtype=float) * self.scale, pybamm.t, interpolator="linear")})
        return []

    def timeline(self, job, static, inputs, notes) -> Timeline:
        t_data = static.protocol_data["t"]
        end = float(t_data[-1])
        if job.outputs.period_s is None and len(t_data) <= job.outputs.max_points:
            t_interp = t_data  # the profile's own times
        else:
            t_interp = output_grid_for(job, end, notes)
        # the profile's own time points are solver stop points: exact at every kink
        return Timeline(t_eval=t_data, t_interp=t_interp, requested_end_s=end)

    def solver_options(self, plan):
        shortest = float(np.min(np.diff(plan.t_eval)))
        return {**super().solver_options(plan), "dt_init": min(FIRST_STEP_S, shortest / 10.0)}

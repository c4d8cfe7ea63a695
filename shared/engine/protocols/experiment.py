"""A PyBaMM experiment: step strings ("Discharge at 1C until 2.5 V", ...), repeated ``cycles`` times."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Optional

from pydantic import Field

from shared.contract.limits import LIMITS
from shared.engine.errors import SimulationError, short
from shared.engine.protocols.base import Protocol


class Experiment(Protocol):
    """PyBaMM experiment step strings, repeated ``cycles`` times."""

    type: Literal["experiment"]
    steps: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=LIMITS["max_experiment_steps"]
    )
    cycles: int = Field(default=1, ge=1, le=LIMITS["max_cycles"])
    period_s: Optional[float] = Field(
        default=None, gt=0, le=3600, description="output period within each step"
    )

    # PyBaMM's experiment steps set these themselves: they cannot be input parameters.
    fixed_parameters: ClassVar[tuple[str, ...]] = (
        "Nominal cell capacity [A.h]", "Ambient temperature [K]", "Initial temperature [K]")
    can_compile: ClassVar[bool] = False
    keeps_full_state: ClassVar[bool] = True  # PyBaMM needs the full state between steps

    def check(self) -> list[dict[str, str]]:
        """The steps parse, and their rates and timed durations stay within the limits."""
        import pybamm

        try:
            experiment = pybamm.Experiment(list(self.steps))
        except Exception as exc:  # noqa: BLE001
            return [{"field": "protocol.steps", "error": f"PyBaMM cannot parse it: {short(exc)}"}]
        errors = []
        total_s = 0.0
        for k, step in enumerate(experiment.steps):
            kind = type(step).__name__
            value = step.value if isinstance(step.value, (int, float)) else None
            if kind == "CRate" and value is not None and abs(value) > LIMITS["max_c_rate"]:
                errors.append({"field": f"protocol.steps.{k}",
                               "error": f"{abs(value):g}C is above the limit of {LIMITS['max_c_rate']:g}C"})
            if kind == "Current" and value is not None and abs(value) > LIMITS["max_current_A"]:
                errors.append({"field": f"protocol.steps.{k}",
                               "error": f"{abs(value):g} A is above the limit of {LIMITS['max_current_A']:g} A"})
            if getattr(step, "input_duration", None) is not None:
                total_s += float(step.duration)
        if total_s * self.cycles > LIMITS["max_duration_s"] * 10:
            errors.append({"field": "protocol",
                           "error": f"timed steps x cycles last {total_s * self.cycles / 3600:g} h; the limit is "
                                    f"{LIMITS['max_duration_s'] * 10 / 3600:g} h"})
        return errors

    def cache_shape(self) -> dict[str, Any]:
        return {"protocol": self.type, "steps": self.steps, "cycles": self.cycles, "period": self.period_s}

    def prepare(self, static, parameter_values) -> list[str]:
        import pybamm

        try:
            # one PyBaMM cycle per protocol cycle: the steps as a tuple, repeated
            static.experiment = pybamm.Experiment(
                [tuple(self.steps)] * self.cycles,
                period=None if self.period_s is None else f"{self.period_s} seconds")
        except Exception as exc:
            raise SimulationError(f"protocol.steps: PyBaMM cannot parse the experiment: {short(exc)}")
        return []

    def solver_options(self, plan) -> dict[str, Any]:
        # the full error test: in a constant-voltage step the current is algebraic
        return {}

    def solve(self, sim, plan):
        return sim.solve(inputs=plan.inputs)

    def completed(self, solution, termination, plan) -> bool:
        # complete when every step of every cycle ran; a step that ends on its own
        # condition ("until 4.1 V") ends with an "[experiment]" event
        cycles = [c for c in (getattr(solution, "cycles", []) or []) if c is not None]
        last_steps = len(getattr(cycles[-1], "steps", []) or []) if cycles else 0
        return (len(cycles) == self.cycles and last_steps == len(self.steps)
                and (termination == "final time" or termination.endswith("[experiment]")))

    def cut_off_note(self, violations: list[str]) -> Optional[str]:
        return ("; ".join(violations) + " (PyBaMM relaxes cut-off events by 1 V inside experiment "
                "steps: end steps with 'until ... V')")

    def extra_results(self, solution) -> dict[str, Any]:
        from shared.engine.results import cycle_summaries

        return {"cycles": cycle_summaries(solution)}

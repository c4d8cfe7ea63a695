"""A PyBaMM experiment: step strings ("Discharge at 1C until 2.5 V", ...), repeated ``cycles`` times.

Limits, as for every protocol:

* time: the experiment stops at ``max_duration_s`` of simulated time (a PyBaMM
  experiment termination); the result then says so (``completed`` false, a note).
  One whose timed steps alone last longer is refused at submit.
* output points: PyBaMM samples every step at ``protocol.period_s``, else at
  ``outputs.period_s`` (without either, at the solver's own steps). The period
  must be at least the longest the experiment may run (its steps' durations, PyBaMM's
  default durations for "until" steps, capped at ``max_duration_s``) over
  ``max_output_points``: PyBaMM lays out every step's output times in advance
  (0.001 s over a 24 h "until" step is 86 million of them). Below it
  ``protocol.period_s`` (or a step's own "(… period)") is refused;
  ``outputs.period_s`` is coarsened to it, with a note.
* current: C-rate steps times the cell's capacity stay within ``max_current_A``.

Memory: the solver keeps only the result's variables at the output points
(IDAKLU ``output_variables``, which PyBaMM 26 supports inside experiments: the
series are identical), not the full state: tens of kB per point for a DFN. A 40-cycle
DFN experiment used to grow the process by 0.2-0.6 GB (0.8-1.4 GB peak for a CCCV
cycle); PyBaMM's ``save_at_cycles`` alone hardly helps (every step is still solved
and summarised with the full state, and the unsaved cycles' series, their minimum and
maximum voltages included, would be lost). Now every cycle's series is kept at a few
tens of kB per step, and the per-cycle summaries are computed from it as before.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal, Optional

from pydantic import Field, PrivateAttr

from shared.contract.limits import LIMITS
from shared.engine.errors import SimulationError, short
from shared.engine.protocols.base import SAME, Protocol, Timeline

CAPACITY = "Nominal cell capacity [A.h]"
LOWER_CUT_OFF = "Lower voltage cut-off [V]"
# What PyBaMM calls a stop at the experiment's time limit (and what the result says
# when the limit cut an "until" step short, which PyBaMM reports as "final time").
TIME_CAP = "experiment time limit reached"


def steps_duration_s(steps) -> float:
    """The longest ``steps`` may run: every step to its duration (PyBaMM's default for an
    "until" step)."""
    return sum(float(s.duration) for s in steps)


def possible_duration_s(steps) -> float:
    """The longest the experiment may run (``steps``: every cycle's), at most ``max_duration_s``."""
    return min(float(LIMITS["max_duration_s"]), steps_duration_s(steps))


def minimum_period_s(steps) -> float:
    """The smallest output period that keeps the experiment within ``max_output_points``."""
    return possible_duration_s(steps) / LIMITS["max_output_points"]


def _period_error(period: float, minimum: float, steps) -> str:
    longest = possible_duration_s(steps)
    return (f"{period:g} s is below this experiment's minimum output period of {round_up(minimum):g} s: "
            f"it may run {longest:g} s ({longest / 3600:.3g} h: its steps' durations, 'until' steps at "
            f"PyBaMM's default, capped at max_duration_s) and returns at most "
            f"{LIMITS['max_output_points']} points (max_output_points); ask for a longer period, or bound "
            f"the 'until' steps ('Hold at 4.2 V for 2 hours or until C/50')")


def check_step_currents(steps, static) -> None:
    """C-rate steps of this cell's capacity, and power steps at its lower cut-off, within
    the current limit (SimulationError)."""
    pv = static.numeric_pv
    capacity = pv[CAPACITY] if CAPACITY in pv.keys() else None
    lower = pv[LOWER_CUT_OFF] if LOWER_CUT_OFF in pv.keys() else None
    for k, step in enumerate(steps):
        kind = type(step).__name__
        if kind == "CRate" and isinstance(capacity, (int, float)) \
                and abs(step.value) * capacity > LIMITS["max_current_A"]:
            raise SimulationError(
                f"protocol.steps.{k}: {abs(step.value):g}C of {capacity:g} A.h is "
                f"{abs(step.value) * capacity:g} A; the limit is {LIMITS['max_current_A']:g} A")
        if kind == "Power" and isinstance(step.value, (int, float)) and isinstance(lower, (int, float)) \
                and lower > 0 and abs(step.value) / lower > LIMITS["max_current_A"]:
            raise SimulationError(
                f"protocol.steps.{k}: {abs(step.value):g} W draws up to {abs(step.value) / lower:g} A at the "
                f"{lower:g} V cut-off; the limit is {LIMITS['max_current_A']:g} A")


def period_errors(period_s: Optional[float], steps, minimum: float, explain) -> list[dict[str, str]]:
    """``protocol.period_s`` and each step's own period below ``minimum``, as 400 errors
    (``explain(period)`` says why)."""
    errors = []
    if period_s is not None and period_s < minimum * (1 - SAME):
        errors.append({"field": "protocol.period_s", "error": explain(period_s)})
    for k, step in enumerate(steps):
        if step.period is not None and step.period < minimum * (1 - SAME):
            errors.append({"field": f"protocol.steps.{k}", "error": "its period: " + explain(step.period)})
    return errors


def sample_period(job, own_period: Optional[float], minimum: float, notes: list[str], span: str,
                  what: str) -> tuple[Optional[float], Optional[float]]:
    """(period asked for, period PyBaMM samples at). PyBaMM samples at the protocol's
    period_s, else at outputs.period_s (raised to ``minimum``, with a note); the result
    is thinned to outputs.period_s if that is coarser (a note says when it is finer)."""
    asked = job.outputs.period_s if job.outputs.period_s is not None else own_period
    period = own_period if own_period is not None else job.outputs.period_s
    if period is not None and period < minimum * (1 - SAME):  # only outputs.period_s gets here
        notes.append(f"output period coarsened from {period:g} s to {round_up(minimum):g} s: at most "
                     f"{LIMITS['max_output_points']} points (max_output_points) over {span}")
        period = round_up(minimum)
    elif asked is not None and period is not None and asked < period * (1 - SAME):
        notes.append(f"output period coarsened from {asked:g} s (outputs.period_s) to {period:g} s: "
                     f"{what} samples at protocol.period_s")
    return asked, period


def round_up(x: float) -> float:
    """``x`` rounded up to 4 significant digits (a period that certainly keeps the limit)."""
    if x <= 0:
        return x
    scale = 10 ** (math.floor(math.log10(x)) - 3)
    return math.ceil(x / scale * (1 - SAME)) * scale


class Experiment(Protocol):
    """PyBaMM experiment step strings, repeated ``cycles`` times."""

    type: Literal["experiment"]
    steps: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=LIMITS["max_experiment_steps"]
    )
    cycles: int = Field(default=1, ge=1, le=LIMITS["max_cycles"])
    period_s: Optional[float] = Field(
        default=None, gt=0, le=3600,
        description="output period within each step; at least the longest the experiment may run "
                    "(up to max_duration_s) over max_output_points",
    )

    # PyBaMM's experiment steps set these themselves: they cannot be input parameters.
    fixed_parameters: ClassVar[tuple[str, ...]] = (
        "Nominal cell capacity [A.h]", "Ambient temperature [K]", "Initial temperature [K]")
    can_compile: ClassVar[bool] = False

    # per job (set by ``timeline``): the period PyBaMM samples at, and the one asked for
    _sample_period: Optional[float] = PrivateAttr(default=None)
    _asked_period: Optional[float] = PrivateAttr(default=None)

    # -- at submit ------------------------------------------------------------
    def check(self) -> list[dict[str, str]]:
        """The steps parse; their rates, their timed durations and the output period
        stay within the limits."""
        import pybamm

        try:
            experiment = pybamm.Experiment(list(self.steps))
        except Exception as exc:  # noqa: BLE001
            return [{"field": "protocol.steps", "error": f"PyBaMM cannot parse it: {short(exc)}"}]
        errors = []
        for k, step in enumerate(experiment.steps):
            kind = type(step).__name__
            value = step.value if isinstance(step.value, (int, float)) else None
            if kind == "CRate" and value is not None and abs(value) > LIMITS["max_c_rate"]:
                errors.append({"field": f"protocol.steps.{k}",
                               "error": f"{abs(value):g}C is above the limit of {LIMITS['max_c_rate']:g}C"})
            if kind == "Current" and value is not None and abs(value) > LIMITS["max_current_A"]:
                errors.append({"field": f"protocol.steps.{k}",
                               "error": f"{abs(value):g} A is above the limit of {LIMITS['max_current_A']:g} A"})
        # steps that last their duration whatever happens ("for 1 hour", no "or until")
        fixed_s = self.cycles * sum(float(s.duration) for s in experiment.steps
                                    if s.input_duration is not None and not s.termination)
        if fixed_s > LIMITS["max_duration_s"] * (1 + SAME):
            errors.append({"field": "protocol",
                           "error": f"timed steps x cycles last {fixed_s / 3600:g} h; the limit is "
                                    f"{LIMITS['max_duration_s'] / 3600:g} h (max_duration_s)"})
        errors += self._period_errors(experiment.steps * self.cycles)
        return errors

    def _period_errors(self, all_steps) -> list[dict[str, str]]:
        """``protocol.period_s`` and the steps' own periods against the minimum."""
        minimum = minimum_period_s(all_steps)
        return period_errors(self.period_s, all_steps[:len(self.steps)], minimum,
                             lambda p: _period_error(p, minimum, all_steps))

    # -- planning -------------------------------------------------------------
    def cache_shape(self) -> dict[str, Any]:
        # the period is set per solve (it is no part of a built step model)
        return {"protocol": self.type, "steps": self.steps, "cycles": self.cycles}

    def prepare(self, static, parameter_values) -> list[str]:
        import pybamm

        try:
            # one PyBaMM cycle per protocol cycle: the steps as a tuple, repeated; the
            # whole experiment stops at the service's time limit
            static.experiment = pybamm.Experiment(
                [tuple(self.steps)] * self.cycles,
                termination=[f"{LIMITS['max_duration_s']:g} seconds"])
        except Exception as exc:
            raise SimulationError(f"protocol.steps: PyBaMM cannot parse the experiment: {short(exc)}")
        return []

    def timeline(self, job, static, inputs, notes) -> Timeline:
        steps = static.experiment.steps
        errors = self._period_errors(steps)
        if errors:
            raise SimulationError(f"{errors[0]['field']}: {errors[0]['error']}")
        check_step_currents(steps[:len(self.steps)], static)
        self._asked_period, self._sample_period = sample_period(
            job, self.period_s, minimum_period_s(steps), notes,
            f"the {possible_duration_s(steps):g} s the experiment may run", "the experiment")
        return Timeline()

    # -- solving --------------------------------------------------------------
    def solver_options(self, plan) -> dict[str, Any]:
        # the full error test: in a constant-voltage step the current is algebraic
        return {}

    def solve(self, sim, plan):
        # this job's output period, on every step without its own "(... period)"
        for step, parsed in zip(sim.experiment.steps, plan.experiment.steps):
            step.period = parsed.period if parsed.period is not None else self._sample_period
        solution = sim.solve(inputs=plan.inputs)
        if solution is not None:
            if self._time_capped(solution, plan):
                # (an "until" step cut short by the limit reads "final time" in PyBaMM)
                solution.termination = TIME_CAP
            elif solution.termination == TIME_CAP:  # the last step ended exactly at the limit
                solution.termination = "final time"
        return solution

    # -- result ---------------------------------------------------------------
    def _cycles_ran(self, solution) -> list:
        return [c for c in (getattr(solution, "cycles", []) or []) if c is not None]

    def _all_ran(self, solution) -> bool:
        cycles = self._cycles_ran(solution)
        last_steps = len(getattr(cycles[-1], "steps", []) or []) if cycles else 0
        return len(cycles) == self.cycles and last_steps == len(self.steps)

    def _time_capped(self, solution, plan) -> bool:
        """Whether the service's time limit, not the protocol, ended the experiment."""
        limit = float(LIMITS["max_duration_s"])
        if float(solution.t[-1]) < limit * (1 - SAME):
            return False
        if not self._all_ran(solution):
            return True
        # every step began: the last one is complete if it ended on its own condition
        # or ran its whole duration
        last = self._cycles_ran(solution)[-1].steps[-1]
        step = plan.experiment.steps[len(self.steps) - 1]
        if str(last.termination).endswith("[experiment]"):
            return False
        if step.uses_default_duration or len(getattr(last, "t", ())) < 1:
            return True
        return float(last.t[-1] - last.t[0]) < float(step.duration) * (1 - 1e-6)

    def completed(self, solution, termination, plan) -> bool:
        # complete when every step of every cycle ran; a step that ends on its own
        # condition ("until 4.1 V") ends with an "[experiment]" event
        if termination == TIME_CAP:
            cycles = self._cycles_ran(solution)
            plan.notes.append(
                f"stopped at the service's time limit (max_duration_s: {LIMITS['max_duration_s']:g} s = "
                f"{LIMITS['max_duration_s'] / 3600:g} h) in cycle {len(cycles)} of {self.cycles}")
            return False
        return self._all_ran(solution) and (termination == "final time" or termination.endswith("[experiment]"))

    def cut_off_note(self, violations: list[str]) -> Optional[str]:
        return ("; ".join(violations) + " (PyBaMM relaxes cut-off events by 1 V inside experiment "
                "steps: end steps with 'until ... V')")

    def extra_results(self, solution) -> dict[str, Any]:
        from shared.engine.results import cycle_summaries

        return {"cycles": cycle_summaries(solution)}

    def output_period(self, job) -> Optional[float]:
        return self._asked_period

    def series_period(self, plan) -> Optional[float]:
        return self._sample_period  # within each step (None: the solver's own steps)

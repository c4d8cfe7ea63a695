"""An ageing study: one cycle's PyBaMM step strings, repeated ``cycles`` times or until
the cell reaches its end of life, with one row of degradation numbers per cycle.

    {"type": "ageing", "steps": ["Discharge at 1C until 2.5 V", "Charge at 0.3C until 4.2 V",
                                 "Hold at 4.2 V until C/100"],
     "cycles": 2000, "end_of_life": {"capacity_percent": 80}, "save_cycles": {"every": 100}}

How it runs. The built simulation holds an experiment of ``CHUNK_CYCLES`` cycles of the
steps (it is shared by every study of the same steps, whatever their cycle count or
end of life); the study solves it chunk after chunk, each from the last state of the
one before (``sim.solve(starting_solution=...)``). With at least two cycles in the
experiment PyBaMM maps the state from the last step to the first exactly as inside one
long experiment: the per-cycle numbers equal those of one direct PyBaMM solve to the
last bit. Every cycle is recorded as it ends (``_Recorder``: a PyBaMM callback, and the
step solutions as the solver returns them), so the rows do not depend on PyBaMM's
solution object: a solver failure in cycle k leaves the k-1 cycles before it, and the
same records plus the last state are what a study continued across invocations needs.

Per cycle: PyBaMM's summary variables ("Capacity [A.h]" from its eSOH solve, "Loss of
lithium inventory [%]", losses of active material, capacity lost to SEI and plating,
"Throughput capacity [A.h]"; null where the model has no such variable) and, from the
cycle's series, its time span, charge and energy each way, voltage range and maximum
temperature. Series (the job's ``outputs.variables``) are kept only for the saved cycles:
the first, every ``save_cycles.every``-th, the listed ones and the last one run, thinned
to share ``outputs.max_points``.

Ends: all ``cycles`` ran or the end-of-life capacity was reached (``completed``: the
study's own end; PyBaMM's rule: "Capacity [A.h]" at or below the threshold, a percentage
being of cycle 1's), or not (``completed`` false, a note): a solver failure or a model
event ending a step, a step reaching PyBaMM's default duration, or the service's wall
time (the study stops before ``JOB_TIME_BUDGET_S`` with the cycles it has). The 48 h
``max_duration_s`` of simulated time does not apply: a study simulates months or years;
its limits are ``max_ageing_cycles`` and the wall time.

Progress (``progress_every_cycles``): the worker sends a ``running`` callback with the
rows so far every N cycles. The engine only appends each recorded row, as one JSON line,
to the file its ``Segment`` names (the restored rows first, on resume); the worker reads
the file while it waits for the solver process and decides when to send.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Annotated, Any, ClassVar, Literal, Optional

import numpy as np
from pydantic import Field, PrivateAttr, model_validator

from shared.contract.limits import LIMITS, Strict
from shared.engine import checkpoint
from shared.engine.errors import SimulationError, short
from shared.engine.protocols.base import Protocol, Timeline
from shared.engine.protocols.experiment import (check_step_currents, period_errors, round_up, sample_period,
                                                  steps_duration_s)
from shared.settings import get_settings

log = logging.getLogger(__name__)

# Cycles in the built experiment: one PyBaMM solve. At least 2 (so that PyBaMM builds
# the state map from the last step to the first); small enough that what PyBaMM keeps
# per cycle while it solves (the first step of every cycle, ~0.1 MB for an SPM) stays small.
CHUNK_CYCLES = 20
CAPACITY = "Nominal cell capacity [A.h]"
CAPACITY_STOP = "experiment capacity limit reached"  # PyBaMM's own termination text
TIME_BUDGET_STOP = "service time budget reached"
# Stop this far (a fraction of the budget, at least MARGIN_S) before the service's wall-time budget.
MARGIN_FRACTION, MARGIN_S = 0.1, 5.0

# At most this many progress callbacks a study (each carries every row so far).
MAX_PROGRESS_CALLBACKS = 100

# PyBaMM summary variables reported per cycle (null where the model has none)
DEGRADATION = (
    "Loss of lithium inventory [%]",
    "Loss of active material in negative electrode [%]",
    "Loss of active material in positive electrode [%]",
    "Loss of capacity to negative SEI [A.h]",
    "Loss of capacity to negative lithium plating [A.h]",
)
THROUGHPUT = "Throughput capacity [A.h]"
CYCLE_COLUMN = "Cycle number"


class EndOfLife(Strict):
    """Stop when PyBaMM's "Capacity [A.h]" (eSOH) of a cycle is at or below this."""

    capacity_percent: Optional[float] = Field(default=None, gt=0, lt=100,
                                              description="percent of cycle 1's capacity")
    capacity_Ah: Optional[float] = Field(default=None, gt=0, le=1000)

    @model_validator(mode="after")
    def _exactly_one(self):
        if (self.capacity_percent is None) == (self.capacity_Ah is None):
            raise ValueError("give exactly one of capacity_percent and capacity_Ah")
        return self

    def criterion(self) -> str:
        """As PyBaMM's experiment termination reads it."""
        if self.capacity_percent is not None:
            return f"{self.capacity_percent:g}% capacity"
        return f"{self.capacity_Ah:g} Ah capacity"

    def threshold_Ah(self, first_capacity: float) -> float:
        """PyBaMM's rule (``Simulation.solve``): a percentage is of cycle 1's capacity."""
        if self.capacity_percent is not None:
            return self.capacity_percent / 100 * first_capacity
        return float(self.capacity_Ah)


class SaveCycles(Strict):
    """Which cycles keep their series (the first and the last run always do)."""

    every: Optional[int] = Field(default=None, ge=1, le=LIMITS["max_ageing_cycles"])
    cycles: list[Annotated[int, Field(ge=1, le=LIMITS["max_ageing_cycles"])]] = Field(
        default_factory=list, max_length=LIMITS["max_saved_cycles"])

    def planned(self, n: int) -> list[int]:
        chosen = {1, n} | {k for k in self.cycles if k <= n}
        if self.every is not None:
            chosen |= set(range(self.every, n + 1, self.every))
        return sorted(chosen)


class Ageing(Protocol):
    """One cycle's PyBaMM step strings, repeated ``cycles`` times or to end of life."""

    type: Literal["ageing"]
    steps: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=LIMITS["max_experiment_steps"], description="one cycle's PyBaMM steps")
    cycles: int = Field(ge=1, le=LIMITS["max_ageing_cycles"])
    end_of_life: Optional[EndOfLife] = None
    save_cycles: SaveCycles = Field(default_factory=SaveCycles)
    period_s: Optional[float] = Field(
        default=None, gt=0, le=3600,
        description="output period within each step; at least the longest one cycle may run "
                    "over max_output_points",
    )
    progress_every_cycles: Optional[int] = Field(
        default=None, ge=1, le=LIMITS["max_ageing_cycles"],
        description="a 'running' callback with the rows so far every this many cycles (best effort, "
                    f"at most {MAX_PROGRESS_CALLBACKS} a study); none by default",
    )

    # Every number the study uses is baked into the model, none is an input: the study's
    # model is then the one a direct PyBaMM solve builds (its rows equal that solve's to
    # the last bit; with the initial concentrations as inputs they differed by ~1e-7 in
    # capacity, 9e-5 in loss of lithium inventory). Jobs that differ in these numbers no
    # longer share a build: a study solves for minutes, its model builds in about a second.
    fixed_parameters: ClassVar[tuple[str, ...]] = (
        "Nominal cell capacity [A.h]", "Ambient temperature [K]", "Initial temperature [K]",
        "Upper voltage cut-off [V]", "Lower voltage cut-off [V]",
        "Initial concentration in negative electrode [mol.m-3]",
        "Initial concentration in positive electrode [mol.m-3]")
    can_compile: ClassVar[bool] = False

    # per job (set by ``timeline``)
    _sample_period: Optional[float] = PrivateAttr(default=None)
    _asked_period: Optional[float] = PrivateAttr(default=None)
    _max_points: int = PrivateAttr(default=2000)
    _summary_only: bool = PrivateAttr(default=False)
    _variables: list = PrivateAttr(default_factory=list)
    _deadline: Optional[float] = PrivateAttr(default=None)
    _hard_deadline: Optional[float] = PrivateAttr(default=None)
    _budget_s: Optional[float] = PrivateAttr(default=None)
    _job: Any = PrivateAttr(default=None)  # for failure messages that name the inputs
    _segment: Any = PrivateAttr(default=None)  # a ``checkpoint.Segment`` (set by the engine), or None

    # -- at submit ------------------------------------------------------------
    def check(self) -> list[dict[str, str]]:
        from shared.engine import failures

        errors = failures.step_errors(list(self.steps))
        if errors:
            return errors
        import pybamm

        try:
            experiment = pybamm.Experiment([tuple(self.steps)])
        except Exception as exc:  # noqa: BLE001
            return [{"field": "protocol.steps", "error": f"PyBaMM cannot parse it: {short(exc)}"}]
        errors = _rate_errors(experiment.steps)
        errors += self._period_errors(experiment.steps)
        saved = self.save_cycles.planned(self.cycles)
        if len(saved) > LIMITS["max_saved_cycles"]:
            errors.append({"field": "protocol.save_cycles", "error": (
                f"keeps {len(saved)} cycles' series; the limit is {LIMITS['max_saved_cycles']} (max_saved_cycles): "
                "save every n-th cycle with a larger n")})
        every = self.progress_every_cycles
        if every is not None and math.ceil(self.cycles / every) > MAX_PROGRESS_CALLBACKS:
            least = math.ceil(self.cycles / MAX_PROGRESS_CALLBACKS)
            errors.append({"field": "protocol.progress_every_cycles", "error": (
                f"{every} would send {math.ceil(self.cycles / every)} progress callbacks; at most "
                f"{MAX_PROGRESS_CALLBACKS} a study: allowed {least} to {LIMITS['max_ageing_cycles']} "
                f"for {self.cycles} cycles")})
        late = [k for k in self.save_cycles.cycles if k > self.cycles]
        if late:
            errors.append({"field": "protocol.save_cycles.cycles",
                           "error": f"{late[:5]} beyond the study's {self.cycles} cycles"})
        return errors

    def _period_errors(self, steps) -> list[dict[str, str]]:
        minimum = _minimum_period_s(steps)
        return period_errors(self.period_s, steps, minimum, lambda p: _period_error(p, minimum, steps))

    # -- planning -------------------------------------------------------------
    def cache_shape(self) -> dict[str, Any]:
        # one built experiment of CHUNK_CYCLES cycles serves any cycle count and end of life
        return {"protocol": self.type, "steps": self.steps, "chunk": CHUNK_CYCLES}

    def prepare(self, static, parameter_values) -> list[str]:
        import pybamm

        try:
            static.experiment = pybamm.Experiment([tuple(self.steps)] * CHUNK_CYCLES)
        except Exception as exc:
            raise SimulationError(f"protocol.steps: PyBaMM cannot parse the experiment: {short(exc)}")
        return []

    def timeline(self, job, static, inputs, notes) -> Timeline:
        steps = static.experiment.steps[:len(self.steps)]
        errors = self._period_errors(steps)
        if errors:
            raise SimulationError(f"{errors[0]['field']}: {errors[0]['error']}")
        check_step_currents(steps, static)
        asked, period = sample_period(job, self.period_s, _minimum_period_s(steps), notes,
                                      f"the {steps_duration_s(steps):g} s one cycle may run", "the study")
        self._asked_period, self._sample_period = asked, period
        self._max_points, self._summary_only = job.outputs.max_points, job.outputs.summary_only
        self._variables = list(job.outputs.variables)
        self._job = job
        budget = float(get_settings().job_time_budget_s)
        self._budget_s = budget
        usable = budget - max(MARGIN_S, MARGIN_FRACTION * budget)
        now = time.monotonic()
        # the invocation's wall time: the study stops there, between cycles if it must
        self._hard_deadline = now + usable
        # a segment's own budget: it ends only between chunks, where the state it hands on
        # is exactly the one the next chunk starts from (a stop within a chunk drifts ~1e-4)
        segment = self._segment
        if segment is not None and segment.budget_s is not None:
            usable = min(usable, float(segment.budget_s))
        self._deadline = now + usable
        return Timeline()

    # -- solving --------------------------------------------------------------
    def solver_options(self, plan) -> dict[str, Any]:
        return {}  # the full error test, as experiments (the current is algebraic in a CV hold)

    def solve(self, sim, plan):
        for step, parsed in zip(sim.experiment.steps, plan.experiment.steps):
            step.period = parsed.period if parsed.period is not None else self._sample_period
        recorder = _Recorder(self, plan, sim)
        try:
            recorder.run()
        finally:
            recorder.unwrap()
        return recorder.outcome()

    # -- result ---------------------------------------------------------------
    def completed(self, solution, termination, plan) -> bool:
        plan.notes.extend(solution.notes)
        return solution.completed

    def cut_off_note(self, violations: list[str]) -> Optional[str]:
        return ("; ".join(violations) + " in the last cycle (PyBaMM relaxes cut-off events by 1 V inside "
                "experiment steps: end steps with 'until ... V'); cycles gives every cycle's voltage range")

    def extra_results(self, solution) -> dict[str, Any]:
        out = {"cycles": solution.rows, "end_of_life": solution.end_of_life,
               "saved_cycles": sorted(solution.saved)}
        if not self._summary_only:
            out["columns"] = solution.columns()
        return out

    def output_period(self, job) -> Optional[float]:
        return None  # the saved cycles are thinned here (notes from ``_Recorder``), not by the result

    def series_period(self, plan) -> Optional[float]:
        return self._sample_period


# -- limits -------------------------------------------------------------------------


def _rate_errors(steps) -> list[dict[str, str]]:
    errors = []
    for k, step in enumerate(steps):
        kind = type(step).__name__
        value = step.value if isinstance(step.value, (int, float)) else None
        if kind == "CRate" and value is not None and abs(value) > LIMITS["max_c_rate"]:
            errors.append({"field": f"protocol.steps.{k}",
                           "error": f"{abs(value):g}C is above the limit of {LIMITS['max_c_rate']:g}C"})
        if kind == "Current" and value is not None and abs(value) > LIMITS["max_current_A"]:
            errors.append({"field": f"protocol.steps.{k}",
                           "error": f"{abs(value):g} A is above the limit of {LIMITS['max_current_A']:g} A"})
    return errors


def _minimum_period_s(steps) -> float:
    """The smallest output period that keeps one cycle's series within max_output_points."""
    return steps_duration_s(steps) / LIMITS["max_output_points"]


def _period_error(period: float, minimum: float, steps) -> str:
    longest = steps_duration_s(steps)
    return (f"{period:g} s is below this study's minimum output period of {round_up(minimum):g} s: one cycle may "
            f"run {longest:g} s ({longest / 3600:.3g} h: its steps' durations, 'until' steps at PyBaMM's "
            f"default) and returns at most {LIMITS['max_output_points']} points (max_output_points); ask for "
            "a longer period, or bound the 'until' steps ('Hold at 4.2 V for 2 hours or until C/50')")


# -- running ------------------------------------------------------------------------


class _Stop(Exception):
    """Raised from the recorder's callbacks to end PyBaMM's solve: the study is over."""


def _callback_base():
    import pybamm

    return pybamm.callbacks.Callback


class _Recorder:
    """Runs the study chunk by chunk and records every cycle as it ends.

    PyBaMM calls ``on_cycle_start``/``on_cycle_end`` (a ``pybamm.callbacks.Callback``,
    made in ``_as_callback``); the step solutions come from the experiment's solvers,
    whose ``step`` is wrapped for the duration of the study (``unwrap`` restores it).
    """

    def __init__(self, protocol: Ageing, plan, sim):
        self.p = protocol
        self.plan = plan
        self.sim = sim
        self.names = list(dict.fromkeys(plan.output_variables))
        self.n_steps = len(protocol.steps)
        self.planned = set(protocol.save_cycles.planned(protocol.cycles))
        # shares of outputs.max_points: the planned cycles and a last one run early
        self.budget = max(2, protocol._max_points // (len(self.planned) + 1))
        self.rows: list[dict[str, Any]] = []
        self.saved: dict[int, dict[str, np.ndarray]] = {}
        self.notes: list[str] = []
        self.first_capacity: Optional[float] = None
        self.stop_Ah: Optional[float] = None
        self.eol_cycle: Optional[int] = None
        self.end: Optional[str] = None  # "cycles" | "end of life" | "failure" | "time"
        self.termination = ""
        self.thinned_to: Optional[float] = None
        self._cycle_steps: list = []
        self._cycle_failure: Optional[str] = None
        self._cycle_termination: Optional[str] = None
        self._last_series: Optional[dict[str, np.ndarray]] = None
        self._last_cycle = 0
        self._last_summary = None
        self._cycle_wall = 0.0
        self._cycle_t0 = 0.0
        self._wrapped: list = []
        self._warned: set[str] = set()
        self._t_start = time.monotonic()
        self._segment_cycles = 0
        self._wall_before = 0.0
        self._step_solution = None  # the last step solution PyBaMM returned
        self._cycle_end_solution = None  # the last step of the last recorded cycle
        self._cycle_end_start = None  # a chunk's last state, when the segment stopped between chunks
        self.start = None  # PyBaMM's starting solution (a checkpoint's last state)
        self._adopt = None  # the restored state, until it has the simulation's model
        segment = protocol._segment
        if segment is not None and segment.resume is not None:
            self._restore(checkpoint.unpack(segment.resume))
        self._progress_path = segment.progress_path if segment is not None else None
        if self.rows:
            self._report(self.rows)  # the restored rows, so the worker's reader has them all

    # -- checkpoints ------------------------------------------------------------
    _KEPT = ("rows", "saved", "notes", "first_capacity", "stop_Ah", "termination", "thinned_to",
             "_last_series", "_last_cycle", "_warned")

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("steps") != list(self.p.steps) or state.get("variables") != self.names:
            raise checkpoint.CheckpointError("the checkpoint is of another study (steps or variables differ)")
        for name in self._KEPT:
            setattr(self, name, state[name])
        self._wall_before = float(state["wall_s"])
        self.start = state["state"]
        self._adopt = self.start

    def _adopt_model(self) -> None:
        """Give the resumed state the simulation's own model (once it is built, at the
        first cycle's start). The state comes back from pickle with a copy of the model
        it ended in; PyBaMM finds its state map from one step's model to the next by the
        model objects, so with the copy it would take its general way instead, which
        differs from one uninterrupted solve by up to ~1e-4 relative in loss of lithium
        inventory some cycles later. With the model, the rows equal it to the last bit."""
        start, self._adopt = self._adopt, None
        sim = self.sim
        model = getattr(sim, "_built_experiment_model", None)
        if model is None:
            built = getattr(sim, "steps_to_built_models", None) or {}
            model = built.get(sim.experiment.steps[self.n_steps - 1].basic_repr())
        models = list(start.all_models or [])
        if model is None or not models or models[-1] is model:
            return
        old = models[-1]
        if type(old) is not type(model) or old.name != model.name or \
                getattr(old, "len_rhs_and_alg", None) != getattr(model, "len_rhs_and_alg", None):
            return  # not the model the state ended in (a skipped last step): PyBaMM's general way
        start._all_models = models[:-1] + [model]

    def _report(self, rows: list) -> None:
        """Append rows (one JSON line, one write) to the worker's progress file, if any."""
        if self._progress_path is None:
            return
        try:
            with open(self._progress_path, "a") as f:
                f.write(json.dumps(rows, separators=(",", ":")) + "\n")
        except OSError as exc:  # progress is best effort: the study goes on
            log.warning("progress file not written: %s", exc)
            self._progress_path = None

    def make_checkpoint(self) -> checkpoint.Checkpoint:
        wall = time.monotonic() - self._t_start
        state = {name: getattr(self, name) for name in self._KEPT}
        start = self._cycle_end_start if self._cycle_end_start is not None else self._cycle_end_solution.last_state
        # The step solution's termination is PyBaMM's raw "event" until PyBaMM decodes it
        # (after the cycle; a study stopped at a cycle start never gets there). A starting
        # solution ended by an event of the model would not be stepped on from: this one
        # ended at the experiment's own condition, as PyBaMM's decoded text says.
        if not (start.termination == "final time" or "[experiment]" in str(start.termination)):
            start.termination = "event: Combined termination [experiment]"
        state.update(steps=list(self.p.steps), variables=self.names, wall_s=self._wall_before + wall,
                     state=start)
        data, sha = checkpoint.pack(state)
        last = self.rows[-1]
        return checkpoint.Checkpoint(
            data=data, sha256=sha, cycles_done=len(self.rows), cycles_planned=self.p.cycles,
            latest_capacity_Ah=last.get("Capacity [A.h]"),
            seconds_per_cycle=round(wall / self._segment_cycles, 4) if self._segment_cycles else None,
            wall_s=round(self._wall_before + wall, 3))

    # -- the loop ---------------------------------------------------------------
    def run(self) -> None:
        import pybamm

        callback = _as_callback(self)
        chunk = len(self.sim.experiment.cycle_lengths)
        last = self.start
        while self.end is None:
            done_before = len(self.rows)
            try:
                solution = self.sim.solve(inputs=self.plan.inputs, starting_solution=last, save_at_cycles=[],
                                          callbacks=[callback])
            except _Stop:
                break
            except (pybamm.SolverError, pybamm.ModelError, ValueError, KeyError, TypeError,
                    ZeroDivisionError) as exc:
                if not self.rows:
                    raise  # nothing ran: the failure itself, translated by the engine
                if not isinstance(exc, pybamm.SolverError):  # (or a fault of this module: the log has it)
                    log.warning("ageing study: %s in cycle %d", type(exc).__name__, len(self.rows) + 1,
                                exc_info=True)
                k = len(self.rows) + 1
                self._fail(f"the solver failed in cycle {k}: {_failure_text(exc, self.p._job, self.plan)}",
                           f"solver error in cycle {k}")
                break
            if self.end is not None:
                break
            if len(self.rows) - done_before < chunk:  # PyBaMM ended early without telling us why
                self._fail(f"cycle {len(self.rows) + 1} did not run: PyBaMM ended with "
                           f"'{solution.termination}'", str(solution.termination))
                break
            last = solution.last_state
            del solution
            if self._chunk_does_not_fit(chunk):  # a checkpoint at the seam PyBaMM's chunks share
                self.end, self._cycle_end_start = "segment", last
                break

    def _chunk_does_not_fit(self, chunk: int) -> bool:
        """Whether the next chunk would run past this segment's time (a segment that may
        continue stops between chunks, where the state it resumes from is exactly the
        one the next chunk starts from; within a chunk only if its time runs out)."""
        segment, deadline = self.p._segment, self.p._deadline
        if segment is None or not segment.may_continue or deadline is None or not self._segment_cycles:
            return False
        per_cycle = (time.monotonic() - self._t_start) / self._segment_cycles
        return time.monotonic() + 1.2 * chunk * per_cycle > deadline

    def outcome(self):
        """The study's result (``AgeingRun``), or a ``Checkpoint`` when its segment ran out of time."""
        if self.end == "segment":
            return self.make_checkpoint()
        k = len(self.rows)
        if k == 0 or self._last_series is None:
            raise SimulationError("; ".join(self.notes)
                                  or f"the ageing study ran no complete cycle ({self.termination})")
        if self._last_cycle not in self.saved:
            self.saved[self._last_cycle] = self._thin(self._last_series)
        if self.end == "time":
            segment = self.p._segment
            if segment is not None and segment.stop_reason:
                self.notes.append(f"{segment.stop_reason}: stopped after {k} of {self.p.cycles} cycles")
            else:
                self.notes.append(
                    f"stopped before the service's wall-time budget (JOB_TIME_BUDGET_S {self.p._budget_s:g} s) "
                    f"after {k} of {self.p.cycles} cycles")
        if self.thinned_to is not None:
            self.notes.append(
                f"saved cycles thinned to at most {self.budget} points each ({len(self.saved)} saved cycles share "
                f"outputs.max_points {self.p._max_points}): a period of up to {self.thinned_to:.6g} s")
        eol = self.p.end_of_life
        end_of_life = {"reached": self.eol_cycle is not None, "cycle": self.eol_cycle,
                       "criterion": None if eol is None else eol.criterion(),
                       "capacity_threshold_Ah": self.stop_Ah}
        completed = self.end in ("cycles", "end of life")
        return AgeingRun(termination=self.termination, completed=completed, rows=self.rows, saved=self.saved,
                         last=self._last_series, end_of_life=end_of_life, notes=self.notes,
                         variables=list(self.p._variables))

    def _fail(self, note: str, termination: str) -> None:
        if self.end is None:
            self.end = "failure"
            self.termination = termination
            kept = len(self.rows)
            self.notes.append(note + (f"; the {kept} cycle(s) before it are kept" if kept else ""))

    # -- PyBaMM's callbacks -----------------------------------------------------
    def on_cycle_start(self, logs) -> None:
        if not self._wrapped:
            self._wrap()
        if self._adopt is not None:
            self._adopt_model()
        now = time.monotonic()
        segment = self.p._segment
        # a segment that continues ends between chunks (see _chunk_does_not_fit); within a
        # chunk only at the invocation's wall time. The last one ends at its own budget.
        continues = segment is not None and segment.may_continue
        deadline = self.p._hard_deadline if continues else self.p._deadline
        if self._segment_cycles and deadline is not None and now + 1.5 * self._cycle_wall > deadline:
            if segment is not None and segment.may_continue and self._cycle_end_solution is not None:
                self.end = "segment"  # a checkpoint; the termination is the last cycle's
            else:
                self.end, self.termination = "time", TIME_BUDGET_STOP
            raise _Stop()
        self._cycle_t0 = now
        self._cycle_steps = []
        self._cycle_failure = self._cycle_termination = None

    def on_cycle_end(self, logs) -> None:
        k = len(self.rows) + 1
        summary = logs.get("summary variables")
        complete = (self._cycle_failure is None and len(self._cycle_steps) == self.n_steps
                    and summary is not None and summary is not self._last_summary)
        if not complete:
            text = self._cycle_failure or "it did not run all its steps"
            self._fail(f"cycle {k} could not finish: {text}", self._cycle_termination or "cycle incomplete")
            raise _Stop()
        self._last_summary = summary
        self._cycle_wall = time.monotonic() - self._cycle_t0
        self._record(k, summary)
        self._segment_cycles += 1
        self._cycle_end_solution = self._step_solution
        if self.end is not None:
            raise _Stop()

    def on_experiment_error(self, logs) -> None:
        error = logs.get("error")
        self._cycle_failure = f"the solver failed: {_failure_text(error, self.p._job, self.plan)}"
        self._cycle_termination = f"solver error in cycle {len(self.rows) + 1}"

    def on_experiment_infeasible_time(self, logs) -> None:
        self._cycle_failure = (f"step '{logs.get('step operating conditions')}' reached PyBaMM's default duration "
                               f"({logs.get('step duration')} s) without reaching its end condition")
        self._cycle_termination = "final time"

    def on_experiment_infeasible_event(self, logs) -> None:
        termination = str(logs.get("termination"))
        self._cycle_failure = (f"step '{logs.get('step operating conditions')}' ended at a model event "
                               f"({termination}), not at its own condition: the cell reached a limit of the model")
        self._cycle_termination = termination

    # -- steps ------------------------------------------------------------------
    def _solvers(self) -> list:
        found = list((getattr(self.sim, "steps_to_built_solvers", None) or {}).values())
        unified = getattr(self.sim, "_built_experiment_solver", None)
        if unified is not None:
            found.append(unified)
        return list({id(s): s for s in found}.values())

    def _wrap(self) -> None:
        for solver in self._solvers():
            original = solver.step

            def step(*args, _original=original, **kwargs):
                solution = _original(*args, **kwargs)
                self._on_step(solution)
                return solution

            solver.step = step
            self._wrapped.append(solver)
        if not self._wrapped:
            raise SimulationError("the ageing study cannot see PyBaMM's experiment solvers (PyBaMM version?)")

    def unwrap(self) -> None:
        for solver in self._wrapped:
            solver.__dict__.pop("step", None)
        self._wrapped = []

    def _on_step(self, solution) -> None:
        import pybamm

        if isinstance(solution, pybamm.EmptySolution):  # a step skipped (its end already met)
            self._cycle_steps.append(None)
            return
        self._step_solution = solution
        series = {name: np.asarray(solution[name].entries, dtype=float) for name in self.names}
        self._cycle_steps.append((series, str(solution.termination)))

    # -- a cycle ---------------------------------------------------------------
    def _record(self, k: int, summary) -> None:
        from shared.engine.results import throughput

        ran = [s for s in self._cycle_steps if s is not None]
        if not ran:
            self._fail(f"cycle {k} could not finish: every step was skipped", "cycle incomplete")
            return
        series = {name: np.concatenate([s[0][name] for s in ran]) for name in self.names}
        t, v = series["Time [s]"], series["Voltage [V]"]
        capacity = self._summary(summary, "Capacity [A.h]")
        if k == 1:
            self.first_capacity = capacity
        fade = None
        if capacity is not None and self.first_capacity:
            fade = (1 - capacity / self.first_capacity) * 100
        row = {"cycle": k, "Capacity [A.h]": capacity, "Capacity fade [%]": fade}
        row.update({name: self._summary(summary, name) for name in DEGRADATION})
        row.update(throughput(t, v, series["Current [A]"], series["Discharge capacity [A.h]"]))
        row[THROUGHPUT] = self._summary(summary, THROUGHPUT)
        row.update({
            "Start time [s]": float(t[0]),
            "End time [s]": float(t[-1]),
            "Duration [s]": float(t[-1] - t[0]),
            "Minimum voltage [V]": float(v.min()),
            "Maximum voltage [V]": float(v.max()),
            "Maximum cell temperature [degC]": float(series["Volume-averaged cell temperature [K]"].max() - 273.15),
        })
        self.rows.append(row)
        self._report([row])
        self._last_series, self._last_cycle = series, k
        self.termination = ran[-1][1]
        if k in self.planned:
            self.saved[k] = self._thin(series)
        eol = self.p.end_of_life
        if eol is not None:
            if self.stop_Ah is None:  # cycle 1
                if capacity is None:
                    self._fail(f"end_of_life: PyBaMM gives no capacity for cycle {k} (its eSOH summary) with this "
                               "model and parameter set, so no end of life can be judged", "capacity unknown")
                    return
                self.stop_Ah = eol.threshold_Ah(capacity)
            if capacity is not None and capacity <= self.stop_Ah:  # PyBaMM's rule (a NaN never ends it)
                self.eol_cycle, self.end, self.termination = k, "end of life", CAPACITY_STOP
                return
        if k >= self.p.cycles:
            self.end = "cycles"

    def _summary(self, summary, name: str) -> Optional[float]:
        try:
            value = float(summary[name])
        except KeyError:
            return None  # not a summary variable of this model
        except Exception as exc:  # noqa: BLE001 - e.g. PyBaMM's eSOH solve failing for one cycle
            if name not in self._warned:
                self._warned.add(name)
                self.notes.append(f"'{name}' could not be computed from cycle {len(self.rows) + 1} on "
                                  f"({short(exc, 160)}): null")
            return None
        return value if math.isfinite(value) else None

    def _thin(self, series: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from shared.engine.results import sample

        t = series["Time [s]"]
        idx, period = sample(t, self.p._sample_period, self.p._asked_period, self.budget)
        if len(idx) < len(t) and period is not None:
            asked = self.p._asked_period or self.p._sample_period
            if asked is None or period > asked * (1 + 1e-9):
                self.thinned_to = max(self.thinned_to or 0.0, float(period))
        return {name: series[name][idx] for name in dict.fromkeys(["Time [s]", *self.p._variables])}


def _as_callback(recorder: _Recorder):
    """The recorder as a ``pybamm.callbacks.Callback`` (PyBaMM calls every ``on_*`` it defines)."""
    base = _callback_base()

    class Callback(base):
        def on_cycle_start(self, logs):
            recorder.on_cycle_start(logs)

        def on_cycle_end(self, logs):
            recorder.on_cycle_end(logs)

        def on_experiment_error(self, logs):
            recorder.on_experiment_error(logs)

        def on_experiment_infeasible_time(self, logs):
            recorder.on_experiment_infeasible_time(logs)

        def on_experiment_infeasible_event(self, logs):
            recorder.on_experiment_infeasible_event(logs)

    return Callback()


def _failure_text(exc, job, plan) -> str:
    from shared.engine import failures

    if exc is None:
        return "unknown error"
    try:
        return str(failures.translate(exc, job, plan))
    except Exception:  # noqa: BLE001
        return short(exc)


class _Entries:
    def __init__(self, entries: np.ndarray):
        self.entries = entries


class AgeingRun:
    """What the study hands the result: the last cycle's series (the summary is the last
    cycle's), every cycle's row, the saved cycles' thinned series."""

    def __init__(self, termination, completed, rows, saved, last, end_of_life, notes, variables):
        self.variables = variables
        self.termination = termination
        self.completed = completed
        self.rows = rows
        self.saved = saved
        self.last = last
        self.end_of_life = end_of_life
        self.notes = notes

    @property
    def t(self) -> np.ndarray:
        return self.last["Time [s]"]

    def __getitem__(self, name: str) -> _Entries:
        return _Entries(self.last[name])

    def columns(self) -> dict[str, list]:
        """The saved cycles' series, one after the other, with the cycle of every point."""
        cycles = sorted(self.saved)
        out = {CYCLE_COLUMN: [k for k in cycles for _ in range(len(self.saved[k]["Time [s]"]))]}
        for name in self.variables:
            out[name] = np.concatenate([self.saved[k][name] for k in cycles]).tolist()
        return out

"""An impedance spectrum (EIS): the cell's small-signal impedance at rest, at a list of
frequencies or a log-spaced range, at one or several states of charge.

Not a time-domain protocol: the impedance kind (``shared.engine.impedance``) runs it
with ``pybamm.EISSimulation``; the time-domain methods of ``Protocol`` are never asked.
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import numpy as np
from pydantic import Field, field_validator, model_validator

from shared.contract.limits import LIMITS, Strict
from shared.engine.protocols.base import Protocol

F_MIN = LIMITS["min_impedance_frequency_Hz"]
F_MAX = LIMITS["max_impedance_frequency_Hz"]
MAX_FREQUENCIES = int(LIMITS["max_impedance_frequencies"])
MAX_SOCS = int(LIMITS["max_impedance_socs"])


class FrequencyRange(Strict):
    """Log-spaced frequencies from ``min_Hz`` to ``max_Hz`` (both included): ``points`` in
    all, or ``points_per_decade``."""

    min_Hz: float = Field(ge=F_MIN, le=F_MAX)
    max_Hz: float = Field(ge=F_MIN, le=F_MAX)
    points_per_decade: Optional[float] = Field(default=None, gt=0, le=MAX_FREQUENCIES)
    points: Optional[int] = Field(default=None, ge=1, le=MAX_FREQUENCIES)

    @model_validator(mode="after")
    def _consistent(self):
        if self.max_Hz < self.min_Hz:
            raise ValueError("max_Hz must be at least min_Hz")
        if (self.points is None) == (self.points_per_decade is None):
            raise ValueError("give exactly one of points or points_per_decade")
        if self.points == 1 and self.max_Hz > self.min_Hz:
            raise ValueError("points = 1 leaves max_Hz out: give at least 2 points (both ends), or min_Hz = max_Hz")
        n = self.count()
        if n > MAX_FREQUENCIES:
            raise ValueError(f"{n} frequencies; the limit is {MAX_FREQUENCIES} (max_impedance_frequencies)")
        return self

    def count(self) -> int:
        return len(self.values())

    def values(self) -> list[float]:
        lo, hi = math.log10(self.min_Hz), math.log10(self.max_Hz)
        if hi - lo < 1e-12:
            return [float(self.min_Hz)]
        if self.points is not None:
            out = np.logspace(lo, hi, self.points).tolist()
            out[0], out[-1] = float(self.min_Hz), float(self.max_Hz)
            return out
        # every 1/points_per_decade decade from min_Hz up to max_Hz, and max_Hz itself
        steps = (hi - lo) * self.points_per_decade
        n = int(math.floor(steps + 1e-9))
        exps = lo + np.arange(n + 1) / self.points_per_decade
        out = (10.0 ** exps).tolist()
        if steps - n > 1e-9:
            out.append(float(self.max_Hz))
        out[0], out[-1] = float(self.min_Hz), float(self.max_Hz)
        return out


class Impedance(Protocol):
    """The impedance at rest (zero mean current) at ``frequencies_Hz`` or over
    ``frequency_range``, at ``socs`` (else ``conditions.initial_soc``, else the
    parameter set's own initial state)."""

    type: Literal["impedance"]
    frequencies_Hz: Optional[list[float]] = Field(
        default=None, min_length=1, max_length=MAX_FREQUENCIES,
        description=f"frequencies [Hz], each in [{F_MIN:g}, {F_MAX:g}]")
    frequency_range: Optional[FrequencyRange] = None
    socs: Optional[list[float]] = Field(
        default=None, min_length=1, max_length=MAX_SOCS,
        description="states of charge, each in [0, 1]: one spectrum each (instead of conditions.initial_soc)")

    can_compile = False

    @field_validator("frequencies_Hz")
    @classmethod
    def _frequencies_in_range(cls, v: Optional[list[float]]):
        for f in v or ():
            if not (math.isfinite(f) and F_MIN <= f <= F_MAX):
                raise ValueError(f"{f} Hz is outside [{F_MIN:g}, {F_MAX:g}] Hz")
        return v

    @field_validator("socs")
    @classmethod
    def _socs_in_range(cls, v: Optional[list[float]]):
        for s in v or ():
            if not (math.isfinite(s) and 0 <= s <= 1):
                raise ValueError(f"{s} is outside [0, 1]")
        return v

    @model_validator(mode="after")
    def _one_source(self):
        if (self.frequencies_Hz is None) == (self.frequency_range is None):
            raise ValueError("give exactly one of frequencies_Hz or frequency_range")
        return self

    def frequencies(self) -> list[float]:
        """The frequencies [Hz] this job asks for, in its order."""
        if self.frequencies_Hz is not None:
            return [float(f) for f in self.frequencies_Hz]
        return self.frequency_range.values()

    def cache_shape(self):
        return {"protocol": self.type}

"""Parameter sweeps: a base job plus the values to vary -> one job per member.

A sweep request::

    {"base": {<a native job>},
     "vary": {"protocol.c_rate": [0.5, 1, 2],
              "conditions.ambient_temperature_C": {"start": 0, "stop": 40, "num": 3},
              "parameters.Nominal cell capacity [A.h]": {"min": 4.5, "max": 5.5}},
     "design": "grid" | "random" | "latin_hypercube",
     "samples": 20, "seed": 1}

A path is ``section.key`` split at the first dot only (PyBaMM names contain
dots: ``parameters.Nominal cell capacity [A.h]``), or a top-level field such as
``parameter_set``. ``grid`` takes every combination of lists and
``start/stop/num`` ranges; ``random`` and ``latin_hypercube`` draw ``samples``
members (seeded) from ``min/max`` ranges and pick from lists.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any, Literal, Optional, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contract.limits import LIMITS

Scalar = Union[float, int, str, bool]


class Linspace(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: float
    stop: float
    num: int = Field(ge=1, le=LIMITS["max_sweep_members"])


class Interval(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self):
        if self.max < self.min:
            raise ValueError("max must be at least min")
        return self


Axis = Union[list[Scalar], Linspace, Interval]


class SweepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base: dict[str, Any]
    vary: dict[str, Axis] = Field(min_length=1, max_length=10)
    design: Literal["grid", "random", "latin_hypercube"] = "grid"
    samples: Optional[int] = Field(default=None, ge=1, le=LIMITS["max_sweep_members"])
    seed: Optional[int] = Field(default=None, ge=0)  # numpy and scipy refuse negative seeds

    @model_validator(mode="after")
    def _consistent(self):
        for path, axis in self.vary.items():
            if isinstance(axis, list) and not axis:
                raise ValueError(f"vary.{path}: give at least one value")
            if self.design == "grid" and isinstance(axis, Interval):
                raise ValueError(f"vary.{path}: a grid needs a list or start/stop/num, not min/max")
            if self.design != "grid" and isinstance(axis, Linspace):
                raise ValueError(f"vary.{path}: sampled designs take min/max ranges or lists")
        if self.design != "grid" and self.samples is None:
            raise ValueError("samples is required for random and latin_hypercube designs")
        if self.member_count() > LIMITS["max_sweep_members"]:
            raise ValueError(
                f"the sweep has {self.member_count()} members; the limit is {LIMITS['max_sweep_members']}"
            )
        return self

    def member_count(self) -> int:
        if self.design != "grid":
            return int(self.samples or 0)
        n = 1
        for axis in self.vary.values():
            n *= len(axis) if isinstance(axis, list) else axis.num
        return n


def _values(axis: Axis) -> list[Any]:
    if isinstance(axis, list):
        return list(axis)
    return [float(v) for v in np.linspace(axis.start, axis.stop, axis.num)]


def members(request: SweepRequest) -> list[dict[str, Any]]:
    """The parameter values of every member, in order: ``[{path: value}, ...]``."""
    paths = list(request.vary)
    if request.design == "grid":
        return [dict(zip(paths, combo)) for combo in itertools.product(*(_values(request.vary[p]) for p in paths))]
    n = int(request.samples)
    if request.design == "latin_hypercube":
        from scipy.stats import qmc

        unit = qmc.LatinHypercube(d=len(paths), seed=request.seed).random(n)
    else:
        unit = np.random.default_rng(request.seed).random((n, len(paths)))
    out = []
    for row in unit:
        member = {}
        for u, path in zip(row, paths):
            axis = request.vary[path]
            if isinstance(axis, Interval):
                member[path] = float(axis.min + u * (axis.max - axis.min))
            else:
                member[path] = axis[min(int(u * len(axis)), len(axis) - 1)]
        out.append(member)
    return out


def apply(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with each ``section.key`` path set."""
    job = copy.deepcopy(base)
    for path, value in values.items():
        section, _, key = path.partition(".")
        if not key:
            job[section] = value
            continue
        target = job.setdefault(section, {})
        if not isinstance(target, dict):
            raise ValueError(f"vary.{path}: {section} is not an object in the base job")
        target[key] = value
    return job

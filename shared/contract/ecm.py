"""An equivalent-circuit cell given as tables against state of charge (an HPPC fit).

Used with ``model.name = "Thevenin"`` (``pybamm.equivalent_circuit.Thevenin``) in place
of a parameter set. Every table shares one SOC axis (``soc``); R0, each RC pair's R
and C, and the entropic change are either 1-D (one value per SOC point) or, when
``temperatures_C`` is given, 2-D: one row per temperature, one value per SOC point.
The OCV is always 1-D (PyBaMM's OCV is a function of SOC alone).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Optional, Union

from pydantic import BeforeValidator, Field, PlainSerializer, ValidationInfo, field_validator, model_validator

from shared.contract.limits import LIMITS, VOLTAGE_RANGE_V, Strict

# Published ranges of the tables' values (the 400 names them).
RESISTANCE_RANGE_OHM = (0.0, 1000.0)  # exclusive of 0
CAPACITANCE_RANGE_F = (0.0, 1e9)  # exclusive of 0
TEMPERATURE_RANGE_C = (-60.0, 100.0)
ENTROPIC_CHANGE_LIMIT_V_PER_K = 0.01



def _rows_in(v: Any) -> Any:
    """A 2-D table in its stored form, ``[{"row": [...]}, ...]``, back to ``[[...], ...]``
    (any other value is left for the table's own checks)."""
    if isinstance(v, list) and v and all(isinstance(r, dict) and set(r) == {"row"} for r in v):
        return [r["row"] for r in v]
    return v


def _rows_out(v: Any) -> Any:
    """A 2-D table dumped as ``[{"row": [...]}, ...]``: Firestore keeps no arrays in
    arrays, and the job store records every job as dumped (a 1-D table stays a list)."""
    if isinstance(v, list) and v and isinstance(v[0], list):
        return [{"row": list(r)} for r in v]
    return v


# Given as numbers ([...]) or rows ([[...], ...]); rows are dumped (the job store, the
# Pub/Sub message, GET /jobs/<id>) as [{"row": [...]}, ...], which is accepted as input too.
Table = Annotated[Union[list[float], list[list[float]]], BeforeValidator(_rows_in), PlainSerializer(_rows_out)]


class RcPair(Strict):
    """One RC pair: its resistance [Ohm] and capacitance [F], tables as R0's."""

    r_Ohm: Table
    c_F: Table


class EcmCell(Strict):
    """A Thevenin cell: capacity, cut-offs and tables against SOC (and temperature)."""

    capacity_Ah: float = Field(gt=0, le=1000, description='"Cell capacity [A.h]" (and the nominal capacity '
                                                          'C-rates refer to)')
    soc: list[float] = Field(min_length=2, max_length=LIMITS["max_ecm_soc_points"],
                             description="the SOC axis of every table: strictly increasing, in [0, 1]")
    temperatures_C: Optional[list[float]] = Field(
        default=None, min_length=2, max_length=LIMITS["max_ecm_temperatures"],
        description="the temperature axis [degC] of 2-D tables (rows), strictly increasing; "
                    "absent: the tables are 1-D, against SOC only")
    ocv_V: list[float] = Field(description='"Open-circuit voltage [V]", one value per SOC point')
    r0_Ohm: Table = Field(description='"R0 [Ohm]": one value per SOC point, or one row per temperature')
    rc_pairs: list[RcPair] = Field(max_length=LIMITS["max_ecm_rc_pairs"],
                                   description='"R1 [Ohm]", "C1 [F]", ...: as many pairs as the model option '
                                               '"number of rc elements"')
    entropic_change_V_per_K: Optional[Table] = Field(
        default=None, description='"Entropic change [V/K]" at each SOC point (and temperature); needs a '
                                  'strictly increasing OCV; absent: zero')
    lower_voltage_cut_off_V: Optional[float] = Field(
        default=None, ge=VOLTAGE_RANGE_V[0], le=VOLTAGE_RANGE_V[1],
        description="absent: the OCV table's lowest value")
    upper_voltage_cut_off_V: Optional[float] = Field(
        default=None, ge=VOLTAGE_RANGE_V[0], le=VOLTAGE_RANGE_V[1],
        description="absent: the OCV table's highest value")

    @field_validator("soc")
    @classmethod
    def _soc_axis(cls, v: list[float]):
        return _axis(v, (0.0, 1.0), "", "SOC points")

    @field_validator("temperatures_C")
    @classmethod
    def _temperature_axis(cls, v: Optional[list[float]]):
        return None if v is None else _axis(v, TEMPERATURE_RANGE_C, " degC", "temperatures")

    @field_validator("ocv_V")
    @classmethod
    def _ocv(cls, v: list[float], info: ValidationInfo):
        soc = info.data.get("soc")
        if soc is not None and len(v) != len(soc):
            raise ValueError(f"give one value per SOC point: {len(soc)}, not {len(v)}")
        _finite(v)
        lo, hi = VOLTAGE_RANGE_V
        if any(not lo <= x <= hi for x in v):
            raise ValueError(f"every OCV value must be in [{lo:g}, {hi:g}] V")
        return v

    @field_validator("r0_Ohm")
    @classmethod
    def _r0(cls, v: Table, info: ValidationInfo):
        return _table(v, info, "", RESISTANCE_RANGE_OHM, "Ohm")

    @field_validator("rc_pairs")
    @classmethod
    def _pairs(cls, v: list[RcPair], info: ValidationInfo):
        for k, pair in enumerate(v, start=1):
            _table(pair.r_Ohm, info, f"pair {k} r_Ohm: ", RESISTANCE_RANGE_OHM, "Ohm")
            _table(pair.c_F, info, f"pair {k} c_F: ", CAPACITANCE_RANGE_F, "F")
        return v

    @field_validator("entropic_change_V_per_K")
    @classmethod
    def _entropic(cls, v: Optional[Table], info: ValidationInfo):
        if v is None:
            return v
        limit = ENTROPIC_CHANGE_LIMIT_V_PER_K
        _table(v, info, "", (-limit, limit), "V/K", inclusive=True)
        ocv = info.data.get("ocv_V")
        if ocv is not None and any(b <= a for a, b in zip(ocv, ocv[1:])):
            raise ValueError("an entropic change table needs ocv_V strictly increasing with SOC (PyBaMM "
                             "evaluates it at the OCV)")
        return v

    @model_validator(mode="after")
    def _cut_offs(self):
        lower, upper = self.cut_offs()
        if lower >= upper:
            raise ValueError(f"the lower voltage cut-off ({lower:g} V) must be below the upper one ({upper:g} V)")
        return self

    def cut_offs(self) -> tuple[float, float]:
        """(lower, upper) voltage cut-offs [V]: as given, else the OCV table's range."""
        lower = self.lower_voltage_cut_off_V if self.lower_voltage_cut_off_V is not None else min(self.ocv_V)
        upper = self.upper_voltage_cut_off_V if self.upper_voltage_cut_off_V is not None else max(self.ocv_V)
        return float(lower), float(upper)


def _finite(values) -> None:
    if any(not math.isfinite(x) for x in values):
        raise ValueError("values must be finite numbers")


def _axis(v: list[float], bounds: tuple[float, float], unit: str, what: str) -> list[float]:
    """An axis: finite, within ``bounds`` (inclusive), strictly increasing."""
    _finite(v)
    lo, hi = bounds
    if any(not lo <= x <= hi for x in v):
        raise ValueError(f"every one of the {what} must be in [{lo:g}, {hi:g}]{unit}")
    if any(b <= a for a, b in zip(v, v[1:])):
        raise ValueError(f"{what} must be strictly increasing")
    return v


def _table(v: Table, info: ValidationInfo, what: str, bounds: tuple[float, float], unit: str,
           inclusive: bool = False) -> Table:
    """A table's shape against the axes (1-D: one value per SOC point; 2-D: one row per
    temperature) and its values within ``bounds`` (exclusive of the lower one unless
    ``inclusive``)."""
    soc, temps = info.data.get("soc"), info.data.get("temperatures_C")
    if soc is None or "temperatures_C" not in info.data:
        return v  # the axes failed their own checks
    nested = bool(v) and isinstance(v[0], list)
    if temps is None:
        if nested or len(v) != len(soc):
            raise ValueError(f"{what}without temperatures_C, give one value per SOC point ({len(soc)} numbers)")
        rows = [v]
    else:
        if not nested or len(v) != len(temps) or any(len(row) != len(soc) for row in v):
            raise ValueError(f"{what}with temperatures_C, give {len(temps)} rows (one per temperature) of "
                             f"{len(soc)} values (one per SOC point)")
        rows = v
    lo, hi = bounds
    for row in rows:
        _finite(row)
        if any(not ((lo <= x) if inclusive else (lo < x)) or x > hi for x in row):
            side = "[" if inclusive else "("
            raise ValueError(f"{what}every value must be in {side}{lo:g}, {hi:g}] {unit}")
    return v

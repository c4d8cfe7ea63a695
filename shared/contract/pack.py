"""A battery pack: identical cells, ``series`` in series and ``parallel`` in parallel.

What is per pack and what per cell (``shared.engine.pack`` turns the pack's job into
one cell's):

* the protocol is the pack's: currents [A] (constant current, experiment steps,
  drive cycles), powers [W], voltages [V] in experiment steps, and C-rates (of the
  pack's capacity, ``parallel`` x the cell's: the same C-rate for each cell);
* ``upper_voltage_V`` / ``lower_voltage_V`` are the pack's voltage limits (each cell's
  cut-off is the pack's over ``series``);
* ``parameters`` are one cell's, as PyBaMM names them ("Nominal cell capacity [A.h]",
  "Lower voltage cut-off [V]", ...).

Cells that differ (``capacity_factors``, ``resistance_factors``,
``interconnect_resistance_Ohm``, ``initial_socs``) are equivalent-circuit cells: model
``Thevenin``; a constant pack current, a drive cycle of pack currents or an experiment
of current, C-rate and rest steps; at most ``max_pack_circuit_cells`` cells
(``shared.engine.pack_circuit``).
"""

from __future__ import annotations

from typing import Annotated, Optional

from pydantic import Field, field_validator

from shared.contract.limits import LIMITS, VOLTAGE_RANGE_V, Strict, finite


CAPACITY_FACTOR_RANGE = (0.5, 1.5)
RESISTANCE_FACTOR_RANGE = (0.5, 3.0)
INTERCONNECT_RANGE_OHM = (0.0, 0.1)

CapacityFactor = Annotated[float, Field(ge=CAPACITY_FACTOR_RANGE[0], le=CAPACITY_FACTOR_RANGE[1])]
InitialSoc = Annotated[float, Field(ge=0.0, le=1.0)]
ResistanceFactor = Annotated[float, Field(ge=RESISTANCE_FACTOR_RANGE[0], le=RESISTANCE_FACTOR_RANGE[1])]


class Pack(Strict):
    series: int = Field(default=1, ge=1, le=LIMITS["max_pack_series"],
                        description="cells in series (Ns): PyBaMM's 'Number of cells connected in series "
                                    "to make a battery'")
    parallel: int = Field(default=1, ge=1, le=LIMITS["max_pack_parallel"],
                          description="cells in parallel (Np): each carries the pack current over Np")
    upper_voltage_V: Optional[float] = Field(
        default=None, description="the pack's upper voltage limit (each cell's 'Upper voltage cut-off [V]' "
                                  "is this over series); default: series x the cell's")
    lower_voltage_V: Optional[float] = Field(
        default=None, description="the pack's lower voltage limit (each cell's 'Lower voltage cut-off [V]' "
                                  "is this over series); default: series x the cell's")

    # flat lists (Firestore keeps no arrays in arrays): cell (s, p) of series element s and
    # parallel position p, both from 1, is number (s - 1) * parallel + (p - 1)
    capacity_factors: Optional[list[CapacityFactor]] = Field(
        default=None, max_length=LIMITS["max_pack_circuit_cells"],
        description="model Thevenin: each cell's capacity over the cell's, series x parallel numbers, "
                    "series element by series element (cell s-p is number (s-1) x parallel + p)")
    resistance_factors: Optional[list[ResistanceFactor]] = Field(
        default=None, max_length=LIMITS["max_pack_circuit_cells"],
        description="model Thevenin: each cell's R0 and R1 over the cell's, as capacity_factors")
    interconnect_resistance_Ohm: Optional[float] = Field(
        default=None, ge=INTERCONNECT_RANGE_OHM[0], le=INTERCONNECT_RANGE_OHM[1],
        description="model Thevenin: the resistance in series with each cell in its parallel branch "
                    "(tabs, welds, busbar share)")
    initial_socs: Optional[list[InitialSoc]] = Field(
        default=None, max_length=LIMITS["max_pack_circuit_cells"],
        description="model Thevenin: each cell's initial state of charge, as capacity_factors (default: "
                    "conditions.initial_soc, else the set's); cells of one element at different SoC "
                    "exchange current")

    def differs(self) -> bool:
        """Whether the cells differ (or are joined by resistance): the circuit model's job."""
        return any(v is not None for v in (self.capacity_factors, self.resistance_factors,
                                           self.interconnect_resistance_Ohm, self.initial_socs))

    # each check names its own field (a 400's "field"), reading series and parallel, which
    # pydantic has validated by then (they come first)
    @field_validator("capacity_factors", "resistance_factors", "initial_socs")
    @classmethod
    def _one_per_cell(cls, v, info):
        series, parallel = info.data.get("series"), info.data.get("parallel")
        if v is not None and series is not None and parallel is not None and len(v) != series * parallel:
            raise ValueError(f"must be {series * parallel} numbers (series x parallel = {series} x {parallel}), "
                             f"not {len(v)}")
        return v

    @field_validator("upper_voltage_V", "lower_voltage_V")
    @classmethod
    def _pack_voltage(cls, v, info):
        v = finite(v, info.field_name)
        series = info.data.get("series")
        if v is None or series is None:
            return v
        lo, hi = VOLTAGE_RANGE_V[0] * series, VOLTAGE_RANGE_V[1] * series
        if not (lo <= v <= hi):
            raise ValueError(f"{v:g} V is outside {lo:g}-{hi:g} V "
                             f"(series x {VOLTAGE_RANGE_V[0]:g}-{VOLTAGE_RANGE_V[1]:g} V per cell)")
        upper = info.data.get("upper_voltage_V")
        if info.field_name == "lower_voltage_V" and upper is not None and v >= upper:
            raise ValueError(f"lower_voltage_V ({v:g} V) must be below upper_voltage_V ({upper:g} V)")
        return v

"""The pack kind: a job with ``pack``. Identical cells are one cell's job scaled
(``pack``); Thevenin cells that may differ are a circuit of cells (``pack_circuit``)."""

from __future__ import annotations

from shared.engine import pack_circuit
from shared.engine.cell import Cell
from shared.engine.kind import Kind
from shared.engine.pack import battery_result, cell_job, describe, errors, field_of


class Battery(Kind):
    """A pack (any job with ``pack``): identical cells, one of them solved by the Cell kind;
    Thevenin cells that may differ, by ``pack_circuit``."""

    name = "pack"

    def accepts(self, job) -> bool:
        return job.pack is not None

    def check(self, job):
        return self._check(job, values_only=False)

    def check_values(self, job):
        return self._check(job, values_only=True)

    def _check(self, job, values_only: bool):
        from shared.engine import failures

        cell = Cell()
        if job.model.name == "Thevenin":
            return pack_circuit.check(job)
        found = errors(job)
        if job.pack.differs():
            found.append({"field": "pack", "error": "cells that differ (capacity_factors, resistance_factors, "
                                                    "interconnect_resistance_Ohm, initial_socs) are offered "
                                                    "with model Thevenin"})
        if not cell.accepts(job):
            found.append({"field": "pack", "error": f"a pack is built of cells of the models "
                                                    f"{', '.join(cell.MODEL_NAMES)} (Thevenin: "
                                                    f"equivalent-circuit cells), not {job.model.name}"})
        if job.protocol.type == "experiment":
            found += failures.step_errors(list(job.protocol.steps))  # named as the pack's steps
        if found:
            return found
        one = cell_job(job)
        found = cell.check_values(one) if values_only else cell.check(one)
        if values_only and one.protocol.type == "experiment":
            found += one.protocol.check()  # the per-cell currents change with parallel
        return [field_of(e, job) for e in found]

    def simulate(self, job, compiled=None, segment=None):
        if segment is not None:
            from shared.engine.errors import SimulationError

            raise SimulationError("a pack job does not run in segments")
        if job.model.name == "Thevenin":
            return pack_circuit.simulate(job)
        return battery_result(job, Cell().simulate(cell_job(job), compiled=compiled))

    def describe(self):
        return describe()

"""The kinds of simulation, and which one takes a job.

Each kind is a ``Kind`` subclass (``kind.py``) in its own module: the physics-based
cell over time (``cell``), the equivalent-circuit cell (``ecm``), the impedance
spectrum (``impedance``) and the pack (``battery``). The first in ``KINDS`` that
accepts a job takes it. The submit function checks a job with ``check``; the solver
process runs it with ``simulate``; neither needs to know which kind it is. A new kind
is one new module and one entry in ``KINDS``.

Nothing here imports PyBaMM until a kind is asked to check or run a job.
"""

from __future__ import annotations

from typing import Any, Optional

from shared.engine.battery import Battery
from shared.engine.cell import Cell
from shared.engine.ecm import Ecm
from shared.engine.impedance import Impedance
from shared.engine.kind import Kind


KINDS: tuple[Kind, ...] = (Impedance(), Battery(), Ecm(), Cell())


def kind_of(job) -> Kind:
    for kind in KINDS:
        if kind.accepts(job):
            return kind
    raise ValueError(f"no kind of simulation takes model {job.model.name!r}")


def check(job) -> list[dict[str, str]]:
    return kind_of(job).check(job)


def described() -> dict[str, Any]:
    """The catalog entries of every kind but the cell (whose entry is the catalog's body)."""
    return {kind.name: kind.describe() for kind in KINDS if kind.name != Cell.name}


def catalog() -> dict[str, Any]:
    """What ``GET /catalog`` lists: the cell's catalog (models, options, parameter sets,
    protocols, limits), with every other kind's entry under ``"kinds"``."""
    return {**Cell().describe(), "kinds": described()}


def check_values(job) -> list[dict[str, str]]:
    return kind_of(job).check_values(job)


def simulate(job, compiled: Optional[bool] = None, segment=None):
    """A result dict, or (with ``segment``, for a study that ran out of its segment's time)
    a ``shared.engine.checkpoint.Checkpoint``."""
    if segment is None:
        return kind_of(job).simulate(job, compiled=compiled)
    return kind_of(job).simulate(job, compiled=compiled, segment=segment)

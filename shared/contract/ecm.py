"""An equivalent-circuit cell given as tables against state of charge (an HPPC fit).

Used with ``model.name = "Thevenin"`` (``pybamm.equivalent_circuit.Thevenin``) in place
of a parameter set.
"""

from __future__ import annotations

from shared.contract.limits import Strict


class EcmCell(Strict):
    """Placeholder: the tables' fields are defined with the equivalent-circuit kind."""

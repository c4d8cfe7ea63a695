"""The registered protocols. A job's ``protocol`` is one of these, told apart by ``type``.

To add a protocol: write one module here with a ``Protocol`` subclass (see
``base.py``) and add it to ``REGISTERED``. The job schema's union, the error
field names and the catalog's protocol list all derive from this tuple.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from shared.engine.protocols.ageing import Ageing
from shared.engine.protocols.base import Protocol
from shared.engine.protocols.constant_current import ConstantCurrent
from shared.engine.protocols.drive_cycle import DriveCycle
from shared.engine.protocols.experiment import Experiment
from shared.engine.protocols.impedance import Impedance

REGISTERED: tuple[type[Protocol], ...] = (ConstantCurrent, Experiment, DriveCycle, Ageing, Impedance)

TYPES: tuple[str, ...] = tuple(cls.model_fields["type"].annotation.__args__[0] for cls in REGISTERED)

# The job's ``protocol`` field: one of the registered classes, by its "type" tag.
AnyProtocol = Annotated[Union[REGISTERED], Field(discriminator="type")]

"""Segments of a long study and the checkpoint between them.

A study that would outlive one invocation runs in segments. ``Segment`` says how one
runs: from which checkpoint (``resume``, bytes), for how long (``budget_s``), and
whether it may end in a checkpoint at all (``may_continue``: false for the last
segment a job's limits allow; it then stops with the cycles it has, as a study
within one invocation does). A segment that runs out of time after a complete cycle
returns a ``Checkpoint`` instead of a result: the pickled, self-describing state the
next segment resumes from (the cycles' rows, the saved series, PyBaMM's last state),
its SHA-256, and the progress numbers the job store shows.

The engine only makes and reads checkpoints; where they are kept (the job store) and
how the next segment is started (a Pub/Sub message) is the worker's business.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from typing import Any, Optional

from shared.engine.errors import SimulationError

FORMAT = 1


class CheckpointError(SimulationError):
    """A checkpoint that cannot be used: corrupted, or made by another version."""


@dataclass
class Segment:
    resume: Optional[bytes] = None  # a checkpoint's ``data``; None: from the start
    budget_s: Optional[float] = None  # wall time of this segment; None: the job's budget
    may_continue: bool = True  # false: the last segment allowed (stop with the cycles it has)
    stop_reason: Optional[str] = None  # why it may not continue (a note in the result)
    progress_path: Optional[str] = None  # a file the engine appends each cycle's row to (JSON lines)


@dataclass
class Checkpoint:
    data: bytes  # pickle of the state (``pack``)
    sha256: str
    cycles_done: int
    cycles_planned: int
    latest_capacity_Ah: Optional[float]
    seconds_per_cycle: Optional[float]  # this segment's wall time per cycle
    wall_s: float  # the study's wall time so far, every segment

    def eta_s(self) -> Optional[float]:
        if self.seconds_per_cycle is None:
            return None
        return round(max(0, self.cycles_planned - self.cycles_done) * self.seconds_per_cycle, 1)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack(state: dict[str, Any]) -> tuple[bytes, str]:
    import pybamm

    data = pickle.dumps({"format": FORMAT, "pybamm": pybamm.__version__, **state},
                        protocol=pickle.HIGHEST_PROTOCOL)
    return data, digest(data)


def unpack(data: bytes, sha256: Optional[str] = None) -> dict[str, Any]:
    """The state of a checkpoint, verified against ``sha256`` when given. Checkpoints come
    only from this service's job store (never from a caller): the hash guards against
    a damaged or mixed-up checkpoint, not against a forged one."""
    import pybamm

    if sha256 is not None and digest(data) != sha256:
        raise CheckpointError("the stored checkpoint does not match its SHA-256 (damaged); the study "
                              "cannot resume from it")
    try:
        state = pickle.loads(data)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"the stored checkpoint cannot be read ({type(exc).__name__})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError("the stored checkpoint is of another format")
    if state.get("pybamm") != pybamm.__version__:
        raise CheckpointError(f"the checkpoint was made by PyBaMM {state.get('pybamm')}, this is "
                              f"{pybamm.__version__}: the study cannot resume from it")
    return state

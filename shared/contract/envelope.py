"""What travels in one Pub/Sub message: one job, its id and kind, and where its result goes."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict

from shared.contract.job import Job


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    job_id: str
    kind: Literal["cell", "driveCycle", "native"]
    submitted_at: str
    job: Job
    callback_url: Optional[str] = None  # requested by the caller; None = the Job Manager
    sweep: Optional[dict[str, Any]] = None
    # an ageing study continued across invocations: the segment this message starts (0: the
    # first; n: resume from the n-th checkpoint in the job store)
    continuation: int = 0

"""A battery pack: cells in series and in parallel."""

from __future__ import annotations

from pydantic import Field

from shared.contract.limits import Strict


class Pack(Strict):
    series: int = Field(default=1, ge=1, description="cells in series (Ns)")
    parallel: int = Field(default=1, ge=1, description="cells in parallel (Np)")

"""The service's published limits and the strict base of every job model.

No imports beyond pydantic: the contract, the protocols and the submit function
read these without loading PyBaMM.
"""

from __future__ import annotations

import math
import re
from typing import Optional

from pydantic import BaseModel, ConfigDict

# Service limits (also published by the catalog endpoint). Each holds for every
# protocol: simulated time (experiments stop at max_duration_s), output points (a
# requested period gives way to max_output_points, the result to outputs.max_points,
# and a note says so), currents (C-rates times the capacity, scaled drive cycles).
LIMITS = {
    "max_duration_s": 48 * 3600.0,
    "max_cycles": 500,
    "max_experiment_steps": 50,
    # inline time_s/current_A points: a request and its Pub/Sub message are at most
    # 256 KiB (settings.max_request_bytes, delivery.messages.MAX_MESSAGE_BYTES), and a
    # knot of full-precision floats ("172765.43308661732, -499.87654321098765") takes
    # ~41 bytes: 5,000 knots are ~205 KB, with room for the rest of the job
    "max_drive_cycle_points": 5_000,
    "max_drive_cycle_duration_s": 48 * 3600.0,
    "max_output_points": 20_000,
    "max_current_A": 500.0,
    "max_c_rate": 20.0,
    "max_sweep_members": 1000,
    # ageing studies (protocol "ageing"): cycles of one study (its limit instead of
    # max_duration_s: a study simulates months or years; the wall time is JOB_TIME_BUDGET_S),
    # and the cycles whose series it keeps (they share outputs.max_points)
    "max_ageing_cycles": 5_000,
    "max_saved_cycles": 500,
    # a study continued across invocations (segments of SEGMENT_BUDGET_S, a checkpoint
    # between them) ends, keeping its rows, after this many continuations or this much
    # wall time in all
    "max_continuations": 100,
    "max_study_wall_s": 24 * 3600.0,
    # equivalent-circuit cells (ecm_cell): SOC points of the tables, temperatures of the
    # 2-D ones and RC pairs; the largest (101 x 10 x (R0 + 3 pairs x 2 + entropic change))
    # is 8,080 numbers, ~170 kB, within a request and a Pub/Sub message
    "max_ecm_soc_points": 101,
    "max_ecm_temperatures": 10,
    "max_ecm_rc_pairs": 3,
    # packs of identical cells (job field "pack"): cells in series and in parallel
    "max_pack_series": 1000,
    "max_pack_parallel": 1000,
    # packs whose cells differ (equivalent-circuit cells, one PyBaMM model of them all)
    "max_pack_circuit_cells": 50,
    # impedance spectra (protocol "impedance"): frequencies of one job, and the states
    # of charge it may ask a spectrum at
    "min_impedance_frequency_Hz": 1e-4,
    "max_impedance_frequency_Hz": 1e6,
    "max_impedance_frequencies": 200,
    "max_impedance_socs": 11,
}

VOLTAGE_RANGE_V = (0.5, 5.5)


class Strict(BaseModel):
    """A part of a native job: unknown properties are refused."""

    model_config = ConfigDict(extra="forbid")


def finite(v: Optional[float], name: str) -> Optional[float]:
    if v is not None and not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number")
    return v


# Job ids: the caller's own (legacy "id", native "id") or a new uuid. The same rule for
# both: they travel in headers, URLs and store keys.
JOB_ID_RULE = r"^[A-Za-z0-9._:-]{1,128}$"
_JOB_ID = re.compile(JOB_ID_RULE)


def job_id_error(job_id) -> Optional[str]:
    """Why a caller's job id is not acceptable (None if it is)."""
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        return "must be 1-128 characters of A-Z a-z 0-9 . _ : -"
    if set(job_id) == {"."} or (job_id.startswith("__") and job_id.endswith("__")):
        return "must not be only dots or start and end with __"
    return None

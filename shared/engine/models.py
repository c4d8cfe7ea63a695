"""The physics-based lithium-ion models a job may name (``model.name``)."""

from __future__ import annotations

import os

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import pybamm  # noqa: E402

MODELS = {
    "SPM": pybamm.lithium_ion.SPM,
    "SPMe": pybamm.lithium_ion.SPMe,
    "DFN": pybamm.lithium_ion.DFN,
}


def model_options(job) -> dict[str, str]:
    """A job's model options in a fixed order (they are part of cache keys)."""
    return dict(sorted(job.model.options.items()))

"""The physics-based cell over time (lithium-ion SPM, SPMe, DFN and the sodium-ion DFN),
under one protocol: plan, build, solve and summarise (``simulate``), checked by the
catalog."""

from __future__ import annotations

from shared.engine.kind import Kind


class Cell(Kind):
    """A physics-based cell (lithium-ion SPM, SPMe, DFN; sodium-ion BasicDFN) over time,
    under one protocol."""

    name = "cell"
    MODEL_NAMES = ("SPM", "SPMe", "DFN", "sodium_ion.BasicDFN")

    def accepts(self, job) -> bool:
        return job.model.name in self.MODEL_NAMES

    def check(self, job):
        from shared.engine import catalog

        return catalog.check(job)

    def check_values(self, job):
        from shared.engine import catalog

        return catalog.check_values(job)

    def simulate(self, job, compiled=None, segment=None):
        from shared.engine import simulate

        return simulate.simulate(job, compiled=compiled, segment=segment)

    def describe(self):
        from shared.engine import catalog

        return catalog.catalog()

"""Precompiled solver functions: built by ``python -m shared.precompiled``, used
only for the configurations its manifest lists, and giving the same answer as
CasADi's interpreter.

The build really runs gcc; each check runs in a fresh interpreter with its own
``PYBAMM_CASADI_AOT_CACHE`` so nothing leaks between tests or into ``aot/``.
"""

import json
import os
import subprocess
import sys

import pytest

from shared import precompiled
from shared.settings import REPO_ROOT

SPM = "native SPM constant current"

RUN_JOBS = r"""
import json, sys
from shared import simulation
from shared.schema import Job
out = {}
for name in sys.argv[1:]:
    job = Job.model_validate({"model": {"name": name},
                              "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 600}})
    r = simulation.simulate(job)
    out[name] = {"compiled": r["timings"]["compiled"], "v": r["columns"]["Voltage [V]"]}
print(json.dumps(out))
"""


def _python(args, aot_dir, solver_compile="auto", timeout=300):
    env = dict(os.environ, PYBAMM_CASADI_AOT_CACHE=str(aot_dir), SOLVER_COMPILE=solver_compile,
               PYBAMM_DISABLE_TELEMETRY="true")
    proc = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def spm_aot(tmp_path_factory):
    """An AOT directory holding the SPM constant-current configuration only."""
    aot = tmp_path_factory.mktemp("aot")
    _python(["-m", "shared.precompiled", "--only", SPM], aot)
    return aot


def test_build_writes_a_manifest_for_this_install(spm_aot):
    manifest = json.loads((spm_aot / "manifest.json").read_text())
    assert manifest["versions"] == precompiled._versions()
    assert list(manifest["configurations"].values()) == [[SPM]]
    assert "-march=native" not in manifest["flags"]
    assert list(spm_aot.glob("*.so")), "no compiled library was written"


def test_only_listed_configurations_run_compiled_and_agree_with_the_interpreter(spm_aot):
    auto = json.loads(_python(["-c", RUN_JOBS, "SPM", "SPMe"], spm_aot).splitlines()[-1])
    never = json.loads(_python(["-c", RUN_JOBS, "SPM"], spm_aot, solver_compile="never").splitlines()[-1])
    assert auto["SPM"]["compiled"] is True
    assert auto["SPMe"]["compiled"] is False  # not in the manifest
    assert never["SPM"]["compiled"] is False
    diff = max(abs(a - b) for a, b in zip(auto["SPM"]["v"], never["SPM"]["v"]))
    assert len(auto["SPM"]["v"]) == len(never["SPM"]["v"]) and diff < 1e-6


def test_a_manifest_from_another_pybamm_version_is_ignored(tmp_path, monkeypatch):
    versions = dict(precompiled._versions(), pybamm="0.0.1")
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"versions": versions, "configurations": {"abc": ["x"]}}))
    monkeypatch.setattr(precompiled, "AOT_DIR", tmp_path)
    monkeypatch.setenv("SOLVER_COMPILE", "auto")
    precompiled._listed.cache_clear()
    try:
        assert precompiled.use_compiled("abc") is False
        (tmp_path / "manifest.json").write_text(json.dumps(
            {"versions": precompiled._versions(), "configurations": {"abc": ["x"]}}))
        precompiled._listed.cache_clear()
        assert precompiled.use_compiled("abc") is True  # positive control
    finally:
        precompiled._listed.cache_clear()


def test_solver_compile_setting_is_checked(monkeypatch):
    monkeypatch.setenv("SOLVER_COMPILE", "sometimes")
    with pytest.raises(ValueError, match="auto, always, never"):
        precompiled.mode()
    monkeypatch.setenv("SOLVER_COMPILE", "never")
    assert precompiled.use_compiled("anything") is False

"""Precompiled solver functions: built by ``python -m shared.engine.build_precompiled`` with
portable flags, loaded (never compiled) on a worker for the configurations the
manifest lists, and giving the same answer as CasADi's interpreter.

The build really runs gcc; every check runs in a fresh interpreter with its own
``AOT_DIR`` so nothing leaks between tests or into ``aot/``. Runs that must not
compile put a ``gcc`` first on PATH that records each call and fails.
"""

import json
import os
import subprocess
import sys

import pytest

from shared.engine import precompiled
from shared.settings import REPO_ROOT, get_settings

SPM = "native SPM constant current"

RUN_JOBS = r"""
import json, sys
from shared.engine import simulate as simulation
from shared.contract.job import Job
out = {}
for name in sys.argv[1:]:
    job = Job.model_validate({"model": {"name": name},
                              "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 600}})
    r = simulation.simulate(job)
    out[name] = {"compiled": r["timings"]["compiled"], "v": r["columns"]["Voltage [V]"]}
print(json.dumps(out))
"""


def _python(args, aot_dir, solver_compile="auto", timeout=300, path_first=None, **extra_env):
    env = dict(os.environ, AOT_DIR=str(aot_dir), SOLVER_COMPILE=solver_compile, PYBAMM_DISABLE_TELEMETRY="true",
               **extra_env)
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env['PATH']}"
    proc = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def spm_aot(tmp_path_factory):
    """An AOT directory holding the SPM constant-current configuration only."""
    aot = tmp_path_factory.mktemp("aot")
    _python(["-m", "shared.engine.build_precompiled", "--only", SPM], aot)
    return aot


@pytest.fixture
def no_gcc(tmp_path):
    """A directory whose ``gcc`` records its arguments in ``calls.log`` and fails."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    gcc = bin_dir / "gcc"
    gcc.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexit 1\n')
    gcc.chmod(0o755)
    return bin_dir, log


def _snapshot(directory):
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


def test_build_writes_a_manifest_and_portable_libraries(spm_aot):
    manifest = json.loads((spm_aot / "manifest.json").read_text())
    assert manifest["versions"] == precompiled._versions()
    [conf] = manifest["configurations"].values()
    assert conf["labels"] == [SPM]
    libraries = [spm_aot / name for name in conf["libraries"]]
    assert libraries and all(p.is_file() for p in libraries)
    for lib in libraries:  # x86-64-v2: no AVX registers, whatever the build machine has
        asm = subprocess.run(["objdump", "-d", str(lib)], capture_output=True, text=True, check=True).stdout
        assert "ret" in asm and "ymm" not in asm and "zmm" not in asm


def test_listed_configurations_load_without_compiling_and_agree_with_the_interpreter(spm_aot, no_gcc):
    bin_dir, gcc_log = no_gcc
    before = _snapshot(spm_aot)
    auto = json.loads(_python(["-c", RUN_JOBS, "SPM", "SPMe"], spm_aot, path_first=bin_dir).splitlines()[-1])
    never = json.loads(_python(["-c", RUN_JOBS, "SPM"], spm_aot, solver_compile="never").splitlines()[-1])
    assert auto["SPM"]["compiled"] is True
    assert auto["SPMe"]["compiled"] is False  # not in the manifest
    assert never["SPM"]["compiled"] is False
    assert not gcc_log.exists(), gcc_log.read_text()  # nothing compiled on the "worker"
    assert _snapshot(spm_aot) == before
    diff = max(abs(a - b) for a, b in zip(auto["SPM"]["v"], never["SPM"]["v"]))
    assert len(auto["SPM"]["v"]) == len(never["SPM"]["v"]) and diff < 1e-6


def test_a_listed_configuration_whose_library_is_missing_runs_interpreted(spm_aot, tmp_path, no_gcc):
    bin_dir, gcc_log = no_gcc
    broken = tmp_path / "aot"
    broken.mkdir()
    (broken / "manifest.json").write_text((spm_aot / "manifest.json").read_text())  # no libraries
    out = json.loads(_python(["-c", RUN_JOBS, "SPM"], broken, path_first=bin_dir).splitlines()[-1])
    assert out["SPM"]["compiled"] is False
    assert not gcc_log.exists(), gcc_log.read_text()
    assert sorted(p.name for p in broken.iterdir()) == ["manifest.json"]


def test_always_compiles_at_run_time_and_falls_back_when_gcc_fails(tmp_path, no_gcc):
    """Positive control for the two tests above: the recording gcc does intercept compiles."""
    bin_dir, gcc_log = no_gcc
    out = json.loads(_python(["-c", RUN_JOBS, "SPM"], tmp_path / "empty-aot", solver_compile="always",
                             path_first=bin_dir, PYBAMM_CASADI_AOT_CACHE=str(tmp_path / "pybamm-cache"))
                     .splitlines()[-1])
    assert gcc_log.exists() and "-march=native" in gcc_log.read_text()  # PyBaMM's own flags
    assert out["SPM"]["compiled"] is False  # and the job still ran, interpreted


def test_a_manifest_from_another_pybamm_version_is_ignored(tmp_path):
    ask = "from shared.engine import precompiled; print(precompiled.use_compiled('abc'))"
    versions = dict(precompiled._versions(), pybamm="0.0.1")
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"versions": versions, "configurations": {"abc": {"labels": ["x"], "libraries": []}}}))
    assert _python(["-c", ask], tmp_path).split()[-1] == "False"
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"versions": precompiled._versions(), "configurations": {"abc": {"labels": ["x"], "libraries": []}}}))
    assert _python(["-c", ask], tmp_path).split()[-1] == "True"  # positive control


def test_solver_compile_setting_is_checked(monkeypatch):
    get_settings.cache_clear()
    monkeypatch.setenv("SOLVER_COMPILE", "sometimes")
    with pytest.raises(ValueError, match="auto, always, never"):
        precompiled.mode()
    monkeypatch.setenv("SOLVER_COMPILE", "never")
    get_settings.cache_clear()
    try:
        assert precompiled.use_compiled("anything") is False
    finally:
        monkeypatch.delenv("SOLVER_COMPILE")
        get_settings.cache_clear()


def test_a_bad_solver_compile_stops_the_functions_at_start_up():
    env = dict(os.environ, SOLVER_COMPILE="sometimes")
    proc = subprocess.run([sys.executable, "-c", "import main"], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0 and "SOLVER_COMPILE must be one of auto, always, never" in proc.stderr
    ok = subprocess.run([sys.executable, "-c", "import main"], cwd=REPO_ROOT, capture_output=True, text=True,
                        timeout=120, env=dict(os.environ, SOLVER_COMPILE="never"))
    assert ok.returncode == 0, ok.stderr[-2000:]  # positive control

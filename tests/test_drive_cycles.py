"""drive_cycles/registry.json and shared.engine.drive_cycles: hashes, lookup, ``check``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
from tests.conftest import REPO

from shared.engine import drive_cycles
from shared.settings import get_settings

REGISTRY_JSON = REPO / "drive_cycles" / "registry.json"
KIT_US06 = REPO.parent / "shared" / "data" / "drive_cycles" / "US06.csv"
# Cloud Build has no kit beside the checkout; there fetch-drive-cycles has placed
# US06.csv in drive_cycles/ (downloaded by PyBaMM's DataLoader, which checks its own hash).
US06 = next((p for p in (KIT_US06, REPO / "drive_cycles" / "US06.csv") if p.is_file()), KIT_US06)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def only(monkeypatch, tmp_path):
    """Point every drive-cycle folder at empty temporary folders; returns DRIVE_CYCLES_DIR."""
    cycles, cache = tmp_path / "drive_cycles", tmp_path / "pybamm-cache"
    cycles.mkdir()
    cache.mkdir()
    monkeypatch.setenv("DRIVE_CYCLES_DIR", str(cycles))
    monkeypatch.setenv("DRIVE_CYCLE_PATH", "")
    monkeypatch.setenv("PYBAMM_DATA_CACHE", str(cache))
    get_settings.cache_clear()
    yield cycles
    get_settings.cache_clear()


def test_registry_json_is_the_registry_and_its_us06_hash_matches_the_kit():
    assert US06.is_file(), f"no US06.csv to check against ({KIT_US06} or drive_cycles/)"
    entries = json.loads(REGISTRY_JSON.read_text())
    assert drive_cycles.REGISTRY == {name: e["sha256"] for name, e in entries.items()}
    assert set(entries) == {"US06", "UDDS", "WLTC", "car_current"}
    for name, entry in entries.items():
        assert entry["file"] == f"{name}.csv"
        assert "pybamm-data v1.0.2" in entry["source"] and entry["description"]
    assert entries["US06"]["sha256"] == sha256(US06)


def test_registry_json_agrees_with_pybamms_data_loader():
    # fetch downloads with the installed PyBaMM's DataLoader; its registry (offline:
    # no download happens here) must record the same release and hashes.
    import pybamm

    loader = pybamm.DataLoader()
    assert loader.version == "v1.0.2"
    for name, digest in drive_cycles.REGISTRY.items():
        assert loader.files[f"{name}.csv"] == f"sha256:{digest}", name


def test_registry_is_read_from_the_repository_folder_not_drive_cycles_dir(only):
    assert drive_cycles.REGISTRY_FILE == REGISTRY_JSON
    assert get_settings().drive_cycles_dir == only != REGISTRY_JSON.parent


def test_a_file_with_the_wrong_hash_is_not_found(only):
    (only / "US06.csv").write_bytes(US06.read_bytes() + b"0,0\n")
    (only / "sub").mkdir()
    shutil.copyfile(only / "US06.csv", only / "sub" / "US06.csv")
    assert drive_cycles.find("US06") is None
    assert "US06" not in drive_cycles.available()
    with pytest.raises(drive_cycles.DriveCycleError, match="not installed"):
        drive_cycles.load.__wrapped__("US06")
    # positive control: the unaltered file in a subfolder is found
    shutil.copyfile(US06, only / "sub" / "US06.csv")
    assert drive_cycles.find("US06") == only / "sub" / "US06.csv"


def test_unknown_names_are_refused():
    with pytest.raises(drive_cycles.DriveCycleError, match="unknown drive cycle"):
        drive_cycles.find("nope")
    with pytest.raises(SystemExit) as exc:
        drive_cycles.main(["check", "--require", "nope"])
    assert exc.value.code == 2


def test_check_exits_1_when_a_registered_cycle_is_missing(only, capsys):
    assert drive_cycles.main(["check"]) == 1
    assert drive_cycles.main(["check", "--require", "US06"]) == 1
    out, err = capsys.readouterr()
    assert "US06" in out and "not installed" in out and "missing: US06" in err


def test_check_exits_1_in_a_real_interpreter_when_cycles_are_missing(tmp_path):
    env = dict(os.environ, DRIVE_CYCLES_DIR=str(tmp_path), DRIVE_CYCLE_PATH="",
               PYBAMM_DATA_CACHE=str(tmp_path), PYBAMM_DISABLE_TELEMETRY="true")
    result = subprocess.run([sys.executable, "-m", "shared.engine.drive_cycles", "check"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result
    assert "missing: UDDS US06 WLTC car_current" in result.stderr
    # positive control: the same interpreter exits 0 when what it is asked for is there
    shutil.copyfile(US06, tmp_path / "US06.csv")
    result = subprocess.run([sys.executable, "-m", "shared.engine.drive_cycles", "check",
                             "--require", "US06"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result


def test_check_exits_0_when_every_cycle_it_checks_is_present(only, monkeypatch):
    shutil.copyfile(US06, only / "US06.csv")
    assert drive_cycles.main(["check", "--require", "US06"]) == 0
    # others still missing: a check of every registered cycle fails ...
    assert drive_cycles.main(["check"]) == 1
    # ... and passes when every registered cycle is installed
    monkeypatch.setattr(drive_cycles, "REGISTRY", {"US06": drive_cycles.REGISTRY["US06"]})
    assert drive_cycles.main(["check"]) == 0

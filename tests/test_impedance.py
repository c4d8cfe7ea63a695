"""Impedance spectra (protocol "impedance"): against a direct ``pybamm.EISSimulation`` of
the same case, the frequency range and limits, the 400s, the model cache, the CLI's
Nyquist and Bode plots, and (slow) one job and one sweep through the real local stack."""

from __future__ import annotations

import csv
import io
import json
import time

import numpy as np
import pybamm
import pytest
import requests
from pydantic import ValidationError

from shared.contract.job import Job
from shared.contract.limits import LIMITS
from shared.engine import cache, impedance, kinds
from shared.engine.protocols.impedance import FrequencyRange
from shared.settings import get_settings
from tests.test_submit_function import call, fields_of, published  # noqa: F401 - published is a fixture

PNG = b"\x89PNG\r\n\x1a\n"
RANGE = {"min_Hz": 1e-3, "max_Hz": 1e4, "points_per_decade": 5}


def job(**kw) -> Job:
    body = {"model": {"name": "SPMe"}, "parameter_set": "Chen2020",
            "protocol": {"type": "impedance", "frequency_range": RANGE}}
    body.update(kw)
    return Job.model_validate(body)


def direct(model_name: str, frequencies, soc, temperature_C=None, overrides=None, set_name="Chen2020"):
    """PyBaMM alone: EISSimulation of the model with 'surface form': 'differential'."""
    pv = pybamm.ParameterValues(set_name)
    pv.update(dict(overrides or {}))
    if temperature_C is not None:
        pv.update({"Ambient temperature [K]": temperature_C + 273.15, "Initial temperature [K]": temperature_C + 273.15})
    model = getattr(pybamm.lithium_ion, model_name)(options={"surface form": "differential"})
    return np.asarray(pybamm.EISSimulation(model, parameter_values=pv).solve(frequencies, initial_soc=soc)
                      ["Impedance [Ohm]"], dtype=complex)


def spectrum(result, soc):
    cols = result["columns"]
    rows = [k for k, s in enumerate(cols["State of charge"]) if s == soc]
    pick = {name: np.asarray([cols[name][k] for k in rows]) for name in cols if name != "State of charge"}
    return pick


def assert_close(got, expected):
    """Within 0.1 % in magnitude and 0.1 degree in phase at every frequency."""
    z = got["Z_re [Ohm]"] + 1j * got["Z_im [Ohm]"]
    assert z.shape == expected.shape
    assert np.max(np.abs(np.abs(z) / np.abs(expected) - 1)) < 1e-3
    assert np.max(np.abs(np.degrees(np.angle(z) - np.angle(expected)))) < 0.1
    # the reported magnitude and phase are those of the reported Z
    assert np.allclose(got["|Z| [Ohm]"], np.abs(z), rtol=1e-12)
    assert np.allclose(got["Phase [deg]"], np.degrees(np.angle(z)), atol=1e-9)


# --------------------------------------------------------------------------
# Against PyBaMM
# --------------------------------------------------------------------------
def test_spme_chen2020_matches_a_direct_eis_simulation():
    """SPMe, Chen2020, SOC 0.5, 10 degC, 1 mHz-10 kHz: |Z| within 0.1 % and phase within
    0.1 degree of pybamm.EISSimulation at every frequency; a capacitive arc has Z_im < 0."""
    j = job(conditions={"initial_soc": 0.5, "ambient_temperature_C": 10})
    result = kinds.simulate(j)
    f = j.protocol.frequencies()
    got = spectrum(result, 0.5)
    assert np.allclose(got["Frequency [Hz]"], f)
    assert_close(got, direct("SPMe", f, 0.5, temperature_C=10))
    assert np.all(got["Z_im [Ohm]"] < 0) and np.all(got["Z_re [Ohm]"] > 0)  # PyBaMM's sign convention
    assert result["completed"] is True and result["stoppedEarly"] is False
    assert result["termination"] == impedance.TERMINATION
    assert any("Z_im < 0" in note for note in result["notes"])
    assert result["summary"]["States of charge"] == [0.5] and result["summary"]["Frequencies"] == len(f) == 36
    assert result["summary"]["Ambient temperature [degC]"] == pytest.approx(10)


def test_dfn_at_several_socs_with_an_override_matches_direct_eis_simulations():
    """DFN, Chen2020 with a thinner separator, SOCs 0.2 and 0.9, 0.1 mHz-1 MHz (the
    published range): each spectrum within 0.1 % and 0.1 degree of its direct solve."""
    over = {"Separator thickness [m]": 2e-5}
    j = job(model={"name": "DFN"}, parameters=over,
            protocol={"type": "impedance", "frequency_range": {"min_Hz": 1e-4, "max_Hz": 1e6, "points": 25},
                      "socs": [0.2, 0.9]})
    result = kinds.simulate(j)
    f = j.protocol.frequencies()
    for soc in (0.2, 0.9):
        assert_close(spectrum(result, soc), direct("DFN", f, soc, overrides=over))
    assert result["summary"]["States of charge"] == [0.2, 0.9]
    low = result["summary"]["|Z| at the minimum frequency [Ohm]"]
    assert low[0] != pytest.approx(low[1], rel=1e-3)  # the two SOCs really are two states


def test_without_a_soc_the_sets_own_state_is_used_and_reported():
    """No SOC asked: PyBaMM's set-up from the set's initial concentrations (a direct EIS
    simulation without initial_soc), within 0.1 % / 0.1 degree; the SOC reported is the set's."""
    j = job(model={"name": "SPM"}, protocol={"type": "impedance", "frequencies_Hz": [0.01, 1, 100]})
    result = kinds.simulate(j)
    soc = result["summary"]["Initial state of charge"]
    assert 0.9 < soc <= 1.0
    assert_close(spectrum(result, soc), direct("SPM", [0.01, 1, 100], None))
    # no temperature asked either: the set's own ambient temperature is reported
    chen = pybamm.ParameterValues("Chen2020")["Ambient temperature [K]"] - 273.15
    assert result["summary"]["Ambient temperature [degC]"] == pytest.approx(chen)


def test_a_second_job_with_new_numbers_reuses_the_built_simulation():
    """Same configuration, another SOC and temperature: a cache hit, equal to a direct solve
    (0.1 % / 0.1 degree), and much faster than the cold run."""
    cache.MODELS.clear()
    cold = kinds.simulate(job(conditions={"initial_soc": 0.3}))
    t0 = time.perf_counter()
    warm = kinds.simulate(job(conditions={"initial_soc": 0.8, "ambient_temperature_C": 40}))
    warm_s = time.perf_counter() - t0
    assert cold["timings"]["cache"] == "miss" and warm["timings"]["cache"] == "hit"
    assert warm_s < cold["timings"]["total_s"]
    f = job().protocol.frequencies()
    assert_close(spectrum(warm, 0.8), direct("SPMe", f, 0.8, temperature_C=40))


# --------------------------------------------------------------------------
# Frequencies and limits
# --------------------------------------------------------------------------
def test_points_per_decade_spans_the_range_with_both_ends():
    f = FrequencyRange(**RANGE).values()
    assert len(f) == 36 and f[0] == 1e-3 and f[-1] == 1e4
    assert np.allclose(np.diff(np.log10(f)), 0.2)
    g = FrequencyRange(min_Hz=1e-3, max_Hz=5e3, points_per_decade=2).values()
    assert g[0] == 1e-3 and g[-1] == 5e3 and len(g) == 15  # 1 mHz ... 3.16 kHz, then 5 kHz
    assert np.allclose(np.diff(np.log10(g[:-1])), 0.5)
    h = FrequencyRange(min_Hz=1, max_Hz=1e3, points=4).values()
    assert np.allclose(h, [1, 10, 100, 1000])
    assert FrequencyRange(min_Hz=50, max_Hz=50, points=3).values() == [50.0]
    assert FrequencyRange(min_Hz=50, max_Hz=50, points=1).values() == [50.0]


@pytest.mark.parametrize("protocol, text", [
    ({"frequency_range": {"min_Hz": 1e-4, "max_Hz": 1e6, "points_per_decade": 25}}, "251 frequencies; the limit is 200"),
    ({"frequency_range": {"min_Hz": 1e-5, "max_Hz": 1, "points": 5}}, "greater than or equal to 0.0001"),
    ({"frequency_range": {"min_Hz": 10, "max_Hz": 1, "points": 5}}, "max_Hz must be at least min_Hz"),
    ({"frequency_range": {"min_Hz": 1, "max_Hz": 10}}, "exactly one of points or points_per_decade"),
    # one point over a range used to drop max_Hz silently
    ({"frequency_range": {"min_Hz": 1e-3, "max_Hz": 1e3, "points": 1}}, "points = 1 leaves max_Hz out"),
    ({"frequencies_Hz": [1, 2e6]}, "2000000.0 Hz is outside [0.0001, 1e+06] Hz"),
    ({"frequencies_Hz": [1.0] * 201}, "at most 200 items"),
    ({}, "exactly one of frequencies_Hz or frequency_range"),
    ({"frequencies_Hz": [1], "socs": [0.5, 1.2]}, "1.2 is outside [0, 1]"),
    ({"frequencies_Hz": [1], "socs": [0.5] * 12}, "at most 11 items"),
])
def test_frequencies_and_socs_outside_the_published_limits_are_refused(protocol, text):
    with pytest.raises(ValidationError) as info:
        Job.model_validate({"model": {"name": "SPM"}, "protocol": {"type": "impedance", **protocol}})
    assert text in str(info.value)
    assert LIMITS["max_impedance_frequencies"] == 200 and LIMITS["max_impedance_socs"] == 11


# --------------------------------------------------------------------------
# 400s from the submit function (in process), nothing published
# --------------------------------------------------------------------------
IMPEDANCE = {"model": {"name": "SPM"}, "protocol": {"type": "impedance", "frequencies_Hz": [1, 10]}}


@pytest.fixture
def no_api_key(monkeypatch):
    """The submit function in process, without an API key to ask for."""
    monkeypatch.delenv("API_KEY", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize("change, field, text", [
    ({"model": {"name": "Thevenin"}, "parameter_set": "ECM_Example"}, "model.name", "'Thevenin'"),
    ({"model": {"name": "sodium_ion.BasicDFN"}, "parameter_set": "Chayambuka2022"}, "model.name", "sodium-ion"),
    ({"model": {"name": "SPM", "options": {"surface form": "algebraic"}}}, "model.options.surface form",
     "'algebraic' conflicts"),
    ({"conditions": {"initial_soc": 0.5},
      "protocol": {"type": "impedance", "frequencies_Hz": [1], "socs": [0.2]}}, "protocol.socs", "not both"),
    ({"outputs": {"variables": ["Voltage [V]"]}}, "outputs", "fixed columns"),
    ({"pack": {"series": 2, "parallel": 1}}, "pack", "leave pack out"),
    ({"protocol": {"type": "impedance", "frequencies_Hz": [1e7]}}, "protocol.frequencies_Hz", "outside [0.0001, 1e+06] Hz"),
    ({"protocol": {"type": "impedance", "frequency_range": {"min_Hz": 1e-3, "max_Hz": 1e5, "points_per_decade": 40}}},
     "protocol.frequency_range", "the limit is 200"),
    ({"model": {"name": "SPM", "options": {"thermal": "warm"}}}, "model.options", "thermal"),
    ({"parameters": {"Separator porosity": 1.5}}, "parameters.Separator porosity", "1.5"),
    ({"parameters": {"No such parameter [V]": 1.0}}, "parameters.No such parameter [V]", "not a parameter"),
])
def test_an_impedance_job_pybamm_cannot_run_is_a_400_naming_the_field(no_api_key, published, change, field,
                                                                    text):
    status, reply, _ = call("POST", "/jobs", {**IMPEDANCE, **change})
    assert status == 400, reply
    assert field in fields_of(reply), reply
    assert any(text in e["error"] for e in reply["errors"] if e["field"] == field), reply
    assert published.envelopes == []


def test_a_valid_impedance_job_passes_the_checks_and_the_catalog_lists_the_kind():
    assert kinds.check(Job.model_validate(IMPEDANCE)) == []
    assert kinds.check(Job.model_validate({**IMPEDANCE, "model": {"name": "DFN", "options": {
        "surface form": "differential", "thermal": "lumped"}}})) == []
    entry = kinds.described()["impedance"]
    assert entry["models"] == ["SPM", "SPMe", "DFN"] and "Z_im < 0" in entry["sign_convention"]
    assert entry["limits"]["max_impedance_frequencies"] == LIMITS["max_impedance_frequencies"]
    from shared.engine import protocols

    assert "impedance" in protocols.TYPES


# --------------------------------------------------------------------------
# CLI: Nyquist and Bode plots, CSV rows
# --------------------------------------------------------------------------
def test_the_cli_draws_nyquist_and_bode_plots_and_writes_every_row(tmp_path, capsys):
    from cli.impedance_plots import plot_impedance, spectra
    from cli.main import report

    result = kinds.simulate(job(protocol={"type": "impedance", "frequency_range": RANGE, "socs": [0.3, 0.7]}))
    body = {"id": "eis-1", "status": "succeeded", **result}
    assert [soc for soc, _ in spectra(body)] == [0.3, 0.7]
    assert report([body], tmp_path, no_plot=False, title="job eis-1") == 0
    out = capsys.readouterr().out
    assert "nyquist.png" in out and "bode.png" in out and "no plot" not in out
    for name in ("nyquist.png", "bode.png"):
        png = (tmp_path / name).read_bytes()
        assert png[:8] == PNG and len(png) > 20_000
    assert not (tmp_path / "plot.png").exists()  # no time series to draw
    rows = list(csv.reader((tmp_path / "results.csv").open()))
    assert rows[0][2:] == list(impedance.COLUMNS) and len(rows) == 1 + 2 * 36
    # nothing drawn for a failed job
    assert plot_impedance([("bad", {"status": "failed", "result": []})], tmp_path / "none") is None
    assert not (tmp_path / "none").exists()


# --------------------------------------------------------------------------
# Through the real local stack (slow)
# --------------------------------------------------------------------------
@pytest.mark.slow
def test_an_impedance_job_runs_end_to_end_and_its_csv_has_every_row(stack, receiver):
    """Submit -> Pub/Sub -> worker -> store -> callback: the spectrum equals a direct
    EISSimulation within 0.1 % / 0.1 degree; GET /jobs/<id>/result?format=csv has one row
    per frequency and state of charge."""
    body = {"model": {"name": "SPMe"}, "protocol": {"type": "impedance", "frequency_range": RANGE,
                                                     "socs": [0.4, 0.6]}}
    reply = requests.post(stack.submit_url + "/jobs", json=body, timeout=60)
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["jobId"]
    result = receiver.wait_for([job_id], 120)[job_id]
    assert result["status"] == "succeeded", result
    f = Job.model_validate(body).protocol.frequencies()
    for soc in (0.4, 0.6):
        assert_close(spectrum(result, soc), direct("SPMe", f, soc))
    text = requests.get(f"{stack.submit_url}/jobs/{job_id}/result", params={"format": "csv"}, timeout=30).text
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(impedance.COLUMNS) and len(rows) == 1 + 2 * len(f)
    view = requests.get(f"{stack.submit_url}/jobs/{job_id}", timeout=30).json()
    assert view["summary"]["States of charge"] == [0.4, 0.6] and view["termination"] == impedance.TERMINATION


@pytest.mark.slow
def test_an_impedance_sweep_over_temperature_fans_out(stack, receiver):
    """A sweep over conditions.ambient_temperature_C: each member succeeds, and the colder
    cell has the larger low-frequency impedance (slower kinetics and diffusion)."""
    body = {"base": {"model": {"name": "SPM"}, "conditions": {"initial_soc": 0.5},
                     "protocol": {"type": "impedance", "frequencies_Hz": [1e-3, 1, 1e3]}},
            "vary": {"conditions.ambient_temperature_C": [0, 40]}}
    reply = requests.post(stack.submit_url + "/sweeps", data=json.dumps(body), timeout=60,
                          headers={"Content-Type": "application/json"})
    assert reply.status_code == 202, reply.text
    sweep = reply.json()
    results = receiver.wait_for(sweep["jobIds"], timeout_s=120)
    by_index = {r["sweep"]["index"]: r for r in results.values()}
    assert sorted(by_index) == [0, 1] and all(r["status"] == "succeeded" for r in by_index.values())
    cold, warm = (by_index[k]["summary"]["|Z| at the minimum frequency [Ohm]"][0] for k in (0, 1))
    assert cold > warm
    for k, temperature in ((0, 0), (1, 40)):
        assert_close(spectrum(by_index[k], 0.5), direct("SPM", [1e-3, 1, 1e3], 0.5, temperature_C=temperature))

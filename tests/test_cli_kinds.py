"""battery-sim serves every kind of job: the results table shows each kind's own figures,
``report`` draws each kind's plots (and nothing for a failed job), ``catalog`` prints
what the service offers, and every example job file is a valid job of its kind.

The results are made by the real engine in process (``shared.engine.kinds.simulate``)
and put in a callback body by the worker's own ``callback.body_for``: what the CLI gets
from a callback or from ``GET /jobs/<id>/result``. Small cases: the file runs in about
12 s here (its two slow tests, through the local stack, about 15 s more)."""

from __future__ import annotations

import json
import struct

import pytest

from cli import output
from cli.main import main, report
from cli.plots import cell_names
from shared.contract import sweeps
from shared.contract.envelope import Envelope
from shared.contract.job import Job
from shared.delivery.callback import body_for
from shared.engine import kinds
from tests.conftest import REPO

PNG = b"\x89PNG\r\n\x1a\n"
EXAMPLES = REPO / "examples"
JOB_FILES = sorted(p for p in EXAMPLES.glob("*.json") if p.name != "lgm50_like_bpx.json")  # that one is a BPX cell

CASES = {
    "ecm": {"model": {"name": "Thevenin"}, "protocol": {"type": "constant_current", "current_A": 50, "duration_s": 600},
            "conditions": {"initial_soc": 0.8}},
    "ecm_cell": {"model": {"name": "Thevenin", "options": {"number of rc elements": 1}},
                 "ecm_cell": {"capacity_Ah": 5.0, "soc": [0.0, 0.5, 1.0], "ocv_V": [3.0, 3.6, 4.2],
                              "r0_Ohm": [0.03, 0.025, 0.028],
                              "rc_pairs": [{"r_Ohm": [0.012, 0.01, 0.011], "c_F": [1500, 2000, 1800]}]},
                 "protocol": {"type": "experiment", "period_s": 10,
                              "steps": ["Discharge at 1C for 10 minutes", "Rest for 5 minutes"]},
                 "conditions": {"initial_soc": 0.9}},
    "sodium": {"model": {"name": "sodium_ion.BasicDFN"}, "parameter_set": "Chayambuka2022",
               "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 600}},
    "impedance": {"model": {"name": "SPM"}, "parameter_set": "Chen2020",
                  "protocol": {"type": "impedance", "socs": [0.3, 0.8],
                               "frequency_range": {"min_Hz": 0.01, "max_Hz": 1000, "points": 11}}},
    "pack": {"model": {"name": "SPM"}, "parameter_set": "Chen2020", "pack": {"series": 3, "parallel": 2},
             "protocol": {"type": "constant_current", "current_A": 10, "duration_s": 600}},
    "pack_circuit": {"model": {"name": "Thevenin"},
                     "pack": {"series": 2, "parallel": 2, "capacity_factors": [0.8, 1.0, 1.0, 1.0],
                              "resistance_factors": [1.0, 1.2, 1.0, 1.0], "interconnect_resistance_Ohm": 0.001},
                     "protocol": {"type": "constant_current", "current_A": 100, "duration_s": 600},
                     "conditions": {"initial_soc": 0.9}, "outputs": {"max_points": 61}},
    "ageing": {"model": {"name": "SPM", "options": {"SEI": "solvent-diffusion limited"}}, "parameter_set": "OKane2022",
               "protocol": {"type": "ageing", "cycles": 3, "end_of_life": {"capacity_percent": 99.995},
                            "steps": ["Discharge at 1C until 2.5 V", "Charge at 0.3C until 4.2 V",
                                      "Hold at 4.2 V until C/20"]}},
}


def envelope(name: str, job: Job, **kw) -> Envelope:
    return Envelope(job_id=f"{name}-1", kind="native", submitted_at="2026-01-01T00:00:00Z", job=job, **kw)


def callback_body(name: str) -> dict:
    """The callback body of the real engine's result for CASES[name] (JSON round trip, as sent)."""
    job = Job.model_validate(CASES[name])
    assert kinds.check(job) == []
    result = kinds.simulate(job)
    return json.loads(json.dumps(body_for(envelope(name, job), "s", "f", 1, result=result)))


@pytest.fixture(scope="module")
def bodies() -> dict[str, dict]:
    made = {name: callback_body(name) for name in CASES}
    assert all(b["status"] == "succeeded" for b in made.values()), {k: b.get("error") for k, b in made.items()}
    return made


def png_height(path) -> int:
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 10_000, path
    return struct.unpack(">I", data[20:24])[0]  # IHDR: width, height


def reported(body: dict, tmp_path, capsys) -> tuple[str, set[str]]:
    """(stdout of ``report``, the PNG files it wrote)."""
    assert report([body], tmp_path, no_plot=False, title=body["id"]) == 0
    out = capsys.readouterr().out
    pngs = {p.name for p in tmp_path.glob("*.png")}
    for name in pngs:
        png_height(tmp_path / name)
        assert name in out
    return out, pngs


def row_of(out: str, job_id: str) -> dict[str, str]:
    """The table row of ``job_id`` as {header: cell}, read back from the printed table."""
    lines = out.splitlines()
    head, rule = lines[0], lines[1]
    spans, start = [], 0
    for dashes in rule.split("  "):
        spans.append((start, start + len(dashes)))
        start += len(dashes) + 2
    line = next(x for x in lines if x.startswith(job_id + " "))
    return {head[a:b].strip(): line[a:b].strip() for a, b in spans}


f4 = output._cell  # the table's number format (4 significant figures)


# --------------------------------------------------------------------------
# Tables and plots, kind by kind
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ecm", "ecm_cell", "sodium"])
def test_equivalent_circuit_and_sodium_ion_results_read_as_cells(name, bodies, tmp_path, capsys):
    body = bodies[name]
    s = body["summary"]
    assert output.kind(body) == "cell"
    out, pngs = reported(body, tmp_path, capsys)
    row = row_of(out, body["id"])
    assert row["capacity [A.h]"] == f4(s["Discharged capacity [A.h]"])
    assert row["energy [W.h]"] == f4(s["Discharged energy [W.h]"])
    assert row["min V [V]"] == f4(s["Minimum voltage [V]"]) and row["max V [V]"] == f4(s["Maximum voltage [V]"])
    assert row["end [s]"] == f4(s["End time [s]"])
    if name != "sodium":  # PyBaMM's BasicDFN is isothermal and has no state of charge variable
        assert row["final SOC"] == f4(s["Final state of charge"]) and row["max T [degC]"] != "-"
    assert pngs == {"plot.png"}


def test_an_identical_cell_pack_shows_battery_figures_and_plots_battery_voltage(bodies, tmp_path, capsys):
    body = bodies["pack"]
    s = body["summary"]
    assert output.kind(body) == "pack"
    out, pngs = reported(body, tmp_path, capsys)
    row = row_of(out, body["id"])
    assert row["pack"] == "3S2P"
    assert row["battery capacity [A.h]"] == f4(s["Battery discharged capacity [A.h]"])
    assert row["battery energy [W.h]"] == f4(s["Battery discharged energy [W.h]"])
    assert row["battery V [V]"] == f"{f4(s['Battery minimum voltage [V]'])}..{f4(s['Battery maximum voltage [V]'])}"
    assert row["battery max |I| [A]"] == "10"  # the pack current, 2 x the cell's 5 A
    assert row["cell min V [V]"] == f4(s["Minimum voltage [V]"])
    # the cell's voltage and current (plot.png) and the battery's (pack.png: two panels)
    assert pngs == {"plot.png", "pack.png"}
    assert png_height(tmp_path / "pack.png") < 700


def test_a_pack_of_differing_cells_shows_cell_current_spread_and_plots_every_cell(bodies, tmp_path, capsys):
    body = bodies["pack_circuit"]
    s = body["summary"]
    assert output.kind(body) == "pack circuit" and cell_names(body) == ["1-1", "1-2", "2-1", "2-2"]
    out, pngs = reported(body, tmp_path, capsys)
    row = row_of(out, body["id"])
    assert row["pack"] == "2S2P" and row["battery max |I| [A]"] == "100"
    assert row["cell I [A]"] == f"{f4(s['Minimum cell current [A]'])}..{f4(s['Maximum cell current [A]'])}"
    assert s["Minimum cell current [A]"] < 50 < s["Maximum cell current [A]"]  # the cells do differ
    assert row["final SOC"] == "..".join(f4(v) for v in s["Final SoC range"])
    assert row["max T [degC]"] == f4(s["Maximum cell temperature [degC]"])
    # no cell "Voltage [V]" column: no plot.png; pack.png has the cells' currents and temperatures too
    assert pngs == {"pack.png"}
    assert png_height(tmp_path / "pack.png") > 1000  # four panels (two for a pack of identical cells)


def test_an_impedance_result_shows_its_spectrum_figures_and_draws_nyquist_and_bode(bodies, tmp_path, capsys):
    body = bodies["impedance"]
    s = body["summary"]
    assert output.kind(body) == "impedance"
    out, pngs = reported(body, tmp_path, capsys)
    row = row_of(out, body["id"])
    assert row["SOC"] == "0.3 / 0.8"
    assert row["frequencies"] == "11: 0.01..1000 Hz"
    assert row["Z_re at max f [mOhm]"] == " / ".join(f4(v * 1e3) for v in s["Z_re at the maximum frequency [Ohm]"])
    assert row["|Z| at min f [mOhm]"] == " / ".join(f4(v * 1e3) for v in s["|Z| at the minimum frequency [Ohm]"])
    assert "capacity [A.h]" not in row  # no dashes for figures a spectrum does not have
    assert pngs == {"nyquist.png", "bode.png"}


def test_an_ageing_study_shows_cycles_and_end_of_life_and_draws_capacity(bodies, tmp_path, capsys):
    body = bodies["ageing"]
    rows, eol = body["cycles"], body["end_of_life"]
    assert output.kind(body) == "ageing" and eol["reached"] is True  # 99.995 % of cycle 1's capacity
    out, pngs = reported(body, tmp_path, capsys)
    row = row_of(out, body["id"])
    assert row["cycles"] == str(len(rows))
    assert row["end of life"] == f"cycle {eol['cycle']} ({eol['criterion']})"
    assert row["capacity first->last [A.h]"] == f"{f4(rows[0]['Capacity [A.h]'])} -> {f4(rows[-1]['Capacity [A.h]'])}"
    assert row["LLI [%]"] == f4(rows[-1]["Loss of lithium inventory [%]"])
    assert row["throughput [A.h]"] == f4(rows[-1]["Throughput capacity [A.h]"])
    assert pngs == {"ageing.png", "plot.png"}  # plot.png: the saved cycles' series


def test_a_sweep_of_mixed_kinds_shares_one_table(bodies, capsys, tmp_path):
    order = ["ecm", "impedance", "pack_circuit", "ageing"]
    assert report([bodies[n] for n in order], tmp_path, no_plot=True, title="mixed") == 0
    out = capsys.readouterr().out
    head = out.splitlines()[0]
    for column in ("capacity [A.h]", "Z_re at max f [mOhm]", "cell I [A]", "end of life"):
        assert column in head
    assert row_of(out, "impedance-1")["capacity [A.h]"] == "-" and row_of(out, "ecm-1")["cell I [A]"] == "-"
    assert not list(tmp_path.glob("*.png"))  # --no-plot


@pytest.mark.parametrize("name", list(CASES))
def test_a_failed_job_of_any_kind_draws_nothing_and_prints_its_error(name, tmp_path, capsys):
    """The worker's own failure body (``body_for(error=...)``) for a job of each kind."""
    job = Job.model_validate(CASES[name])
    error = f"PyBaMM could not solve the {kinds.kind_of(job).name} job: solver failed at t=12.5 s " + "(detail) " * 8
    body = json.loads(json.dumps(body_for(envelope(name, job), "s", "f", 1, error=error)))
    assert output.kind(body) is None
    assert report([body], tmp_path, no_plot=False, title=name) == 1
    out = capsys.readouterr().out
    assert f"{name}-1: failed: {' '.join(error.split())}" in out
    assert "no plot: no job has a series to draw" in out
    assert not list(tmp_path.glob("*.png"))
    assert row_of(out, f"{name}-1")["status"] == "failed"


def test_a_failed_member_of_a_pack_sweep_gets_dashes_under_the_pack_columns(bodies, tmp_path, capsys):
    job = Job.model_validate(CASES["pack_circuit"])
    failed = body_for(envelope("bad", job), "s", "f", 1, error="a cell reached 0 SoC at once")
    assert report([bodies["pack_circuit"], failed], tmp_path, no_plot=False, title="sweep") == 1
    out = capsys.readouterr().out
    assert row_of(out, "bad-1")["pack"] == "-" and row_of(out, "pack_circuit-1")["pack"] == "2S2P"
    assert {p.name for p in tmp_path.glob("*.png")} == {"pack.png"}  # the failed member adds no line


# --------------------------------------------------------------------------
# The catalog
# --------------------------------------------------------------------------
def test_the_catalog_text_lists_every_kind_set_with_its_models_and_every_limit():
    from shared.engine import kinds

    cat = kinds.catalog()  # what GET /catalog serves
    text = output.catalog_text(cat)
    lines = text.splitlines()
    for kind in ("cell", "ecm", "impedance", "pack"):
        assert kind in lines, kind
    assert "Thevenin (pybamm.equivalent_circuit.Thevenin)" in text and "surface form: differential" in text
    assert "differing cells" in text and "at most 50 cells" in text
    for name, details in cat["parameter_set_details"].items():
        (row,) = [x for x in lines if x.split("  ")[0] == name]
        assert ", ".join(details["models"]) in row and details["chemistry"] in row, row
    (sodium,) = [x for x in lines if x.startswith("Chayambuka2022 ")]
    assert "sodium_ion" in sodium and "sodium_ion.BasicDFN" in sodium
    assert any(x.startswith("ECM_Example ") and "Thevenin" in x for x in lines)
    for key, value in cat["limits"].items():
        assert f"  {key}: {value:g}" in lines if isinstance(value, float) else f"  {key}: {value}" in lines


@pytest.mark.slow
def test_battery_sim_catalog_asks_the_service(stack, capsys):
    assert main(["catalog", "--url", stack.submit_url]) == 0
    out = capsys.readouterr().out
    assert "Kinds of job" in out and "Chayambuka2022" in out and "max_pack_circuit_cells: 50" in out
    assert main(["catalog", "--json", "--url", stack.submit_url]) == 0
    served = json.loads(capsys.readouterr().out)
    assert set(served["kinds"]) >= {"ecm", "impedance", "pack"} and "Chayambuka2022" in served["parameter_sets"]


@pytest.mark.slow
def test_a_differing_cell_pack_example_through_the_stack_draws_its_pack_plot(stack, tmp_path, capsys):
    """``battery-sim submit examples/pack_differing_cells.json --poll``, then ``result`` of it."""
    rc = main(["submit", str(EXAMPLES / "pack_differing_cells.json"), "--poll", "--url", stack.submit_url,
               "--out", str(tmp_path / "submit"), "--timeout", "180"])
    out = capsys.readouterr()
    assert rc == 0, out.out + out.err
    (body,) = json.loads((tmp_path / "submit" / "results.json").read_text())
    assert row_of(out.out, body["id"])["pack"] == "2S2P"
    assert png_height(tmp_path / "submit" / "pack.png") > 1000
    assert main(["result", body["id"], "--url", stack.submit_url, "--out", str(tmp_path / "result")]) == 0
    assert "2S2P" in capsys.readouterr().out and png_height(tmp_path / "result" / "pack.png") > 1000


# --------------------------------------------------------------------------
# Example job files: valid, checked by their kind, named in the README
# --------------------------------------------------------------------------
def jobs_of(path) -> list[Job]:
    body = json.loads(path.read_text())
    if "vary" in body:
        request = sweeps.SweepRequest.model_validate(body)
        return [Job.model_validate(sweeps.apply(request.base, m)) for m in sweeps.members(request)]
    return [Job.model_validate(body)]


@pytest.mark.parametrize("path", JOB_FILES, ids=lambda p: p.name)
def test_every_example_is_a_valid_job_that_its_kind_accepts(path):
    jobs = jobs_of(path)
    assert jobs
    for job in jobs:
        assert kinds.check(job) == [], path.name


def test_the_examples_cover_every_new_kind_and_the_readme_names_each():
    found = {}
    for path in JOB_FILES:
        job = jobs_of(path)[0]
        found.setdefault(kinds.kind_of(job).name, []).append(path.name)
        found.setdefault(job.protocol.type, []).append(path.name)
        found.setdefault(job.model.name, []).append(path.name)
        if job.pack is not None:
            found.setdefault("pack " + ("circuit" if job.model.name == "Thevenin" else "identical"), []).append(path)
    for wanted in ("ecm", "impedance", "pack", "pack circuit", "pack identical", "ageing", "sodium_ion.BasicDFN"):
        assert wanted in found, wanted
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Command-line client", 1)[1].split("\n## ", 1)[0]
    for path in JOB_FILES:
        assert f"examples/{path.name}" in section, path.name

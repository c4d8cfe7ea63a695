"""Every parameter set PyBaMM ships: the compatibility table, the catalog, the refusals,
and each offered set x model pair against a direct PyBaMM solve.

Reference: a fresh ``pybamm.Simulation`` of the same case — the model with the set's
own options (``parameter_sets.json``), the set's values with the 1C current baked in,
IDAKLU at 1e-8. Tolerance: max |ΔV| ≤ 1 mV on the service's own output grid.
The default run checks a few pairs of every sort (plain, composite, MSMR, half-cell,
sodium-ion); the whole table is ``slow`` (CI).
"""

from __future__ import annotations

import warnings

import numpy as np
import pybamm
import pytest

from shared.contract.job import Job
from shared.engine import catalog, compatibility, kinds
from shared.engine import simulate as simulation
from shared.engine.models import make, set_options
from tests.test_submit_function import call, published, settings  # noqa: F401 - fixtures

TOLERANCE_V = 1e-3
DURATION_S = 600
FAST_PAIRS = [("Chen2020", "SPM"), ("Chen2020_composite", "SPMe"), ("MSMR_Example", "SPM"),
              ("Xu2019", "SPM"), ("Chayambuka2022", "sodium_ion.BasicDFN")]
SLOW_PAIRS = [p for p in compatibility.offered_pairs() if p not in FAST_PAIRS]


def direct(set_name: str, model: str, t: np.ndarray, soc=None):
    """A direct PyBaMM solve of a 1C discharge from the set's initial state (or ``soc``)."""
    pv = pybamm.ParameterValues(set_name)
    pv.update({"Current function [A]": pv["Nominal cell capacity [A.h]"]})
    sim = pybamm.Simulation(make(model, set_options(set_name)), parameter_values=pv,
                            solver=pybamm.IDAKLUSolver(atol=1e-8, rtol=1e-8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sim.solve([0, float(t[-1])], t_interp=t, initial_soc=soc)


def service(set_name: str, model: str, soc=None) -> dict:
    job = Job.model_validate({
        "model": {"name": model}, "parameter_set": set_name,
        "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": DURATION_S},
        "conditions": {"initial_soc": soc}, "outputs": {"max_points": 61}})
    assert kinds.check(job) == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulation.simulate(job)


def max_dv(result: dict, ref) -> float:
    t = np.array(result["columns"]["Time [s]"])
    v = np.array(result["columns"]["Voltage [V]"])
    keep = t <= ref.t[-1]
    return float(np.max(np.abs(v[keep] - ref["Voltage [V]"](t[keep]))))


def agrees(set_name: str, model: str, soc=None) -> None:
    result = service(set_name, model, soc)
    ref = direct(set_name, model, np.array(result["columns"]["Time [s]"]), soc)
    assert result["termination"] == ref.termination, (result["termination"], ref.termination)
    assert max_dv(result, ref) <= TOLERANCE_V


@pytest.mark.parametrize("set_name, model", FAST_PAIRS)
def test_a_pair_of_each_sort_matches_direct_pybamm(set_name, model):
    assert compatibility.offered(set_name, model)
    agrees(set_name, model)


@pytest.mark.parametrize("set_name, model", [("Chen2020_composite", "SPM"), ("MSMR_Example", "SPM")])
def test_initial_soc_of_a_set_with_its_own_options_matches_direct_pybamm(set_name, model):
    """The initial SOC of a composite or MSMR set is PyBaMM's own set_initial_state."""
    agrees(set_name, model, soc=0.6)


@pytest.mark.slow
@pytest.mark.parametrize("set_name, model", SLOW_PAIRS)
def test_every_offered_pair_matches_direct_pybamm(set_name, model):
    """From the set's own initial state where it lies within the cut-offs (Mohtat2020 and
    the graphite-SiOx half-cell start empty), and from an initial SOC of 0.9."""
    probes = compatibility.protocols_for(set_name, model)
    assert probes["own_state"] or probes["initial_soc"]
    if probes["own_state"]:
        agrees(set_name, model)
    if probes["initial_soc"]:
        agrees(set_name, model, soc=0.9)


def test_the_table_covers_every_set_pybamm_ships_but_the_thevenin_one():
    table = compatibility.table()
    assert table["pybamm_version"] == pybamm.__version__
    shipped = set(pybamm.parameter_sets) - set(compatibility.OTHER_KINDS)
    assert set(table["sets"]) == shipped
    assert "ECM_Example" not in catalog.PARAMETER_SETS
    # every set that solves with a model of its chemistry is offered
    for name, entry in table["sets"].items():
        fits = [m for m, e in entry["models"].items() if e["solves"] and compatibility._chemistry_fits(name, m)]
        assert (name in catalog.PARAMETER_SETS) == bool(fits), name
    # the nine sets offered before, and the sodium-ion cell, are still offered with their models
    for name in ("Chen2020", "Marquis2019", "Ecker2015", "OKane2022", "ORegan2022", "Mohtat2020",
                 "Prada2013", "NCA_Kim2011", "Ai2020"):
        assert {"SPM", "SPMe", "DFN"} <= set(compatibility.models_for(name)), name
    assert compatibility.models_for("Chayambuka2022") == ["sodium_ion.BasicDFN"]


@pytest.mark.slow
def test_the_table_re_derives_for_a_sample_of_pairs():
    """The checked-in table says what solving says now (a sample; the whole is
    ``python -m shared.engine.compatibility --check``)."""
    table = compatibility.table()["sets"]
    for set_name, model in [("Ramadass2004", "SPM"), ("Sulzer2019", "SPM"), ("Chen2020_composite", "DFN"),
                            ("Chayambuka2022", "sodium_ion.BasicDFN")]:
        fresh = compatibility.derive_pair(set_name, model, names=("discharge", "own_state", "initial_soc"))
        kept = table[set_name]["models"][model]
        assert fresh["solves"] == kept["solves"], (set_name, model)
        assert set(fresh["probes"]) <= set(kept["probes"]), (set_name, model)
        for probe, outcome in fresh["probes"].items():
            assert outcome["ok"] == kept["probes"][probe]["ok"], (set_name, model, probe)


def test_the_catalog_lists_every_offered_set_with_its_models_and_what_it_is(published):
    status, reply, _ = call("GET", "/catalog")
    assert status == 200
    details = reply["parameter_set_details"]
    assert list(details) == reply["parameter_sets"] == list(catalog.PARAMETER_SETS)
    for name, entry in details.items():
        assert entry["models"] == compatibility.models_for(name) and entry["models"], name
        assert entry["chemistry"] in ("lithium_ion", "sodium_ion"), name
        assert entry["cell"] and entry["electrodes"] and entry["description"] and entry["citations"], name
    assert details["Chen2020"]["description"].startswith("Parameters for an LG M50 cell, from the paper Chen2020")
    assert details["Chen2020_composite"]["options"]["particle phases"] == ["2", "1"]
    assert details["MSMR_Example"]["options"]["open-circuit potential"] == "MSMR"
    assert details["Chayambuka2022"]["chemistry"] == "sodium_ion"
    assert "sodium_ion.BasicDFN" in reply["models"] and "sodium_ion.BasicDFN" in reply["models_without_options"]


REFUSED = [(s, m) for s, m in compatibility.refused_pairs()]


@pytest.mark.parametrize("set_name, model", REFUSED[:: max(1, len(REFUSED) // 12)] + [("ECM_Example", "SPM")])
def test_a_refused_pair_is_a_400_naming_the_pair(published, set_name, model):
    body = {"model": {"name": model}, "parameter_set": set_name,
            "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 600}}
    status, reply, _ = call("POST", "/jobs", body)
    assert status == 400, reply
    errors = [e["error"] for e in reply["errors"] if e["field"] == "parameter_set"]
    assert errors and set_name in errors[0] and model in errors[0], reply["errors"]
    assert published.calls == 0


def test_a_refusal_says_which_models_the_set_works_with(published):
    for set_name, model, text in [
        ("Chen2020", "sodium_ion.BasicDFN", "Chen2020 does not run with sodium_ion.BasicDFN: a lithium_ion set, a "
         "sodium_ion model; it works with DFN, SPM, SPMe; sodium_ion.BasicDFN works with Chayambuka2022"),
        ("Sulzer2019", "DFN", "Sulzer2019 does not run with DFN: a lead_acid set, a lithium_ion model; it works "
         "with none of the offered models; DFN works with "),
    ]:
        status, reply, _ = call("POST", "/jobs", {"model": {"name": model}, "parameter_set": set_name,
                                                  "protocol": {"type": "constant_current", "c_rate": 1}})
        assert status == 400
        assert reply["errors"][0]["field"] == "parameter_set"
        assert reply["errors"][0]["error"].startswith(text), reply["errors"]
    assert published.calls == 0


def test_a_set_with_its_own_options_refuses_a_changed_one_and_degradation_options(published):
    body = {"model": {"name": "SPM", "options": {"particle phases": "1"}}, "parameter_set": "Chen2020_composite",
            "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 600}}
    status, reply, _ = call("POST", "/jobs", body)
    assert status == 400 and reply["errors"][0]["field"] == "model.options.particle phases", reply
    body["model"]["options"] = {"SEI": "reaction limited"}
    status, reply, _ = call("POST", "/jobs", body)
    assert status == 400 and reply["errors"][0]["field"] == "model.options.SEI", reply
    # other options are the set's plus the job's
    job = Job.model_validate({**body, "model": {"name": "SPM", "options": {"surface form": "differential"}}})
    assert kinds.check(job) == []
    assert simulation.simulate(job)["completed"] is True

"""Physically impossible or unparseable inputs are refused at submit with a field and
its allowed range (``catalog.check``, ``shared/engine/physical.py``); what only the
solver finds fails with a sentence naming the input to change
(``shared/engine/failures.py``). Positive controls: valid values, every offered
parameter set's own values, the README's examples and the BPX example pass.
"""

from __future__ import annotations

import copy
import json
import re

import pybamm
import pytest

from shared.contract.job import Job
from shared.engine import catalog, compatibility, failures, kinds, physical
from shared.engine.errors import SimulationError
from tests.conftest import REPO

CC = {"type": "constant_current", "c_rate": 1}
BPX = json.loads((REPO / "examples" / "lgm50_like_bpx.json").read_text())


def errors_of(body: dict) -> list[dict[str, str]]:
    return kinds.check(Job.model_validate({"protocol": CC, **body}))


def error_for(body: dict, field: str) -> str:
    errors = errors_of(body)
    match = [e["error"] for e in errors if e["field"] == field]
    assert match, errors
    assert well_formed(match[0]), match[0]
    return match[0]


INTERVAL = re.compile(r"[\[(][^\[\]()]*?, [^\[\]()]*?[\])]")


def well_formed(text: str) -> bool:
    """Brackets and parentheses closed in order (intervals such as "(0, 1]" aside);
    quotes paired (apostrophes aside)."""
    stack, pairs = [], {")": "(", "]": "[", "}": "{"}
    quotes = re.sub(r"(?<=\w)'(?=\w)", "", text)
    text = INTERVAL.sub("", text)
    for ch in text:
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack and quotes.count("'") % 2 == 0 and "Traceback" not in text


def bpx_with(change) -> dict:
    doc = copy.deepcopy(BPX)
    change(doc["Parameterisation"])
    return doc


def bpx_job(doc: dict, **kw) -> dict:
    return {"model": {"name": "SPM"}, "parameter_set": None, "bpx": doc, **kw}


def simulate_unchecked(body: dict) -> str:
    """Run a job as the worker would if submit had let it through; the failure's text."""
    with pytest.raises(SimulationError) as info:
        kinds.simulate(Job.model_validate({"protocol": CC, **body}))
    text = str(info.value)
    assert well_formed(text), text
    return text


# -- overrides by physical meaning ----------------------------------------------------

@pytest.mark.parametrize("name, value, allowed", [
    ("Negative particle diffusivity [m2.s-1]", -3.3e-14, "(0, ∞) m2.s-1"),
    ("Electrode height [m]", 0, "(0, ∞) m"),
    ("Maximum concentration in negative electrode [mol.m-3]", -33133, "(0, ∞) mol.m-3"),
    ("Negative electrode porosity", 1.5, "(0, 1]"),
    ("Positive electrode active material volume fraction", 0, "(0, 1]"),
    ("Separator Bruggeman coefficient (electrolyte)", -1.5, "[0, ∞)"),
    ("Electrolyte diffusivity [m2.s-1]", -1, "(0, ∞) m2.s-1"),
    ("Positive electrode conductivity [S.m-1]", 0, "(0, ∞) S.m-1"),
    ("Ambient temperature [K]", 25, "[200, 400] K"),
    ("Cation transference number", 1.2, "[0, 1]"),
    ("Number of electrodes connected in parallel to make a cell", 2.5, "the whole numbers ≥ 1"),
    ("Initial concentration in electrolyte [mol.m-3]", 0, "(0, ∞) mol.m-3"),
    ("Negative electrode thickness [m]", -1e-5, "(0, ∞) m"),
])
def test_an_impossible_override_is_refused_with_its_allowed_range(name, value, allowed):
    text = error_for({"parameters": {name: value}}, f"parameters.{name}")
    assert text.startswith(f"{value:g} is outside {allowed}:"), text


def test_relations_between_overrides_and_the_set_are_checked():
    # one cut-off alone, above the set's other one
    text = error_for({"parameters": {"Lower voltage cut-off [V]": 4.3}}, "parameters.Lower voltage cut-off [V]")
    assert "4.3" in text and "4.2" in text
    # a maximum concentration below the set's initial concentration
    text = error_for({"parameters": {"Maximum concentration in negative electrode [mol.m-3]": 20000}},
                     "parameters.Maximum concentration in negative electrode [mol.m-3]")
    assert "29866" in text
    # porosity and active material more than the whole electrode
    error_for({"parameters": {"Negative electrode porosity": 0.5}}, "parameters.Negative electrode porosity")
    # cut-offs the cell's open-circuit voltage never reaches
    text = error_for({"parameters": {"Lower voltage cut-off [V]": 5.45, "Upper voltage cut-off [V]": 5.5}},
                     "parameters.Lower voltage cut-off [V]")
    assert "open-circuit voltage" in text


def test_valid_overrides_pass():
    assert errors_of({"parameters": {
        "Negative particle diffusivity [m2.s-1]": 1e-14, "Negative electrode porosity": 0.2,
        "Electrode height [m]": 0.1, "Lower voltage cut-off [V]": 2.8, "Upper voltage cut-off [V]": 4.1,
        "Ambient temperature [K]": 310, "Initial concentration in negative electrode [mol.m-3]": 20000,
        "Number of electrodes connected in parallel to make a cell": 2}}) == []


@pytest.mark.parametrize("set_name", catalog.PARAMETER_SETS)
def test_every_offered_set_passes_its_own_values_as_overrides(set_name):
    pv = pybamm.ParameterValues(set_name)
    numbers = {k: float(pv[k]) for k in pv.keys() if physical._is_number(pv[k])}
    # (a graphite half-cell's own voltages, 0-0.005 V, lie below the service's 0.5 V for overrides)
    numbers = {k: v for k, v in numbers.items() if physical.rule_for(k) is not physical.VOLTAGE or v >= 0.5}
    assert physical.check_overrides(numbers, pv, set_name) == []


@pytest.mark.parametrize("set_name, model", compatibility.offered_pairs())
def test_every_offered_set_and_model_passes_unchanged(set_name, model):
    assert errors_of({"model": {"name": model}, "parameter_set": set_name}) == []


# -- BPX documents --------------------------------------------------------------------

@pytest.mark.parametrize("change, field, start", [
    (lambda p: p["Negative electrode"].update({"Minimum stoichiometry": 0.95}),
     "bpx.Parameterisation.Negative electrode.Minimum stoichiometry", "0.95 is outside [0, 0.910618)"),
    (lambda p: p["Electrolyte"].update({"Diffusivity [m2.s-1]": -1}),
     "bpx.Parameterisation.Electrolyte.Diffusivity [m2.s-1]", "-1 is outside (0, ∞) m2.s-1"),
    (lambda p: p["Negative electrode"].update({"Porosity": 1.5}),
     "bpx.Parameterisation.Negative electrode.Porosity", "1.5 is outside (0, 1]"),
    (lambda p: p["Cell"].update({"Nominal cell capacity [A.h]": 1e6}),
     "bpx.Parameterisation.Cell.Nominal cell capacity [A.h]", "1e+06 is outside (0, 1000] A.h"),
    (lambda p: p["Positive electrode"]["OCP [V]"].update({"y": [0.0] * len(p["Positive electrode"]["OCP [V]"]["x"])}),
     "bpx.Parameterisation.Positive electrode.OCP [V]", "every value is 0 V"),
    (lambda p: p["Negative electrode"].update({"Maximum concentration [mol.m-3]": -33133}),
     "bpx.Parameterisation.Negative electrode.Maximum concentration [mol.m-3]", "-33133 is outside (0, ∞)"),
])
def test_an_impossible_bpx_value_is_refused_by_its_path(change, field, start):
    text = error_for(bpx_job(bpx_with(change), conditions={"initial_soc": 0.8}), field)
    assert text.startswith(start), text


def test_inverted_bpx_cut_offs_are_blamed_on_the_cut_offs():
    doc = bpx_with(lambda p: p["Cell"].update({"Lower voltage cut-off [V]": 4.2, "Upper voltage cut-off [V]": 2.5}))
    text = error_for(bpx_job(doc, conditions={"initial_soc": 0.8}),
                     "bpx.Parameterisation.Cell.Lower voltage cut-off [V]")
    assert "4.2" in text and "2.5" in text and "soc" not in text.lower()


def test_a_bpx_capacity_is_limited_like_an_override():
    with pytest.raises(Exception) as info:  # the same value as an override: pydantic's 400
        Job.model_validate({"protocol": CC, "parameters": {"Nominal cell capacity [A.h]": 1e6}})
    assert "1000" in str(info.value)
    doc = bpx_with(lambda p: p["Cell"].update({"Nominal cell capacity [A.h]": 1e6}))
    assert "1000" in error_for(bpx_job(doc), "bpx.Parameterisation.Cell.Nominal cell capacity [A.h]")


def test_the_bpx_example_passes():
    for model in ("SPM", "SPMe", "DFN"):
        assert errors_of({**bpx_job(BPX, conditions={"initial_soc": 0.8}), "model": {"name": model}}) == []


def test_an_unknown_override_of_a_bpx_cell_is_refused_at_submit():
    errors = errors_of({**bpx_job(BPX), "parameters": {"Colour of the can": 3}})
    assert "parameters.Colour of the can" in {e["field"] for e in errors}


# -- model options the parameter set cannot serve ---------------------------------------

def test_an_option_whose_parameters_the_set_lacks_is_refused_naming_option_and_set():
    text = error_for({"model": {"name": "SPM", "options": {"thermal": "x-full"}}, "parameter_set": "OKane2022"},
                     "model.options.thermal")
    assert "'x-full'" in text and "OKane2022" in text and "heat transfer coefficient" in text


@pytest.mark.parametrize("options, set_name", [
    ({"thermal": "x-full"}, "OKane2022"), ({"thermal": "lumped"}, "Prada2013"), ({"SEI": "constant"}, "ORegan2022"),
    ({"thermal": "lumped"}, "Chen2020"), ({"SEI": "constant"}, "OKane2022"), ({}, "Marquis2019"),
])
def test_the_missing_parameter_check_agrees_with_pybamm(options, set_name):
    refused = any(e["field"].startswith("model.options")
                  for e in errors_of({"model": {"name": "SPM", "options": options}, "parameter_set": set_name}))
    model = pybamm.lithium_ion.SPM(options=options or None)
    try:
        pybamm.ParameterValues(set_name).process_model(model)
        runs = True
    except KeyError:
        runs = False
    assert refused == (not runs)


# -- experiment steps -------------------------------------------------------------------

@pytest.mark.parametrize("step, says", [
    ("Discharge at 1C until the cows come home", "'the cows come home' is not an end condition"),
    ("Dance at 1C for 1 hour", "'Dance' is not an instruction"),
    ("Discharge at 1 parsec for 1 hour", "'1 parsec' is not a rate"),
    ("Rest for a while", "'a while' is not a duration"),
    ("Discharge at 1C", "needs 'for <duration>' or 'until <condition>'"),
])
def test_an_unparseable_step_is_refused_naming_it_and_what_is_wrong(step, says):
    text = error_for({"protocol": {"type": "experiment", "steps": ["Rest for 1 minute", step]}}, "protocol.steps")
    assert text.startswith(f"step 1, {step!r}: ") and says in text and "could not convert" not in text


# -- README examples ------------------------------------------------------------------------

def readme_jobs() -> list[dict]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Native job API", 1)[1].split("\n## ", 1)[0]
    jobs = []
    for block in re.findall(r"```json\n(.*?)```", section, flags=re.S):
        if "the BPX document" in block:
            block = block.replace("{ …the BPX document… }", json.dumps(BPX))
        jobs.append(json.loads(block))
    jobs.append(json.loads((REPO / "examples" / "sweep_c_rate_temperature.json").read_text())["base"])
    return jobs


def test_the_readme_examples_pass():
    jobs = readme_jobs()
    assert len(jobs) >= 4
    for body in jobs:
        assert kinds.check(Job.model_validate(body)) == [], body.get("protocol")


# -- what only the solver finds ---------------------------------------------------------------

def test_a_cut_off_the_cell_starts_past_is_named_with_both_values_and_closed_brackets():
    # passes submit (ordered, inside the OCV range) but the full cell starts below 4.19 V
    assert errors_of({"model": {"name": "SPM"}, "parameters": {"Lower voltage cut-off [V]": 4.19}}) == []
    text = simulate_unchecked({"model": {"name": "SPM"}, "parameters": {"Lower voltage cut-off [V]": 4.19}})
    assert text.startswith("the cell starts outside its voltage cut-offs: event 'Minimum voltage [V]' already "
                           "crossed at t = 0 s"), text
    assert "parameters.Lower voltage cut-off [V] = 4.19 V" in text and "4.19–4.2 V" in text


def test_inverted_bpx_cut_offs_that_reach_the_solver_are_blamed_on_the_cut_offs():
    doc = bpx_with(lambda p: p["Cell"].update({"Lower voltage cut-off [V]": 4.2, "Upper voltage cut-off [V]": 2.5}))
    text = simulate_unchecked(bpx_job(doc))
    assert "inverted" in text and "4.2 V" in text and "2.5 V" in text
    assert "bpx.Parameterisation.Cell.Lower voltage cut-off [V]" in text and "initial_soc" not in text


def test_a_solver_failure_names_the_override():
    # a positive electrolyte concentration passes submit; IDA then finds no consistent state
    body = {"model": {"name": "DFN"}, "parameters": {"Initial concentration in electrolyte [mol.m-3]": 1e-3}}
    assert errors_of(body) == []
    text = simulate_unchecked(body)
    assert "IDA_" in text and "parameters.Initial concentration in electrolyte [mol.m-3] = 0.001" in text


@pytest.mark.parametrize("body, names", [
    ({"model": {"name": "SPM"}, "parameters": {"Electrode height [m]": 0}}, "parameters.Electrode height [m]"),
    ({"model": {"name": "DFN"}, "parameters": {"Maximum concentration in negative electrode [mol.m-3]": -33133}},
     "parameters.Maximum concentration in negative electrode [mol.m-3]"),
    ({"model": {"name": "SPM", "options": {"thermal": "x-full"}}, "parameter_set": "OKane2022"}, "model.options"),
])
def test_what_submit_refuses_still_fails_readably_if_it_reaches_the_solver(body, names):
    text = simulate_unchecked(body)
    assert names in text and "ZeroDivisionError" not in text and "flag: -25" not in text, text


def test_the_event_list_is_read_not_cut_at_the_first_bracket():
    exc = pybamm.SolverError("Events ['Minimum voltage [V]', 'Maximum voltage [V]'] are non-positive at initial "
                             "conditions with inputs {'Lower voltage cut-off [V]': 4.0}")
    text = str(failures.translate(exc))
    assert "'Minimum voltage [V]' and 'Maximum voltage [V]'" in text and well_formed(text), text


@pytest.mark.parametrize("expression", ["exit(3)", "print(x) + 1", "sum(range(10**10)) + x", "__import__('os')"])
def test_a_bpx_expression_naming_anything_but_its_functions_is_refused_before_it_runs(expression):
    """The bpx package turns expressions into Python code and runs it: an expression that
    names exit, print, range or any other name is a 400 naming the field; the example's
    own expressions (x, e, exp, sqrt ...) pass (positive control)."""
    import copy
    import json

    from shared.contract.job import Job
    from shared.engine import catalog
    from tests.conftest import REPO

    doc = json.loads((REPO / "examples" / "lgm50_like_bpx.json").read_text())
    body = {"model": {"name": "DFN"}, "parameter_set": None, "bpx": doc,
            "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 60}}
    assert catalog.bpx_expression_errors(doc) == []
    bad = copy.deepcopy(doc)
    bad["Parameterisation"]["Electrolyte"]["Conductivity [S.m-1]"] = expression
    errors = catalog.check(Job.model_validate({**body, "bpx": bad}))
    assert [e["field"] for e in errors] == ["bpx.Parameterisation.Electrolyte.Conductivity [S.m-1]"]
    assert "may use only" in errors[0]["error"]

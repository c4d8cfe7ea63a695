"""Sweeps: expansion into members (unit) and fan-out through the emulator (end to end)."""

import json

import pytest
import requests
from pydantic import ValidationError

from shared.contract import sweeps

BASE = {"model": {"name": "SPM"}, "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 1200}}


def test_grid_is_the_full_product_in_order():
    req = sweeps.SweepRequest.model_validate({"base": BASE, "vary": {
        "protocol.c_rate": [0.5, 1, 2], "conditions.ambient_temperature_C": {"start": 0, "stop": 40, "num": 3}}})
    members = sweeps.members(req)
    assert len(members) == req.member_count() == 9
    assert members[0] == {"protocol.c_rate": 0.5, "conditions.ambient_temperature_C": 0.0}
    assert members[-1] == {"protocol.c_rate": 2, "conditions.ambient_temperature_C": 40.0}


def test_latin_hypercube_is_seeded_and_stratified():
    body = {"base": BASE, "design": "latin_hypercube", "samples": 10, "seed": 7,
            "vary": {"parameters.Nominal cell capacity [A.h]": {"min": 4.0, "max": 6.0}}}
    a = sweeps.members(sweeps.SweepRequest.model_validate(body))
    b = sweeps.members(sweeps.SweepRequest.model_validate(body))
    assert a == b
    values = sorted(m["parameters.Nominal cell capacity [A.h]"] for m in a)
    # one sample in each tenth of the range
    assert [int((v - 4.0) / 0.2) for v in values] == list(range(10))


def test_paths_split_at_the_first_dot_so_pybamm_names_survive():
    job = sweeps.apply(BASE, {"parameters.Nominal cell capacity [A.h]": 4.5, "parameter_set": "Marquis2019"})
    assert job["parameters"] == {"Nominal cell capacity [A.h]": 4.5}
    assert job["parameter_set"] == "Marquis2019" and BASE.get("parameters") is None


def test_over_the_member_cap_is_rejected_with_the_limit():
    with pytest.raises(ValidationError) as info:
        sweeps.SweepRequest.model_validate({"base": BASE, "vary": {
            "protocol.c_rate": {"start": 0.1, "stop": 2, "num": 100},
            "conditions.ambient_temperature_C": {"start": 0, "stop": 40, "num": 11}}})
    assert "1100 members; the limit is 1000" in str(info.value)


@pytest.mark.slow
def test_sweep_fans_out_and_each_member_reports_its_place(stack, receiver):
    body = {"base": {**BASE, "outputs": {"max_points": 50}},
            "vary": {"protocol.c_rate": [0.5, 2.0], "conditions.ambient_temperature_C": [10, 30]}}
    reply = requests.post(stack.submit_url + "/sweeps", data=json.dumps(body), timeout=60,
                          headers={"Content-Type": "application/json"})
    assert reply.status_code == 202, reply.text
    sweep = reply.json()
    assert sweep["members"] == 4 and len(sweep["jobIds"]) == 4
    results = receiver.wait_for(sweep["jobIds"], timeout_s=120)
    by_index = {r["sweep"]["index"]: r for r in results.values()}
    assert sorted(by_index) == [0, 1, 2, 3]
    for index, r in by_index.items():
        assert r["status"] == "succeeded"
        assert r["sweep"]["sweepId"] == sweep["sweepId"] and r["sweep"]["total"] == 4
    # member 0 is C/2 at 10 °C, member 3 is 2C at 30 °C: 4x the charge in the same 1200 s
    q0 = by_index[0]["summary"]["Discharged capacity [A.h]"]
    assert by_index[0]["sweep"]["values"] == {"protocol.c_rate": 0.5, "conditions.ambient_temperature_C": 10}
    assert by_index[2]["summary"]["Discharged capacity [A.h]"] == pytest.approx(4 * q0, rel=1e-3)


@pytest.mark.slow
def test_a_member_that_fails_validation_rejects_the_whole_sweep(stack):
    body = {"base": BASE, "vary": {"parameter_set": ["Chen2020", "NoSuchSet"]}}
    reply = requests.post(stack.submit_url + "/sweeps", json=body, timeout=60)
    assert reply.status_code == 400 and "member 1: parameter_set" in reply.text

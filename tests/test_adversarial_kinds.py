"""Regressions found by attacking the new kinds (equivalent-circuit cells, impedance
spectra, packs, sodium-ion, ageing) through HTTP: each test is one defect that was seen.

In process (the submit function's ``handle``, a recorder for the publisher, the real
Firestore emulator where a job gets accepted), and two cases end to end through the
stack (``slow``: the 2-D ecm_cell example, and a cancelled ageing study keeping its
cycles). About 5 s without the stack, 19 s with it.
"""

from __future__ import annotations

import copy
import json
import time

import pytest

from functions import submit
from shared.contract.job import Job
from shared.store import jobs as job_store
from tests.conftest import REPO
from tests.conftest import submit as post_to_stack
from tests.test_submit_function import call, fields_of, published, settings  # noqa: F401 - fixtures

ECM_TABLES = json.loads((REPO / "examples" / "ecm_cell_tables.json").read_text())  # 2-D tables (temperatures_C)
THEVENIN = {"model": {"name": "Thevenin"}, "protocol": {"type": "constant_current", "current_A": 50, "duration_s": 60}}
IMPEDANCE = {"model": {"name": "SPM"}, "protocol": {"type": "impedance", "frequencies_Hz": [1, 10]}}


def arrays_in_arrays(value, inside_array: bool = False) -> bool:
    """Whether ``value`` holds an array directly inside an array (Firestore refuses it)."""
    if isinstance(value, list):
        return inside_array or any(arrays_in_arrays(v, True) for v in value)
    if isinstance(value, dict):
        return any(arrays_in_arrays(v) for v in value.values())
    return False


# --------------------------------------------------------------------------
# An ecm_cell with 2-D tables (temperatures_C) was a 503 at submit: the store
# refused the job's rows ("Cannot convert an array value in an array value").
# --------------------------------------------------------------------------
def test_a_dumped_2d_ecm_cell_holds_no_array_in_an_array_and_validates_back():
    job = Job.model_validate(ECM_TABLES)
    dumped = job.model_dump(mode="json", exclude_none=True)
    assert not arrays_in_arrays(dumped), dumped["ecm_cell"]
    again = Job.model_validate(dumped)
    assert again == job
    assert again.ecm_cell.r0_Ohm == ECM_TABLES["ecm_cell"]["r0_Ohm"]
    assert again.ecm_cell.rc_pairs[1].c_F == ECM_TABLES["ecm_cell"]["rc_pairs"][1]["c_F"]
    assert Job.model_validate_json(job.model_dump_json()) == job  # the Pub/Sub message's way


def test_a_2d_ecm_cell_job_is_accepted_and_recorded(published, firestore_emulator):
    status, reply, _ = call("POST", "/jobs", ECM_TABLES)

    assert status == 202, reply
    record = job_store.store().get(reply["jobId"])
    assert record["status"] == "queued"
    assert Job.model_validate(record["job"]) == Job.model_validate(ECM_TABLES)  # requeue reads it back so
    assert published.envelopes[0].job.ecm_cell.r0_Ohm == ECM_TABLES["ecm_cell"]["r0_Ohm"]


def test_a_sweep_of_2d_ecm_cells_is_accepted(published, firestore_emulator):
    status, reply, _ = call("POST", "/sweeps", {"base": ECM_TABLES, "vary": {"ecm_cell.capacity_Ah": [5, 10]}})

    assert status == 202, reply
    assert reply["members"] == 2 and len(published.envelopes) == 2
    assert [e.job.ecm_cell.capacity_Ah for e in published.envelopes] == [5, 10]
    assert not arrays_in_arrays(submit.storable(ECM_TABLES))


# --------------------------------------------------------------------------
# A Thevenin job was stored as parameter_set "Chen2020" (the lithium-ion default):
# the job GET /jobs/<id> shows was not the one run, and was refused if sent again.
# --------------------------------------------------------------------------
@pytest.mark.parametrize("body, stored_set", [(THEVENIN, "ECM_Example"), (ECM_TABLES, None)],
                         ids=["ECM_Example", "ecm_cell"])
def test_a_thevenin_job_is_stored_as_run_and_its_stored_form_is_accepted_again(
        published, firestore_emulator, body, stored_set):
    status, reply, _ = call("POST", "/jobs", body)
    assert status == 202, reply
    status, view, _ = call("GET", f"/jobs/{reply['jobId']}")
    assert status == 200
    assert view["job"].get("parameter_set") == stored_set

    status, again, _ = call("POST", "/jobs", copy.deepcopy(view["job"]))

    assert status == 202, again


# --------------------------------------------------------------------------
# Impedance frequencies and SOCs out of range were 400s on "protocol" (the field
# only in the message): they name protocol.frequencies_Hz / protocol.socs.
# --------------------------------------------------------------------------
@pytest.mark.parametrize("change, field, text", [
    ({"frequencies_Hz": [1, 1e-5]}, "protocol.frequencies_Hz", "outside [0.0001, 1e+06] Hz"),
    ({"frequencies_Hz": [0]}, "protocol.frequencies_Hz", "outside [0.0001, 1e+06] Hz"),
    ({"frequencies_Hz": [float("nan")]}, "protocol.frequencies_Hz", "outside [0.0001, 1e+06] Hz"),
    ({"socs": [0.5, 1.1]}, "protocol.socs", "outside [0, 1]"),
    ({"socs": [float("-inf")]}, "protocol.socs", "outside [0, 1]"),
])
def test_impedance_values_out_of_range_are_400s_naming_their_field(published, change, field, text):
    body = copy.deepcopy(IMPEDANCE)
    body["protocol"].update(change)

    status, reply, _ = call("POST", "/jobs", data=json.dumps(body))  # NaN/Infinity as Python's json writes them

    assert status == 400, reply
    assert fields_of(reply) == [field], reply
    assert text in reply["errors"][0]["error"]
    assert published.calls == 0


# --------------------------------------------------------------------------
# End to end: the README's own 2-D ecm_cell example runs through the stack.
# --------------------------------------------------------------------------
@pytest.mark.slow
def test_the_2d_ecm_cell_example_runs_end_to_end_with_one_outcome(stack, receiver):
    """Accepted, one ``succeeded`` callback, its record listed; the callback's voltages
    equal the engine's in process (same code, same solver: within 1e-9 V)."""
    import numpy as np

    from shared.engine import kinds

    reply = post_to_stack(stack, "/jobs", ECM_TABLES)
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["jobId"]
    result = receiver.wait_for([job_id], 120)[job_id]
    time.sleep(1)  # no second outcome follows
    assert receiver.statuses[job_id] == ["succeeded"]
    assert result["completed"] is True
    import requests

    view = requests.get(f"{stack.submit_url}/jobs/{job_id}", timeout=30).json()
    assert view["status"] == "succeeded"
    want = kinds.simulate(Job.model_validate(ECM_TABLES))
    np.testing.assert_allclose(result["columns"]["Voltage [V]"], want["columns"]["Voltage [V]"], rtol=0, atol=1e-9)


# --------------------------------------------------------------------------
# A running study that is cancelled keeps the cycles it completed (issue 13: cancel
# "stops at the next cycle boundary and keeps what was done"); it once ended with none.
# --------------------------------------------------------------------------
@pytest.mark.slow
def test_a_cancelled_ageing_study_keeps_the_cycles_it_did(stack, receiver):
    import requests

    body = json.loads((REPO / "examples" / "ageing_study.json").read_text())
    body["protocol"].update(cycles=1000, progress_every_cycles=50, end_of_life={"capacity_percent": 50})
    reply = post_to_stack(stack, "/jobs", body)
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["jobId"]
    deadline = time.monotonic() + 120
    while (requests.get(f"{stack.submit_url}/jobs/{job_id}", timeout=30).json().get("progress") or {}) \
            .get("cyclesDone", 0) < 50:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert requests.post(f"{stack.submit_url}/jobs/{job_id}/cancel", timeout=30).status_code in (200, 202)
    result = receiver.wait_for([job_id], 120)[job_id]
    assert receiver.statuses[job_id] == ["cancelled"]
    assert result["completed"] is False
    rows = result.get("cycles") or []
    assert len(rows) >= 50  # the cycles done before the cancel
    assert [row["cycle"] for row in rows] == list(range(1, len(rows) + 1))  # each once, in order
    assert f"the {len(rows)} cycles completed are kept" in result["error"]
    view = requests.get(f"{stack.submit_url}/jobs/{job_id}", timeout=30).json()
    assert view["status"] == "cancelled" and view["progress"]["cyclesDone"] == len(rows)
    assert view["progress"]["etaSeconds"] == 0

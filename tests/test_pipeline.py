"""End to end through the real parts: the Pub/Sub emulator, the submit and worker
functions as functions-framework processes, and an HTTP receiver for callbacks.

The Java Job Manager's exact requests go in; the original callback paths and
bodies (plus status fields) must come out, with voltages matching a direct
PyBaMM solve within 1 mV.
"""

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pybamm
import pytest
import requests

from tests.conftest import JAVA_CELL, JAVA_DRIVE_CYCLE, audit_subscription, pulled_job_ids, submit

pytestmark = pytest.mark.slow


def direct_dfn_voltage(t, current, capacity=5.0, initial_soc=None):
    pv = pybamm.ParameterValues("Chen2020")
    pv.update({"Current function [A]": current, "Nominal cell capacity [A.h]": capacity,
               "Upper voltage cut-off [V]": 4.2, "Lower voltage cut-off [V]": 2.5})
    sim = pybamm.Simulation(pybamm.lithium_ion.DFN(), parameter_values=pv,
                            solver=pybamm.IDAKLUSolver(atol=1e-8, rtol=1e-8))
    sol = sim.solve([0, float(t[-1])], t_interp=np.asarray(t), initial_soc=initial_soc)
    return sol["Voltage [V]"](np.asarray(t))


def test_java_job_manager_requests_round_trip(stack, receiver):
    """Both Java bodies plus a second cell job, submitted at once (3 jobs in flight)."""
    second_cell = {**JAVA_CELL, "controlCurrent": 2.5, "time": 0.5}
    with ThreadPoolExecutor(3) as pool:
        replies = list(pool.map(lambda pb: submit(stack, *pb),
                                [("/cell/simulate", JAVA_CELL), ("/drivecycle/simulate", JAVA_DRIVE_CYCLE),
                                 ("/cell/simulate", second_cell)]))
    for reply, kind in zip(replies, ("cell", "driveCycle", "cell")):
        assert reply.status_code == 202, reply.text
        assert reply.json()["status"] == "queued" and reply.json()["simulationType"] == kind
    ids = [r.json()["jobId"] for r in replies]
    results = receiver.wait_for(ids, timeout_s=180)

    cell, drive, cell2 = (results[i] for i in ids)
    assert receiver.paths[ids[0]] == "/simulateCell"
    assert receiver.paths[ids[1]] == "/simulateDriveCycle"
    for body, job_id in zip((cell, drive, cell2), ids):
        assert body["id"] == job_id and body["status"] == "succeeded" and body["jobStarted"]
        assert set(body["result"][0]) == {"time", "voltage", "current", "dcap"}

    # 1 h at 5 A on a 5 A.h cell reaches 2.5 V just before the hour: reported, not hidden
    assert cell["termination"] == "event: Minimum voltage [V]" and cell["completed"] is False
    t = [p["time"] for p in cell["result"]]
    v = [p["voltage"] for p in cell["result"]]
    assert np.max(np.abs(np.array(v) - direct_dfn_voltage(t, 5.0))) <= 1e-3

    assert cell2["termination"] == "final time" and cell2["completed"] is True
    assert cell2["result"][-1]["time"] == pytest.approx(1800.0)
    assert cell2["result"][-1]["dcap"] == pytest.approx(1.25, rel=1e-6)

    assert drive["termination"] == "final time" and drive["endTime"] == pytest.approx(600.0)
    assert len(drive["result"]) == 601
    assert max(p["voltage"] for p in drive["result"]) <= 4.2


def test_invalid_body_is_400_naming_fields_and_nothing_is_published(stack):
    audit = audit_subscription(stack)
    reply = submit(stack, "/cell/simulate", {**JAVA_CELL, "nominalCell": -5, "controlCurrent": "lots"})
    assert reply.status_code == 400
    fields = {e["field"] for e in reply.json()["errors"]}
    assert {"nominalCell", "controlCurrent"} <= fields
    reply = submit(stack, "/cell/simulate", {**JAVA_CELL, "lowerVoltage": 4.3, "upperVoltage": 4.2})
    assert reply.status_code == 400 and "lowerVoltage" in reply.text
    assert requests.post(stack.submit_url + "/cell/simulate", data="{not json",
                         headers={"Content-Type": "application/json"}).status_code == 400
    # positive control: the audit subscription does see a job that is accepted
    control = submit(stack, "/cell/simulate", {**JAVA_CELL, "time": 0.05, "id": f"control-{time.monotonic_ns()}"})
    assert control.status_code == 202
    assert pulled_job_ids(stack, audit) == [control.json()["jobId"]]


def test_unknown_route_is_404_and_wrong_method_is_405(stack):
    assert requests.get(stack.submit_url + "/nope").status_code == 404
    reply = requests.get(stack.submit_url + "/cell/simulate")
    assert reply.status_code == 405 and "POST" in reply.headers["Allow"]


def test_a_job_that_cannot_be_simulated_ends_in_one_failed_callback(stack, receiver):
    reply = submit(stack, "/cell/simulate", {**JAVA_CELL, "upperVoltage": 3.0, "lowerVoltage": 2.9})
    assert reply.status_code == 202
    job_id = reply.json()["jobId"]
    body = receiver.wait_for([job_id], timeout_s=60)[job_id]
    assert body["status"] == "failed" and "cut-off" in body["error"] and body["result"] == []
    time.sleep(3)  # a redelivery loop would post again within ~1 s
    assert [d for d in receiver.deliveries if d[1] == job_id] == [("/simulateCell", job_id)]


def test_caller_supplied_id_is_kept(stack, receiver):
    reply = submit(stack, "/cell/simulate", {**JAVA_CELL, "id": "jm-1234", "time": 0.1})
    assert reply.json()["jobId"] == "jm-1234"
    assert receiver.wait_for(["jm-1234"], timeout_s=60)["jm-1234"]["status"] == "succeeded"


def test_native_job_round_trip_with_columnar_result(stack, receiver):
    body = {"model": {"name": "SPMe", "options": {"thermal": "lumped"}}, "parameter_set": "Chen2020",
            "protocol": {"type": "experiment", "steps": ["Discharge at 1C until 3.2 V", "Rest for 5 minutes"]},
            "conditions": {"ambient_temperature_C": 10, "initial_soc": 1.0},
            "outputs": {"variables": ["Time [s]", "Voltage [V]", "Volume-averaged cell temperature [K]"]}}
    reply = submit(stack, "/jobs", body)
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["jobId"]
    result = receiver.wait_for([job_id], timeout_s=120)[job_id]
    assert receiver.paths[job_id] == "/simulationResult"
    assert result["status"] == "succeeded" and result["completed"] is True
    assert set(result["columns"]) == {"Time [s]", "Voltage [V]", "Volume-averaged cell temperature [K]"}
    assert result["cycles"][0]["Minimum voltage [V]"] >= 3.2 - 1e-3
    assert result["summary"]["Maximum cell temperature [degC]"] > 10


def test_native_validation_names_fields_before_publishing(stack):
    reply = submit(stack, "/jobs", {"protocol": {"type": "constant_current", "c_rate": 1},
                                    "parameters": {"Colour [RGB]": 1},
                                    "outputs": {"variables": ["Flux [GW]"]}})
    assert reply.status_code == 400
    fields = {e["field"] for e in reply.json()["errors"]}
    assert {"parameters.Colour [RGB]", "outputs.variables"} <= fields


def test_catalog_and_schema_are_served(stack):
    catalog = requests.get(stack.submit_url + "/catalog", timeout=60).json()
    assert "DFN" in catalog["models"] and "US06" in catalog["drive_cycles"]["installed"]
    schema = requests.get(stack.submit_url + "/schema", timeout=30).json()
    assert schema["title"] == "Battery simulation job" and "protocol" in schema["properties"]

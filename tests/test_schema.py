"""Validation of the Java Job Manager's legacy body and the native job."""

import pytest
from pydantic import ValidationError

from shared.contract.job import Job, error_list

from shared.contract.legacy import DRIVE_CYCLE_DEFAULT_INITIAL_SOC, LegacyRequest
from tests.conftest import JAVA_CELL, JAVA_DRIVE_CYCLE


def fields_of(exc_info):
    return {e["field"] for e in error_list(exc_info.value)}


def test_java_cell_body_maps_to_pybamm_names():
    job = LegacyRequest.model_validate(JAVA_CELL).to_job("cell")
    assert job.model.name == "DFN" and job.parameter_set == "Chen2020"
    assert job.parameters == {"Upper voltage cut-off [V]": 4.2, "Lower voltage cut-off [V]": 2.5,
                              "Nominal cell capacity [A.h]": 5.0}
    assert job.protocol.type == "constant_current"
    assert job.protocol.current_A == 5.0 and job.protocol.duration_s == 3600.0


def test_java_drive_cycle_body_ignores_time_and_current():
    job = LegacyRequest.model_validate(JAVA_DRIVE_CYCLE).to_job("driveCycle")
    assert job.protocol.type == "drive_cycle" and job.protocol.name == "US06"
    assert job.conditions.initial_soc == DRIVE_CYCLE_DEFAULT_INITIAL_SOC


@pytest.mark.parametrize("body", [{}, {k: None for k in JAVA_CELL}])
def test_absent_or_null_fields_take_the_original_defaults(body):
    job = LegacyRequest.model_validate(body).to_job("cell")
    assert job.parameters["Upper voltage cut-off [V]"] == 4.2
    assert job.parameters["Lower voltage cut-off [V]"] == 2.5
    assert job.parameters["Nominal cell capacity [A.h]"] == 8.6
    assert job.protocol.current_A == 5.0
    assert job.protocol.duration_s == 3600.0


@pytest.mark.parametrize(
    "change, field",
    [
        ({"nominalCell": 0}, "nominalCell"),
        ({"nominalCell": -3}, "nominalCell"),
        ({"upperVoltage": 9.0}, "upperVoltage"),
        ({"lowerVoltage": 0.1}, "lowerVoltage"),
        ({"controlCurrent": 1e6}, "controlCurrent"),
        ({"time": -1}, "time"),
        ({"time": "an hour"}, "time"),
        ({"time": True}, "time"),
    ],
)
def test_out_of_range_fields_are_named(change, field):
    with pytest.raises(ValidationError) as info:
        LegacyRequest.model_validate({**JAVA_CELL, **change})
    assert field in fields_of(info)


def test_lower_cut_off_at_or_above_upper_is_rejected():
    with pytest.raises(ValidationError) as info:
        LegacyRequest.model_validate({**JAVA_CELL, "lowerVoltage": 4.2, "upperVoltage": 4.2})
    assert "lowerVoltage" in str(error_list(info.value))


def test_caller_id_is_kept_and_numeric_ids_become_text():
    assert LegacyRequest.model_validate({**JAVA_CELL, "id": 42}).id == "42"
    assert LegacyRequest.model_validate({**JAVA_CELL, "id": "job-7"}).id == "job-7"


def test_native_job_rejects_unknown_fields_and_bad_protocols():
    with pytest.raises(ValidationError) as info:
        Job.model_validate({"protocol": {"type": "constant_current", "current_A": 1, "c_rate": 1}})
    assert "protocol" in fields_of(info)
    with pytest.raises(ValidationError) as info:
        Job.model_validate({"protocol": {"type": "constant_current", "current_A": 1}, "colour": "red"})
    assert "colour" in fields_of(info)
    with pytest.raises(ValidationError):
        Job.model_validate({"protocol": {"type": "drive_cycle", "time_s": [0, 1, 1], "current_A": [1, 2, 3]}})


@pytest.mark.parametrize("hours", [0, 49, 1e9])
def test_cell_duration_outside_the_limit_names_time(hours):
    legacy = LegacyRequest.model_validate({**JAVA_CELL, "time": hours})
    assert [e["field"] for e in legacy.errors_for("cell")] == ["time"]
    assert legacy.errors_for("driveCycle") == []  # the Job Manager sends time 0.0 for drive cycles


def test_every_accepted_legacy_body_becomes_a_valid_job():
    bodies = (JAVA_CELL, JAVA_DRIVE_CYCLE, {"controlCurrent": -500, "nominalCell": 1000, "time": 48})
    validated = set()
    for n, body in enumerate(bodies):
        legacy = LegacyRequest.model_validate(body)
        for kind in ("cell", "driveCycle"):
            if not legacy.errors_for(kind):
                assert Job.model_validate(legacy.to_job(kind).model_dump())
                validated.add((n, kind))
    assert {(0, "cell"), (1, "driveCycle"), (2, "cell")} <= validated  # the loop did check them

"""The dead-letter function in process, against the real Firestore emulator and a real
receiver: every job Pub/Sub gave up on ends in exactly one recorded outcome, and a
result whose callback never landed gets one last attempt. (End to end through the
emulator's dead-letter topic: tests/test_job_store.py.)"""

from __future__ import annotations

import uuid

import pytest

from cli.receiver import Receiver
from functions import dead_letters
from shared.delivery import callback, messages
from shared.settings import get_settings
from shared.store import jobs as job_store
from tests.conftest import envelope
from tests.test_messages import push_body


@pytest.fixture
def job_manager(monkeypatch, firestore_emulator):
    with Receiver() as r:
        monkeypatch.setenv("JOB_MANAGER_URL", r.url)
        monkeypatch.setenv("CALLBACK_TOTAL_BUDGET_S", "2")
        get_settings.cache_clear()
        yield r
    get_settings.cache_clear()


def dead_letter(env) -> dict:
    data, attributes = messages.encode(env)
    return push_body(data, attributes)


def new_envelope():
    return envelope().model_copy(update={"job_id": f"dl-{uuid.uuid4().hex[:10]}"})


def test_a_job_without_an_outcome_is_recorded_failed_and_reported_once(job_manager):
    store = job_store.store()
    env = new_envelope()
    store.create(env)
    store.start(env)  # a worker claimed it, then died (each time)

    body = dead_letters.handle(dead_letter(env))

    record = store.get(env.job_id)
    assert record["status"] == "failed" and "dead-lettered" in record["error"]
    assert body["status"] == "failed" and body["result"] == []
    received = job_manager.wait_for([env.job_id], 10)[env.job_id]
    assert received["status"] == "failed" and job_manager.paths[env.job_id] == "/simulateCell"
    assert record["callback"]["state"] == "delivered"
    dead_letters.handle(dead_letter(env))  # the same dead letter again: nothing more is sent
    assert job_manager.statuses[env.job_id] == ["failed"]


def test_a_result_whose_callback_never_landed_gets_one_last_attempt(job_manager):
    store = job_store.store()
    env = new_envelope()
    store.create(env)
    store.start(env)
    stored = callback.body_for(env, "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z", 1,
                               result={"termination": "final time", "completed": True, "stoppedEarly": False,
                                       "endTime": 1.0, "summary": {"x": 1}, "columns": {
                                           "Time [s]": [0.0, 1.0], "Voltage [V]": [4.0, 3.9],
                                           "Current [A]": [5.0, 5.0], "Discharge capacity [A.h]": [0.0, 0.01]}})
    store.finish(env.job_id, stored)
    store.record_callback(env.job_id, "undelivered", error="receiver answered 503")

    dead_letters.handle(dead_letter(env))

    received = job_manager.wait_for([env.job_id], 10)[env.job_id]
    assert received["status"] == "succeeded" and received["result"] == stored["result"]
    record = store.get(env.job_id)
    assert record["status"] == "succeeded" and record["callback"]["state"] == "delivered"


def test_a_job_cancelled_while_queued_is_reported_cancelled_once(job_manager):
    # cancelled while its message waited: the outcome has no body; the dead letter gives it
    # one and reports it (the receiver must learn the job ended)
    store = job_store.store()
    env = new_envelope()
    store.create(env)
    store.cancel(env.job_id)

    body = dead_letters.handle(dead_letter(env))

    assert body["status"] == "cancelled" and body["result"] == []
    received = job_manager.wait_for([env.job_id], 10)[env.job_id]
    assert received["status"] == "cancelled"
    record = store.get(env.job_id)
    assert record["status"] == "cancelled" and record["callback"]["state"] == "delivered"
    assert store.result(env.job_id, record)["status"] == "cancelled"
    dead_letters.handle(dead_letter(env))
    assert job_manager.statuses[env.job_id] == ["cancelled"]


def test_a_job_already_reported_is_left_alone(job_manager):
    store = job_store.store()
    env = new_envelope()
    store.create(env)
    store.finish(env.job_id, callback.body_for(env, None, "2026-01-01T00:00:02Z", 1, error="x"))
    store.record_callback(env.job_id, "delivered", 200)

    assert dead_letters.handle(dead_letter(env)) == {}
    assert env.job_id not in job_manager.results


def test_a_last_attempt_that_fails_is_recorded_and_the_dead_letter_still_acked(monkeypatch, firestore_emulator):
    from local.stack import free_port

    monkeypatch.setenv("JOB_MANAGER_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv("CALLBACK_TOTAL_BUDGET_S", "1")
    get_settings.cache_clear()
    try:
        store = job_store.store()
        env = new_envelope()
        store.create(env)
        body = dead_letters.handle(dead_letter(env))  # returns: acked, not raised
        record = store.get(env.job_id)
        assert body["status"] == "failed" and record["status"] == "failed"
        assert record["callback"]["state"] == "undelivered"
    finally:
        get_settings.cache_clear()

"""The worker's entry point in a real functions-framework app (in process, Flask's test
client): a push that reaches an instance already solving is refused with 503, so that
Pub/Sub delivers it again, and the refusal is a warning in the log, not an error with a
stack trace."""

from __future__ import annotations

import base64
import json
import logging

import functions_framework
import pytest

from functions import worker
from shared.settings import get_settings
from tests.conftest import envelope


@pytest.fixture
def worker_app(monkeypatch):
    monkeypatch.setenv("BUSY_WAIT_S", "0.05")
    get_settings.cache_clear()
    app = functions_framework.create_app(target="run_simulation", source="main.py", signature_type="cloudevent")
    yield app.test_client()
    get_settings.cache_clear()


def push(env) -> dict:
    return {"message": {"data": base64.b64encode(env.model_dump_json().encode()).decode(), "attributes": {},
                        "messageId": "m-1", "publishTime": "2026-01-01T00:00:00Z"},
            "subscription": "projects/p/subscriptions/s"}


def test_a_push_to_a_busy_instance_is_503_and_a_warning(worker_app, caplog):
    assert worker._SLOT.acquire(timeout=5)  # this instance is solving another job
    try:
        with caplog.at_level(logging.INFO):
            reply = worker_app.post("/", data=json.dumps(push(envelope())), content_type="application/json",
                                    headers={"ce-id": "1", "ce-source": "//pubsub", "ce-specversion": "1.0",
                                             "ce-type": "google.cloud.pubsub.topic.v1.messagePublished"})
    finally:
        worker._SLOT.release()
    assert reply.status_code == 503
    assert "busy" in reply.get_json()["error"]
    refused = [r for r in caplog.records if "push refused" in r.getMessage()]
    assert refused and all(r.levelno == logging.WARNING for r in refused)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

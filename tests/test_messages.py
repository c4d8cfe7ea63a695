"""Pub/Sub message encoding and the worker's decoding of push CloudEvents."""

import base64
import json

import pytest

from shared.delivery import messages
from tests.conftest import envelope


def push_body(data: bytes, attributes=None):
    """What the emulator pushes (and functions-framework hands over as CloudEvent data)."""
    return {"subscription": "projects/p/subscriptions/s",
            "message": {"data": base64.b64encode(data).decode(), "messageId": "1",
                        "attributes": attributes or {}}}


def test_round_trip():
    data, attributes = messages.encode(envelope())
    assert attributes == {"jobId": "job-1", "kind": "cell"}
    decoded = messages.decode(push_body(data, attributes))
    assert decoded == envelope()


def test_undecodable_data_is_poison_but_keeps_the_job_id():
    with pytest.raises(messages.PoisonMessage) as info:
        messages.decode({"message": {"data": "%%%not base64", "attributes": {"jobId": "j9", "kind": "cell"}}})
    assert info.value.job_id == "j9" and info.value.kind == "cell"


def test_schema_invalid_job_is_poison_with_a_reason():
    bad = json.dumps({"job_id": "j2", "kind": "cell", "submitted_at": "x", "job": {"protocol": {}}}).encode()
    with pytest.raises(messages.PoisonMessage) as info:
        messages.decode(push_body(bad))
    assert info.value.job_id == "j2"
    assert "protocol" in info.value.reason


def test_event_without_message_is_poison():
    with pytest.raises(messages.PoisonMessage):
        messages.decode({"hello": "world"})


def test_oversized_job_is_refused_before_publishing():
    big = envelope().model_copy()
    big.job.parameters = {f"p{i}": float(i) for i in range(30000)}
    with pytest.raises(messages.MessageTooLarge):
        messages.encode(big)


def test_delivery_attempt_is_read_when_present():
    assert messages.delivery_attempt({"deliveryAttempt": 3, "message": {}}) == 3
    assert messages.delivery_attempt({"message": {}}) is None

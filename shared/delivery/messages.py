"""Encoding jobs into Pub/Sub messages, and decoding the worker's CloudEvents."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Optional

from pydantic import ValidationError

from shared.contract.envelope import Envelope

# Pub/Sub accepts 10 MB, but the Eventarc event that triggers a 2nd-gen function
# is limited to 512 KB; jobs stay far below that.
MAX_MESSAGE_BYTES = 256 * 1024


class PoisonMessage(Exception):
    """A message the worker cannot turn into a job; ``job_id`` and ``kind`` if known."""

    def __init__(self, reason: str, job_id: Optional[str] = None, kind: Optional[str] = None):
        super().__init__(reason)
        self.reason = reason
        self.job_id = job_id
        self.kind = kind


class MessageTooLarge(ValueError):
    pass


def encode(envelope: Envelope) -> tuple[bytes, dict[str, str]]:
    """Message data and attributes for one job."""
    data = envelope.model_dump_json(exclude_none=True).encode()
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(
            f"the job is {len(data)} bytes once encoded; the limit is {MAX_MESSAGE_BYTES} bytes "
            "(shorten inline drive cycles or BPX documents)"
        )
    attributes = {"jobId": envelope.job_id, "kind": envelope.kind}
    return data, attributes


def delivery_attempt(event_data: Any) -> Optional[int]:
    """Pub/Sub's delivery attempt (present when a dead-letter policy is set)."""
    if isinstance(event_data, dict):
        for key in ("deliveryAttempt", "delivery_attempt"):
            if isinstance(event_data.get(key), int):
                return event_data[key]
    return None


def decode(event_data: Any) -> Envelope:
    """The job in a Pub/Sub CloudEvent's data (``{"message": {"data": base64, ...}}``)."""
    message = event_data.get("message") if isinstance(event_data, dict) else None
    if not isinstance(message, dict):
        raise PoisonMessage("the event carries no Pub/Sub message")
    attributes = message.get("attributes") or {}
    job_id = attributes.get("jobId") if isinstance(attributes, dict) else None
    kind = attributes.get("kind") if isinstance(attributes, dict) else None
    try:
        raw = base64.b64decode(message.get("data") or "", validate=True)
        payload = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise PoisonMessage(f"message data is not base64 JSON ({type(exc).__name__})", job_id, kind=kind)
    if isinstance(payload, dict):
        job_id = payload.get("job_id", job_id) if isinstance(payload.get("job_id"), str) else job_id
        kind = payload.get("kind", kind) if isinstance(payload.get("kind"), str) else kind
    try:
        return Envelope.model_validate(payload)
    except ValidationError as exc:
        fields = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)[:5]
        )
        raise PoisonMessage(f"the job message is invalid: {fields}", job_id, kind=kind) from exc

"""The dead-letter function: every job Pub/Sub gave up on ends in one recorded outcome.

The worker's subscription dead-letters a message after ``MAX_DELIVERY_ATTEMPTS``
deliveries (a worker killed each time, a callback that never lands). Real Pub/Sub
tells the worker which delivery it is, so the worker reports the last one itself;
the emulator does not. This function is triggered by the dead-letter topic: a job
with no outcome yet is recorded ``failed`` (saying it was dead-lettered), and a job
whose callback never landed gets one last attempt; either way the message is acked.
Only a store it cannot reach makes it fail (and the dead letter is redelivered).
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from functions import worker
from shared.delivery import callback, messages
from shared.store import jobs as job_store

log = logging.getLogger("dead_letters")


def handle(event_data: Any, event_id: Optional[str] = None) -> dict[str, Any]:
    fields: dict[str, Any] = {"eventId": event_id, "stage": "dead-letter"}
    try:
        envelope = messages.decode(event_data)
    except messages.PoisonMessage as poison:  # never a job: the worker reported it when it acked it
        log.error("poison dead letter dropped", extra={"fields": {**fields, "jobId": poison.job_id,
                                                                  "error": poison.reason}})
        return {}
    fields.update(jobId=envelope.job_id, kind=envelope.kind)
    store = job_store.store()
    record = store.get(envelope.job_id)
    try:
        target = callback.resolve_target(envelope.kind, envelope.callback_url)
    except callback.CallbackNotAllowed:
        target = callback.resolve_target(envelope.kind, None)
    if record is not None and record.get("status") in job_store.FINISHED:
        if (record.get("callback") or {}).get("state") in ("delivered", "rejected", "disabled"):
            log.info("dead letter of a job already reported", extra={"fields": fields})
            return {}
        body = store.result(envelope.job_id, record)
        if body is None:  # cancelled while queued: its outcome has no body yet; give it one
            body = callback.body_for(envelope, record.get("startedAt"), record.get("finishedAt") or worker._now(),
                                     None, error=record.get("error") or "cancelled before it started",
                                     status=record["status"])
            store.finish(envelope.job_id, body)
        log.warning("last callback attempt for a dead-lettered job", extra={"fields": fields})
    else:
        if record is None:  # published straight to the topic, never recorded
            store.create(envelope)
        attempts = (record or {}).get("deliveryAttempts") or 0
        reason = (f"dead-lettered: the service gave up after {attempts} started deliveries; no worker "
                  "finished the job (crashed or killed each time?)") if attempts else (
                  "dead-lettered: no worker instance took the job in its deliveries (all busy?)")
        body = callback.body_for(envelope, (record or {}).get("startedAt"), worker._now(), attempts or None,
                                 error=reason)
        store.finish(envelope.job_id, body)
        log.error("dead-lettered job recorded failed", extra={"fields": fields})
    worker.send_callback(target, body, envelope.job_id, envelope.kind, fields, final=True)
    return body

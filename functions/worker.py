"""The Pub/Sub-triggered worker: one message, one simulation, one callback.

Outcomes:
* simulated (or failed to simulate) and the callback delivered -> return, Pub/Sub acks;
* the callback could not be delivered (network, 5xx, 429) -> raise, Pub/Sub redelivers
  (the subscription's retry policy and dead-letter topic bound the retries);
* a poison message -> failure callback where a target is known, a log line, ack.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any, Optional

from shared.delivery import callback, messages
from shared.engine.errors import SimulationError
from shared.engine.solver_process import SolverProcess
from shared.settings import get_settings

log = logging.getLogger("worker")
_solver: Optional[SolverProcess] = None


def check_configuration() -> None:
    """Called where the worker function starts (``main.py``): a bad setting, such as an
    unknown ``SOLVER_COMPILE``, stops it there instead of failing each job."""
    get_settings()


def solver() -> SolverProcess:
    global _solver
    if _solver is None:
        _solver = SolverProcess()
    return _solver


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def handle(event_data: Any, event_id: Optional[str] = None) -> dict[str, Any]:
    """Process one Pub/Sub push (the CloudEvent's ``data``). Returns the callback body sent."""
    settings = get_settings()
    attempt = messages.delivery_attempt(event_data)
    fields = {"eventId": event_id, "attempt": attempt}
    try:
        envelope = messages.decode(event_data)
    except messages.PoisonMessage as poison:
        return _poison(poison, attempt, fields)

    fields.update(jobId=envelope.job_id, kind=envelope.kind)
    try:
        # resolved here, not trusted from the message: a message published straight
        # to the topic must not turn the worker into a request-forgery relay
        target = callback.resolve_target(envelope.kind, envelope.callback_url, settings)
    except callback.CallbackNotAllowed as exc:
        log.error("callback URL refused; reporting to the Job Manager instead",
                  extra={"fields": {**fields, "stage": "route"}})
        target = callback.resolve_target(envelope.kind, None, settings)
        return _fail(envelope, target, attempt, fields, str(exc))

    if attempt is not None and attempt >= settings.max_delivery_attempts:
        # the last delivery before the dead-letter topic: whatever killed the earlier
        # attempts (a crash, an out-of-memory kill) must not leave the job without an outcome
        log.error("giving up after repeated deliveries", extra={"fields": {**fields, "stage": "worker"}})
        return _fail(envelope, target, attempt, fields, (
            f"the service gave up after {attempt} delivery attempts (the worker did not finish the "
            "earlier ones)"))
    try:
        return _simulate_and_report(envelope, target, attempt, fields, settings)
    except callback.CallbackUndelivered:
        raise  # Pub/Sub redelivers
    except Exception as exc:  # noqa: BLE001 - a bug must still end in one outcome
        log.exception("worker error", extra={"fields": {**fields, "stage": "worker"}})
        return _fail(envelope, target, attempt, fields, f"internal service error ({type(exc).__name__})")


def _fail(envelope, target: str, attempt, fields, error: str) -> dict[str, Any]:
    """Report a job that will not be simulated as ``failed``; return the body sent."""
    body = callback.body_for(envelope, _now(), _now(), attempt, error=error)
    _send(target, body, envelope.job_id, attempt, fields, compress=False)
    return body


def _simulate_and_report(envelope, target: str, attempt, fields, settings) -> dict[str, Any]:
    started = _now()
    t0 = time.perf_counter()
    log.info("simulation started", extra={"fields": {**fields, "stage": "simulate"}})
    try:
        result = solver().run(envelope.job, settings.job_time_budget_s)
    except SimulationError as exc:
        body = callback.body_for(envelope, started, _now(), attempt, error=str(exc))
        log.warning("simulation failed", extra={"fields": {
            **fields, "stage": "simulate", "elapsed_s": round(time.perf_counter() - t0, 4), "error": str(exc)}})
    else:
        body = callback.body_for(envelope, started, _now(), attempt, result=result)
        log.info("simulation finished", extra={"fields": {
            **fields, "stage": "simulate", "elapsed_s": round(time.perf_counter() - t0, 4),
            "termination": body["termination"], "cache": (result.get("timings") or {}).get("cache")}})
    _send(target, body, envelope.job_id, attempt, fields, compress=callback.compressible(envelope.kind))
    return body


def _send(url: str, body: dict[str, Any], job_id: str, attempt, fields, compress: bool) -> None:
    t0 = time.perf_counter()
    try:
        status = callback.deliver(url, body, job_id, attempt, compress=compress)
    except callback.CallbackRejected as exc:
        # permanent: retrying cannot help; ack so it does not loop
        log.error("callback rejected", extra={"fields": {**fields, "stage": "callback", "error": str(exc)}})
        return
    except callback.CallbackUndelivered as exc:
        log.error("callback undelivered; Pub/Sub will redeliver",
                  extra={"fields": {**fields, "stage": "callback", "error": str(exc)}})
        raise
    log.info("callback delivered", extra={"fields": {
        **fields, "stage": "callback", "status": status, "elapsed_s": round(time.perf_counter() - t0, 4)}})


def _poison(poison: messages.PoisonMessage, attempt, fields) -> dict[str, Any]:
    fields = {**fields, "jobId": poison.job_id, "stage": "decode"}
    log.error("poison message acknowledged", extra={"fields": {**fields, "error": poison.reason}})
    if not poison.job_id:
        return {}
    try:
        url = callback.resolve_target(poison.kind or "native", None)
    except callback.CallbackNotAllowed:
        return {}
    body = callback.failure_body(poison.job_id, poison.kind, poison.reason, attempt)
    _send(url, body, poison.job_id, attempt, fields, compress=False)
    return body

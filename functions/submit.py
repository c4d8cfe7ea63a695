"""The HTTP function: validate, assign a job id, record it in the store, publish.

Routes
  POST /cell/simulate         the Java Job Manager's cell job (legacy body); waits for the outcome
  POST /drivecycle/simulate   the Java Job Manager's drive-cycle job (legacy body); waits for the outcome
  POST /jobs                  a native job (see schema/job.schema.json); 202, or the finished job with Prefer: wait=N
  POST /sweeps                a base job + values to vary -> one job per member
  GET  /jobs, /jobs/<id>, /jobs/<id>/result; POST /jobs/<id>/cancel     (functions/jobs.py)
  GET  /sweeps/<id>; POST /sweeps/<id>/cancel                          (functions/jobs.py)
  GET  /catalog               models, options, parameter sets, drive cycles, variables, limits
  GET  /schema                the native job's JSON Schema
  GET  /healthz               liveness (no API key: load balancers' probes cannot send one)
"""

from __future__ import annotations

import logging
import math
import re
import time
from typing import Any, Callable, Optional

from pydantic import ValidationError

from functions import jobs as job_views
from functions.http import BadRequest, authorised, header_safe, json_body, new_id, now, prefer, reply
from shared.contract import legacy
from shared.contract.envelope import Envelope
from shared.contract.job import Job, error_list
from shared.contract.legacy import LegacyRequest
from shared.contract.limits import job_id_error
from shared.delivery import callback, publisher
from shared.delivery.messages import MessageTooLarge
from shared.settings import get_settings
from shared.store import jobs as job_store

log = logging.getLogger("submit")
POLL_S = (0.02, 0.05, 0.1, 0.2)  # the wait for an outcome polls the store at these intervals, then the last


# --------------------------------------------------------------------------
# Accepting jobs
# --------------------------------------------------------------------------
def submit_legacy(request, simulation_type: str):
    body = json_body(request)
    sent_type = body.get("simulationType")
    if sent_type is not None and sent_type != simulation_type:
        raise BadRequest([{"field": "simulationType",
                           "error": f"{sent_type!r} does not match this route; expected {simulation_type!r}"}])
    try:
        request_body = LegacyRequest.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(error_list(exc))
    errors = request_body.errors_for(simulation_type)
    if errors:
        raise BadRequest(errors)
    job_id = request_body.id or new_id()
    envelope = Envelope(job_id=job_id, kind=simulation_type, submitted_at=now(),
                        job=request_body.to_job(simulation_type))
    settings = get_settings()
    asynchronous = "respond-async" in prefer(request) or not settings.legacy_sync_reply
    try:
        _accept([envelope])
    except job_store.AlreadyExists as exc:
        same = (exc.record.get("kind") == simulation_type
                and exc.record.get("job") == envelope.job.model_dump(mode="json", exclude_none=True))
        if asynchronous or not same:  # as on /jobs: not queued again
            return reply(409, {"error": f"job {job_id} already exists" + (
                "" if same else " with another request") + "; it was not queued again",
                "jobId": job_id, "status": exc.record.get("status")}, _job_headers(job_id, exc.record))
        # the same request again (the Job Manager's message redelivered): that job's outcome
    if asynchronous:
        return reply(202, {"jobId": job_id, "status": "queued", "simulationType": simulation_type},
                     _job_headers(job_id, {"status": "queued"}))
    # accepted: from here on a store failure means "not finished yet", never "not queued"
    record, outcome = _wait(job_id, settings.legacy_wait_s), None
    if record is not None and record.get("status") in job_store.FINISHED:
        try:
            outcome = job_store.store().result(job_id, record)
        except job_store.StoreUnavailable:
            record = {**record, "status": "unknown"}
    finished = record is not None and record.get("status") in job_store.FINISHED
    status = 200 if outcome is not None or finished else 202
    return reply(status, legacy.sync_reply(simulation_type, outcome),
                 _job_headers(job_id, record or {"status": "unknown"}))


def submit_native(request):
    body = json_body(request)
    job_id = body.pop("id", None)
    if job_id is not None:
        problem = job_id_error(job_id)
        if problem:
            raise BadRequest([{"field": "id", "error": problem}])
    wait = prefer(request).get("wait")
    seconds = None
    if wait is not None:  # checked before anything is accepted
        try:
            seconds = float(wait)
        except ValueError:
            seconds = float("nan")
        if not math.isfinite(seconds) or seconds < 0:
            raise BadRequest([{"field": "Prefer", "error": "wait must be a number of seconds, 0 or more"}])
        seconds = min(seconds, get_settings().max_prefer_wait_s)
    job = validate_native(body)
    job_id = job_id or new_id()
    envelope = Envelope(job_id=job_id, kind="native", submitted_at=now(), job=job,
                        callback_url=job.callback_url)
    try:
        _accept([envelope])
    except job_store.AlreadyExists as exc:
        return reply(409, {"error": f"job {job_id} already exists; it was not queued again",
                           "jobId": job_id, "status": exc.record.get("status")},
                     _job_headers(job_id, exc.record))
    if seconds is not None:
        record = _wait(job_id, seconds)
        if record is not None and record.get("status") in job_store.FINISHED:
            return reply(200, job_views.view(record), _job_headers(job_id, record))
    return reply(202, {"jobId": job_id, "status": "queued", "simulationType": "native"},
                 _job_headers(job_id, {"status": "queued"}))


def submit_sweep(request):
    from shared.contract import sweeps

    body = json_body(request)
    try:
        sweep = sweeps.SweepRequest.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(error_list(exc))
    if "id" in sweep.base:
        raise BadRequest([{"field": "base.id", "error": "sweep members get their own ids"}])
    sweep_id = new_id()
    values = sweeps.members(sweep)
    total = len(values)
    envelopes: list[Envelope] = []
    checked: set[str] = set()
    for index, member in enumerate(values):
        try:
            body_k = sweeps.apply(sweep.base, member)
        except ValueError as exc:
            raise BadRequest([{"field": "vary", "error": str(exc)}])
        try:
            job = validate_native(body_k, cache=checked)
        except BadRequest as exc:
            raise BadRequest([{**e, "field": f"member {index}: {e['field']}"} for e in exc.errors[:10]])
        envelopes.append(Envelope(
            job_id=f"{sweep_id}-{index:04d}", kind="native", submitted_at=now(), job=job,
            callback_url=job.callback_url,
            sweep={"sweepId": sweep_id, "index": index, "total": total, "values": member}))
    _accept(envelopes, sweep_id=sweep_id, request=storable(body))
    return reply(202, {"sweepId": sweep_id, "status": "queued", "members": total,
                       "jobIds": [e.job_id for e in envelopes]}, {"Location": f"/sweeps/{sweep_id}"})


def storable(value: Any) -> Any:
    """``value`` with every array inside an array written as ``{"row": [...]}`` (Firestore
    keeps no arrays in arrays; a sweep's base may hold an ``ecm_cell``'s 2-D tables, which
    the contract accepts in this form too)."""
    if isinstance(value, dict):
        return {k: storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [{"row": storable(v)} if isinstance(v, list) else storable(v) for v in value]
    return value


def validate_native(body: dict[str, Any], cache: set[str] | None = None) -> Job:
    """Structural checks (pydantic), then the checks that need PyBaMM (the job's kind).
    ``cache``: keys of the configurations already checked (a sweep's members)."""
    try:
        job = Job.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(error_list(exc))
    try:
        callback.resolve_target("native", job.callback_url)
    except callback.CallbackNotAllowed as exc:
        raise BadRequest([{"field": "callback_url", "error": str(exc)}])
    from shared.engine import kinds  # imports PyBaMM on first check: only native jobs pay for it

    key = None
    if cache is not None:  # sweep members differing only in numbers share one PyBaMM check
        key = job.model_dump_json(include={"model", "parameter_set", "bpx", "protocol", "outputs"},
                                  exclude={"protocol": {"current_A", "c_rate", "duration_s", "scale"}}) \
            + ",".join(sorted(job.parameters))
        if key in cache:  # the configuration passed; its numbers are still range-checked
            errors = kinds.check_values(job)
            if errors:
                raise BadRequest(errors)
            return job
    errors = kinds.check(job)
    if errors:
        raise BadRequest(errors)
    if key is not None:
        cache.add(key)
    return job


def _accept(envelopes: list[Envelope], sweep_id: Optional[str] = None, request: Optional[dict] = None) -> None:
    """Record, then publish; a job is accepted only when both happened. Raises
    ``AlreadyExists`` for a taken id (nothing published) and ``StoreUnavailable``
    (503, nothing published)."""
    from shared.delivery import messages

    try:  # encode (and size-check) every message before anything is recorded
        encoded = [messages.encode(e) for e in envelopes]
    except MessageTooLarge as exc:
        raise BadRequest([{"field": "body", "error": str(exc)}], status=413)
    store = job_store.store()
    if sweep_id is None:
        for e in envelopes:
            store.create(e)
    else:
        store.create_sweep(sweep_id, envelopes, request=request)
    try:
        publisher.publish_encoded(encoded)
    except BaseException as exc:
        try:  # not queued: not accepted
            store.delete([e.job_id for e in envelopes])
        except job_store.StoreUnavailable:
            log.error("could not forget unpublished jobs", extra={"fields": {"stage": "submit"}})
        if isinstance(exc, MessageTooLarge):
            raise BadRequest([{"field": "body", "error": str(exc)}], status=413)
        raise
    for e in envelopes:
        log.info("job queued", extra={"fields": {"jobId": e.job_id, "kind": e.kind, "stage": "submit"}})


def _wait(job_id: str, seconds: float) -> Optional[dict[str, Any]]:
    """The job's record once it is finished, or its latest record after ``seconds``
    (None if the store could not be read: the job is accepted, its state unknown)."""
    store = job_store.store()
    deadline = time.monotonic() + seconds
    k = 0
    record = None
    while True:
        try:
            record = store.get(job_id)
        except job_store.StoreUnavailable:
            if time.monotonic() >= deadline:
                return record
            time.sleep(POLL_S[-1])
            continue
        if record is None or record.get("status") in job_store.FINISHED:
            return record
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return record
        time.sleep(min(POLL_S[min(k, len(POLL_S) - 1)], remaining))
        k += 1


def _job_headers(job_id: str, record: Optional[dict[str, Any]]) -> dict[str, str]:
    """Where the job is and how it stands, as headers (the legacy body admits no more properties)."""
    record = record or {}
    headers = {"X-Job-Id": callback.header_value(job_id), "Location": f"/jobs/{callback.header_value(job_id)}",
               "X-Job-Status": header_safe(record.get("status") or "unknown")}
    if record.get("termination"):
        headers["X-Job-Termination"] = header_safe(record["termination"])
    if record.get("error"):
        headers["X-Job-Error"] = header_safe(record["error"])
    if record.get("status") not in job_store.FINISHED:
        headers["Retry-After"] = "5"
    return headers


# --------------------------------------------------------------------------
# Other views
# --------------------------------------------------------------------------
def catalog_view(request):
    from shared.engine import kinds

    return reply(200, kinds.catalog())


def schema_view(request):
    from shared.contract.job import job_json_schema

    return reply(200, job_json_schema())


def health(request):
    return reply(200, {"status": "ok"})


def _legacy_route(kind: str) -> Callable:
    return lambda request: submit_legacy(request, kind)


ROUTES: dict[str, dict[str, Callable]] = {
    **{path: {"POST": _legacy_route(kind)} for path, kind in legacy.ROUTES.items()},
    "/jobs": {"POST": submit_native, "GET": job_views.list_jobs},
    "/sweeps": {"POST": submit_sweep},
    "/catalog": {"GET": catalog_view},
    "/schema": {"GET": schema_view},
    "/healthz": {"GET": health},
    "/maintenance/requeue": {"POST": job_views.requeue_stale},
}
# Routes with an id in them: (pattern, methods); the id is passed to the view.
ID_ROUTES: list[tuple[re.Pattern, dict[str, Callable]]] = [
    (re.compile(r"/jobs/([^/]+)"), {"GET": job_views.get_job}),
    (re.compile(r"/jobs/([^/]+)/result"), {"GET": job_views.get_result}),
    (re.compile(r"/jobs/([^/]+)/cancel"), {"POST": job_views.cancel_job}),
    (re.compile(r"/sweeps/([^/]+)"), {"GET": job_views.get_sweep}),
    (re.compile(r"/sweeps/([^/]+)/cancel"), {"POST": job_views.cancel_sweep}),
]
OPEN = {"/healthz"}  # no API key needed


def _route(path: str) -> tuple[Optional[dict[str, Callable]], tuple]:
    if path in ROUTES:
        return ROUTES[path], ()
    for pattern, methods in ID_ROUTES:
        m = pattern.fullmatch(path)
        if m:
            return methods, m.groups()
    return None, ()


def handle(request):
    """Route one request; never lets an exception (or a stack trace) reach the caller."""
    path = "/" + request.path.strip("/")
    if path not in OPEN and not authorised(request):  # 401 before anything about routes is said
        return reply(401, {"error": "missing or wrong X-API-Key"})
    methods, args = _route(path)
    if methods is None:
        return reply(404, {"error": f"no route {path}", "routes": sorted(ROUTES) + [
            p.pattern.replace("([^/]+)", "<id>") for p, _ in ID_ROUTES]})
    view = methods.get(request.method)
    if view is None:
        return reply(405, {"error": f"{request.method} not allowed on {path}"},
                     {"Allow": ", ".join(sorted(methods))})
    try:
        return view(request, *args)
    except BadRequest as exc:
        log.info("request rejected", extra={"fields": {"path": path, "errors": exc.errors, "stage": "submit"}})
        return reply(exc.status, {"error": "invalid request", "errors": exc.errors})
    except job_store.StoreUnavailable:
        log.exception("job store unavailable", extra={"fields": {"path": path, "stage": "submit"}})
        return reply(503, {"error": "the job store is unavailable; nothing was queued; try again"},
                     {"Retry-After": "5"})
    except Exception:  # noqa: BLE001
        log.exception("submit failed", extra={"fields": {"path": path, "stage": "submit"}})
        return reply(503, {"error": "the job could not be queued; try again"})

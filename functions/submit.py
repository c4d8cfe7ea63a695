"""The HTTP submit function: validate, assign a job id, publish, answer 202.

Routes
  POST /cell/simulate         the Java Job Manager's cell job (legacy body)
  POST /drivecycle/simulate   the Java Job Manager's drive-cycle job (legacy body)
  POST /jobs                  a native job (see schema/job.schema.json)
  POST /sweeps                a base job + values to vary -> one job per member
  GET  /catalog               models, options, parameter sets, drive cycles, variables, limits
  GET  /schema                the native job's JSON Schema
  GET  /healthz               liveness
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from pydantic import ValidationError

from shared.delivery import callback, publisher
from shared.delivery.messages import MessageTooLarge
from shared.contract import legacy
from shared.contract.envelope import Envelope
from shared.contract.job import Job, error_list
from shared.contract.legacy import LegacyRequest
from shared.settings import get_settings

log = logging.getLogger("submit")

JSON = {"Content-Type": "application/json"}


class BadRequest(Exception):
    def __init__(self, errors: list[dict[str, str]], status: int = 400):
        super().__init__(errors)
        self.errors = errors
        self.status = status


def _reply(status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
    return json.dumps(body), status, {**JSON, **(headers or {})}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _new_id() -> str:
    return uuid.uuid4().hex


MAX_JSON_DEPTH = 32  # a job or BPX document needs < 10 levels


def _too_deep(value: Any, limit: int) -> bool:
    """True if objects/arrays nest more than ``limit`` levels (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > limit:
                return True
            stack.extend((c, depth + 1) for c in (v.values() if isinstance(v, dict) else v))
    return False


def _json_body(request) -> dict[str, Any]:
    settings = get_settings()
    length = request.content_length
    if length is not None and length > settings.max_request_bytes:
        raise BadRequest([{"field": "body", "error": f"request body is {length} bytes; the limit is "
                           f"{settings.max_request_bytes} bytes"}], status=413)
    # without a Content-Length (chunked), read no more than the limit + 1 byte
    raw = request.get_data(cache=True) if length is not None else request.stream.read(settings.max_request_bytes + 1)
    if len(raw) > settings.max_request_bytes:
        raise BadRequest([{"field": "body", "error": f"request body exceeds {settings.max_request_bytes} bytes"}],
                         status=413)
    try:
        body = json.loads(raw or b"null")
    except RecursionError:  # not a ValueError: would otherwise surface as a 503
        raise BadRequest([{"field": "body", "error": f"JSON nested deeper than {MAX_JSON_DEPTH} levels"}])
    except (ValueError, UnicodeDecodeError):
        raise BadRequest([{"field": "body", "error": "not valid JSON"}])
    if _too_deep(body, MAX_JSON_DEPTH):  # pydantic, serialisers and PyBaMM recurse on it
        raise BadRequest([{"field": "body", "error": f"JSON nested deeper than {MAX_JSON_DEPTH} levels"}])
    if not isinstance(body, dict):
        raise BadRequest([{"field": "body", "error": "expected a JSON object"}])
    return body


# --------------------------------------------------------------------------
def submit_legacy(request, simulation_type: str):
    body = _json_body(request)
    sent_type = body.get("simulationType")
    if sent_type is not None and sent_type != simulation_type:
        raise BadRequest([{"field": "simulationType",
                           "error": f"{sent_type!r} does not match this route; expected {simulation_type!r}"}])
    try:
        legacy = LegacyRequest.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(error_list(exc))
    errors = legacy.errors_for(simulation_type)
    if errors:
        raise BadRequest(errors)
    job_id = legacy.id or _new_id()
    envelope = Envelope(job_id=job_id, kind=simulation_type, submitted_at=_now(),
                        job=legacy.to_job(simulation_type))
    _publish([envelope])
    return _reply(202, {"jobId": job_id, "status": "queued", "simulationType": simulation_type})


def submit_native(request):
    body = _json_body(request)
    job_id = body.pop("id", None)
    if job_id is not None and (not isinstance(job_id, str) or not 0 < len(job_id) <= 128):
        raise BadRequest([{"field": "id", "error": "must be a string of 1-128 characters"}])
    job = validate_native(body)
    job_id = job_id or _new_id()
    envelope = Envelope(job_id=job_id, kind="native", submitted_at=_now(), job=job,
                        callback_url=job.callback_url)
    _publish([envelope])
    return _reply(202, {"jobId": job_id, "status": "queued", "simulationType": "native"})


def submit_sweep(request):
    from shared.contract import sweeps

    body = _json_body(request)
    try:
        sweep = sweeps.SweepRequest.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(error_list(exc))
    if "id" in sweep.base:
        raise BadRequest([{"field": "base.id", "error": "sweep members get their own ids"}])
    sweep_id = _new_id()
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
            job_id=f"{sweep_id}-{index:04d}", kind="native", submitted_at=_now(), job=job,
            callback_url=job.callback_url,
            sweep={"sweepId": sweep_id, "index": index, "total": total, "values": member}))
    _publish(envelopes)
    return _reply(202, {"sweepId": sweep_id, "status": "queued", "members": total,
                        "jobIds": [e.job_id for e in envelopes]})


def validate_native(body: dict[str, Any], cache: set[str] | None = None) -> Job:
    """Structural checks (pydantic), then the checks that need PyBaMM (catalog).
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
        if key in cache:
            return job
    errors = kinds.check(job)
    if errors:
        raise BadRequest(errors)
    if key is not None:
        cache.add(key)
    return job


def _publish(envelopes: list[Envelope]) -> None:
    try:
        publisher.publish(envelopes)
    except MessageTooLarge as exc:
        raise BadRequest([{"field": "body", "error": str(exc)}], status=413)
    for e in envelopes:
        log.info("job queued", extra={"fields": {"jobId": e.job_id, "kind": e.kind, "stage": "submit"}})


def catalog_view(request):
    from shared.engine import catalog

    return _reply(200, catalog.catalog())


def schema_view(request):
    from shared.contract.job import job_json_schema

    return _reply(200, job_json_schema())


def health(request):
    return _reply(200, {"status": "ok"})


def _legacy_route(kind: str) -> Callable:
    return lambda request: submit_legacy(request, kind)


ROUTES: dict[str, dict[str, Callable]] = {
    **{path: {"POST": _legacy_route(kind)} for path, kind in legacy.ROUTES.items()},
    "/jobs": {"POST": submit_native},
    "/sweeps": {"POST": submit_sweep},
    "/catalog": {"GET": catalog_view},
    "/schema": {"GET": schema_view},
    "/healthz": {"GET": health},
}


def _authorised(request) -> bool:
    key = get_settings().api_key
    if not key:
        return True
    given = request.headers.get("X-API-Key", "")
    return hmac.compare_digest(given.encode(), key.encode())


def handle(request):
    """Route one request; never lets an exception (or a stack trace) reach the caller."""
    path = "/" + request.path.strip("/")
    methods = ROUTES.get(path)
    if methods is None:
        return _reply(404, {"error": f"no route {path}", "routes": sorted(ROUTES)})
    view = methods.get(request.method)
    if view is None:
        return _reply(405, {"error": f"{request.method} not allowed on {path}"},
                      {"Allow": ", ".join(sorted(methods))})
    if not _authorised(request):
        return _reply(401, {"error": "missing or wrong X-API-Key"})
    try:
        return view(request)
    except BadRequest as exc:
        log.info("request rejected", extra={"fields": {"path": path, "errors": exc.errors, "stage": "submit"}})
        return _reply(exc.status, {"error": "invalid request", "errors": exc.errors})
    except Exception:  # noqa: BLE001
        log.exception("submit failed", extra={"fields": {"path": path, "stage": "submit"}})
        return _reply(503, {"error": "the job could not be queued; try again"})

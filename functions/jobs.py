"""The job store's routes: a job's status, its result, lists, cancel, sweeps.

  GET  /jobs?status=&sweep=&limit=&page_token=   newest first, cursor pagination
  GET  /jobs/<id>                                status, times, summary, callback state (no series)
  GET  /jobs/<id>/result[?format=csv]            the full result (the callback body)
  POST /jobs/<id>/cancel                         queued: never simulated; running: stopped
  GET  /sweeps/<id>                              total, counts by status, one row per member
  POST /sweeps/<id>/cancel                       cancel every member not finished
  POST /maintenance/requeue                      publish again the jobs stuck queued or running
                                                 (Cloud Scheduler in the cloud; the local stack every 15 s)
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from functions.http import BadRequest, reply
from shared.contract import legacy
from shared.contract.limits import job_id_error
from shared.store import jobs as job_store

STATUSES = ("queued", "running", *job_store.FINISHED)
VIEW_FIELDS = ("jobId", "status", "kind", "submittedAt", "startedAt", "finishedAt", "deliveryAttempts",
               "termination", "completed", "stoppedEarly", "endTime", "summary", "notes", "error", "timings",
               "sweep", "callback", "cancelRequested", "reusedFrom", "progress")


def view(record: dict[str, Any], with_job: bool = False) -> dict[str, Any]:
    """A job's record as the API shows it (never the bulky series)."""
    out = {k: record.get(k) for k in VIEW_FIELDS}
    expire = record.get("expireAt")
    out["expireAt"] = expire.isoformat() if isinstance(expire, datetime) else expire
    out["result"] = f"/jobs/{record.get('jobId')}/result" if record.get("result") else None
    if with_job:
        out["job"] = record.get("job")
    return out


def _known_id(job_id: str, what: str = "job") -> None:
    """An id no job can have is simply not found (it would be no valid store key either)."""
    if job_id_error(job_id):
        raise BadRequest([{"field": "id", "error": f"no {what} {job_id}"}], status=404)


def _record(job_id: str) -> dict[str, Any]:
    _known_id(job_id)
    record = job_store.store().get(job_id)
    if record is None:
        raise BadRequest([{"field": "id", "error": f"no job {job_id}"}], status=404)
    return record


def get_job(request, job_id: str):
    return reply(200, view(_record(job_id), with_job=True))


def get_result(request, job_id: str):
    record = _record(job_id)
    if record.get("status") not in job_store.FINISHED:
        return reply(409, {"error": f"job {job_id} is {record.get('status')}; its result is not ready",
                           "jobId": job_id, "status": record.get("status")}, {"Retry-After": "5"})
    body = job_store.store().result(job_id, record)
    if body is None:
        return reply(404, {"error": f"job {job_id} has no stored result", "jobId": job_id,
                           "status": record.get("status")})
    if request.args.get("format") == "csv":
        return _csv(body), 200, {"Content-Type": "text/csv; charset=utf-8",
                                 "Content-Disposition": f'attachment; filename="{job_id}.csv"'}
    return reply(200, body)


def _csv(body: dict[str, Any]) -> str:
    columns = body.get("columns") or (legacy.result_columns(body["result"]) if body.get("result") else {})
    out = io.StringIO()
    writer = csv.writer(out)
    names = list(columns)
    writer.writerow(names)
    n = max((len(v) for v in columns.values()), default=0)
    for k in range(n):
        writer.writerow([columns[c][k] if k < len(columns[c]) else "" for c in names])
    return out.getvalue()


def list_jobs(request):
    args = request.args
    status = args.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequest([{"field": "status", "error": f"one of {list(STATUSES)}"}])
    try:
        limit = int(args.get("limit", 50))
    except ValueError:
        limit = -1
    if not 1 <= limit <= 200:
        raise BadRequest([{"field": "limit", "error": "an integer in 1-200"}])
    sweep = args.get("sweep") or None
    if sweep is not None and job_id_error(sweep):
        raise BadRequest([{"field": "sweep", "error": "not a sweep id"}])
    try:
        rows, token = job_store.store().list(status=status, sweep=sweep, limit=limit,
                                             page_token=args.get("page_token") or None)
    except ValueError as exc:
        raise BadRequest([{"field": "page_token", "error": str(exc)}])
    return reply(200, {"jobs": [view(r) for r in rows], "nextPageToken": token})


def cancel_job(request, job_id: str):
    _known_id(job_id)
    try:
        record = job_store.store().cancel(job_id)
    except job_store.NotFound:
        raise BadRequest([{"field": "id", "error": f"no job {job_id}"}], status=404)
    except job_store.Conflict as exc:
        return reply(409, {"error": f"job {job_id} is already {exc.record.get('status')}", "jobId": job_id,
                           "status": exc.record.get("status")})
    return reply(202 if record["status"] == "running" else 200,
                 {"jobId": job_id, "status": record["status"], "cancelRequested": True})


def get_sweep(request, sweep_id: str):
    _known_id(sweep_id, "sweep")
    found = job_store.store().sweep(sweep_id)
    if found is None:
        raise BadRequest([{"field": "id", "error": f"no sweep {sweep_id}"}], status=404)
    head, members = found["sweep"], found["members"]
    counts = {s: 0 for s in STATUSES}
    for m in members:
        counts[m.get("status", "queued")] = counts.get(m.get("status", "queued"), 0) + 1
    rows = sorted(({"index": (m.get("sweep") or {}).get("index"), "values": (m.get("sweep") or {}).get("values"),
                    "jobId": m.get("jobId"), "status": m.get("status"), "termination": m.get("termination"),
                    "error": m.get("error"), "summary": m.get("summary")} for m in members),
                  key=lambda r: r["index"] if r["index"] is not None else -1)
    return reply(200, {"sweepId": sweep_id, "total": head.get("total"), "submittedAt": head.get("submittedAt"),
                       "counts": counts, "finished": sum(counts[s] for s in job_store.FINISHED),
                       "members": rows})


def cancel_sweep(request, sweep_id: str):
    _known_id(sweep_id, "sweep")
    store = job_store.store()
    found = store.sweep(sweep_id)
    if found is None:
        raise BadRequest([{"field": "id", "error": f"no sweep {sweep_id}"}], status=404)
    cancelled = already = 0
    for m in found["members"]:
        try:
            store.cancel(m["jobId"])
            cancelled += 1
        except (job_store.Conflict, job_store.NotFound):
            already += 1
    return reply(200, {"sweepId": sweep_id, "cancelled": cancelled, "alreadyFinished": already})


def requeue_stale(request):
    """Publish again every job whose record says ``queued`` for longer than
    ``STALE_QUEUED_S`` or ``running`` for longer than ``STALE_RUNNING_S``: its message
    was lost (Pub/Sub gave up, or the emulator stopped redelivering) or its worker died.
    The worker's claim makes a second message harmless for a job that finished meanwhile."""
    from datetime import datetime, timedelta, timezone

    from shared.contract.envelope import Envelope
    from shared.contract.job import Job
    from shared.delivery import publisher
    from shared.settings import get_settings

    settings = get_settings()
    now = datetime.now(timezone.utc)

    def iso(seconds: float) -> str:
        return (now - timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    store = job_store.store()
    stale = store.stale(iso(settings.stale_queued_s), iso(settings.stale_running_s))
    requeued = []
    for record in stale:  # a cancelled one too: its worker reports it cancelled when the message arrives
        try:
            job = Job.model_validate(record["job"])
            envelope = Envelope(job_id=record["jobId"], kind=record["kind"], submitted_at=record["submittedAt"],
                                job=job, callback_url=job.callback_url,
                                sweep=None if not record.get("sweep") else {**record["sweep"]},
                                # a study continues from its last checkpoint's segment
                                continuation=int((record.get("checkpoint") or {}).get("seq") or 0))
        except Exception:  # noqa: BLE001 - a record that no longer validates is left for an operator
            continue
        publisher.publish([envelope])
        store.mark_requeued(record["jobId"])
        requeued.append(record["jobId"])
    return reply(200, {"requeued": requeued, "examined": len(stale)})

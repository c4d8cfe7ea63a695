"""The Pub/Sub-triggered worker: one message, one simulation, one recorded outcome, one callback.

For each delivery:
1. decode the message (a poison message is reported ``failed`` where a job id is known, and acked);
2. claim the job in the store (``running``; a cancelled or already finished job is not simulated);
3. simulate in the solver process (a cancel stops it within about a second);
4. store the result, then send the callback, then record the callback's outcome.

Outcomes for Pub/Sub: return -> ack. Raise -> redelivery, when the store could not be
reached (the outcome is not recorded yet) or the callback could not be delivered
(network, 5xx, 429; the redelivery resends the stored result, it does not simulate
again). A callback the receiver rejects (404, any other 4xx) is acked: the result
stays in the store, and the record says ``rejected``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Optional

from shared.contract import legacy
from shared.delivery import callback, messages
from shared.contract.limits import LIMITS
from shared.engine.checkpoint import Checkpoint, CheckpointError, Segment
from shared.engine.errors import SimulationError
from shared.engine.solver_process import CANCEL_POLL_S, Cancelled, SolverProcess
from shared.settings import get_settings
from shared.store import jobs as job_store

log = logging.getLogger("worker")
_solver: Optional[SolverProcess] = None
_CLAIMS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="claim")
_SLOT = threading.Lock()  # one delivery at a time per instance (Cloud Functions concurrency 1)


def check_configuration() -> None:
    """Called where the worker function starts (``main.py``): a bad setting, such as an
    unknown ``SOLVER_COMPILE``, stops it there instead of failing each job."""
    get_settings()


def solver() -> SolverProcess:
    global _solver
    if _solver is None:
        _solver = SolverProcess(max_rss_mb=get_settings().solver_max_rss_mb)
    return _solver


class Busy(Exception):
    """This instance has been running another job for longer than BUSY_WAIT_S: the push
    is refused, so Pub/Sub delivers it to another instance or later (Cloud Functions
    never sends a second request to an instance with concurrency 1; a local gunicorn
    thread can)."""


def handle(event_data: Any, event_id: Optional[str] = None) -> dict[str, Any]:
    """Process one Pub/Sub push (the CloudEvent's ``data``). Returns the callback body.
    Raises ``Busy`` at once if this instance is running another job."""
    slot = _SLOT
    # a short job ahead is waited for; a long one makes this push go elsewhere or later
    if not slot.acquire(timeout=get_settings().busy_wait_s):
        raise Busy("this worker instance is busy with another job")
    try:
        return _handle(event_data, event_id)
    finally:
        slot.release()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _handle(event_data: Any, event_id: Optional[str] = None) -> dict[str, Any]:
    settings = get_settings()
    attempt = messages.delivery_attempt(event_data)
    fields = {"eventId": event_id, "attempt": attempt}
    try:
        envelope = messages.decode(event_data)
    except messages.PoisonMessage as poison:
        return _poison(poison, attempt, fields)

    fields.update(jobId=envelope.job_id, kind=envelope.kind)
    store = job_store.store()
    state, record = store.peek(envelope)  # one read; StoreUnavailable: raise, Pub/Sub redelivers
    # the emulator sends no delivery attempt: the store counts them (this one included),
    # per segment of a study continued across invocations
    before = int((record.get("checkpoint") or {}).get("attemptsAt") or 0)
    attempt = attempt or int(record.get("deliveryAttempts") or 0) - before + (state == "run") or None
    fields["attempt"] = attempt
    try:
        # resolved here, not trusted from the message: a message published straight
        # to the topic must not turn the worker into a request-forgery relay
        target = callback.resolve_target(envelope.kind, envelope.callback_url, settings)
    except callback.CallbackNotAllowed as exc:
        log.error("callback URL refused; reporting to the Job Manager instead",
                  extra={"fields": {**fields, "stage": "route"}})
        target = callback.resolve_target(envelope.kind, None, settings)
        if state == "run":
            return _conclude(envelope, target, _failed(envelope, attempt, str(exc)), fields)

    if state == "finished":
        return _resend(envelope, target, record, attempt, fields)
    stale = _stale_segment(envelope, record, fields)
    if stale is not None:
        return stale
    if state == "cancelled":
        body = callback.body_for(envelope, None, _now(), attempt, error="cancelled before it started",
                                 status="cancelled")
        return _conclude(envelope, target, body, fields)
    if attempt is not None and attempt >= settings.max_delivery_attempts:
        # the last delivery before the dead-letter topic: whatever killed the earlier
        # attempts (a crash, an out-of-memory kill) must not leave the job without an outcome
        log.error("giving up after repeated deliveries", extra={"fields": {**fields, "stage": "worker"}})
        return _conclude(envelope, target, _failed(envelope, attempt, (
            f"the service gave up after {attempt} delivery attempts (the worker did not finish the "
            "earlier ones)")), fields)
    # The claim (record "running", count the delivery) is written while the job solves:
    # it is off the job's critical path, and its answer is awaited before any outcome.
    # If it says the job was cancelled or finished meanwhile, the solve is stopped.
    claim = _CLAIMS.submit(store.start, envelope)
    try:
        body = _simulate(envelope, attempt, fields, settings, store, claim, record, target)
    except job_store.StoreUnavailable:
        raise  # nothing recorded: Pub/Sub redelivers (not a failed job)
    except Exception as exc:  # noqa: BLE001 - a bug must still end in one outcome
        log.exception("worker error", extra={"fields": {**fields, "stage": "worker"}})
        body = _failed(envelope, attempt, f"internal service error ({type(exc).__name__})")
    claimed, record = claim.result()  # StoreUnavailable: nothing recorded; Pub/Sub redelivers
    if claimed == "finished":  # another delivery of the job finished it meanwhile
        return _resend(envelope, target, record, attempt, fields)
    if claimed == "cancelled":  # cancelled while it was queued: its result is not reported
        body = callback.body_for(envelope, None, _now(), attempt, error="cancelled before it started",
                                 status="cancelled")
    elif isinstance(body, Checkpoint):
        return _continue(envelope, record, body, fields)
    return _conclude(envelope, target, body, fields)


# -- ageing studies across invocations -----------------------------------------------


def _segmented(job) -> bool:
    return getattr(job.protocol, "type", None) == "ageing"


def _stale_segment(envelope, record, fields) -> Optional[dict[str, Any]]:
    """A delivery of a segment whose checkpoint is already stored (a redelivery after the
    worker stored it, or a duplicate): its continuation is (re)published, nothing runs."""
    info = record.get("checkpoint") or {}
    seq = int(info.get("seq") or 0)
    if not _segmented(envelope.job) or seq <= envelope.continuation:
        return None
    if not info.get("published"):
        _publish_continuation(envelope, seq)
    log.info("segment already checkpointed; acked", extra={"fields": {**fields, "stage": "worker",
                                                                       "continuation": envelope.continuation}})
    return {"id": envelope.job_id, "continuation": seq}


def _publish_continuation(envelope, seq: int) -> None:
    from shared.delivery import publisher

    publisher.publish([envelope.model_copy(update={"continuation": seq})])
    job_store.store().checkpoint_published(envelope.job_id, seq)


def _continue(envelope, record, ckpt: Checkpoint, fields) -> dict[str, Any]:
    """Store the checkpoint, publish the next segment's message, ack; no callback yet."""
    store = job_store.store()
    seq = int((record.get("checkpoint") or {}).get("seq") or 0) + 1
    progress = {"cyclesDone": ckpt.cycles_done, "cyclesPlanned": ckpt.cycles_planned,
                "latestCapacityAh": ckpt.latest_capacity_Ah, "etaSeconds": ckpt.eta_s(),
                "wallSeconds": ckpt.wall_s, "updatedAt": _now()}
    if store.save_checkpoint(envelope.job_id, seq, ckpt.data, ckpt.sha256, progress):
        _publish_continuation(envelope, seq)
    log.info("segment checkpointed; continues", extra={"fields": {
        **fields, "stage": "simulate", "continuation": seq, "cyclesDone": ckpt.cycles_done}})
    return {"id": envelope.job_id, "continuation": seq, "progress": progress}


def _segment_for(envelope, record, settings, store):
    """Where this delivery's segment starts and whether it may end in another checkpoint."""
    info = record.get("checkpoint") or {}
    seq = int(info.get("seq") or 0)
    resume = store.load_checkpoint(envelope.job_id, info) if seq else None
    wall = float((record.get("progress") or {}).get("wallSeconds") or 0)
    budget = settings.job_time_budget_s
    segment = Segment(resume=resume, budget_s=min(settings.segment_budget_s, budget - max(5.0, 0.1 * budget)))
    if seq >= LIMITS["max_continuations"]:
        segment.may_continue = False
        segment.stop_reason = (f"the study reached its limit of {LIMITS['max_continuations']} continuations "
                               "(max_continuations)")
    elif wall + segment.budget_s >= LIMITS["max_study_wall_s"]:
        segment.may_continue = False
        segment.stop_reason = (f"the study reached its limit of {LIMITS['max_study_wall_s']:g} s of wall time "
                               "(max_study_wall_s)")
    return segment


def _progress_of(envelope, record, rows: list, wall_s: Optional[float], eta_s: Optional[float]) -> dict[str, Any]:
    """The ``progress`` shown by GET /jobs/<id> (and carried by progress callbacks)."""
    last = rows[-1] if rows else {}
    return {"cyclesDone": len(rows), "cyclesPlanned": envelope.job.protocol.cycles,
            "latestCapacityAh": last.get("Capacity [A.h]"),
            "continuations": int((record.get("checkpoint") or {}).get("seq") or 0),
            "etaSeconds": eta_s, "wallSeconds": wall_s, "updatedAt": _now()}


class _Progress:
    """The rows of an ageing study's segment as they come, and progress callbacks if the
    study asked for them (``progress_every_cycles``; ``every`` None: rows only, kept if
    the study is cancelled).

    The solver process appends each cycle's row to a file (``Segment.progress_path``);
    ``poll`` (called by the parent every fraction of a second while it waits) reads the new
    lines and, every N cycles, hands a ``running`` body with the rows so far to one sender
    thread, which POSTs it once and records ``progress`` in the store. One in flight at a
    time: a send still running when the next is due delays it (the next carries more rows).
    ``close`` waits for the one in flight, so no progress callback follows the outcome's
    from this delivery. Nothing here raises into the study."""

    def __init__(self, envelope, target: Optional[str], started: Optional[str], attempt, record,
                 every: Optional[int]):
        fd, self.path = tempfile.mkstemp(prefix="ageing-progress-", suffix=".jsonl")
        os.close(fd)
        self.envelope, self.target, self.started, self.attempt = envelope, target, started, attempt
        self.record, self.every = record, every
        self.rows: list[dict[str, Any]] = []
        self._offset, self._buffer = 0, b""
        self._mark: Optional[int] = None  # rows // every at the last send (or at the restored rows)
        self._t0 = time.monotonic()
        self._wall_before = float((record.get("progress") or {}).get("wallSeconds") or 0)
        self._resumed = bool(int((record.get("checkpoint") or {}).get("seq") or 0))
        self._segment_start: Optional[int] = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="progress")
        self._inflight = None
        self.sent = 0

    def rows_now(self) -> list[dict[str, Any]]:
        """Every row written so far (those of restored cycles included)."""
        try:
            self._read()
        except Exception:  # noqa: BLE001 - best effort
            log.warning("progress not read", exc_info=True)
        return list(self.rows)

    def poll(self) -> None:
        try:
            self._read()
            if self.every is None or self._mark is None or self._inflight is not None and not self._inflight.done():
                return
            done, planned = len(self.rows), self.envelope.job.protocol.cycles
            if done // self.every > self._mark and done < planned:
                self._mark = done // self.every
                self._inflight = self._pool.submit(self._send, list(self.rows), self._progress())
        except Exception:  # noqa: BLE001 - progress is best effort
            log.warning("progress not read", exc_info=True)

    def _read(self) -> None:
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        if not data:
            return
        self._offset += len(data)
        lines = (self._buffer + data).split(b"\n")
        self._buffer = lines.pop()  # an incomplete last line waits for the next read
        for line in lines:
            if line:
                self.rows.extend(json.loads(line))
                if self._mark is None:  # the first line: a resumed segment's restored rows, or cycle 1
                    self._segment_start = len(self.rows) if self._resumed else 0
                    self._mark = self._segment_start // (self.every or 1)

    def _progress(self) -> dict[str, Any]:
        wall = time.monotonic() - self._t0
        ran = len(self.rows) - (self._segment_start or 0)
        eta = None
        if ran > 0:
            eta = round(max(0, self.envelope.job.protocol.cycles - len(self.rows)) * wall / ran, 1)
        return _progress_of(self.envelope, self.record, self.rows, round(self._wall_before + wall, 3), eta)

    def _send(self, rows, progress) -> None:
        body = callback.progress_body(self.envelope, self.started, self.attempt, rows, progress)
        status = callback.deliver_progress(self.target, body, self.envelope.job_id)
        self.sent += status is not None and 200 <= status < 300
        try:
            job_store.store().record_progress(self.envelope.job_id, progress)
        except job_store.StoreUnavailable:
            pass
        log.info("progress callback", extra={"fields": {
            "jobId": self.envelope.job_id, "stage": "progress", "cyclesDone": progress["cyclesDone"],
            "status": status}})

    def close(self) -> None:
        """Wait for the send in flight (bounded by its time-outs); no more after this."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        try:
            os.unlink(self.path)
        except OSError:
            pass


def _reuse_key(envelope) -> str:
    """Identical jobs of the same kind (a legacy job's result has another shape)."""
    return f"{envelope.kind}:{envelope.job.reuse_key()}"


def _failed(envelope, attempt, error: str) -> dict[str, Any]:
    return callback.body_for(envelope, _now(), _now(), attempt, error=error)


def _simulate(envelope, attempt, fields, settings, store, claim=None, record=None, target=None):
    """Run the job (or reuse an identical one's result); the callback body, or the
    ``Checkpoint`` of an ageing study's segment that ran out of time."""
    job = envelope.job
    record = record or {}
    if job.reuse:
        found = store.find_reusable(_reuse_key(envelope))
        previous = store.result(found["jobId"], found) if found else None
        if previous is not None:
            body = {**previous, "id": envelope.job_id, "jobSubmitted": envelope.submitted_at,
                    "jobStarted": _now(), "jobFinished": _now(), "deliveryAttempt": attempt,
                    "reusedFrom": found["jobId"]}
            body.pop("sweep", None)
            if envelope.sweep:
                body["sweep"] = envelope.sweep
            log.info("result reused", extra={"fields": {**fields, "stage": "simulate", "reusedFrom": found["jobId"]}})
            return body
    started = record.get("startedAt") if record.get("checkpoint") else _now()
    started = started or _now()
    t0 = time.perf_counter()
    segment = None
    if _segmented(job):
        try:
            segment = _segment_for(envelope, record, settings, store)
        except CheckpointError as exc:
            return callback.body_for(envelope, started, _now(), attempt, error=str(exc))
    log.info("simulation started", extra={"fields": {**fields, "stage": "simulate"}})

    next_look = [time.monotonic() + CANCEL_POLL_S]

    def cancelled() -> bool:
        """Asked every fraction of a second while the job solves: the claim's answer (no
        call), and once a second whether a cancel was requested (one read)."""
        if claim is not None and claim.done() and claim.exception() is None and claim.result()[0] != "run":
            return True
        if time.monotonic() < next_look[0]:
            return False
        next_look[0] = time.monotonic() + CANCEL_POLL_S
        try:
            return store.cancel_requested(envelope.job_id)
        except job_store.StoreUnavailable:
            return False

    progress = None
    if segment is not None:  # its rows as they come: for progress callbacks, and kept if it is cancelled
        every = getattr(job.protocol, "progress_every_cycles", None) if target is not None else None
        progress = _Progress(envelope, target, started, attempt, record, every)
        segment.progress_path = progress.path

    def should_stop() -> bool:
        if progress is not None:
            progress.poll()
        return cancelled()

    try:
        result = solver().run(job, settings.job_time_budget_s, should_stop=should_stop, segment=segment)
    except Cancelled:
        log.info("simulation cancelled", extra={"fields": {**fields, "stage": "simulate"}})
        body = callback.body_for(envelope, started, _now(), attempt, error="cancelled while running",
                                 status="cancelled")
        if progress is not None:  # a study keeps the cycles it completed (the one running is dropped)
            rows = progress.rows_now()
            if rows:
                body.update(cycles=rows, error=f"cancelled while running; the {len(rows)} cycles completed "
                                               "are kept")
            wall = float((record.get("progress") or {}).get("wallSeconds") or 0) + time.perf_counter() - t0
            try:
                store.record_progress(envelope.job_id, _progress_of(envelope, record, rows, round(wall, 3), 0.0))
            except job_store.StoreUnavailable:
                pass
        return body
    except SimulationError as exc:
        log.warning("simulation failed", extra={"fields": {
            **fields, "stage": "simulate", "elapsed_s": round(time.perf_counter() - t0, 4), "error": str(exc)}})
        return callback.body_for(envelope, started, _now(), attempt, error=str(exc))
    finally:
        if progress is not None:
            progress.close()
    if isinstance(result, Checkpoint):
        return result
    if segment is not None:  # the study's last segment: its progress, as the checkpoints record it
        rows = result.get("cycles") or []
        wall = float((record.get("progress") or {}).get("wallSeconds") or 0) + time.perf_counter() - t0
        try:
            store.record_progress(envelope.job_id, _progress_of(envelope, record, rows, round(wall, 3), 0.0))
        except job_store.StoreUnavailable:
            pass  # the outcome matters, not this view
    body = callback.body_for(envelope, started, _now(), attempt, result=result)
    if segment is not None and segment.stop_reason and not result.get("completed"):
        body.update(status="failed", error=f"{segment.stop_reason}; the {len(result.get('cycles') or [])} "
                                            "cycles run are kept")
    log.info("simulation finished", extra={"fields": {
        **fields, "stage": "simulate", "elapsed_s": round(time.perf_counter() - t0, 4),
        "termination": body["termination"], "cache": (result.get("timings") or {}).get("cache")}})
    return body


def _conclude(envelope, target: str, body: dict[str, Any], fields) -> dict[str, Any]:
    """Store the outcome (before anything is sent), then send the callback."""
    store = job_store.store()
    existing = store.finish_once(envelope.job_id, body, reuse_key=_reuse_key(envelope),
                                 reused_from=body.get("reusedFrom"))
    if existing is not None:  # another delivery stored the outcome first: report that one
        return _resend(envelope, target, existing, body.get("deliveryAttempt"), fields)
    send_callback(target, body, envelope.job_id, envelope.kind, fields)
    return body


def _resend(envelope, target: str, record: dict[str, Any], attempt, fields) -> dict[str, Any]:
    """A delivery of a job whose outcome is recorded: send its callback if it has not landed."""
    store = job_store.store()
    body = store.result(envelope.job_id, record)
    if body is None:  # cancelled while queued: the outcome has no body yet
        body = callback.body_for(envelope, record.get("startedAt"), record.get("finishedAt") or _now(),
                                 attempt, error=record.get("error") or "cancelled", status=record["status"])
        store.finish(envelope.job_id, body)
    if (record.get("callback") or {}).get("state") in ("delivered", "rejected", "disabled"):
        log.info("outcome already recorded and reported; acked", extra={"fields": {**fields, "stage": "worker"}})
        return body
    send_callback(target, body, envelope.job_id, envelope.kind, fields)
    return body


def send_callback(url: str, body: dict[str, Any], job_id: str, kind: Optional[str], fields, final: bool = False) -> None:
    """POST the callback and record its outcome. Undelivered: raise (Pub/Sub redelivers),
    unless ``final`` (the dead-letter handler's last attempt): then only record it."""
    store = job_store.store()
    if legacy.is_legacy(kind) and not get_settings().legacy_callbacks:
        store.record_callback(job_id, "disabled")
        return
    t0 = time.perf_counter()
    try:
        status = callback.deliver(url, body, job_id, body.get("deliveryAttempt"),
                                  compress=callback.compressible(kind))
    except callback.CallbackRejected as exc:
        # permanent: retrying cannot help; the result is in the store; ack so it does not loop
        log.error("callback rejected", extra={"fields": {**fields, "stage": "callback", "error": str(exc)}})
        store.record_callback(job_id, "rejected", status=exc.status, error=str(exc))
        return
    except callback.CallbackUndelivered as exc:
        log.error("callback undelivered" + ("" if final else "; Pub/Sub will redeliver"),
                  extra={"fields": {**fields, "stage": "callback", "error": str(exc)}})
        store.record_callback(job_id, "undelivered", error=str(exc))
        if not final:
            raise
        return
    store.record_callback(job_id, "delivered", status=status)
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
    try:
        callback.deliver(url, body, poison.job_id, attempt, compress=False)
    except callback.CallbackRejected as exc:
        log.error("callback rejected", extra={"fields": {**fields, "stage": "callback", "error": str(exc)}})
    return body

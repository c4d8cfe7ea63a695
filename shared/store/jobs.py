"""The job store on Google Cloud Firestore (the official emulator locally).

One document per job in ``jobs`` (id = job id) from the moment it is accepted:
status ``queued`` -> ``running`` -> ``succeeded`` | ``failed`` | ``cancelled``,
kind, times, delivery attempts, the job as submitted, summary, termination,
``completed``, error, sweep membership and the callback's own state. The full
result (the body the receiver gets) is stored as gzip-compressed chunks in the
sub-collection ``jobs/<id>/chunks`` — a document holds at most 1 MiB — written
before the job document says the job is finished. A sweep has one document in
``sweeps`` (its members and values); its counts come from a query over its
members, never from a counter every member increments (a document sustains about
one write per second).

Every record carries ``expireAt`` (``RETENTION_DAYS``); a Firestore TTL policy
deletes it then (set by cloudbuild.yaml). Every call is bounded by
``STORE_TIMEOUT_S``; a store that cannot be reached raises ``StoreUnavailable``.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Optional

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry

from shared.settings import Settings, get_settings

FINISHED = ("succeeded", "failed", "cancelled")
CHUNK_BYTES = 900_000  # below Firestore's 1 MiB per document, with room for the fields
CHUNKS_PER_COMMIT = 3  # a commit stays below gRPC's 4 MiB message limit
SUMMARY_FIELDS = ("termination", "completed", "stoppedEarly", "endTime", "summary", "notes", "error", "timings")


class StoreUnavailable(Exception):
    """Firestore could not be reached in time (or refused the call)."""


class AlreadyExists(Exception):
    def __init__(self, record: dict[str, Any]):
        super().__init__(record.get("jobId"))
        self.record = record


class NotFound(Exception):
    pass


class Conflict(Exception):
    """The job is already finished (cancel)."""

    def __init__(self, record: dict[str, Any]):
        super().__init__(record.get("status"))
        self.record = record


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _unavailable(exc: Exception) -> StoreUnavailable:
    return StoreUnavailable(f"the job store is unavailable ({type(exc).__name__})")


_TRANSIENT = (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError, gexc.Aborted,
              gexc.RetryError, gexc.Unknown, gexc.ResourceExhausted, TimeoutError, ConnectionError)


class JobStore:
    def __init__(self, settings: Optional[Settings] = None, client=None):
        self.settings = settings or get_settings()
        if client is None:
            from google.cloud import firestore

            client = firestore.Client(project=self.settings.google_cloud_project,
                                      database=self.settings.firestore_database)
        self.client = client
        self.jobs = client.collection(self.settings.jobs_collection)
        self.sweeps = client.collection(self.settings.sweeps_collection)
        t = self.settings.store_timeout_s
        self._kw = {"timeout": t, "retry": Retry(initial=0.1, maximum=1.0, timeout=t)}

    # -- helpers --------------------------------------------------------------
    def _expire_at(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(days=self.settings.retention_days)

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (gexc.NotFound, gexc.AlreadyExists, gexc.FailedPrecondition):
            raise
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc
        except gexc.GoogleAPICallError as exc:
            raise _unavailable(exc) from exc

    # -- accepting jobs -------------------------------------------------------
    def new_record(self, envelope, reuse_key: Optional[str] = None) -> dict[str, Any]:
        sweep = envelope.sweep or None
        return {
            "jobId": envelope.job_id,
            "status": "queued",
            "kind": envelope.kind,
            "submittedAt": envelope.submitted_at,
            "startedAt": None,
            "finishedAt": None,
            "deliveryAttempts": 0,
            "job": envelope.job.model_dump(mode="json", exclude_none=True),
            "sweep": None if sweep is None else {"sweepId": sweep["sweepId"], "index": sweep["index"],
                                                 "values": sweep.get("values", {})},
            "callback": {"state": "pending", "status": None, "error": None, "attempts": 0},
            "cancelRequested": False,
            "reuseKey": reuse_key,
            "reusedFrom": None,
            "result": None,
            "expireAt": self._expire_at(),
        }

    def create(self, envelope, reuse_key: Optional[str] = None) -> None:
        """Record an accepted job; ``AlreadyExists`` (with the record) if the id is taken."""
        ref = self.jobs.document(envelope.job_id)
        try:
            self._call(ref.create, self.new_record(envelope, reuse_key), **self._kw)
        except gexc.AlreadyExists:
            raise AlreadyExists(self.get(envelope.job_id) or {"jobId": envelope.job_id})

    def create_sweep(self, sweep_id: str, envelopes: list, reuse_keys: Optional[list] = None,
                     request: Optional[dict] = None) -> None:
        """Record a sweep and all its members (in commits of at most 500 writes)."""
        expire = self._expire_at()
        writes = [(self.sweeps.document(sweep_id), {
            "sweepId": sweep_id, "total": len(envelopes), "submittedAt": envelopes[0].submitted_at if envelopes
            else now_iso(), "jobIds": [e.job_id for e in envelopes], "request": request, "expireAt": expire})]
        for k, e in enumerate(envelopes):
            writes.append((self.jobs.document(e.job_id),
                           self.new_record(e, None if reuse_keys is None else reuse_keys[k])))
        for start in range(0, len(writes), 400):
            batch = self.client.batch()
            for ref, data in writes[start:start + 400]:
                batch.create(ref, data)
            self._call(batch.commit, **self._kw)

    def delete(self, job_ids: Iterable[str]) -> None:
        """Forget jobs that were never queued (their publish failed)."""
        batch = self.client.batch()
        for job_id in job_ids:
            batch.delete(self.jobs.document(job_id))
        self._call(batch.commit, **self._kw)

    # -- reading --------------------------------------------------------------
    def get(self, job_id: str) -> Optional[dict[str, Any]]:
        snap = self._call(self.jobs.document(job_id).get, **self._kw)
        return snap.to_dict() if snap.exists else None

    def result(self, job_id: str, record: Optional[dict] = None) -> Optional[dict[str, Any]]:
        """The full stored result body (reassembled from its chunks), or None."""
        record = record or self.get(job_id)
        if record is None or not record.get("result"):
            return None
        info = record["result"]
        chunks = self.jobs.document(job_id).collection("chunks")
        parts = []
        for k in range(info["chunks"]):
            snap = self._call(chunks.document(f"{k:05d}").get, **self._kw)
            if not snap.exists:
                return None
            parts.append(snap.get("data"))
        return json.loads(gzip.decompress(b"".join(parts)))

    def list(self, status: Optional[str] = None, sweep: Optional[str] = None, limit: int = 50,
             page_token: Optional[str] = None) -> tuple[list[dict[str, Any]], Optional[str]]:
        """Jobs newest first; ``page_token`` continues after the last job of the previous page."""
        from google.cloud import firestore

        query = self.jobs
        if status:
            query = query.where(filter=firestore.FieldFilter("status", "==", status))
        if sweep:
            query = query.where(filter=firestore.FieldFilter("sweep.sweepId", "==", sweep))
        query = query.order_by("submittedAt", direction=firestore.Query.DESCENDING)
        if page_token:
            from shared.contract.limits import job_id_error

            try:
                last = base64.urlsafe_b64decode(page_token.encode()).decode()
            except (ValueError, UnicodeDecodeError):
                raise ValueError("page_token is not one this service gave")
            if job_id_error(last):
                raise ValueError("page_token is not one this service gave")
            snap = self._call(self.jobs.document(last).get, **self._kw)
            if not snap.exists:
                raise ValueError("page_token names a job that no longer exists")
            query = query.start_after(snap)
        docs = self._call(lambda: list(query.limit(limit + 1).stream(**self._kw)))
        rows = [d.to_dict() for d in docs[:limit]]
        token = None
        if len(docs) > limit:
            token = base64.urlsafe_b64encode(rows[-1]["jobId"].encode()).decode()
        return rows, token

    def sweep(self, sweep_id: str) -> Optional[dict[str, Any]]:
        snap = self._call(self.sweeps.document(sweep_id).get, **self._kw)
        if not snap.exists:
            return None
        head = snap.to_dict()
        rows, token = self.list(sweep=sweep_id, limit=1000)
        return {"sweep": head, "members": rows}

    def stale(self, queued_before: str, running_before: str, limit: int = 200) -> list[dict[str, Any]]:
        """Jobs still ``queued`` though submitted before ``queued_before``, or ``running``
        though started before ``running_before`` (ISO times): their messages were lost
        or their workers died without a redelivery."""
        from google.cloud import firestore

        found = []
        for status, field, before in (("queued", "submittedAt", queued_before), ("running", "startedAt", running_before)):
            query = (self.jobs.where(filter=firestore.FieldFilter("status", "==", status))
                     .where(filter=firestore.FieldFilter(field, "<", before)).limit(limit))
            found += [d.to_dict() for d in self._call(lambda q=query: list(q.stream(**self._kw)))]
        # not again before the same time has passed since the last requeue
        return [r for r in found if (r.get("requeuedAt") or "") < (queued_before if r["status"] == "queued"
                                                                     else running_before)]

    def mark_requeued(self, job_id: str) -> None:
        from google.cloud import firestore

        self._call(self.jobs.document(job_id).update, {"requeued": firestore.Increment(1),
                                                       "requeuedAt": now_iso()}, **self._kw)

    def find_reusable(self, reuse_key: str) -> Optional[dict[str, Any]]:
        from google.cloud import firestore

        query = (self.jobs.where(filter=firestore.FieldFilter("reuseKey", "==", reuse_key))
                 .where(filter=firestore.FieldFilter("status", "==", "succeeded")).limit(5))
        for doc in self._call(lambda: list(query.stream(**self._kw))):
            record = doc.to_dict()
            if record.get("result") and not record.get("reusedFrom"):
                return record
        return None

    # -- the worker's writes --------------------------------------------------
    def peek(self, envelope) -> tuple[str, dict[str, Any]]:
        """What ``start`` would answer, from one read and no write: ``"run"``,
        ``"cancelled"`` or ``"finished"``, with the record (a new one if there is none)."""
        record = self.get(envelope.job_id)
        if record is None:
            return "run", self.new_record(envelope)
        if record["status"] in FINISHED:
            return "finished", record
        if record.get("cancelRequested"):
            return "cancelled", record
        return "run", record

    def start(self, envelope) -> tuple[str, dict[str, Any]]:
        """Claim a delivery: ``("run", record)`` to simulate, ``("cancelled", record)`` if a
        cancel came first, ``("finished", record)`` if an outcome is already recorded."""
        from google.cloud import firestore

        ref = self.jobs.document(envelope.job_id)
        txn = self.client.transaction()

        @firestore.transactional
        def claim(txn):
            snap = ref.get(transaction=txn, **self._kw)
            record = snap.to_dict() if snap.exists else self.new_record(envelope)  # published straight to the topic
            if record["status"] in FINISHED:
                return "finished", record
            if record.get("cancelRequested"):
                return "cancelled", record
            record.update(status="running",
                          # a study continued from a checkpoint started with its first segment
                          startedAt=record.get("startedAt") if record.get("checkpoint") else now_iso(),
                          deliveryAttempts=int(record.get("deliveryAttempts") or 0) + 1)
            txn.set(ref, record)
            return "run", record

        return self._call(claim, txn)

    # -- checkpoints of a study continued across invocations --------------------
    def save_checkpoint(self, job_id: str, seq: int, data: bytes, sha256: str,
                        progress: dict[str, Any]) -> bool:
        """Store checkpoint ``seq`` (gzip chunks in ``jobs/<id>/checkpoint``, then the record's
        ``checkpoint`` and ``progress``). False, and nothing recorded, if a checkpoint of
        this or a later segment is already recorded (a duplicate delivery ran the segment too)."""
        from google.cloud import firestore

        ref = self.jobs.document(job_id)
        expire = self._expire_at()
        raw = gzip.compress(data, compresslevel=5)
        parts = [raw[k:k + CHUNK_BYTES] for k in range(0, len(raw), CHUNK_BYTES)] or [b""]
        chunks = ref.collection("checkpoint")
        for start in range(0, len(parts), CHUNKS_PER_COMMIT):
            batch = self.client.batch()
            for k in range(start, min(start + CHUNKS_PER_COMMIT, len(parts))):
                batch.set(chunks.document(f"{seq:05d}-{k:05d}"), {"data": parts[k], "expireAt": expire})
            self._call(batch.commit, **self._kw)
        txn = self.client.transaction()

        @firestore.transactional
        def record(txn):
            snap = ref.get(transaction=txn, **self._kw)
            current = snap.to_dict() if snap.exists else {}
            if current.get("status") in FINISHED or int((current.get("checkpoint") or {}).get("seq") or 0) >= seq:
                return False
            txn.update(ref, {
                "checkpoint": {"seq": seq, "sha256": sha256, "chunks": len(parts), "bytes": len(raw),
                               "published": False, "at": now_iso(),
                               "attemptsAt": int(current.get("deliveryAttempts") or 0)},
                "progress": {**progress, "continuations": seq}})
            return True

        return self._call(record, txn)

    def load_checkpoint(self, job_id: str, info: dict[str, Any]) -> bytes:
        """The checkpoint the record names, verified against its SHA-256; ``CheckpointError``
        if a chunk is missing or the bytes do not match (the job fails, never resumes from it)."""
        from shared.engine.checkpoint import CheckpointError, digest

        chunks = self.jobs.document(job_id).collection("checkpoint")
        parts = []
        for k in range(int(info["chunks"])):
            snap = self._call(chunks.document(f"{int(info['seq']):05d}-{k:05d}").get, **self._kw)
            if not snap.exists:
                raise CheckpointError(f"checkpoint {info['seq']} of this study is missing from the job store")
            parts.append(snap.get("data"))
        try:
            data = gzip.decompress(b"".join(parts))
        except (OSError, EOFError) as exc:
            raise CheckpointError(f"checkpoint {info['seq']} in the job store is damaged ({type(exc).__name__})")
        if digest(data) != info.get("sha256"):
            raise CheckpointError(f"checkpoint {info['seq']} in the job store does not match its SHA-256 "
                                  "(damaged); the study cannot resume from it")
        return data

    def record_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        """The study's ``progress`` (cycles done, latest capacity, ...) outside a checkpoint."""
        self._call(self.jobs.document(job_id).update, {"progress": progress}, **self._kw)

    def checkpoint_published(self, job_id: str, seq: int) -> None:
        self._call(self.jobs.document(job_id).update, {"checkpoint.published": True}, **self._kw)

    def cancel_requested(self, job_id: str) -> bool:
        snap = self._call(self.jobs.document(job_id).get, field_paths=["cancelRequested"], **self._kw)
        return bool(snap.exists and snap.get("cancelRequested"))

    def finish(self, job_id: str, body: dict[str, Any], reuse_key: Optional[str] = None,
               reused_from: Optional[str] = None) -> dict[str, Any]:
        """Store a finished job's result body (chunks first), then its outcome. A small
        result and the outcome go in one commit."""
        ref = self.jobs.document(job_id)
        expire = self._expire_at()
        raw = gzip.compress(json.dumps(body, separators=(",", ":")).encode(), compresslevel=5)
        parts = [raw[k:k + CHUNK_BYTES] for k in range(0, len(raw), CHUNK_BYTES)] or [b""]
        update = {
            "status": body.get("status", "failed"),
            "finishedAt": body.get("jobFinished") or now_iso(),
            "result": {"chunks": len(parts), "bytes": len(raw)},
            "reusedFrom": reused_from,
            **{k: body.get(k) for k in SUMMARY_FIELDS},
        }
        if reuse_key is not None and update["status"] == "succeeded":
            update["reuseKey"] = reuse_key
        if body.get("jobStarted") and body.get("jobStarted") is not True:
            update["startedAt"] = body["jobStarted"]
        for start in range(0, len(parts), CHUNKS_PER_COMMIT):
            batch = self.client.batch()
            for k in range(start, min(start + CHUNKS_PER_COMMIT, len(parts))):
                batch.set(ref.collection("chunks").document(f"{k:05d}"), {"data": parts[k], "expireAt": expire})
            if start + CHUNKS_PER_COMMIT >= len(parts):
                batch.set(ref, update, merge=True)  # the outcome, with (after) the last chunks
            self._call(batch.commit, **self._kw)
        return update

    def finish_once(self, job_id: str, body: dict[str, Any], reuse_key: Optional[str] = None,
                    reused_from: Optional[str] = None) -> Optional[dict[str, Any]]:
        """``finish``, unless another delivery of the job already stored an outcome with a
        result: then nothing is written and that record is returned (send its result, so
        that every callback of a job carries the same body)."""
        record = self.get(job_id)
        if record is not None and record.get("status") in FINISHED and record.get("result"):
            return record
        self.finish(job_id, body, reuse_key=reuse_key, reused_from=reused_from)
        return None

    def record_callback(self, job_id: str, state: str, status: Optional[int] = None,
                        error: Optional[str] = None) -> None:
        from google.cloud import firestore

        self._call(self.jobs.document(job_id).update, {
            "callback.state": state, "callback.status": status, "callback.error": error,
            "callback.attempts": firestore.Increment(1), "callback.at": now_iso()}, **self._kw)

    # -- cancel ---------------------------------------------------------------
    def cancel(self, job_id: str) -> dict[str, Any]:
        """queued -> cancelled at once; running -> cancelRequested (the worker stops it);
        ``Conflict`` if finished, ``NotFound`` if unknown."""
        from google.cloud import firestore

        ref = self.jobs.document(job_id)
        txn = self.client.transaction()

        @firestore.transactional
        def do(txn):
            snap = ref.get(transaction=txn, **self._kw)
            if not snap.exists:
                raise NotFound(job_id)
            record = snap.to_dict()
            if record["status"] in FINISHED:
                raise Conflict(record)
            update: dict[str, Any] = {"cancelRequested": True}
            if record["status"] == "queued":  # never simulated: cancelled now; the worker reports it
                update.update(status="cancelled", finishedAt=now_iso(), error="cancelled before it started",
                              termination="cancelled", completed=False)
            txn.update(ref, update)
            record.update(update)
            return record

        try:
            return self._call(do, txn)
        except ValueError:  # the transaction lost to concurrent writes (another cancel, the worker)
            record = self.get(job_id)
            if record is None:
                raise NotFound(job_id)
            if record["status"] in FINISHED:
                raise Conflict(record)
            if not record.get("cancelRequested"):
                raise
            return record


_store: Optional[JobStore] = None
_lock = threading.Lock()


def store() -> JobStore:
    """This process's store (one Firestore client)."""
    global _store
    with _lock:
        if _store is None:
            _store = JobStore()
        return _store


def reset() -> None:
    """Forget the process's store (tests that change settings)."""
    global _store
    with _lock:
        _store = None

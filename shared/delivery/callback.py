"""Posting results to the Job Manager: body shapes, signing, retries.

Legacy jobs (``kind`` ``cell`` / ``driveCycle``) get the original body — ``{"id",
"result": [{"time","voltage","current","dcap"}]}`` — plus status fields. Native
jobs get the columnar result. Every callback carries ``Idempotency-Key`` (the
job id, percent-encoded where it is not printable ASCII) and ``X-Delivery-Attempt``
so the receiver can drop duplicates.

An ageing study may also send progress callbacks (``progress_body``,
``deliver_progress``): ``"status": "running"``, ``"final": false``, the rows so far,
and an ``Idempotency-Key`` of their own (``<job id>:progress:<cycles done>``), so a
receiver that keys on it never takes one for the outcome. They are best effort: one
attempt, short time-outs, never retried, never an error.
"""

from __future__ import annotations

import gzip
import json
import math
import time
from typing import Any, Optional
from urllib.parse import quote, unquote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from shared.contract import legacy
from shared.contract.envelope import Envelope
from shared.delivery import signing
from shared.settings import Settings, get_settings

RETRY_STATUSES = (408, 425, 429, 500, 502, 503, 504)
# Printable ASCII except "%" and space: kept as-is in header values; anything else
# (non-ASCII, control characters) is percent-encoded, so any job id can travel in
# Idempotency-Key / X-Job-Id (and ids of the legacy pattern are unchanged).
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


class CallbackRejected(Exception):
    """The receiver answered a 4xx other than 429: retrying will not help."""

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.status = status


class CallbackUndelivered(Exception):
    """Network errors, time-outs or 429/5xx outlasted the retry budget."""


class CallbackNotAllowed(ValueError):
    """A per-job callback URL outside the configured allowlist."""


# --------------------------------------------------------------------------
# Where to send
# --------------------------------------------------------------------------
def resolve_target(kind: str, requested_url: Optional[str], settings: Settings | None = None) -> str:
    """The URL a job's result goes to. A requested URL must match the allowlist."""
    settings = settings or get_settings()
    base = settings.job_manager_url.rstrip("/")
    if requested_url is None:
        if legacy.is_legacy(kind):
            return base + legacy.CALLBACK_PATHS[kind]
        return base + settings.native_callback_path
    if not _allowed(requested_url, settings.allowlist):
        raise CallbackNotAllowed(
            "callback_url is not in this service's allowlist (CALLBACK_URL_ALLOWLIST); "
            "omit it to use the configured Job Manager"
        )
    return requested_url


def _allowed(url: str, allowlist: list[str]) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.username or parts.password:
        return False
    path = parts.path or "/"
    # no dot segments, encoded or not, and no backslashes: the path must mean what it says
    segments = unquote(path).replace("\\", "/").split("/")
    if any(seg in (".", "..") for seg in segments) or "%2f" in path.lower() or "%5c" in path.lower():
        return False
    for prefix in allowlist:
        p = urlsplit(prefix)
        base = p.path or "/"
        if (parts.scheme, parts.netloc.lower()) != (p.scheme, p.netloc.lower()):
            continue
        # the prefix must end at a path-segment boundary: /callbacks admits /callbacks/x, not /callbacksevil
        if path == base or path.startswith(base if base.endswith("/") else base + "/"):
            return True
    return False


# --------------------------------------------------------------------------
# What to send
# --------------------------------------------------------------------------
def body_for(envelope: Envelope, started_at: Optional[str], finished_at: str, attempt: Optional[int],
             result: Optional[dict[str, Any]] = None, error: Optional[str] = None,
             status: Optional[str] = None) -> dict[str, Any]:
    """The callback body for a finished job (``result``), a failed one (``error``) or a
    cancelled one (``error`` and ``status="cancelled"``)."""
    body: dict[str, Any] = {
        "id": envelope.job_id,
        "simulationType": envelope.kind,
        "status": status or ("failed" if error is not None else "succeeded"),
        "jobSubmitted": envelope.submitted_at,
        "jobStarted": started_at,
        "jobFinished": finished_at,
        "deliveryAttempt": attempt,
    }
    if envelope.sweep:
        body["sweep"] = envelope.sweep
    if error is not None:
        body.update({"error": error, "termination": body["status"], "completed": False, "result": []})
        return body
    assert result is not None
    body.update(
        {
            "termination": result["termination"],
            "completed": result["completed"],
            "stoppedEarly": result["stoppedEarly"],
            "endTime": result["endTime"],
            "summary": result["summary"],
            "timings": result.get("timings"),
            "error": None,
        }
    )
    if legacy.is_legacy(envelope.kind):
        body["result"] = legacy.result_rows(result.get("columns", {}))
    else:
        if "columns" in result:
            body["columns"] = result["columns"]
        for key in ("cycles", "end_of_life", "saved_cycles"):  # experiments, ageing studies
            if key in result:
                body[key] = result[key]
        body["notes"] = result.get("notes", [])
    return body


def progress_body(envelope: Envelope, started_at: Optional[str], attempt: Optional[int],
                  rows: list[dict[str, Any]], progress: dict[str, Any]) -> dict[str, Any]:
    """A progress callback of a running ageing study: not an outcome (``final`` false)."""
    body: dict[str, Any] = {
        "id": envelope.job_id,
        "simulationType": envelope.kind,
        "status": "running",
        "final": False,
        "jobSubmitted": envelope.submitted_at,
        "jobStarted": started_at,
        "jobFinished": None,
        "deliveryAttempt": attempt,
        "progress": progress,
        "cycles": rows,
    }
    if envelope.sweep:
        body["sweep"] = envelope.sweep
    return body


def progress_key(job_id: str, cycles_done: int) -> str:
    """The Idempotency-Key of a progress callback (never the job id alone: that is the outcome's)."""
    return f"{job_id}:progress:{cycles_done}"


def compressible(kind: Optional[str]) -> bool:
    """Large native callbacks may be gzip-compressed; the Job Manager's legacy ones never are."""
    return not legacy.is_legacy(kind)


def failure_body(job_id: str, kind: Optional[str], error: str, attempt: Optional[int]) -> dict[str, Any]:
    """A failure callback for a message that never became a job (poison)."""
    return {
        "id": job_id,
        "simulationType": kind,
        "status": "failed",
        "termination": "failed",
        "completed": False,
        "error": error,
        "deliveryAttempt": attempt,
        "result": [],
    }


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by ``null`` (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, float) and math.isfinite(v) for v in value):
            return value  # the common case, a clean column: no copy
        return [finite(v) for v in value]
    return value


# --------------------------------------------------------------------------
# How to send
# --------------------------------------------------------------------------
BACKOFF_FACTOR_S = 0.5
BACKOFF_MAX_S = 8.0
CONNECT_TIMEOUT_S = 5.0


ROUND_RETRIES = 3  # urllib3 retries within one round (backoff 0.5, 1, 2 s, with jitter)
ROUND_PAUSE_S = 2.0


def _round_worst_s(settings: Settings) -> float:
    """Longest one round can take: each try's connect time-out, its backoff, two reads."""
    backoff = sum(min(BACKOFF_MAX_S, BACKOFF_FACTOR_S * 2 ** k) for k in range(ROUND_RETRIES)) * 1.5
    return (ROUND_RETRIES + 1) * CONNECT_TIMEOUT_S + backoff + 2 * settings.callback_timeout_s


def worst_case_s(settings: Settings) -> float:
    """Longest a ``deliver`` call can take: a new round starts only within the budget."""
    return settings.callback_total_budget_s + ROUND_PAUSE_S + _round_worst_s(settings)


def _session() -> requests.Session:
    n = ROUND_RETRIES
    retry = Retry(
        total=n,
        connect=n,
        read=1,
        status=n,
        redirect=0,
        backoff_factor=BACKOFF_FACTOR_S,
        backoff_max=BACKOFF_MAX_S,
        backoff_jitter=0.5,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"POST"}),
        respect_retry_after_header=True,
        retry_after_max=int(BACKOFF_MAX_S),
        raise_on_status=False,
        raise_on_redirect=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def header_value(job_id: str) -> str:
    """A job id as an HTTP header value: percent-encoded (UTF-8) where it is not printable ASCII."""
    return quote(job_id, safe=_HEADER_SAFE)


def _prepare(body: dict[str, Any], job_id: str, key: str, attempt: Optional[int], compress: bool,
             settings: Settings) -> tuple[bytes, dict[str, str]]:
    """The bytes and headers of a callback (compressed and signed as configured)."""
    raw = json.dumps(finite(body), separators=(",", ":"), allow_nan=False).encode()
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": header_value(key),
        "X-Job-Id": header_value(job_id),
        "X-Delivery-Attempt": str(attempt or 1),
    }
    if compress and len(raw) >= settings.callback_gzip_min_bytes:
        raw = gzip.compress(raw, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    if settings.callback_signing_key:
        headers.update(signing.sign(raw, settings.callback_signing_key))
    return raw, headers


PROGRESS_TIMEOUT_S = (2.0, 5.0)  # connect, read: a progress callback never holds a study up for long


def deliver_progress(url: str, body: dict[str, Any], job_id: str,
                     settings: Settings | None = None) -> Optional[int]:
    """POST a progress callback once (no retry, no redirect); its status, or None if it did
    not land. Never raises: progress is best effort, the outcome's callback is not."""
    settings = settings or get_settings()
    try:
        key = progress_key(job_id, int((body.get("progress") or {}).get("cyclesDone") or 0))
        raw, headers = _prepare(body, job_id, key, body.get("deliveryAttempt"), True, settings)
        headers["X-Callback-Final"] = "false"
        response = requests.post(url, data=raw, headers=headers, allow_redirects=False,
                                 timeout=PROGRESS_TIMEOUT_S)
    except (requests.RequestException, ValueError, TypeError):
        return None
    return response.status_code


def deliver(url: str, body: dict[str, Any], job_id: str, attempt: Optional[int] = None,
            settings: Settings | None = None, compress: bool = False) -> int:
    """POST ``body``; return the 2xx status.

    Connection errors, time-outs, 408/425/429 and 5xx are retried by urllib3's
    ``Retry`` (exponential backoff with jitter), in rounds until
    ``callback_total_budget_s`` is spent (``worst_case_s`` bounds the wall time);
    then ``CallbackUndelivered`` (the invocation fails and Pub/Sub redelivers). Any
    other 4xx raises ``CallbackRejected`` at once.
    """
    settings = settings or get_settings()
    raw, headers = _prepare(body, job_id, job_id, attempt, compress, settings)
    deadline = time.monotonic() + settings.callback_total_budget_s
    with _session() as session:
        while True:  # rounds of urllib3 retries until the budget is spent
            try:
                # redirects are not followed: an allowlisted host must not bounce the
                # signed body elsewhere
                response = session.post(url, data=raw, headers=headers, allow_redirects=False,
                                        timeout=(CONNECT_TIMEOUT_S, settings.callback_timeout_s))
            except requests.RequestException as exc:
                last = type(exc).__name__
            else:
                if 200 <= response.status_code < 300:
                    return response.status_code
                if response.status_code not in RETRY_STATUSES:
                    raise CallbackRejected(f"receiver answered {response.status_code}", response.status_code)
                last = f"receiver answered {response.status_code}"
            if time.monotonic() + ROUND_PAUSE_S >= deadline:
                raise CallbackUndelivered(f"callback to the Job Manager failed: {last}")
            time.sleep(ROUND_PAUSE_S)

"""The command-line client's side of the HTTP API: submit, poll the job store, fetch results.

Every call goes to the submit function (``--url``) with the ``X-API-Key`` when one
is given. Failures become ``ServiceError`` with a message fit for stderr; polling
rides out the store's or the network's short outages (503, 429, 5xx, connection
errors) until its deadline.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import quote, unquote, urlsplit

import requests

FINISHED = ("succeeded", "failed", "cancelled")
TRANSIENT = (429, 500, 502, 503, 504)
POLL_S = (0.25, 0.5, 1.0, 2.0)  # intervals between polls: these, then the last one
LOOPBACK = ("localhost", "::1")


class ServiceError(Exception):
    """A call that did not get the answer it needed. ``status`` is None when the
    service could not be reached at all."""

    def __init__(self, message: str, status: Optional[int] = None, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body

    @property
    def transient(self) -> bool:
        return self.status is None or self.status in TRANSIENT


def is_local(url: str) -> bool:
    """True for a loopback URL (127.0.0.0/8, ::1, localhost): the local stack."""
    host = (urlsplit(url).hostname or "").lower()
    return host in LOOPBACK or host.startswith("127.")


def describe(reply: requests.Response) -> str:
    """A rejected reply as text: the status, then one line per reported error."""
    if reply.status_code == 401:
        return "401: missing or wrong X-API-Key (give --api-key or set API_KEY)"
    try:
        body = reply.json()
    except ValueError:
        return f"{reply.status_code}: {reply.text[:500]}"
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        lines = [f"{reply.status_code}: {body.get('error', 'rejected')}"]
        for e in body["errors"]:
            if isinstance(e, dict):
                lines.append(f"  {e.get('field', '')}: {e.get('error', e)}")
            else:
                lines.append(f"  {e}")
        return "\n".join(lines)
    if isinstance(body, dict) and body.get("error"):
        return f"{reply.status_code}: {body['error']}"
    return f"{reply.status_code}: {str(body)[:500]}"


class Client:
    def __init__(self, url: str, api_key: str = "", timeout_s: float = 30):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s

    def request(self, method: str, path: str, *, body: Any = None, params: Optional[dict] = None,
                headers: Optional[dict] = None, ok: tuple[int, ...] = (200,),
                timeout_s: Optional[float] = None) -> requests.Response:
        """One call; a reply whose status is not in ``ok`` raises ``ServiceError``."""
        sent = {"Accept": "application/json", **(headers or {})}
        if self.api_key:
            sent["X-API-Key"] = self.api_key
        data = None
        if body is not None:
            import json

            data = json.dumps(body)
            sent["Content-Type"] = "application/json"
        try:
            reply = requests.request(method, self.url + path, data=data, params=params, headers=sent,
                                     timeout=timeout_s or self.timeout_s)
        except requests.RequestException as exc:
            raise ServiceError(f"could not reach {self.url}: {type(exc).__name__}") from exc
        if reply.status_code not in ok:
            try:
                parsed = reply.json()
            except ValueError:
                parsed = None
            raise ServiceError(describe(reply), reply.status_code, parsed)
        return reply

    def get(self, path: str, **kw) -> Any:
        return self.request("GET", path, **kw).json()

    def catalog(self) -> dict[str, Any]:
        """``GET /catalog``: models, options, parameter sets, kinds of job, limits."""
        return self.get("/catalog", timeout_s=120)

    # ---- the store's views --------------------------------------------------
    def job(self, job_id: str) -> dict[str, Any]:
        return self.get(f"/jobs/{_q(job_id)}")

    def sweep(self, sweep_id: str) -> dict[str, Any]:
        return self.get(f"/sweeps/{_q(sweep_id)}")

    def result(self, job_id: str, view: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """The job's full result (the callback body). A finished job with no stored
        result (cancelled before it started) gets a body made from its status view."""
        try:
            return self.get(f"/jobs/{_q(job_id)}/result")
        except ServiceError as exc:  # 404 with the job's status: finished, no stored result
            if not (exc.status == 404 and isinstance(exc.body, dict) and exc.body.get("status")):
                raise
        return body_from_view(view or self.job(job_id))

    def results(self, job_ids: list[str], views: Optional[dict[str, dict]] = None) -> list[dict[str, Any]]:
        """``result`` for each id, a few at a time (a sweep's members)."""
        views = views or {}
        with ThreadPoolExecutor(max_workers=min(8, max(1, len(job_ids)))) as pool:
            return list(pool.map(lambda i: self.result(i, views.get(i)), job_ids))

    def jobs(self, status: Optional[str] = None, sweep: Optional[str] = None, limit: int = 50,
             page_token: Optional[str] = None) -> dict[str, Any]:
        params = {k: v for k, v in {"status": status, "sweep": sweep, "limit": limit,
                                    "page_token": page_token}.items() if v not in (None, "")}
        return self.get("/jobs", params=params)


def _q(job_id: str) -> str:
    return quote(job_id, safe="")


def body_from_view(view: dict[str, Any]) -> dict[str, Any]:
    """A callback-shaped body from a status view (no series): for a job that has no stored result."""
    body = {"id": view.get("jobId"), "simulationType": view.get("kind")}
    for key in ("status", "termination", "completed", "stoppedEarly", "endTime", "summary", "notes", "error",
                "timings", "sweep"):
        if view.get(key) is not None:
            body[key] = view[key]
    return body


def body_from_sync_reply(reply: requests.Response, kind: str) -> dict[str, Any]:
    """A callback-shaped body from the Job Manager's synchronous reply (200) and its headers."""
    data = reply.json()
    status = unquote(reply.headers.get("X-Job-Status", "")) or ("succeeded" if data.get("jobStarted") else "failed")
    body: dict[str, Any] = {"id": unquote(reply.headers.get("X-Job-Id", "")), "simulationType": kind,
                            "status": status, "result": data.get("simulationResults") or []}
    if reply.headers.get("X-Job-Termination"):
        body["termination"] = unquote(reply.headers["X-Job-Termination"])
    if reply.headers.get("X-Job-Error"):
        body["error"] = unquote(reply.headers["X-Job-Error"])
    return body


@dataclass
class Waiter:
    """Polls the store until the jobs are finished or the deadline passes, saying how it goes."""

    client: Client
    deadline: float  # time.monotonic()
    say: Callable[[str], None]
    sleep: Callable[[float], None] = time.sleep
    _k: int = 0
    _outage: Optional[str] = field(default=None, repr=False)

    def _pause(self) -> bool:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sleep(min(POLL_S[min(self._k, len(POLL_S) - 1)], remaining))
        self._k += 1
        return True

    def _poll(self, fetch: Callable[[], dict]) -> Optional[dict]:
        try:
            found = fetch()
        except ServiceError as exc:
            if not exc.transient:
                raise
            if self._outage is None:
                self.say(f"  (the service is not answering: {str(exc).splitlines()[0]}; still trying)")
            self._outage = str(exc)
            return None
        if self._outage is not None:
            self.say("  (the service answers again)")
            self._outage = None
        return found

    def job(self, job_id: str) -> tuple[Optional[dict[str, Any]], bool]:
        """(latest status view, finished?) — the view is None if the store never answered."""
        last, shown = None, None
        while True:
            view = self._poll(lambda: self.client.job(job_id))
            if view is not None:
                last = view
                if view.get("status") != shown:
                    shown = view.get("status")
                    self.say(f"  1/1 done ({shown})" if shown in FINISHED else f"  {shown}")
                if shown in FINISHED:
                    return view, True
            if not self._pause():
                return last, False

    def sweep(self, sweep_id: str) -> tuple[Optional[dict[str, Any]], bool]:
        """(latest sweep view, every member finished?)."""
        last, shown = None, None
        while True:
            view = self._poll(lambda: self.client.sweep(sweep_id))
            if view is not None:
                last = view
                progress = (view.get("finished"), view.get("total"))
                if progress != shown:
                    shown = progress
                    self.say(f"  {progress[0]}/{progress[1]} done")
                if view.get("total") is not None and view.get("finished") == view.get("total"):
                    return view, True
            if not self._pause():
                return last, False

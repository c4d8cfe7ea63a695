"""A small Job Manager receiver: records callbacks, drops duplicates.

    python -m cli.receiver            # listens on 127.0.0.1:8083, prints each result

It shows the receiver's side of the contract: answer 2xx quickly, treat the
``Idempotency-Key`` header (the job id) as the key — a redelivered job's second
callback is acknowledged and dropped — and, when ``CALLBACK_SIGNING_KEY`` is
set, reject a callback whose signature does not verify (401).
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional
from urllib.parse import unquote

from shared.delivery import signing


class Receiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, signing_key: str = "",
                 on_result: Optional[Callable[[str, dict], None]] = None):
        self.signing_key = signing_key
        self.on_result = on_result
        self.results: dict[str, dict[str, Any]] = {}  # job id -> first body
        self.paths: dict[str, str] = {}
        self.deliveries: list[tuple[str, str]] = []  # (path, job id) of every POST, duplicates included
        self.statuses: dict[str, list[str]] = {}  # job id -> "status" of every delivery, duplicates included
        self.encodings: dict[str, list[str]] = {}  # job id -> Content-Encoding of every delivery ("" = none)
        self.rejected = 0
        self.fail_next = 0  # answer 503 to this many requests (fault injection)
        self.reject_with: Optional[int] = None  # answer this status to every request (e.g. 404: a Job Manager without the endpoint)
        self.rejections: list[tuple[str, str]] = []  # (path, job id) of every request answered reject_with
        self._cond = threading.Condition()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, text = receiver._accept(self.path, raw, self.headers)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, *args):
                pass

        return Handler

    def _accept(self, path: str, raw: bytes, headers) -> tuple[int, str]:
        with self._cond:
            if self.fail_next > 0:
                self.fail_next -= 1
                return 503, "try later"
            if self.reject_with is not None:
                self.rejections.append((path, unquote(headers.get("Idempotency-Key") or "")))
                return self.reject_with, "not here"
        if self.signing_key and not signing.verify(raw, headers, self.signing_key):
            with self._cond:
                self.rejected += 1
            return 401, "bad signature"
        encoding = headers.get("Content-Encoding") or ""
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, "not JSON"
        key = unquote(headers.get("Idempotency-Key") or "") or str(body.get("id"))
        with self._cond:
            self.deliveries.append((path, key))
            self.statuses.setdefault(key, []).append(str(body.get("status")))
            self.encodings.setdefault(key, []).append(encoding)
            duplicate = key in self.results
            if not duplicate:
                self.results[key] = body
                self.paths[key] = path
            self._cond.notify_all()
        if not duplicate and self.on_result:
            self.on_result(path, body)
        return 200, "duplicate ignored" if duplicate else "received"

    def wait_for(self, job_ids, timeout_s: float) -> dict[str, dict]:
        """Block until every job id has a result; return them. Raises TimeoutError."""
        ids = set(job_ids)
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not ids <= self.results.keys():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = sorted(ids - self.results.keys())
                    raise TimeoutError(f"{len(missing)} of {len(ids)} results missing: {missing[:5]}")
                self._cond.wait(min(remaining, 0.5))
            return {i: self.results[i] for i in ids}

    def start(self) -> "Receiver":
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main() -> int:
    port = int(os.environ.get("RECEIVER_PORT", 8083))

    def show(path: str, body: dict) -> None:
        n = len(body.get("result") or []) or len((body.get("columns") or {}).get("Time [s]", []))
        print(f"{path} id={body.get('id')} status={body.get('status')} "
              f"termination={body.get('termination')} points={n} error={body.get('error')}", flush=True)

    receiver = Receiver(port=port, signing_key=os.environ.get("CALLBACK_SIGNING_KEY", ""), on_result=show)
    receiver.start()
    print(f"receiver listening on {receiver.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

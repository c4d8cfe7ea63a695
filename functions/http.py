"""Request and reply helpers of the HTTP function: JSON bodies, errors, the API key, headers."""

from __future__ import annotations

import hmac
import json
import uuid
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from shared.settings import get_settings

JSON = {"Content-Type": "application/json"}


class BadRequest(Exception):
    def __init__(self, errors: list[dict[str, str]], status: int = 400):
        super().__init__(errors)
        self.errors = errors
        self.status = status


def reply(status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
    return json.dumps(body), status, {**JSON, **(headers or {})}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
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


def json_body(request) -> dict[str, Any]:
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




def authorised(request) -> bool:
    key = get_settings().api_key
    if not key:
        return True
    given = request.headers.get("X-API-Key", "")
    return hmac.compare_digest(given.encode(), key.encode())


def header_safe(text: Any, limit: int = 500) -> str:
    """Any text as an HTTP header value: one line, printable ASCII (the rest percent-encoded)."""
    one_line = " ".join(str(text).split())[:limit]
    return quote(one_line, safe="".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%"))


def prefer(request) -> dict[str, str]:
    """The request's ``Prefer`` preferences (RFC 7240), e.g. ``{"respond-async": "", "wait": "30"}``."""
    out: dict[str, str] = {}
    for header in request.headers.getlist("Prefer"):
        for item in header.split(","):
            name, _, value = item.strip().partition("=")
            if name:
                out[name.strip().lower()] = value.strip().strip('"')
    return out

"""HMAC-SHA256 signatures for callbacks, and the helper receivers use to verify them.

Headers on every signed callback::

    X-Signature-Timestamp: <unix seconds>
    X-Signature: v1=<hex HMAC-SHA256(key, "<timestamp>." + body bytes as sent)>

A receiver recomputes the HMAC over the timestamp and the exact bytes it
received (before any gzip decoding), compares in constant time and rejects a
timestamp older than its tolerance (default 300 s) to stop replays::

    from shared.delivery.signing import verify
    ok = verify(request.get_data(), request.headers, key=os.environ["CALLBACK_SIGNING_KEY"])
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Mapping, Optional

TIMESTAMP_HEADER = "X-Signature-Timestamp"
SIGNATURE_HEADER = "X-Signature"
DEFAULT_TOLERANCE_S = 300


def signature(key: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def sign(body: bytes, key: str, now: Optional[float] = None) -> dict[str, str]:
    """The headers to send with ``body``."""
    ts = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: signature(key, ts, body)}


def verify(
    body: bytes,
    headers: Mapping[str, str],
    key: str,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: Optional[float] = None,
) -> bool:
    """True if ``body`` was signed with ``key`` within ``tolerance_s`` seconds."""
    ts = _get(headers, TIMESTAMP_HEADER)
    sig = _get(headers, SIGNATURE_HEADER)
    if not ts or not sig or not key:
        return False
    try:
        age = abs((time.time() if now is None else now) - int(ts))
    except ValueError:
        return False
    if age > tolerance_s:
        return False
    return hmac.compare_digest(signature(key, ts, body), sig)


def _get(headers: Mapping[str, str], name: str) -> Optional[str]:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive
        lowered = {k.lower(): v for k, v in headers.items()}
        value = lowered.get(name.lower())
    return value

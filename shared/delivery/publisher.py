"""Publishing jobs to the Pub/Sub topic (works against the emulator via PUBSUB_EMULATOR_HOST)."""

from __future__ import annotations

import threading
from typing import Iterable

from shared.delivery.messages import encode
from shared.contract.envelope import Envelope
from shared.settings import get_settings

_client = None
_lock = threading.Lock()


def _publisher():
    global _client
    with _lock:
        if _client is None:
            from google.cloud import pubsub_v1  # imported on first publish only

            _client = pubsub_v1.PublisherClient()
        return _client


def publish(envelopes: Iterable[Envelope]) -> list[str]:
    """Publish one message per job; wait for every one; return their message ids."""
    # encode (and size-check) every message first: a sweep is published whole or not at all
    return publish_encoded([encode(envelope) for envelope in envelopes])


def publish_encoded(encoded: list[tuple[bytes, dict[str, str]]]) -> list[str]:
    """Publish messages already encoded (``messages.encode``); wait for every one."""
    settings = get_settings()
    client = _publisher()
    futures = [client.publish(settings.topic_path, data, **attributes) for data, attributes in encoded]
    return [f.result(timeout=settings.publish_timeout_s) for f in futures]

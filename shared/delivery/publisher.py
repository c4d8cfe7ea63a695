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
    settings = get_settings()
    # encode (and size-check) every message first: a sweep is published whole or not at all
    encoded = [encode(envelope) for envelope in envelopes]
    client = _publisher()
    futures = [client.publish(settings.topic_path, data, **attributes) for data, attributes in encoded]
    return [f.result(timeout=settings.publish_timeout_s) for f in futures]

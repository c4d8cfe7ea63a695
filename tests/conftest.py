"""Shared fixtures: a real callback receiver and the real local stack
(Pub/Sub emulator + two functions-framework processes) on free ports."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import requests

from local.stack import with_kit_drive_cycles
from shared.contract.envelope import Envelope
from shared.contract.legacy import JAVA_CELL, JAVA_DRIVE_CYCLE, LegacyRequest  # noqa: F401 - tests import the bodies from here

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
os.environ["DRIVE_CYCLE_PATH"] = with_kit_drive_cycles(os.environ.get("DRIVE_CYCLE_PATH", ""))


def envelope(kind: str = "cell") -> Envelope:
    """The Pub/Sub envelope of the Java cell job, as the submit function builds it."""
    return Envelope(job_id="job-1", kind=kind, submitted_at="2026-01-01T00:00:00Z",
                    job=LegacyRequest.model_validate(JAVA_CELL).to_job("cell"))


def submit(stack, path: str, body: dict, headers: dict | None = None, **kw) -> requests.Response:
    """POST a JSON body to the stack's submit function and have it answer at once
    (``Prefer: respond-async``: 202 and a callback later). The Java Job Manager's
    synchronous reply is tested in tests/test_job_store.py."""
    return requests.post(stack.submit_url + path, data=json.dumps(body),
                         headers={"Content-Type": "application/json", "Prefer": "respond-async", **(headers or {})},
                         timeout=30, **kw)


@pytest.fixture(scope="session")
def receiver():
    from cli.receiver import Receiver

    with Receiver() as r:
        yield r


@pytest.fixture(scope="session")
def stack(receiver):
    from local.stack import Stack

    with Stack.on_free_ports(job_manager_url=receiver.url) as s:
        yield s


def audit_subscription(stack) -> str:
    """A pull subscription on the job topic, to see what gets published from now on."""
    import time

    from google.cloud import pubsub_v1

    os.environ["PUBSUB_EMULATOR_HOST"] = stack.emulator_host
    sub = pubsub_v1.SubscriberClient()
    name = sub.subscription_path(stack.project, f"audit-{time.monotonic_ns()}")
    sub.create_subscription(request={"name": name, "topic": f"projects/{stack.project}/topics/{stack.topic}"})
    sub.close()
    return name


def pulled_job_ids(stack, name: str) -> list[str]:
    """Job ids of the messages published since the audit subscription was made."""
    from google.api_core.exceptions import DeadlineExceeded
    from google.cloud import pubsub_v1

    os.environ["PUBSUB_EMULATOR_HOST"] = stack.emulator_host
    sub = pubsub_v1.SubscriberClient()
    try:
        response = sub.pull(request={"subscription": name, "max_messages": 100}, timeout=5)
        return [m.message.attributes.get("jobId", "") for m in response.received_messages]
    except DeadlineExceeded:
        return []
    finally:
        sub.close()


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory):
    """The official Firestore emulator on a free port for in-process tests of the
    functions (started by the local stack's code: its own process group, and the
    stack's watchdog stops it even if this test process is killed); sets
    FIRESTORE_EMULATOR_HOST."""
    from local.stack import firestore_only

    with firestore_only(tmp_path_factory.mktemp("firestore-tests")) as stack:
        yield stack.firestore_host


def pytest_collection_modifyitems(items):
    """Tests that need the Firestore emulator are marked ``emulator`` (Cloud Build's unit
    stage has no emulator and deselects them; everything else runs there)."""
    for item in items:
        if "firestore_emulator" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.emulator)

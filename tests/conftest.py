"""Shared fixtures: a real callback receiver and the real local stack
(Pub/Sub emulator + two functions-framework processes) on free ports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
KIT = REPO.parent / "shared" / "data" / "drive_cycles"

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
if KIT.is_dir() and str(KIT) not in os.environ.get("DRIVE_CYCLE_PATH", ""):
    os.environ["DRIVE_CYCLE_PATH"] = os.pathsep.join(
        p for p in (os.environ.get("DRIVE_CYCLE_PATH", ""), str(KIT)) if p)

# The exact bodies the Java Job Manager sends (Jackson serialisation, no id).
JAVA_CELL = {"simulationType": "cell", "time": 1.0, "upperVoltage": 4.2, "lowerVoltage": 2.5,
             "nominalCell": 5.0, "controlCurrent": 5.0}
JAVA_DRIVE_CYCLE = {"simulationType": "driveCycle", "time": 0.0, "upperVoltage": 4.2,
                    "lowerVoltage": 2.5, "nominalCell": 5.0, "controlCurrent": 0.0}


@pytest.fixture(scope="session")
def receiver():
    from local.receiver import Receiver

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

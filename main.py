"""Cloud Functions entry points. Each delegates to its module in ``functions/``.

* ``submit_job``     — HTTP: validates a job, publishes it to Pub/Sub, answers 202.
* ``run_simulation`` — Pub/Sub (CloudEvent): runs one simulation, posts the result.
"""

import os

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import functions_framework  # noqa: E402

from functions import submit, worker  # noqa: E402
from shared import logs  # noqa: E402

logs.configure()


@functions_framework.http
def submit_job(request):
    return submit.handle(request)


@functions_framework.cloud_event
def run_simulation(cloud_event):
    worker.handle(cloud_event.data, event_id=cloud_event["id"])

"""Cloud Functions entry points. Each delegates to its module in ``functions/``.

* ``submit_job``     — HTTP: validates a job, records and publishes it; job status, results, cancel.
* ``run_simulation`` — Pub/Sub (CloudEvent): runs one simulation, stores and posts the result.
* ``record_dead_letter`` — Pub/Sub (CloudEvent) on the dead-letter topic: an outcome for every
  job Pub/Sub gave up on.
"""

import json
import logging
import os

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import functions_framework  # noqa: E402
from werkzeug.exceptions import HTTPException  # noqa: E402

from functions import dead_letters, submit, worker  # noqa: E402
from shared import logs  # noqa: E402

logs.configure()
worker.check_configuration()  # a bad setting stops both functions here, at start-up


@functions_framework.errorhandler(HTTPException)
def framework_error(exc):
    """Errors raised by the framework before a function runs (e.g. a path its catch-all
    route cannot match, such as one containing %0A, or /favicon.ico) answer in JSON
    like every other reply. Unhandled exceptions keep the framework's 500 handler."""
    return json.dumps({"error": exc.description or exc.name}), exc.code or 500, {"Content-Type": "application/json"}


@functions_framework.errorhandler(worker.Busy)
def worker_busy(exc):
    """A push that reached an instance already solving (a local worker process, or a
    Cloud Functions instance given a second event) is refused with 503, and Pub/Sub
    delivers it again: an expected refusal, logged as a warning, not an error."""
    logging.getLogger("worker").warning("push refused: %s; Pub/Sub redelivers it", exc)
    return json.dumps({"error": str(exc)}), 503, {"Content-Type": "application/json", "Retry-After": "1"}


@functions_framework.http
def submit_job(request):
    return submit.handle(request)


@functions_framework.cloud_event
def run_simulation(cloud_event):
    worker.handle(cloud_event.data, event_id=cloud_event["id"])


@functions_framework.cloud_event
def record_dead_letter(cloud_event):
    dead_letters.handle(cloud_event.data, event_id=cloud_event["id"])

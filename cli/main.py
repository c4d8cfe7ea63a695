"""battery-sim: submit jobs and sweeps, follow them in the job store, fetch, tabulate, save and plot.

    battery-sim submit job.json                      # local stack (make dev) at 127.0.0.1:8084
    battery-sim submit sweep.json --out results/     # a sweep: one row and one line per member
    battery-sim submit job.json --url https://REGION-PROJECT.cloudfunctions.net/submit-job   # polls
    battery-sim status ID [--json]                   # a job's (or a sweep's) status view
    battery-sim result ID [--out DIR] [--csv] [--no-plot]
    battery-sim cancel ID [--sweep]
    battery-sim list [--status S] [--sweep ID] [--limit N] [--all] [--json]
    battery-sim catalog [--json]                     # kinds, models, parameter sets, limits

``submit`` takes a native job (``POST /jobs``), a sweep (has ``vary``: ``POST
/sweeps``) or the Java Job Manager's legacy body (has ``simulationType``; sent
with ``Prefer: respond-async`` so the service queues it and answers at once).
Results come back one of two ways:

* ``--poll``: poll ``GET /jobs/<id>`` (a sweep: ``GET /sweeps/<id>``) until every
  job is finished, then fetch each ``GET /jobs/<id>/result`` (the stored result is
  the callback body). Nothing needs to reach this machine. **The default when
  ``--url`` is not a loopback URL** (a deployed service).
* ``--receiver``: run a callback receiver (``--listen``, default 127.0.0.1:8083)
  and wait for the callbacks there. **The default for a loopback ``--url``** (the
  local stack, whose ``JOB_MANAGER_URL`` is that receiver: polling there leaves
  the stack's callbacks undelivered and retried), and whenever ``--callback-url``
  is given without ``--poll``.

Either way the same table (its columns follow the kind of result: a cell's capacity
and voltages; a pack's battery figures; a spectrum's impedances; an ageing study's
cycles and end of life), ``results.json``, ``results.csv`` and the plots the results
have data for come out: ``plot.png`` (a cell's voltage, current, temperature),
``pack.png`` (battery voltage and current; each cell's current and temperature when
the cells differ), ``ageing.png`` (capacity and loss of lithium inventory per cycle),
``nyquist.png`` and ``bode.png``. Jobs that did not succeed have their full error
printed under the table; no plot is written when no job has data to draw.

``catalog`` prints ``GET /catalog``: kinds of job, parameter sets with the models
each works with, options, limits (``--json``: all of it).

``status``, ``result`` take a job id or a sweep id (a job id is tried first;
``--sweep`` says it is a sweep). ``result --csv`` prints CSV on stdout instead
(a job: the service's ``/result?format=csv``; a sweep: the long format of
results.csv) and writes no files. Every command takes ``--url`` (default
``BATTERY_SIM_URL`` or http://127.0.0.1:8084) and ``--api-key`` (default ``API_KEY``).

Exit status: 0 if every job succeeded (status/list/cancel: done as asked), 1 if any
failed or was cancelled (cancel: the job had already finished), 2 on a submit
error, an unreachable service, an unknown id, an unfinished result or a time-out;
130 when interrupted (the jobs keep running).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote, unquote

from cli.client import FINISHED, Client, ServiceError, Waiter, body_from_sync_reply, is_local


def _route(body: dict) -> str:
    if "vary" in body:
        return "/sweeps"
    if "simulationType" in body:
        return "/drivecycle/simulate" if body["simulationType"] == "driveCycle" else "/cell/simulate"
    return "/jobs"


def _parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def _err(*lines: str) -> None:
    for line in lines:
        print(line, file=sys.stderr, flush=True)


def choose_mode(url: str, mode: Optional[str], callback_url: Optional[str]) -> str:
    """``poll`` or ``receiver``: the one asked for, else a receiver for a loopback URL
    or a given --callback-url, else polling."""
    if mode:
        return mode
    return "receiver" if callback_url or is_local(url) else "poll"


# --------------------------------------------------------------------------
# submit
# --------------------------------------------------------------------------
class Accepted:
    """What the service said to a submission: the job ids, a title, and bodies it already gave."""

    def __init__(self, ids: list[str], what: str, sweep_id: Optional[str] = None,
                 finished: Optional[dict[str, dict]] = None):
        self.ids, self.what, self.sweep_id = ids, what, sweep_id
        self.finished = finished or {}


def _submit(client: Client, route: str, body: dict) -> Accepted:
    legacy = route not in ("/jobs", "/sweeps")
    headers = {"Prefer": "respond-async"} if legacy else {}
    reply = client.request("POST", route, body=body, headers=headers, ok=(200, 202), timeout_s=120)
    data = reply.json()
    if route == "/sweeps":
        ids = list(data.get("jobIds") or [])
        return Accepted(ids, f"sweep {data['sweepId']} ({len(ids)} members)", sweep_id=data["sweepId"])
    job_id = data.get("jobId") or reply.headers.get("X-Job-Id")
    if not job_id:
        raise ServiceError(f"{reply.status_code}: the reply names no job: {str(data)[:300]}", reply.status_code)
    job_id = unquote(job_id)
    accepted = Accepted([job_id], f"job {job_id}")
    if legacy and reply.status_code == 200 and "jobStarted" in data:
        # a service that answered synchronously (it ignored respond-async): the job is finished
        kind = "driveCycle" if route == "/drivecycle/simulate" else "cell"
        try:
            accepted.finished[job_id] = client.result(job_id)
        except ServiceError:  # no job store to ask: what the reply carries
            accepted.finished[job_id] = body_from_sync_reply(reply, kind)
    return accepted


def _wait_receiver(client: Client, receiver, accepted: Accepted, timeout_s: float) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    ids, done = accepted.ids, -1
    bodies = accepted.finished
    while True:
        bodies.update((i, receiver.results[i]) for i in ids if i in receiver.results and i not in bodies)
        if len(bodies) != done:
            done = len(bodies)
            _err(f"  {done}/{len(ids)} done")
        if done == len(ids):
            break
        if time.monotonic() > deadline:
            _err(f"timed out after {timeout_s:g} s with {done}/{len(ids)} callbacks")
            found = _from_store(client, [i for i in ids if i not in bodies])
            if found:
                _err(f"  {len(found)} more finished in the job store (their callbacks did not arrive here)")
                bodies.update(found)
            break
        time.sleep(0.5)
    return [bodies[i] for i in ids if i in bodies]


def _from_store(client: Client, ids: list[str]) -> dict[str, dict]:
    """Results of the finished jobs among ``ids``, if the service has a job store to ask."""
    found = {}
    for job_id in ids:
        try:
            view = client.job(job_id)
            if view.get("status") in FINISHED:
                found[job_id] = client.result(job_id, view)
        except ServiceError:
            break
    return found


def _wait_poll(client: Client, accepted: Accepted, timeout_s: float) -> list[dict]:
    waiter = Waiter(client, time.monotonic() + timeout_s, _err)
    ids = [i for i in accepted.ids if i not in accepted.finished]
    bodies = dict(accepted.finished)
    if accepted.sweep_id:
        view, finished = waiter.sweep(accepted.sweep_id)
        members = (view or {}).get("members") or []
        done = [m["jobId"] for m in members if m.get("status") in FINISHED]
        if not finished:
            _err(f"timed out after {timeout_s:g} s with {len(done)}/{len(ids)} finished")
    elif ids:
        view, finished = waiter.job(ids[0])
        done = ids if finished else []
        if not finished:
            _err(f"timed out after {timeout_s:g} s; the job is {(view or {}).get('status', 'unknown')}")
    else:
        done = []
    bodies.update(zip(done, client.results(done)))
    return [bodies[i] for i in accepted.ids if i in bodies]


def cmd_submit(args) -> int:
    raw = sys.stdin.read() if str(args.file) == "-" else args.file.read_text()
    body = json.loads(raw)
    route = _route(body)
    if args.callback_url:
        if route not in ("/jobs", "/sweeps"):
            _err("--callback-url needs a native job or sweep: the legacy routes always answer to the "
                 "service's JOB_MANAGER_URL")
            return 2
        (body.setdefault("base", {}) if route == "/sweeps" else body)["callback_url"] = args.callback_url
    mode = choose_mode(args.url, args.mode, args.callback_url)
    client = Client(args.url, args.api_key)
    accepted: Optional[Accepted] = None
    try:
        if mode == "poll":
            accepted = _submit(client, route, body)
            _err(f"queued {accepted.what}; polling {client.url} for its status")
            bodies = _wait_poll(client, accepted, args.timeout)
        else:
            from cli.receiver import Receiver

            host, port = _parse_listen(args.listen)
            try:
                receiver = Receiver(host=host, port=port, signing_key=args.signing_key)
            except OSError as exc:
                _err(f"cannot listen on {host}:{port} ({exc.strerror or exc}); free it, choose --listen, "
                     "or use --poll")
                return 2
            with receiver:
                accepted = _submit(client, route, body)
                _err(f"queued {accepted.what}; waiting for results on {receiver.url}")
                bodies = _wait_receiver(client, receiver, accepted, args.timeout)
    except ServiceError as exc:
        if accepted is None:
            _err(f"not queued: {exc}" if exc.status else str(exc))
        else:
            _err(f"lost track of {accepted.what}: {exc}")
        return 2
    except KeyboardInterrupt:
        if accepted is not None:
            first = accepted.sweep_id or accepted.ids[0]
            _err(f"\nstopped waiting; {accepted.what} goes on: battery-sim status {first}; "
                 f"battery-sim result {first}")
        return 130
    code = report(bodies, args.out, args.no_plot, accepted.what)
    return 2 if len(bodies) < len(accepted.ids) else code


def report(bodies: list[dict], out: Path, no_plot: bool, title: str) -> int:
    """Table (columns by kind of result), full errors, results.json/.csv and the plots the
    results have data for (``cli.plots.draw``); 0 if all succeeded, else 1."""
    from cli import output

    bodies = sorted(bodies, key=lambda b: (b.get("sweep") or {}).get("index", 0))
    print(output.table(bodies))
    errors = output.errors(bodies)
    if errors:
        print("\nerrors:\n" + errors)
    json_path, csv_path = output.save(bodies, out)
    print(f"\nresults: {json_path}, {csv_path}")
    if not no_plot and bodies:
        from cli.plots import draw

        drawn = draw([(output.label(b), b) for b in bodies], out, title=title)
        print(f"plots: {', '.join(str(p) for p in drawn)}" if drawn else "no plot: no job has a series to draw")
    return 0 if bodies and all(b.get("status") == "succeeded" for b in bodies) else 1


# --------------------------------------------------------------------------
# status, result, cancel, list
# --------------------------------------------------------------------------
def _job_or_sweep(client: Client, ident: str, sweep: bool) -> tuple[str, dict[str, Any]]:
    """("job", status view) or ("sweep", sweep view); a job id is tried first."""
    if not sweep:
        try:
            return "job", client.job(ident)
        except ServiceError as exc:
            if exc.status != 404:
                raise
    try:
        return "sweep", client.sweep(ident)
    except ServiceError as exc:
        if exc.status == 404:
            raise ServiceError(f"no {'sweep' if sweep else 'job or sweep'} {ident}", 404) from exc
        raise


def cmd_status(args) -> int:
    from cli import output

    client = Client(args.url, args.api_key)
    what, view = _job_or_sweep(client, args.id, args.sweep)
    if args.json:
        print(json.dumps(view, indent=1))
    else:
        print(output.status_text(view) if what == "job" else output.sweep_text(view))
    return 0


def cmd_result(args) -> int:
    client = Client(args.url, args.api_key)
    what, view = _job_or_sweep(client, args.id, args.sweep)
    if what == "job":
        if view.get("status") not in FINISHED:
            _err(f"job {args.id} is {view.get('status')}; its result is not ready (battery-sim status {args.id})")
            return 2
        if args.csv:
            reply = client.request("GET", f"/jobs/{quote(args.id, safe='')}/result", params={"format": "csv"})
            sys.stdout.write(reply.text)
            return 0 if view.get("status") == "succeeded" else 1
        bodies, missing, title = [client.result(args.id, view)], 0, f"job {args.id}"
    else:
        members = view.get("members") or []
        done = [m["jobId"] for m in members if m.get("status") in FINISHED]
        missing = (view.get("total") or len(members)) - len(done)
        if missing:
            _err(f"{missing} of {view.get('total')} members of sweep {args.id} are not finished yet")
        bodies, title = client.results(done), f"sweep {args.id} ({view.get('total')} members)"
        if args.csv:
            import tempfile

            from cli import output

            with tempfile.TemporaryDirectory() as tmp:
                sys.stdout.write(output.save(bodies, Path(tmp))[1].read_text())
            return 2 if missing else (0 if all(b.get("status") == "succeeded" for b in bodies) else 1)
    code = report(bodies, args.out, args.no_plot, title)
    return 2 if missing else code


def cmd_cancel(args) -> int:
    client = Client(args.url, args.api_key)
    kind = "sweeps" if args.sweep else "jobs"
    try:
        answer = client.request("POST", f"/{kind}/{quote(args.id, safe='')}/cancel", ok=(200, 202, 409))
    except ServiceError as exc:
        if exc.status == 404:
            _err(f"no {'sweep' if args.sweep else 'job'} {args.id}"
                 + ("" if args.sweep else " (for a sweep, add --sweep)"))
            return 2
        raise
    reply = answer.json()
    if answer.status_code == 409:
        print(f"{'sweep' if args.sweep else 'job'} {args.id} is already {reply.get('status', 'finished')}; "
              "nothing to cancel")
        return 1
    if args.sweep:
        cancelled = reply.get("cancelled", 0)
        print(f"sweep {args.id}: {cancelled} members cancelled or stopping, "
              f"{reply.get('alreadyFinished', 0)} already finished" + ("" if cancelled else "; nothing to cancel"))
        return 0 if cancelled else 1
    if answer.status_code == 202:
        print(f"job {args.id} is {reply.get('status', 'running')}: cancel requested; it stops at its next check "
              f"(battery-sim status {args.id})")
    else:
        print(f"job {args.id} {reply.get('status', 'cancelled')} (it had not started)")
    return 0


def cmd_list(args) -> int:
    from cli import output

    client = Client(args.url, args.api_key)
    jobs: list[dict] = []
    token = args.page_token
    while True:
        page = client.jobs(status=args.status, sweep=args.sweep, limit=args.limit, page_token=token)
        jobs += page.get("jobs") or []
        token = page.get("nextPageToken")
        if not (args.all and token):
            break
    if args.json:
        print(json.dumps({"jobs": jobs, "nextPageToken": token}, indent=1))
        return 0
    print(output.jobs_table(jobs))
    more = f"; more: --all or --page-token {token}" if token else ""
    print(f"\n{len(jobs)} job{'s' if len(jobs) != 1 else ''}{more}")
    return 0


def cmd_catalog(args) -> int:
    from cli import output

    catalog = Client(args.url, args.api_key).catalog()
    print(json.dumps(catalog, indent=1) if args.json else output.catalog_text(catalog))
    return 0


# --------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("BATTERY_SIM_URL", "http://127.0.0.1:8084"),
                        help="submit function URL (default: BATTERY_SIM_URL or the local stack)")
    common.add_argument("--api-key", default=os.environ.get("API_KEY", ""),
                        help="X-API-Key, if the service needs one (default: API_KEY)")
    outputs = argparse.ArgumentParser(add_help=False)
    outputs.add_argument("--out", type=Path, default=Path("out"), help="folder for results.json/.csv and plot.png")
    outputs.add_argument("--no-plot", action="store_true")

    top = argparse.ArgumentParser(prog="battery-sim", description=__doc__.split("\n\n")[0],
                                  epilog=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("submit", parents=[common, outputs], help="submit a job or sweep file and wait for its results")
    p.add_argument("file", type=Path, help="job, sweep or legacy JSON file ('-' for stdin)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--poll", dest="mode", action="store_const", const="poll",
                     help="get results by polling the job store (default unless --url is a loopback URL)")
    how.add_argument("--receiver", dest="mode", action="store_const", const="receiver",
                     help="get results with a callback receiver (default for a loopback --url)")
    p.add_argument("--listen", default=os.environ.get("BATTERY_SIM_LISTEN", "127.0.0.1:8083"),
                   help="host:port of the built-in callback receiver (receiver mode)")
    p.add_argument("--callback-url", help="public URL of the receiver (must be in the service's allowlist)")
    p.add_argument("--signing-key", default=os.environ.get("CALLBACK_SIGNING_KEY", ""),
                   help="verify callback signatures with this key (receiver mode)")
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait for every result")
    p.set_defaults(run=cmd_submit)

    p = sub.add_parser("status", parents=[common], help="a job's or a sweep's status")
    p.add_argument("id", help="job id or sweep id")
    p.add_argument("--sweep", action="store_true", help="the id is a sweep's")
    p.add_argument("--json", action="store_true", help="the raw status view")
    p.set_defaults(run=cmd_status)

    p = sub.add_parser("result", parents=[common, outputs], help="fetch a finished job's (or sweep's) results")
    p.add_argument("id", help="job id or sweep id")
    p.add_argument("--sweep", action="store_true", help="the id is a sweep's")
    p.add_argument("--csv", action="store_true", help="print CSV on stdout instead of the table; write no files")
    p.set_defaults(run=cmd_result)

    p = sub.add_parser("cancel", parents=[common], help="cancel a queued or running job (or a sweep)")
    p.add_argument("id", help="job id (sweep id with --sweep)")
    p.add_argument("--sweep", action="store_true", help="cancel every unfinished member of this sweep")
    p.set_defaults(run=cmd_cancel)

    p = sub.add_parser("list", parents=[common], help="jobs in the store, newest first")
    p.add_argument("--status", choices=("queued", "running", *FINISHED))
    p.add_argument("--sweep", metavar="ID", help="only this sweep's members")
    p.add_argument("--limit", type=int, default=50, help="jobs per page (1-200; default 50)")
    p.add_argument("--all", action="store_true", help="follow nextPageToken to the last page")
    p.add_argument("--page-token", help="continue a previous listing")
    p.add_argument("--json", action="store_true", help="the raw rows")
    p.set_defaults(run=cmd_list)

    p = sub.add_parser("catalog", parents=[common], help="what the service offers: kinds of job, models, "
                       "parameter sets and the models each works with, options, limits")
    p.add_argument("--json", action="store_true", help="the raw catalog")
    p.set_defaults(run=cmd_catalog)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except ServiceError as exc:
        _err(str(exc))
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

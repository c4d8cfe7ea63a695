"""battery-sim: submit a job or a sweep, wait for the results, tabulate, save and plot.

    battery-sim submit job.json                      # local stack (make dev) at 127.0.0.1:8084
    battery-sim submit sweep.json --out results/     # a sweep: one row and one line per member
    battery-sim submit job.json --url https://REGION-PROJECT.cloudfunctions.net/submit-job \\
        --callback-url https://my-host.example.com/results --listen 0.0.0.0:8083

The file is a native job (``POST /jobs``), a sweep (has ``vary``: ``POST
/sweeps``) or the Java Job Manager's legacy body (has ``simulationType``).
Results come back to a receiver this command runs (``--listen``, default
127.0.0.1:8083, the local stack's ``JOB_MANAGER_URL``). Exit status: 0 if every
job succeeded, 1 if any failed, 2 on a submit error or time-out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import requests


def _route(body: dict) -> str:
    if "vary" in body:
        return "/sweeps"
    if "simulationType" in body:
        return "/drivecycle/simulate" if body["simulationType"] == "driveCycle" else "/cell/simulate"
    return "/jobs"


def _parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="battery-sim", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("submit", help="submit a job or sweep file and wait for its results")
    p.add_argument("file", type=Path, help="job, sweep or legacy JSON file ('-' for stdin)")
    p.add_argument("--url", default=os.environ.get("BATTERY_SIM_URL", "http://127.0.0.1:8084"),
                   help="submit function URL (default: local stack)")
    p.add_argument("--listen", default=os.environ.get("BATTERY_SIM_LISTEN", "127.0.0.1:8083"),
                   help="host:port of the built-in callback receiver")
    p.add_argument("--callback-url", help="public URL of the receiver (must be in the service's allowlist)")
    p.add_argument("--api-key", default=os.environ.get("API_KEY", ""), help="X-API-Key, if the service needs one")
    p.add_argument("--signing-key", default=os.environ.get("CALLBACK_SIGNING_KEY", ""),
                   help="verify callback signatures with this key")
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait for every result")
    p.add_argument("--out", type=Path, default=Path("out"), help="folder for results.json/.csv and plot.png")
    p.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)

    from cli.receiver import Receiver

    raw = sys.stdin.read() if str(args.file) == "-" else args.file.read_text()
    body = json.loads(raw)
    route = _route(body)
    if args.callback_url:
        if route not in ("/jobs", "/sweeps"):
            print("--callback-url needs a native job or sweep: the legacy routes always answer to the "
                  "service's JOB_MANAGER_URL", file=sys.stderr)
            return 2
        (body.setdefault("base", {}) if route == "/sweeps" else body)["callback_url"] = args.callback_url
    host, port = _parse_listen(args.listen)
    with Receiver(host=host, port=port, signing_key=args.signing_key) as receiver:
        headers = {"Content-Type": "application/json"}
        if args.api_key:
            headers["X-API-Key"] = args.api_key
        try:
            reply = requests.post(args.url.rstrip("/") + route, data=json.dumps(body), headers=headers, timeout=120)
        except requests.RequestException as exc:
            print(f"could not reach {args.url}: {type(exc).__name__}", file=sys.stderr)
            return 2
        if reply.status_code != 202:
            print(f"rejected ({reply.status_code}):", file=sys.stderr)
            try:
                for e in reply.json().get("errors", [reply.json()]):
                    print(f"  {e.get('field', '')}: {e.get('error', e)}", file=sys.stderr)
            except ValueError:
                print(reply.text[:500], file=sys.stderr)
            return 2
        accepted = reply.json()
        ids = accepted.get("jobIds") or [accepted["jobId"]]
        what = f"sweep {accepted['sweepId']} ({len(ids)} members)" if "sweepId" in accepted else f"job {ids[0]}"
        print(f"queued {what}; waiting for results on {receiver.url}", file=sys.stderr)
        deadline = time.monotonic() + args.timeout
        done = -1
        while True:
            have = sum(1 for i in ids if i in receiver.results)
            if have != done:
                done = have
                print(f"  {done}/{len(ids)} done", file=sys.stderr, flush=True)
            if have == len(ids):
                break
            if time.monotonic() > deadline:
                print(f"timed out after {args.timeout:g} s with {have}/{len(ids)} results", file=sys.stderr)
                break
            time.sleep(0.5)
        bodies = [receiver.results[i] for i in ids if i in receiver.results]

    from cli import output

    bodies.sort(key=lambda b: (b.get("sweep") or {}).get("index", 0))
    print(output.table(bodies))
    json_path, csv_path = output.save(bodies, args.out)
    print(f"\nresults: {json_path}, {csv_path}")
    if not args.no_plot and bodies:
        from cli.plots import plot_results

        png = plot_results([(output.label(b), b) for b in bodies], args.out / "plot.png",
                           title=what)
        print(f"plot: {png}")
    if len(bodies) < len(ids):
        return 2
    return 0 if all(b.get("status") == "succeeded" for b in bodies) else 1


if __name__ == "__main__":
    sys.exit(main())

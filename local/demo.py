"""make demo: the main job end to end on this machine.

Starts the Pub/Sub emulator, both functions and a small Job Manager receiver,
sends the Java Job Manager's exact cell and drive-cycle requests, prints a
summary of each result, writes ``out/demo.png``; then a short ageing study (100 SPM
cycles with SEI growth and lithium plating, ``OKane2022``, a progress callback every
25 cycles), whose capacity and loss of lithium inventory go to ``out/demo_ageing.png``;
and shuts everything down.
"""

from __future__ import annotations

import json
import sys
import time

import requests

from cli.output import series
from cli.plots import plot_ageing, plot_results
from cli.receiver import Receiver
from local.stack import REPO, Stack

from shared.contract.legacy import JAVA_CELL, JAVA_DRIVE_CYCLE

JAVA_REQUESTS = [("/cell/simulate", JAVA_CELL), ("/drivecycle/simulate", JAVA_DRIVE_CYCLE)]
AGEING_STUDY = {
    "model": {"name": "SPM", "options": {"SEI": "solvent-diffusion limited", "SEI porosity change": "true",
                                         "lithium plating": "partially reversible"}},
    "parameter_set": "OKane2022",
    "protocol": {"type": "ageing", "cycles": 100, "save_cycles": {"every": 50}, "progress_every_cycles": 25,
                 "steps": ["Discharge at 1C until 2.5 V", "Charge at 0.3C until 4.2 V", "Hold at 4.2 V until C/100"]},
}


def ageing_line(body: dict) -> str:
    if body.get("status") != "succeeded":
        return f"{'ageing study':18s} FAILED: {body.get('error')}"
    rows = body["cycles"]
    first, last = rows[0], rows[-1]
    return (f"{'ageing study':18s} {len(rows)} cycles  capacity {first['Capacity [A.h]']:.4f} -> "
            f"{last['Capacity [A.h]']:.4f} A.h ({last['Capacity fade [%]']:.2f} % fade)  loss of lithium "
            f"inventory {last['Loss of lithium inventory [%]']:.2f} %  termination: {body['termination']}")


def summary_line(label: str, body: dict) -> str:
    cols = series(body)
    t, v = cols.get("Time [s]", []), cols.get("Voltage [V]", [])
    q = cols.get("Discharge capacity [A.h]", [])
    if body.get("status") != "succeeded":
        return f"{label:18s} FAILED: {body.get('error')}"
    return (f"{label:18s} {len(t):4d} points  {t[-1]:7.1f} s  final {v[-1]:.3f} V  "
            f"discharged {q[-1] - q[0]:.3f} A.h  termination: {body['termination']}"
            f"{'' if body.get('completed') else '  (stopped early)'}")


def main() -> int:
    out = REPO / "out"
    with Receiver() as receiver, Stack.on_free_ports(job_manager_url=receiver.url) as stack:
        print(f"stack up: submit {stack.submit_url}, worker {stack.worker_url}, "
              f"emulator {stack.emulator_host}, receiver {receiver.url}")
        ids = []
        t0 = time.monotonic()
        for path, body in JAVA_REQUESTS:
            # as the Java Job Manager does: a blocking call whose reply body is the result
            reply = requests.post(stack.submit_url + path, json=body, timeout=90)
            reply.raise_for_status()
            rows = reply.json().get("simulationResults") or []
            print(f"POST {path} {json.dumps(body)}\n  -> {reply.status_code} {len(rows)} rows, "
                  f"jobStarted={reply.json().get('jobStarted')}, X-Job-Id {reply.headers['X-Job-Id']}, "
                  f"X-Job-Status {reply.headers['X-Job-Status']} ({time.monotonic() - t0:.1f} s)")
            ids.append(reply.headers["X-Job-Id"])
        results = receiver.wait_for(ids, timeout_s=300)
        print(f"\nboth callbacks arrived too, {time.monotonic() - t0:.1f} s after the first request")
        t1 = time.monotonic()
        reply = requests.post(stack.submit_url + "/jobs", json=AGEING_STUDY, timeout=90)
        reply.raise_for_status()
        ageing_id = reply.json()["jobId"]
        ageing = receiver.wait_for([ageing_id], timeout_s=600)[ageing_id]
        progress = sorted(b["progress"]["cyclesDone"] for k, b in list(receiver.results.items())
                          if k.startswith(f"{ageing_id}:progress:"))
        print(f"ageing study {ageing_id}: progress callbacks at cycles {progress}, the outcome "
              f"{time.monotonic() - t1:.1f} s after the request")
    labelled = [("cell 5 A", results[ids[0]]), ("US06 from SOC 0.9", results[ids[1]])]
    for label, body in labelled:
        print(summary_line(label, body))
    out.mkdir(exist_ok=True)
    for (label, body), name in zip(labelled, ("cell", "drive_cycle")):
        (out / f"demo_{name}.json").write_text(json.dumps(body, indent=1))
    png = plot_results(labelled, out / "demo.png", title="DFN, Chen2020 (LG M50): the Job Manager's two jobs",
                       separate=True)
    print(ageing_line(ageing))
    (out / "demo_ageing.json").write_text(json.dumps(ageing, indent=1))
    ageing_png = plot_ageing([("SPM, OKane2022, SEI + plating", ageing)], out / "demo_ageing.png",
                             title="Ageing study: 100 cycles of 1C discharge, C/3 CCCV charge")
    print(f"plot: {png}, {ageing_png}\nresults: {out}/demo_cell.json, {out}/demo_drive_cycle.json, "
          f"{out}/demo_ageing.json")
    return 0 if all(b.get("status") == "succeeded" for _, b in [*labelled, ("ageing", ageing)]) else 1


if __name__ == "__main__":
    sys.exit(main())

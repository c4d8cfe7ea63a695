"""Which parameter set solves with which model, measured by solving, kept in
``compatibility.json`` (checked in; the submit check and the catalog read it).

Every set PyBaMM ships but ``ECM_Example`` (the Thevenin kind's) is run with every
physics model the service offers, through the service's own engine, with the
options the set needs (``parameter_sets.json``), under these probes:

* ``discharge``    1C from an initial SOC of 1 until a voltage cut-off
* ``own_state``    1C for 10 min from the set's own initial state (some sets start empty)
* ``initial_soc``  1C for 10 min from an initial SOC of 0.5 (PyBaMM's eSOH)
* ``experiment``   from an initial SOC of 0.8: "Discharge at 1C for 5 minutes", "Rest for
  5 minutes", "Charge at 1C for 5 minutes"
* ``drive_cycle``  from an initial SOC of 0.8, an inline profile: 1C for 60 s, rest
  60 s, -0.5C for 60 s

A pair *solves* when its discharge (from full, or from the set's own state when PyBaMM
cannot set its SOC) runs without an error. A set is offered
with a model when the pair solves and their chemistries agree (a set's own
``chemistry`` entry; ``models.CHEMISTRY``). A pair whose ``initial_soc`` probe
fails is offered without ``conditions.initial_soc``.

    python -m shared.engine.compatibility            # re-derive and write the table (~5 min)
    python -m shared.engine.compatibility --check    # re-derive and compare with the file
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

TABLE_FILE = Path(__file__).with_name("compatibility.json")
# PyBaMM's sets that belong to another kind of simulation (never tried here).
OTHER_KINDS = {"ECM_Example": "the equivalent-circuit model Thevenin"}
PROBE_TIMEOUT_S = 120.0
PROBE_NAMES = ("discharge", "own_state", "initial_soc", "experiment", "drive_cycle")


def probe_jobs(set_name: str, model: str, capacity: float) -> dict[str, dict[str, Any]]:
    """The probe jobs (native job bodies) of one pair."""
    base = {"model": {"name": model}, "parameter_set": set_name,
            "outputs": {"variables": ["Time [s]", "Voltage [V]"], "max_points": 200}}
    return {
        "discharge": {**base, "protocol": {"type": "constant_current", "c_rate": 1},
                      "conditions": {"initial_soc": 1.0}},
        "own_state": {**base, "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 600}},
        "initial_soc": {**base, "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 600},
                        "conditions": {"initial_soc": 0.5}},
        "experiment": {**base, "protocol": {"type": "experiment", "steps": [
            "Discharge at 1C for 5 minutes", "Rest for 5 minutes", "Charge at 1C for 5 minutes"]},
            "conditions": {"initial_soc": 0.8}},
        "drive_cycle": {**base, "protocol": {"type": "drive_cycle", "time_s": [0, 60, 61, 120, 121, 180],
                                             "current_A": [capacity, capacity, 0, 0, -capacity / 2,
                                                           -capacity / 2]},
                        "conditions": {"initial_soc": 0.8}},
    }


def _run_probe(body: dict, queue) -> None:
    warnings.simplefilter("ignore")
    from shared.contract.job import Job  # (imported by ``probe`` before the fork)
    from shared.engine.errors import short
    from shared.engine.simulate import simulate

    try:
        r = simulate(Job.model_validate(body))
        s = r["summary"]
        queue.put({"ok": True, "termination": r["termination"],
                   "Discharged capacity [A.h]": round(s["Discharged capacity [A.h]"], 6),
                   "Charged capacity [A.h]": round(s["Charged capacity [A.h]"], 6),
                   "End time [s]": round(r["endTime"], 3)})
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        queue.put({"ok": False, "error": short(exc, 200)})


def probe(body: dict) -> dict[str, Any]:
    """Run one probe job in a child process (a hung or crashed solve is a failure)."""
    import shared.contract.job  # noqa: F401 - loaded once, before every fork
    import shared.engine.simulate  # noqa: F401

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_run_probe, args=(body, queue))
    child.start()
    try:
        return queue.get(timeout=PROBE_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - queue.Empty: no answer in time
        return {"ok": False, "error": f"no result within {PROBE_TIMEOUT_S:g} s (or the solver crashed)"}
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join()


def derive_pair(set_name: str, model: str, names=PROBE_NAMES) -> dict[str, Any]:
    """Run a pair's probes; its table entry."""
    import pybamm

    pv = pybamm.ParameterValues(set_name)
    capacity = pv["Nominal cell capacity [A.h]"] if "Nominal cell capacity [A.h]" in pv.keys() else 1.0
    jobs = probe_jobs(set_name, model, float(capacity))
    results = {}
    for name in names:
        results[name] = probe(jobs[name])
        if name == "own_state" and not any(r["ok"] for r in results.values()):
            break  # a pair that cannot discharge at all is not tried further
    solves = any(results.get(n, {}).get("ok", False) for n in ("discharge", "own_state"))
    return {"solves": solves, "probes": results}


def derive(sets=None, models=None) -> dict[str, Any]:
    """The whole table (or the named sets and models)."""
    import pybamm

    from shared.engine.models import MODELS

    table: dict[str, Any] = {"pybamm_version": pybamm.__version__, "probes": list(PROBE_NAMES), "sets": {}}
    for set_name in sets or [s for s in pybamm.parameter_sets if s not in OTHER_KINDS]:
        entry = {"chemistry": pybamm.parameter_sets[set_name].get("chemistry"), "models": {}}
        for model in models or MODELS:
            entry["models"][model] = derive_pair(set_name, model)
            print(set_name, model, "solves" if entry["models"][model]["solves"] else "fails",
                  {k: v["ok"] for k, v in entry["models"][model]["probes"].items()}, file=sys.stderr, flush=True)
        table["sets"][set_name] = entry
    return table


# -- reading the table ----------------------------------------------------------------

@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    return json.loads(TABLE_FILE.read_text())


def _chemistry_fits(set_name: str, model: str) -> bool:
    from shared.engine.models import CHEMISTRY

    return table()["sets"][set_name]["chemistry"] == CHEMISTRY[model]


def offered(set_name: str, model: str) -> bool:
    entry = table()["sets"].get(set_name)
    if entry is None or model not in entry["models"]:
        return False
    return entry["models"][model]["solves"] and _chemistry_fits(set_name, model)


def models_for(set_name: str) -> list[str]:
    """The offered models a set works with, sorted."""
    entry = table()["sets"].get(set_name, {"models": {}})
    return sorted(m for m in entry["models"] if offered(set_name, m))


def offered_sets() -> list[str]:
    """The sets offered with at least one model, in PyBaMM's order."""
    return [s for s in table()["sets"] if models_for(s)]


def offered_pairs() -> list[tuple[str, str]]:
    return [(s, m) for s in offered_sets() for m in models_for(s)]


def refused_pairs() -> list[tuple[str, str]]:
    from shared.engine.models import MODELS

    return [(s, m) for s in table()["sets"] for m in MODELS if not offered(s, m)]


def pair_error(set_name: str, model: str) -> Optional[str]:
    """Why a set is not offered with a model (None: it is)."""
    if set_name in OTHER_KINDS:
        return f"{set_name} is for {OTHER_KINDS[set_name]}, not {model}"
    if set_name not in table()["sets"]:
        return None  # unknown to PyBaMM: the caller says so
    if offered(set_name, model):
        return None
    works = models_for(set_name)
    elsewhere = f"it works with {', '.join(works)}" if works else "it works with none of the offered models"
    if not _chemistry_fits(set_name, model):
        from shared.engine.models import CHEMISTRY

        theirs = [s for s in offered_sets() if offered(s, model)]
        return (f"{set_name} does not run with {model}: a {table()['sets'][set_name]['chemistry']} set, a "
                f"{CHEMISTRY[model]} model; {elsewhere}; {model} works with {', '.join(theirs) or 'no set'}")
    return f"{set_name} does not solve with {model}; {elsewhere}"


def initial_soc_error(set_name: str, model: str) -> Optional[str]:
    """Why ``conditions.initial_soc`` cannot be set for an offered pair (None: it can)."""
    entry = table()["sets"].get(set_name, {}).get("models", {}).get(model)
    if entry is None or not entry["solves"]:
        return None
    result = entry["probes"].get("initial_soc", {})
    if result.get("ok", True):
        return None
    return (f"PyBaMM cannot set an initial state of charge for {set_name} with {model} "
            f"({result.get('error', 'it failed')}); leave it out to start from the set's own initial state")


def protocols_for(set_name: str, model: str) -> dict[str, bool]:
    """Which probes passed for an offered pair (``tests/test_parameter_sets.py`` compares
    each pair with PyBaMM from the states whose probe passed)."""
    entry = table()["sets"][set_name]["models"][model]
    return {k: v["ok"] for k, v in entry["probes"].items()}


def main(argv: list[str]) -> int:
    fresh = derive()
    if "--check" in argv:
        old = table()
        differ = [(s, m) for s in fresh["sets"] for m in fresh["sets"][s]["models"]
                  if fresh["sets"][s]["models"][m]["solves"] != old["sets"].get(s, {}).get("models", {})
                  .get(m, {}).get("solves")]
        print("matches" if not differ else f"differs: {differ}")
        return 1 if differ else 0
    TABLE_FILE.write_text(json.dumps(fresh, indent=1) + "\n")
    table.cache_clear()
    print(f"wrote {TABLE_FILE}: {len(offered_pairs())} offered pairs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

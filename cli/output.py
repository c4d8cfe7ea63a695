"""Summary tables and result files (CSV, JSON) for the command-line client."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from shared.contract import legacy


def series(body: dict[str, Any]) -> dict[str, list[float]]:
    """Columns of a callback body, legacy (``result`` rows) or native (``columns``)."""
    if body.get("columns"):
        return body["columns"]
    return legacy.result_columns(body.get("result") or [])


def has_series(body: dict[str, Any]) -> bool:
    """True if the body has a cell's voltage against time to draw (a failed job usually
    has none; a pack of differing cells has only the battery's and each cell's)."""
    cols = series(body)
    return bool(cols.get("Time [s]")) and "Voltage [V]" in cols


def label(body: dict[str, Any]) -> str:
    sweep = body.get("sweep")
    if sweep:
        values = ", ".join(f"{k.split('.', 1)[-1]}={_fmt(v)}" for k, v in sweep["values"].items())
        return f"#{sweep['index']} {values}"
    return str(body.get("id"))


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# --------------------------------------------------------------------------
# The results table: a row per job, columns chosen by the kind of result
# --------------------------------------------------------------------------
PACK_SERIES = "Number of cells connected in series to make a battery"
PACK_PARALLEL = "Number of cells connected in parallel"


def kind(body: dict[str, Any]) -> str | None:
    """What a callback body holds: "impedance", "ageing", "pack circuit" (cells that
    differ), "pack" (identical cells) or "cell" (physics-based, sodium-ion or
    equivalent-circuit); None for a body without a summary (a failed job)."""
    s = body.get("summary") or {}
    cols = body.get("columns") or {}
    if body.get("termination") == "impedance spectrum" or "Frequency [Hz]" in cols or "Frequencies" in s:
        return "impedance"
    if "end_of_life" in body:
        return "ageing"
    if PACK_SERIES in s:
        return "pack circuit" if "Final SoC range" in s or "Maximum cell current [A]" in s else "pack"
    if s or cols or body.get("result"):
        return "cell"
    return None


def _range(low: Any, high: Any) -> str | None:
    if low is None or high is None:
        return None
    return f"{_cell(float(low))}..{_cell(float(high))}"


def _per_soc(values: Any, factor: float = 1.0) -> str | None:
    """One number per state of charge ("28.5 / 29.5"), or the range when there are many."""
    if values is None:
        return None
    values = [v * factor for v in (values if isinstance(values, list) else [values]) if v is not None]
    if not values:
        return None
    if len(values) > 4:
        return f"{_cell(min(values))}..{_cell(max(values))}"
    return " / ".join(_cell(v) for v in values)


def _abs_max(values: list[float] | None) -> float | None:
    return max((abs(v) for v in values if v is not None), default=None) if values else None


def _cell_columns(b: dict[str, Any]) -> dict[str, Any]:
    s, v = b.get("summary") or {}, series(b).get("Voltage [V]") or []
    return {
        "end [s]": s.get("End time [s]", b.get("endTime")),
        "capacity [A.h]": s.get("Discharged capacity [A.h]"),
        "energy [W.h]": s.get("Discharged energy [W.h]"),
        "min V [V]": s.get("Minimum voltage [V]", min(v) if v else None),
        "max V [V]": s.get("Maximum voltage [V]", max(v) if v else None),
        "max T [degC]": s.get("Maximum cell temperature [degC]"),
        "final SOC": s.get("Final state of charge"),
    }


def _pack_columns(b: dict[str, Any]) -> dict[str, Any]:
    s, cols = b.get("summary") or {}, series(b)
    row = {
        "end [s]": s.get("End time [s]", b.get("endTime")),
        "pack": f"{s.get(PACK_SERIES)}S{s.get(PACK_PARALLEL)}P",
        "battery capacity [A.h]": s.get("Battery discharged capacity [A.h]"),
        "battery energy [W.h]": s.get("Battery discharged energy [W.h]"),
        "battery V [V]": _range(s.get("Battery minimum voltage [V]"), s.get("Battery maximum voltage [V]")),
        "battery max |I| [A]": _abs_max(cols.get("Battery current [A]")),
    }
    if "Final SoC range" in s or "Maximum cell current [A]" in s:  # cells that differ
        row["cell I [A]"] = _range(s.get("Minimum cell current [A]"), s.get("Maximum cell current [A]"))
        row["max T [degC]"] = s.get("Maximum cell temperature [degC]")
        row["final SOC"] = _range(*(s.get("Final SoC range") or [None, None]))
    else:
        row["cell min V [V]"] = s.get("Minimum voltage [V]")
        row["max T [degC]"] = s.get("Maximum cell temperature [degC]")
        row["final SOC"] = s.get("Final state of charge")
    return row


def _impedance_columns(b: dict[str, Any]) -> dict[str, Any]:
    s = b.get("summary") or {}
    socs = s.get("States of charge")
    return {
        "SOC": _per_soc(socs) if socs else s.get("Initial state of charge"),
        "T [degC]": s.get("Ambient temperature [degC]"),
        "frequencies": (f"{s.get('Frequencies')}: {_cell(s.get('Minimum frequency [Hz]'))}.."
                        f"{_cell(s.get('Maximum frequency [Hz]'))} Hz") if s.get("Frequencies") else None,
        "Z_re at max f [mOhm]": _per_soc(s.get("Z_re at the maximum frequency [Ohm]"), 1e3),
        "|Z| at min f [mOhm]": _per_soc(s.get("|Z| at the minimum frequency [Ohm]"), 1e3),
    }


def _ageing_columns(b: dict[str, Any]) -> dict[str, Any]:
    rows = b.get("cycles") or []
    first, last = (rows[0], rows[-1]) if rows else ({}, {})
    eol = b.get("end_of_life") or {}
    if eol.get("reached"):
        end_of_life = f"cycle {eol.get('cycle')} ({eol.get('criterion')})"
    else:
        end_of_life = f"not reached ({eol['criterion']})" if eol.get("criterion") else "not asked"
    return {
        "cycles": len(rows),
        "capacity first->last [A.h]": (f"{_cell(first['Capacity [A.h]'])} -> {_cell(last['Capacity [A.h]'])}"
                                       if first.get("Capacity [A.h]") is not None
                                       and last.get("Capacity [A.h]") is not None else None),
        "fade [%]": last.get("Capacity fade [%]"),
        "LLI [%]": last.get("Loss of lithium inventory [%]"),
        "throughput [A.h]": last.get("Throughput capacity [A.h]"),
        "end of life": end_of_life,
    }


KIND_COLUMNS = {"cell": _cell_columns, "pack": _pack_columns, "pack circuit": _pack_columns,
                "impedance": _impedance_columns, "ageing": _ageing_columns}


def rows(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per body: job, status, termination (or error), then the figures of its kind.

    Bodies of different kinds share one table (the union of their columns, "-" where a
    kind has none); a failed body adds no columns of its own."""
    out = []
    for b in bodies:
        row = {"job": label(b), "status": b.get("status"),
               "termination": b.get("termination") if b.get("status") == "succeeded" else b.get("error")}
        k = kind(b)
        if k is not None:
            row.update(KIND_COLUMNS[k](b))
        out.append(row)
    return out


def table(bodies: list[dict[str, Any]]) -> str:
    data = rows(bodies)
    if not data:
        return "(no results)"
    headers: list[str] = []
    for r in data:
        headers += [h for h in r if h not in headers]
    return format_table(headers, [[_cell(r.get(h), cut=h == "termination") for h in headers] for r in data])


def errors(bodies: list[dict[str, Any]]) -> str:
    """The full error of every job that did not succeed, one line each (the table cuts them short)."""
    lines = []
    for b in bodies:
        if b.get("status") != "succeeded" and b.get("error"):
            lines.append(f"{label(b)}: {b.get('status')}: {_one_line(b['error'])}")
    return "\n".join(lines)


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def format_table(headers: list[str], cells: list[list[Any]]) -> str:
    """Left-aligned columns under a header and a rule; ``None`` shows as "-"."""
    text = [[str(h) for h in headers]] + [[("-" if c is None else str(c)) for c in row] for row in cells]
    widths = [max(len(row[i]) for row in text) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(text[0], widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in text[1:]]
    return "\n".join(lines)


def _cell(v: Any, cut: bool = True) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    text = str(v)
    return text if not cut or len(text) <= 48 else text[:45] + "..."


def save(bodies: list[dict[str, Any]], out_dir: Path) -> tuple[Path, Path]:
    """``results.json`` (every callback body) and ``results.csv`` (long format, one row per point)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps(bodies, indent=1))
    csv_path = out_dir / "results.csv"
    names: list[str] = []
    for b in bodies:
        for name in series(b):
            if name not in names:
                names.append(name)
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["job", "sweep index", *names])
        for b in bodies:
            cols = series(b)
            index = (b.get("sweep") or {}).get("index", "")
            n = max((len(v) for v in cols.values()), default=0)  # (impedance results have no time)
            for k in range(n):
                writer.writerow([b.get("id"), index, *[(cols[c][k] if c in cols else "") for c in names]])
    return json_path, csv_path


# --------------------------------------------------------------------------
# The job store's views (battery-sim status / list)
# --------------------------------------------------------------------------
def _pairs(pairs: list[tuple[str, Any]]) -> str:
    pairs = [(k, v) for k, v in pairs if v not in (None, "", [], {})]
    width = max((len(k) for k, _ in pairs), default=0)
    lines = []
    for key, value in pairs:
        text = str(value).splitlines() or [""]
        lines.append(f"{key.ljust(width)}  {text[0]}")
        lines += [f"{'':{width}}  {t}" for t in text[1:]]
    return "\n".join(lines)


def _callback_text(cb: dict[str, Any] | None) -> str | None:
    if not cb or not cb.get("state"):
        return None
    bits = [f"HTTP {cb['status']}" if cb.get("status") else "",
            f"{cb['attempts']} attempt{'s' if cb['attempts'] != 1 else ''}" if cb.get("attempts") else ""]
    detail = ", ".join(b for b in bits if b)
    text = f"{cb['state']} ({detail})" if detail else str(cb["state"])
    return text + (f": {_one_line(cb['error'])}" if cb.get("error") else "")


def status_text(view: dict[str, Any]) -> str:
    """A job's status view for people: where it stands, its times, outcome and callback."""
    status = str(view.get("status"))
    if status == "succeeded":
        status += f": {view.get('termination')}" if view.get("termination") else ""
        status += " (stopped early)" if view.get("stoppedEarly") else ""
    elif view.get("cancelRequested") and status not in ("cancelled", "failed"):
        status += " (cancel requested)"
    sweep = view.get("sweep") or {}
    sweep_text = None
    if sweep:
        values = ", ".join(f"{k.split('.', 1)[-1]}={_fmt(v)}" for k, v in (sweep.get("values") or {}).items())
        sweep_text = f"{sweep.get('sweepId')} member #{sweep.get('index')} of {sweep.get('total')}" + \
            (f": {values}" if values else "")
    summary = "\n".join(f"{k}: {_cell(v)}" for k, v in (view.get("summary") or {}).items())
    job_id = view.get("jobId")
    return _pairs([
        ("job", job_id),
        ("kind", view.get("kind")),
        ("status", status),
        ("sweep", sweep_text),
        ("submitted", view.get("submittedAt")),
        ("started", view.get("startedAt")),
        ("finished", view.get("finishedAt")),
        ("attempts", view.get("deliveryAttempts")),
        ("end time", f"{_cell(view['endTime'])} s" if view.get("endTime") is not None else None),
        ("summary", summary),
        ("notes", "\n".join(_one_line(n) for n in view.get("notes") or [])),
        ("error", _one_line(view["error"]) if view.get("error") else None),
        ("callback", _callback_text(view.get("callback"))),
        ("reused", f"the result of {view['reusedFrom']}" if view.get("reusedFrom") else None),
        ("result", f"{view['result']}  (battery-sim result {job_id})" if view.get("result") else None),
        ("expires", view.get("expireAt")),
    ])


def sweep_text(view: dict[str, Any]) -> str:
    """A sweep's view for people: progress, counts, then one row per member and their errors."""
    counts = ", ".join(f"{k} {n}" for k, n in (view.get("counts") or {}).items() if n)
    head = _pairs([
        ("sweep", view.get("sweepId")),
        ("submitted", view.get("submittedAt")),
        ("progress", f"{view.get('finished')}/{view.get('total')} finished" + (f" ({counts})" if counts else "")),
    ])
    members = view.get("members") or []
    if not members:
        return head
    cells = []
    for m in members:
        values = ", ".join(f"{k.split('.', 1)[-1]}={_fmt(v)}" for k, v in (m.get("values") or {}).items())
        outcome = m.get("termination") if m.get("status") == "succeeded" else m.get("error")
        cells.append([f"#{m.get('index')}", values, m.get("jobId"), m.get("status"), _cell(outcome)])
    text = head + "\n\n" + format_table(["member", "values", "job", "status", "termination / error"], cells)
    failed = [f"#{m.get('index')} {m.get('jobId')}: {m.get('status')}: {_one_line(m['error'])}"
              for m in members if m.get("error") and m.get("status") != "succeeded"]
    if failed:
        text += "\n\nerrors:\n" + "\n".join(failed)
    return text


def jobs_table(jobs: list[dict[str, Any]]) -> str:
    """``GET /jobs`` rows as a table, newest first as the service sends them."""
    if not jobs:
        return "(no jobs)"
    cells = []
    for j in jobs:
        outcome = j.get("termination") if j.get("status") == "succeeded" else j.get("error")
        cells.append([j.get("jobId"), j.get("status"), j.get("kind"), j.get("submittedAt"), j.get("finishedAt"),
                      _cell(j.get("endTime")), _cell(outcome)])
    return format_table(["job", "status", "kind", "submitted", "finished", "end [s]", "termination / error"], cells)


# --------------------------------------------------------------------------
# GET /catalog (battery-sim catalog)
# --------------------------------------------------------------------------
def _names(values: Any) -> str:
    if isinstance(values, dict):
        return ", ".join(f"{k}: {v}" for k, v in values.items())
    if isinstance(values, (list, tuple)):
        return ", ".join(str(v) for v in values)
    return str(values)


def _kind_blocks(catalog: dict[str, Any]) -> list[tuple[str, list[tuple[str, Any]]]]:
    """(kind, [(what, text)]) for each kind of job: what selects it, models, protocols, result."""
    kinds = catalog.get("kinds") or {}
    own = {k.get("protocol") for k in kinds.values() if isinstance(k, dict) and k.get("protocol")}
    blocks = [("cell", [("models", _names(catalog.get("models") or [])),
                        ("protocols", _names([p for p in catalog.get("protocols") or [] if p not in own])),
                        ("result", "columns over time and a summary; ageing: a row per cycle and the end of life")])]
    for name, k in kinds.items():
        if not isinstance(k, dict):
            continue
        if name == "ecm":
            lines = [("models", f"{k.get('model')} ({k.get('pybamm_model')})"),
                     ("cells", f"{_names(k.get('parameter_sets') or [])} or your own ecm_cell tables"),
                     ("protocols", _names(k.get("protocols") or [])), ("result", "as a cell's")]
        elif name == "impedance":
            lines = [("chosen by", f"protocol.type {k.get('protocol')!r}"), ("models", _names(k.get("models") or [])),
                     ("options set", _names(k.get("options_set") or {})), ("result", _names(k.get("columns") or [])),
                     ("sign", k.get("sign_convention"))]
        elif name == "pack":
            differing = k.get("differing_cells") or {}
            lines = [("chosen by", f"the {k.get('field')!r} field (series, parallel)"),
                     ("models", k.get("models")), ("protocols", _names(k.get("protocols") or [])),
                     ("result", _names(k.get("battery_outputs") or []) + ", and the cell's"),
                     ("assumes", k.get("assumptions"))]
            if differing:
                lines += [("differing cells", f"{differing.get('model')}; {_names(differing.get('protocols') or [])}; "
                                              f"at most {differing.get('max_pack_circuit_cells')} cells"),
                          ("  per cell", _names(differing.get("cell_outputs") or []))]
        else:  # a kind this client does not know yet: its plain entries
            lines = [(key, _names(v)) for key, v in k.items() if not isinstance(v, dict)]
        blocks.append((name, lines))
    return blocks


def catalog_text(catalog: dict[str, Any]) -> str:
    """``GET /catalog`` for people: kinds of job, parameter sets with the models they work
    with, options, drive cycles and limits (``--json`` gives all of it)."""
    blocks = [f"PyBaMM {catalog.get('pybamm_version', '?')}"]
    kinds = []
    for name, lines in _kind_blocks(catalog):
        kinds.append(name + "\n" + "\n".join(
            "  " + line for line in _pairs([(k, v) for k, v in lines]).splitlines()))
    blocks.append("Kinds of job\n\n" + "\n".join(kinds))
    details = catalog.get("parameter_set_details") or {}
    cells = []
    for name in catalog.get("parameter_sets") or []:
        d = details.get(name) or {}
        notes = []
        if d.get("degradation"):
            notes.append("degradation")
        if d.get("options"):
            notes.append("own options: " + ", ".join(d["options"]))
        cells.append([name, d.get("chemistry"), _cell(d.get("cell")), _cell(d.get("electrodes")),
                      _names(d.get("models") or []), _cell("; ".join(notes) or None)])
    ecm_sets = ((catalog.get("kinds") or {}).get("ecm") or {}).get("parameter_sets") or []
    for name in ecm_sets:
        if name not in (catalog.get("parameter_sets") or []):
            cells.append([name, "equivalent circuit", None, None, (catalog["kinds"]["ecm"].get("model")), None])
    blocks.append("Parameter sets (degradation: offered with the degradation options of ageing studies)\n"
                  + format_table(["set", "chemistry", "cell", "electrodes", "models", "notes"], cells))
    options = catalog.get("options") or {}
    if options:
        blocks.append("Model options (cell kind)\n" + "\n".join(f"  {k}: {_names(v)}" for k, v in options.items()))
    ecm = (catalog.get("kinds") or {}).get("ecm") or {}
    if ecm.get("options"):
        blocks.append(f"Model options ({ecm.get('model')})\n"
                      + "\n".join(f"  {k}: {_names(v)}" for k, v in ecm["options"].items()))
    cycles = catalog.get("drive_cycles") or {}
    if cycles:
        blocks.append("Drive cycles\n" + _pairs([("  registered", _names(cycles.get("registered") or [])),
                                                   ("  installed", _names(cycles.get("installed") or []) or "none")]))
    limits = catalog.get("limits") or {}
    if limits:
        blocks.append("Limits\n" + "\n".join(f"  {k}: {_fmt_limit(v)}" for k, v in limits.items()))
    return "\n\n".join(blocks)


def _fmt_limit(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)

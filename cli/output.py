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


def label(body: dict[str, Any]) -> str:
    sweep = body.get("sweep")
    if sweep:
        values = ", ".join(f"{k.split('.', 1)[-1]}={_fmt(v)}" for k, v in sweep["values"].items())
        return f"#{sweep['index']} {values}"
    return str(body.get("id"))


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def rows(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for b in bodies:
        s = b.get("summary") or {}
        cols = series(b)
        v = cols.get("Voltage [V]") or []
        out.append({
            "job": label(b),
            "status": b.get("status"),
            "termination": b.get("termination") if b.get("status") == "succeeded" else b.get("error"),
            "end [s]": s.get("End time [s]", b.get("endTime")),
            "capacity [A.h]": s.get("Discharged capacity [A.h]"),
            "energy [W.h]": s.get("Discharged energy [W.h]"),
            "min V [V]": s.get("Minimum voltage [V]", min(v) if v else None),
            "max T [degC]": s.get("Maximum cell temperature [degC]"),
            "final SOC": s.get("Final state of charge"),
        })
    return out


def table(bodies: list[dict[str, Any]]) -> str:
    data = rows(bodies)
    if not data:
        return "(no results)"
    headers = list(data[0])
    return format_table(headers, [[_cell(r[h]) for h in headers] for r in data])


def format_table(headers: list[str], cells: list[list[Any]]) -> str:
    """Left-aligned columns under a header and a rule; ``None`` shows as "-"."""
    text = [[str(h) for h in headers]] + [[("-" if c is None else str(c)) for c in row] for row in cells]
    widths = [max(len(row[i]) for row in text) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(text[0], widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in text[1:]]
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    text = str(v)
    return text if len(text) <= 48 else text[:45] + "..."


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
            n = len(cols.get("Time [s]", []))
            for k in range(n):
                writer.writerow([b.get("id"), index, *[(cols[c][k] if c in cols else "") for c in names]])
    return json_path, csv_path

"""Plots of results: voltage, current and (when present) temperature against time."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import matplotlib

from cli.output import has_series, series

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TEMPERATURES = ("Volume-averaged cell temperature [K]", "X-averaged cell temperature [K]")


def _has_temperature(results) -> bool:
    return any(name in series(b) for _, b in results for name in TEMPERATURES)


def plot_results(results: list[tuple[str, dict[str, Any]]], path: Path, title: str = "",
                 separate: bool = False) -> Optional[Path]:
    """One line per (label, callback body); early stops marked with an ×.

    ``separate=True`` gives each result its own column (jobs of different lengths).
    Returns None, writing nothing, when no result has a series to draw (failed jobs)."""
    if not any(has_series(body) for _, body in results):
        return None
    if separate and len(results) > 1:
        return _columns(results, path, title)
    temps = _has_temperature(results)
    rows = 3 if temps else 2
    fig, axes = plt.subplots(rows, 1, figsize=(9, 2.6 * rows + 0.6), sharex=True)
    _draw(axes, results, temps)
    if title:
        axes[0].set_title(title)
    return _save(fig, path)


def _columns(results, path, title):
    temps = _has_temperature(results)
    rows = 3 if temps else 2
    fig, grid = plt.subplots(rows, len(results), figsize=(5.2 * len(results), 2.6 * rows + 0.8),
                             sharex="col", squeeze=False)
    for k, item in enumerate(results):
        _draw(grid[:, k], [item], temps)
        grid[0, k].set_title(item[0])
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _save(fig, path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _draw(axes, results, temps: bool) -> None:
    for label, body in results:
        cols = series(body)
        t = cols.get("Time [s]") or []
        if not t:
            continue
        hours = max(t) > 3 * 3600
        x = [v / 3600 for v in t] if hours else t
        stopped = body.get("stoppedEarly") or body.get("status") == "failed"
        lab = f"{label} ({body.get('termination', '')})" if stopped else label
        (line,) = axes[0].plot(x, cols["Voltage [V]"], label=lab)
        axes[1].plot(x, cols["Current [A]"], color=line.get_color())
        if stopped:
            axes[0].plot(x[-1], cols["Voltage [V]"][-1], "x", color=line.get_color(), markersize=9)
        if temps:
            for name in TEMPERATURES:
                if name in cols:
                    axes[2].plot(x, [k - 273.15 for k in cols[name]], color=line.get_color())
                    break
        axes[-1].set_xlabel("Time [h]" if hours else "Time [s]")
    axes[0].set_ylabel("Voltage [V]")
    axes[1].set_ylabel("Current [A]\n(+ discharge)")
    if temps:
        axes[2].set_ylabel("Temperature [°C]")
    for ax in axes:
        ax.grid(alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:  # a column of a job with no points has nothing to list
        axes[0].legend(fontsize=8, loc="best")


AGEING = (("Capacity [A.h]", "Capacity [A.h]"), ("Loss of lithium inventory [%]", "Loss of lithium\ninventory [%]"))


def is_ageing(body: dict[str, Any]) -> bool:
    """An ageing study's result: one row per cycle and an end of life."""
    return "end_of_life" in body and bool(body.get("cycles"))


def plot_ageing(results: list[tuple[str, dict[str, Any]]], path: Path, title: str = "") -> Optional[Path]:
    """Capacity and loss of lithium inventory against cycle number, one line per ageing
    result; a dashed line where a study reached its end of life. None (nothing written)
    when no result is an ageing study."""
    studies = [(label, body) for label, body in results if is_ageing(body)]
    if not studies:
        return None
    fig, axes = plt.subplots(len(AGEING), 1, figsize=(9, 2.8 * len(AGEING) + 0.6), sharex=True)
    for label, body in studies:
        rows = body["cycles"]
        x = [row["cycle"] for row in rows]
        color = None
        for ax, (name, _) in zip(axes, AGEING):
            y = [row.get(name) for row in rows]
            y = [float("nan") if v is None else v for v in y]
            (line,) = ax.plot(x, y, label=label, color=color)
            color = line.get_color()
        eol = body.get("end_of_life") or {}
        if eol.get("reached") and eol.get("cycle"):
            for ax in axes:
                ax.axvline(eol["cycle"], color=color, linestyle="--", alpha=0.6)
            axes[0].annotate(f"end of life ({eol.get('criterion')}): cycle {eol['cycle']}",
                             (eol["cycle"], rows[-1].get("Capacity [A.h]") or 0), fontsize=8,
                             textcoords="offset points", xytext=(-4, 8), ha="right")
    for ax, (_, ylabel) in zip(axes, AGEING):
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("Cycle number")
    axes[0].legend(fontsize=8, loc="best")
    if title:
        axes[0].set_title(title)
    return _save(fig, path)

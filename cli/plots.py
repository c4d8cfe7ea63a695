"""Plots of results: a cell's voltage, current and (when present) temperature against
time (``plot.png``); a pack's battery voltage and current, and each cell's current and
temperature when its cells differ (``pack.png``); an ageing study's capacity and loss of
lithium inventory against cycle number (``ageing.png``). ``draw`` makes every plot that
the results have data for (impedance spectra: ``cli.impedance_plots``)."""

from __future__ import annotations

import re
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
        if not has_series(body):  # failed, or no cell voltage (a pack of differing cells, a spectrum)
            continue
        cols = series(body)
        t = cols["Time [s]"]
        hours = max(t) > 3 * 3600
        x = [v / 3600 for v in t] if hours else t
        stopped = body.get("stoppedEarly") or body.get("status") == "failed"
        lab = f"{label} ({body.get('termination', '')})" if stopped else label
        (line,) = axes[0].plot(x, cols["Voltage [V]"], label=lab)
        if cols.get("Current [A]"):
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


# --------------------------------------------------------------------------
# Packs
# --------------------------------------------------------------------------
BATTERY_VOLTAGE, BATTERY_CURRENT = "Battery voltage [V]", "Battery current [A]"
CELL_CURRENT = re.compile(r"^Current \(cell (\d+)-(\d+)\) \[A\]$")
CELL_TEMPERATURE = "Cell temperature (cell {}) [degC]"


def is_pack(body: dict[str, Any]) -> bool:
    """A pack's result with battery voltage against time to draw."""
    cols = series(body)
    return bool(cols.get("Time [s]")) and bool(cols.get(BATTERY_VOLTAGE))


def cell_names(body: dict[str, Any]) -> list[str]:
    """The "s-p" names of the cells whose currents a differing-cell pack's result has."""
    found = [CELL_CURRENT.match(name) for name in series(body)]
    return [f"{m[1]}-{m[2]}" for m in sorted((m for m in found if m), key=lambda m: (int(m[1]), int(m[2])))]


def plot_pack(results: list[tuple[str, dict[str, Any]]], path: Path, title: str = "") -> Optional[Path]:
    """Battery voltage and current against time, one line per pack result; for packs of
    differing cells also every cell's current and temperature (one line per cell). None,
    writing nothing, when no result is a pack's with points."""
    packs = [(label, body) for label, body in results if is_pack(body)]
    if not packs:
        return None
    per_cell = any(cell_names(body) for _, body in packs)
    temps = any(CELL_TEMPERATURE.format(c) in series(body) for _, body in packs for c in cell_names(body))
    panels = 2 + per_cell + temps
    fig, axes = plt.subplots(panels, 1, figsize=(9, 2.5 * panels + 0.6), sharex=True)
    hours = max(max(series(b)["Time [s]"]) for _, b in packs) > 3 * 3600
    one = len(packs) == 1
    for label, body in packs:
        cols = series(body)
        x = [t / 3600 for t in cols["Time [s]"]] if hours else cols["Time [s]"]
        stopped = body.get("stoppedEarly") or body.get("status") == "failed"
        (line,) = axes[0].plot(x, cols[BATTERY_VOLTAGE],
                               label=f"{label} ({body.get('termination', '')})" if stopped else label)
        color = line.get_color()
        if cols.get(BATTERY_CURRENT):
            axes[1].plot(x, cols[BATTERY_CURRENT], color=color)
        cells = cell_names(body)
        for k, cell in enumerate(cells):
            # one pack: a colour per cell (named when few); several: the pack's colour
            kw = {"label": f"cell {cell}"} if one and len(cells) <= 12 else {}
            kw["color"] = f"C{k % 10}" if one else color
            current = axes[2].plot(x, cols[f"Current (cell {cell}) [A]"], linewidth=1, **kw)[0]
            if temps and CELL_TEMPERATURE.format(cell) in cols:
                axes[3].plot(x, cols[CELL_TEMPERATURE.format(cell)], linewidth=1, color=current.get_color())
    axes[0].set_ylabel(BATTERY_VOLTAGE)
    axes[1].set_ylabel("Battery current [A]\n(+ discharge)")
    if per_cell:
        axes[2].set_ylabel("Cell current [A]")
        if axes[2].get_legend_handles_labels()[0]:
            axes[2].legend(fontsize=7, loc="best", ncol=2)
    if temps:
        axes[3].set_ylabel("Cell temperature [°C]")
    axes[-1].set_xlabel("Time [h]" if hours else "Time [s]")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="best")
    if title:
        axes[0].set_title(title)
    return _save(fig, path)


def draw(results: list[tuple[str, dict[str, Any]]], out_dir: Path, title: str = "") -> list[Path]:
    """Every plot the results have data for, in ``out_dir``: ``plot.png`` (cells' voltage,
    current, temperature), ``pack.png``, ``ageing.png``, ``nyquist.png`` and ``bode.png``.
    Empty (nothing written) when no result has anything to draw, e.g. failed jobs."""
    from cli.impedance_plots import plot_impedance

    out_dir = Path(out_dir)
    drawn: list[Optional[Path]] = []
    if any(has_series(body) for _, body in results):
        drawn.append(plot_results(results, out_dir / "plot.png", title=title))
    drawn.append(plot_pack(results, out_dir / "pack.png", title=title))
    drawn.append(plot_ageing(results, out_dir / "ageing.png", title=title))
    drawn += list(plot_impedance(results, out_dir, title=title) or ())
    return [p for p in drawn if p is not None]

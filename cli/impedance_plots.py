"""Plots of impedance results: a Nyquist plot (equal axes, -Z_im up) and a Bode plot
(|Z| and phase against log frequency), one line per job and state of charge."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import matplotlib

from cli.output import series

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FREQUENCY, RE, IM, MAG, PHASE, SOC = (
    "Frequency [Hz]", "Z_re [Ohm]", "Z_im [Ohm]", "|Z| [Ohm]", "Phase [deg]", "State of charge")


def has_spectrum(body: dict[str, Any]) -> bool:
    """True if the body is an impedance result with points to draw."""
    cols = series(body)
    return bool(cols.get(FREQUENCY)) and RE in cols and IM in cols


def spectra(body: dict[str, Any]) -> list[tuple[Optional[float], dict[str, list[float]]]]:
    """The body's rows split into one spectrum per state of charge, in order."""
    cols = series(body)
    n = len(cols[FREQUENCY])
    socs = cols.get(SOC) or [None] * n
    out: list[tuple[Optional[float], dict[str, list[float]]]] = []
    for k in range(n):
        if not out or socs[k] != out[-1][0]:
            out.append((socs[k], {name: [] for name in (FREQUENCY, RE, IM, MAG, PHASE) if name in cols}))
        for name, values in out[-1][1].items():
            values.append(cols[name][k])
    return out


def _scale(results) -> tuple[float, str]:
    """Milliohms when every impedance is below 1 ohm (cells usually are), else ohms."""
    biggest = max((abs(v) for _, b in results for name in (RE, IM) for v in series(b).get(name, [])), default=0.0)
    return (1e3, "mOhm") if biggest < 1.0 else (1.0, "Ohm")


def plot_impedance(results: list[tuple[str, dict[str, Any]]], out_dir: Path,
                   title: str = "") -> Optional[tuple[Path, Path]]:
    """``nyquist.png`` and ``bode.png`` in ``out_dir`` for every (label, body) with a
    spectrum; None, writing nothing, if none has one."""
    drawn = [(label, body) for label, body in results if has_spectrum(body)]
    if not drawn:
        return None
    factor, unit = _scale(drawn)
    lines = [(f"{label}, SOC {soc:.3g}" if soc is not None else label, spectrum)
             for label, body in drawn for soc, spectrum in spectra(body)]

    fig, ax = plt.subplots(figsize=(7, 6))
    for name, s in lines:
        ax.plot([v * factor for v in s[RE]], [-v * factor for v in s[IM]], "o-", markersize=3, label=name)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(f"Z_re [{unit}]")
    ax.set_ylabel(f"-Z_im [{unit}]")
    ax.axhline(0.0, color="0.6", linewidth=0.8)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"Nyquist{': ' + title if title else ''}")
    if len(lines) <= 12:
        ax.legend(fontsize=7)
    nyquist = _save(fig, Path(out_dir) / "nyquist.png")

    fig, (mag, phase) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    for name, s in lines:
        magnitude = s.get(MAG) or [abs(complex(r, i)) for r, i in zip(s[RE], s[IM])]
        (line,) = mag.loglog(s[FREQUENCY], [v * factor for v in magnitude], "o-", markersize=3, label=name)
        if PHASE in s:
            phase.semilogx(s[FREQUENCY], s[PHASE], "o-", markersize=3, color=line.get_color())
    mag.set_ylabel(f"|Z| [{unit}]")
    phase.set_ylabel("Phase [deg]")
    phase.set_xlabel("Frequency [Hz]")
    for ax in (mag, phase):
        ax.grid(True, which="both", alpha=0.3)
    mag.set_title(f"Bode{': ' + title if title else ''}")
    if len(lines) <= 12:
        mag.legend(fontsize=7)
    bode = _save(fig, Path(out_dir) / "bode.png")
    return nyquist, bode


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Peak memory of a process group, sampled from /proc (psutil is not required).

Every process whose process group is ``pgid`` is sampled: the gunicorn master,
its workers, their ``pybamm-solver`` children (multiprocessing spawn) and the
resource tracker. For each pid the largest ``VmHWM`` (the kernel's own peak RSS
for that process) and ``VmRSS`` seen are kept, plus the peak of the group's
summed RSS.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Optional


def _pgid(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    # "pid (comm) state ppid pgrp ..." - comm may contain spaces and parentheses
    rest = stat[stat.rfind(")") + 2:].split()
    try:
        return int(rest[2])
    except (IndexError, ValueError):
        return None


def _status_kb(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmHWM:", "VmRSS:", "PPid:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def role(pid: int, leader: int, cmdline: str) -> str:
    if pid == leader:
        return "gunicorn master"
    if "multiprocessing.resource_tracker" in cmdline:
        return "resource tracker"
    if "multiprocessing.spawn" in cmdline or "spawn_main" in cmdline:
        return "pybamm-solver"
    if "functions-framework" in cmdline or "gunicorn" in cmdline:
        return "gunicorn worker"
    return "other"


@dataclass
class ProcPeak:
    pid: int
    role: str
    ppid: int
    hwm_kb: int = 0
    rss_kb: int = 0


@dataclass
class GroupSampler:
    """``with GroupSampler(pgid) as s: ...`` samples every ``interval_s`` in a thread."""

    pgid: int
    interval_s: float = 0.2
    procs: dict[int, ProcPeak] = field(default_factory=dict)
    peak_total_rss_kb: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: Optional[threading.Thread] = None

    def sample(self) -> None:
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            if _pgid(pid) != self.pgid:
                continue
            status = _status_kb(pid)
            if not status:
                continue
            peak = self.procs.get(pid)
            if peak is None:
                cmd = _cmdline(pid)
                peak = self.procs[pid] = ProcPeak(pid=pid, role=role(pid, self.pgid, cmd),
                                                  ppid=status.get("PPid", 0))
            peak.hwm_kb = max(peak.hwm_kb, status.get("VmHWM", 0))
            peak.rss_kb = max(peak.rss_kb, status.get("VmRSS", 0))
            total += status.get("VmRSS", 0)
        self.peak_total_rss_kb = max(self.peak_total_rss_kb, total)
        self.samples += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "GroupSampler":
        self._thread = threading.Thread(target=self._loop, daemon=True, name="rss-sampler")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sample()

    def report(self) -> list[dict]:
        rows = sorted(self.procs.values(), key=lambda p: (p.role, p.pid))
        return [{"pid": p.pid, "role": p.role, "ppid": p.ppid,
                 "peak_rss_MB": round(p.hwm_kb / 1024, 1), "max_sampled_rss_MB": round(p.rss_kb / 1024, 1)}
                for p in rows]


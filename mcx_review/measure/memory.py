"""Worker memory: reading a process's RSS, the ``--max-worker-rss`` size, its default, and the gate
that lets a model too large to share the machine run with no other analysis beside it."""
from __future__ import annotations

import contextlib
import os
import re
import threading
from typing import Callable, Dict, Iterator, List, Optional

GiB = 1 << 30
CAP = 3 * GiB  # no worker above this by default: the target for a review of many configs
SHARE = 0.8  # of the machine's memory for the workers together (the rest: the parent, the OS, git)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(i?B?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def read_rss(pid: "int | str" = "self") -> Dict[str, int]:
    """``{"rss": VmRSS, "peak_rss": VmHWM}`` in bytes from ``/proc/<pid>/status``; ``{}`` where
    there is no procfs (or the process is gone)."""
    out: Dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out["rss" if key == "VmRSS" else "peak_rss"] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return {}
    return out


def parse_size(text: str) -> int:
    """``"3G"``, ``"2500M"``, ``"3GiB"``, ``"1.5g"`` -> bytes (binary units, as ``free -h`` and
    ``/proc`` use); a bare number is bytes. ValueError naming the text otherwise."""
    m = _SIZE.match(str(text))
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"expected a size such as 3G or 2500M, got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def format_size(n: int) -> str:
    """``3221225472 -> '3.0 GiB'``, ``524288000 -> '500 MiB'``."""
    if n >= GiB:
        return f"{n / GiB:.1f} GiB"
    return f"{n / (1 << 20):.0f} MiB"


def total_memory() -> Optional[int]:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_max_rss(workers: int, total: Optional[int] = None) -> int:
    """The limit every concurrent worker fits under together: ``SHARE`` of the machine split
    between them, at most ``CAP``. A 7 GB GitHub runner (2 cores: one worker per revision side)
    gets about 2.6 GiB per worker; a 16 GB one with 4 workers, 3.0 GiB."""
    total = total if total is not None else total_memory()
    if not total:
        return CAP
    return max(512 << 20, min(CAP, int(total * SHARE / max(1, workers))))


class Gate:
    """Shared by every pool of one review: ordinary jobs run side by side; an ``alone`` job waits
    until nothing else runs and keeps new jobs out until it is done (waiting alone jobs go first,
    so they cannot starve). ``on_alone`` callbacks run before an alone job starts (the pools close
    their idle workers there, so the job has the machine's memory to itself)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._alone = False
        self._waiting_alone = 0
        self.on_alone: List[Callable[[], None]] = []

    @property
    def busy(self) -> int:
        """Jobs running now (a job running alone counts as one)."""
        with self._cond:
            return self._running + (1 if self._alone else 0)

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._alone and not self._waiting_alone)
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        with self._cond:
            self._waiting_alone += 1
            self._cond.wait_for(lambda: not self._alone and self._running == 0)
            self._waiting_alone -= 1
            self._alone = True
        try:
            for callback in list(self.on_alone):
                callback()
            yield
        finally:
            with self._cond:
                self._alone = False
                self._cond.notify_all()

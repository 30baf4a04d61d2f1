"""Worker processes for one revision: persistent (one import of torch and the codebase each),
a timeout per job (the worker is killed and replaced), crash-safe (a dead worker is one error
record, never a lost review), bounded in memory.

Memory: every reply carries the worker's RSS (current and peak). A worker holding more than its
limit (``max_rss``) after a job is replaced before the next one. While other analyses run beside
it, a worker that grows past the limit is stopped, and its job is run again alone (the review's
:class:`~mcx_review.measure.memory.Gate` lets nothing else run and closes the idle workers first); a
worker killed from outside (SIGKILL from the kernel's OOM killer, SIGTERM) gets the same second
chance. Alone, a job has no RSS limit: a model that needs more than the limit still runs. A
timeout, a worker killed again while alone, or one that died of any other signal with no message
(a native crash: SIGSEGV, SIGABRT; not run again) is a *limit* result (``"limit": {"kind",
"limit"}``, the signal named): the review survives it as a row, not as the change's fault. A worker
that exits on its own (a config calling ``os._exit``) is an ordinary error with its exit code."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, cast

from mcx_review.measure.memory import Gate, format_size, read_rss

Result = Dict[str, Any]
OnResult = Callable[[Dict[str, Any], Result], None]  # called with (job, result) as each job ends
POLL = 0.25  # seconds between RSS checks of a busy worker
RECYCLE_AT = 0.75  # of the limit: a worker holding more after a job is replaced before the next
KILLED: Dict[int, str] = {signal.SIGKILL.value: "out of memory?", signal.SIGTERM.value: "terminated"}  # from outside: run again alone


def _signal_name(number: int) -> str:
    """SIGSEGV, SIGABRT...: a worker that died of one left no message; the row still says how."""
    try:
        return f"{signal.Signals(number).name}, crashed without a message"
    except ValueError:
        return "crashed without a message"


class _Worker:
    def __init__(self, root: Path, log_dir: Path, index: int, env: Dict[str, str]) -> None:
        self.log_path = log_dir / f"worker-{index}.log"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mcx_review.worker", str(root)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            cwd=str(root), env=env, text=True, encoding="utf-8", bufsize=1,
        )
        self._replies: "queue.Queue[Optional[str]]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._replies.put(line)
        self._replies.put(None)  # EOF: the worker died

    def ask(self, job: Dict[str, Any], timeout: Optional[float], max_rss: Optional[int] = None,
            watch: Callable[[], bool] = lambda: True) -> Result:
        """The worker's reply; a timeout or death as an error record. With ``max_rss``, the
        worker is stopped once its RSS passes it while ``watch()`` holds (others run beside it):
        the record then says ``over_rss``."""
        assert self.proc.stdin is not None
        start = time.monotonic()
        seen = 0  # largest RSS the parent saw while waiting
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
            while True:
                left = None if timeout is None else timeout - (time.monotonic() - start)
                if left is not None and left <= 0:
                    raise queue.Empty
                try:
                    line = self._replies.get(timeout=POLL if left is None else min(POLL, left))
                    break
                except queue.Empty:
                    if left is not None and left <= POLL:
                        continue
                rss = read_rss(self.proc.pid).get("rss", 0)
                seen = max(seen, rss)
                if max_rss and rss > max_rss and watch():
                    self.kill()
                    return {"id": job["id"], "ok": False, "over_rss": rss,
                            "error": f"the worker passed its RSS limit ({format_size(rss)} > "
                                     f"{format_size(max_rss)}, --max-worker-rss) beside other analyses"}
        except queue.Empty:
            self.kill()
            return {"id": job["id"], "ok": False, "timeout": True, "seen_rss": seen,
                    "limit": {"kind": "timeout", "limit": f"--timeout {timeout:g} s"},
                    "error": f"analysis took longer than {timeout:g} s (--timeout); its worker was stopped"}
        except (BrokenPipeError, OSError):
            line = None
        if line is None:
            code = self.proc.wait()
            out: Result = {"id": job["id"], "ok": False, "crashed": True, "exit_code": code, "seen_rss": seen}
            if code < 0:  # a signal: from outside (OOM killer, kill) or a native crash with no message
                why = KILLED.get(-code) or _signal_name(-code)
                out["limit"] = {"kind": "killed", "limit": f"worker killed (signal {-code}, {why})"}
                out["error"] = (f"the worker process was killed (signal {-code}, {why}) while analysing; "
                                f"last lines of its log: {self.tail() or '(empty)'}")
                out["from_outside"] = -code in KILLED
            else:  # it exited on its own: the config's code (os._exit) or the interpreter's last word
                out["error"] = (f"the worker process died (exit code {code}) while analysing; "
                                f"last lines of its log: {self.tail()}")
            return out
        return cast(Result, json.loads(line))  # the worker's result line

    def tail(self, n: int = 3) -> str:
        self._log.flush()
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-n:])[-500:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        # Nothing is left to flush once every answer is in, and a graceful exit of a process
        # holding torch takes a second or two: kill it.
        self.kill()
        self._log.close()


class WorkerPool:
    """``size`` workers over one tree. ``run`` hands jobs to whichever worker is free."""

    def __init__(self, root: Path, size: int = 1, env: Optional[Dict[str, str]] = None,
                 threads: Optional[int] = None, max_rss: Optional[int] = None,
                 gate: Optional[Gate] = None) -> None:
        """``threads``: torch threads per worker. Several workers each starting one thread per
        core oversubscribe the machine (measured: a cold review 2.6x slower on 2 cores), so the
        caller shares the cores out; a user's own OMP/MKL settings win. ``max_rss``: bytes a
        worker may hold (None: no limit). ``gate``: shared by every pool of one review, so a job
        run alone has no analysis of the other revision beside it either."""
        self.root = root
        self.size = max(1, size)
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
        if threads:
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                self.env.setdefault(var, str(threads))
        self.max_rss = max_rss
        self.gate = gate or Gate()
        self.gate.on_alone.append(self._close_idle)
        self._log_dir = Path(tempfile.mkdtemp(prefix="mcx-review-logs-"))
        self._workers: List[Optional[_Worker]] = [None] * self.size
        self._started = 0
        self.torch_imported = False
        self.jobs: List[Dict[str, Any]] = []  # per attempt: op, config, worker, rss, peak_rss, seconds, alone...

    @property
    def recycled(self) -> int:
        """Workers replaced after a job for holding too much memory."""
        return sum(1 for j in self.jobs if j.get("recycled"))

    @property
    def alone(self) -> int:
        """Jobs run again alone (past the RSS limit beside others, or killed)."""
        return sum(1 for j in self.jobs if j["alone"])

    @property
    def started(self) -> int:
        """Worker processes started so far, replacements included."""
        return self._started

    def _worker(self, slot: int) -> _Worker:
        w = self._workers[slot]
        if w is None or not w.alive():
            if w is not None:
                w.close()
            self._started += 1
            w = self._workers[slot] = _Worker(self.root, self._log_dir, self._started, self.env)
        return w

    def _close_idle(self) -> None:
        """Called by the gate before a job runs alone, when no job of any pool runs: every worker
        is idle, and its memory goes back to the machine."""
        for slot, w in enumerate(self._workers):
            if w is not None:
                w.close()
                self._workers[slot] = None

    def _attempt(self, slot: int, job: Dict[str, Any], timeout: Optional[float], alone: bool) -> Result:
        w = self._worker(slot)
        start = time.monotonic()
        limit = None if alone else self.max_rss
        result = w.ask(job, timeout, limit, watch=lambda: self.gate.busy > 1)
        peak = max(int(result.get("peak_rss") or 0), int(result.get("seen_rss") or 0))
        end = time.monotonic()
        record = {"op": job.get("op"), "config": job.get("config"), "worker": w.log_path.stem,
                  "rss": result.get("rss"), "peak_rss": peak or None, "start": start, "end": end,
                  "seconds": round(end - start, 3), "alone": alone, "ok": bool(result.get("ok")),
                  "over_rss": bool(result.get("over_rss")), "exit_code": result.get("exit_code")}
        self.jobs.append(record)  # (one append per attempt: safe across the pool's threads)
        if self.max_rss and w.alive() and (peak > self.max_rss
                                          or int(result.get("rss") or 0) > RECYCLE_AT * self.max_rss):
            w.close()  # its next job starts in a fresh process, with room to grow
            self._workers[slot] = None
            record["recycled"] = True
        return result

    def _run_one(self, slot: int, job: Dict[str, Any], timeout: Optional[float]) -> Result:
        with self.gate.shared():
            result = self._attempt(slot, job, timeout, alone=False)
        if result.get("over_rss") or result.get("from_outside"):
            # past the limit beside other analyses, or killed from outside (the OOM killer):
            # once more with the machine to itself
            with self.gate.alone():
                again = self._attempt(slot, job, timeout, alone=True)
            again["alone"] = True
            if result.get("over_rss") and again.get("limit"):
                again["limit"]["limit"] += (f", run alone after passing the worker RSS limit "
                                            f"{format_size(self.max_rss or 0)} (--max-worker-rss)")
            result = again
        return result

    def run(self, jobs: List[Dict[str, Any]], timeout: Optional[float] = None,
            progress: Optional[OnResult] = None) -> List[Result]:
        """Results in the order of ``jobs``."""
        todo: "queue.Queue[int]" = queue.Queue()
        for i in range(len(jobs)):
            todo.put(i)
        results: List[Optional[Result]] = [None] * len(jobs)
        lock = threading.Lock()

        def serve(slot: int) -> None:
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                result = self._run_one(slot, dict(jobs[i], id=i), timeout)
                with lock:
                    results[i] = result
                    self.torch_imported |= bool(result.get("torch_imported"))
                    if progress:
                        progress(jobs[i], result)

        n = min(self.size, len(jobs))
        threads = [threading.Thread(target=serve, args=(s,), daemon=True) for s in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return [r if r is not None else {"ok": False, "error": "not run"} for r in results]

    def close(self) -> None:
        if self._close_idle in self.gate.on_alone:
            self.gate.on_alone.remove(self._close_idle)
        for w in self._workers:
            if w is not None:
                w.close()
        self._workers = [None] * self.size
        for p in self._log_dir.glob("*"):
            p.unlink(missing_ok=True)
        try:
            self._log_dir.rmdir()
        except OSError:
            pass

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

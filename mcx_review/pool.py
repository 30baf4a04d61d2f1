"""Worker processes for one revision: persistent (one import of torch and the codebase each),
a timeout per job (the worker is killed and replaced), crash-safe (a dead worker is one error
record, never a lost review)."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

Result = Dict[str, Any]
Progress = Callable[[Dict[str, Any], Result], None]


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

    def ask(self, job: Dict[str, Any], timeout: Optional[float]) -> Result:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
            line = self._replies.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            return {"id": job["id"], "ok": False, "timeout": True,
                    "error": f"analysis took longer than {timeout:g} s (--timeout); its worker was stopped"}
        except (BrokenPipeError, OSError):
            line = None
        if line is None:
            code = self.proc.wait()
            return {"id": job["id"], "ok": False, "crashed": True,
                    "error": f"the worker process died (exit code {code}) while analysing; "
                             f"last lines of its log: {self.tail()}"}
        return json.loads(line)

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
                 threads: Optional[int] = None) -> None:
        """``threads``: torch threads per worker. Several workers each starting one thread per
        core oversubscribe the machine (measured: a cold review 2.6x slower on 2 cores), so the
        caller shares the cores out; a user's own OMP/MKL settings win."""
        self.root = root
        self.size = max(1, size)
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
        if threads:
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                self.env.setdefault(var, str(threads))
        self._log_dir = Path(tempfile.mkdtemp(prefix="mcx-review-logs-"))
        self._workers: List[Optional[_Worker]] = [None] * self.size
        self._started = 0
        self.torch_imported = False

    def _worker(self, slot: int) -> _Worker:
        w = self._workers[slot]
        if w is None or not w.alive():
            if w is not None:
                w.close()
            self._started += 1
            w = self._workers[slot] = _Worker(self.root, self._log_dir, self._started, self.env)
        return w

    def run(self, jobs: List[Dict[str, Any]], timeout: Optional[float] = None,
            progress: Optional[Progress] = None) -> List[Result]:
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
                job = dict(jobs[i], id=i)
                result = self._worker(slot).ask(job, timeout)
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

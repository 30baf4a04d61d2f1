"""The measuring side of a review: per-revision worker pools, config resolution (no torch) and
model analysis (torch), each cached by content."""
from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set

from mcx_review import __version__
from mcx_review.measure.cache import ResultCache, cache_key, code_digest, package_versions
from mcx_review.measure.memory import Gate, default_max_rss
from mcx_review.measure.pool import WorkerPool
from mcx_review.report.types import SIDES
from mcx_review.select.bases import BaseGraph
from mcx_review.select.code_index import CodeIndex
from mcx_review.select.definitions import Reach
from mcx_review.select.revision_index import RevisionIndex

Result = Dict[str, Any]
Work = Dict[str, Dict[str, List[str]]]  # work[side][cache key] = config paths sharing that model
OnAnalysed = Callable[[str, str, Result], None]  # (side, config, result), as each analysis ends


@dataclass
class Limits:
    """What the workers may use: how many per revision, time per job, memory per worker."""

    jobs: int = 1  # worker processes in all, both revisions
    timeout: float = 600.0
    max_worker_rss: Optional[int] = None  # bytes; None: memory.default_max_rss of the worker count


@dataclass
class Stats:
    """What a run did, for logs and benchmarks."""

    resolved: int = 0  # configs resolved by a worker (resolution cache misses)
    resolve_cache_hits: int = 0
    analysed: int = 0
    cache_hits: int = 0
    skipped_unchanged: int = 0
    torch_imported: bool = False
    max_worker_rss: int = 0  # the limit the workers ran under
    worker_recycles: int = 0  # workers replaced after a job for holding too much memory
    run_alone: int = 0  # jobs run again with no other analysis beside them
    jobs: List[Dict[str, Any]] = field(default_factory=list)  # per job: side, op, config, rss, peak_rss, ...
    workers_started: int = 0


class Resolver:
    """Resolves configs and analyses models of each revision in that revision's own worker
    processes (registries are global: two revisions never share a process). Also answers the
    select stage's questions (:class:`~mcx_review.select.code_impact.Resolves`)."""

    def __init__(self, trees: Dict[str, Path], limits: Limits, shape_for: Callable[[str], Optional[List[int]]],
                 cache_dir: Optional[Path] = None, use_cache: bool = True, engine: str = "fvcore") -> None:
        self.trees = trees
        self.engine = engine  # "fvcore" | "dispatch": which counts the analyse jobs (and their cache keys)
        self.limits = limits
        self.shape_for = shape_for
        self.static = {s: RevisionIndex(trees[s]) for s in trees}
        per_side = max(1, limits.jobs // len(trees))
        threads = max(1, (os.cpu_count() or 1) // (len(trees) * per_side))
        self.max_rss = limits.max_worker_rss or default_max_rss(len(trees) * per_side)  # the sides run at once
        gate = Gate()  # one per review: a job run alone has neither revision's analyses beside it
        self.pools = {s: WorkerPool(trees[s], per_side, threads=threads, max_rss=self.max_rss, gate=gate)
                      for s in trees}
        self.results: Dict[str, Dict[str, Result]] = {s: {} for s in trees}
        self.used_files: Dict[str, Dict[str, Set[str]]] = {s: {} for s in trees}
        self.resolve_cache = ResultCache(cache_dir, enabled=use_cache)
        self.stats = Stats()

    # the static side, per revision
    def graph(self, side: str) -> BaseGraph:
        return self.static[side].graph

    def index(self, side: str) -> CodeIndex:
        return self.static[side].code

    def reach(self, side: str) -> Reach:
        return self.static[side].reach

    def resolve_key(self, side: str, path: str) -> str:
        """What decides a resolution: the content of the config's file closure (itself and its
        `_base_` files), the forced shape, our version and the installed packages' versions."""
        tree = self.trees[side]
        files = [path] + self.graph(side).closure(path)
        payload = {"op": "resolve", "mcx-review": __version__, "versions": package_versions(),
                   "config": path, "shape": self.shape_for(path),
                   "files": [[rel, code_digest(tree, [rel])] for rel in files]}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def resolve_many(self, side: str, paths: Sequence[str]) -> Dict[str, Result]:
        todo = []
        keys: Dict[str, str] = {}
        for p in paths:
            if p in self.results[side] or p in keys:
                continue
            keys[p] = self.resolve_key(side, p)
            hit = self.resolve_cache.get(keys[p])
            if hit is not None:
                self.results[side][p] = hit
                self.stats.resolve_cache_hits += 1
            else:
                todo.append(p)
        if todo:
            jobs = [{"op": "resolve", "config": p, "shape": self.shape_for(p)} for p in todo]
            for p, r in zip(todo, self.pools[side].run(jobs, timeout=self.limits.timeout)):
                self.results[side][p] = r
                if not (r.get("timeout") or r.get("crashed")):  # a config error is as lasting as its files
                    self.resolve_cache.put(keys[p], {k: v for k, v in r.items() if k != "id"})
            self.stats.resolved += len(todo)
        return {p: self.results[side][p] for p in paths}

    def used(self, side: str, path: str) -> Set[str]:
        """Repository files the config's model uses (part of its cache key)."""
        if path not in self.used_files[side]:
            r = self.results[side][path]
            self.used_files[side][path] = self.index(side).files_for_types(r["types"], r.get("custom_imports", ()))
        return self.used_files[side][path]

    def key(self, side: str, path: str) -> str:
        """The analysis cache key of a resolved config: its model, shape and the code it uses."""
        r = self.results[side][path]
        return cache_key(r, code_digest(self.trees[side], self.used(side, path)), engine=self.engine)

    def analyse(self, work: Work, progress: Optional[OnAnalysed] = None,
                store: Optional[Callable[[str, Result], None]] = None) -> Dict[str, Dict[str, Result]]:
        """Each key of ``work`` analysed once, both sides in parallel (each in its own processes);
        ``store(key, result)`` as each analysis ends (so an interrupted run keeps what it measured)."""
        out: Dict[str, Dict[str, Result]] = {s: {} for s in SIDES}

        def run_side(side: str) -> None:
            keys = sorted(work[side])
            key_of = {work[side][k][0]: k for k in keys}  # a config has one key per side
            jobs = [{"op": "analyse", "config": work[side][k][0], "shape": self.shape_for(work[side][k][0]),
                     "engine": self.engine}
                    for k in keys]

            def done(job: Dict[str, Any], result: Result) -> None:
                if store is not None:
                    store(key_of[job["config"]], result)
                if progress is not None:
                    progress(side, job["config"], result)

            for k, r in zip(keys, self.pools[side].run(jobs, timeout=self.limits.timeout, progress=done)):
                out[side][k] = r

        threads = [threading.Thread(target=run_side, args=(s,)) for s in SIDES if work[s]]
        begin, end = getattr(progress, "begin", None), getattr(progress, "end", None)
        if begin is not None:
            begin(sum(len(work[s]) for s in SIDES))
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            if end is not None:
                end()
        self.stats.analysed += sum(len(work[s]) for s in SIDES)
        return out

    def close(self) -> None:
        self.stats.max_worker_rss = self.max_rss
        for side, p in self.pools.items():
            p.close()
            self.stats.torch_imported |= p.torch_imported
            self.stats.worker_recycles += p.recycled
            self.stats.run_alone += p.alone
            self.stats.jobs += [dict(j, side=side) for j in p.jobs]
            self.stats.workers_started += p.started

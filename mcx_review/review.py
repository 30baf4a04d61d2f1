"""One review end to end: changes -> impact -> plan -> workers -> compare -> report."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from mcx_review import __version__, gitrev, hints, impact, metafile_files, module_tree
from mcx_review.bases import BaseGraph
from mcx_review.cache import ResultCache, cache_key, code_digest, package_versions
from mcx_review.code_impact import definition_impact
from mcx_review.compare import ABSENT, SideResult, config_report
from mcx_review.definitions import Reach
from mcx_review.memory import Gate, default_max_rss
from mcx_review.pool import WorkerPool
from mcx_review.report import SCHEMA, ConfigReport, Report
from mcx_review.settings import Settings, load_settings

Log = Callable[[str], None]
SIDES = ("base", "head")


@dataclass
class Options:
    base: str = "HEAD"
    head: Optional[str] = None
    head_kind: gitrev.HeadKind = "commit"
    files: Sequence[str] = ()
    shape: Optional[Tuple[int, int]] = None
    timeout: float = 600.0
    jobs: int = 1
    cache_dir: Optional[Path] = None
    use_cache: bool = True
    shard: Optional[Tuple[int, int]] = None  # (k, n), 1-based
    settings_path: Optional[Path] = None
    max_worker_rss: Optional[int] = None  # bytes; None: memory.default_max_rss of the worker count
    depth: Optional[int] = None  # --depth N: keep each side's module tree to depth N in the report
    impact: Optional[str] = None  # "definitions" | "files"; None: the settings' choice


@dataclass
class Target:
    """A config under review: its path on each side (None where absent) and why."""

    path: str
    base_path: Optional[str]
    head_path: Optional[str]
    reasons: List[str] = field(default_factory=list)


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


# ---------------------------------------------------------------- impact

def _config_globs_prefixes(globs: Sequence[str]) -> List[str]:
    out = []
    for g in globs:
        parts = []
        for part in PurePosixPath(g).parts:
            if any(c in part for c in "*?["):
                break
            parts.append(part)
        out.append("/".join(parts))
    return out


def is_code_change(path: str, config_dirs: Sequence[str]) -> bool:
    """A changed Python file outside the config directories is model code (or might be)."""
    if not path.endswith(".py"):
        return False
    return not any(d == "" or path == d or path.startswith(d + "/") for d in config_dirs)


def find_targets(trees: Dict[str, Path], changes: Sequence[gitrev.Change], settings: Settings,
                 resolved: "Resolver", mode: str = "definitions") -> List[Target]:
    configs = {s: impact.discover_configs(trees[s], settings.configs, settings.exclude) for s in SIDES}
    on = {s: set(configs[s]) for s in SIDES}
    renamed_from = {c.path: c.old_path for c in changes if c.status == "R" and c.old_path}
    renamed_to = {v: k for k, v in renamed_from.items()}
    changed_paths: Set[str] = {c.path for c in changes} | {c.old_path for c in changes if c.old_path}
    reasons: Dict[str, List[str]] = {}

    def add(head_path: str, reason: str) -> None:
        lst = reasons.setdefault(head_path, [])
        if reason not in lst:
            lst.append(reason)

    for c in changes:
        if c.path in on["head"] or (c.status == "D" and c.path in on["base"]):
            add(c.path, "changed")
    for side in SIDES:
        for cfg, base_file in sorted(impact.configs_inheriting(trees[side], configs[side], changed_paths).items()):
            key = renamed_to.get(cfg, cfg) if side == "base" else cfg
            add(key, f"inherits {base_file}")

    code = sorted(p for p in changed_paths if is_code_change(p, _config_globs_prefixes(settings.configs)))
    if code and mode == "files":
        for side in SIDES:
            results = resolved.resolve_many(side, configs[side])
            for cfg in configs[side]:
                if not results[cfg].get("ok"):
                    continue
                hit = resolved.index(side).affected_by(resolved.used(side, cfg), set(code))
                if hit:
                    add(renamed_to.get(cfg, cfg) if side == "base" else cfg, impact.reason_uses_code(hit))
    elif code:
        for side, cfg, reason in definition_impact(trees, configs, code, resolved):
            add(renamed_to.get(cfg, cfg) if side == "base" else cfg, reason)

    targets = []
    for path in sorted(reasons):
        head_path = path if path in on["head"] else None
        base_path = renamed_from.get(path, path)
        base_path = base_path if base_path in on["base"] else None
        if head_path is None and base_path is None:
            continue
        targets.append(Target(path, base_path, head_path, reasons[path]))
    return targets


# ---------------------------------------------------------------- resolving & analysing

class Resolver:
    """Per-side worker pools; resolves configs (no torch) and analyses them (torch)."""

    def __init__(self, trees: Dict[str, Path], opts: Options, settings: Settings, log: Log) -> None:
        self.trees = trees
        self.opts = opts
        self.settings = settings
        self.log = log
        per_side = max(1, opts.jobs // 2)
        threads = max(1, (os.cpu_count() or 1) // (2 * per_side))
        self.max_rss = opts.max_worker_rss or default_max_rss(2 * per_side)  # both sides run at once
        gate = Gate()  # one per review: a job run alone has neither revision's analyses beside it
        self.pools = {s: WorkerPool(trees[s], per_side, threads=threads, max_rss=self.max_rss, gate=gate)
                      for s in SIDES}
        self.results: Dict[str, Dict[str, Dict[str, Any]]] = {s: {} for s in SIDES}
        self.used_files: Dict[str, Dict[str, Set[str]]] = {s: {} for s in SIDES}
        self.code_index: Dict[str, Any] = {}
        self.reaches: Dict[str, Reach] = {}
        self.graphs: Dict[str, BaseGraph] = {}
        self.resolve_cache = ResultCache(opts.cache_dir, enabled=opts.use_cache)
        self.stats = Stats()

    def shape_for(self, path: str) -> Optional[List[int]]:
        shape = self.opts.shape or self.settings.shape_for(path)
        return list(shape) if shape else None

    def resolve_key(self, side: str, path: str) -> str:
        """What decides a resolution: the content of the config's file closure (itself and its
        `_base_` files), the forced shape, our version and the installed packages' versions."""
        tree = self.trees[side]
        files = [path] + self.graph(side).closure(path)
        payload = {"op": "resolve", "mcx-review": __version__, "versions": package_versions(),
                   "config": path, "shape": self.shape_for(path),
                   "files": [[rel, code_digest(tree, [rel])] for rel in files]}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def resolve_many(self, side: str, paths: Sequence[str]) -> Dict[str, Dict[str, Any]]:
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
            for p, r in zip(todo, self.pools[side].run(jobs, timeout=self.opts.timeout)):
                self.results[side][p] = r
                if not (r.get("timeout") or r.get("crashed")):  # a config error is as lasting as its files
                    self.resolve_cache.put(keys[p], {k: v for k, v in r.items() if k != "id"})
            self.stats.resolved += len(todo)
        return {p: self.results[side][p] for p in paths}

    def graph(self, side: str) -> BaseGraph:
        """The side's `_base_` graph, parsed once."""
        if side not in self.graphs:
            self.graphs[side] = BaseGraph(self.trees[side])
        return self.graphs[side]

    def reach(self, side: str) -> Reach:
        """What each registered type's model can reach in the side's code."""
        if side not in self.reaches:
            self.reaches[side] = Reach(self.index(side))
        return self.reaches[side]

    def index(self, side: str) -> Any:
        """The side's registry/import index, built once (a static scan, no imports)."""
        if side not in self.code_index:
            self.code_index[side] = impact.CodeIndex.build(self.trees[side])
        return self.code_index[side]

    def used(self, side: str, path: str) -> Set[str]:
        """Repository files the config's model uses (part of its cache key)."""
        if path not in self.used_files[side]:
            r = self.results[side][path]
            self.used_files[side][path] = self.index(side).files_for_types(r["types"], r.get("custom_imports", ()))
        return self.used_files[side][path]

    def key(self, side: str, path: str) -> str:
        r = self.results[side][path]
        return cache_key(r, code_digest(self.trees[side], self.used(side, path)))

    def analyse(self, work: Dict[str, Dict[str, List[str]]], progress: Optional[Callable[[str, str, Dict[str, Any]], None]]
                ) -> Dict[str, Dict[str, Dict[str, Any]]]:
        """work[side][key] = config paths sharing that key; each key is analysed once, both sides
        in parallel (each side in its own processes)."""
        out: Dict[str, Dict[str, Dict[str, Any]]] = {s: {} for s in SIDES}

        def run_side(side: str) -> None:
            keys = sorted(work[side])
            jobs = [{"op": "analyse", "config": work[side][k][0], "shape": self.shape_for(work[side][k][0])}
                    for k in keys]
            cb = (lambda job, res: progress(side, job["config"], res)) if progress else None
            for k, r in zip(keys, self.pools[side].run(jobs, timeout=self.opts.timeout, progress=cb)):
                out[side][k] = r

        threads = [threading.Thread(target=run_side, args=(s,)) for s in SIDES if work[s]]
        if progress is not None and hasattr(progress, "begin"):
            progress.begin(sum(len(work[s]) for s in SIDES))
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            if progress is not None and hasattr(progress, "end"):
                progress.end()
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


def _failure(result: Dict[str, Any], limits_level: str) -> SideResult:
    limit = result.get("limit")
    return SideResult(error=result["error"], limit=dict(limit, level=limits_level) if limit else None)


def _side_result(resolved: Optional[Dict[str, Any]], analysed: Optional[Dict[str, Any]],
                 limits_level: str = "warn") -> SideResult:
    if resolved is None:
        return ABSENT
    if not resolved.get("ok"):
        return _failure(resolved, limits_level)
    if analysed is None:
        return SideResult()
    if not analysed.get("ok"):
        return _failure(analysed, limits_level)
    return SideResult(stats=analysed["stats"], warnings=list(analysed.get("warnings", [])))


def _same_model(a: Dict[str, Any], b: Dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("scope", "model", "shape_spec"))


def in_shard(key: str, shard: Optional[Tuple[int, int]]) -> bool:
    if shard is None:
        return True
    k, n = shard
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % n == k - 1


# ---------------------------------------------------------------- the review

def read_change(repo: Any, opts: Options, log: Log = lambda m: None
                ) -> Tuple[gitrev.Revisions, List[gitrev.Change], Settings]:
    """The revisions, the changed files (narrowed to ``opts.files``) and the head revision's
    settings; hints (hints.py) about what the user probably meant go to ``log``."""
    revs = gitrev.resolve_revisions(repo, opts.base, opts.head, opts.head_kind)
    changes = gitrev.changed_files(repo, revs)
    hint = hints.uncommitted(repo, revs, changes)
    if hint:
        log(hint)
    if opts.files:
        changes, unmatched = gitrev.select_files(changes, opts.files, Path(repo.working_tree_dir))
        for line in hints.unmatched_files(repo, revs, unmatched):
            log(line)
    if opts.settings_path is not None:
        settings = load_settings(opts.settings_path)
    else:
        text = gitrev.read_file(repo, revs, "head", ".mcx-review.yaml")
        settings = load_settings(None, text=text) if text is not None else Settings()
        hint = hints.settings_differ(repo, revs, text)
        if hint:
            log(hint)
    return revs, changes, settings


def run_review(repo_dir: Path, opts: Options, log: Log = lambda m: None, list_only: bool = False,
               progress: Optional[Callable[[str, str, Dict[str, Any]], None]] = None,
               ) -> Tuple[Report, Stats, List[Target]]:
    repo = gitrev.open_repo(repo_dir)
    revs, changes, settings = read_change(repo, opts, log)
    with contextlib.ExitStack() as stack:
        trees = {s: stack.enter_context(gitrev.materialise(repo, revs, s)) for s in SIDES}  # type: ignore[arg-type]
        if settings != Settings():
            for line in hints.unmatched_globs(trees["head"], settings):
                log(line)
        resolver = Resolver(trees, opts, settings, log)
        stack.callback(resolver.close)
        targets = find_targets(trees, changes, settings, resolver, opts.impact or settings.impact)
        log(f"{len(changes)} changed file(s); {len(targets)} config(s) under review")
        if list_only:
            return _report(revs, opts, [], settings), resolver.stats, targets
        entries = _review_targets(targets, resolver, opts, log, progress)
        for entry in entries:
            module_tree.attach(entry, settings.drill_down, opts.depth)  # type: ignore[arg-type]
        problems = metafile_files.attach(entries, trees, settings, opts.shape) \
            if settings.metafile != "off" else []  # type: ignore[arg-type]
    for problem in problems:
        log(f"metafile: {problem}")
    report = _report(revs, opts, entries, settings)
    if problems:
        report["metafile_problems"] = problems
    if settings.budgets:
        from mcx_review.budgets import evaluate_budgets
        report = evaluate_budgets(report, settings)  # type: ignore[assignment]
    return report, resolver.stats, targets


def _review_targets(targets: List[Target], resolver: Resolver, opts: Options, log: Log,
                    progress: Any) -> List[ConfigReport]:
    for side, attr in (("base", "base_path"), ("head", "head_path")):
        resolver.resolve_many(side, [getattr(t, attr) for t in targets if getattr(t, attr)])
    cache = ResultCache(opts.cache_dir, enabled=opts.use_cache)
    work: Dict[str, Dict[str, List[str]]] = {s: {} for s in SIDES}
    keys: Dict[Tuple[str, str], str] = {}
    skipped: Set[str] = set()
    cached: Dict[str, Dict[str, Any]] = {}

    # directly changed configs first, so a model shared with inheritors is labelled by the edited file
    for t in sorted(targets, key=lambda t: "changed" not in t.reasons):
        res = {s: resolver.results[s].get(p) if p else None for s, p in (("base", t.base_path), ("head", t.head_path))}
        ok = {s: bool(res[s] and res[s].get("ok")) for s in SIDES}
        for side, p in (("base", t.base_path), ("head", t.head_path)):
            if p and ok[side]:
                keys[(side, p)] = resolver.key(side, p)
        if ok["base"] and ok["head"] and _same_model(res["base"], res["head"]) \
                and keys[("base", t.base_path)] == keys[("head", t.head_path)]:  # same code too
            skipped.add(t.path)
            resolver.stats.skipped_unchanged += 1
            hit = cache.get(keys[("head", t.head_path)])
            if hit is not None:
                cached[keys[("head", t.head_path)]] = hit
            continue
        for side, p in (("base", t.base_path), ("head", t.head_path)):
            if p and ok[side]:
                k = keys[(side, p)]
                if k in cached:
                    continue
                hit = cache.get(k)
                if hit is not None:
                    cached[k] = hit
                elif in_shard(k, opts.shard):
                    work[side].setdefault(k, []).append(p)

    n = sum(len(w) for w in work.values())
    if n:
        log(f"analysing {n} distinct model(s) ({len(work['base'])} base, {len(work['head'])} head)")
    analysed = resolver.analyse(work, progress)
    for side in SIDES:
        for k, r in analysed[side].items():
            if r.get("ok"):
                cache.put(k, {"stats": r["stats"], "warnings": r.get("warnings", [])})
            cached.setdefault(k, r)
    resolver.stats.cache_hits = cache.hits

    entries: List[ConfigReport] = []
    for t in targets:
        sides = {}
        pending = []
        for side, p in (("base", t.base_path), ("head", t.head_path)):
            r = resolver.results[side].get(p) if p else None
            k = keys.get((side, p)) if p else None
            a = cached.get(k) if k else None
            if a is not None and "ok" not in a:
                a = {"ok": True, **a}
            if r and r.get("ok") and a is None and t.path not in skipped:
                pending.append(side)  # another shard measures it
            sides[side] = _side_result(r, a, resolver.settings.limits)
        entry = config_report(t.path, sides["base"], sides["head"],
                              old_path=t.base_path if t.base_path != t.path else None,
                              reasons=t.reasons, skipped_unchanged=t.path in skipped)
        if pending:
            entry["pending"] = pending  # type: ignore[typeddict-unknown-key]
        entries.append(entry)
    return entries


def _report(revs: gitrev.Revisions, opts: Options, entries: List[ConfigReport], settings: Settings) -> Report:
    tool = {"mcx-review": __version__, **package_versions()}
    return {
        "schema": SCHEMA,
        "tool": tool,
        "base": {"rev": revs.base_rev, "sha": revs.base_sha},
        "head": {"rev": revs.head_rev if revs.head_kind == "commit" else revs.head_kind,
                 "sha": revs.head_sha, "kind": revs.head_kind},
        "shape": list(opts.shape) if opts.shape else None,
        "shard": list(opts.shard) if opts.shard else None,
        "depth": opts.depth,
        "drill_down": settings.drill_down,
        "configs": entries,
    }


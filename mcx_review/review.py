"""One review, top-down: select -> plan -> measure -> compare -> report.

:func:`run_review` reads as the pipeline: the change and its settings (git), the two revisions
as trees, the configs it affects (``select``), which models to trace (``measure.plan``), the
traces (``measure.resolver``, one revision per process), each config's base/head comparison
(``report.compare``), the drill-down, metafile verdicts and budgets; then the report.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import git

from mcx_review import __version__
from mcx_review.log import Log, quiet
from mcx_review.measure.cache import ResultCache, package_versions
from mcx_review.measure.plan import Plan, plan, sides_of
from mcx_review.measure.resolver import Limits, OnAnalysed, Resolver, Stats
from mcx_review.metafile import files as metafile_files
from mcx_review.report import module_tree
from mcx_review.report.budgets import evaluate_budgets
from mcx_review.report.compare import SideResult, config_report, side_result
from mcx_review.report.types import SCHEMA, SIDES, ConfigReport, Report, SettingsInfo, Side
from mcx_review.select import hints, revisions
from mcx_review.select.targets import Target, find_targets
from mcx_review.settings import DEFAULT_SOURCE, Settings, gates_from_base, load_settings

__all__ = ["Options", "Stats", "Target", "read_change", "run_review"]


@dataclass
class Options:
    base: str = "HEAD"
    head: Optional[str] = None
    head_kind: revisions.HeadKind = "commit"
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
    config_globs: Tuple[str, ...] = ()  # --configs: instead of the settings' configs
    engine: str = "fvcore"  # "fvcore" | "dispatch" (measure/worker/dispatch_count.py)


def read_change(repo: git.Repo, opts: Options, log: Log = quiet
                ) -> Tuple[revisions.Revisions, List[revisions.Change], Settings]:
    """The revisions, the changed files (narrowed to ``opts.files``) and the settings that apply:
    ``--config``'s file as given, else the base revision's ``.mcx-review.yaml`` with what the head's
    adds or tightens (settings.gates_from_base: a PR cannot relax a gate); hints (select/hints.py)
    about what the user probably meant go to ``log``."""
    revs = revisions.resolve_revisions(repo, opts.base, opts.head, opts.head_kind)
    changes = revisions.changed_files(repo, revs)
    hint = hints.uncommitted(repo, revs, changes)
    if hint:
        log(hint)
    if opts.files:
        changes, unmatched = revisions.select_files(changes, opts.files, revisions.work_tree(repo))
        for line in hints.unmatched_files(repo, revs, unmatched):
            log(line)
    if opts.settings_path is not None:
        settings = load_settings(opts.settings_path)
        origin: SettingsInfo = {"from": "file", "path": str(opts.settings_path), "sha": None, "head_added": []}
    else:
        text = revisions.read_file(repo, revs, "head", DEFAULT_SOURCE)
        head = load_settings(None, text=text) if text is not None else Settings()
        base_text = revisions.read_file(repo, revs, "base", DEFAULT_SOURCE)
        base = load_settings(None, text=base_text, source=f"{DEFAULT_SOURCE} at the base revision") \
            if base_text is not None else Settings()
        settings, added = gates_from_base(base, head)
        settings = replace(settings, source=DEFAULT_SOURCE)  # warnings name the file, as the user knows it
        origin = {"from": "base", "path": DEFAULT_SOURCE if base_text is not None else None,
                  "sha": revs.base_sha, "head_added": added}
        hint = hints.settings_differ(repo, revs, text)
        if hint:
            log(hint)
    if opts.config_globs:
        settings = replace(settings, configs=tuple(opts.config_globs))
    return revs, changes, replace(settings, origin=origin)


def run_review(repo_dir: Path, opts: Options, log: Log = quiet, list_only: bool = False,
               progress: Optional[OnAnalysed] = None) -> Tuple[Report, Stats, List[Target]]:
    repo = revisions.open_repo(repo_dir)
    revs, changes, settings = read_change(repo, opts, log)
    with contextlib.ExitStack() as stack:
        trees: Dict[str, Path] = {s: stack.enter_context(revisions.materialise(repo, revs, s)) for s in SIDES}
        if settings != Settings():
            for line in hints.unmatched_globs(trees["head"], settings):
                log(line)
        resolver = Resolver(trees, Limits(opts.jobs, opts.timeout, opts.max_worker_rss),
                            shape_for=lambda path: _shape_for(opts, settings, path),
                            cache_dir=opts.cache_dir, use_cache=opts.use_cache, engine=opts.engine)
        stack.callback(resolver.close)
        targets = find_targets(trees, changes, settings, resolver, opts.impact or settings.impact)
        log(f"{len(changes)} changed file(s); {len(targets)} config(s) under review")
        if list_only:
            return _report(revs, opts, [], settings), resolver.stats, targets
        entries = measure(targets, resolver, opts, settings, log, progress)
        for entry in entries:
            module_tree.attach(entry, settings.drill_down, opts.depth)
        problems = metafile_files.attach(entries, trees, settings, opts.shape) if settings.metafile != "off" else []
    for problem in problems:
        log(f"metafile: {problem}")
    report = _report(revs, opts, entries, settings)
    if problems:
        report["metafile_problems"] = problems
    if settings.budgets:
        report = evaluate_budgets(report, settings)
    return report, resolver.stats, targets


def _shape_for(opts: Options, settings: Settings, path: str) -> Optional[List[int]]:
    shape = opts.shape or settings.shape_for(path)
    return list(shape) if shape else None


def measure(targets: List[Target], resolver: Resolver, opts: Options, settings: Settings, log: Log,
            progress: Optional[OnAnalysed]) -> List[ConfigReport]:
    """Resolve both sides, plan, trace what the plan leaves, compare: one report entry per target."""
    for side, attr in (("base", "base_path"), ("head", "head_path")):
        resolver.resolve_many(side, [getattr(t, attr) for t in targets if getattr(t, attr)])
    cache = ResultCache(opts.cache_dir, enabled=opts.use_cache)
    todo = plan(targets, resolver.results, resolver.key, cache.get, opts.shard)
    resolver.stats.skipped_unchanged += len(todo.skipped)
    if todo.distinct:
        log(f"analysing {todo.distinct} distinct model(s) ({len(todo.work['base'])} base, "
            f"{len(todo.work['head'])} head)")
    def store(key: str, result: Dict[str, Any]) -> None:  # as each trace ends: an interrupted run resumes
        if result.get("ok"):
            cache.put(key, {"stats": result["stats"], "warnings": result.get("warnings", [])})

    analysed = resolver.analyse(todo.work, progress, store)
    for side in SIDES:
        for k, r in analysed[side].items():
            todo.cached.setdefault(k, r)
    resolver.stats.cache_hits = cache.hits
    return [_entry(t, resolver.results, todo, settings.limits) for t in targets]


def _entry(t: Target, results: Dict[str, Dict[str, Dict[str, Any]]], todo: Plan, limits: str) -> ConfigReport:
    sides: Dict[str, SideResult] = {}
    pending: List[Side] = []
    for side, p in sides_of(t):
        r = results[side].get(p) if p else None
        k = todo.keys.get((side, p)) if p else None
        a = todo.cached.get(k) if k else None
        if a is not None and "ok" not in a:  # a cached result: numbers only
            a = {"ok": True, **a}
        if r and r.get("ok") and a is None and t.path not in todo.skipped:
            pending.append(side)  # another shard measures it
        sides[side] = side_result(r, a, limits)
    entry = config_report(t.path, sides["base"], sides["head"],
                          old_path=t.base_path if t.base_path != t.path else None,
                          reasons=t.reasons, skipped_unchanged=t.path in todo.skipped)
    if pending:
        entry["pending"] = pending
    return entry


def _report(revs: revisions.Revisions, opts: Options, entries: List[ConfigReport], settings: Settings) -> Report:
    tool = {"mcx-review": __version__, **package_versions()}
    if opts.engine != "fvcore":
        tool["engine"] = opts.engine  # the engine asked for; each side's stats say which one counted
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
        "settings": settings.origin,
        "configs": entries,
    }

"""``mcx-review metafile --write | --check [FILE ...]``: keep metafile figures in step with the configs.

Without FILEs: the configs a change affects (the review's own arguments: ``--base``, ``--head``,
``--staged``, ``--worktree``), measured at head and compared with their entries as the review
does; an entry that already disagreed at base is legacy (never fails ``--check``, rewritten by
``--write`` only with ``--include-legacy``: it is not this change's to fix). With FILEs (configs,
or metafile.yml files meaning every config they list): those configs measured in the working tree,
and every disagreeing entry is stale. ``--write`` rewrites the stale FLOPs / Parameters of the
working tree's metafiles in place (only those characters change), prints each change and how to
verify it; ``--check`` prints the stale entries and exits 1 when there is one; ``--json FILE``
writes every entry with its verdict and integers (metafile/audit.py), progress on stderr.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mcx_review.cli.options import add_revision_arguments, parse_rss, positive_int, positive_seconds, revision_of
from mcx_review.errors import UsageError
from mcx_review.log import Log, inert, log, quiet
from mcx_review.metafile import verdicts as metafile
from mcx_review.metafile import files as metafile_files

EPILOG = """\
FLOPs and Parameters are counts (one multiply-add = one FLOP, as fvcore counts them), compared at
the precision each figure is published with (560000000 agrees with a measured 556,651,520).

exit codes:
  0  --check: no entry is stale (legacy entries, already off at base, never fail);
     --write: written, or nothing to write
  1  --check: an entry is stale
  2  usage, git, settings or metafile write error"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite stale FLOPs/Parameters in the metafiles "
                      "(in place, formatting kept) and print what changed")
    mode.add_argument("--check", action="store_true", help="print stale entries; exit 1 when there is one")
    p.add_argument("files", nargs="*", metavar="FILE", help="configs or metafile.yml files to measure in the "
                   "working tree (default: the configs the change base...head affects)")
    add_revision_arguments(p)
    p.add_argument("--config", dest="settings", type=Path, metavar="FILE",
                   help="settings file (default: .mcx-review.yaml)")
    p.add_argument("--timeout", type=positive_seconds, default=600.0, metavar="SECONDS",
                   help="seconds one analysis may take (default 600)")
    p.add_argument("--jobs", "-j", type=positive_int, default=None, metavar="N",
                   help="worker processes, at least 1 (default: by cores and memory)")
    p.add_argument("--max-worker-rss", type=parse_rss, default=None, metavar="SIZE",
                   help="memory one worker may hold, e.g. 3G (default: as for review)")
    p.add_argument("--cache-dir", type=Path, metavar="DIR", help="result cache (default ~/.cache/mcx-review)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the result cache")
    p.add_argument("--include-legacy", action="store_true", help="--write also rewrites entries that were "
                   "already off at base (not this change's; default: left alone and listed)")
    p.add_argument("--json", dest="json_out", type=Path, metavar="FILE", help="also write every entry's verdict, "
                   "published and measured integers and input-size rule as JSON to FILE ('-': stdout); "
                   "progress goes to stderr")
    p.add_argument("-q", "--quiet", action="store_true", help="no log lines or progress on stderr (errors still show)")


def _say(args: argparse.Namespace) -> Log:
    return quiet if args.quiet else log


def run(args: argparse.Namespace) -> int:
    root, entries = _measure_files(args) if args.files else _review(args)
    if args.json_out is not None:
        write_json(args.json_out, entries)
    return report_and_write(root, entries, write=args.write, include_legacy=args.include_legacy,
                            hint=verify_hint(args))


def write_json(path: Path, entries: Sequence[Dict[str, Any]]) -> None:
    """The audit document (metafile/audit.py) to ``path``, or stdout for '-'."""
    import json

    from mcx_review.measure.cache import package_versions
    from mcx_review.metafile import audit

    text = json.dumps(audit.document(entries, package_versions()), indent=1) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def verify_hint(args: argparse.Namespace) -> str:
    """How to check what --write just wrote: the edit is in the working tree, so a check of a
    committed head still sees the old figures."""
    if args.files:
        return "to verify: mcx-review metafile --check " + " ".join(args.files)
    base = f" --base {args.base}" if args.base else ""
    return (f"to verify: mcx-review metafile --check{base} --worktree (the edits are not committed: "
            "a check of a committed head still sees the old figures), or commit them first")


_WORDS = {"stale": "STALE", "legacy": "already off at base (not this change)", "fixed": "agrees (was off at base)",
          "agrees": "agrees"}


def _figures(e: Dict[str, Any]) -> str:
    return ", ".join(f"{metafile.METRIC_KEYS[c['metric']]} {c['published']} (measured {c['measured']})"
                     for c in e.get("checks") or [] if "measured" in c)


def report_and_write(root: Path, entries: Sequence[Dict[str, Any]], write: bool,
                     include_legacy: bool = False, hint: str = "") -> int:
    """``--check``: one line per metafile entry of the configs (its verdict and figures), exit 1 when
    one is stale. ``--write``: rewrite the disagreeing figures of stale entries (and of legacy ones
    with ``include_legacy``), one line per change, then ``hint``."""
    plan: Dict[str, Dict[Any, Any]] = {}
    stale = 0
    statuses = ("stale", "legacy") if include_legacy else ("stale",)
    left: List[str] = []
    for entry in entries:
        verdict = entry.get("metafile") or {}
        if verdict.get("status") == "stale":
            stale += 1
        for rel, updates in metafile_files.planned_updates(entry, statuses).items():
            plan.setdefault(rel, {}).update(updates)
        left += [f"{e['file']}: {e['name']}" for e in verdict.get("entries") or []
                 if e.get("status") == "legacy" and not include_legacy]
        for e in verdict.get("entries") or []:
            for c in e.get("checks") or []:
                if c.get("problem"):
                    print(inert(f"{e['file']}: {e['name']}: {metafile.METRIC_KEYS[c['metric']]} {c['problem']}"))
            if not write and e.get("status"):
                wrong = [metafile.says(c) for c in e.get("checks") or [] if c.get("agrees") is False]
                detail = "; ".join(wrong) if wrong else _figures(e)
                words = _WORDS[e["status"]] + (" (deploy form)" if e.get("deploy_form") else "")
                print(inert(f"{e['file']}: {e['name']} ({entry['path']}): {words}: {detail}"))
        if not write and verdict.get("status") == "not compared" and verdict.get("note"):
            print(inert(f"{entry['path']}: not compared ({verdict['note']})"))
    if write:
        changes = metafile_files.write_updates(root, plan)  # WriteError: exit 2
        for c in changes:
            print(inert(f"{c.file}: {c.name} {c.key} {c.old} -> {c.new}"))
        for name in left:
            print(inert(f"{name}: left as it is: already off at base, not this change's (--include-legacy writes it)"))
        if not changes:
            print("nothing to write: every entry this change affects agrees with its config")
        elif hint:
            print(hint)
        return 0
    if not any((e.get("metafile") or {}).get("entries") for e in entries):
        print("no metafile entry names these configs")
    return 1 if stale else 0


def _review(args: argparse.Namespace) -> "tuple[Path, List[Dict[str, Any]]]":
    from mcx_review import review
    from mcx_review.cli.options import default_jobs
    from mcx_review.select.revisions import open_repo, work_tree

    base, head, kind = revision_of(args)
    opts = review.Options(base=base, head=head, head_kind=kind, timeout=args.timeout, jobs=args.jobs or default_jobs(),
                          cache_dir=args.cache_dir, use_cache=not args.no_cache, settings_path=args.settings,
                          max_worker_rss=args.max_worker_rss)
    report, _, _ = review.run_review(args.repo, opts, log=_say(args))
    root = work_tree(open_repo(args.repo))
    return root, list(report.get("configs", []))  # type: ignore[arg-type]


def _measure_files(args: argparse.Namespace) -> Tuple[Path, List[Dict[str, Any]]]:
    """The named configs (and every config a named metafile lists), measured in the working tree
    by the review's own measure stage: the result cache as each trace ends, worker limits, one
    trace per distinct model, progress."""
    from mcx_review import review
    from mcx_review.cli.options import default_jobs
    from mcx_review.cli.progress import ProgressBar
    from mcx_review.measure.resolver import Limits, Resolver
    from mcx_review.select.revisions import open_repo, work_tree
    from mcx_review.select.targets import Target
    from mcx_review.settings import DEFAULT_SOURCE, Settings, load_settings

    say = _say(args)
    root = work_tree(open_repo(args.repo))
    path = args.settings or (root / DEFAULT_SOURCE)
    settings = load_settings(path) if args.settings or path.is_file() else Settings()
    index = metafile_files.build_index(root, settings.configs)
    for problem in index.problems:
        say(f"metafile: {problem}")
    configs: List[str] = []
    for f in args.files:
        rel = _relative(f, root)
        if not (root / rel).is_file():
            raise UsageError(f"{f}: no such file")
        if rel.endswith((".yml", ".yaml")) and rel in index.files:
            entries, _ = metafile_files.read_entries(root, rel)
            configs += [e["config"] for e in entries]
        else:
            configs.append(rel)
    configs = list(dict.fromkeys(configs))
    opts = review.Options(timeout=args.timeout, jobs=max(1, min(args.jobs or default_jobs(), len(configs))),
                          cache_dir=args.cache_dir, use_cache=not args.no_cache,
                          max_worker_rss=args.max_worker_rss)

    def shape_for(config: str) -> Optional[List[int]]:
        shape = settings.shape_for(config)
        return list(shape) if shape else None

    resolver = Resolver({"head": root}, Limits(opts.jobs, opts.timeout, opts.max_worker_rss), shape_for,
                        cache_dir=opts.cache_dir, use_cache=opts.use_cache)
    try:
        measured = review.measure([Target(c, None, c, ["changed"]) for c in configs], resolver, opts, settings,
                                  say, None if args.quiet else ProgressBar(say))
    finally:
        resolver.close()
    out: List[Dict[str, Any]] = []
    for entry in measured:
        c, stats = entry["path"], entry.get("head")
        for e in entry.get("errors") or []:
            say(f"{c}: {e['message']}")
        published = [{**e, "base": None} for e in index.entries(c)]
        if stats is None:
            if published:  # in the audit as "not counted", with its cause
                out.append({"path": c, "status": "error", "head": None, "errors": entry.get("errors") or [],
                            "metafile": metafile.verdict(None, None, published, "warn")})
            continue
        if not published:
            say(f"{c}: no metafile entry names this config")
            out.append({"path": c, "status": "changed", "head": stats})  # the audit lists it, measured
            continue
        shape = settings.shape_for(c)
        v = metafile.verdict(stats, None, published, "warn",
                             note=f"{metafile.FORCED} {shape[0]}\u00d7{shape[1]}" if shape else None,
                             compare=not shape)
        out.append({"path": c, "status": "changed", "head": stats, "metafile": v})
    return root, out


def _relative(path: str, root: Path) -> str:
    p = Path(path)
    full = (p if p.is_absolute() else Path(os.getcwd()) / p).resolve()
    try:
        return full.relative_to(root.resolve()).as_posix()
    except ValueError:
        raise UsageError(f"{path}: outside the repository {root}") from None

"""``mcx-review [review] [options] [FILE ...]``: review a change, deliver the report, exit by it."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from mcx_review import deliver, review
from mcx_review.cli.options import default_jobs, revision_of
from mcx_review.cli.progress import ProgressBar, print_targets
from mcx_review.errors import EXIT_NOTHING_COUNTED
from mcx_review.log import log, quiet
from mcx_review.report.outcome import counted_nothing, exit_code
from mcx_review.select import revisions


def pathspec(arg: str, root: Path) -> str:
    """A FILE argument as git reads a pathspec: relative to the current directory (``--repo`` or
    not), absolute accepted; repo-relative out. Outside the repository: PathError naming it."""
    try:
        return revisions.repo_relative(os.path.abspath(arg), root)
    except revisions.PathError:
        raise revisions.PathError(f"FILE {arg}: outside the repository {root}") from None


def options(args: argparse.Namespace, root: Path) -> review.Options:
    base, head, kind = revision_of(args)
    return review.Options(
        base=base, head=head, head_kind=kind,
        files=[pathspec(f, root) for f in args.files], shape=args.shape, timeout=args.timeout,
        jobs=args.jobs or default_jobs(), cache_dir=args.cache_dir, use_cache=not args.no_cache,
        shard=args.shard, settings_path=args.settings, max_worker_rss=args.max_worker_rss,
        depth=args.depth, impact=args.impact, config_globs=tuple(args.config_globs or ()),
        engine=args.engine)


def run(args: argparse.Namespace) -> int:
    root = revisions.work_tree(revisions.open_repo(args.repo))
    opts = options(args, root)
    say = quiet if args.quiet else log
    progress = None if args.quiet else ProgressBar(say)
    report, stats, targets = review.run_review(args.repo, opts, log=say, list_only=args.list, progress=progress)
    if args.list:
        print_targets(targets)
        say(f"listed: {stats.resolved} resolved, {stats.resolve_cache_hits} resolutions from cache")
        return 0
    say(f"done: {stats.resolved} resolved, {stats.analysed} analysed, {stats.cache_hits} from cache, "
        f"{stats.skipped_unchanged} unchanged without a trace")
    deliver.deliver(report, args.format, args.output, args.json_path, args.md_path, say)
    code = exit_code(report, root)
    if code == EXIT_NOTHING_COUNTED:
        log(f"error: {counted_nothing(report, root)} (exit {code})")
    if args.comment:
        from mcx_review.cli import comment
        code = code or comment.post_from_review(report, args)
    return code

"""Command line: ``mcx-review [review] ...``, ``demo``, ``comment``, ``merge``."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from mcx_review import __version__

COMMANDS = ("review", "demo", "comment", "merge")


def log(message: str) -> None:
    print(f"mcx-review: {message}", file=sys.stderr, flush=True)


def _shape(text: str) -> Tuple[int, int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shape takes H or H W (integers), got {text!r}") from None
    if len(values) not in (1, 2) or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"--shape takes H or H W (positive integers), got {text!r}")
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def _join_shape(args: List[str]) -> List[str]:
    """``--shape H [W]`` -> ``--shape=H,W``, so the optional W never swallows a FILE argument."""
    out: List[str] = []
    i = 0
    while i < len(args):
        if args[i] == "--shape" and i + 1 < len(args):
            values = [args[i + 1]]
            if i + 2 < len(args) and args[i + 2].isdigit():
                values.append(args[i + 2])
            out.append("--shape=" + ",".join(values))
            i += 1 + len(values)
            continue
        out.append(args[i])
        i += 1
    return out


def _shard(text: str) -> Tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard expects K/N such as 1/4, got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"--shard {text}: K must be between 1 and N")
    return k, n


def add_review_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="changed files to consider (as pre-commit passes them); default: the whole diff")
    p.add_argument("--base", default=None, help="base revision; the review starts at its merge-base "
                   "with head (default: HEAD for --staged/--worktree, else main)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--head", default=None, help="head revision (default HEAD)")
    g.add_argument("--staged", action="store_true", help="head is the index (what pre-commit checks)")
    g.add_argument("--worktree", action="store_true", help="head is the working tree")
    p.add_argument("--repo", type=Path, default=Path("."), help="repository (default: current directory)")
    p.add_argument("--shape", type=_shape, metavar="H [W]",
                   help="force the input size; default: what each config's test pipeline produces")
    p.add_argument("--format", choices=("text", "md", "json"), default=None, help="output format (default text)")
    p.add_argument("--output", "-o", type=Path, help="write the report here instead of stdout")
    p.add_argument("--json", dest="json_path", type=Path, help="also write the JSON report here")
    p.add_argument("--markdown", dest="md_path", type=Path, help="also write the Markdown here")
    p.add_argument("--config", dest="settings", type=Path, help="settings file (default: .mcx-review.yaml "
                   "of the head revision)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds one analysis may take (600)")
    p.add_argument("--jobs", "-j", type=int, default=None, help="worker processes (default: by cores and memory)")
    p.add_argument("--cache-dir", type=Path, help="result cache (default ~/.cache/mcx-review)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the result cache")
    p.add_argument("--shard", type=_shard, help="analyse shard K of N (join the reports with `merge`)")
    p.add_argument("--impact", choices=("definitions", "files"), default=None,
                   help="how a code change selects configs: definitions (default: models that reach a "
                        "changed top-level definition) or files (every model that imports a changed file)")
    p.add_argument("--list", action="store_true", help="print which configs would be reviewed and why, build nothing")
    p.add_argument("--comment", action="store_true", help="post the report as a sticky PR comment")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcx-review", description="FLOPs, params and activations of the configs a change affects, "
                                      "base -> head.")
    parser.add_argument("--version", action="version", version=f"mcx-review {__version__}")
    sub = parser.add_subparsers(dest="command")
    review = sub.add_parser("review", help="review a change (the default command)")
    add_review_arguments(review)
    _add_comment_flags(review, for_review=True)
    sub.add_parser("demo", help="review realistic edits to the shipped configs in a throw-away repository")
    comment = sub.add_parser("comment", help="post a saved JSON report as a PR comment (never imports a config)")
    _add_comment_flags(comment, for_review=False)
    merge = sub.add_parser("merge", help="join shard reports into one")
    merge.add_argument("reports", nargs="+", type=Path)
    merge.add_argument("--output", "-o", type=Path)
    merge.add_argument("--format", choices=("text", "md", "json"), default="json")
    merge.add_argument("--config", dest="settings", type=Path, help="settings whose budgets to apply to the merged report")
    return parser


def _add_comment_flags(p: argparse.ArgumentParser, for_review: bool) -> None:
    from mcx_review import comment_command

    comment_command.add_arguments(p, with_report=not for_review)


def default_jobs() -> int:
    cores = os.cpu_count() or 1
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        avail = 8 << 30
    by_memory = max(1, int(avail // (3 << 30)))  # a large model's worker peaks near 3 GiB
    return max(2, min(cores, by_memory))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0] not in COMMANDS and args_list[0] not in ("-h", "--help", "--version")):
        args_list.insert(0, "review")
    args = build_parser().parse_args(_join_shape(args_list))
    try:
        if args.command == "demo":
            from mcx_review.demo import run_demo
            return run_demo()
        if args.command == "comment":
            from mcx_review import comment_command
            return comment_command.run(args)
        if args.command == "merge":
            return run_merge(args)
        return run_review_command(args)
    except KeyboardInterrupt:
        log("interrupted")
        return 130


def run_merge(args: argparse.Namespace) -> int:
    from mcx_review.merge import MergeError, merge_files
    from mcx_review.output import emit

    try:
        report = merge_files(args.reports, args.settings)
    except MergeError as exc:
        log(str(exc))
        return 2
    emit(report, args.format, args.output)
    return 0


def run_review_command(args: argparse.Namespace) -> int:
    from mcx_review import gitrev, output, review
    from mcx_review.settings import SettingsError

    kind = "index" if args.staged else "worktree" if args.worktree else "commit"
    base = args.base or ("HEAD" if kind != "commit" else "main")
    opts = review.Options(
        base=base, head=args.head, head_kind=kind, files=args.files,
        shape=args.shape, timeout=args.timeout,
        jobs=args.jobs or default_jobs(), cache_dir=args.cache_dir, use_cache=not args.no_cache,
        shard=args.shard, settings_path=args.settings, impact=args.impact)
    say = (lambda m: None) if args.quiet else log
    progress = None if args.quiet else output.Progress(say)
    try:
        report, stats, targets = review.run_review(
            args.repo, opts, log=say, list_only=args.list, progress=progress)
    except gitrev.GitError as exc:
        log(f"git: {exc}")
        return 2
    except SettingsError as exc:
        log(str(exc))
        return 2
    if args.list:
        output.print_targets(targets)
        say(f"listed: {stats.resolved} resolved, {stats.resolve_cache_hits} resolutions from cache")
        return 0
    say(f"done: {stats.resolved} resolved, {stats.analysed} analysed, {stats.cache_hits} from cache, "
        f"{stats.skipped_unchanged} unchanged without a trace")
    code = output.deliver(report, args, say)
    if args.comment:
        from mcx_review import comment_command
        comment_code = comment_command.post_from_review(report, args)
        code = code or comment_code
    return code

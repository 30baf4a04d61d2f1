"""Command line: ``mcx-review [review] ...``, ``demo``, ``comment``, ``merge``, ``metafile``."""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import List, NoReturn, Optional, Sequence, Tuple

from mcx_review import __version__

COMMANDS = ("review", "demo", "comment", "merge", "metafile")


def log(message: str) -> None:
    print(f"mcx-review: {message}", file=sys.stderr, flush=True)


MAX_SIDE = 4096  # pixels: beyond this a trace takes more memory than a CI runner has


class Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (and exit 2), not usage text plus an error."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        prog = "mcx-review" if self.prog == "mcx-review review" else self.prog
        self.exit(2, f"mcx-review: error: {message} (see: {prog} --help)\n")


def _shape(text: str) -> Tuple[int, int]:
    """``H``, ``H W`` or ``HxW`` (positive integers up to MAX_SIDE) -> (H, W)."""
    parts = re.split(r"\s+|(?<=\d)[x\u00d7X](?=\d)", text.strip())
    if not 1 <= len(parts) <= 2 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected H, H W or HxW (integers), got {text!r}")
    values = [int(p) for p in parts]
    if not all(1 <= v <= MAX_SIDE for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be between 1 and {MAX_SIDE} pixels, got {text!r}")
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def _join_shape(args: List[str]) -> List[str]:
    """``--shape H [W]`` -> ``--shape=H W``: every integer right after ``--shape`` belongs to it
    (so ``--shape 224 224 3`` is an error, not a FILE named 3), and the rest stays FILEs."""
    out: List[str] = []
    i = 0
    while i < len(args):
        if args[i] == "--shape" and i + 1 < len(args):
            j = i + 1
            while j < len(args) and (j == i + 1 or re.fullmatch(r"\d+", args[j])):
                j += 1
            out.append("--shape=" + " ".join(args[i + 1:j]))
            i = j
            continue
        out.append(args[i])
        i += 1
    return out


def _size(text: str) -> int:
    from mcx_review.memory import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--max-worker-rss: {exc}") from None


def _shard(text: str) -> Tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard expects K/N such as 1/4, got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"--shard {text}: K must be between 1 and N")
    return k, n


def _depth(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 50:
        raise argparse.ArgumentTypeError(f"--depth takes a module depth from 1 to 50, got {text!r}")
    return int(text)


def add_review_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="review only what these changed files or directories affect (as pre-commit "
                   "passes them); paths relative to the current directory, like git pathspecs; "
                   "default: the whole diff")
    p.add_argument("--base", default=None, metavar="REV", help="base revision; the review starts at its merge-base "
                   "with head (default: HEAD for --staged/--worktree, else main)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--head", default=None, metavar="REV", help="head revision (default HEAD)")
    g.add_argument("--staged", action="store_true", help="head is the index (what pre-commit checks)")
    g.add_argument("--worktree", action="store_true", help="head is the working tree")
    p.add_argument("--repo", type=Path, default=Path("."), metavar="DIR", help="repository (default: current directory)")
    p.add_argument("--shape", type=_shape, metavar="H [W]",
                   help=f"force the input size: H, H W or HxW, each 1..{MAX_SIDE}; default: what each "
                   "config's test pipeline produces (channels always come from the config)")
    p.add_argument("--format", choices=("text", "md", "json"), default=None, help="output format (default text)")
    p.add_argument("--output", "-o", type=Path, metavar="PATH", help="write the report here instead of stdout")
    p.add_argument("--json", dest="json_path", type=Path, metavar="PATH", help="also write the JSON report here")
    p.add_argument("--markdown", dest="md_path", type=Path, metavar="PATH", help="also write the Markdown here")
    p.add_argument("--config", dest="settings", type=Path, metavar="FILE", help="settings file (default: .mcx-review.yaml "
                   "of the head revision)")
    p.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS", help="seconds one analysis may take (600)")
    p.add_argument("--jobs", "-j", type=int, default=None, metavar="N", help="worker processes (default: by cores and memory)")
    p.add_argument("--max-worker-rss", type=_size, default=None, metavar="SIZE",
                   help="memory one worker may hold, e.g. 3G or 2500M (default: 80%% of the machine's "
                        "memory shared by the workers, at most 3G); a worker past it is replaced after "
                        "its job, and a model that needs more runs alone")
    p.add_argument("--cache-dir", type=Path, metavar="DIR", help="result cache (default ~/.cache/mcx-review)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the result cache")
    p.add_argument("--shard", type=_shard, metavar="K/N", help="analyse shard K of N (join the reports with `merge`)")
    p.add_argument("--impact", choices=("definitions", "files"), default=None,
                   help="how a code change selects configs: definitions (default: models that reach a "
                        "changed top-level definition) or files (every model that imports a changed file)")
    p.add_argument("--list", action="store_true", help="print which configs would be reviewed and why, build nothing")
    p.add_argument("--depth", type=_depth, metavar="N", help="per-module tables to depth N (1: top-level modules), base -> head")
    p.add_argument("--comment", action="store_true", help="post the report as a sticky PR comment")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, hints or other log lines "
                   "on stderr (errors still show)")


REVIEW_HELP = "review a change: FLOPs, params and activations of the configs it affects, base -> head"
DEMO_HELP = ("review realistic edits to the configs the installed mmcls (or mmpretrain) ships, in a "
             "throw-away git repository; no network")
COMMENT_HELP = "post a saved JSON report as the sticky PR comment (never imports a config)"
MERGE_HELP = "join the JSON reports of --shard runs into one report"
METAFILE_HELP = "check or rewrite the FLOPs/Parameters that metafile.yml files publish"
EPILOG = f"""\
commands (review is the default: `mcx-review [review] [options] [FILE ...]`):
  review   review a change: FLOPs, params and activations of the configs it affects
  demo     review realistic edits to the shipped configs in a throw-away repository
  comment  {COMMENT_HELP}
  merge    {MERGE_HELP}
  metafile {METAFILE_HELP}
Run `mcx-review COMMAND --help` for a command's options.

exit codes:
  0  clean, or warnings only (a config broken alike at base and head among others is a note)
  1  a budget at fail level, a metafile entry left stale with `metafile: fail`, or a config that
     fails to analyse at head (a resource limit is a warning unless `limits: fail`)
  2  usage, git or settings error
  3  nothing was counted: the analysis environment cannot import a dependency, or every config
     under review fails at base and head (the line on stderr names the cause and the fix)
"""
DEMO_DESCRIPTION = """\
Review realistic edits to the configs the installed mmcls (or mmpretrain) ships, in a throw-away
git repository (no network). The base commit holds the shipped configs; the head commit gives
ResNet-50 depth=101 (its two fp16 variants inherit it), crops ConvNeXt-T's test pipeline at 288
instead of 224, and halves the ViT-B head's hidden_dim. Prints the text table and writes into the
current directory:
  mcx-review-demo.md    the Markdown PR comment
  mcx-review-demo.json  the JSON report
Exit code as for review."""


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = Parser(prog="mcx-review", description="FLOPs, params and activations of the configs a "
                    "change affects, base -> head.", epilog=EPILOG, formatter_class=fmt)
    parser.add_argument("--version", action="version", version=f"mcx-review {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    review = sub.add_parser("review", help=REVIEW_HELP, description=REVIEW_HELP + ".", epilog=EPILOG,
                            formatter_class=fmt, usage="mcx-review [review] [options] [FILE ...]")
    review.add_argument("--version", action="version", version=f"mcx-review {__version__}")
    add_review_arguments(review)
    _add_comment_flags(review, for_review=True)
    sub.add_parser("demo", help=DEMO_HELP, description=DEMO_DESCRIPTION, formatter_class=fmt)
    comment = sub.add_parser("comment", help=COMMENT_HELP, description=COMMENT_HELP + ": validates "
                             "REPORT.json against the report schema, then creates or updates the PR's "
                             "sticky comment.")
    _add_comment_flags(comment, for_review=False)
    merge = sub.add_parser("merge", help=MERGE_HELP, description=MERGE_HELP + "; applies the budgets "
                           "of --config to the merged report.")
    merge.add_argument("reports", nargs="+", type=Path, metavar="REPORT.json")
    merge.add_argument("--output", "-o", type=Path, help="write the merged report here instead of stdout")
    merge.add_argument("--format", choices=("text", "md", "json"), default="json", help="output format (default json)")
    merge.add_argument("--config", dest="settings", type=Path, help="settings whose budgets to apply to the merged report")
    from mcx_review import metafile_command
    what = ("Check (--check) or rewrite (--write) the FLOPs/Parameters that metafile.yml entries publish "
            "for the reviewed configs or the FILEs given.")
    metafile_command.add_arguments(sub.add_parser("metafile", help=METAFILE_HELP, description=what))
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
    if not args_list or args_list[0] not in COMMANDS:
        args_list.insert(0, "review")  # `mcx-review --help` too: the default command's options
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
        if args.command == "metafile":
            from mcx_review import metafile_command
            return metafile_command.run(args)
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
    if args.output:
        log(f"report written to {args.output}")
    return 0


def _pathspec(arg: str, root: Path) -> str:
    """A FILE argument as git reads a pathspec: relative to the current directory (``--repo`` or
    not), absolute accepted; repo-relative out. Outside the repository: PathError naming it."""
    from mcx_review import gitrev

    try:
        return gitrev.repo_relative(os.path.abspath(arg), root)
    except gitrev.PathError:
        raise gitrev.PathError(f"FILE {arg}: outside the repository {root}") from None


def run_review_command(args: argparse.Namespace) -> int:
    from mcx_review import gitrev, output, review
    from mcx_review.settings import SettingsError

    kind = "index" if args.staged else "worktree" if args.worktree else "commit"
    base = args.base or ("HEAD" if kind != "commit" else "main")
    try:
        root = Path(gitrev.open_repo(args.repo).working_tree_dir or args.repo)
        files = [_pathspec(f, root) for f in args.files]
    except gitrev.GitError as exc:
        log(f"git: {exc}")
        return output.EXIT_USAGE
    except gitrev.PathError as exc:
        log(f"error: {exc}")
        return output.EXIT_USAGE
    opts = review.Options(
        base=base, head=args.head, head_kind=kind, files=files,
        shape=args.shape, timeout=args.timeout,
        jobs=args.jobs or default_jobs(), cache_dir=args.cache_dir, use_cache=not args.no_cache,
        shard=args.shard, settings_path=args.settings, max_worker_rss=args.max_worker_rss,
        depth=args.depth, impact=args.impact)
    say = (lambda m: None) if args.quiet else log
    progress = None if args.quiet else output.Progress(say)
    try:
        report, stats, targets = review.run_review(
            args.repo, opts, log=say, list_only=args.list, progress=progress)
    except gitrev.GitError as exc:
        log(f"git: {exc}")
        return output.EXIT_USAGE
    except SettingsError as exc:
        log(str(exc))
        return output.EXIT_USAGE
    if args.list:
        output.print_targets(targets)
        say(f"listed: {stats.resolved} resolved, {stats.resolve_cache_hits} resolutions from cache")
        return 0
    say(f"done: {stats.resolved} resolved, {stats.analysed} analysed, {stats.cache_hits} from cache, "
        f"{stats.skipped_unchanged} unchanged without a trace")
    code = output.deliver(report, args, say, root)
    if code == output.EXIT_NOTHING_COUNTED:
        log(f"error: {output.counted_nothing(report, root)} (exit {code})")
    if args.comment:
        from mcx_review import comment_command
        comment_code = comment_command.post_from_review(report, args)
        code = code or comment_code
    return code

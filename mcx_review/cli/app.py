"""Command line: ``mcx-review [review] ...``, ``demo``, ``comment``, ``merge``, ``metafile``.

:func:`main` parses, dispatches to the subcommand's ``run`` and is the one place where an
expected failure (:class:`~mcx_review.errors.McxError`) becomes its line on stderr and its exit
code; each subcommand lives in its own module of this package.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from mcx_review import __version__
from mcx_review.cli import comment, merge, metafile
from mcx_review.cli.options import Parser, add_review_arguments, join_shape
from mcx_review.errors import EXIT_INTERRUPTED, McxError
from mcx_review.log import log

COMMANDS = ("review", "demo", "comment", "merge", "metafile")


REVIEW_HELP = "review a change: FLOPs, params and activations of the configs it affects, base -> head"
DEMO_HELP = ("review realistic edits to the configs the installed mmcls (or mmpretrain) ships, in a "
             "throw-away git repository; no network")
COMMENT_HELP = "post a saved JSON report as the sticky PR comment (never imports a config)"
METAFILE_HELP = "check or rewrite the FLOPs/Parameters that metafile.yml files publish"
EPILOG = f"""\
commands (review is the default: `mcx-review [review] [options] [FILE ...]`):
  review   review a change: FLOPs, params and activations of the configs it affects
  demo     review realistic edits to the shipped configs in a throw-away repository
  comment  {COMMENT_HELP}
  merge    {merge.HELP}
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
    review_parser = sub.add_parser("review", help=REVIEW_HELP, description=REVIEW_HELP + ".", epilog=EPILOG,
                            formatter_class=fmt, usage="mcx-review [review] [options] [FILE ...]")
    review_parser.add_argument("--version", action="version", version=f"mcx-review {__version__}")
    add_review_arguments(review_parser)
    comment.add_arguments(review_parser, with_report=False)
    sub.add_parser("demo", help=DEMO_HELP, description=DEMO_DESCRIPTION, formatter_class=fmt)
    comment_parser = sub.add_parser("comment", help=COMMENT_HELP, description=COMMENT_HELP + ": validates "
                             "REPORT.json against the report schema, then creates or updates the PR's "
                             "sticky comment.")
    comment.add_arguments(comment_parser, with_report=True)
    merge.add_arguments(sub.add_parser("merge", help=merge.HELP, description=merge.HELP + "; applies the "
                                       "budgets of --config to the merged report."))
    what = ("Check (--check) or rewrite (--write) the FLOPs/Parameters that metafile.yml entries publish "
            "for the reviewed configs or the FILEs given.")
    metafile.add_arguments(sub.add_parser("metafile", help=METAFILE_HELP, description=what))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or args_list[0] not in COMMANDS:
        args_list.insert(0, "review")  # `mcx-review --help` too: the default command's options
    args = build_parser().parse_args(join_shape(args_list))
    try:
        return dispatch(args)
    except McxError as exc:
        log(exc.line())
        return exc.exit_code
    except KeyboardInterrupt:
        log("interrupted")
        return EXIT_INTERRUPTED


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from mcx_review.cli.demo import run_demo
        return run_demo()
    if args.command == "comment":
        return comment.run(args)
    if args.command == "merge":
        return merge.run(args)
    if args.command == "metafile":
        return metafile.run(args)
    from mcx_review.cli import review
    return review.run(args)

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
from mcx_review.cli.options import Parser, add_core_review_arguments, add_review_arguments, join_shape
from mcx_review.errors import EXIT_INTERRUPTED, McxError
from mcx_review.log import log

COMMANDS = ("review", "demo", "comment", "merge", "metafile")


REVIEW_HELP = "review a change: FLOPs, params and activations of the configs it affects, base -> head"
DEMO_HELP = ("review realistic edits to the configs the installed mmcls (or mmpretrain) ships, in a "
             "throw-away git repository; no network")
COMMENT_HELP = "post a saved JSON report as the sticky PR comment (never imports a config)"
METAFILE_HELP = "check or rewrite the FLOPs/Parameters that metafile.yml files publish"
COMMANDS_TEXT = f"""\
commands (review is the default: `mcx-review [review] [options] [FILE ...]`):
  review   review a change: FLOPs, params and activations of the configs it affects
  demo     review realistic edits to the shipped configs in a throw-away repository
  comment  {COMMENT_HELP}
  merge    {merge.HELP}
  metafile {METAFILE_HELP}
Run `mcx-review COMMAND --help` for a command's options (`mcx-review review --help`: all review
options, performance and cache, PR comment)."""
EPILOG = f"""\
{COMMANDS_TEXT}

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

exit codes: as for review (0: the demo's changes warn only)."""
EXIT_CODES = EPILOG[EPILOG.index("exit codes:"):]


def top_level_help() -> str:
    """``mcx-review --help``: the commands first, then the core review options; performance and
    PR-comment options are in ``mcx-review review --help``."""
    top = Parser(prog="mcx-review", usage="mcx-review [COMMAND] [options] [FILE ...]",
                 description="FLOPs, params and activations of the configs a change affects, base -> head.\n\n"
                 + COMMANDS_TEXT, epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
                 add_help=False)
    top.add_argument("-h", "--help", action="store_true", help="this help; COMMAND --help: a command's")
    top.add_argument("--version", action="store_true", help="print the version")
    add_core_review_arguments(top.add_argument_group("review options (the default command)"))
    return top.format_help()


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
    demo = sub.add_parser("demo", help=DEMO_HELP, description=DEMO_DESCRIPTION, formatter_class=fmt)
    demo.add_argument("--codebase", choices=("mmdet", "mmseg"), default=None,
                      help="edit the configs mmdet or mmsegmentation ships instead (detectors, segmentors)")
    comment_parser = sub.add_parser("comment", help=COMMENT_HELP, description=COMMENT_HELP + ": validates "
                             "REPORT.json against the report schema, then creates or updates the PR's "
                             "sticky comment.", epilog=comment.EPILOG, formatter_class=fmt)
    comment.add_arguments(comment_parser, with_report=True)
    merge.add_arguments(sub.add_parser("merge", help=merge.HELP, description=merge.HELP + "; applies the "
                                       "budgets of --config to the merged report.", epilog=merge.EPILOG,
                                       formatter_class=fmt))
    what = ("Check (--check) or rewrite (--write) the FLOPs/Parameters that metafile.yml entries publish "
            "for the reviewed configs or the FILEs given.")
    metafile.add_arguments(sub.add_parser("metafile", help=METAFILE_HELP, description=what,
                                          epilog=metafile.EPILOG, formatter_class=fmt))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in ("-h", "--help"):
        print(top_level_help(), end="")
        return 0
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
        return run_demo(codebase=args.codebase)
    if args.command == "comment":
        return comment.run(args)
    if args.command == "merge":
        return merge.run(args)
    if args.command == "metafile":
        return metafile.run(args)
    from mcx_review.cli import review
    return review.run(args)

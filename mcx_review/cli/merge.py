"""``mcx-review merge REPORT.json ...``: join the reports of ``--shard K/N`` runs."""
from __future__ import annotations

import argparse
from pathlib import Path

from mcx_review import deliver
from mcx_review.log import log
from mcx_review.report.merge import merge_files

HELP = "join the JSON reports of --shard runs into one report"
EPILOG = """\
exit codes:
  0  merged and written
  2  a report cannot be read, is not a shard of the same review, or a shard is missing"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("reports", nargs="+", type=Path, metavar="REPORT.json")
    p.add_argument("--output", "-o", type=Path, help="write the merged report here instead of stdout")
    p.add_argument("--format", choices=deliver.FORMATS, default="json", help="output format (default json)")
    p.add_argument("--config", dest="settings", type=Path, help="settings whose budgets to apply to the merged report")


def run(args: argparse.Namespace) -> int:
    report = merge_files(args.reports, args.settings)
    deliver.emit(report, args.format, args.output)
    if args.output:
        log(f"report written to {args.output}")
    return 0

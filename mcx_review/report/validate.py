"""Validate an untrusted report artifact (the fork-safe comment job) against ``report-schema.json``
with jsonschema (:mod:`mcx_review.schema_check`). Parsing is strict: a size limit before parsing,
no NaN/Infinity, no duplicate keys; the schema bounds every number (|n| <= 1e18), string, list and
mapping, so a hostile artifact is one clear line here, not a crash in the renderer.

Usage: ``python -m mcx_review.report_validate REPORT.json [--max-bytes N]`` (exit 0 valid, 1 not).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, cast

from mcx_review import schema_check
from mcx_review.errors import McxError
from mcx_review.log import inert

SCHEMA_PATH = Path(__file__).with_name("report-schema.json")
DEFAULT_MAX_BYTES = 5 * 1024 * 1024  # a real report for hundreds of configs is well under 1 MiB
MAX_ERRORS = schema_check.MAX_PROBLEMS


class ReportError(McxError):
    """The artifact is not a valid report; the message names the file and the first problems."""


def load_schema() -> Dict[str, Any]:
    return cast(Dict[str, Any], json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def validate(instance: Any, schema: Optional[Mapping[str, Any]] = None) -> List[str]:
    """Problems found (``$.configs[0].status: ...``), at most MAX_ERRORS; empty when valid."""
    return schema_check.problems(instance, SCHEMA_PATH if schema is None else schema, root="$")


def _no_duplicates(pairs: List[Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse(data: bytes, source: str = "report", max_bytes: int = DEFAULT_MAX_BYTES) -> Dict[str, Any]:
    """Parse and validate report bytes; raise ReportError naming ``source`` and the cause."""
    if len(data) > max_bytes:
        raise ReportError(f"{source}: {len(data)} bytes is over the {max_bytes}-byte limit for a report")
    try:
        report = cast(Dict[str, Any], json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates,
                                                 parse_constant=_no_constant))  # checked by validate() below
    except UnicodeDecodeError as exc:
        raise ReportError(f"{source}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise ReportError(f"{source}: nested too deeply to be a report") from None
    except ValueError as exc:
        raise ReportError(f"{source}: not valid JSON ({exc})") from None
    problems = validate(report)
    if problems:
        more = "" if len(problems) < MAX_ERRORS else " (first problems only)"
        raise ReportError(f"{source}: not a valid mcx-review report{more}: " + "; ".join(problems[:5]))
    return report


def load_validated(path: "str | Path", max_bytes: int = DEFAULT_MAX_BYTES) -> Dict[str, Any]:
    """Read, size-check, parse and validate a report file."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise ReportError(f"{p}: {size} bytes is over the {max_bytes}-byte limit for a report")
        data = p.read_bytes()
    except OSError as exc:
        raise ReportError(f"{p}: cannot read ({exc.strerror or exc})") from None
    return parse(data, str(p), max_bytes)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcx_review.report_validate",
                                     description="Check an mcx-review JSON report against the schema.")
    parser.add_argument("report", type=Path)
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    args = parser.parse_args(argv)
    try:
        load_validated(args.report, args.max_bytes)
    except ReportError as exc:
        print(f"mcx-review: {inert(exc)}", file=sys.stderr)
        return 1
    print(inert(f"{args.report}: valid mcx-review report"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

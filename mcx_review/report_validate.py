"""Validate an untrusted report artifact (the fork-safe comment job) against ``report-schema.json``.

jsonschema is not a dependency, so this is a small strict validator for the subset of JSON Schema
the schema uses: type, enum, properties, required, additionalProperties, propertyNames, items,
min/maxItems, maxProperties, min/maxLength, pattern, minimum, anyOf and local ``$ref``. Any other
keyword in the schema is an error (so the schema cannot silently promise more than is checked).
Parsing is strict too: a size limit before parsing, no NaN/Infinity, no duplicate keys.

Usage: ``python -m mcx_review.report_validate REPORT.json [--max-bytes N]`` (exit 0 valid, 1 not).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

SCHEMA_PATH = Path(__file__).with_name("report-schema.json")
DEFAULT_MAX_BYTES = 5 * 1024 * 1024  # a real report for hundreds of configs is well under 1 MiB
MAX_ERRORS = 20

_KNOWN = {"$schema", "$id", "title", "description", "$defs", "type", "enum", "properties", "required",
          "additionalProperties", "propertyNames", "items", "minItems", "maxItems", "maxProperties",
          "minLength", "maxLength", "pattern", "minimum", "anyOf", "$ref"}
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


class ReportError(Exception):
    """The artifact is not a valid report; the message names the file and the first problems."""


def load_schema() -> Dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate(instance: Any, schema: Optional[Mapping[str, Any]] = None) -> List[str]:
    """Problems found (``$.configs[0].status: ...``), at most MAX_ERRORS; empty when valid."""
    root = dict(schema) if schema is not None else load_schema()
    errors: List[str] = []
    _check(instance, root, root, "$", errors)
    return errors[:MAX_ERRORS]


def _resolve(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any]:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref is supported, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _check(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any], where: str, errors: List[str]) -> None:
    if len(errors) >= MAX_ERRORS:
        return
    unknown = set(schema) - _KNOWN
    if unknown:
        raise ValueError(f"schema keyword(s) not supported: {sorted(unknown)}")
    if "$ref" in schema:
        _check(value, _resolve(schema["$ref"], root), root, where, errors)
    if "anyOf" in schema:
        if not any(not _sub(value, s, root, where) for s in schema["anyOf"]):
            first = _sub(value, schema["anyOf"][-1], root, where)
            errors.append(first[0] if first else f"{where}: matches none of the allowed forms")
        return
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            errors.append(f"{where}: expected {' or '.join(types)}, got {_kind(value)}")
            return
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        errors.append(f"{where}: {_short(value)} is not one of {', '.join(map(str, schema['enum']))}")
        return
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{where}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{where}: longer than {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{where}: {_short(value)} does not match {schema['pattern']}")
    if _TYPES["number"](value) and "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{where}: {value} is below {schema['minimum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where}: more than {schema['maxItems']} items")
            return
        if "items" in schema:
            for i, item in enumerate(value):
                _check(item, schema["items"], root, f"{where}[{i}]", errors)
    if isinstance(value, dict):
        _check_object(value, schema, root, where, errors)


def _check_object(value: Dict[str, Any], schema: Mapping[str, Any], root: Mapping[str, Any], where: str,
                  errors: List[str]) -> None:
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errors.append(f"{where}: more than {schema['maxProperties']} keys")
        return
    for key in schema.get("required", []):
        if key not in value:
            errors.append(f"{where}: missing {key!r}")
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if "propertyNames" in schema:
            _check(key, schema["propertyNames"], root, f"{where} key {_short(key)}", errors)
        if key in props:
            _check(item, props[key], root, f"{where}.{key}", errors)
        elif extra is False:
            errors.append(f"{where}: unexpected key {_short(key)}")
        elif isinstance(extra, dict):
            _check(item, extra, root, f"{where}[{_short(key)}]", errors)


def _sub(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any], where: str) -> List[str]:
    errs: List[str] = []
    _check(value, schema, root, where, errs)
    return errs


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _kind(value: Any) -> str:
    for name, test in _TYPES.items():
        if name != "number" and test(value):
            return name
    return "number" if isinstance(value, float) else type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
        report = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates,
                            parse_constant=_no_constant)
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
        print(f"mcx-review: {exc}", file=sys.stderr)
        return 1
    print(f"{args.report}: valid mcx-review report", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Validate data against one of the JSON Schemas this package ships, with jsonschema, and say
what is wrong in one short line per problem (``$.configs[0].status: 'pwned' is not one of ...``).

Shared by the report validator (an untrusted artifact) and the settings loader
(``.mcx-review.yaml``). Stricter than plain JSON Schema in one way: ``integer`` and ``number``
never accept booleans and ``integer`` never accepts a float such as ``1.0`` (the renderers do
arithmetic on these values).

A schema node may carry ``errorMessage`` (the ajv-errors convention, ignored by editors and by
jsonschema itself): a string, or a mapping from keyword (``type``, ``minItems``, ``pattern``,
``anyOf``...) to a string, used instead of the generic wording; ``{got}`` in it is replaced by
the offending value.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

MAX_PROBLEMS = 20
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_KIND = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
         "number": "a number", "boolean": "true or false", "null": "null"}


def _is_int(_: Any, value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(_: Any, value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_Strict = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many({"integer": _is_int, "number": _is_number}))


@lru_cache(maxsize=None)
def validator_for(path: str) -> Any:
    """A checked, cached validator for the schema file at ``path``."""
    return _checked(json.loads(Path(path).read_text(encoding="utf-8")))


def _checked(schema: Mapping[str, Any]) -> Any:
    Draft202012Validator.check_schema(schema)
    return _Strict(inline_refs(schema))


def inline_refs(schema: Mapping[str, Any]) -> Any:
    """The schema with every local ``#/$defs/NAME`` reference replaced by its definition (our
    schemas are not recursive): the same checks, about twice as fast as resolving each ``$ref``
    per value of a large report."""
    defs = schema.get("$defs") or {}

    def walk(node: Any, seen: Tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [walk(v, seen) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        rest = {k: walk(v, seen) for k, v in node.items() if k != "$ref"}
        if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs and ref not in seen:
            return {**walk(defs[ref[8:]], seen + (ref,)), **rest}
        return {**rest, "$ref": ref} if ref is not None else rest

    return walk(dict(schema), ())


def _json_kind(value: Any) -> str:
    kinds: Tuple[Tuple[str, Callable[[Any], bool]], ...] = (
        ("null", lambda v: v is None), ("boolean", lambda v: isinstance(v, bool)),
        ("integer", lambda v: isinstance(v, int)), ("number", lambda v: isinstance(v, float)),
        ("string", lambda v: isinstance(v, str)), ("array", lambda v: isinstance(v, list)),
        ("object", lambda v: isinstance(v, dict)))
    for name, test in kinds:
        if test(value):
            return name
    return type(value).__name__


def show(value: Any) -> str:
    """A value as a message shows it: short, one line."""
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        text = repr(value)
        return text if len(text) <= 60 else f"a {'mapping' if isinstance(value, dict) else 'list'}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def where(path: Iterable[Any], root: str = "$") -> str:
    """``['configs', 0, 'head']`` -> ``$.configs[0].head``; keys that are not plain names are
    quoted: ``shapes['configs/vit/**']``."""
    out = root
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{show(str(part))}]"
    return out


def problems(instance: Any, schema: "str | Path | Mapping[str, Any]", root: str = "$",
             json_words: bool = True) -> List[str]:
    """Every problem, in document order (at most MAX_PROBLEMS), each ``where: what``; empty when
    the instance is valid. ``schema`` is a schema file or a schema. ``json_words``: types read
    ``expected object, got array`` (a JSON artifact) rather than ``expected a mapping, got [1]``
    (a YAML file a person wrote)."""
    v = validator_for(str(schema)) if isinstance(schema, (str, Path)) else _checked(schema)
    # the first 1000 found, in document order (a hostile artifact may hold millions)
    errors = sorted(islice(v.iter_errors(instance), 1000), key=lambda e: _order(instance, e.absolute_path))
    out: List[str] = []
    for error in errors[:MAX_PROBLEMS]:
        path, text = describe(error, json_words)
        if "propertyNames" in list(error.absolute_schema_path):
            text = f"key {show(error.instance)}: {text}"
        label = where(path, root)
        out.append(f"{label}: {text}" if label else text)
    return out


def _order(instance: Any, path: Sequence[Any]) -> Tuple[int, ...]:
    """A sort key that puts problems in the order their place appears in the document."""
    key: List[int] = []
    node = instance
    for part in path:
        if isinstance(node, dict):
            key.append(list(node).index(part) if part in node else len(node))
        elif isinstance(node, list) and isinstance(part, int):
            key.append(part)
        else:
            key.append(0)
        node = node[part] if isinstance(node, (dict, list)) and _has(node, part) else None
    return tuple(key)


def _has(node: Any, part: Any) -> bool:
    return part in node if isinstance(node, dict) else isinstance(part, int) and 0 <= part < len(node)


def _custom(schema: Mapping[str, Any], keyword: str, value: Any) -> Optional[str]:
    msg = schema.get("errorMessage") if isinstance(schema, Mapping) else None
    if isinstance(msg, Mapping):
        msg = msg.get(keyword)
    return msg.replace("{got}", show(value)) if isinstance(msg, str) else None


def _types(schema: Mapping[str, Any]) -> List[str]:
    t = schema.get("type") if isinstance(schema, Mapping) else None
    return [t] if isinstance(t, str) else list(t or [])


# One line per bound keyword: {got} the value shown, {limit} the schema's bound.
_BOUND_MESSAGES = {
    "maxLength": "longer than {limit} characters",
    "minLength": "shorter than {limit} characters",
    "pattern": "{got} does not match {limit}",
    "maximum": "{got} is over the maximum {limit}",
    "minimum": "{got} is below the minimum {limit}",
    "maxItems": "more than {limit} items",
    "minItems": "fewer than {limit} items",
    "maxProperties": "more than {limit} keys",
}


def describe(error: ValidationError, json_words: bool = True) -> Tuple[List[Any], str]:
    """(path in the instance, what is wrong) for one jsonschema error."""

    def kinds_of(types: Iterable[str]) -> str:
        return " or ".join(dict.fromkeys(t if json_words else _KIND.get(t, t) for t in types))

    got = _json_kind(error.instance) if json_words else show(error.instance)
    path = list(error.absolute_path)
    kw, value, schema = error.validator, error.instance, error.schema
    custom = _custom(schema, str(kw), value)
    if kw in ("anyOf", "oneOf"):
        # A branch whose type fits the value says what is wrong with it; when none fits, the
        # node's errorMessage or the forms allowed.
        fitting = [c for c in error.context or [] if not (c.validator == "type" and not c.relative_path)]
        if fitting:
            return describe(min(fitting, key=lambda c: -len(c.relative_path)), json_words)
        if custom:
            return path, custom
        types = [t for c in error.context or [] for t in _types(c.schema)]
        if len(set(types) - {"null"}) >= 1:  # null stands for "left out": name the real forms
            types = [t for t in types if t != "null"]
        return path, f"expected {kinds_of(types) or 'another form'}, got {got}"
    if custom:
        return path, custom
    if kw == "type":
        return path, f"expected {kinds_of(_types(schema))}, got {got}"
    if kw == "enum":
        options = error.validator_value
        if len(options) == 2:
            expected = " or ".join(show(o) for o in options)
        else:
            expected = "one of " + ", ".join(show(o) for o in options)
        return path, f"expected {expected}, got {show(value)}"
    if kw == "const":
        return path, f"expected {show(error.validator_value)}, got {show(value)}"
    if kw == "additionalProperties" and isinstance(value, dict):
        known = set(schema.get("properties") or {})
        extra = [k for k in value if k not in known]
        if json_words:
            return path, f"unexpected key {show(extra[0] if extra else '?')}"
        allowed = ", ".join(sorted(known))
        return path + extra[:1], (f"unknown key (expected one of: {allowed})" if allowed else "unknown key")
    if kw == "required":
        missing = [k for k in error.validator_value if isinstance(value, dict) and k not in value]
        return path, f"missing key {show(missing[0] if missing else error.validator_value[0])}"
    if kw == "minLength" and error.validator_value == 1:
        return path, "expected a non-empty string"
    if kw in _BOUND_MESSAGES:
        return path, _BOUND_MESSAGES[kw].format(got=show(value), limit=error.validator_value)
    return path, error.message.splitlines()[0][:200]


__all__ = ["MAX_PROBLEMS", "describe", "problems", "show", "validator_for", "where"]

"""Settings: ``.mcx-review.yaml`` (or ``--config FILE``), validated. A review applies the base
revision's file with what the head's adds or tightens (:func:`gates_from_base`).

Every mistake is a :class:`SettingsError` of one line naming the file and the key, e.g.
``.mcx-review.yaml: budgets[2].level: expected 'warn' or 'fail', got 'error'``. :data:`EXAMPLE`
shows every key.

The file's structure is ``settings-schema.json`` beside this module (shipped, so editors can
complete and check the file: ``# yaml-language-server: $schema=...``). :func:`parse_settings`
validates the data against it with jsonschema first (:mod:`mcx_review.schema_check`; a node's
``errorMessage`` words its message), then turns it into :class:`Settings` and checks what a schema
cannot say (limits such as ``+5%``). To add a key: declare it in the schema (with a
``description``), add it to the parser's ``allowed`` set and read it below.

Globs (``configs``, ``exclude``, ``shapes`` keys, a budget's ``configs``) match the repo-relative
posix path: ``*``, ``?``, ``[..]`` within one path component, ``**`` any number of them -- the
same matcher the config discovery uses.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import AbstractSet, Any, Dict, List, Literal, Optional, Sequence, Tuple, Type, TypeVar

import yaml

from mcx_review import schema_check
from mcx_review.errors import McxError
from mcx_review.globs import glob_match
from mcx_review.report.types import METRICS, SettingsInfo

DEFAULT_SOURCE = ".mcx-review.yaml"
SCHEMA_PATH = Path(__file__).with_name("settings-schema.json")
LEVELS: Tuple[Literal["warn"], Literal["fail"]] = ("warn", "fail")
BEHAVIORS = ("update", "new", "delete-and-new")
IMPACTS = ("definitions", "files")

EXAMPLE = """\
configs: ["configs/**/*.py"]          # which files are configs (py / yaml / json)
exclude: ["configs/_deprecated/**"]   # never reviewed
impact: definitions                   # definitions: a code change affects the models that reach a changed
                                      # top-level definition; files: every model that imports the file
shape: null                           # default input H W: null = the config's test pipeline; 224; [224, 224]
shapes:                               # per-config input size, first matching glob wins
  "configs/vision_transformer/*-384.py": 384
comment:
  behavior: update                    # update | new | delete-and-new
  tag: default                        # one sticky comment per tag
limits: warn                          # a config stopped by a resource limit (--timeout, a killed
                                      # worker) at head: warn (default) | fail (exit 1)
metafile: warn                        # a config's metafile FLOPs/Parameters left stale by the change: warn | fail | off
drill_down: 5                         # rows of "where it changed" per config (deepest modules that differ); 0: none
budgets:
  - metric: flops                     # flops | params | activations
    limit: "+5%"                      # relative to base: +5% (growth), -10% (shrinkage)
    level: fail                       # warn | fail (default fail)
  - metric: params
    limit: 25M                        # absolute cap on the head value: 25M, 4.5G, 1200K, 1200
    module: backbone                  # a top-level module instead of the whole model
    configs: "configs/resnet/**"      # glob or list of globs (default: every config)
    level: warn
    message: "ResNet backbones stay under 25M params"
    name: resnet-backbone-params      # how the rule is called in the report (default: derived)
"""

Shape = Tuple[int, int]
Metric = Literal["flops", "params", "activations"]
Level = Literal["warn", "fail"]
_T = TypeVar("_T")
_S = TypeVar("_S", bound=str)


class SettingsError(McxError, ValueError):
    """A settings file that cannot be used; ``str()`` is one line naming the file and the key."""


@dataclass(frozen=True)
class Budget:
    """One budget rule. ``relative``: ``amount`` is a fraction of base (``+5%`` -> 1/20) and
    ``direction`` +1 caps growth, -1 caps shrinkage; absolute: ``amount`` caps the head value."""

    metric: Metric
    limit: str  # as written, e.g. "+5%", "25M"
    relative: bool
    amount: Fraction
    direction: int = 1
    level: Level = "fail"
    module: Optional[str] = None
    configs: Tuple[str, ...] = ()  # globs; empty = every config
    message: Optional[str] = None
    name: Optional[str] = None
    index: int = 0  # position in the file's budgets list

    @property
    def rule(self) -> str:
        """How the report names the rule: ``name``, or e.g. ``flops growth ≤ 5%``,
        ``params of backbone ≤ 25M``."""
        if self.name:
            return self.name
        what = f"{self.metric} of {self.module}" if self.module else self.metric
        if self.relative:
            return f"{what} {'growth' if self.direction > 0 else 'shrinkage'} ≤ {_percent(self.amount)}"
        return f"{what} ≤ {self.limit}"

    def applies_to(self, config_path: str) -> bool:
        return not self.configs or any(glob_match(config_path, g) for g in self.configs)


@dataclass(frozen=True)
class CommentSettings:
    behavior: Literal["update", "new", "delete-and-new"] = "update"
    tag: str = "default"
    login: Optional[str] = None  # accepted in old files, never used: a PR's own settings file must not
    # choose whose comments are edited (the login comes from --bot-login / the bot-login input)


@dataclass(frozen=True)
class Settings:
    configs: Tuple[str, ...] = ("configs/**/*.py",)
    exclude: Tuple[str, ...] = ()
    shape: Optional[Shape] = None
    shapes: Tuple[Tuple[str, Optional[Shape]], ...] = ()  # (glob, shape or None = pipeline), in file order
    comment: CommentSettings = field(default_factory=CommentSettings)
    budgets: Tuple[Budget, ...] = ()
    limits: Level = "warn"  # verdict on a config a resource limit kept from being counted at head
    metafile: Literal["warn", "fail", "off"] = "warn"
    drill_down: int = 5
    impact: Literal["definitions", "files"] = "definitions"
    source: str = DEFAULT_SOURCE
    # which revision's settings the review applied, as the report's "settings" field says it
    # (review.read_change fills it in; report.SettingsInfo)
    origin: Optional[SettingsInfo] = field(default=None, compare=False, hash=False)

    def shape_for(self, config_path: str) -> Optional[Shape]:
        """The input (H, W) to force for this config: the first matching ``shapes`` glob, else
        ``shape``; None means "what the config's test pipeline produces"."""
        for pattern, shape in self.shapes:
            if glob_match(str(config_path), pattern):
                return shape
        return self.shape


# ---------------------------------------------------------------- loading

def load_settings(path: Optional[Path], *, text: Optional[str] = None,
                  source: str = DEFAULT_SOURCE) -> Settings:
    """Parse and validate settings from ``text`` or, when it is None, from ``path``; neither
    gives the defaults. Messages name ``source``, or ``path`` when it is read from disk."""
    if text is None and path is not None:
        source = str(path) if source == DEFAULT_SOURCE else source
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SettingsError(f"{source}: settings file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{source}: cannot read settings ({exc})") from None
    if text is None:
        return Settings(source=source)
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SettingsError(f"{source}: invalid YAML{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{source}: invalid YAML: {exc}") from None
    return parse_settings(data, source=source)


# Every top-level key; settings-schema.json declares the same ones (a test holds them equal).
TOP_KEYS = frozenset({"configs", "exclude", "shape", "shapes", "comment", "budgets", "limits", "metafile", "impact",
                      "drill_down"})


def parse_settings(data: Any, *, source: str = DEFAULT_SOURCE) -> Settings:
    """Validate already-parsed YAML data (None = an empty file = defaults)."""
    if data is None:
        return Settings(source=source)
    found = schema_check.problems(data, SCHEMA_PATH, root="", json_words=False)
    if found:
        raise SettingsError(f"{source}: {found[0]}")
    p = _Parser(source)
    top = p.mapping(data, "", TOP_KEYS)
    kw: Dict[str, Any] = {"source": source}
    if "configs" in top:
        kw["configs"] = p.globs(top["configs"], "configs", allow_empty=False)
    if "exclude" in top:
        kw["exclude"] = p.globs(top["exclude"], "exclude", allow_empty=True)
    if "shape" in top:
        kw["shape"] = p.shape(top["shape"], "shape")
    if "shapes" in top:
        shapes = p.mapping(top["shapes"], "shapes", None)
        kw["shapes"] = tuple((p.glob(k, f"shapes[{k!r}] (the glob)"), p.shape(v, f"shapes[{k!r}]"))
                             for k, v in shapes.items())
    if "comment" in top:
        kw["comment"] = p.comment(top["comment"])
    if "limits" in top:
        kw["limits"] = p.choice(top["limits"], "limits", LEVELS)
    if "metafile" in top:
        level = "off" if top["metafile"] is False else top["metafile"]  # YAML 1.1 reads a bare off as false
        kw["metafile"] = p.choice(level, "metafile", ("warn", "fail", "off"))
    if "drill_down" in top:
        rows = top["drill_down"]
        if not isinstance(rows, int) or isinstance(rows, bool) or not 0 <= rows <= 1000:
            raise p.fail("drill_down", f"expected a number of rows from 0 to 1000, got {_show(rows)}")
        kw["drill_down"] = rows
    if "impact" in top:
        kw["impact"] = p.choice(top["impact"], "impact", IMPACTS)
    if "budgets" in top:
        if top["budgets"] is None:
            kw["budgets"] = ()
        else:
            items = p.typed(top["budgets"], "budgets", list, "a list of budget rules")
            kw["budgets"] = tuple(p.budget(b, i) for i, b in enumerate(items))
    return Settings(**kw)


_STRICTNESS = {"off": 0, "warn": 1, "fail": 2}


def gates_from_base(base: Settings, head: Settings) -> Tuple[Settings, List[str]]:
    """The settings a review of a change applies: every gate from ``base`` (the base revision's
    file: a PR must not relax the rule that would fail it), with what ``head`` adds or tightens --
    its extra ``configs`` globs and budget rules, a stricter ``metafile`` or ``limits`` level.
    What only shapes the report (``drill_down``, ``comment``) is the head's. Returns the settings
    and one line per head addition that applies (for the report)."""
    added: List[str] = []
    new_globs: Tuple[str, ...] = ()
    if head.configs != Settings().configs:  # globs the head's file names (the default adds none)
        new_globs = tuple(g for g in head.configs if g not in base.configs)
    configs = base.configs + new_globs
    added += [f"configs: {g}" for g in new_globs]
    known = {replace(b, index=0) for b in base.budgets}
    extra = [b for b in head.budgets if replace(b, index=0) not in known]
    added += [f"budget {b.rule} ({b.level})" for b in extra]
    budgets = tuple(replace(b, index=i) for i, b in enumerate(base.budgets + tuple(extra)))
    metafile, limits = base.metafile, base.limits
    if _STRICTNESS[head.metafile] > _STRICTNESS[base.metafile]:
        metafile = head.metafile
        added.append(f"metafile: {head.metafile}")
    if _STRICTNESS[head.limits] > _STRICTNESS[base.limits]:
        limits = head.limits
        added.append(f"limits: {head.limits}")
    merged = replace(base, configs=configs, budgets=budgets, metafile=metafile, limits=limits,
                     drill_down=head.drill_down, comment=head.comment)
    return merged, added


class _UniqueKeyLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML is Any: no stubs installed
    """SafeLoader that refuses duplicate keys (plain PyYAML keeps the last one silently)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: Dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
        except TypeError:
            duplicate = False
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen[key] = True
    mapping: Dict[Any, Any] = loader.construct_mapping(node)  # PyYAML is untyped here
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# ---------------------------------------------------------------- limits

_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_ABSOLUTE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)\s*$", re.IGNORECASE)
_RELATIVE = re.compile(r"^\s*([+-])\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


def parse_limit(value: Any) -> Tuple[bool, Fraction, int]:
    """``"+5%"`` -> (True, 1/20, +1); ``"-10%"`` -> (True, 1/10, -1); ``"25M"`` / ``"4.5G"`` /
    ``"1200K"`` / ``1200`` -> (False, exact count, +1). Raises ValueError with the cause."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a limit such as '+5%' or '25M', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"an absolute limit cannot be negative, got {value}")
        return False, Fraction(value), 1
    if isinstance(value, float):
        if not value >= 0 or value == float("inf"):
            raise ValueError(f"an absolute limit must be a finite count >= 0, got {value}")
        return False, Fraction(Decimal(repr(value))), 1
    if not isinstance(value, str):
        raise ValueError(f"expected a limit such as '+5%' or '25M', got {type(value).__name__}")
    m = _RELATIVE.match(value)
    if m:
        amount = Fraction(Decimal(m.group(2))) / 100
        if m.group(1) == "-" and amount >= 1:
            raise ValueError(f"a shrinkage limit must be below 100%, got {value!r}")
        return True, amount, 1 if m.group(1) == "+" else -1
    if value.strip().endswith("%"):
        raise ValueError(f"a relative limit needs a sign: '+{value.strip()}' caps growth, "
                         f"'-{value.strip()}' caps shrinkage; got {value!r}")
    m = _ABSOLUTE.match(value)
    if m:
        try:
            number = Fraction(Decimal(m.group(1)))
        except InvalidOperation:  # pragma: no cover - the regex admits only decimals
            raise ValueError(f"not a number: {value!r}") from None
        return False, number * _SUFFIX[m.group(2).upper()], 1
    raise ValueError(f"expected a relative limit ('+5%', '-10%') or a count ('25M', '4.5G', "
                     f"'1200K', 1200), got {value!r}")


def _percent(amount: Fraction) -> str:
    pct = amount * 100
    return f"{int(pct)}%" if pct.denominator == 1 else f"{float(pct):g}%"


# ---------------------------------------------------------------- validation helpers

class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, cause: str) -> SettingsError:
        return SettingsError(f"{self.source}: {key}: {cause}" if key else f"{self.source}: {cause}")

    def typed(self, value: Any, key: str, kind: Type[_T], what: str) -> _T:
        if not isinstance(value, kind) or isinstance(value, bool):
            raise self.fail(key, f"expected {what}, got {_show(value)}")
        return value

    def mapping(self, value: Any, key: str, allowed: Optional[AbstractSet[str]]) -> Dict[Any, Any]:
        what = "a mapping of settings" if not key else "a mapping"
        out = self.typed(value, key, dict, what)
        if allowed is not None:
            for k in out:
                if k not in allowed:
                    where = f"{key}.{k}" if key else str(k)
                    raise self.fail(where, f"unknown key (expected one of: {', '.join(sorted(allowed))})")
        return out

    def glob(self, value: Any, key: str) -> str:
        text = self.typed(value, key, str, "a glob string")
        if not text.strip():
            raise self.fail(key, "empty glob")
        return text.strip()

    def globs(self, value: Any, key: str, allow_empty: bool) -> Tuple[str, ...]:
        if value is None and allow_empty:
            return ()
        if isinstance(value, str):
            return (self.glob(value, key),)
        items = self.typed(value, key, list, "a glob or a list of globs")
        if not items and not allow_empty:
            raise self.fail(key, "expected at least one glob")
        return tuple(self.glob(v, f"{key}[{i}]") for i, v in enumerate(items))

    def shape(self, value: Any, key: str) -> Optional[Shape]:
        if value is None:
            return None
        if isinstance(value, list) and len(value) in (1, 2):
            dims = value
        elif isinstance(value, int) and not isinstance(value, bool):
            dims = [value]
        else:
            raise self.fail(key, f"expected H, [H] or [H, W] (positive ints) or null, got {_show(value)}")
        for d in dims:
            if not isinstance(d, int) or isinstance(d, bool) or d < 1:
                raise self.fail(key, f"expected positive int sizes, got {_show(value)}")
        return (dims[0], dims[-1])

    def choice(self, value: Any, key: str, options: Sequence[_S]) -> _S:
        if value not in options or not isinstance(value, str):
            expected = " or ".join(repr(o) for o in options) if len(options) == 2 \
                else "one of " + ", ".join(repr(o) for o in options)
            raise self.fail(key, f"expected {expected}, got {_show(value)}")
        return options[options.index(value)]  # the option equal to value, typed as one

    def text(self, value: Any, key: str) -> str:
        text = self.typed(value, key, str, "a string")
        if not text.strip():
            raise self.fail(key, "expected a non-empty string")
        return text.strip()

    def comment(self, value: Any) -> CommentSettings:
        c = self.mapping(value, "comment", {"behavior", "tag", "login"})
        kw: Dict[str, Any] = {}
        if "behavior" in c:
            kw["behavior"] = self.choice(c["behavior"], "comment.behavior", BEHAVIORS)
        if "tag" in c:
            tag = self.text(c["tag"], "comment.tag")
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", tag):
                raise self.fail("comment.tag", f"use 1-64 letters, digits, '.', '_' or '-', got {tag!r}")
            kw["tag"] = tag
        if c.get("login") is not None:
            kw["login"] = self.text(c["login"], "comment.login")
        return CommentSettings(**kw)

    def budget(self, value: Any, i: int) -> Budget:
        key = f"budgets[{i}]"
        b = self.mapping(value, key, {"metric", "limit", "level", "module", "configs", "message", "name"})
        for required in ("metric", "limit"):
            if required not in b:
                raise self.fail(key, f"missing key '{required}'")
        metric = self.choice(b["metric"], f"{key}.metric", METRICS)
        try:
            relative, amount, direction = parse_limit(b["limit"])
        except ValueError as exc:
            raise self.fail(f"{key}.limit", str(exc)) from None
        limit = b["limit"].strip() if isinstance(b["limit"], str) else str(b["limit"])
        return Budget(
            metric=metric,
            limit=limit, relative=relative, amount=amount, direction=direction,
            level=self.choice(b["level"], f"{key}.level", LEVELS) if "level" in b else "fail",
            module=self.text(b["module"], f"{key}.module") if b.get("module") is not None else None,
            configs=self.globs(b["configs"], f"{key}.configs", allow_empty=False) if "configs" in b else (),
            message=self.text(b["message"], f"{key}.message") if b.get("message") is not None else None,
            name=self.text(b["name"], f"{key}.name") if b.get("name") is not None else None,
            index=i,
        )


def _show(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    if isinstance(value, (dict, list)) and len(text) > 60:
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    return text


__all__ = ["Budget", "CommentSettings", "EXAMPLE", "Settings", "SettingsError", "load_settings",
           "parse_limit", "parse_settings"]

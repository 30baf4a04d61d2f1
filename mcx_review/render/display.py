"""The display model: the report as rows, cells and notes, decided once. Pure.

:func:`build` turns a report into a :class:`Display` in one pass: the headline, one
:class:`ConfigView` per shown and per unchanged config (paths shortened, number cells formatted,
status notes, reasons, per-module and where-it-changed rows, metafile verdicts, budget breaches,
errors, ops not counted, warnings) and the :class:`Footer`. The Markdown and text renderers only
format that tree; comparison and metafile logic are never called from them. Cells are plain text;
escaping and layout are the renderers' business. Imports neither torch nor fvcore (the fork-safe
comment job renders without them).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from mcx_review.metafile import verdicts as metafile
from mcx_review.render.cells import (FAILED, PENDING, Row, cell, depth_rows, module_rows,  # noqa: F401 - re-exported
                                     number_cells, numbers_cells, side_has_error, stacked_pair, where_more, where_rows)
from mcx_review.render.metafile_lines import MetafileLine, metafile_lines, metafile_problems  # noqa: F401
from mcx_review.report.compare import head_failed, limit_of
from mcx_review.report.types import METRIC_NAMES, METRICS
from mcx_review.units import ARROW, format_count, format_delta, format_percent, format_shape

def fails(entry: Mapping[str, Any]) -> bool:
    """Fails the review: newly broken at head, a budget at fail level, or a metafile left stale
    with ``metafile: fail``."""
    return (head_failed(entry) or any(b.get("level") == "fail" for b in entry.get("budgets") or [])
            or metafile.fails(entry))


def limited(entry: Mapping[str, Any]) -> bool:
    """A resource limit (timeout, killed worker) kept a side from being counted: a warning."""
    return bool(limit_of(entry, "head") or limit_of(entry, "base"))


def error_label(entry: Mapping[str, Any], error: Mapping[str, Any]) -> Optional[Tuple[str, bool]]:
    """(how to call one error, whether it fails the review); None when another line says it."""
    limit = error.get("limit")
    if limit:  # compared by category, not by text: one line when both sides hit a limit
        other = limit_of(entry, "base" if error.get("side") == "head" else "head")
        if error.get("side") == "base" and other:
            return None
        where = "base and head" if other else str(error.get("side"))
        failing = error.get("side") == "head" and limit.get("level") == "fail" and not other
        named = str(limit.get("limit", "?"))
        if other and other.get("limit") != limit.get("limit"):
            named = f"base: {other.get('limit', '?')}; head: {named}"
        return f"not counted at {where}: limit reached ({named})", failing
    messages = {side: {e.get("message") for e in entry.get("errors") or [] if e.get("side") == side}
                for side in ("base", "head")}
    if error.get("side") == "head":
        if error.get("message") in messages["base"]:
            return "fails at base and head (not this change)", False
        return "fails at head", True
    if error.get("message") in messages["head"]:
        return None
    return ("failed at base" if messages["head"] else "failed at base (the change fixes it)"), False


def warns(entry: Mapping[str, Any]) -> bool:
    """A warning: a budget at warn level or a metafile left stale (``metafile: warn``)."""
    return any(b.get("level") == "warn" for b in entry.get("budgets") or []) or metafile.warns(entry)


def relative_flops_change(entry: Mapping[str, Any]) -> Optional[float]:
    base, head = entry.get("base"), entry.get("head")
    if not base or not head:
        return None
    change = int(head["flops"]) - int(base["flops"])
    if not change:
        return 0.0
    return abs(change) / int(base["flops"]) if base["flops"] else float("inf")


def _order(entry: Mapping[str, Any]) -> Tuple[int, float, bool, str]:
    """Failures first, then the largest relative FLOPs change (an edited config before the ones
    inheriting the same change), then added, removed; by path."""
    rel = relative_flops_change(entry)
    group = 0 if fails(entry) else 1 if rel is not None else 2 if entry.get("status") == "added" else 3
    return group, -(rel or 0.0), "changed" not in (entry.get("reasons") or []), entry.get("path", "")


def split_configs(report: Mapping[str, Any]) -> Tuple[List[Mapping[str, Any]], List[Mapping[str, Any]]]:
    """(configs to show in the table, ordered; unchanged configs, by path)."""
    configs = report.get("configs") or []
    shown = sorted((c for c in configs if c.get("status") != "unchanged"), key=_order)
    unchanged = sorted((c for c in configs if c.get("status") == "unchanged"), key=lambda c: c.get("path", ""))
    return shown, unchanged


def largest_flops_change(configs: Iterable[Mapping[str, Any]]) -> Optional[Mapping[str, Any]]:
    """The measured-on-both-sides config whose FLOPs moved most (relative, then absolute)."""
    best, best_key = None, None
    for c in configs:
        rel = relative_flops_change(c)
        if not rel:
            continue
        key = (rel, abs(int(c["head"]["flops"]) - int(c["base"]["flops"])), "changed" in (c.get("reasons") or []))
        if best_key is None or key > best_key:
            best, best_key = c, key
    return best


def flops_change_text(entry: Mapping[str, Any]) -> str:
    base, head = int(entry["base"]["flops"]), int(entry["head"]["flops"])
    return format_percent(head - base, base) if base else format_delta(base, head)


def count_summary(configs: Sequence[Mapping[str, Any]]) -> str:
    """``'3 configs changed, 1 added, 1 could not be counted'`` (unchanged not included; an error
    at base only reads "fixed")."""
    order = (("changed", "changed"), ("renamed", "renamed"), ("added", "added"), ("removed", "removed"),
             ("fixed", "fixed"), ("error", "could not be counted"))

    def status(c: Mapping[str, Any]) -> str:  # "fixed": broken at base only, counted at head
        if c.get("status") == "error" and not side_has_error(c, "head") and not limit_of(c, "base"):
            return "fixed"
        return str(c.get("status"))

    parts = []
    for key, words in order:
        n = sum(1 for c in configs if status(c) == key)
        if n:
            parts.append((n, words))
    if not parts:
        return ""
    (n, words), rest = parts[0], parts[1:]
    head = f"{n} config{'s' if n != 1 else ''} {words}"
    return ", ".join([head] + [f"{n} {words}" for n, words in rest])


def display_prefix(configs: Sequence[Mapping[str, Any]]) -> str:
    """The first directory every config path shares (``configs/``), left out of the table."""
    paths: List[str] = [p for c in configs for p in (c.get("path"), c.get("old_path")) if p]
    if not paths:
        return ""
    first = paths[0].split("/", 1)[0]
    if all("/" in p and p.split("/", 1)[0] == first for p in paths):
        return first + "/"
    return ""


def short(path: str, prefix: str) -> str:
    return path[len(prefix):] if prefix and path.startswith(prefix) else path


_USES = re.compile(r"^uses (?P<name>\S+) \((?P<file>.+)\)$")


class Reason(NamedTuple):
    """Why a config is under review, in parts: ``word`` (``'inherits'``, ``'uses code in'``,
    ``'uses'``, ``'edited'``), the registered ``name`` it uses (or None) and the ``target`` file."""

    word: str
    name: Optional[str]
    target: Optional[str]


def reason_view(reason: str) -> Reason:
    """``'uses ResNet (mmcls/models/backbones/resnet.py)'`` -> ``Reason('uses', 'ResNet', 'mmcls/...')``;
    the other forms as :func:`reason_parts`."""
    m = _USES.match(reason)
    if m:
        return Reason("uses", m.group("name"), m.group("file"))
    word, target = reason_parts(reason)
    return Reason(word, None, target)


def reason_parts(reason: str) -> Tuple[str, Optional[str]]:
    """``'inherits X'`` -> ``('inherits', 'X')``; ``'changed'`` -> ``('edited', None)``;
    ``'uses NAME (FILE)'`` -> ``('uses NAME', 'FILE')``."""
    m = _USES.match(reason)
    if m:
        return f"uses {m.group('name')}", m.group("file")
    for prefix in ("inherits ", "uses code in "):
        if reason.startswith(prefix):
            return prefix.strip(), reason[len(prefix):]
    if reason == "changed":
        return "edited", None
    return reason, None


def indirect_reasons(entry: Mapping[str, Any]) -> List[str]:
    """Reasons other than the config itself being edited (the interesting ones)."""
    return [r for r in entry.get("reasons") or [] if r != "changed"]


def short_sha(rev: Optional[Mapping[str, Any]]) -> str:
    sha = (rev or {}).get("sha")
    return sha[:7] if sha else "?"


def forwards(entry: Mapping[str, Any]) -> List[str]:
    return sorted({s.get("forward", "extract_feat") for s in (entry.get("base"), entry.get("head")) if s})


def unsupported_ops(entry: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """[(op, calls)] over both sides: ``'×18'``, ``'×16 → ×33'``, ``'×2 (head only)'``; the ops
    with most calls first."""
    base, head = entry.get("base"), entry.get("head")
    b = (base or {}).get("unsupported_ops") or {}
    h = (head or {}).get("unsupported_ops") or {}
    both = base is not None and head is not None
    out = []
    for op in sorted(set(b) | set(h), key=lambda o: (-max(b.get(o, 0), h.get(o, 0)), o)):
        nb, nh = b.get(op), h.get(op)
        if nb is None or nh is None:
            text = f"\u00d7{nb or nh}" + (f" ({'head' if nb is None else 'base'} only)" if both else "")
        elif nb == nh:
            text = f"\u00d7{nh}"
        else:
            text = f"\u00d7{nb} {ARROW} \u00d7{nh}"
        out.append((op, text))
    return out


def uncalled_by_side(entry: Mapping[str, Any]) -> List[Tuple[str, List[str]]]:
    """[(side label, unexpected uncalled modules)]; ``'base and head'`` when equal."""
    b = (entry.get("base") or {}).get("uncalled_modules") or []
    h = (entry.get("head") or {}).get("uncalled_modules") or []
    if b and b == h:
        return [("base and head", list(h))]
    return [(side, list(mods)) for side, mods in (("base", b), ("head", h)) if mods]


# Warnings the worker derives from fields the renderers show anyway.
_DERIVED = (("fvcore could not count:", "unsupported_ops"), ("modules never called:", "uncalled_modules"))


def warnings_by_message(entry: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """[(side label, message)]: one line per distinct message (``'base and head'`` when both sides
    say it), without the ones that repeat unsupported ops / uncalled modules."""
    sides: Dict[str, List[str]] = {}
    for w in entry.get("warnings") or []:
        side, message = str(w.get("side", "?")), str(w.get("message", ""))
        stats = entry.get(side) or {}
        if any(message.startswith(start) and stats.get(key) for start, key in _DERIVED):
            continue
        if side not in sides.setdefault(message, []):
            sides[message].append(side)
    return [(" and ".join(s), m) for m, s in sides.items()]



def deploy_note(entry: Mapping[str, Any]) -> Optional[str]:
    """``"deploy form: 1.36G"`` (``"deploy form: 1.36G → 1.5G"`` when it changed): the FLOPs of the
    re-parameterised inference form, when the model has one (analysis.count_deploy)."""
    base = (entry.get("base") or {}).get("deploy")
    head = (entry.get("head") or {}).get("deploy")
    if base and head and base["flops"] != head["flops"]:
        return f"deploy form: {format_count(base['flops'])} {ARROW} {format_count(head['flops'])}"
    either = head or base
    return f"deploy form: {format_count(either['flops'])}" if either else None


_RULE_WORDS = {"backbone img_size": "the backbone's img_size", "data preprocessor size": "the data preprocessor's size",
               "default 224": "no declared size, 224"}


def input_rule_notes(configs: Sequence[Mapping[str, Any]], prefix: str) -> List[Tuple[str, List[str]]]:
    """(where the size came from, configs) per input-size rule other than the test pipeline or a
    forced shape: ``("the backbone's img_size", ["sam/x.py", ...])``. Empty when every measured
    side took its size from its test pipeline."""
    by_rule: Dict[str, List[str]] = {}
    for entry in configs:
        for side in ("base", "head"):
            rule = (entry.get(side) or {}).get("input_rule")
            if rule in _RULE_WORDS:
                paths = by_rule.setdefault(_RULE_WORDS[rule], [])
                if short(entry["path"], prefix) not in paths:
                    paths.append(short(entry["path"], prefix))
    return list(by_rule.items())


def counting_notes(entry: Mapping[str, Any]) -> List[str]:
    """How a detector was counted: the second stage on a fixed number of proposals (NMS keeps an
    arbitrary number on untrained weights), and compiled mmcv ops run on torchvision stand-ins."""
    sides = [s for s in (entry.get("base"), entry.get("head")) if s]
    notes = []
    proposals = list(dict.fromkeys(int(s["proposals"]) for s in sides if s.get("proposals")))  # base, head
    if proposals:
        notes.append(f"second stage on {f' {ARROW} '.join(str(n) for n in proposals)} proposals")
    ops = sorted({str(op) for s in sides for op in s.get("mmcv_stand_ins") or []})
    if ops:
        notes.append("mmcv ops on torchvision stand-ins: " + ", ".join(ops))
    return notes


def status_notes(entry: Mapping[str, Any]) -> List[str]:
    """What a reader must know about a config besides its numbers (shared by both renderers)."""
    notes: List[str] = []
    if entry.get("status") in ("added", "removed"):
        notes.append(str(entry["status"]))
    head_limit, base_limit = limit_of(entry, "head"), limit_of(entry, "base")
    if head_limit:
        notes.append(f"not counted at {'base and head' if base_limit else 'head'}: limit reached")
    elif head_failed(entry):
        notes.append("fails at head")
    elif side_has_error(entry, "head"):
        notes.append("fails at base and head")
    elif base_limit:
        notes.append("not counted at base: limit reached")
    elif side_has_error(entry, "base"):
        notes.append("broken at base, fixed here")
    if entry.get("pending"):
        notes.append("pending: " + " and ".join(str(p) for p in entry["pending"]))
    if "tensor" in forwards(entry):
        notes.append("forward(mode='tensor')")
    notes += counting_notes(entry)
    deploy = deploy_note(entry)
    if deploy:
        notes.append(deploy)
    status = (entry.get("metafile") or {}).get("status")
    if status == "stale":
        notes.append("metafile stale")
    elif status == "no entry" and entry.get("status") in ("added", "renamed"):
        notes.append("no metafile entry")
    return notes


# ---------------------------------------------------------------- headline

@dataclass(frozen=True)
class Headline:
    """What the first line says: ``summary`` (``'3 configs changed, 1 added'``, '' when nothing
    but unchanged configs), the largest FLOPs change (its text and the config's file name), how
    many configs fail, are over a warn budget (and do not fail), were not counted because a
    resource limit was reached (and do not fail), and leave their metafile stale."""

    summary: str
    unchanged: int
    top_change: Optional[str]
    top_name: Optional[str]
    failing: int
    warning: int
    stale_metafiles: int
    limited: int = 0


def headline(shown: Sequence[Mapping[str, Any]], unchanged: Sequence[Mapping[str, Any]]) -> Headline:
    top = largest_flops_change(shown)
    return Headline(
        summary=count_summary(shown), unchanged=len(unchanged),
        top_change=flops_change_text(top) if top is not None else None,
        top_name=top["path"].rsplit("/", 1)[-1] if top is not None else None,
        failing=sum(1 for c in shown if fails(c)),
        warning=sum(1 for c in shown if any(b.get("level") == "warn" for b in c.get("budgets") or [])
                    and not fails(c)),
        stale_metafiles=sum(1 for c in shown if (c.get("metafile") or {}).get("status") == "stale"),
        limited=sum(1 for c in shown if limited(c) and not fails(c)))


# ---------------------------------------------------------------- the display model, built in one pass

class ErrorLine(NamedTuple):
    """An error to show: ``label`` (``'fails at head'``), whether it ``failing`` the review, whether
    a resource ``limit`` caused it, and the worker's ``message``."""

    label: str
    failing: bool
    limit: bool
    message: str


class BudgetLine(NamedTuple):
    """A budget breach: ``level`` (warn/fail), ``metric`` (report key) and display ``metric_name``,
    ``module`` (or None for the whole model), ``value`` and ``base`` (None when not compared),
    ``limit`` as written, ``rule`` name and the rule's ``message``."""

    level: str
    metric: str
    metric_name: str
    module: Optional[str]
    value: int
    base: Optional[int]
    limit: Optional[str]
    rule: str
    message: Optional[str]


@dataclass(frozen=True)
class ConfigView:
    """One config as every renderer shows it; every path in it (its own, reasons' and metafiles'
    targets) is shortened by the report's common prefix."""

    path: str
    old_path: Optional[str]
    fails: bool
    warns: bool  # a warn budget, a stale metafile at warn level, or a resource limit
    notes: List[str]  # status notes ('added', 'fails at head', 'metafile stale', ...)
    reasons: List[Reason]  # why under review, other than being edited
    cells: List[str]  # [input, FLOPs, params, activations]: one line each
    stacked: List[str]  # [FLOPs, params, activations]: 'base → head' and the delta on a second line
    modules: List[Row]  # per-module rows (every module to --depth N, else the top-level ones)
    depth_modules: List[Row]  # --depth N rows only ([] without --depth)
    where: List[Row]  # where it changed, deepest differing modules first
    where_more: int
    metafile: List[MetafileLine]
    budgets: List[BudgetLine]
    errors: List[ErrorLine]
    unsupported_ops: List[Tuple[str, str]]
    uncalled: List[Tuple[str, List[str]]]
    warnings: List[Tuple[str, str]]
    figures: Optional[Tuple[str, str, str]]  # unchanged configs: (input, FLOPs, params)


@dataclass(frozen=True)
class Footer:
    """Where the numbers come from: revisions, input rule, tools."""

    base_sha: str
    base_rev: str
    merge_base_with: str  # base_rev, '' when it is the base SHA itself, 7 characters when a full SHA
    head_sha: str
    head_rev: str
    head_kind: str
    shape: Optional[str]  # the forced input size, formatted; None: each config's own
    shard: Optional[Tuple[int, int]]
    tools: List[Tuple[str, str]]  # (name, version), mcx-review, torch, fvcore first
    tensor_forward: bool  # a shown config was measured on forward(mode='tensor')
    # input sizes not from a test pipeline: (where from, configs), see input_rule_notes
    input_rules: List[Tuple[str, List[str]]] = field(default_factory=list)
    settings: Optional[Mapping[str, Any]] = None  # the report's "settings": which revision's applied


@dataclass(frozen=True)
class Display:
    """The whole report as rows, cells and notes: what the Markdown and text renderers format."""

    headline: Headline
    shown: List[ConfigView]
    unchanged: List[ConfigView]
    prefix: str
    depth: Optional[int]
    footer: Footer
    metafile_problems: List[str]

    @property
    def empty(self) -> bool:
        return not self.shown and not self.unchanged


def _budget_line(b: Mapping[str, Any]) -> BudgetLine:
    metric = str(b.get("metric", ""))
    return BudgetLine(level=str(b.get("level", "warn")), metric=metric, metric_name=METRIC_NAMES.get(metric, metric),
                      module=b.get("module") or None, value=int(b["value"]),
                      base=int(b["base"]) if b.get("base") is not None else None,
                      limit=str(b["limit"]) if b.get("limit") else None, rule=str(b.get("rule", "?")),
                      message=str(b["message"]) if b.get("message") else None)


def _errors(entry: Mapping[str, Any]) -> List[ErrorLine]:
    out = []
    for e in entry.get("errors") or []:
        labelled = error_label(entry, e)
        if labelled is not None:
            out.append(ErrorLine(labelled[0], labelled[1], bool(e.get("limit")), str(e.get("message", ""))))
    return out


def _figures(entry: Mapping[str, Any]) -> Optional[Tuple[str, str, str]]:
    stats = entry.get("head") or entry.get("base")
    if not stats:
        return None
    return format_shape(stats.get("input_shape")), format_count(stats["flops"]), format_count(stats["params"])


def _short_reason(r: Reason, prefix: str) -> Reason:
    return r._replace(target=short(r.target, prefix)) if r.target else r


def config_view(entry: Mapping[str, Any], prefix: str, depth: Optional[int] = None) -> ConfigView:
    depth_modules = depth_rows(entry, depth)
    return ConfigView(
        path=short(entry["path"], prefix),
        old_path=short(entry["old_path"], prefix) if entry.get("old_path") else None,
        fails=fails(entry), warns=warns(entry) or limited(entry), notes=status_notes(entry),
        reasons=[_short_reason(reason_view(r), prefix) for r in indirect_reasons(entry)],
        cells=number_cells(entry), stacked=[cell(entry, m, format_count, stacked_pair) for m in METRICS],
        modules=depth_modules or module_rows(entry), depth_modules=depth_modules,
        where=where_rows(entry), where_more=where_more(entry),
        metafile=[m._replace(file=short(m.file, prefix)) if m.file else m for m in metafile_lines(entry)],
        budgets=[_budget_line(b) for b in entry.get("budgets") or []], errors=_errors(entry),
        unsupported_ops=unsupported_ops(entry), uncalled=uncalled_by_side(entry),
        warnings=warnings_by_message(entry), figures=_figures(entry))


def _footer(report: Mapping[str, Any], shown: Sequence[Mapping[str, Any]], prefix: str = "") -> Footer:
    base, head = report.get("base") or {}, report.get("head") or {}
    tool = report.get("tool") or {}
    first = ("mcx-review", "torch", "fvcore")
    names = [n for n in first if n in tool] + [n for n in tool if n not in first]
    shape = report.get("shape")
    shard = report.get("shard")
    rev = str(base.get("rev") or "")
    merge_base_with = rev
    if re.fullmatch(r"[0-9a-fA-F]{40}", rev):  # a full SHA (the action passes the PR's base commit)
        merge_base_with = "" if rev.lower() == str(base.get("sha") or "").lower() else rev[:7]
    return Footer(base_sha=short_sha(base), base_rev=rev, merge_base_with=merge_base_with, head_sha=short_sha(head),
                  head_rev=str(head.get("rev") or ""), head_kind=str(head.get("kind", "commit")),
                  shape=format_shape(shape) if shape else None,
                  shard=(int(shard[0]), int(shard[1])) if shard else None,
                  tools=[(str(n), str(tool[n])) for n in names],
                  tensor_forward=any("tensor" in forwards(c) for c in shown),
                  input_rules=input_rule_notes(report.get("configs") or [], prefix),
                  settings=report.get("settings"))


def build(report: Mapping[str, Any]) -> Display:
    """The report as a :class:`Display`: every decision of what to show, made once."""
    shown, unchanged = split_configs(report)
    prefix = display_prefix(report.get("configs") or [])
    depth = report.get("depth")
    return Display(headline=headline(shown, unchanged),
                   shown=[config_view(c, prefix, depth) for c in shown],
                   unchanged=[config_view(c, prefix) for c in unchanged],
                   prefix=prefix, depth=depth, footer=_footer(report, shown, prefix),
                   metafile_problems=metafile_problems(report))

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
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from mcx_review.metafile import verdicts as metafile
from mcx_review.report import module_tree
from mcx_review.report.compare import head_failed, limit_of
from mcx_review.report.types import METRIC_NAMES, METRICS
from mcx_review.units import (ARROW, DASH, format_change, format_count, format_delta, format_percent,
                              format_shape, format_shapes)

FAILED = "\u2717"  # in a number cell: this side could not be counted
PENDING = "\u2026"  # in a number cell: another shard measures this side

Row = Tuple[str, Optional[str], List[str]]  # (module, 'base only' / 'head only' / None, [FLOPs, params, activations])


def side_has_error(entry: Mapping[str, Any], side: str) -> bool:
    return any(e.get("side") == side for e in entry.get("errors") or [])


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


def _value(entry: Mapping[str, Any], side: str, key: str) -> Any:
    stats = entry.get(side)
    return stats.get(key) if stats else None


def _side_mark(entry: Mapping[str, Any], side: str) -> Optional[str]:
    if entry.get(side) is None:
        if side_has_error(entry, side):
            return FAILED
        if side in (entry.get("pending") or []):
            return PENDING
    return None


def cell(entry: Mapping[str, Any], key: str, fmt_one: Callable[[Any], str],
         fmt_pair: Callable[[Any, Any], str]) -> str:
    """One number cell; a side that failed (``✗``) or is pending (``…``) shows as such."""
    base, head = _value(entry, "base", key), _value(entry, "head", key)
    bmark, hmark = _side_mark(entry, "base"), _side_mark(entry, "head")
    if bmark or hmark:
        left = bmark or (fmt_one(base) if base is not None else None)
        right = hmark or (fmt_one(head) if head is not None else None)
        return f"{left} {ARROW} {right}" if left and right else (left or right or DASH)
    return fmt_pair(base, head)


def number_cells(entry: Mapping[str, Any]) -> List[str]:
    """[input, FLOPs, params, activations] for one config: ``base → head (Δ, %)``, one value when
    equal or one-sided, ``✗`` for a side that could not be counted, ``…`` for a pending one."""
    cells = [cell(entry, "input_shape", format_shape, format_shapes)]
    for m in METRICS:
        cells.append(cell(entry, m, format_count, format_change))
    return cells


def module_rows(entry: Mapping[str, Any]) -> List[Tuple[str, Optional[str], List[str]]]:
    """(module name, 'base only'/'head only'/None, [FLOPs, params, activations]) per top-level
    module, head order then base-only ones; an uncalled module's FLOPs/activations read ``–``."""
    bmods = (entry.get("base") or {}).get("modules") or {}
    hmods = (entry.get("head") or {}).get("modules") or {}
    names = sorted(dict.fromkeys([*hmods, *bmods]), key=_module_rank)
    both = entry.get("base") is not None and entry.get("head") is not None
    rows = []
    for name in names:
        b, h = bmods.get(name), hmods.get(name)
        where = None
        if both and b is None:
            where = "head only"
        elif both and h is None:
            where = "base only"
        rows.append((name, where, [_module_cell(b, h, m) for m in METRICS]))
    return rows


_MODULE_ORDER = ("data_preprocessor", "backbone", "neck", "head")


def _module_rank(name: str) -> int:
    """mm models' call order first (a JSON report with sorted keys loses model order); the rest
    keep their order (sorted() is stable)."""
    return _MODULE_ORDER.index(name) if name in _MODULE_ORDER else len(_MODULE_ORDER)


def _module_value(mod: Optional[Mapping[str, Any]], metric: str) -> "int | str | None":
    if mod is None:
        return None
    if metric != "params" and not mod.get("called", True):
        return DASH
    return int(mod.get(metric, 0))


def numbers_cells(b: Optional[Mapping[str, Any]], h: Optional[Mapping[str, Any]]) -> List[str]:
    """[FLOPs, params, activations] cells of one module, base numbers ``b`` and head ``h``
    (either None where the module is absent), as the module table shows them."""
    return [_module_cell(b, h, m) for m in METRICS]


def _module_cell(b: Optional[Mapping[str, Any]], h: Optional[Mapping[str, Any]], metric: str) -> str:
    bv, hv = _module_value(b, metric), _module_value(h, metric)
    if isinstance(bv, str) or isinstance(hv, str):
        one = [format_count(v) if isinstance(v, int) else v for v in (bv, hv) if v is not None]
        return one[0] if len(one) == 1 or one[0] == one[1] else f"{one[0]} {ARROW} {one[1]}"
    return format_change(bv, hv)


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


# ---------------------------------------------------------------- where it changed, --depth

def _numbers(entry: Mapping[str, Any], side: str, module: str, numbers: Optional[Mapping[str, Any]]
             ) -> Optional[Mapping[str, Any]]:
    """A module's numbers as the module table takes them: ``called`` from its top-level module
    (a head that never runs under ``extract_feat`` shows ``–`` for FLOPs and activations)."""
    if not numbers:
        return None
    top = ((entry.get(side) or {}).get("modules") or {}).get(module.split(".")[0]) or {}
    return dict(numbers, called=top.get("called", True))


def _where_label(row: Mapping[str, Any]) -> Optional[str]:
    if row.get("base") is None:
        return "head only"
    if row.get("head") is None:
        return "base only"
    return None


def where_rows(entry: Mapping[str, Any]) -> List[Row]:
    """Where it changed: the deepest modules whose numbers differ, largest FLOPs change first
    (``('backbone.layer3', None, ['1.163G → 2.817G (+1.654G, +142.2%)', ...])``)."""
    rows = (entry.get("where") or {}).get("rows") or []
    return [(str(r["module"]), _where_label(r), _cells(entry, r)) for r in rows]


def _cells(entry: Mapping[str, Any], row: Mapping[str, Any]) -> List[str]:
    name = str(row["module"])
    return numbers_cells(_numbers(entry, "base", name, row.get("base")), _numbers(entry, "head", name, row.get("head")))


def where_more(entry: Mapping[str, Any]) -> int:
    """How many more modules differ than :func:`where_rows` lists."""
    return int((entry.get("where") or {}).get("more") or 0)


def depth_rows(entry: Mapping[str, Any], depth: Optional[int]) -> List[Row]:
    """``--depth N``: every module to depth N, base → head, from the trees the report kept
    (empty when it kept none)."""
    base, head = entry.get("base") or {}, entry.get("head") or {}
    if not depth or ("tree" not in base and "tree" not in head):
        return []
    both = bool(entry.get("base")) and bool(entry.get("head"))
    out = []
    for r in module_tree.depth_rows(base.get("tree"), head.get("tree"), depth):
        label = _where_label(r) if both else None
        out.append((str(r["module"]), label, _cells(entry, r)))
    return out


# ---------------------------------------------------------------- metafile verdicts

class MetafileLine(NamedTuple):
    """One metafile verdict to show: ``status`` (metafile.py's words), ``label`` for a reader,
    the entry (``name`` in ``file``, None for a config-level line) and ``details`` such as
    ``'FLOPs: metafile says 0.56G, measured 1.164G (+107.8%)'``."""

    status: str
    label: str
    name: Optional[str]
    file: Optional[str]
    details: List[str]


_LABELS = {"stale": "metafile stale", "legacy": "metafile already off at base (not this change)",
           "fixed": "metafile agrees now (was off at base)", "agrees": "metafile agrees",
           "no entry": "no metafile entry", "not compared": "metafile not compared"}


def metafile_lines(entry: Mapping[str, Any]) -> List[MetafileLine]:
    """What a reader should see of a config's metafile verdict: each entry that is stale, legacy
    or fixed with its figures; one line when all agree; "no entry" for an added or renamed config;
    "not compared" with the reason (input forced)."""
    v = entry.get("metafile") or {}
    status = v.get("status")
    if not status:
        return []
    if status == "no entry":
        return [MetafileLine(status, _LABELS[status], None, None, [])] \
            if entry.get("status") in ("added", "renamed") else []
    if status == "not compared":
        note = v.get("note")
        return [MetafileLine(status, _LABELS[status] + (f" ({note})" if note else ""), None, None, [])] \
            if note else []
    lines = []
    for e in v.get("entries") or []:
        problems = [f"{metafile.METRIC_KEYS[c['metric']]}: {c['problem']}" for c in e.get("checks") or []
                    if c.get("problem")]
        if e.get("status") in ("stale", "legacy", "fixed"):
            wrong = [c for c in e.get("checks") or [] if "agrees" in c and
                     (not c["agrees"] or (e["status"] == "fixed" and c.get("base_agrees") is False))]
            details = [_legacy_part(metafile.says(c)) if e["status"] == "stale" and c.get("base_agrees") is False
                       else metafile.says(c) for c in wrong if not c["agrees"]] or \
                [f"{metafile.METRIC_KEYS[c['metric']]}: {c['published']} agrees" for c in wrong]
            lines.append(MetafileLine(e["status"], _LABELS[e["status"]], e.get("name"), e.get("file"),
                                      details + problems))
        elif problems:
            lines.append(MetafileLine("not compared", _LABELS["not compared"], e.get("name"), e.get("file"), problems))
    lines = _grouped(lines)
    if not lines and status == "agrees":
        entries = v.get("entries") or []
        one = entries[0] if len(entries) == 1 else {}
        lines.append(MetafileLine("agrees", _LABELS["agrees"], one.get("name"), one.get("file"), []))
    if v.get("note") and lines:  # e.g. the entry still names a renamed config's old path
        lines[0] = lines[0]._replace(details=lines[0].details + [str(v["note"])])
    return lines


def _legacy_part(text: str) -> str:
    """``'… (+90.1%)'`` -> ``'… (+90.1%; already off at base)'``: this figure was wrong before the change."""
    return text[:-1] + "; already off at base)" if text.endswith(")") else text + " (already off at base)"


def _grouped(lines: List[MetafileLine]) -> List[MetafileLine]:
    """Entries of one config that say the same (a config published under several names, e.g. with
    and without EMA weights) as one line naming them all."""
    out: Dict[Tuple[str, Optional[str], Tuple[str, ...]], MetafileLine] = {}
    for line in lines:
        key = (line.status, line.file, tuple(line.details))
        if key in out and line.name:
            out[key] = out[key]._replace(name=f"{out[key].name}, {line.name}")
        else:
            out.setdefault(key, line)
    return list(out.values())


def metafile_problems(report: Mapping[str, Any]) -> List[str]:
    """Metafiles that could not be read (``'configs/x/metafile.yml: invalid YAML at line 3: ...'``)."""
    return [str(p) for p in report.get("metafile_problems") or []]


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


def _stacked_pair(base: Optional[int], head: Optional[int]) -> str:
    if base is None or head is None or base == head:
        one = head if base is None else base
        return format_count(one) if one is not None else DASH
    return f"{format_count(base)} {ARROW} {format_count(head)}\n{format_delta(base, head)}"


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
        cells=number_cells(entry), stacked=[cell(entry, m, format_count, _stacked_pair) for m in METRICS],
        modules=depth_modules or module_rows(entry), depth_modules=depth_modules,
        where=where_rows(entry), where_more=where_more(entry),
        metafile=[m._replace(file=short(m.file, prefix)) if m.file else m for m in metafile_lines(entry)],
        budgets=[_budget_line(b) for b in entry.get("budgets") or []], errors=_errors(entry),
        unsupported_ops=unsupported_ops(entry), uncalled=uncalled_by_side(entry),
        warnings=warnings_by_message(entry), figures=_figures(entry))


def _footer(report: Mapping[str, Any], shown: Sequence[Mapping[str, Any]]) -> Footer:
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
                  tensor_forward=any("tensor" in forwards(c) for c in shown))


def build(report: Mapping[str, Any]) -> Display:
    """The report as a :class:`Display`: every decision of what to show, made once."""
    shown, unchanged = split_configs(report)
    prefix = display_prefix(report.get("configs") or [])
    depth = report.get("depth")
    return Display(headline=headline(shown, unchanged),
                   shown=[config_view(c, prefix, depth) for c in shown],
                   unchanged=[config_view(c, prefix) for c in unchanged],
                   prefix=prefix, depth=depth, footer=_footer(report, shown),
                   metafile_problems=metafile_problems(report))

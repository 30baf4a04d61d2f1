"""The report as Markdown: the PR comment body (without the hidden marker), the step summary.

Pure. Layout: headline, totals table, budget breaches, per-module tables folded, unchanged
configs folded, "could not count", footer. Anything that comes from the repository or from an
exception (paths, module and op names, messages, rule names) goes through ``code`` or ``esc``:
every Markdown/HTML-active character becomes a numeric entity and newlines become a visible mark,
so it cannot break a table, open a code span or inject HTML; ``code`` wraps it in ``<code>``
(GitHub never turns ``@name`` inside code into a mention) and ``esc`` breaks ``@name`` with a word
joiner. Over ``max_chars``, parts are cut in this order: per-module tables, the unchanged list,
the could-not-count details, and only then rows of the totals table (each cut says so).
"""
from __future__ import annotations

import re
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from mcx_review.compare import head_failed
from mcx_review.units import (ARROW, DASH, format_change, format_count, format_delta, format_percent,
                              format_shape, format_shapes)

METRIC_NAMES = {"flops": "FLOPs", "params": "params", "activations": "activations"}
METRICS = tuple(METRIC_NAMES)
FAILED = "\u2717"  # in a number cell: this side could not be counted
PENDING = "\u2026"  # in a number cell: another shard measures this side
FAIL_MARK = "\u274c"
WARN_MARK = "\u26a0\ufe0f"
MAX_MESSAGE = 1000  # characters of one exception/warning message shown in the comment

# Inline-active in GitHub Markdown (emphasis, code, links, HTML, entities, tables, strikethrough,
# math, images). Block syntax (#, -, +, >) cannot start a line here: cells and list items always
# put our text after other text, and newlines never pass through.
_ACTIVE = set("\\`*[]<>&|~$!")
_INVISIBLE = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"}


def _entities(text: str, joiners: bool = False) -> str:
    out = []
    for i, ch in enumerate(text):
        if joiners and ch in "@#":
            out.append(ch + "\u2060")
        elif ch in _ACTIVE:
            out.append(f"&#{ord(ch)};")
        elif ch == "_":  # inert between two letters/digits (resnet50_8xb32), else emphasis
            inner = 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
            out.append("_" if inner else "&#95;")
        elif ch == "\n":
            out.append(" \u21b5 ")
        elif ch == "\r":
            continue
        elif ord(ch) < 32 or ch == "\x7f":
            out.append(" ")
        elif ch in _INVISIBLE:  # bidi overrides could make a path read as another
            out.append("\ufffd")
        else:
            out.append(ch)
    return "".join(out)


def esc(text: Any) -> str:
    """Inert Markdown text: no markup, no HTML, no table break, one line; a word joiner after
    ``@`` and ``#`` keeps ``@name`` from pinging anyone and ``#12`` from cross-referencing."""
    return _entities(str(text), joiners=True)


def code(text: Any) -> str:
    """Inert inline code (``<code>`` + entities: backticks in the text cannot end it)."""
    return f"<code>{_entities(str(text))}</code>"


def _clip(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[:limit] + " \u2026"


# ---------------------------------------------------------------- report views (shared with render_text)

def side_has_error(entry: Dict[str, Any], side: str) -> bool:
    return any(e.get("side") == side for e in entry.get("errors") or [])


def fails(entry: Dict[str, Any]) -> bool:
    """Fails the review: newly broken at head, or a budget at fail level."""
    return head_failed(entry) or any(b.get("level") == "fail" for b in entry.get("budgets") or [])  # type: ignore[arg-type]


def error_label(entry: Dict[str, Any], error: Dict[str, Any]) -> Optional[Tuple[str, bool]]:
    """(how to call one error, whether it fails the review); None when another line says it."""
    messages = {side: {e.get("message") for e in entry.get("errors") or [] if e.get("side") == side}
                for side in ("base", "head")}
    if error.get("side") == "head":
        if error.get("message") in messages["base"]:
            return "fails at base and head (not this change)", False
        return "fails at head", True
    if error.get("message") in messages["head"]:
        return None
    return ("failed at base" if messages["head"] else "failed at base (the change fixes it)"), False


def warns(entry: Dict[str, Any]) -> bool:
    return any(b.get("level") == "warn" for b in entry.get("budgets") or [])


def relative_flops_change(entry: Dict[str, Any]) -> Optional[float]:
    base, head = entry.get("base"), entry.get("head")
    if not base or not head:
        return None
    change = int(head["flops"]) - int(base["flops"])
    if not change:
        return 0.0
    return abs(change) / int(base["flops"]) if base["flops"] else float("inf")


def _order(entry: Dict[str, Any]) -> Tuple[int, float, bool, str]:
    """Failures first, then the largest relative FLOPs change (an edited config before the ones
    inheriting the same change), then added, removed; by path."""
    rel = relative_flops_change(entry)
    group = 0 if fails(entry) else 1 if rel is not None else 2 if entry.get("status") == "added" else 3
    return group, -(rel or 0.0), "changed" not in (entry.get("reasons") or []), entry.get("path", "")


def split_configs(report: Dict[str, Any]) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """(configs to show in the table, ordered; unchanged configs, by path)."""
    configs = report.get("configs") or []
    shown = sorted((c for c in configs if c.get("status") != "unchanged"), key=_order)
    unchanged = sorted((c for c in configs if c.get("status") == "unchanged"), key=lambda c: c.get("path", ""))
    return shown, unchanged


def largest_flops_change(configs: Iterable[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
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


def flops_change_text(entry: Dict[str, Any]) -> str:
    base, head = int(entry["base"]["flops"]), int(entry["head"]["flops"])
    return format_percent(head - base, base) if base else format_delta(base, head)


def count_summary(configs: Sequence[Dict[str, Any]]) -> str:
    """``'3 configs changed, 1 added, 1 could not be counted'`` (unchanged not included; an error
    at base only reads "fixed")."""
    order = (("changed", "changed"), ("renamed", "renamed"), ("added", "added"), ("removed", "removed"),
             ("fixed", "fixed"), ("error", "could not be counted"))

    def status(c: Dict[str, Any]) -> str:  # "fixed": broken at base only, counted at head
        if c.get("status") == "error" and not side_has_error(c, "head"):
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


def display_prefix(configs: Sequence[Dict[str, Any]]) -> str:
    """The first directory every config path shares (``configs/``), left out of the table."""
    paths = [p for c in configs for p in (c.get("path"), c.get("old_path")) if p]
    if not paths:
        return ""
    first = paths[0].split("/", 1)[0]
    if all("/" in p and p.split("/", 1)[0] == first for p in paths):
        return first + "/"
    return ""


def short(path: str, prefix: str) -> str:
    return path[len(prefix):] if prefix and path.startswith(prefix) else path


def reason_parts(reason: str) -> Tuple[str, Optional[str]]:
    """``'inherits X'`` -> ``('inherits', 'X')``; ``'uses Name (F)'`` -> ``('uses Name in', 'F')``;
    ``'changed'`` -> ``('edited', None)``."""
    for prefix in ("inherits ", "uses code in "):
        if reason.startswith(prefix):
            return prefix.strip(), reason[len(prefix):]
    m = re.fullmatch(r"uses (\S+) \((.+)\)", reason)
    if m:
        return f"uses {m.group(1)} in", m.group(2)
    if reason == "changed":
        return "edited", None
    return reason, None


def indirect_reasons(entry: Dict[str, Any]) -> List[str]:
    """Reasons other than the config itself being edited (the interesting ones)."""
    return [r for r in entry.get("reasons") or [] if r != "changed"]


def _value(entry: Dict[str, Any], side: str, key: str) -> Any:
    stats = entry.get(side)
    return stats.get(key) if stats else None


def _side_mark(entry: Dict[str, Any], side: str) -> Optional[str]:
    if entry.get(side) is None:
        if side_has_error(entry, side):
            return FAILED
        if side in (entry.get("pending") or []):
            return PENDING
    return None


def cell(entry: Dict[str, Any], key: str, fmt_one: Callable[[Any], str],
         fmt_pair: Callable[[Any, Any], str]) -> str:
    """One number cell; a side that failed (``✗``) or is pending (``…``) shows as such."""
    base, head = _value(entry, "base", key), _value(entry, "head", key)
    bmark, hmark = _side_mark(entry, "base"), _side_mark(entry, "head")
    if bmark or hmark:
        left = bmark or (fmt_one(base) if base is not None else None)
        right = hmark or (fmt_one(head) if head is not None else None)
        return f"{left} {ARROW} {right}" if left and right else (left or right or DASH)
    return fmt_pair(base, head)


def number_cells(entry: Dict[str, Any]) -> List[str]:
    """[input, FLOPs, params, activations] for one config: ``base → head (Δ, %)``, one value when
    equal or one-sided, ``✗`` for a side that could not be counted, ``…`` for a pending one."""
    cells = [cell(entry, "input_shape", format_shape, format_shapes)]
    for m in METRICS:
        cells.append(cell(entry, m, format_count, format_change))
    return cells


def module_rows(entry: Dict[str, Any]) -> List[Tuple[str, Optional[str], List[str]]]:
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


def _module_value(mod: Optional[Dict[str, Any]], metric: str) -> "int | str | None":
    if mod is None:
        return None
    if metric != "params" and not mod.get("called", True):
        return DASH
    return int(mod.get(metric, 0))


def _module_cell(b: Optional[Dict[str, Any]], h: Optional[Dict[str, Any]], metric: str) -> str:
    bv, hv = _module_value(b, metric), _module_value(h, metric)
    if isinstance(bv, str) or isinstance(hv, str):
        one = [format_count(v) if isinstance(v, int) else v for v in (bv, hv) if v is not None]
        return one[0] if len(one) == 1 or one[0] == one[1] else f"{one[0]} {ARROW} {one[1]}"
    return format_change(bv, hv)


def short_sha(rev: Optional[Dict[str, Any]]) -> str:
    sha = (rev or {}).get("sha")
    return sha[:7] if sha else "?"


def forwards(entry: Dict[str, Any]) -> List[str]:
    return sorted({s.get("forward", "extract_feat") for s in (entry.get("base"), entry.get("head")) if s})


def unsupported_ops(entry: Dict[str, Any]) -> List[Tuple[str, str]]:
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


def uncalled_by_side(entry: Dict[str, Any]) -> List[Tuple[str, List[str]]]:
    """[(side label, unexpected uncalled modules)]; ``'base and head'`` when equal."""
    b = (entry.get("base") or {}).get("uncalled_modules") or []
    h = (entry.get("head") or {}).get("uncalled_modules") or []
    if b and b == h:
        return [("base and head", list(h))]
    return [(side, list(mods)) for side, mods in (("base", b), ("head", h)) if mods]


# Warnings the worker derives from fields the renderers show anyway.
_DERIVED = (("fvcore could not count:", "unsupported_ops"), ("modules never called:", "uncalled_modules"))


def warnings_by_message(entry: Dict[str, Any]) -> List[Tuple[str, str]]:
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


# ---------------------------------------------------------------- Markdown pieces

HEADER = "| config | input | FLOPs | params | activations |\n|---|---|---|---|---|"


def headline(shown: Sequence[Dict[str, Any]], unchanged: Sequence[Dict[str, Any]]) -> str:
    parts = [count_summary(shown) or f"no change ({len(unchanged)} config{'s' if len(unchanged) != 1 else ''} "
                                    f"reviewed, all unchanged)"]
    top = largest_flops_change(shown)
    if top is not None:
        name = top["path"].rsplit("/", 1)[-1]
        parts.append(f"largest FLOPs change {flops_change_text(top)} ({code(name)})")
    failing = sum(1 for c in shown if fails(c))
    if failing:
        parts.append(f"{FAIL_MARK} {failing} failing")
    warning = sum(1 for c in shown if warns(c) and not fails(c))
    if warning:
        parts.append(f"{WARN_MARK} {warning} over a warn budget")
    return "### Model complexity: " + " \u00b7 ".join(parts)


def status_notes(entry: Dict[str, Any]) -> List[str]:
    """What a reader must know about a config besides its numbers (shared by both renderers)."""
    notes: List[str] = []
    if entry.get("status") in ("added", "removed"):
        notes.append(str(entry["status"]))
    if head_failed(entry):  # type: ignore[arg-type]
        notes.append("fails at head")
    elif side_has_error(entry, "head"):
        notes.append("fails at base and head")
    elif side_has_error(entry, "base"):
        notes.append("broken at base, fixed here")
    if entry.get("pending"):
        notes.append("pending: " + " and ".join(str(p) for p in entry["pending"]))
    if "tensor" in forwards(entry):
        notes.append("forward(mode='tensor')")
    return notes


def _config_cell(entry: Dict[str, Any], prefix: str) -> str:
    mark = f"{FAIL_MARK} " if fails(entry) else f"{WARN_MARK} " if warns(entry) else ""
    notes: List[str] = []
    if entry.get("old_path"):
        notes.append(f"renamed from {code(short(entry['old_path'], prefix))}")
    notes += [esc(n) for n in status_notes(entry)]
    reasons = indirect_reasons(entry)
    if reasons:
        word, target = reason_parts(reasons[0])
        text = esc(word) + (" " + code(short(target, prefix)) if target else "")
        if len(reasons) > 1:
            text += f" +{len(reasons) - 1} more"
        notes.append(text)
    cell = mark + code(short(entry["path"], prefix))
    return cell + ("<br><sub>" + " \u00b7 ".join(notes) + "</sub>" if notes else "")


def table_row(entry: Dict[str, Any], prefix: str) -> str:
    return "| " + " | ".join([_config_cell(entry, prefix)] + number_cells(entry)) + " |"


def module_table(entry: Dict[str, Any]) -> str:
    """The per-module table of one config ('' when neither side has modules)."""
    rows = module_rows(entry)
    if not rows:
        return ""
    lines = ["| module | FLOPs | params | activations |", "|---|---|---|---|",
             "| **model** | " + " | ".join(number_cells(entry)[1:]) + " |"]
    for name, where, cells in rows:
        label = esc(name) + (f" <sub>({where})</sub>" if where else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def module_details(configs: Sequence[Dict[str, Any]], prefix: str) -> List[str]:
    """One folded per-module table per distinct table, in table order: configs with identical
    figures (a base file's inheritors) share one, named together in its summary."""
    groups: Dict[str, List[str]] = {}
    for c in configs:
        table = module_table(c)
        if table:
            groups.setdefault(table, []).append(short(c["path"], prefix))
    out = []
    for table, names in groups.items():
        label = code(names[0]) + " by module"
        if len(names) > 1:
            others = ", ".join(code(n) for n in names[1:4]) + (f" +{len(names) - 4} more" if len(names) > 4 else "")
            label += f" \u00b7 same for {others}"
        out.append(f"<details><summary>{label}</summary>\n\n{table}\n\n</details>")
    return out


def unchanged_block(unchanged: Sequence[Dict[str, Any]], prefix: str) -> str:
    if not unchanged:
        return ""
    n = len(unchanged)
    lines = [f"<details><summary>{n} unchanged config{'s' if n != 1 else ''}</summary>", ""]
    for c in unchanged:
        stats = c.get("head") or c.get("base")
        figures = ""
        if stats:
            figures = (f" \u00b7 {format_shape(stats.get('input_shape'))} \u00b7 {format_count(stats['flops'])} FLOPs"
                       f" \u00b7 {format_count(stats['params'])} params")
        reasons = indirect_reasons(c)
        why = ""
        if reasons:
            word, target = reason_parts(reasons[0])
            why = " \u00b7 " + esc(word) + (" " + code(short(target, prefix)) if target else "")
        lines.append(f"- {code(short(c['path'], prefix))}{figures}{why}")
    lines += ["", "</details>"]
    return "\n".join(lines)


def _breach_line(entry: Dict[str, Any], breach: Dict[str, Any], prefix: str) -> str:
    level = breach.get("level", "warn")
    mark = f"{FAIL_MARK} **fail**" if level == "fail" else f"{WARN_MARK} warn"
    metric = METRIC_NAMES.get(breach.get("metric", ""), esc(breach.get("metric", "")))
    what = metric + (f" of {code(breach['module'])}" if breach.get("module") else "")
    value = format_count(int(breach["value"]))
    if breach.get("base") is not None:
        value = format_change(int(breach["base"]), int(breach["value"]))
    line = f"- {mark} {code(short(entry['path'], prefix))}: {what} {value}"
    if breach.get("limit"):
        line += f", limit {code(breach['limit'])}"
    line += f" (rule {code(breach.get('rule', '?'))})"
    if breach.get("message"):
        line += f": {esc(_clip(breach['message']))}"
    return line


def budgets_block(shown: Sequence[Dict[str, Any]], prefix: str) -> str:
    lines = [_breach_line(c, b, prefix)
             for level in ("fail", "warn") for c in shown for b in c.get("budgets") or []
             if b.get("level", "warn") == level]
    if not lines:
        return ""
    return "#### Budgets\n\n" + "\n".join(lines)


def error_lines(entry: Dict[str, Any], prefix: str) -> List[str]:
    name = code(short(entry["path"], prefix))
    lines = []
    for e in entry.get("errors") or []:
        labelled = error_label(entry, e)
        if labelled is None:
            continue
        label, failing = labelled
        if failing:
            lines.append(f"- {FAIL_MARK} {name} **{label}**: {code(_clip(e.get('message', '')))}")
        else:
            lines.append(f"- {name} {label}: {code(_clip(e.get('message', '')))}")
    return lines


def note_lines(entry: Dict[str, Any], prefix: str) -> List[str]:
    """Ops fvcore did not count, modules never called, warnings: one config's lesser problems."""
    name = code(short(entry["path"], prefix))
    lines = []
    ops = unsupported_ops(entry)
    if ops:
        lines.append(f"- {name} ops not counted: " + ", ".join(f"{code(op)} {n}" for op, n in ops))
    for side, mods in uncalled_by_side(entry):
        lines.append(f"- {name} modules never called ({side}): " + ", ".join(code(m) for m in mods))
    for side, message in warnings_by_message(entry):
        lines.append(f"- {name} warning ({esc(side)}): {code(_clip(message))}")
    return lines


def problems_block(configs: Sequence[Dict[str, Any]], prefix: str) -> str:
    """Errors in the open; ops not counted and warnings folded (they are usually elementwise ops
    worth little and recur in every config)."""
    errors = [line for c in configs for line in error_lines(c, prefix)]
    notes = [line for c in configs for line in note_lines(c, prefix)]
    if not errors and not notes:
        return ""
    parts = ["#### Could not count", "\n".join(errors)]
    if notes:
        n = sum(1 for c in configs if note_lines(c, prefix))
        parts.append(f"<details><summary>Ops fvcore did not count, uncalled modules and warnings in {n} "
                     f"config{'s' if n != 1 else ''}</summary>\n\n" + "\n".join(notes) + "\n\n</details>")
    return "\n\n".join(p for p in parts if p)


def problems_summary(configs: Sequence[Dict[str, Any]]) -> str:
    errors = sum(1 for c in configs if c.get("errors"))
    ops = sum(1 for c in configs if unsupported_ops(c))
    warnings = sum(len(warnings_by_message(c)) for c in configs)
    if not (errors or ops or warnings):
        return ""
    return (f"#### Could not count\n\n{errors} config(s) with errors, {ops} with ops fvcore did not count, "
            f"{warnings} warning(s); the list is left out to fit GitHub's comment limit (see the JSON report).")


def footer(report: Dict[str, Any], prefix: str, tensor_forward: bool) -> str:
    base, head = report.get("base") or {}, report.get("head") or {}
    kind = head.get("kind", "commit")
    base_text = f"base {code(short_sha(base))}"
    if base.get("rev"):
        base_text += f" (merge-base with {code(base['rev'])})"
    if kind == "index":
        head_text = f"head the index (staged changes) on {code(short_sha(head))}"
    elif kind == "worktree":
        head_text = f"head the working tree on {code(short_sha(head))}"
    else:
        head_text = f"head {code(short_sha(head))}"
    shape = report.get("shape")
    shapes = (f"Input forced to {format_shape(shape)}." if shape
              else "Input shapes from each config's test pipeline.")
    notes = ["FLOPs as fvcore counts them (one multiply-add = one FLOP) on <code>extract_feat</code>; "
             "the head's FLOPs are not included, its params are."]
    if tensor_forward:
        notes.append("Configs marked forward(mode='tensor') have no <code>extract_feat</code>: "
                     "measured on <code>forward(mode='tensor')</code>, head included.")
    notes.append(shapes)
    if prefix:
        notes.append(f"Paths under {code(prefix)}.")
    if report.get("shard"):
        k, n = report["shard"]
        notes.append(f"Shard {int(k)}/{int(n)} only.")
    tool = report.get("tool") or {}
    names = [n for n in ("mcx-review", "torch", "fvcore") if n in tool] + [n for n in tool if n not in
                                                                         ("mcx-review", "torch", "fvcore")]
    tools = " \u00b7 ".join(f"{esc(n)} {esc(tool[n])}" for n in names)
    line = f"{base_text} {ARROW} {head_text}" + (f" \u00b7 {tools}" if tools else "")
    return "<sub>" + " ".join(notes) + " " + line + "</sub>"


# ---------------------------------------------------------------- assembly

def _join(parts: Iterable[str]) -> str:
    return "\n\n".join(p for p in parts if p) + "\n"


def _fit(items: Sequence[str], budget: int, separator: int = 2) -> int:
    """How many leading items fit in ``budget`` characters, each followed by ``separator``
    characters (2: joined by a blank line; 1: lines)."""
    used, n = 0, 0
    for item in items:
        used += len(item) + separator
        if used > budget:
            break
        n += 1
    return n


def render_markdown(report: Dict[str, Any], *, max_chars: int = 65536) -> str:
    """The PR comment body (no hidden marker), at most ``max_chars`` characters."""
    shown, unchanged = split_configs(report)
    prefix = display_prefix(report.get("configs") or [])
    tensor = any("tensor" in forwards(c) for c in shown)
    foot = footer(report, prefix, tensor)
    if not shown and not unchanged:
        return _join(["### Model complexity: no config changes",
                      "No reviewed config is affected by this change.", foot])

    head = headline(shown, unchanged)
    rows = [table_row(c, prefix) for c in shown]
    budgets = budgets_block(shown, prefix)
    details = module_details(shown, prefix)
    unchanged_full = unchanged_block(unchanged, prefix)
    problems = problems_block(shown, prefix)  # an unchanged config's ops are not this change's

    def assemble(table_rows: List[str], dropped_rows: int, details_kept: int, unchanged_text: str,
                 problems_text: str) -> str:
        table = HEADER + "\n" + "\n".join(table_rows) if table_rows else ""
        notes = []
        if dropped_rows:
            notes.append(f"\u2026 and {dropped_rows} more changed config(s) left out of the table to fit "
                         f"GitHub's comment limit (see the JSON report).")
        if details_kept < len(details):
            notes.append(f"Per-module tables left out for {len(details) - details_kept} config(s) to fit "
                         f"GitHub's comment limit (see the JSON report).")
        note = "<sub>" + " ".join(notes) + "</sub>" if notes else ""
        return _join([head, table, note, budgets, *details[:details_kept], unchanged_text, problems_text, foot])

    unchanged_short = (f"{len(unchanged)} unchanged config(s); the list is left out to fit GitHub's comment limit."
                       if unchanged else "")
    text = assemble(rows, 0, len(details), unchanged_full, problems)
    if len(text) <= max_chars:
        return text
    # 1. per-module tables: keep the leading ones that fit, in table order
    without = assemble(rows, 0, 0, unchanged_full, problems)
    if len(without) <= max_chars:
        spare = max_chars - len(without) - 200  # 200: room for the cut note
        for kept in range(min(_fit(details, spare) if spare > 0 else 0, len(details) - 1), 0, -1):
            text = assemble(rows, 0, kept, unchanged_full, problems)
            if len(text) <= max_chars:
                return text
        return without
    # 2. the unchanged list, 3. the could-not-count details
    text = assemble(rows, 0, 0, unchanged_short, problems)
    if len(text) <= max_chars:
        return text
    summary = problems_summary(shown)
    text = assemble(rows, 0, 0, unchanged_short, summary)
    if len(text) <= max_chars:
        return text
    # 4. last resort: rows of the totals table beyond what fits (failures and largest changes stay)
    fixed = len(assemble([], 0, 0, unchanged_short, summary)) + len(HEADER) + 400
    kept_rows = _fit(rows, max_chars - fixed, separator=1)
    text = assemble(rows[:kept_rows], len(rows) - kept_rows, 0, unchanged_short, summary)
    return text if len(text) <= max_chars else text[:max_chars]


__all__ = ["render_markdown", "esc", "code", "split_configs", "number_cells", "module_rows",
           "largest_flops_change", "count_summary"]

"""The report as a terminal table (rich, recorded to a string). Pure apart from rich's rendering.

Same content as the Markdown: SHAs on top, a headline, one row per config that is not unchanged
(input, FLOPs, params, activations as ``base → head`` over the signed delta), unchanged configs in
one line, then errors, budget breaches, ops fvcore did not count and warnings. Text from the
repository is cleaned of control characters (a path cannot smuggle terminal escapes) and never
read as rich markup.
"""
from __future__ import annotations

import io
from typing import Any, Dict, List, Optional

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mcx_review.render.display import (METRICS, Row, cell, depth_rows, display_prefix, error_label, fails, headline,
                             indirect_reasons, limited, metafile_lines, metafile_problems, reason_view, short,
                             short_sha, split_configs, status_notes, uncalled_by_side, unsupported_ops,
                             warnings_by_message, warns, where_more, where_rows)
from mcx_review.units import ARROW, format_change, format_count, format_delta, format_shape, format_shapes

__all__ = ["render_text", "clean"]

MAX_MESSAGE = 500
NARROW = 90  # below this many columns the table leaves no room for config names: one block each


def clean(text: Any) -> str:
    """One printable line: newlines become ``↵``, other control characters (ESC...) a space."""
    out = []
    for ch in str(text):
        if ch == "\n":
            out.append(" \u21b5 ")
        elif ch == "\r":
            continue
        elif ord(ch) < 32 or 0x7f <= ord(ch) < 0xa0 or 0x202a <= ord(ch) <= 0x202e or 0x2066 <= ord(ch) <= 0x2069:
            out.append(" ")
        else:
            out.append(ch)
    line = "".join(out)
    return line if len(line) <= MAX_MESSAGE else line[:MAX_MESSAGE] + " \u2026"


def _pair(base: Optional[int], head: Optional[int]) -> str:
    if base is None or head is None or base == head:
        return format_count(head if base is None else base)  # type: ignore[arg-type]
    return f"{format_count(base)} {ARROW} {format_count(head)}\n{format_delta(base, head)}"


def _number(entry: Dict[str, Any], metric: str) -> Text:
    text = Text(cell(entry, metric, format_count, _pair))
    first, _, second = text.plain.partition("\n")
    if second:  # the delta line: growth red, shrinkage green
        text.stylize("red" if second.startswith("+") else "green", len(first) + 1)
    if "\u2717" in text.plain:
        text.stylize("bold red")
    return text


def wrap_path(path: str, width: int) -> str:
    """Break a long path after ``/``, ``_`` or ``-`` so it wraps where a reader expects (rich would
    cut it anywhere: a path has no spaces)."""
    if len(path) <= width or width < 8:
        return path
    tokens, cur = [], ""
    for ch in path:
        cur += ch
        if ch in "/_-":
            tokens.append(cur)
            cur = ""
    if cur:
        tokens.append(cur)
    lines, line = [], ""
    for tok in tokens:
        while len(tok) > width:  # no separator for too long: cut
            if line:
                lines.append(line)
                line = ""
            lines.append(tok[:width])
            tok = tok[width:]
        if len(line) + len(tok) > width:
            lines.append(line)
            line = ""
        line += tok
    if line:
        lines.append(line)
    return "\n".join(lines)


def _config(entry: Dict[str, Any], prefix: str, width: int) -> Text:
    mark = "\u2717 " if fails(entry) else "! " if warns(entry) or limited(entry) else ""
    text = Text(mark, style="bold red" if fails(entry) else "yellow")
    text.append(wrap_path(clean(short(entry["path"], prefix)), width - len(mark)), style="bold")
    notes: List[str] = []
    if entry.get("old_path"):
        notes.append("renamed from\n" + wrap_path(clean(short(entry["old_path"], prefix)), width))
    notes += status_notes(entry)
    reasons = indirect_reasons(entry)
    if reasons:
        r = reason_view(reasons[0])
        more = f" +{len(reasons) - 1} more" if len(reasons) > 1 else ""
        word = clean(r.word + (f" {r.name}" if r.name else ""))
        target = wrap_path(clean(short(r.target, prefix)), width) if r.target else ""
        notes.append(word + (f"\n({target})" if r.name and target else f"\n{target}" if target else "") + more)
    if notes:
        text.append("\n" + " \u00b7 ".join(notes), style="dim")
    return text


def _blocks(console: Console, shown: List[Dict[str, Any]], prefix: str, width: int) -> None:
    """Narrow terminals: one block per config (its name, then one line per number)."""
    for entry in shown:
        console.print(_config(entry, prefix, width))
        console.print(Text("  input       " + cell(entry, "input_shape", format_shape, format_shapes)))
        for metric, name in zip(METRICS, ("FLOPs", "params", "activations")):
            value = Text(cell(entry, metric, format_count, format_change))
            if "(" in value.plain:  # the delta: growth red, shrinkage green
                start = value.plain.index("(")
                value.stylize("red" if value.plain[start + 1] == "+" else "green", start)
            console.print(Text(f"  {name:<11} ").append_text(value))


def _table_widths(rows: List[Any]) -> List[int]:
    return [max([len(name)] + [max(len(line) for line in (r[0] if i == 0 else r[1][i - 1]).plain.split("\n"))
                               for r in rows])
            for i, name in enumerate(("input", "FLOPs", "params", "activations"))]


def _table(shown: List[Dict[str, Any]], prefix: str, width: int) -> Table:
    rows = [(Text(cell(e, "input_shape", format_shape, format_shapes)), [_number(e, m) for m in METRICS])
            for e in shown]
    widths = _table_widths(rows)
    config_width = max(20, width - sum(widths) - 3 * 4)  # 3: padding, rule, padding between columns
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False)
    table.add_column("config", overflow="fold", max_width=config_width)
    table.add_column("input", no_wrap=True)
    for name in ("FLOPs", "params", "activations"):
        table.add_column(name, justify="right", no_wrap=True)
    for entry, (shape, numbers) in zip(shown, rows):
        table.add_row(_config(entry, prefix, config_width), shape, *numbers)
    return table


def _headline(shown: List[Dict[str, Any]], unchanged: List[Dict[str, Any]]) -> Text:
    h = headline(shown, unchanged)
    text = Text(h.summary or "no change", style="bold")
    if h.top_change is not None:
        text.append(f" \u00b7 largest FLOPs change {h.top_change} ({clean(h.top_name)})")
    if h.failing:
        text.append(f" \u00b7 {h.failing} failing", style="bold red")
    if h.stale_metafiles:
        text.append(f" \u00b7 metafile stale for {h.stale_metafiles}", style="yellow")
    if h.limited:
        text.append(f" \u00b7 {h.limited} not counted: limit reached", style="yellow")
    return text


def _revisions(report: Dict[str, Any]) -> Text:
    base, head = report.get("base") or {}, report.get("head") or {}
    kind = head.get("kind", "commit")
    base_text = f"base {short_sha(base)}" + (f" ({clean(base['rev'])})" if base.get("rev") else "")
    if kind == "commit":
        head_text = f"head {short_sha(head)}" + (f" ({clean(head['rev'])})" if head.get("rev") else "")
    else:
        head_text = f"head {'the index' if kind == 'index' else 'the working tree'} on {short_sha(head)}"
    shape = report.get("shape")
    note = f" \u00b7 input forced to {format_shape(shape)}" if shape else ""
    return Text(f"mcx-review \u00b7 {base_text} {ARROW} {head_text}{note}", style="dim")


class Line:
    """A line made of entries (``aten::mean ×1``, a module's cells): it wraps between entries,
    never inside one; continuation lines are indented under the first entry."""

    def __init__(self, lead: str, entries: List[str], style: str = "", sep: str = ", ") -> None:
        self.lead, self.entries, self.style, self.sep = lead, entries, style, sep

    def lines(self, width: int) -> List[str]:
        indent = " " * (len(self.lead) + 1 if len(self.lead) < min(40, width // 2) else 8) if self.lead else ""
        out: List[str] = []
        cur, fresh = self.lead, True  # fresh: no entry on this line yet
        for i, item in enumerate(self.entries):
            piece = item + (self.sep.rstrip() if i < len(self.entries) - 1 else "")
            joiner = "" if fresh and cur == indent else " " if cur else ""
            if not fresh and len(cur) + len(joiner) + len(piece) > width:
                out.append(cur)
                cur, joiner = indent, ""
            cur += joiner + piece
            fresh = False
        out.append(cur)
        return out


def _section(console: Console, title: str, lines: List["Text | Line"], width: int, wrap: bool) -> None:
    """A titled list. Entry lines wrap between entries; free text wraps where rich wraps it on a
    terminal and not at all elsewhere (a CI log or a file has no width)."""
    if lines:
        console.print(Text(title, style="bold"))
        for line in lines:
            if isinstance(line, Line):
                for part in line.lines(width - 2):  # a terminal may still fold one entry wider than itself
                    console.print(Text("  " + part, style=line.style), no_wrap=not wrap, overflow="fold" if wrap
                                  else "ignore", crop=wrap)
            else:
                console.print(Text("  ").append_text(line), soft_wrap=not wrap)


def _problems(shown: List[Dict[str, Any]], prefix: str) -> Dict[str, List["Text | Line"]]:
    out: Dict[str, List["Text | Line"]] = {"errors": [], "budgets": [], "metafiles": [], "not counted": [],
                                            "warnings": []}
    for c in shown:  # an unchanged config's ops are not this change's
        name = clean(short(c["path"], prefix))
        for e in c.get("errors") or []:
            labelled = error_label(c, e)
            if labelled is None:
                continue
            label, failing = labelled
            style = "red" if failing else "yellow" if e.get("limit") else ""
            out["errors"].append(Text(f"{name}: {clean(label)}: ", style=style).append(clean(e.get("message", ""))))
        for b in c.get("budgets") or []:
            level = b.get("level", "warn")
            value = format_count(int(b["value"]))
            if b.get("base") is not None:
                value = f"{format_count(int(b['base']))} {ARROW} {value}"
            what = b.get("metric", "?") + (f" of {b['module']}" if b.get("module") else "")
            line = Text(level.upper(), style="bold red" if level == "fail" else "yellow")
            line.append(clean(f" {name}: {what} {value}, limit {b.get('limit', '?')} (rule {b.get('rule', '?')})"
                              + (f": {b['message']}" if b.get("message") else "")))
            out["budgets"].append(line)
        for m in metafile_lines(c):
            where = f" ({clean(m.name)} in {clean(short(m.file, prefix))})" if m.name and m.file else ""
            style = ("bold red" if fails(c) else "yellow") if m.status == "stale" else ""
            out["metafiles"].append(Line(f"{name}: {m.label}{where}" + (":" if m.details else ""),
                                         [clean(d) for d in m.details], style=style, sep="; "))
        ops = unsupported_ops(c)
        if ops:
            out["not counted"].append(Line(f"{name}:", [clean(f"{op} {n}") for op, n in ops]))
        for side, mods in uncalled_by_side(c):
            out["not counted"].append(Line(f"{name}: modules never called ({side}):", [clean(m) for m in mods]))
        for side, message in warnings_by_message(c):
            out["warnings"].append(Text(clean(f"{name} ({side}): {message}")))
    out["budgets"].sort(key=lambda t: not t.plain.startswith("FAIL"))  # type: ignore[union-attr]
    out["metafiles"].sort(key=lambda line: line.style == "")  # type: ignore[union-attr]
    return out


def _module_lines(rows: List[Row]) -> List[Line]:
    width = max((len(clean(n)) for n, _, _ in rows), default=0)
    return [Line(f"  {clean(name) + (f' ({where})' if where else ''):<{width}}",
                 [f"{label} {c}" for label, c in zip(("FLOPs", "params", "activations"), cells)])
            for name, where, cells in rows]


def _modules(shown: List[Dict[str, Any]], prefix: str, depth: Optional[int]) -> Dict[str, List["Text | Line"]]:
    """Where it changed (every config measured at both sides) and, with ``--depth``, the module
    table to that depth."""
    out: Dict[str, List["Text | Line"]] = {"where it changed": [], "modules": []}
    for c in shown:
        name = clean(short(c["path"], prefix))
        rows = where_rows(c)
        if rows:
            more = where_more(c)
            out["where it changed"].append(Text(name + (f" (+{more} more modules differ)" if more else "")))
            out["where it changed"] += _module_lines(rows)
        table = depth_rows(c, depth) if depth else []
        if table:
            out["modules"].append(Text(f"{name} (to depth {depth})"))
            out["modules"] += _module_lines(table)
    return out


def render_text(report: Dict[str, Any], *, color: bool, width: int = 100, wrap: bool = True) -> str:
    """The report for a terminal; ``color=False`` gives plain text without any escape code.
    ``wrap=False`` (not a terminal): free-text lines are never wrapped; lists of entries (ops,
    modules) still wrap at ``width``, only between entries."""
    console = Console(file=io.StringIO(), record=True, width=width, force_terminal=color, no_color=not color,
                      color_system="standard" if color else None, highlight=False, emoji=False, markup=False,
                      legacy_windows=False)
    shown, unchanged = split_configs(report)
    prefix = display_prefix(report.get("configs") or [])
    console.print(_revisions(report))
    if not shown and not unchanged:
        console.print(Text("no config changes: no reviewed config is affected by this change", style="bold"))
        return console.export_text(styles=color)
    console.print(_headline(shown, unchanged))
    if shown and width >= NARROW:
        console.print(_table(shown, prefix, width))
    elif shown:
        _blocks(console, shown, prefix, width)
    if unchanged:
        names = [clean(short(c["path"], prefix)) for c in unchanged]
        listed = ", ".join(names[:5]) + (f" +{len(names) - 5} more" if len(names) > 5 else "")
        console.print(Text(f"{len(unchanged)} unchanged: {listed}", style="dim"))
    sections = {**_modules(shown, prefix, report.get("depth")), **_problems(shown, prefix)}
    sections["metafiles"] += [Text(clean(f"could not read {p}"), style="yellow") for p in metafile_problems(report)]
    for title, lines in sections.items():
        _section(console, title, lines, width, wrap)
    if prefix:
        console.print(Text(f"paths under {clean(prefix)}", style="dim"))
    return console.export_text(styles=color)

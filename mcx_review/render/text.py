"""The report as a terminal table (rich, recorded to a string). Pure apart from rich's rendering.

Same content as the Markdown: SHAs on top, a headline, one row per config that is not unchanged
(input, FLOPs, params, activations as ``base → head`` over the signed delta), unchanged configs in
one line, then errors, budget breaches, ops fvcore did not count and warnings. Text from the
repository is cleaned of control characters (a path cannot smuggle terminal escapes) and never
read as rich markup.
"""
from __future__ import annotations

import io
from typing import Any, Dict, List, Mapping, Optional, Tuple

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mcx_review.render.cells import Row
from mcx_review.render.display import ConfigView, Display, Footer, Headline, build
from mcx_review.units import ARROW, format_count

__all__ = ["render_text", "format_text", "clean", "wrap_path"]

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


def _number(stacked: str) -> Text:
    text = Text(stacked)
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


def _config(v: ConfigView, width: int) -> Text:
    mark = "\u2717 " if v.fails else "! " if v.warns else ""
    text = Text(mark, style="bold red" if v.fails else "yellow")
    text.append(wrap_path(clean(v.path), width - len(mark)), style="bold")
    notes: List[str] = []
    if v.old_path:
        notes.append("renamed from\n" + wrap_path(clean(v.old_path), width))
    notes += v.notes
    if v.reasons:
        r = v.reasons[0]
        more = f" +{len(v.reasons) - 1} more" if len(v.reasons) > 1 else ""
        word = clean(r.word + (f" {r.name}" if r.name else ""))
        target = wrap_path(clean(r.target), width) if r.target else ""
        notes.append(word + (f"\n({target})" if r.name and target else f"\n{target}" if target else "") + more)
    if notes:
        text.append("\n" + " \u00b7 ".join(notes), style="dim")
    return text


def _blocks(console: Console, shown: List[ConfigView], width: int) -> None:
    """Narrow terminals: one block per config (its name, then one line per number)."""
    for v in shown:
        console.print(_config(v, width))
        console.print(Text("  input       " + v.cells[0]))
        for number, name in zip(v.cells[1:], ("FLOPs", "params", "activations")):
            value = Text(number)
            if "(" in value.plain:  # the delta: growth red, shrinkage green
                start = value.plain.index("(")
                value.stylize("red" if value.plain[start + 1] == "+" else "green", start)
            console.print(Text(f"  {name:<11} ").append_text(value))


def _table_widths(rows: List[Any]) -> List[int]:
    return [max([len(name)] + [max(len(line) for line in (r[0] if i == 0 else r[1][i - 1]).plain.split("\n"))
                               for r in rows])
            for i, name in enumerate(("input", "FLOPs", "params", "activations"))]


def _table(shown: List[ConfigView], width: int) -> Table:
    rows = [(Text(v.cells[0]), [_number(n) for n in v.stacked]) for v in shown]
    widths = _table_widths(rows)
    config_width = max(20, width - sum(widths) - 3 * 4)  # 3: padding, rule, padding between columns
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False)
    table.add_column("config", overflow="fold", max_width=config_width)
    table.add_column("input", no_wrap=True)
    for name in ("FLOPs", "params", "activations"):
        table.add_column(name, justify="right", no_wrap=True)
    for v, (shape, numbers) in zip(shown, rows):
        table.add_row(_config(v, config_width), shape, *numbers)
    return table


def _headline(h: Headline) -> Text:
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


def _revisions(f: Footer) -> Text:
    base_text = f"base {f.base_sha}" + (f" ({clean(f.base_rev)})" if f.base_rev else "")
    if f.head_kind == "commit":
        head_text = f"head {f.head_sha}" + (f" ({clean(f.head_rev)})" if f.head_rev else "")
    else:
        head_text = f"head {'the index' if f.head_kind == 'index' else 'the working tree'} on {f.head_sha}"
    note = f" \u00b7 input forced to {f.shape}" if f.shape else ""
    note += "".join(f" \u00b7 input size from {words}: {', '.join(clean(p) for p in paths)}"
                    for words, paths in f.input_rules)
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


def _problems(shown: List[ConfigView]) -> Dict[str, List["Text | Line"]]:
    out: Dict[str, List["Text | Line"]] = {"errors": [], "budgets": [], "metafiles": [], "not counted": [],
                                            "warnings": []}
    budgets: List[Text] = []  # sorted (failing first) before they join the other lines
    errored: List[Note] = []  # notes that say the same for several configs are shown once
    notes: List[Note] = []
    warned: List[Note] = []
    for v in shown:  # an unchanged config's ops are not this change's
        name = clean(v.path)
        for e in v.errors:
            style = "red" if e.failing else "yellow" if e.limit else ""
            errored.append((name, (e.label, e.message, style),
                            Text(f"{name}: {clean(e.label)}: ", style=style).append(clean(e.message))))
        for b in v.budgets:
            value = format_count(b.value)
            if b.base is not None:
                value = f"{format_count(b.base)} {ARROW} {value}"
            what = (b.metric or "?") + (f" of {b.module}" if b.module else "")
            line = Text(b.level.upper(), style="bold red" if b.level == "fail" else "yellow")
            line.append(clean(f" {name}: {what} {value}, limit {b.limit or '?'} (rule {b.rule})"
                              + (f": {b.message}" if b.message else "")))
            budgets.append(line)
        for m in v.metafile:
            where = f" ({clean(m.name)} in {clean(m.file)})" if m.name and m.file else ""
            style = ("bold red" if v.fails else "yellow") if m.status == "stale" else ""
            out["metafiles"].append(Line(f"{name}: {m.label}{where}" + (":" if m.details else ""),
                                         [clean(d) for d in m.details], style=style, sep="; "))
        if v.unsupported_ops:
            ops = [clean(f"{op} {n}") for op, n in v.unsupported_ops]
            notes.append((name, ("ops", tuple(ops)), Line(f"{name}:", ops)))
        for side, mods in v.uncalled:
            called = [clean(m) for m in mods]
            notes.append((name, ("uncalled", side, tuple(called)),
                          Line(f"{name}: modules never called ({side}):", called)))
        for side, message in v.warnings:  # once per distinct message
            warned.append((name, (side, message), Text(clean(f"{name} ({side}): {message}"))))
    out["errors"] = _grouped_lines(errored)
    out["not counted"] = _grouped_lines(notes)
    out["warnings"] = _grouped_lines(warned)
    budgets.sort(key=lambda t: not t.plain.startswith("FAIL"))
    out["budgets"] += budgets
    out["metafiles"].sort(key=lambda line: line.style == "")
    return out


def _module_lines(rows: List[Row]) -> List[Line]:
    width = max((len(clean(n)) for n, _, _ in rows), default=0)
    return [Line(f"  {clean(name) + (f' ({where})' if where else ''):<{width}}",
                 [f"{label} {c}" for label, c in zip(("FLOPs", "params", "activations"), cells)])
            for name, where, cells in rows]


def _modules(shown: List[ConfigView], depth: Optional[int]) -> Dict[str, List["Text | Line"]]:
    """Where it changed (every config measured at both sides) and, with ``--depth``, the module
    table to that depth."""
    out: Dict[str, List["Text | Line"]] = {"where it changed": [], "modules": []}
    where: Dict[Any, List[str]] = {}  # identical rows (a base file's inheritors) shown once, for all
    tables: Dict[Any, List[str]] = {}
    for v in shown:
        if v.where:
            where.setdefault((repr(v.where), v.where_more), []).append(clean(v.path))
        if v.depth_modules:
            tables.setdefault(repr(v.depth_modules), []).append(clean(v.path))
    for v in shown:
        name = clean(v.path)
        names = where.get((repr(v.where), v.where_more)) if v.where else None
        if names and names[0] == name:
            out["where it changed"].append(Text(name + (f" (+{v.where_more} more modules differ)"
                                                        if v.where_more else "") + same_for(names[1:])))
            out["where it changed"] += _module_lines(v.where)
        names = tables.get(repr(v.depth_modules)) if v.depth_modules else None
        if names and names[0] == name:
            out["modules"].append(Text(f"{name} (to depth {depth})" + same_for(names[1:])))
            out["modules"] += _module_lines(v.depth_modules)
    return out


def same_for(others: List[str], shown: int = 3) -> str:
    """``" · same for 12 more configs: a.py, b.py, c.py +9 more"``; '' when there is no other."""
    if not others:
        return ""
    listed = ", ".join(others[:shown]) + (f" +{len(others) - shown} more" if len(others) > shown else "")
    return f" \u00b7 same for {len(others)} more config{'s' if len(others) != 1 else ''}: {listed}"


Note = Tuple[str, Any, "Text | Line"]  # (config name, what it says, its line)


def _grouped_lines(notes: List[Note]) -> List["Text | Line"]:
    """Notes that say the same thing (equal keys) shown once: the first config's line, then, on a
    line of its own (the note's entries keep their wrapping), "same for N more configs"."""
    names: Dict[Any, List[str]] = {}
    for name, key, _ in notes:
        names.setdefault(key, []).append(name)
    out: List["Text | Line"] = []
    for name, key, line in notes:
        group = names.get(key)
        if group and group[0] == name:
            out.append(line)
            others = group[1:]
            if others:
                out.append(Line(f"  same for {len(others)} more config{'s' if len(others) != 1 else ''}:",
                                others[:3] + ([f"+{len(others) - 3} more"] if len(others) > 3 else []), style="dim"))
            names[key] = []  # shown
    return out


def render_text(report: Mapping[str, Any], *, color: bool, width: int = 100, wrap: bool = True) -> str:
    """The report for a terminal; ``color=False`` gives plain text without any escape code.
    ``wrap=False`` (not a terminal): free-text lines are never wrapped; lists of entries (ops,
    modules) still wrap at ``width``, only between entries."""
    return format_text(build(report), color=color, width=width, wrap=wrap)


def format_text(d: Display, *, color: bool, width: int = 100, wrap: bool = True) -> str:
    """The display model as terminal text (see :func:`render_text`)."""
    console = Console(file=io.StringIO(), record=True, width=width, force_terminal=color, no_color=not color,
                      color_system="standard" if color else None, highlight=False, emoji=False, markup=False,
                      legacy_windows=False)
    console.print(_revisions(d.footer))
    if d.empty:
        console.print(Text("no config changes: no reviewed config is affected by this change", style="bold"))
        return console.export_text(styles=color)
    console.print(_headline(d.headline))
    if d.shown and width >= NARROW:
        console.print(_table(d.shown, width))
    elif d.shown:
        _blocks(console, d.shown, width)
    if d.unchanged:
        names = [clean(v.path) for v in d.unchanged]
        listed = ", ".join(names[:5]) + (f" +{len(names) - 5} more" if len(names) > 5 else "")
        console.print(Text(f"{len(d.unchanged)} unchanged: {listed}", style="dim"))
    sections = {**_modules(d.shown, d.depth), **_problems(d.shown)}
    sections["metafiles"] += [Text(clean(f"could not read {p}"), style="yellow") for p in d.metafile_problems]
    for title, lines in sections.items():
        _section(console, title, lines, width, wrap)
    if d.prefix:
        console.print(Text(f"paths under {clean(d.prefix)}", style="dim"))
    return console.export_text(styles=color)

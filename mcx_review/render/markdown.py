"""The report as Markdown: the PR comment body (without the hidden marker), the step summary.

Pure. Layout: headline, totals table, budget breaches, per-module tables folded, unchanged
configs folded, "could not count", footer. Anything that comes from the repository or from an
exception (paths, module and op names, messages, rule names) goes through ``code`` or ``esc``:
every Markdown/HTML-active character becomes a numeric entity and newlines become a visible mark,
so it cannot break a table, open a code span or inject HTML; control and invisible characters
are made visible first (:func:`_neutral`), before any of these decisions. ``code`` wraps it in
``<code>`` (GitHub never turns ``@name`` inside code into a mention) and ``esc`` breaks ``@name``,
``#12``, ``owner/repo#12`` and ``GH-12`` with a word joiner. Nor can it become a link: GitHub's
cmark-gfm autolinks bare URLs, ``www.`` names and e-mail addresses in text, even inside
``<code>``, so the ``:`` of ``://`` and the dot of ``www.``
become entities (the autolinker looks for them literally) and every ``@`` gets a word joiner.
Over ``max_chars``, parts are cut in this order: per-module tables, the unchanged list, the
could-not-count details, and only then rows of the totals table (each cut says so); a last-resort
cut (:func:`cut_markup`) never ends inside an entity or leaves a tag open.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from mcx_review.render.cells import Row
from mcx_review.render.display import BudgetLine, ConfigView, Display, Footer, Headline, Reason, build
from mcx_review.report.types import METRIC_NAMES
from mcx_review.units import ARROW, format_change, format_count

FAIL_MARK = "\u274c"
WARN_MARK = "\u26a0\ufe0f"
MAX_MESSAGE = 1000  # characters of one exception/warning message shown in the comment
MAX_METAFILE_LINES = 60  # lines of the metafile section

# Inline-active in GitHub Markdown (emphasis, code, links, HTML, entities, tables, strikethrough,
# math, images). Block syntax (#, -, +, >) cannot start a line here: cells and list items always
# put our text after other text, and newlines never pass through.
_ACTIVE = set("\\`*[]<>&|~$!")
_LINE_BREAKS = set("\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029")  # what str.splitlines() splits on


def _neutral(text: str) -> str:
    """Control and invisible characters made visible, *before* any escaping decision (the
    autolink checks below look at neighbouring characters, so a character dropped later would
    join ``https:`` and ``//``): line breaks of every kind (``\\r``, ``\\v``, ``\\f``, NEL,
    U+2028/9) become ``\\n``, a tab and other C0/C1 controls a space, format characters
    (zero-width, bidi controls, soft hyphen, BOM: Unicode category Cf) U+FFFD."""
    out = []
    for ch in text.replace("\r\n", "\n"):
        if ch in _LINE_BREAKS:
            out.append("\n")
        else:
            kind = unicodedata.category(ch)
            out.append(" " if kind == "Cc" else "\ufffd" if kind == "Cf" else ch)
    return "".join(out)


def _entities(text: str, joiners: bool = False) -> str:
    text = _neutral(text)
    out = []
    for i, ch in enumerate(text):
        if joiners and ch in "@#":  # no mention, no issue link (#12, owner/repo#12), no e-mail autolink
            out.append(ch + "\u2060")
        elif joiners and ch == "-" and text[max(0, i - 2):i].lower() == "gh" and text[i + 1:i + 2].isdigit():
            out.append("-\u2060")  # GH-12 is an issue reference too
        elif ch == "@" and i and (text[i - 1].isalnum() or text[i - 1] in ".+-_"):  # no e-mail autolink
            out.append("@\u2060")
        elif ch == "." and text[max(0, i - 3):i].lower() == "www":  # no www. autolink
            out.append("&#46;")
        elif ch == ":" and text[i + 1:i + 3] == "//":  # no scheme:// autolink (it needs a literal ':')
            out.append("&#58;")
        elif ch in _ACTIVE:
            out.append(f"&#{ord(ch)};")
        elif ch == "_":  # inert between two letters/digits (resnet50_8xb32), else emphasis
            inner = 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
            out.append("_" if inner else "&#95;")
        elif ch == "\n":
            out.append(" \u21b5 ")
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


# ---------------------------------------------------------------- Markdown pieces

HEADER = "| config | input | FLOPs | params | activations |\n|---|---|---|---|---|"


def headline(h: Headline) -> str:
    n = h.unchanged
    parts = [h.summary or f"no change ({n} config{'s' if n != 1 else ''} reviewed, all unchanged)"]
    if h.top_change is not None:
        parts.append(f"largest FLOPs change {h.top_change} ({code(h.top_name)})")
    if h.failing:
        parts.append(f"{FAIL_MARK} {h.failing} failing")
    if h.warning:
        parts.append(f"{WARN_MARK} {h.warning} over a warn budget")
    if h.stale_metafiles:
        parts.append(f"{WARN_MARK} metafile stale for {h.stale_metafiles}")
    if h.limited:
        parts.append(f"{WARN_MARK} {h.limited} not counted: limit reached")
    return "### Model complexity: " + " \u00b7 ".join(parts)


def reason_text(r: Reason) -> str:
    """``inherits <code>X</code>``, ``uses <code>ResNet</code> (<code>file.py</code>)``."""
    text = esc(r.word)
    if r.name:
        text += " " + code(r.name) + (f" ({code(r.target)})" if r.target else "")
    elif r.target:
        text += " " + code(r.target)
    return text


def _config_cell(v: ConfigView) -> str:
    mark = f"{FAIL_MARK} " if v.fails else f"{WARN_MARK} " if v.warns else ""
    notes: List[str] = []
    if v.old_path:
        notes.append(f"renamed from {code(v.old_path)}")
    notes += [esc(n) for n in v.notes]
    if v.reasons:
        text = reason_text(v.reasons[0])
        if len(v.reasons) > 1:
            text += f" +{len(v.reasons) - 1} more"
        notes.append(text)
    cell = mark + code(v.path)
    return cell + ("<br><sub>" + " \u00b7 ".join(notes) + "</sub>" if notes else "")


def table_row(v: ConfigView) -> str:
    return "| " + " | ".join([_config_cell(v)] + v.cells) + " |"


def _rows_table(first: str, rows: Sequence[Row]) -> List[str]:
    lines = [f"| {first} | FLOPs | params | activations |", "|---|---|---|---|"]
    for name, where, cells in rows:
        label = esc(name) + (f" <sub>({where})</sub>" if where else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def module_table(v: ConfigView) -> str:
    """The per-module table of one config ('' when neither side has modules): top-level modules,
    or every module to ``--depth``, then where it changed."""
    if not v.modules:
        return ""
    lines = _rows_table("module", v.modules)
    lines.insert(2, "| **model** | " + " | ".join(v.cells[1:]) + " |")
    if v.where:
        lines += ["", "Where it changed (deepest modules that differ, largest FLOPs change first"
                  + (f"; {v.where_more} more" if v.where_more else "") + "):", ""]
        lines += _rows_table("module", v.where)
    return "\n".join(lines)


def module_details(configs: Sequence[ConfigView]) -> List[str]:
    """One folded per-module table per distinct table, in table order: configs with identical
    figures (a base file's inheritors) share one, named together in its summary."""
    groups: Dict[str, List[str]] = {}
    for v in configs:
        table = module_table(v)
        if table:
            groups.setdefault(table, []).append(v.path)
    out = []
    for table, names in groups.items():
        label = code(names[0]) + " by module"
        if len(names) > 1:
            others = ", ".join(code(n) for n in names[1:4]) + (f" +{len(names) - 4} more" if len(names) > 4 else "")
            label += f" \u00b7 same for {others}"
        out.append(f"<details><summary>{label}</summary>\n\n{table}\n\n</details>")
    return out


def unchanged_block(unchanged: Sequence[ConfigView]) -> str:
    if not unchanged:
        return ""
    n = len(unchanged)
    lines = [f"<details><summary>{n} unchanged config{'s' if n != 1 else ''}</summary>", ""]
    for v in unchanged:
        figures = ""
        if v.figures:
            shape, flops, params = v.figures
            figures = f" \u00b7 {shape} \u00b7 {flops} FLOPs \u00b7 {params} params"
        why = " \u00b7 " + reason_text(v.reasons[0]) if v.reasons else ""
        lines.append(f"- {code(v.path)}{figures}{why}")
    lines += ["", "</details>"]
    return "\n".join(lines)


def _breach_line(v: ConfigView, b: BudgetLine) -> str:
    mark = f"{FAIL_MARK} **fail**" if b.level == "fail" else f"{WARN_MARK} warn"
    metric = b.metric_name if b.metric in METRIC_NAMES else esc(b.metric)
    what = metric + (f" of {code(b.module)}" if b.module else "")
    value = format_change(b.base, b.value) if b.base is not None else format_count(b.value)
    line = f"- {mark} {code(v.path)}: {what} {value}"
    if b.limit:
        line += f", limit {code(b.limit)}"
    line += f" (rule {code(b.rule)})"
    if b.message:
        line += f": {esc(_clip(b.message))}"
    return line


def budgets_block(shown: Sequence[ConfigView]) -> str:
    lines = [_breach_line(v, b) for level in ("fail", "warn") for v in shown for b in v.budgets if b.level == level]
    if not lines:
        return ""
    return "#### Budgets\n\n" + "\n".join(lines)


def metafile_block(shown: Sequence[ConfigView], problems: Sequence[str] = ()) -> str:
    """The metafile verdicts of the shown configs: stale ones first, then legacy, fixed, missing
    or not compared entries; configs that agree in one line."""
    order = ("stale", "legacy", "fixed", "no entry", "not compared", "agrees")
    lines, agree = [], []
    for status in order:
        for v in shown:
            for line in v.metafile:
                if line.status != status or (status == "agrees" and not line.details):
                    continue
                mark = (f"{FAIL_MARK} " if v.fails else f"{WARN_MARK} ") if status == "stale" else ""
                where = f" ({code(line.name)} in {code(line.file)})" if line.name and line.file else ""
                details = ": " + "; ".join(esc(d) for d in line.details) if line.details else ""
                lines.append(f"- {mark}{code(v.path)}: {esc(line.label)}{where}{details}")
    for v in shown:
        if any(line.status == "agrees" and not line.details for line in v.metafile):
            agree.append(code(v.path))
    if agree:
        lines.append(f"- {len(agree)} config{'s agree' if len(agree) != 1 else ' agrees'} with its metafile entry "
                     f"at the entry's precision: " + ", ".join(agree[:10])
                     + (f" +{len(agree) - 10} more" if len(agree) > 10 else ""))
    lines += [f"- {WARN_MARK} could not read {code(_clip(p, 300))}" for p in problems[:10]]
    if not lines:
        return ""
    if len(lines) > MAX_METAFILE_LINES:  # never crowds the totals out of a size-capped comment
        more = len(lines) - MAX_METAFILE_LINES + 1
        lines = lines[:MAX_METAFILE_LINES - 1] + [f"- \u2026 and {more} more (see the JSON report)"]
    return "#### Metafiles\n\n" + "\n".join(lines)


def error_lines(v: ConfigView) -> List[str]:
    name = code(v.path)
    lines = []
    for e in v.errors:
        if e.failing:
            lines.append(f"- {FAIL_MARK} {name} **{esc(e.label)}**: {code(_clip(e.message))}")
        elif e.limit:
            lines.append(f"- {WARN_MARK} {name} {esc(e.label)}: {code(_clip(e.message))}")
        else:
            lines.append(f"- {name} {e.label}: {code(_clip(e.message))}")
    return lines


def note_lines(v: ConfigView) -> List[str]:
    """Ops fvcore did not count, modules never called, warnings: one config's lesser problems."""
    name = code(v.path)
    lines = []
    if v.unsupported_ops:
        lines.append(f"- {name} ops not counted: " + ", ".join(f"{code(op)} {n}" for op, n in v.unsupported_ops))
    for side, mods in v.uncalled:
        lines.append(f"- {name} modules never called ({side}): " + ", ".join(code(m) for m in mods))
    for side, message in v.warnings:
        lines.append(f"- {name} warning ({esc(side)}): {code(_clip(message))}")
    return lines


def problems_block(configs: Sequence[ConfigView]) -> str:
    """Errors in the open; ops not counted and warnings folded (they are usually elementwise ops
    worth little and recur in every config)."""
    errors = [line for v in configs for line in error_lines(v)]
    notes = [line for v in configs for line in note_lines(v)]
    if not errors and not notes:
        return ""
    parts = ["#### Could not count", "\n".join(errors)]
    if notes:
        n = sum(1 for v in configs if note_lines(v))
        parts.append(f"<details><summary>Ops fvcore did not count, uncalled modules and warnings in {n} "
                     f"config{'s' if n != 1 else ''}</summary>\n\n" + "\n".join(notes) + "\n\n</details>")
    return "\n\n".join(p for p in parts if p)


def problems_summary(configs: Sequence[ConfigView]) -> str:
    errors = sum(1 for v in configs if v.errors)
    ops = sum(1 for v in configs if v.unsupported_ops)
    warnings = sum(len(v.warnings) for v in configs)
    if not (errors or ops or warnings):
        return ""
    return (f"#### Could not count\n\n{errors} config(s) with errors, {ops} with ops fvcore did not count, "
            f"{warnings} warning(s); the list is left out to fit GitHub's comment limit (see the JSON report).")


def footer(f: Footer, prefix: str) -> str:
    base_text = f"base {code(f.base_sha)}"
    if f.merge_base_with:
        base_text += f" (merge-base with {code(f.merge_base_with)})"
    if f.head_kind == "index":
        head_text = f"head the index (staged changes) on {code(f.head_sha)}"
    elif f.head_kind == "worktree":
        head_text = f"head the working tree on {code(f.head_sha)}"
    else:
        head_text = f"head {code(f.head_sha)}"
    shapes = f"Input forced to {f.shape}." if f.shape else "Input shapes from each config's test pipeline."
    notes = ["FLOPs as fvcore counts them (one multiply-add = one FLOP) on <code>extract_feat</code>; "
             "the head's FLOPs are not included, its params are."]
    if f.tensor_forward:
        notes.append("Configs marked forward(mode='tensor') have no <code>extract_feat</code>: "
                     "measured on <code>forward(mode='tensor')</code>, head included.")
    notes.append(shapes)
    notes += [f"Input size from {esc(words)}: {', '.join(code(p) for p in paths)}." for words, paths in f.input_rules]
    if prefix:
        notes.append(f"Paths under {code(prefix)}.")
    applied = settings_note(f.settings)
    if applied:
        notes.append(applied)
    if f.shard:
        notes.append(f"Shard {f.shard[0]}/{f.shard[1]} only.")
    tools = " \u00b7 ".join(f"{esc(n)} {esc(v)}" for n, v in f.tools)
    line = f"{base_text} {ARROW} {head_text}" + (f" \u00b7 {tools}" if tools else "")
    return "<sub>" + " ".join(notes) + " " + line + "</sub>"


def settings_note(info: Optional[Mapping[str, Any]]) -> str:
    """Which settings applied, one sentence ('' for a report that does not say)."""
    if not info:
        return ""
    if info.get("from") == "file":
        return f"Settings from {code(info.get('path') or '?')}."
    sha = str(info.get("sha") or "")[:7]
    at = f" {code(sha)}" if sha else ""
    text = (f"Gates from the base revision's {code(info['path'])}{f' ({code(sha)})' if sha else ''}"
            if info.get("path") else f"Gates: the defaults (no settings file at the base revision{at})")
    added = [esc(a) for a in info.get("head_added") or []]
    if added:
        text += "; the head's settings add " + ", ".join(added[:5]) + (f" +{len(added) - 5} more" if len(added) > 5 else "")
    return text + "."


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


def render_markdown(report: Mapping[str, Any], *, max_chars: int = 65536) -> str:
    """The PR comment body (no hidden marker), at most ``max_chars`` characters."""
    return format_markdown(build(report), max_chars=max_chars)


def format_markdown(d: Display, *, max_chars: int = 65536) -> str:
    """The display model as Markdown, at most ``max_chars`` characters."""
    foot = footer(d.footer, d.prefix)
    if d.empty:
        return _join(["### Model complexity: no config changes",
                      "No reviewed config is affected by this change.", foot])

    head = headline(d.headline)
    rows = [table_row(v) for v in d.shown]
    budgets = "\n\n".join(p for p in (budgets_block(d.shown), metafile_block(d.shown, d.metafile_problems))
                          if p)
    details = module_details(d.shown)
    unchanged = d.unchanged
    unchanged_full = unchanged_block(unchanged)
    problems = problems_block(d.shown)  # an unchanged config's ops are not this change's

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
    summary = problems_summary(d.shown)
    text = assemble(rows, 0, 0, unchanged_short, summary)
    if len(text) <= max_chars:
        return text
    # 4. last resort: rows of the totals table beyond what fits (failures and largest changes stay)
    fixed = len(assemble([], 0, 0, unchanged_short, summary)) + len(HEADER) + 400
    kept_rows = _fit(rows, max_chars - fixed, separator=1)
    text = assemble(rows[:kept_rows], len(rows) - kept_rows, 0, unchanged_short, summary)
    return cut_markup(text, max_chars, CUT_NOTE)


CUT_NOTE = "\n\n<sub>(cut to GitHub's size limit; the full report is in the JSON report and the job summary)</sub>\n"
_TAG = re.compile(r"<(/?)(details|summary|sub|code)>")


def cut_markup(text: str, limit: int, note: str = "") -> str:
    """``text`` if it fits, else its head + ``note`` within ``limit`` characters: cut at the last
    line end that fits (inside one over-long line, before a partial entity or tag), then every tag
    still open closed, so nothing after the cut renders inside a half-made element."""
    if len(text) <= limit:
        return text
    room = limit - len(note) - 40  # 40: the closing tags (one element of each kind at most open)
    while room > 0:
        head = text[:room]
        if "\n" in head:
            head = head[: head.rindex("\n")]
        else:
            amp, lt = head.rfind("&"), head.rfind("<")
            if amp > head.rfind(";"):
                head = head[:amp]
            if lt > head.rfind(">"):
                head = head[:lt]
        stack: List[str] = []
        for m in _TAG.finditer(head):
            if not m.group(1):
                stack.append(m.group(2))
            elif m.group(2) in stack:
                del stack[len(stack) - 1 - stack[::-1].index(m.group(2)):]
        closers = "".join(("\n\n" if t == "details" else "") + f"</{t}>" for t in reversed(stack))
        out = head + closers + note
        if len(out) <= limit:
            return out
        room -= len(out) - limit
    return note[:limit]


__all__ = ["render_markdown", "format_markdown", "cut_markup", "esc", "code"]

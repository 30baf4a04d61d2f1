"""The report as Markdown: the PR comment body (without the hidden marker), the step summary.

Pure. Layout: headline, totals table, budget breaches, per-module tables folded, unchanged
configs folded, "could not count", footer. Anything that comes from the repository or from an
exception (paths, module and op names, messages, rule names) goes through ``code`` or ``esc``:
every Markdown/HTML-active character becomes a numeric entity and newlines become a visible mark,
so it cannot break a table, open a code span or inject HTML; ``code`` wraps it in ``<code>``
(GitHub never turns ``@name`` inside code into a mention) and ``esc`` breaks ``@name`` with a word
joiner. Nor can it become a link: GitHub's cmark-gfm autolinks bare URLs, ``www.`` names and
e-mail addresses in text, even inside ``<code>``, so the ``:`` of ``://`` and the dot of ``www.``
become entities (the autolinker looks for them literally) and every ``@`` gets a word joiner.
Over ``max_chars``, parts are cut in this order: per-module tables, the unchanged list, the
could-not-count details, and only then rows of the totals table (each cut says so); a last-resort
cut (:func:`cut_markup`) never ends inside an entity or leaves a tag open.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Optional, Sequence

from mcx_review.units import ARROW, format_change, format_count, format_shape
from mcx_review.render.display import (FAILED, METRIC_NAMES, METRICS, PENDING, Row, count_summary,  # noqa: F401
                             depth_rows, display_prefix, error_label, fails, forwards, headline as view_headline,
                             indirect_reasons, largest_flops_change, limited, metafile_lines, metafile_problems,
                             module_rows, number_cells, reason_view, short, short_sha, split_configs, status_notes,
                             uncalled_by_side, unsupported_ops, warnings_by_message, warns, where_more, where_rows)

FAIL_MARK = "\u274c"
WARN_MARK = "\u26a0\ufe0f"
MAX_MESSAGE = 1000  # characters of one exception/warning message shown in the comment
MAX_METAFILE_LINES = 60  # lines of the metafile section

# Inline-active in GitHub Markdown (emphasis, code, links, HTML, entities, tables, strikethrough,
# math, images). Block syntax (#, -, +, >) cannot start a line here: cells and list items always
# put our text after other text, and newlines never pass through.
_ACTIVE = set("\\`*[]<>&|~$!")
_INVISIBLE = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"}


def _entities(text: str, joiners: bool = False) -> str:
    out = []
    for i, ch in enumerate(text):
        if joiners and ch in "@#":  # no mention, no issue link, no e-mail autolink
            out.append(ch + "\u2060")
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


# ---------------------------------------------------------------- Markdown pieces

HEADER = "| config | input | FLOPs | params | activations |\n|---|---|---|---|---|"


def headline(shown: Sequence[Dict[str, Any]], unchanged: Sequence[Dict[str, Any]]) -> str:
    h = view_headline(shown, unchanged)
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


def reason_text(reason: str, prefix: str) -> str:
    """``inherits <code>X</code>``, ``uses <code>ResNet</code> (<code>file.py</code>)``."""
    r = reason_view(reason)
    text = esc(r.word)
    if r.name:
        text += " " + code(r.name) + (f" ({code(short(r.target, prefix))})" if r.target else "")
    elif r.target:
        text += " " + code(short(r.target, prefix))
    return text


def _config_cell(entry: Dict[str, Any], prefix: str) -> str:
    mark = f"{FAIL_MARK} " if fails(entry) else f"{WARN_MARK} " if warns(entry) or limited(entry) else ""
    notes: List[str] = []
    if entry.get("old_path"):
        notes.append(f"renamed from {code(short(entry['old_path'], prefix))}")
    notes += [esc(n) for n in status_notes(entry)]
    reasons = indirect_reasons(entry)
    if reasons:
        text = reason_text(reasons[0], prefix)
        if len(reasons) > 1:
            text += f" +{len(reasons) - 1} more"
        notes.append(text)
    cell = mark + code(short(entry["path"], prefix))
    return cell + ("<br><sub>" + " \u00b7 ".join(notes) + "</sub>" if notes else "")


def table_row(entry: Dict[str, Any], prefix: str) -> str:
    return "| " + " | ".join([_config_cell(entry, prefix)] + number_cells(entry)) + " |"


def _rows_table(first: str, rows: Sequence[Row]) -> List[str]:
    lines = [f"| {first} | FLOPs | params | activations |", "|---|---|---|---|"]
    for name, where, cells in rows:
        label = esc(name) + (f" <sub>({where})</sub>" if where else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def module_table(entry: Dict[str, Any], depth: Optional[int] = None) -> str:
    """The per-module table of one config ('' when neither side has modules): top-level modules,
    or every module to ``depth`` (``--depth``), then where it changed."""
    rows = depth_rows(entry, depth) or module_rows(entry)
    if not rows:
        return ""
    lines = _rows_table("module", rows)
    lines.insert(2, "| **model** | " + " | ".join(number_cells(entry)[1:]) + " |")
    where = where_rows(entry)
    if where:
        more = where_more(entry)
        lines += ["", "Where it changed (deepest modules that differ, largest FLOPs change first"
                  + (f"; {more} more" if more else "") + "):", ""]
        lines += _rows_table("module", where)
    return "\n".join(lines)


def module_details(configs: Sequence[Dict[str, Any]], prefix: str, depth: Optional[int] = None) -> List[str]:
    """One folded per-module table per distinct table, in table order: configs with identical
    figures (a base file's inheritors) share one, named together in its summary."""
    groups: Dict[str, List[str]] = {}
    for c in configs:
        table = module_table(c, depth)
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
        why = " \u00b7 " + reason_text(reasons[0], prefix) if reasons else ""
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


def metafile_block(shown: Sequence[Dict[str, Any]], prefix: str, problems: Sequence[str] = ()) -> str:
    """The metafile verdicts of the shown configs: stale ones first, then legacy, fixed, missing
    or not compared entries; configs that agree in one line."""
    order = ("stale", "legacy", "fixed", "no entry", "not compared", "agrees")
    lines, agree = [], []
    for status in order:
        for c in shown:
            for line in metafile_lines(c):
                if line.status != status or (status == "agrees" and not line.details):
                    continue
                mark = (f"{FAIL_MARK} " if fails(c) else f"{WARN_MARK} ") if status == "stale" else ""
                where = f" ({code(line.name)} in {code(short(line.file, prefix))})" if line.name and line.file else ""
                details = ": " + "; ".join(esc(d) for d in line.details) if line.details else ""
                lines.append(f"- {mark}{code(short(c['path'], prefix))}: {esc(line.label)}{where}{details}")
    for c in shown:
        if any(line.status == "agrees" and not line.details for line in metafile_lines(c)):
            agree.append(code(short(c["path"], prefix)))
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


def error_lines(entry: Dict[str, Any], prefix: str) -> List[str]:
    name = code(short(entry["path"], prefix))
    lines = []
    for e in entry.get("errors") or []:
        labelled = error_label(entry, e)
        if labelled is None:
            continue
        label, failing = labelled
        if failing:
            lines.append(f"- {FAIL_MARK} {name} **{esc(label)}**: {code(_clip(e.get('message', '')))}")
        elif e.get("limit"):
            lines.append(f"- {WARN_MARK} {name} {esc(label)}: {code(_clip(e.get('message', '')))}")
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
    rev = str(base.get("rev") or "")
    if re.fullmatch(r"[0-9a-fA-F]{40}", rev):  # a full SHA (the action passes the PR's base commit)
        rev = "" if rev.lower() == str(base.get("sha") or "").lower() else rev[:7]
    if rev:
        base_text += f" (merge-base with {code(rev)})"
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
    budgets = "\n\n".join(p for p in (budgets, metafile_block(shown, prefix, metafile_problems(report))) if p)
    details = module_details(shown, prefix, report.get("depth"))
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


__all__ = ["render_markdown", "cut_markup", "esc", "code", "split_configs", "number_cells", "module_rows",
           "largest_flops_change", "count_summary"]

"""Delivering a report: stdout or a file in the chosen format, extra JSON/Markdown files, the
GitHub step summary and outputs."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any, Optional, TextIO

from mcx_review.log import Log, inert_json, inert_lines
from mcx_review.report.budgets import budget_level
from mcx_review.report.outcome import has_changes
from mcx_review.report.types import Report, dumps

FORMATS = ("text", "md", "json")


def use_color(stream: Any = sys.stdout) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def render(report: Report, fmt: str, color: bool = False, terminal: bool = False) -> str:
    """The report in ``fmt``; the renderers are imported only when asked for (rich is slow to load)."""
    if fmt == "json":
        return dumps(report)
    if fmt == "md":
        from mcx_review.render.markdown import render_markdown
        return render_markdown(report)
    from mcx_review.render.text import render_text
    width = shutil.get_terminal_size((100, 24)).columns if color or terminal else 100
    return render_text(report, color=color, width=width, wrap=terminal)


def emit(report: Report, fmt: Optional[str], path: Optional[Path], stream: Optional[TextIO] = None) -> None:
    fmt = fmt or "text"
    stream = stream or sys.stdout
    if path is None:
        terminal = hasattr(stream, "isatty") and stream.isatty()
        text = render(report, fmt, color=fmt == "text" and use_color(stream), terminal=terminal)
        text = inert_json(text) if fmt == "json" else inert_lines(text)  # stdout is the Actions log
        stream.write(text if text.endswith("\n") else text + "\n")
        stream.flush()
    else:
        write(path, render(report, fmt))


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


def deliver(report: Report, fmt: Optional[str], output: Optional[Path], json_path: Optional[Path],
            md_path: Optional[Path], log: Log) -> None:
    """Writes every output asked for (``log`` names each file written), and in GitHub Actions the
    step summary and the step outputs."""
    emit(report, fmt, output)
    if output:
        log(f"report written to {output}")
    if json_path:
        write(json_path, dumps(report))
        log(f"JSON report written to {json_path}")
    if md_path:
        write(md_path, render(report, "md"))
        log(f"Markdown written to {md_path}")
    if os.environ.get("GITHUB_ACTIONS") == "true":
        _github(report, json_path, md_path)


def _github(report: Report, json_path: Optional[Path], md_path: Optional[Path]) -> None:
    from mcx_review.github import env as github_env

    github_env.append_step_summary(render(report, "md"))
    github_env.set_outputs({
        "report-json": str(json_path.resolve()) if json_path else "",
        "report-markdown": str(md_path.resolve()) if md_path else "",
        "changed": "true" if has_changes(report) else "false",
        "budget-exceeded": "true" if budget_level(report) else "false",
    })

"""Delivering a report: stdout or a file in the chosen format, extra JSON/Markdown files, the
GitHub step summary and outputs, progress on stderr, and the exit code."""
from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from mcx_review.compare import head_failed
from mcx_review.report import Report, dumps

Log = Callable[[str], None]


def use_color(stream: Any = sys.stdout) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def render(report: Report, fmt: str, color: bool = False, terminal: bool = False) -> str:
    if fmt == "json":
        return dumps(report)
    if fmt == "md":
        from mcx_review.render_markdown import render_markdown
        return render_markdown(report)
    import shutil

    from mcx_review.render_text import render_text
    width = shutil.get_terminal_size((100, 24)).columns if color or terminal else 100
    return render_text(report, color=color, width=width, wrap=terminal)


def emit(report: Report, fmt: Optional[str], path: Optional[Path]) -> None:
    fmt = fmt or "text"
    if path is None:
        terminal = hasattr(sys.stdout, "isatty") and sys.stdout.isatty()
        text = render(report, fmt, color=fmt == "text" and use_color(), terminal=terminal)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    else:
        _write(path, render(report, fmt))


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


def has_changes(report: Report) -> bool:
    return any(c["status"] != "unchanged" for c in report.get("configs", []))


def exit_code(report: Report) -> int:
    from mcx_review.budgets import budget_level

    from mcx_review import metafile

    configs = report.get("configs", [])
    if any(head_failed(c) or metafile.fails(c) for c in configs) or budget_level(report) == "fail":
        return 1
    return 0


def deliver(report: Report, args: argparse.Namespace, log: Log) -> int:
    emit(report, args.format, args.output)
    if args.output:
        log(f"report written to {args.output}")
    if args.json_path:
        _write(args.json_path, dumps(report))
    if args.md_path:
        from mcx_review.render_markdown import render_markdown
        _write(args.md_path, render_markdown(report))
    if os.environ.get("GITHUB_ACTIONS") == "true":
        _github(report, args)
    return exit_code(report)


def _github(report: Report, args: argparse.Namespace) -> None:
    from mcx_review import github_env
    from mcx_review.budgets import budget_level
    from mcx_review.render_markdown import render_markdown

    github_env.append_step_summary(render_markdown(report))
    github_env.set_outputs({
        "report-json": str(args.json_path.resolve()) if args.json_path else "",
        "report-markdown": str(args.md_path.resolve()) if args.md_path else "",
        "changed": "true" if has_changes(report) else "false",
        "budget-exceeded": "true" if budget_level(report) else "false",
    })


class Progress:
    """Analysis progress on stderr: a rich bar on a terminal, plain lines elsewhere (CI logs)."""

    def __init__(self, log: Log, live: Optional[bool] = None) -> None:
        self.log = log
        self.live = sys.stderr.isatty() if live is None else live
        self.done = 0
        self.total = 0
        self.lock = threading.Lock()
        self._bar: Any = None
        self._task: Any = None

    def begin(self, total: int) -> None:
        self.total = total
        if self.live and total:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn

            self._bar = Bar(TextColumn("analysing"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.description}"), console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task("", total=total)
            self._bar.start()

    def __call__(self, side: str, config: str, result: Dict[str, Any]) -> None:
        with self.lock:
            self.done += 1
            if self._bar is not None:
                self._bar.update(self._task, advance=1, description=f"{side} {config}")
            else:
                state = "ok" if result.get("ok") else "error"
                self.log(f"[{self.done}/{self.total or '?'}] {side} {config}: {state}")

    def end(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def print_targets(targets: List[Any]) -> None:
    if not targets:
        print("no config is affected by this change")
        return
    width = max(len(t.path) for t in targets)
    for t in targets:
        print(f"{t.path:<{width}}  {'; '.join(t.reasons)}")

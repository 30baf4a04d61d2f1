"""Delivering a report: stdout or a file in the chosen format, extra JSON/Markdown files, the
GitHub step summary and outputs, progress on stderr, and the exit code."""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

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


EXIT_FAILED = 1  # a fail-level budget, or a config that fails to analyse at head
EXIT_USAGE = 2  # bad arguments, git or settings error
EXIT_NOTHING_COUNTED = 3  # configs under review but no number counted: see counted_nothing()

# pip names of modules whose distribution is called otherwise
PIP_NAMES = {"mmcv": "mmcv-lite", "cv2": "opencv-python", "PIL": "Pillow", "yaml": "PyYAML",
             "sklearn": "scikit-learn", "skimage": "scikit-image", "git": "GitPython"}
_NO_MODULE = re.compile(r"No module named '([\w.]+)'")
_CANNOT_IMPORT = re.compile(r"default_scope '([\w.]+)' cannot be imported \((.*)\)$")


def _errors(report: Report) -> List[Tuple[str, str, str]]:
    return [(c["path"], e["side"], e["message"]) for c in report.get("configs", []) for e in c.get("errors", [])]


def _own_module(name: str, root: Optional[Path]) -> bool:
    top = name.split(".")[0]
    return root is not None and ((root / top).is_dir() or (root / f"{top}.py").is_file())


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None  # locates, does not import
    except (ImportError, ValueError):
        return False


def counted_nothing(report: Report, root: Optional[Path] = None) -> Optional[str]:
    """Why the review cannot pass although no config failed *because of the change*, as one line
    naming the cause and the fix; None when it can. Either the analysis environment lacks a
    dependency (an import of an installed package failed: ``root``'s own modules do not count), or
    every config under review fails at base and head alike, so not one number was counted."""
    for path, side, message in _errors(report):
        missing = _NO_MODULE.search(message)
        if missing and not _own_module(missing.group(1), root):
            name = missing.group(1)
            module = name.split(".")[0]
            where = f"No module named '{name}' while analysing {path} at {side}"
            if name != module and _installed(module):  # e.g. mmcv-lite has no compiled mmcv._ext
                return (f"the installed {module} has no {name} ({where}); install a {module} build "
                        f"that provides it" + (" (the full mmcv instead of mmcv-lite)" if module == "mmcv" else ""))
            return (f"the analysis environment cannot import {module} ({where}); install it where "
                    f"mcx-review runs, e.g. pip install {PIP_NAMES.get(module, module)}")
        scope = _CANNOT_IMPORT.search(message)
        if scope:
            return (f"the analysis environment cannot import {scope.group(1)} ({scope.group(2)}, "
                    f"{path} at {side}); install a {scope.group(1)} that imports with the installed "
                    f"packages (see requirements/dev.txt for versions tested together)")
    configs = report.get("configs", [])
    if configs and all(_failed_everywhere(c) for c in configs):  # one of several stays a note
        path, _, message = _errors(report)[0]
        return (f"nothing was counted: every config under review ({len(configs)}) fails at base and "
                f"head alike, e.g. {path}: {message}")
    return None


def _failed_everywhere(entry: Dict[str, Any]) -> bool:
    """Failed at base and at head: nothing of this config was measured. A resource limit is not a
    failure (a warning of its own, issue 8), so a config stopped by one does not count here."""
    return {e["side"] for e in entry.get("errors", []) if not e.get("limit")} == {"base", "head"}


def exit_code(report: Report, root: Optional[Path] = None) -> int:
    from mcx_review.budgets import budget_level

    from mcx_review import metafile

    if counted_nothing(report, root):
        return EXIT_NOTHING_COUNTED
    configs = report.get("configs", [])
    if any(head_failed(c) or metafile.fails(c) for c in configs) or budget_level(report) == "fail":
        return EXIT_FAILED
    return 0


def deliver(report: Report, args: argparse.Namespace, log: Log, root: Optional[Path] = None) -> int:
    """Writes every output the arguments ask for (``log`` names each file written); returns the
    exit code."""
    emit(report, args.format, args.output)
    if args.output:
        log(f"report written to {args.output}")
    if args.json_path:
        _write(args.json_path, dumps(report))
        log(f"JSON report written to {args.json_path}")
    if args.md_path:
        from mcx_review.render_markdown import render_markdown
        _write(args.md_path, render_markdown(report))
        log(f"Markdown written to {args.md_path}")
    if os.environ.get("GITHUB_ACTIONS") == "true":
        _github(report, args)
    return exit_code(report, root)


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

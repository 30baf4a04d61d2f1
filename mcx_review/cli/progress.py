"""What the terminal shows while a review runs: analysis progress and the ``--list`` of targets."""
from __future__ import annotations

import sys
import threading
from typing import Any, Dict, Optional, Sequence

from mcx_review.log import Log, inert
from mcx_review.select.targets import Target


class ProgressBar:
    """Analysis progress on stderr: a rich bar on a terminal, plain lines elsewhere (CI logs).
    Called as the resolver's ``OnAnalysed``; ``begin``/``end`` bracket the analyses."""

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
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._bar = Progress(TextColumn("analysing"), BarColumn(), MofNCompleteColumn(),
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


def print_targets(targets: Sequence[Target]) -> None:
    if not targets:
        print("no config is affected by this change")
        return
    width = max(len(t.path) for t in targets)
    for t in targets:
        print(inert(f"{t.path:<{width}}  {'; '.join(t.reasons)}"))

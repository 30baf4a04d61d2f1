"""One way to tell the user something: a line on stderr, so JSON on stdout stays clean."""
from __future__ import annotations

import sys
from typing import Callable

Log = Callable[[str], None]  # what every stage is given to report progress, hints and problems


def log(message: str) -> None:
    print(f"mcx-review: {message}", file=sys.stderr, flush=True)


def quiet(message: str) -> None:
    """A Log that drops everything (``--quiet``, library use)."""

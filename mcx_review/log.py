"""One way to tell the user something: a line on stderr, so JSON on stdout stays clean.

Every line is inert in a GitHub Actions log whatever it holds. The runner reads a step's output
line by line (``\\n``, ``\\r``) and treats a line as a workflow command when, after leading
whitespace, it starts with ``::`` (``::error title=x::forged``, ``::stop-commands::t``), or when it
holds the legacy ``##[`` anywhere (``##[error]forged``, ``##[stop-commands]t``). So :func:`log`
passes its message through :func:`inert` (one line: no line break of any kind survives, ``##[``
and a leading ``::`` are broken with a word joiner), and a multi-line output (the text report,
Markdown or JSON on stdout) goes through :func:`inert_lines` or :func:`inert_json`, which leave
the layout alone and only defuse what the runner would read as a command.
"""
from __future__ import annotations

import re
import sys
import unicodedata
from typing import Callable

Log = Callable[[str], None]  # what every stage is given to report progress, hints and problems


def log(message: str) -> None:
    print(f"mcx-review: {inert(message)}", file=sys.stderr, flush=True)


def quiet(message: str) -> None:
    """A Log that drops everything (``--quiet``, library use)."""


JOINER = "\u2060"  # not whitespace to the runner's TrimStart, invisible in the log
_LEGACY = "##["
_LINES = re.compile(r"\r\n|\r|\n")


def inert(text: object) -> str:
    """One log line: line breaks of every kind shown as ``↵``, other control and invisible
    characters as U+FFFD, ``##[`` broken, a leading ``::`` broken."""
    out = []
    for ch in str(text).replace("\r\n", "\n"):
        kind = unicodedata.category(ch)
        if ch in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029":
            out.append(" \u21b5 ")
        elif ch == "\t":
            out.append(" ")
        elif kind in ("Cc", "Cf"):
            out.append("\ufffd")
        else:
            out.append(ch)
    return _guard("".join(out))


def _guard(line: str) -> str:
    line = line.replace(_LEGACY, "##" + JOINER + "[")
    if line.lstrip().startswith("::"):
        line = JOINER + line
    return line


def inert_lines(text: str) -> str:
    """Multi-line output with every line defused (see the module doc); line ends kept."""
    parts = _LINES.split(text)
    ends = _LINES.findall(text)
    return "".join(_guard(p) + (ends[i] if i < len(ends) else "") for i, p in enumerate(parts))


def inert_json(text: str) -> str:
    """JSON text defused without changing what it decodes to: ``[`` after ``##`` (only possible
    inside a string) written as ``\\u005b``. A JSON line never starts with ``::``."""
    return text.replace(_LEGACY, "##\\u005b")


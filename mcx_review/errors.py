"""The expected failures and the exit code each maps to; ``cli.app.main`` is the one handler.

An expected failure (bad arguments, a git or settings problem, an unreadable artifact) is a
:class:`McxError`: one line on stderr naming the file and the cause, never a traceback. Anything
else is a bug and keeps its traceback.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # a fail-level budget or metafile verdict, or a config that fails to analyse at head
EXIT_USAGE = 2  # bad arguments, git, settings or input-file error
EXIT_NOTHING_COUNTED = 3  # configs under review but no number counted (report.outcome.counted_nothing)
EXIT_INTERRUPTED = 130


class McxError(Exception):
    """An expected failure: ``str(exc)`` is the whole message, ``prefix`` says what kind."""

    exit_code = EXIT_USAGE
    prefix = ""

    def line(self) -> str:
        return f"{self.prefix}{self}"


class UsageError(McxError):
    """The command line asks for something that cannot be done (a FILE outside the repo...)."""

    prefix = "error: "

"""Repo-relative path globs, as settings spell them (``configs/**/*.py``). Pure.

``*``, ``?`` and ``[..]`` match within one path component, ``**`` any number of components (zero
included). :func:`literal_dir` is the one answer to "under which directory can a match lie?",
used to walk only that directory, to tell model code from configs, and to find metafiles.
"""
from __future__ import annotations

from fnmatch import fnmatchcase
from typing import List, Sequence, Tuple

GLOB_CHARS = "*?["


def split(pattern: str) -> Tuple[str, ...]:
    """Path components, without empty ones and ``.`` (``./configs//x`` -> ``('configs', 'x')``)."""
    return tuple(p for p in pattern.strip("/").split("/") if p not in ("", "."))


def _match(parts: Tuple[str, ...], pats: Tuple[str, ...]) -> bool:
    if not pats:
        return not parts
    if pats[0] == "**":
        return _match(parts, pats[1:]) or (bool(parts) and _match(parts[1:], pats))
    return bool(parts) and fnmatchcase(parts[0], pats[0]) and _match(parts[1:], pats[1:])


def glob_match(path: str, pattern: str) -> bool:
    """Does repo-relative ``path`` match ``pattern``?"""
    return _match(split(path), split(pattern))


def excluded(path: str, excludes: Sequence[str]) -> bool:
    """A path is excluded when it, or a directory above it, matches an exclude pattern."""
    parts = split(path)
    return any(_match(parts[:i], split(p)) for p in excludes for i in range(1, len(parts) + 1))


def literal_dir(pattern: str) -> str:
    """The deepest directory every match of ``pattern`` lies under ('' for the repository root):
    its leading components up to the first one with a glob character, never its last component
    (that one names the matches themselves, literal or not: ``configs/resnet`` matches the path
    ``configs/resnet``, which lies under ``configs``)."""
    prefix: List[str] = []
    for part in split(pattern)[:-1]:
        if any(c in part for c in GLOB_CHARS):
            break
        prefix.append(part)
    return "/".join(prefix)


def literal_dirs(patterns: Sequence[str]) -> List[str]:
    """:func:`literal_dir` of each pattern, each once, sorted."""
    return sorted({literal_dir(p) for p in patterns})


def under(path: str, directory: str) -> bool:
    """Is repo-relative ``path`` inside ``directory`` ('' is the whole repository)?"""
    return directory == "" or path == directory or path.startswith(directory + "/")

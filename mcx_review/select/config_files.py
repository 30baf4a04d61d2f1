"""Static impact analysis: which configs a change puts under review, without executing any config.

* :func:`discover_configs` -- the reviewable configs of a tree (settings' globs);
* :func:`base_closure` / :func:`configs_inheriting` -- `_base_` inheritance (see ``bases.py``);
* :class:`CodeIndex` -- registered types and imports of the tree's code (see ``code_index.py``).

Every path in and out is repo-relative posix; ``root`` is a tree of one revision.
"""
from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from mcx_review.globs import excluded, glob_match, literal_dir
from mcx_review.select.bases import CONFIG_SUFFIXES, BaseGraph, base_closure
from mcx_review.select.code_index import CodeIndex, walk_files

__all__ = ["BaseGraph", "CodeIndex", "base_closure", "configs_inheriting", "discover_configs",
           "glob_match", "reason_changed", "reason_inherits", "reason_uses_code", "reason_uses_definition"]

NOT_CONFIGS = frozenset({"metafile.yml", "metafile.yaml", "model-index.yml", "model-index.yaml",
                         "__init__.py"})


# ---------------------------------------------------------------- reasons (ConfigReport.reasons)

def reason_changed() -> str:
    return "changed"


def reason_inherits(base_file: str) -> str:
    return f"inherits {base_file}"


def reason_uses_code(source_file: str) -> str:
    """The file-level rule: the model imports the file (``--impact files``, or module-level
    statements other than definitions changed in it)."""
    return f"uses code in {source_file}"


def reason_uses_definition(name: str, source_file: str) -> str:
    """The definition-level rule: the model can reach top-level ``name`` of ``source_file``."""
    return f"uses {name} ({source_file})"


# ---------------------------------------------------------------- globs

# ---------------------------------------------------------------- discovery

def is_fragment(path: str) -> bool:
    """A `_base_/` fragment: inherited by configs, never reviewed on its own."""
    return "_base_" in path.split("/")[:-1]


def discover_configs(root: Path, include: Sequence[str] = ("configs/**/*.py",),
                     exclude: Sequence[str] = ()) -> List[str]:
    """Repo-relative posix paths of the reviewable configs in ``root``, sorted: files matching an
    ``include`` glob and no ``exclude`` glob, with a config suffix (py / yaml / yml / json), not
    `_base_/` fragments, not metafile.yml / model-index.yml / ``__init__.py``. Walks start at each
    glob's literal prefix and never enter ``.git``, virtual environments or ``build``."""
    root = Path(root)
    found = set()
    for pattern in include:
        start = literal_dir(pattern)
        if start and not (root / start).is_dir():
            continue
        for rel in walk_files(root, start, CONFIG_SUFFIXES):
            if (glob_match(rel, pattern) and posixpath.basename(rel) not in NOT_CONFIGS
                    and not is_fragment(rel) and not excluded(rel, exclude)):
                found.add(rel)
    return sorted(found)


# ---------------------------------------------------------------- inheritance

def configs_inheriting(root: Path, configs: Iterable[str], changed: "set[str]",
                       graph: Optional[BaseGraph] = None) -> Dict[str, str]:
    """config -> the changed file it inherits that puts it under review (the nearest one; ties in
    declaration order), for each config in ``configs`` that inherits a changed file. Pass a
    ``graph`` to share parsing across calls and read ``graph.problems`` afterwards."""
    graph = graph if graph is not None else BaseGraph(root)
    changed = set(changed)
    out: Dict[str, str] = {}
    if not changed:
        return out
    for cfg in sorted(set(configs)):
        hit = graph.first_inherited(cfg, changed)
        if hit is not None:
            out[cfg] = hit
    return out

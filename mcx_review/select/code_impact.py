"""Which configs a code change affects, definition by definition (``--impact definitions``).

The steps, cheapest first, so a change no model can reach costs no config resolution and no worker:

1. compare each changed ``.py`` file per top-level definition (:mod:`mcx_review.select.definitions`);
   docstring / comment / formatting edits stop here;
2. a text pass: a file that registers nothing and that no other file names cannot be reached
   (a tools/ script, setup.py, a test, a new module nothing imports yet);
3. on each revision's code index: the registered types whose model reaches a changed definition
   (or imports a file whose other module-level statements changed);
4. only configs whose file closure names such a type (or loads changed code by ``custom_imports``)
   are resolved, and each is checked against its own types.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Protocol, Sequence, Set, Tuple

from mcx_review.report.types import SIDES
from mcx_review.select import config_files as impact
from mcx_review.select.bases import BaseGraph
from mcx_review.select.code_index import CodeIndex, walk_files
from mcx_review.select.definitions import FileChange, Reach, compare_sources, hits


class Resolves(Protocol):
    """What selection needs of the measure stage's resolver (:class:`mcx_review.measure.resolver.Resolver`):
    one revision's static indexes, and resolved configs (their registered types)."""

    def index(self, side: str) -> CodeIndex: ...

    def reach(self, side: str) -> Reach: ...

    def graph(self, side: str) -> BaseGraph: ...

    def resolve_many(self, side: str, paths: Sequence[str]) -> Dict[str, Dict[str, Any]]: ...

    def used(self, side: str, path: str) -> Set[str]: ...


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read(tree: Path, rel: str) -> Optional[str]:
    try:
        return (tree / rel).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def definition_changes(trees: Dict[str, Path], code: Sequence[str]) -> Dict[str, FileChange]:
    """Changed code files whose top-level definitions (or other module-level statements) differ."""
    out = {}
    for rel in code:
        change = compare_sources(rel, _read(trees["base"], rel), _read(trees["head"], rel))
        if not change.empty:
            out[rel] = change
    return out


def _affected_types(resolved: Resolves, side: str, changes: Dict[str, FileChange]) -> Set[str]:
    """Registered names (of this side's code) whose model can reach a changed definition, or
    imports a file whose other module-level statements changed."""
    index, reach = resolved.index(side), resolved.reach(side)
    names = sorted(index.registry)
    out = {n for n in names if hits(reach.of_type(n), changes, side)}
    other = {p for p, c in changes.items() if c.other}
    if other and other & index.files_for_types(names):
        out |= {n for n in names if other & (index.files_for_types([n]) | reach.files(reach.of_type(n)))}
    return out


MAX_DEFINITION_REASONS = 20
_MODULE_RE = re.compile(r"""['"]([A-Za-z_][\w.]*)['"]""")


def _mentions(trees: Dict[str, Path], side: str, configs: Sequence[str], names: Set[str],
              resolved: Resolves, changed: Set[str], outside: bool = True) -> List[str]:
    """Configs whose file closure (the config and its `_base_` files) names one of ``names``, or
    (``outside``) inherits from a package (``'mmdet::...'``) or by a ``read_base()`` import of an
    installed module -- what those name lies outside this tree --, or loads by ``custom_imports`` a
    module of this tree whose files hold a changed one."""
    graph = resolved.graph(side)
    pattern = re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, names))) + r")\b") if names else None
    texts: Dict[str, str] = {}
    index = resolved.index(side)
    out = []
    for cfg in configs:
        closure = [cfg] + graph.closure(cfg)
        for rel in closure:
            if rel not in texts:
                texts[rel] = _read(trees[side], rel) or ""
        text = "\n".join(texts[rel] for rel in closure)
        if pattern is not None and pattern.search(text):
            out.append(cfg)
        elif outside and graph.inherits_outside(cfg):  # inherits a file this tree does not hold: types unknown here
            out.append(cfg)
        elif "custom_imports" in text:
            modules = {m for m in _MODULE_RE.findall(text) if index.module_file(m)}
            if modules and changed & index.files_for_types((), sorted(modules)):
                out.append(cfg)
    return out


def _maybe_reachable(trees: Dict[str, Path], changes: Dict[str, FileChange]) -> bool:
    """A cheap text pass before any index is built: can a model reach one of these files at all?
    Only if a file registers something, or another Python file of either revision names its
    module (an import, a ``custom_imports`` string). A tools/ script, setup.py, a test or a new
    module nothing imports yet is decided here."""
    words = set()
    for rel in changes:
        for side in SIDES:
            if "register_module" in (_read(trees[side], rel) or ""):
                return True
        parts = rel[:-3].split("/")
        words.add(parts[-2] if parts[-1] == "__init__" and len(parts) > 1 else parts[-1])
    pattern = re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, words))) + r")\b")
    for side in SIDES:
        for rel in walk_files(trees[side], suffixes=(".py", ".yaml", ".yml", ".json")):
            if rel in changes or (not rel.endswith(".py") and _size(trees[side] / rel) > 1 << 20):
                continue  # a data file, not a config
            if pattern.search(_read(trees[side], rel) or ""):
                return True
    return False


def _named(found: List[Tuple[str, str]], index: Any, types: Sequence[str]) -> List[Tuple[str, str]]:
    """The changed definitions a reason names, per file: the config's own registered types first,
    then other definitions; import bindings only where nothing else in that file changed (a new
    module's ``import torch.nn as nn`` is not why its class is reviewed)."""
    own = {t.rpartition(".")[2] for t in types if isinstance(t, str)}
    by_file: Dict[str, List[str]] = {}
    for rel, name in found:
        by_file.setdefault(rel, []).append(name)
    out = []
    for rel, names in by_file.items():
        bindings = index.info(rel).bindings

        def imported(name: str) -> bool:
            b = bindings.get(name)
            return bool(b) and all(x[0] in ("from", "import") for x in b)

        kept = [n for n in names if not imported(n)] or names
        out += [(rel, n) for n in sorted(kept, key=lambda n: (n not in own, n))]
    return out


def definition_impact(trees: Dict[str, Path], configs: Dict[str, List[str]], code: Sequence[str],
                      resolved: Resolves) -> List[Tuple[str, str, str]]:
    """(side, config, reason) for each config whose model can reach a changed definition, as
    that side's code has it. Only configs whose files name an affected registered type (or load
    changed code by ``custom_imports``) are resolved; none when no model reaches the change."""
    changes = definition_changes(trees, code)
    if not changes or not _maybe_reachable(trees, changes):
        return []
    other = {p for p, c in changes.items() if c.other}
    out: List[Tuple[str, str, str]] = []
    for side in SIDES:
        # only a type a model can be built from can make a config's model reach the change: a
        # dataset or metric named by every config's data section would resolve the whole zoo
        names = resolved.index(side).model_types(_affected_types(resolved, side, changes))
        # a config inheriting from outside the tree may name any type that existed before the
        # change; a type this change creates (a new module) it cannot have been written against
        existed = bool(names & set(resolved.index("base").registry))
        candidates = _mentions(trees, side, configs[side], names, resolved, set(changes), outside=existed)
        if not candidates:
            continue
        results = resolved.resolve_many(side, candidates)
        reach, index = resolved.reach(side), resolved.index(side)
        for cfg in candidates:
            r = results[cfg]
            if not r.get("ok"):
                continue
            nodes = reach.of_types(r["types"])
            named = _named(hits(nodes, changes, side), index, r["types"])
            for rel, name in named[:MAX_DEFINITION_REASONS]:
                out.append((side, cfg, impact.reason_uses_definition(name, rel)))
            if len(named) > MAX_DEFINITION_REASONS:  # the report caps reasons at 100
                out.append((side, cfg, f"uses {len(named) - MAX_DEFINITION_REASONS} more changed definitions"))
            if other:
                files = index.files_for_types(r["types"], r.get("custom_imports", ())) | reach.files(nodes)
                for rel in sorted(files & other):
                    out.append((side, cfg, impact.reason_uses_code(rel)))
    return out

"""Where in the model a change is: per-module numbers at every depth, compared. Pure, no torch.

The analysis stores every module's numbers from its one fvcore trace as a compact ``tree``:
``[[name, flops, params, activations], ...]`` in model order, all-zero modules left out. From the
base and head trees:

* :func:`where` -- the deepest modules that account for the change. From the model down, a module
  whose numbers differ is explained by its differing children, unless its children changed as a
  set (blocks added or removed: ``backbone.layer3`` of a deeper ResNet), or every child differs
  (a larger input moves every stage: ``backbone``), or none does (its own parameters); then the
  module itself is the answer. Rows are ordered by the largest absolute FLOPs change, then params.
* :func:`depth_rows` -- every module down to a depth, both sides, as rows of a diff table.

Trees are large on big models, so a report keeps them only where they are still needed
(:func:`attach`): the drill-down rows are computed once and the trees dropped, except for an entry
still waiting for another shard's side (``merge`` computes its rows) or pruned to ``--depth``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mcx_review.report.types import SIDES, ConfigReport, WhereRow

Numbers = Tuple[int, int, int]  # flops, params, activations
FIELDS = ("flops", "params", "activations")


def as_map(tree: Optional[Sequence[Sequence[Any]]]) -> Dict[str, Numbers]:
    return {str(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in tree or []}


def _numbers(stats: Mapping[str, Any]) -> Numbers:
    flops, params, activations = (int(stats[f]) for f in FIELDS)
    return flops, params, activations


def depth(name: str) -> int:
    return name.count(".") + 1 if name else 0


def _parent(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


def _children(names: Sequence[str]) -> Dict[str, List[str]]:
    kids: Dict[str, List[str]] = {}
    for n in names:
        kids.setdefault(_parent(n), []).append(n)
    return kids


def _row(name: str, base: Mapping[str, Numbers], head: Mapping[str, Numbers]) -> WhereRow:
    b, h = base.get(name), head.get(name)
    return {"module": name, "base": dict(zip(FIELDS, b)) if b else None, "head": dict(zip(FIELDS, h)) if h else None}


def where(base_tree: Any, head_tree: Any, root: Optional[Mapping[str, Any]] = None,
          root_head: Optional[Mapping[str, Any]] = None) -> List[WhereRow]:
    """Every drill-down row (see the module doc), largest absolute FLOPs change first.
    ``root``/``root_head``: the whole model's numbers at base/head (the trees hold none)."""
    base, head = as_map(base_tree), as_map(head_tree)
    if root is not None and root_head is not None:
        base[""] = _numbers(root)
        head[""] = _numbers(root_head)
    names = list(dict.fromkeys([*head, *base]))
    kids_b, kids_h = _children([n for n in base if n]), _children([n for n in head if n])

    def differs(n: str) -> bool:
        return base.get(n) != head.get(n)

    found: List[str] = []

    def visit(n: str) -> None:
        kb, kh = kids_b.get(n, []), kids_h.get(n, [])
        if set(kb) != set(kh):
            found.append(n)  # children added or removed: the structure changed here
            return
        diff = [k for k in kh if differs(k)]
        if not diff or (len(kh) > 1 and len(diff) == len(kh)):
            found.append(n)
            return
        for k in diff:
            visit(k)

    if "" in base or "" in head:
        if differs(""):
            visit("")
    else:  # no totals given: start from the top-level modules that differ
        for k in sorted(set(kids_b.get("", [])) | set(kids_h.get("", [])), key=names.index):
            if differs(k):
                visit(k)
    rows = [_row(n, base, head) for n in found if n]
    if "" in found:  # the whole model is the answer: show its top-level modules instead
        rows = [_row(n, base, head) for n in dict.fromkeys([*kids_h.get("", []), *kids_b.get("", [])])
                if differs(n)]
    return sorted(rows, key=_size_key)


def _change(row: Mapping[str, Any], field: str) -> int:
    b = (row.get("base") or {}).get(field, 0)
    h = (row.get("head") or {}).get(field, 0)
    return abs(int(h) - int(b))


def _size_key(row: Mapping[str, Any]) -> Tuple[int, int, int]:
    return -_change(row, "flops"), -_change(row, "params"), -_change(row, "activations")


def depth_rows(base_tree: Any, head_tree: Any, max_depth: int) -> List[WhereRow]:
    """Every module to ``max_depth`` (1 = top-level), head order then base-only ones."""
    base, head = as_map(base_tree), as_map(head_tree)
    names = [n for n in dict.fromkeys([*head, *base]) if n and depth(n) <= max_depth]
    return [_row(n, base, head) for n in names]


def prune(tree: Any, max_depth: int) -> List[List[Any]]:
    return [list(r) for r in tree or [] if depth(str(r[0])) <= max_depth]


def attach(entry: ConfigReport, rows: int, max_depth: Optional[int]) -> ConfigReport:
    """Set ``entry['where']`` (at most ``rows`` drill-down rows and how many more there are) when
    both sides were measured, and drop the trees the report no longer needs (kept whole while a
    side is pending, pruned to ``max_depth`` for ``--depth``). Returns the entry (copied stats)."""
    base, head = entry.get("base"), entry.get("head")
    if (rows > 0 and base and head and entry.get("status") != "unchanged"
            and "tree" in base and "tree" in head):
        found = where(base["tree"], head["tree"], base, head)
        entry["where"] = {"rows": found[:rows], "more": max(0, len(found) - rows)}
    if entry.get("pending"):
        return entry
    for side in SIDES:
        stats = entry.get(side)
        if stats and "tree" in stats:
            stats = stats.copy()
            if max_depth:
                stats["tree"] = prune(stats["tree"], max_depth)
            else:
                del stats["tree"]
            entry[side] = stats
    return entry


__all__ = ["where", "depth_rows", "prune", "attach", "as_map", "depth"]

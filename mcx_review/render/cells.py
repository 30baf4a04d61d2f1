"""Number cells, pure: one config's numbers base → head as table cells, per model, per module,
where it changed and to ``--depth``; ``✗`` for a side that failed, ``…`` for one another shard measures."""
from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Tuple

from mcx_review.report import module_tree
from mcx_review.report.types import METRICS
from mcx_review.units import ARROW, DASH, format_change, format_count, format_delta, format_shape, format_shapes

FAILED = "\u2717"  # in a number cell: this side could not be counted
PENDING = "\u2026"  # in a number cell: another shard measures this side

Row = Tuple[str, Optional[str], List[str]]  # (module, 'base only' / 'head only' / None, [FLOPs, params, activations])


def side_has_error(entry: Mapping[str, Any], side: str) -> bool:
    return any(e.get("side") == side for e in entry.get("errors") or [])


def _value(entry: Mapping[str, Any], side: str, key: str) -> Any:
    stats = entry.get(side)
    return stats.get(key) if stats else None


def _side_mark(entry: Mapping[str, Any], side: str) -> Optional[str]:
    if entry.get(side) is None:
        if side_has_error(entry, side):
            return FAILED
        if side in (entry.get("pending") or []):
            return PENDING
    return None


def cell(entry: Mapping[str, Any], key: str, fmt_one: Callable[[Any], str],
         fmt_pair: Callable[[Any, Any], str]) -> str:
    """One number cell; a side that failed (``✗``) or is pending (``…``) shows as such."""
    base, head = _value(entry, "base", key), _value(entry, "head", key)
    bmark, hmark = _side_mark(entry, "base"), _side_mark(entry, "head")
    if bmark or hmark:
        left = bmark or (fmt_one(base) if base is not None else None)
        right = hmark or (fmt_one(head) if head is not None else None)
        return f"{left} {ARROW} {right}" if left and right else (left or right or DASH)
    return fmt_pair(base, head)


def number_cells(entry: Mapping[str, Any]) -> List[str]:
    """[input, FLOPs, params, activations] for one config: ``base → head (Δ, %)``, one value when
    equal or one-sided, ``✗`` for a side that could not be counted, ``…`` for a pending one."""
    cells = [cell(entry, "input_shape", format_shape, format_shapes)]
    for m in METRICS:
        cells.append(cell(entry, m, format_count, format_change))
    return cells


def module_rows(entry: Mapping[str, Any]) -> List[Tuple[str, Optional[str], List[str]]]:
    """(module name, 'base only'/'head only'/None, [FLOPs, params, activations]) per top-level
    module, head order then base-only ones; an uncalled module's FLOPs/activations read ``–``."""
    bmods = (entry.get("base") or {}).get("modules") or {}
    hmods = (entry.get("head") or {}).get("modules") or {}
    names = sorted(dict.fromkeys([*hmods, *bmods]), key=_module_rank)
    both = entry.get("base") is not None and entry.get("head") is not None
    rows = []
    for name in names:
        b, h = bmods.get(name), hmods.get(name)
        where = None
        if both and b is None:
            where = "head only"
        elif both and h is None:
            where = "base only"
        rows.append((name, where, [_module_cell(b, h, m) for m in METRICS]))
    return rows


_MODULE_ORDER = ("data_preprocessor", "backbone", "neck", "head")


def _module_rank(name: str) -> int:
    """mm models' call order first (a JSON report with sorted keys loses model order); the rest
    keep their order (sorted() is stable)."""
    return _MODULE_ORDER.index(name) if name in _MODULE_ORDER else len(_MODULE_ORDER)


def _module_value(mod: Optional[Mapping[str, Any]], metric: str) -> "int | str | None":
    if mod is None:
        return None
    if metric != "params" and not mod.get("called", True):
        return DASH
    return int(mod.get(metric, 0))


def numbers_cells(b: Optional[Mapping[str, Any]], h: Optional[Mapping[str, Any]]) -> List[str]:
    """[FLOPs, params, activations] cells of one module, base numbers ``b`` and head ``h``
    (either None where the module is absent), as the module table shows them."""
    return [_module_cell(b, h, m) for m in METRICS]


def _module_cell(b: Optional[Mapping[str, Any]], h: Optional[Mapping[str, Any]], metric: str) -> str:
    bv, hv = _module_value(b, metric), _module_value(h, metric)
    if isinstance(bv, str) or isinstance(hv, str):
        one = [format_count(v) if isinstance(v, int) else v for v in (bv, hv) if v is not None]
        return one[0] if len(one) == 1 or one[0] == one[1] else f"{one[0]} {ARROW} {one[1]}"
    return format_change(bv, hv)


def _numbers(entry: Mapping[str, Any], side: str, module: str, numbers: Optional[Mapping[str, Any]]
             ) -> Optional[Mapping[str, Any]]:
    """A module's numbers as the module table takes them: ``called`` from its top-level module
    (a head that never runs under ``extract_feat`` shows ``–`` for FLOPs and activations)."""
    if not numbers:
        return None
    top = ((entry.get(side) or {}).get("modules") or {}).get(module.split(".")[0]) or {}
    return dict(numbers, called=top.get("called", True))


def _where_label(row: Mapping[str, Any]) -> Optional[str]:
    if row.get("base") is None:
        return "head only"
    if row.get("head") is None:
        return "base only"
    return None


def where_rows(entry: Mapping[str, Any]) -> List[Row]:
    """Where it changed: the deepest modules whose numbers differ, largest FLOPs change first
    (``('backbone.layer3', None, ['1.163G → 2.817G (+1.654G, +142.2%)', ...])``)."""
    rows = (entry.get("where") or {}).get("rows") or []
    return [(str(r["module"]), _where_label(r), _cells(entry, r)) for r in rows]


def _cells(entry: Mapping[str, Any], row: Mapping[str, Any]) -> List[str]:
    name = str(row["module"])
    return numbers_cells(_numbers(entry, "base", name, row.get("base")), _numbers(entry, "head", name, row.get("head")))


def where_more(entry: Mapping[str, Any]) -> int:
    """How many more modules differ than :func:`where_rows` lists."""
    return int((entry.get("where") or {}).get("more") or 0)


def depth_rows(entry: Mapping[str, Any], depth: Optional[int]) -> List[Row]:
    """``--depth N``: every module to depth N, base → head, from the trees the report kept
    (empty when it kept none)."""
    base, head = entry.get("base") or {}, entry.get("head") or {}
    if not depth or ("tree" not in base and "tree" not in head):
        return []
    both = bool(entry.get("base")) and bool(entry.get("head"))
    out = []
    for r in module_tree.depth_rows(base.get("tree"), head.get("tree"), depth):
        label = _where_label(r) if both else None
        out.append((str(r["module"]), label, _cells(entry, r)))
    return out


def stacked_pair(base: Optional[int], head: Optional[int]) -> str:
    if base is None or head is None or base == head:
        one = head if base is None else base
        return format_count(one) if one is not None else DASH
    return f"{format_count(base)} {ARROW} {format_count(head)}\n{format_delta(base, head)}"

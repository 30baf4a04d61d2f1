"""``mcx-review merge``: join the reports of ``--shard K/N`` runs into the report one unsharded
run gives. Every shard plans the same configs; each measures only its share of the distinct
models and marks the sides it left to others as ``pending``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, cast

from mcx_review.errors import McxError
from mcx_review.report import module_tree
from mcx_review.report.compare import ABSENT, SideResult, config_report
from mcx_review.metafile.verdicts import recompute
from mcx_review.report.types import SCHEMA, ConfigReport, Report


class MergeError(McxError):
    pass


def _side(entry: Mapping[str, Any], side: str) -> SideResult:
    absent_status = "added" if side == "base" else "removed"
    if entry["status"] == absent_status:
        return ABSENT
    errors = [e for e in entry.get("errors", []) if e["side"] == side]
    warnings = [w["message"] for w in entry.get("warnings", []) if w["side"] == side]
    return SideResult(stats=entry.get(side), error=errors[0]["message"] if errors else None, warnings=warnings,
                      limit=errors[0].get("limit") if errors else None)


def merge_entries(entries: Sequence[ConfigReport], rows: int = 5, depth: Optional[int] = None) -> ConfigReport:
    """One config as seen by every shard -> the entry an unsharded run would have written."""
    complete = [e for e in entries if not e.get("pending")]
    if complete:
        return complete[0].copy()
    chosen = {}
    for side in ("base", "head"):
        donors = [e for e in entries if side not in e.get("pending", [])]
        if not donors:
            raise MergeError(f"{entries[0]['path']}: no shard measured its {side} side (missing shard?)")
        chosen[side] = _side(donors[0], side)
    first = entries[0]
    merged = config_report(first["path"], chosen["base"], chosen["head"], old_path=first.get("old_path"),
                           reasons=first.get("reasons", []))
    module_tree.attach(merged, rows, depth)
    if first.get("metafile"):
        merged["metafile"] = first["metafile"]
        verdict = recompute(merged)
        if verdict is not None:  # always: the entry has a verdict to recompute
            merged["metafile"] = verdict
    return merged


def merge_reports(reports: Sequence[Report]) -> Report:
    if not reports:
        raise MergeError("nothing to merge")
    first = reports[0]
    for r in reports:
        if r.get("schema") != SCHEMA:
            raise MergeError(f"unsupported report schema {r.get('schema')!r} (expected {SCHEMA})")
        for key in ("base", "head", "shape", "settings"):
            if r.get(key) != first.get(key):
                raise MergeError(f"reports disagree on {key}: they come from different reviews")
    shards = sorted(tuple(shard) for r in reports if (shard := r.get("shard")))
    if shards:
        n = shards[0][1]
        if shards != [(k, n) for k in range(1, n + 1)]:
            got = ", ".join(f"{k}/{m}" for k, m in shards)
            raise MergeError(f"expected shards 1/{n} … {n}/{n} once each, got {got}")
    by_path: Dict[str, List[ConfigReport]] = {}
    for r in reports:
        for entry in r.get("configs", []):
            by_path.setdefault(entry["path"], []).append(entry)
    out = first.copy()
    out["shard"] = None
    rows, depth = int(first.get("drill_down", 5)), first.get("depth")
    out["configs"] = [merge_entries(by_path[p], rows, depth) for p in sorted(by_path)]
    return out


def merge_files(paths: Sequence[Path], settings_path: Optional[Path] = None) -> Report:
    reports: List[Report] = []
    for p in paths:
        try:
            reports.append(cast(Report, json.loads(Path(p).read_text(encoding="utf-8"))))
        except (OSError, ValueError) as exc:
            raise MergeError(f"{p}: not a readable JSON report ({exc})") from None
    merged = merge_reports(reports)
    if settings_path is not None:
        from mcx_review.report.budgets import evaluate_budgets
        from mcx_review.settings import load_settings
        merged = evaluate_budgets(merged, load_settings(settings_path))
        merged["settings"] = {"from": "file", "path": str(settings_path), "sha": None, "head_added": []}
    return merged

"""Pure comparison: one config's base and head results -> its report entry (status, deltas)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from mcx_review.report import METRICS, ConfigReport, Message, ModelStats


@dataclass
class SideResult:
    """What one revision says about one config: numbers, or an error, or nothing (absent)."""

    present: bool = True
    stats: Optional[ModelStats] = None
    error: Optional[str] = None
    warnings: List[str] = field(default_factory=list)


ABSENT = SideResult(present=False)


def delta(base: Optional[ModelStats], head: Optional[ModelStats]) -> Optional[Dict[str, int]]:
    if base is None or head is None:
        return None
    return {m: int(head[m]) - int(base[m]) for m in METRICS}


def _same_numbers(base: ModelStats, head: ModelStats) -> bool:
    keys = ("input_shape", *METRICS, "modules")
    return all(base.get(k) == head.get(k) for k in keys)


def status_of(base: SideResult, head: SideResult, renamed: bool, skipped_unchanged: bool) -> str:
    if base.error or head.error:
        return "error"
    if not base.present:
        return "added"
    if not head.present:
        return "removed"
    if renamed:
        return "renamed"
    if skipped_unchanged:
        return "unchanged"
    if base.stats is not None and head.stats is not None and _same_numbers(base.stats, head.stats):
        return "unchanged"
    return "changed"


def config_report(path: str, base: SideResult, head: SideResult, *, old_path: Optional[str] = None,
                  reasons: Optional[List[str]] = None, skipped_unchanged: bool = False) -> ConfigReport:
    """``skipped_unchanged``: base and head resolve to the same model, shape and code, so the
    config is unchanged whether or not its numbers were measured (they may come from the cache)."""
    errors: List[Message] = []
    warnings: List[Message] = []
    for side, result in (("base", base), ("head", head)):
        if result.error:
            errors.append({"side": side, "message": result.error})  # type: ignore[typeddict-item]
        warnings += [{"side": side, "message": w} for w in result.warnings]  # type: ignore[misc]
    return {
        "path": path,
        "old_path": old_path if old_path and old_path != path else None,
        "status": status_of(base, head, bool(old_path and old_path != path), skipped_unchanged),  # type: ignore[typeddict-item]
        "reasons": list(reasons or []),
        "base": base.stats,
        "head": head.stats,
        "delta": delta(base.stats, head.stats),
        "errors": errors,
        "warnings": warnings,
        "budgets": [],
    }


def head_failed(entry: ConfigReport) -> bool:
    """A config that fails to analyse at head fails the review; one broken only at base (and fixed
    by the change) is good news; one failing the same way at both is not the change's doing."""
    errors = entry.get("errors", [])
    before = {e["message"] for e in errors if e["side"] == "base"}
    # the same failure at base is not the change's doing: reported, but it does not fail the review
    return any(e["side"] == "head" and e["message"] not in before for e in errors)

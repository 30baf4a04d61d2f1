"""Pure comparison: one config's base and head results -> its report entry (status, deltas)."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, cast

from mcx_review.report.types import METRICS, ConfigReport, Limit, Message, ModelStats, Side, Status


@dataclass
class SideResult:
    """What one revision says about one config: numbers, or an error, or nothing (absent)."""

    present: bool = True
    stats: Optional[ModelStats] = None
    error: Optional[str] = None
    warnings: List[str] = field(default_factory=list)
    limit: Optional[Limit] = None  # with error: a resource limit stopped it (kind, limit, level)


ABSENT = SideResult(present=False)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def clean_message(text: str) -> str:
    """An exception or warning message as the report schema allows it: newlines and tabs kept,
    ``\\r\\n`` and a lone ``\\r`` read as a newline, ANSI colour codes dropped, any other control or
    invisible character (C0/C1, U+2028/9, zero-width, bidi) shown as U+FFFD."""
    text = _ANSI.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return "".join(ch if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp") else "\ufffd"
                   for ch in text)


def delta(base: Optional[ModelStats], head: Optional[ModelStats]) -> Optional[Dict[str, int]]:
    if base is None or head is None:
        return None
    return {m: int(head[m]) - int(base[m]) for m in METRICS}


def _same_numbers(base: ModelStats, head: ModelStats) -> bool:
    keys = ("input_shape", *METRICS, "modules")
    return all(base.get(k) == head.get(k) for k in keys)


def status_of(base: SideResult, head: SideResult, renamed: bool, skipped_unchanged: bool) -> Status:
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
    sides: Tuple[Tuple[Side, SideResult], ...] = (("base", base), ("head", head))
    for side, result in sides:
        if result.error:
            error: Message = {"side": side, "message": clean_message(result.error)}
            if result.limit:
                error["limit"] = result.limit.copy()
            errors.append(error)
        warnings += [{"side": side, "message": clean_message(w)} for w in result.warnings]
    return {
        "path": path,
        "old_path": old_path if old_path and old_path != path else None,
        "status": status_of(base, head, bool(old_path and old_path != path), skipped_unchanged),
        "reasons": list(reasons or []),
        "base": base.stats,
        "head": head.stats,
        "delta": delta(base.stats, head.stats),
        "errors": errors,
        "warnings": warnings,
        "budgets": [],
    }


def limit_of(entry: Mapping[str, Any], side: str) -> Optional[Limit]:
    """The resource limit (``{"kind", "limit", "level"}``) that kept ``side`` from being counted."""
    for e in entry.get("errors") or []:
        if e.get("side") == side and e.get("limit"):
            limit: Limit = e["limit"]
            return limit
    return None


def head_failed(entry: Mapping[str, Any]) -> bool:
    """A config that fails to analyse at head fails the review; one broken only at base (and fixed
    by the change) is good news; one failing the same way at both is not the change's doing.

    Errors compare by category: a resource limit (timeout, killed worker) is one category, whatever
    its text (exit code -9 or -15, 600 s or 900 s), and it is not the change's fault either: it
    fails the review only at level ``fail`` (settings ``limits: fail``), and not when base hit a
    limit too. Any other error compares by its message."""
    errors = entry.get("errors", [])
    before = {e["message"] for e in errors if e["side"] == "base" and not e.get("limit")}
    base_limited = limit_of(entry, "base") is not None
    for e in errors:
        if e["side"] != "head":
            continue
        limit = e.get("limit")
        if limit:
            if limit.get("level") == "fail" and not base_limited:
                return True
        elif e["message"] not in before:
            return True
    return False


def _failure(result: Dict[str, Any], limits_level: str) -> SideResult:
    limit = result.get("limit")  # from the worker: {"kind", "limit"}
    return SideResult(error=result["error"], limit=cast(Limit, dict(limit, level=limits_level)) if limit else None)


def side_result(resolved: Optional[Dict[str, Any]], analysed: Optional[Dict[str, Any]],
                limits_level: str = "warn") -> SideResult:
    """One side of a config from its worker records: absent (no config there), failed to resolve
    or to analyse (a resource limit marked with the ``limits`` level), or its numbers; resolved
    but not analysed is an empty side (unchanged, or pending on another shard)."""
    if resolved is None:
        return ABSENT
    if not resolved.get("ok"):
        return _failure(resolved, limits_level)
    if analysed is None:
        return SideResult()
    if not analysed.get("ok"):
        return _failure(analysed, limits_level)
    return SideResult(stats=analysed["stats"], warnings=list(analysed.get("warnings", [])))

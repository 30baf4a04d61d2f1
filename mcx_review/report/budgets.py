"""Budgets: which configs of a report break the settings' budget rules. Pure.

What is checked, per config and rule (rule's ``configs`` globs match the config's head path):

* a **relative** limit bounds the change from base: ``+5%`` is breached when
  ``head > base * 1.05``, ``-10%`` when ``head < base * 0.90``. The boundary itself is allowed
  (exactly +5% passes). It needs both numbers, so it never applies to added configs (nor to a
  module that exists at head only). Base 0: any growth breaches ``+x%``.
* an **absolute** limit caps the head value: ``25M`` is breached when ``head > 25_000_000``.
* a ``module`` rule uses that top-level module's numbers; a config without the module is not
  a breach. When no checked config has the module, each of them gets a warning (a typo such as
  ``backbnoe`` would otherwise pass silently).

Which configs are checked, by status:

* ``changed``, ``renamed``, ``added``: yes (relative needs base, so not for added);
* ``unchanged``: no -- the change did not move its numbers, so a limit it already broke is not
  this change's doing (it shows up as soon as a change touches the config);
* ``removed``: no head, nothing to check;
* ``error``: whatever side was measured: a config broken at base and fixed by the change gets its
  absolute limits; one broken at head is a failure of its own (exit 1) and has nothing to check;
* an entry still ``pending`` a shard's numbers is left alone: budgets are evaluated on the merged
  report (``mcx-review merge --config``).

Numbers are the report's exact ints, compared with exact fractions (no float rounding).
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Mapping, Optional, TypeVar

from mcx_review.settings import Budget, Settings

_R = TypeVar("_R", bound=Mapping[str, Any])  # a Report, or any report-shaped mapping

CHECKED_STATUSES = ("changed", "renamed", "added", "error")


def _numbers(stats: Optional[Dict[str, Any]], metric: str, module: Optional[str]) -> Optional[int]:
    if not stats:
        return None
    if module is None:
        value = stats.get(metric)
    else:
        value = (stats.get("modules") or {}).get(module, {}).get(metric)
    return int(value) if value is not None else None


def is_breached(budget: Budget, head: int, base: Optional[int]) -> Optional[bool]:
    """True/False, or None when the rule does not apply (relative without a base)."""
    if not budget.relative:
        return head > budget.amount
    if base is None:
        return None
    if budget.direction > 0:
        return head > base * (1 + budget.amount)
    return head < base * (1 - budget.amount)


def check_config(entry: Dict[str, Any], budgets: "tuple[Budget, ...] | List[Budget]") -> List[Dict[str, Any]]:
    """The breaches of one report entry, in rule order (format: see report.py ``budgets``)."""
    if entry.get("status") not in CHECKED_STATUSES or entry.get("pending"):
        return []
    head_stats, base_stats = entry.get("head"), entry.get("base")
    out = []
    for b in budgets:
        if not b.applies_to(entry["path"]):
            continue
        head = _numbers(head_stats, b.metric, b.module)
        if head is None:
            continue
        base = _numbers(base_stats, b.metric, b.module)
        if is_breached(b, head, base):
            out.append({"rule": b.rule, "metric": b.metric, "module": b.module, "level": b.level,
                        "limit": b.limit, "value": head, "base": base, "message": b.message})
    return out


def _missing_module_warnings(configs: List[Dict[str, Any]], settings: Settings) -> Dict[int, List[str]]:
    """Entry index -> warnings for module rules whose module no checked config has."""
    out: Dict[int, List[str]] = {}
    for b in settings.budgets:
        if b.module is None:
            continue
        checked = [(i, c) for i, c in enumerate(configs)
                   if c.get("status") in CHECKED_STATUSES and not c.get("pending") and c.get("head")
                   and b.applies_to(c["path"])]
        if not checked or any(b.module in (c["head"].get("modules") or {}) for _, c in checked):
            continue
        for i, c in checked:
            have = ", ".join(c["head"].get("modules") or {}) or "none"
            out.setdefault(i, []).append(
                f"budget '{b.rule}' ({settings.source} budgets[{b.index}]) names module '{b.module}', "
                f"which no reviewed config has (this one has: {have})")
    return out


def evaluate_budgets(report: _R, settings: Settings) -> _R:
    """A new report with each config's ``budgets`` set to its breaches (replacing any earlier
    evaluation, so applying it twice changes nothing) and warnings for unknown module names."""
    out = copy.deepcopy(report)
    configs = out.get("configs", [])
    warnings = _missing_module_warnings(configs, settings)
    for i, entry in enumerate(configs):
        entry["budgets"] = check_config(entry, settings.budgets)
        existing = entry.setdefault("warnings", [])
        for message in warnings.get(i, []):
            if not any(w.get("message") == message for w in existing):
                existing.append({"side": "head", "message": message})
    return out


def budget_level(report: Mapping[str, Any]) -> Optional[str]:
    """``"fail"`` if any breach is at fail level, ``"warn"`` if any breach at all, else None."""
    levels = {b.get("level") for c in report.get("configs", []) for b in c.get("budgets") or []}
    return "fail" if "fail" in levels else "warn" if levels else None


def describe_breach(breach: Dict[str, Any]) -> str:
    """One line for logs and renderers, e.g. ``[fail] flops growth ≤ 5%: 4.109G -> 7.832G (+90.6%)``."""
    from mcx_review.units import format_count, format_percent

    value, base = breach["value"], breach.get("base")
    if base is not None:
        pct = f" ({format_percent(value - base, base)})" if base and value != base else ""
        numbers = f"{format_count(base)} -> {format_count(value)}{pct}"
    else:
        numbers = format_count(value)
    text = f"[{breach['level']}] {breach['rule']}: {numbers}"
    if breach.get("limit") and breach["limit"].lstrip("+-") not in breach["rule"]:
        text += f" (limit {breach['limit']})"
    return f"{text} - {breach['message']}" if breach.get("message") else text


__all__ = ["budget_level", "check_config", "describe_breach", "evaluate_budgets", "is_breached"]

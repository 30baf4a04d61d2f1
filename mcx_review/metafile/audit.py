"""``metafile --check --json FILE``: the zoo audit as data, one record per metafile entry.

Pure: config entries (as the review or ``metafile FILE...`` builds them: path, head stats, errors,
metafile verdict) in, a JSON-able document out. Every integer is kept as an integer (the text
output rounds to 3 decimals, which hides an exact mismatch), and every entry says which rule chose
the input size, so a maintainer can tell "our count at another size" from "the figure is wrong".

"""
from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Mapping, Optional, Sequence

from mcx_review.metafile.verdicts import METRICS

SCHEMA = "mcx-review-metafile/1"
NOT_COUNTED = "not counted"


def _measured(stats: Optional[Mapping[str, Any]]) -> Dict[str, Optional[int]]:
    return {m: (int(stats[m]) if stats and stats.get(m) is not None else None) for m, _ in METRICS}


def entry_records(entry: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """One record per metafile entry of one config (none when no entry names it)."""
    head = entry.get("head")
    verdict = entry.get("metafile") or {}
    errors = [e.get("message", "") for e in entry.get("errors") or []]
    out: List[Dict[str, Any]] = []
    for e in verdict.get("entries") or []:
        checks = {c["metric"]: c for c in e.get("checks") or []}
        published: Dict[str, Any] = {}
        for metric, _ in METRICS:
            c = checks.get(metric)
            published[metric] = (None if c is None else
                                 {"text": c.get("published"), "value": c.get("value"), "unit": c.get("unit"),
                                  "agrees": c.get("agrees"), "problem": c.get("problem")})
        if head is None:
            status = NOT_COUNTED
        else:
            status = e.get("status") or verdict.get("status") or "not compared"
        record: Dict[str, Any] = {
            "file": e.get("file"), "name": e.get("name"), "config": entry.get("path"), "verdict": status,
            "published": published, "measured": _measured(head),
            "input_shape": (head or {}).get("input_shape"), "input_rule": (head or {}).get("input_rule"),
            "note": verdict.get("note"),
        }
        if e.get("deploy_form"):
            record["deploy_form"] = True
        if head and head.get("deploy"):
            record["measured_deploy"] = _measured(head["deploy"])
        if errors:
            record["error"] = errors[0]
        out.append(record)
    return out


def _exact(record: Mapping[str, Any]) -> bool:
    flops = record["published"].get("flops")
    return bool(flops) and flops.get("unit") == 1 and flops.get("value") is not None


def summary(records: Sequence[Mapping[str, Any]], configs: int, counted: int) -> Dict[str, Any]:
    """Counts a maintainer reads first: verdicts, and how many exact-integer FLOPs figures agree."""
    verdicts = Counter(r["verdict"] for r in records)
    exact = [r for r in records if _exact(r)]
    return {"configs": configs, "configs_counted": counted, "entries": len(records),
            "verdicts": dict(sorted(verdicts.items())),
            "exact_flops_entries": len(exact),
            "exact_flops_counted": sum(1 for r in exact if r["verdict"] != NOT_COUNTED),
            "exact_flops_agree": sum(1 for r in exact if r["published"]["flops"].get("agrees")),
            "deploy_form_agree": sum(1 for r in records if r.get("deploy_form"))}


def unnamed_record(entry: Mapping[str, Any]) -> Dict[str, Any]:
    """A config no metafile entry names: its path and what it measured."""
    head = entry.get("head")
    record: Dict[str, Any] = {"config": entry.get("path"), "measured": _measured(head),
                              "input_shape": (head or {}).get("input_shape"),
                              "input_rule": (head or {}).get("input_rule")}
    if head and head.get("deploy"):
        record["measured_deploy"] = _measured(head["deploy"])
    errors = [e.get("message", "") for e in entry.get("errors") or []]
    if errors:
        record["error"] = errors[0]
    return record


def document(entries: Sequence[Mapping[str, Any]], tool: Mapping[str, str]) -> Dict[str, Any]:
    """The whole audit: ``schema``, ``tool`` versions, ``summary``, ``entries`` (metafile order per
    config) and ``configs_without_entry`` (measured, but no entry names them)."""
    named = [e for e in entries if (e.get("metafile") or {}).get("entries")]
    records = [r for e in named for r in entry_records(e)]
    counted = sum(1 for e in entries if e.get("head"))
    return {"schema": SCHEMA, "tool": dict(tool), "summary": summary(records, len(entries), counted),
            "entries": records,
            "configs_without_entry": [unnamed_record(e) for e in entries if e not in named]}


__all__ = ["SCHEMA", "NOT_COUNTED", "entry_records", "summary", "document"]

"""Metafile verdicts as lines a reader sees, pure: stale, legacy and fixed entries with their
figures, one line when all agree, "no entry" and "not compared" with the reason."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

from mcx_review.metafile import verdicts as metafile

class MetafileLine(NamedTuple):
    """One metafile verdict to show: ``status`` (metafile.py's words), ``label`` for a reader,
    the entry (``name`` in ``file``, None for a config-level line) and ``details`` such as
    ``'FLOPs: metafile says 0.56G, measured 1.164G (+107.8%)'``."""

    status: str
    label: str
    name: Optional[str]
    file: Optional[str]
    details: List[str]


_LABELS = {"stale": "metafile stale", "legacy": "metafile already off at base (not this change)",
           "fixed": "metafile agrees now (was off at base)", "agrees": "metafile agrees",
           "no entry": "no metafile entry", "not compared": "metafile not compared"}


def metafile_lines(entry: Mapping[str, Any]) -> List[MetafileLine]:
    """What a reader should see of a config's metafile verdict: each entry that is stale, legacy
    or fixed with its figures; one line when all agree; "no entry" for an added or renamed config;
    "not compared" with the reason (input forced)."""
    v = entry.get("metafile") or {}
    status = v.get("status")
    if not status:
        return []
    if status == "no entry":
        return [MetafileLine(status, _LABELS[status], None, None, [])] \
            if entry.get("status") in ("added", "renamed") else []
    if status == "not compared":
        note = v.get("note")
        return [MetafileLine(status, _LABELS[status] + (f" ({note})" if note else ""), None, None, [])] \
            if note else []
    lines = []
    for e in v.get("entries") or []:
        problems = [f"{metafile.METRIC_KEYS[c['metric']]}: {c['problem']}" for c in e.get("checks") or []
                    if c.get("problem")]
        if e.get("status") in ("stale", "legacy", "fixed"):
            wrong = [c for c in e.get("checks") or [] if "agrees" in c and
                     (not c["agrees"] or (e["status"] == "fixed" and c.get("base_agrees") is False))]
            details = [_legacy_part(metafile.says(c)) if e["status"] == "stale" and c.get("base_agrees") is False
                       else metafile.says(c) for c in wrong if not c["agrees"]] or \
                [f"{metafile.METRIC_KEYS[c['metric']]}: {c['published']} agrees" for c in wrong]
            lines.append(MetafileLine(e["status"], _LABELS[e["status"]], e.get("name"), e.get("file"),
                                      details + problems))
        elif problems:
            lines.append(MetafileLine("not compared", _LABELS["not compared"], e.get("name"), e.get("file"), problems))
    lines = _grouped(lines)
    if not lines and status == "agrees":
        entries = v.get("entries") or []
        one = entries[0] if len(entries) == 1 else {}
        deploy = any(e.get("deploy_form") for e in entries)
        lines.append(MetafileLine("agrees", _LABELS["agrees"] + (" (deploy form)" if deploy else ""),
                                  one.get("name"), one.get("file"), []))
    if v.get("note") and lines:  # e.g. the entry still names a renamed config's old path
        lines[0] = lines[0]._replace(details=lines[0].details + [str(v["note"])])
    return lines


def _legacy_part(text: str) -> str:
    """``'… (+90.1%)'`` -> ``'… (+90.1%; already off at base)'``: this figure was wrong before the change."""
    return text[:-1] + "; already off at base)" if text.endswith(")") else text + " (already off at base)"


def _grouped(lines: List[MetafileLine]) -> List[MetafileLine]:
    """Entries of one config that say the same (a config published under several names, e.g. with
    and without EMA weights) as one line naming them all."""
    out: Dict[Tuple[str, Optional[str], Tuple[str, ...]], MetafileLine] = {}
    for line in lines:
        key = (line.status, line.file, tuple(line.details))
        if key in out and line.name:
            out[key] = out[key]._replace(name=f"{out[key].name}, {line.name}")
        else:
            out.setdefault(key, line)
    return list(out.values())


def metafile_problems(report: Mapping[str, Any]) -> List[str]:
    """Metafiles that could not be read (``'configs/x/metafile.yml: invalid YAML at line 3: ...'``)."""
    return [str(p) for p in report.get("metafile_problems") or []]

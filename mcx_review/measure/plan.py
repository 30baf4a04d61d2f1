"""Which models to trace, pure: skip what is unchanged, take what the cache has, keep this shard's.

Given the targets, each side's resolutions and a key per resolved config (its model, shape and
the code it uses), :func:`plan` decides, without any worker, for every target side whether it is
unchanged (equal resolution and key at base and head: no trace), cached, measured here, or left
to another shard; configs sharing a key are traced once.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from mcx_review.report.types import SIDES, Side
from mcx_review.select.targets import Target

Result = Dict[str, Any]


@dataclass
class Plan:
    work: Dict[str, Dict[str, List[str]]]  # work[side][key] = configs sharing that model, to trace here
    keys: Dict[Tuple[str, str], str] = field(default_factory=dict)  # (side, config path) -> key
    skipped: Set[str] = field(default_factory=set)  # target paths unchanged at base and head
    cached: Dict[str, Result] = field(default_factory=dict)  # key -> cached or measured result

    @property
    def distinct(self) -> int:
        return sum(len(w) for w in self.work.values())


def in_shard(key: str, shard: Optional[Tuple[int, int]]) -> bool:
    """Deterministic: shard K of N takes the keys whose SHA-256 is K-1 modulo N."""
    if shard is None:
        return True
    k, n = shard
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % n == k - 1


def _same_model(a: Result, b: Result) -> bool:
    return all(a.get(k) == b.get(k) for k in ("scope", "model", "shape_spec"))


def sides_of(t: Target) -> Tuple[Tuple[Side, Optional[str]], ...]:
    return (("base", t.base_path), ("head", t.head_path))


def plan(targets: Sequence[Target], results: Dict[str, Dict[str, Result]], key_of: Callable[[str, str], str],
         cached: Callable[[str], Optional[Result]], shard: Optional[Tuple[int, int]] = None) -> Plan:
    """``results[side][path]``: resolutions; ``key_of(side, path)``: a resolved config's key;
    ``cached(key)``: a stored result or None."""
    out = Plan(work={s: {} for s in SIDES})
    # directly changed configs first, so a model shared with inheritors is labelled by the edited file
    for t in sorted(targets, key=lambda t: "changed" not in t.reasons):
        resolved = {s: (p, results[s][p]) for s, p in sides_of(t) if p and results[s].get(p, {}).get("ok")}
        for side, (p, _) in resolved.items():
            out.keys[(side, p)] = key_of(side, p)
        keys = {side: out.keys[(side, p)] for side, (p, _) in resolved.items()}
        if len(resolved) == 2 and _same_model(resolved["base"][1], resolved["head"][1]) \
                and keys["base"] == keys["head"]:
            out.skipped.add(t.path)  # same model, shape and code: nothing to trace
            hit = cached(keys["head"])
            if hit is not None:
                out.cached[keys["head"]] = hit
            continue
        for side, k in keys.items():
            if k in out.cached:
                continue
            hit = cached(k)
            if hit is not None:
                out.cached[k] = hit
            elif in_shard(k, shard):
                out.work[side].setdefault(k, []).append(resolved[side][0])
    return out

"""Metafile cross-check, pure: published FLOPs / Parameters against the measured numbers.

OpenMMLab codebases publish each config's figures in ``configs/*/metafile.yml``
(``Models: - Name, Config, Metadata: {FLOPs, Parameters}``). Some are exact fvcore integers
(ViT-B/16-384: ``55538974464``), older ones rounded (ResNet-18 on CIFAR-10: ``560000000``) or
strings such as ``'4.12G'``. A figure is compared **at its own precision**: the measured number,
rounded to the place of the published figure's last significant digit, must equal it (so a
measured 556,651,520 agrees with 560000000, and 4,109,464,576 disagrees with '4.12G').

Verdicts, per published entry and per config (the worst of its entries):

* ``agrees`` -- every published figure agrees at head (with the model as built, or, when the model
  has a re-parameterised inference form, with that form: the entry is then marked ``deploy_form``);
* ``stale`` -- a figure disagrees at head that agreed at base (or had no base to agree with):
  the change left the metafile behind; a warning, or a failure with ``metafile: fail``;
* ``legacy`` -- every disagreeing figure already disagreed at base: marked, never fails;
* ``fixed`` -- agrees at head, disagreed at base;
* ``no entry`` -- the repository has metafiles, none lists this config;
* ``not compared`` -- the input size was forced, so the figures measure another input.

The verdict object in the report keeps its inputs (the published figures at head and base), so
``merge`` can compute it again once every shard's numbers are in.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, Tuple

from mcx_review.report.types import MetafileVerdict
from mcx_review.units import format_count, format_percent

EntryStatus = Literal["agrees", "fixed", "legacy", "stale"]

METRICS = (("flops", "FLOPs"), ("params", "Parameters"))  # report metric, metafile key
SEVERITY: Tuple[EntryStatus, ...] = ("agrees", "fixed", "legacy", "stale")  # worst last
LEVELS = ("warn", "fail", "off")
METRIC_KEYS = dict(METRICS)
FORCED = "input forced to"  # the note of a config measured at a forced input size

_SUFFIX = {"": 1, "K": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "B": 10 ** 9, "T": 10 ** 12}
_COUNT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGBT]?)\s*(?:flops|params)?\s*$", re.IGNORECASE)


class NotACount(ValueError):
    """A published figure that is not a count; ``str()`` says what it was."""


@dataclass(frozen=True)
class Published:
    """One published figure: ``text`` as written, ``value`` as a count, ``unit`` the place of its
    last significant digit (560000000 -> 10**7; '4.12G' -> 10**7; 55538974464 -> 1)."""

    text: str
    value: int
    unit: int

    def agrees(self, measured: int) -> bool:
        return round_to(measured, self.unit) == self.value

    @property
    def digits(self) -> int:
        """Significant digits (560000000 -> 2)."""
        return len(str(self.value // self.unit)) if self.value else 1


def round_to(n: int, unit: int) -> int:
    """``n`` rounded half up to a multiple of ``unit``."""
    return (int(n) + unit // 2) // unit * unit if unit > 1 else int(n)


def parse_figure(raw: Any) -> Optional[Published]:
    """A metafile's FLOPs / Parameters value -> :class:`Published`; None when not published
    (null or absent). Raises :class:`NotACount` for anything else."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise NotACount(f"{raw!r} is not a count")
    if isinstance(raw, int):
        if raw < 0:
            raise NotACount(f"{raw} is negative")
        return Published(str(raw), raw, _trailing_unit(raw))
    if isinstance(raw, float):
        raw = repr(raw) if raw == raw and abs(raw) != float("inf") else "nan"
    if not isinstance(raw, str):
        raise NotACount(f"a {type(raw).__name__} is not a count")
    m = _COUNT.match(raw)
    if not m:
        raise NotACount(f"{raw!r} is not a count (expected e.g. 4109464576, '4.11G', '25.56M')")
    try:
        mantissa = Decimal(m.group(1))
    except InvalidOperation:  # pragma: no cover - the regex admits decimals only
        raise NotACount(f"{raw!r} is not a count") from None
    scale = _SUFFIX[m.group(2).upper()]
    decimals = len(m.group(1).split(".", 1)[1]) if "." in m.group(1) else 0
    value = mantissa * scale
    unit_dec = Decimal(scale) / (Decimal(10) ** decimals)
    if value != value.to_integral_value() or unit_dec < 1:
        unit = 1
    else:
        unit = int(unit_dec)
    count = int(value)
    if decimals == 0 and scale == 1:
        unit = _trailing_unit(count)
    return Published(raw.strip(), count, max(unit, 1))


def _trailing_unit(n: int) -> int:
    unit = 1
    while n and n % (unit * 10) == 0:
        unit *= 10
    return unit


def format_like(raw: Any, measured: int) -> Any:
    """``measured`` written the way ``raw`` is, at its precision: an int stays an int rounded to
    the same unit (560000000 -> 1160000000), '4.12G' becomes '4.11G'."""
    pub = parse_figure(raw)
    if pub is None or isinstance(raw, int):
        return round_to(measured, pub.unit if pub else 1)
    m = _COUNT.match(str(raw))
    assert m is not None
    number = m.group(1)
    decimals = len(number.split(".", 1)[1]) if "." in number else 0
    scale = Decimal(_SUFFIX[m.group(2).upper()])
    rounded = (Decimal(int(measured)) / scale).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return f"{rounded:f}" + str(raw).strip()[len(number):]  # the suffix as written ('G', ' GFLOPs')


# ---------------------------------------------------------------- verdicts

def _check(metric: str, raw: Any, measured: Optional[int], base_raw: Any,
           base_measured: Optional[int]) -> Optional[Dict[str, Any]]:
    try:
        pub = parse_figure(raw)
    except NotACount as exc:
        return {"metric": metric, "published": _as_text(raw), "problem": str(exc)}
    if pub is None or measured is None:
        return None
    base_agrees: Optional[bool] = None
    if base_measured is not None:
        try:
            base_pub = parse_figure(base_raw)
        except NotACount:
            base_pub = None
        if base_pub is not None:
            base_agrees = base_pub.agrees(base_measured)
    return {"metric": metric, "published": pub.text, "value": pub.value, "unit": pub.unit,
            "measured": int(measured), "agrees": pub.agrees(measured), "base_agrees": base_agrees}


def _checks(pub: Mapping[str, Any], head: Optional[Mapping[str, Any]], base: Optional[Mapping[str, Any]]
            ) -> List[Dict[str, Any]]:
    """The entry's checks against one set of measured numbers at head and at base."""
    base_pub = pub.get("base") or {}
    out = []
    for metric, _ in METRICS:
        c = _check(metric, pub.get(metric), head.get(metric) if head else None, base_pub.get(metric),
                   base.get(metric) if base else None)
        if c is not None:
            out.append(c)
    return out


def _as_text(raw: Any) -> str:
    text = str(raw)
    return text if len(text) <= 100 else text[:99] + "\u2026"


def entry_status(checks: Sequence[Mapping[str, Any]]) -> EntryStatus:
    counted = [c for c in checks if "agrees" in c]
    wrong = [c for c in counted if not c["agrees"]]
    if not wrong:
        return "fixed" if any(c.get("base_agrees") is False for c in counted) else "agrees"
    return "legacy" if all(c.get("base_agrees") is False for c in wrong) else "stale"


def worst(statuses: Sequence[EntryStatus]) -> EntryStatus:
    return max(statuses, key=SEVERITY.index)


def verdict(head: Optional[Mapping[str, Any]], base: Optional[Mapping[str, Any]],
            published: Sequence[Mapping[str, Any]], level: Optional[Literal["warn", "fail"]], *,
            note: Optional[str] = None, compare: bool = True) -> MetafileVerdict:
    """One config's verdict. ``published``: its metafile entries at head, each
    ``{"file", "name", "config", "flops", "params", "base": {"flops", "params"} | None}`` (raw
    values as written; ``base`` the same entry at base, matched by file and name). ``head`` /
    ``base``: the measured stats (None when not measured)."""
    out: MetafileVerdict = {"status": "no entry", "level": level, "note": note, "entries": []}
    for pub in published:
        checks = _checks(pub, head, base) if compare else []
        deploy = (head or {}).get("deploy")
        item = dict(pub)
        if deploy and any(c.get("agrees") is False for c in checks):
            # the metafile may publish the re-parameterised inference form (RepVGG, MobileOne)
            alt = _checks(pub, deploy, (base or {}).get("deploy") or base)
            if any("agrees" in c for c in alt) and all(c["agrees"] for c in alt if "agrees" in c):
                checks = alt
                item["deploy_form"] = True
        base_deploy = (base or {}).get("deploy")
        if base_deploy and not item.get("deploy_form"):  # agreed at base with the deploy form: not legacy
            at_base = {c["metric"]: c for c in _checks(pub, base_deploy, base_deploy)}
            for c in checks:
                if c.get("base_agrees") is False and (at_base.get(c["metric"]) or {}).get("base_agrees"):
                    c["base_agrees"] = True
        item["checks"] = checks
        item["status"] = entry_status(checks) if any("agrees" in c for c in checks) else None
        out["entries"].append(item)
    statuses = [e["status"] for e in out["entries"] if e["status"]]
    if not compare:
        out["status"] = "not compared"
    elif statuses:
        out["status"] = worst(statuses)
    elif out["entries"]:
        out["status"] = "not compared"  # not measured at head, or the entries publish no figure
    return out


def recompute(entry: Mapping[str, Any]) -> Optional[MetafileVerdict]:
    """The config's verdict again from its own inputs (after ``merge`` joined the sides)."""
    old = entry.get("metafile")
    if not old:
        return None
    published = [{k: v for k, v in e.items() if k not in ("checks", "status", "deploy_form")}
                 for e in old.get("entries") or []]
    compare = not (old.get("note") or "").startswith(FORCED)
    return verdict(entry.get("head"), entry.get("base"), published, old.get("level") or "warn",
                   note=old.get("note"), compare=compare)


def fails(entry: Mapping[str, Any]) -> bool:
    m = entry.get("metafile") or {}
    return m.get("status") == "stale" and m.get("level") == "fail"


def warns(entry: Mapping[str, Any]) -> bool:
    m = entry.get("metafile") or {}
    return m.get("status") == "stale" and m.get("level") != "fail"


# ---------------------------------------------------------------- words

def says(check: Mapping[str, Any]) -> str:
    """``'FLOPs: metafile says 4.12G, measured 4.109G (−0.3%)'``."""
    name = METRIC_KEYS[check["metric"]]
    value, measured = int(check["value"]), int(check["measured"])
    published = check["published"]
    if published.isdigit():
        published = format_count(value)
    shown = format_count(measured)
    if published == shown:  # differs below fvcore's 3 decimals: show the integers
        published, shown = f"{value:,}", f"{measured:,}"
    pct = format_percent(measured - value, value) if value else ""
    return f"{name}: metafile says {published}, measured {shown}" + (f" ({pct})" if pct else "")


__all__ = ["Published", "NotACount", "parse_figure", "format_like", "round_to", "verdict", "recompute",
           "entry_status", "fails", "warns", "says", "METRICS", "LEVELS"]

"""The report: the JSON contract between stages (review -> comment/merge/render).

A report is plain JSON-able data (dicts, lists, ints, strings). These TypedDicts document it;
``report-schema.json`` beside this file is the machine-checkable form that the fork-safe comment
job validates untrusted artifacts against.

Example::

    {"schema": "mcx-review/1",
     "tool": {"mcx-review": "0.1.0", "torch": "2.14.1", "fvcore": "0.1.5...", ...},
     "base": {"rev": "main", "sha": "<40 hex>"},
     "head": {"rev": "HEAD", "sha": "<40 hex>", "kind": "commit"},
     "shape": null,
     "configs": [{"path": "configs/resnet/resnet50_8xb32_in1k.py", "old_path": null,
                  "status": "changed", "reasons": ["changed"],
                  "base": {"input_shape": [3, 224, 224], "flops": 4108970000, ...},
                  "head": {...}, "delta": {"flops": ..., "params": ..., "activations": ...},
                  "errors": [], "warnings": [{"side": "head", "message": "..."}],
                  # an error a resource limit caused also says which:
                  # {"side": "head", "message": "analysis took longer than 600 s ...",
                  #  "limit": {"kind": "timeout", "limit": "--timeout 600 s", "level": "warn"}}
                  "budgets": []}]}
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Literal, Optional, Tuple, TypedDict, cast

if TYPE_CHECKING:  # typing.NotRequired is 3.11+; annotations are strings here
    from typing_extensions import NotRequired

SCHEMA = "mcx-review/1"
Metric = Literal["flops", "params", "activations"]
Status = Literal["changed", "unchanged", "added", "removed", "renamed", "error"]
Side = Literal["base", "head"]

METRICS: Tuple[Metric, Metric, Metric] = ("flops", "params", "activations")  # the order every table shows them
METRIC_NAMES = {"flops": "FLOPs", "params": "params", "activations": "activations"}
SIDES: Tuple[Side, Side] = ("base", "head")
STATUSES = ("changed", "renamed", "added", "removed", "error", "unchanged")


class ModuleStats(TypedDict):
    flops: int
    params: int
    activations: int
    called: bool  # False: the module's forward never ran under the measured forward (e.g. the head)


class ModelStats(TypedDict):
    input_shape: List[int]  # [C, H, W]
    # which rule chose H, W (input_shape.RULES): "forced", "backbone img_size", "test pipeline", ...
    input_rule: "NotRequired[str]"
    # the re-parameterised inference form (switch_to_deploy), when the model has one: {flops, params, activations}
    deploy: "NotRequired[Dict[str, int]]"
    forward: Literal["extract_feat", "tensor"]
    flops: int
    params: int
    activations: int
    modules: Dict[str, ModuleStats]  # top-level children, in model order
    unsupported_ops: Dict[str, int]  # op name -> number of calls fvcore could not count
    uncalled_modules: List[str]  # unexpected ones only (the head under extract_feat is expected)
    # every module below the root: [name, flops, params, activations], model order, all-zero left
    # out (module_tree.py); in a report only while a side is pending, or pruned for --depth
    tree: "NotRequired[List[List[Any]]]"
    # detectors' second stage counted on exactly this many proposals (test_cfg.rpn.max_per_img)
    proposals: "NotRequired[int]"
    # mmcv._ext functions answered by mcx-review's torchvision stand-ins (mmcv-lite), sorted
    mmcv_stand_ins: "NotRequired[List[str]]"
    # --engine dispatch only: who counted ("dispatch": meta or fake tensors, "dispatch-real": real tensors,
    # the forward needs values; "fvcore": the dispatch engine failed) and, for fvcore, why
    engine: "NotRequired[Literal['fvcore', 'dispatch', 'dispatch-real']]"
    engine_note: "NotRequired[str]"


class WhereRow(TypedDict):
    module: str  # dotted name, e.g. "backbone.layer3"
    base: Optional[Dict[str, int]]  # {flops, params, activations}; None: the module is head-only
    head: Optional[Dict[str, int]]


class Where(TypedDict):
    """Where it changed: the deepest modules whose numbers differ, largest FLOPs change first."""
    rows: List[WhereRow]
    more: int  # rows left out (settings ``drill_down``)


class MetafileCheck(TypedDict, total=False):
    metric: Literal["flops", "params"]
    published: str  # as written ("560000000", "4.12G")
    value: int  # the published figure as a count
    unit: int  # place of its last significant digit: compared after rounding to it
    measured: int  # head
    agrees: bool
    base_agrees: Optional[bool]  # the same entry at base vs the base numbers; None: not known
    problem: str  # the published figure is not a count


class MetafileVerdict(TypedDict, total=False):
    """One config against its ``metafile.yml`` entries (metafile.py)."""
    status: Literal["agrees", "fixed", "legacy", "stale", "no entry", "not compared"]
    level: Optional[Literal["warn", "fail"]]  # set when stale (settings ``metafile``)
    note: Optional[str]
    entries: List[Dict[str, Any]]  # {file, name, config, flops, params, base, checks: [MetafileCheck], status}


class Limit(TypedDict):
    """A resource limit kept this side from being counted: not the change's fault, a category of
    its own (compared by kind of limit, never by the error's text)."""

    kind: Literal["timeout", "killed"]  # over --timeout; worker killed by a signal (OOM?) even alone
    limit: str  # the limit named for a reader: "--timeout 600 s", "worker killed (signal 9, out of memory?)"
    level: Literal["warn", "fail"]  # settings `limits`: fail makes a head-only limit exit 1


class _MessageBase(TypedDict):
    side: Side
    message: str


class Message(_MessageBase, total=False):
    limit: Limit  # errors only: set when a resource limit, not the config, stopped the analysis


class ConfigReport(TypedDict, total=False):
    path: str  # repo-relative, head path (base path for removed)
    old_path: Optional[str]  # base path when renamed
    status: Status
    reasons: List[str]  # why under review: "changed", "inherits X", "uses code in Y", ...
    base: Optional[ModelStats]
    head: Optional[ModelStats]
    delta: Optional[Dict[str, int]]  # head - base per metric, when both measured
    errors: List[Message]
    warnings: List[Message]
    budgets: List[Dict[str, Any]]  # breaches, see budgets.py
    where: Where  # changed configs measured at both sides
    metafile: MetafileVerdict  # when the head revision has metafiles
    pending: List[Side]  # sides another shard measures (--shard); merge fills them in


class Revision(TypedDict, total=False):
    rev: str
    sha: str
    kind: Literal["commit", "index", "worktree"]


# Which settings the review applied (the gates: budgets, metafile and limits levels, configs).
# "from": "base" -- the base revision's .mcx-review.yaml ("path"; None when the base has none: the
# defaults) at "sha", plus "head_added", one line per thing the head's file adds or tightens (a PR
# cannot relax a gate); "file" -- the --config file at "path" as given ("sha" None, "head_added" []).
# Functional form: "from" is a keyword.
SettingsInfo = TypedDict("SettingsInfo", {"from": Literal["base", "file"], "path": Optional[str],
                                          "sha": Optional[str], "head_added": List[str]})


class Report(TypedDict, total=False):
    schema: str
    tool: Dict[str, str]
    base: Revision
    head: Revision
    shape: Optional[List[int]]  # forced [H, W] or None
    shard: Optional[List[int]]  # [K, N] of --shard K/N, or None
    depth: Optional[int]  # --depth N: module tables to depth N (trees kept, pruned)
    drill_down: int  # at most this many "where it changed" rows per config (settings)
    settings: Optional[SettingsInfo]  # which revision's settings applied (None in older reports)
    configs: List[ConfigReport]
    metafile_problems: List[str]  # metafiles that could not be read, one line each


def dumps(report: Report) -> str:
    """Text form. Key order is the order reports are built in (deterministic), which keeps
    modules in model order (backbone, neck, head)."""
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def load(path: "str | Path") -> Report:
    return cast(Report, json.loads(Path(path).read_text(encoding="utf-8")))  # trusted: our own output

"""Budgets on real reviews of shipped mmcls configs, plus exact boundaries on small reports."""
from __future__ import annotations

import shutil

import pytest
from helpers import ConfigRepo, shipped

from mcx_review import review
from mcx_review.report.budgets import budget_level, check_config, describe_breach, evaluate_budgets
from mcx_review.report.compare import ABSENT, SideResult, config_report
from mcx_review.settings import load_settings

FILES = [
    "resnet/resnet18_8xb32_in1k.py", "resnet/resnet34_8xb32_in1k.py", "mobilenet_v2/mobilenet-v2_8xb32_in1k.py",
    "_base_/models/resnet18.py", "_base_/models/resnet34.py", "_base_/models/mobilenet_v2_1x.py",
    "_base_/datasets/imagenet_bs32.py", "_base_/datasets/imagenet_bs32_pil_resize.py",
    "_base_/schedules/imagenet_bs256.py", "_base_/schedules/imagenet_bs256_epochstep.py",
    "_base_/default_runtime.py",
]
HEAD_SETTINGS = """\
budgets:
  - {metric: flops, limit: '+5%'}
  - {metric: params, module: backbone, limit: 20M, level: warn, message: keep backbones small}
  - {metric: activations, limit: '-50%', level: warn}
  - {metric: params, module: backbnoe, limit: 1M, level: warn}
  - {metric: flops, limit: 1K, configs: 'configs/mobilenet_v2/**'}
"""


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """main -> feature: ResNet-18's model file made depth 34 (resnet18 changed), a config added on
    it, resnet34 deleted (removed), default_runtime edited (mobilenet-v2 inherits it: unchanged).
    The head's .mcx-review.yaml holds budgets, so the review applies them itself."""
    r = ConfigRepo(tmp_path_factory.mktemp("budgets") / "repo", pkg=None)
    for rel in FILES:
        (r.root / "configs" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shipped("mmcls") / rel, r.root / "configs" / rel)
    r.commit("shipped configs")
    r.branch("feature")
    r.replace("configs/_base_/models/resnet18.py", "depth=18", "depth=34")
    r.write("configs/resnet/resnet18-c10_8xb32_in1k.py",
            "_base_ = ['./resnet18_8xb32_in1k.py']\nmodel = dict(head=dict(num_classes=10))\n")
    (r.root / "configs/resnet/resnet34_8xb32_in1k.py").unlink()
    r.replace("configs/_base_/default_runtime.py", "interval=100", "interval=50")
    r.write(".mcx-review.yaml", HEAD_SETTINGS)
    r.commit("deeper resnet18")
    report, _, _ = review.run_review(r.root, review.Options(base="main", head="feature", jobs=2, use_cache=False))
    return report


def by_path(report):
    return {c["path"]: c for c in report["configs"]}


def test_real_review_statuses_are_what_the_edits_make(real):
    status = {p: c["status"] for p, c in by_path(real).items()}
    assert status == {"configs/resnet/resnet18_8xb32_in1k.py": "changed",
                      "configs/resnet/resnet18-c10_8xb32_in1k.py": "added",
                      "configs/resnet/resnet34_8xb32_in1k.py": "removed",
                      "configs/mobilenet_v2/mobilenet-v2_8xb32_in1k.py": "unchanged"}


def test_head_settings_budgets_are_applied_by_the_review(real):
    c = by_path(real)
    changed = c["configs/resnet/resnet18_8xb32_in1k.py"]
    flops, backbone = changed["budgets"]
    # the report's own exact ints, not rounded figures
    assert flops == {"rule": "flops growth ≤ 5%", "metric": "flops", "module": None, "level": "fail",
                     "limit": "+5%", "value": changed["head"]["flops"], "base": changed["base"]["flops"],
                     "message": None}
    assert changed["head"]["flops"] > changed["base"]["flops"] * 1.05  # depth 34 is ~2x ResNet-18
    assert backbone["module"] == "backbone" and backbone["level"] == "warn"
    assert backbone["value"] == changed["head"]["modules"]["backbone"]["params"] > 20_000_000
    assert backbone["base"] == changed["base"]["modules"]["backbone"]["params"] < 20_000_000
    assert backbone["message"] == "keep backbones small"
    # added: relative limits need a base, the absolute backbone cap applies
    added = c["configs/resnet/resnet18-c10_8xb32_in1k.py"]
    assert [(b["metric"], b["module"], b["base"]) for b in added["budgets"]] == [("params", "backbone", None)]
    # unchanged and removed configs are not checked, even against a cap they break (1K FLOPs)
    assert c["configs/mobilenet_v2/mobilenet-v2_8xb32_in1k.py"]["budgets"] == []
    assert c["configs/resnet/resnet34_8xb32_in1k.py"]["budgets"] == []
    assert budget_level(real) == "fail"


def test_unknown_module_warns_on_each_checked_config(real):
    for path in ("configs/resnet/resnet18_8xb32_in1k.py", "configs/resnet/resnet18-c10_8xb32_in1k.py"):
        msgs = [w["message"] for w in by_path(real)[path]["warnings"] if "backbnoe" in w["message"]]
        assert msgs == ["budget 'params of backbnoe ≤ 1M' (.mcx-review.yaml budgets[3]) names module 'backbnoe', "
                        "which no reviewed config has (this one has: backbone, neck, head)"]
    unchanged = by_path(real)["configs/mobilenet_v2/mobilenet-v2_8xb32_in1k.py"]
    assert not [w for w in unchanged["warnings"] if "backbnoe" in w["message"]]


def test_evaluation_is_pure_and_idempotent(real):
    settings = load_settings(None, text=HEAD_SETTINGS)
    before = repr(real)
    again = evaluate_budgets(real, settings)
    assert repr(real) == before  # input untouched
    assert again == real  # re-evaluating (e.g. after merge) adds nothing twice
    cleared = evaluate_budgets(real, load_settings(None, text="budgets: []\n"))
    assert all(c["budgets"] == [] for c in cleared["configs"]) and budget_level(cleared) is None


def test_absolute_boundary_on_real_numbers(real):
    changed = by_path(real)["configs/resnet/resnet18_8xb32_in1k.py"]
    head = changed["head"]["flops"]
    at = load_settings(None, text=f"budgets: [{{metric: flops, limit: {head}}}]\n")
    below = load_settings(None, text=f"budgets: [{{metric: flops, limit: {head - 1}, level: warn}}]\n")
    assert check_config(changed, at.budgets) == []  # the cap itself is allowed
    assert [b["value"] for b in check_config(changed, below.budgets)] == [head]
    assert budget_level(evaluate_budgets(real, below)) == "warn"


def test_module_missing_on_a_config_is_not_a_breach(real):
    changed = by_path(real)["configs/resnet/resnet18_8xb32_in1k.py"]
    s = load_settings(None, text="budgets: [{metric: flops, module: neck, limit: 0}, "
                                 "{metric: flops, module: backbone_extra, limit: 0}]\n")
    assert [b["module"] for b in check_config(changed, s.budgets)] == ["neck"]  # GAP counts flops


def stats(flops, params=1000, activations=100, modules=None):
    return {"input_shape": [3, 224, 224], "forward": "extract_feat", "flops": flops, "params": params,
            "activations": activations, "modules": modules or {}, "unsupported_ops": {}, "uncalled_modules": []}


def entry(base, head, **kw):
    return config_report("configs/x/x.py", SideResult(stats=base) if base else ABSENT,
                         SideResult(stats=head) if head else ABSENT, **kw)


@pytest.mark.parametrize("limit, base, head, breached", [
    ("+5%", 4000, 4200, False),   # exactly +5% is allowed
    ("+5%", 4000, 4201, True),
    ("+2.5%", 1000, 1025, False),
    ("+2.5%", 1000, 1026, True),
    ("+0%", 1000, 1000, False),
    ("+0%", 1000, 1001, True),
    ("+5%", 0, 1, True),          # growth from nothing breaks any growth cap
    ("+5%", 0, 0, False),
    ("-10%", 1000, 900, False),   # exactly -10% is allowed
    ("-10%", 1000, 899, True),
    ("-10%", 1000, 5000, False),  # a shrinkage cap says nothing about growth
    ("+5%", 10**12, 10**12 + 5 * 10**10, False),  # exact ints, no float rounding
    ("+5%", 10**12, 10**12 + 5 * 10**10 + 1, True),
])
def test_relative_boundaries(limit, base, head, breached):
    s = load_settings(None, text=f"budgets: [{{metric: flops, limit: '{limit}'}}]\n")
    assert bool(check_config(entry(stats(base), stats(head)), s.budgets)) is breached


def test_statuses_error_renamed_pending():
    s = load_settings(None, text="budgets: [{metric: params, limit: 500}, {metric: params, limit: '+5%'}]\n")
    fixed = config_report("configs/x/x.py", SideResult(error="NameError: resnet"), SideResult(stats=stats(1)))
    assert fixed["status"] == "error"
    assert [(b["limit"], b["base"]) for b in check_config(fixed, s.budgets)] == [("500", None)]
    broken = config_report("configs/x/x.py", SideResult(stats=stats(1)), SideResult(error="KeyError"))
    assert check_config(broken, s.budgets) == []
    renamed = entry(stats(1, params=100), stats(1, params=2000), old_path="configs/x/old.py")
    assert renamed["status"] == "renamed"
    assert [b["limit"] for b in check_config(renamed, s.budgets)] == ["500", "+5%"]
    pending = dict(renamed, pending=["base"])
    assert check_config(pending, s.budgets) == []


def test_config_globs_select_rules():
    s = load_settings(None, text="budgets: [{metric: flops, limit: 1, configs: ['configs/vit/**', '**/x.py']},"
                                 " {metric: flops, limit: 1, configs: 'configs/resnet/*'}]\n")
    assert [b["rule"] for b in check_config(entry(stats(1), stats(5)), s.budgets)] == ["flops ≤ 1"]


def test_budget_level_and_description():
    warn = {"rule": "flops growth ≤ 5%", "metric": "flops", "module": None, "level": "warn", "limit": "+5%",
            "value": 7_832_000_000, "base": 4_109_000_000, "message": None}
    fail = dict(warn, level="fail", rule="resnet-cap", limit="25M", value=44_549_000, base=None,
                message="ResNets stay small")
    assert budget_level({"configs": [{"budgets": []}]}) is None
    assert budget_level({"configs": [{"budgets": [warn]}, {"budgets": []}]}) == "warn"
    assert budget_level({"configs": [{"budgets": [warn]}, {"budgets": [fail]}]}) == "fail"
    assert describe_breach(warn) == "[warn] flops growth ≤ 5%: 4.109G -> 7.832G (+90.6%)"
    assert describe_breach(fail) == "[fail] resnet-cap: 44.549M (limit 25M) - ResNets stay small"

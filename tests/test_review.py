"""End to end on real repositories made from the shipped mmcls configs: every number equal to the
get_flops.py way at each revision, every status, errors that name their cause."""
import json
import subprocess
import sys

import pytest
from reference import assert_matches, get_flops_way
from helpers import ConfigRepo

from mcx_review.cli import main

RESNET50 = "configs/resnet/resnet50_8xb32_in1k.py"
CONVNEXT = "configs/convnext/convnext-tiny_32xb128_in1k.py"


def review(root, *args):
    out = root / "report.json"
    code = main(["--repo", str(root), "--format", "json", "-o", str(out), "--no-cache", *args])
    return code, json.loads(out.read_text())


def by_path(report):
    return {c["path"]: c for c in report["configs"]}


@pytest.fixture(scope="module")
def changed_repo(tmp_path_factory):
    """ResNet-50 made deeper and ConvNeXt-T evaluated at 288px, on branch `pr`."""
    repo = ConfigRepo(tmp_path_factory.mktemp("changed") / "r")
    repo.branch("pr")
    repo.edit(RESNET50, "model = dict(backbone=dict(depth=101))")
    repo.edit(CONVNEXT, """
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=329, edge='short'),
    dict(type='CenterCrop', crop_size=288),
    dict(type='PackClsInputs'),
]))""")
    repo.commit("deeper resnet, convnext at 288")
    base_tree = repo.root.parent / "base-tree"
    repo.repo.git.worktree("add", "--detach", str(base_tree), "main")
    return repo, base_tree


def test_changed_configs_equal_get_flops_at_each_revision(changed_repo):
    repo, base_tree = changed_repo
    code, report = review(repo.root, "--base", "main", "--head", "pr")
    assert code == 0
    configs = by_path(report)
    inheritors = {"configs/resnet/resnet50_8xb32-fp16_in1k.py", "configs/resnet/resnet50_8xb32-fp16-dynamic_in1k.py"}
    assert set(configs) == {RESNET50, CONVNEXT} | inheritors
    for path in inheritors:  # they inherit the edited leaf config, so their model changed too
        assert configs[path]["reasons"] == [f"inherits {RESNET50}"]
        assert configs[path]["head"] == configs[RESNET50]["head"]
    res, cnx = configs[RESNET50], configs[CONVNEXT]
    assert res["status"] == cnx["status"] == "changed"
    assert res["reasons"] == ["changed"]
    assert cnx["base"]["input_shape"] == [3, 224, 224] and cnx["head"]["input_shape"] == [3, 288, 288]
    assert cnx["head"]["flops"] > cnx["base"]["flops"], "224 -> 288 must show in FLOPs"
    assert_matches(res["base"], get_flops_way(base_tree, RESNET50, 224, 224))
    assert_matches(res["head"], get_flops_way(repo.root, RESNET50, 224, 224))
    assert_matches(cnx["base"], get_flops_way(base_tree, CONVNEXT, 224, 224))
    assert_matches(cnx["head"], get_flops_way(repo.root, CONVNEXT, 288, 288))
    assert res["delta"]["params"] == res["head"]["params"] - res["base"]["params"]
    assert report["schema"] == "mcx-review/1"
    assert report["base"]["sha"] == repo.repo.commit("main").hexsha
    assert report["head"]["sha"] == repo.repo.commit("pr").hexsha


def test_forced_shape_applies_to_both_sides(changed_repo):
    repo, _ = changed_repo
    # FILE arguments are relative to the current directory, also with --repo (issue 10)
    code, report = review(repo.root, "--base", "main", "--head", "pr", "--shape", "160", str(repo.root / RESNET50))
    assert code == 0
    assert len(report["configs"]) == 3, "the edited config and its two fp16 inheritors"
    for res in report["configs"]:
        assert res["base"]["input_shape"] == res["head"]["input_shape"] == [3, 160, 160]
    assert report["shape"] == [160, 160]


def test_markdown_and_text_formats(changed_repo, tmp_path):
    repo, _ = changed_repo
    md = tmp_path / "r.md"
    assert main(["--repo", str(repo.root), "--base", "main", "--head", "pr", "--format", "md",
                 "-o", str(md)]) == 0
    text = md.read_text()
    assert "resnet50_8xb32_in1k.py" in text and "→" in text
    proc = subprocess.run([sys.executable, "-m", "mcx_review", "--base", "main", "--head", "pr", "--format", "text"],
                          cwd=repo.root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "resnet50_8xb32_in1k.py" in proc.stdout
    assert "\x1b[" not in proc.stdout, "no colour when stdout is not a terminal"


STATUS_EDITS = {
    "syntax": "configs/resnet/resnet152_8xb32_in1k.py",
    "unknown": "configs/resnet/resnet101_8xb32_in1k.py",
    "nobase": "configs/resnet/resnet50_8xb16_cifar10.py",
}


@pytest.fixture(scope="module")
def status_report(tmp_path_factory):
    repo = ConfigRepo(tmp_path_factory.mktemp("statuses") / "r")
    # broken at base only: the change fixes it
    repo.write("configs/resnet/fixed_by_pr.py", "_base_ = ['./resnet18_8xb32_in1k.py']\nmodel = dict(\n")
    repo.commit("a broken config on main")
    repo.branch("pr")
    repo.write("configs/resnet/fixed_by_pr.py", "_base_ = ['./resnet18_8xb32_in1k.py']\n")
    repo.write("configs/resnet/added.py", "_base_ = ['./resnet18_8xb32_in1k.py']\n"
                                          "model = dict(backbone=dict(depth=34))\n")
    repo.path("configs/resnet/resnet34_8xb32_in1k.py").unlink()
    repo.path("configs/resnet/resnet18_8xb16_cifar10.py").rename(repo.path("configs/resnet/r18_cifar.py"))
    repo.edit("configs/resnet/resnet50_8xb32_in1k.py", "train_cfg = dict(max_epochs=5)  # no model change")
    repo.edit(STATUS_EDITS["syntax"], "model = dict(backbone=dict(depth=152)")
    repo.edit(STATUS_EDITS["unknown"], "model = dict(backbone=dict(type='NoSuchNet'))")
    repo.replace(STATUS_EDITS["nobase"], "_base_/models/resnet50_cifar.py", "_base_/models/gone.py")
    repo.commit("statuses")
    code, report = review(repo.root, "--base", "main", "--head", "pr")
    return code, report


def test_every_status(status_report):
    code, report = status_report
    c = by_path(report)
    assert c["configs/resnet/added.py"]["status"] == "added"
    assert c["configs/resnet/added.py"]["base"] is None and c["configs/resnet/added.py"]["head"]["params"] > 0
    assert c["configs/resnet/resnet34_8xb32_in1k.py"]["status"] == "removed"
    assert c["configs/resnet/resnet34_8xb32_in1k.py"]["head"] is None
    renamed = c["configs/resnet/r18_cifar.py"]
    assert renamed["status"] == "renamed" and renamed["old_path"] == "configs/resnet/resnet18_8xb16_cifar10.py"
    unchanged = c["configs/resnet/resnet50_8xb32_in1k.py"]
    assert unchanged["status"] == "unchanged" and unchanged["base"] is None and unchanged["head"] is None
    assert code == 1, "configs failing at head fail the review"


def test_errors_name_the_cause_and_keep_the_other_side(status_report):
    _, report = status_report
    c = by_path(report)

    def head_error(path):
        entry = c[path]
        assert entry["status"] == "error"
        (err,) = [e for e in entry["errors"] if e["side"] == "head"]
        assert entry["base"] is not None, "the base side is still measured"
        return err["message"]

    assert "SyntaxError" in head_error(STATUS_EDITS["syntax"])
    assert "NoSuchNet" in head_error(STATUS_EDITS["unknown"])
    assert "gone.py" in head_error(STATUS_EDITS["nobase"])
    fixed = c["configs/resnet/fixed_by_pr.py"]
    assert fixed["status"] == "error" and [e["side"] for e in fixed["errors"]] == ["base"]
    assert fixed["head"]["params"] > 0, "broken only at base: the head numbers are kept"


def test_shipped_default_runtime_change_reports_inheritors_unchanged_without_building(tmp_path):
    from mcx_review import review as rv

    repo = ConfigRepo(tmp_path / "r")
    repo.edit("configs/_base_/default_runtime.py", "log_level = 'WARNING'")
    repo.commit()
    report, stats, targets = rv.run_review(repo.root, rv.Options(base="HEAD~1", head="HEAD", jobs=2,
                                                                   use_cache=False))
    assert len(targets) > 300
    assert {c["status"] for c in report["configs"]} <= {"unchanged", "error"}
    assert all(c["reasons"] == ["inherits configs/_base_/default_runtime.py"] for c in report["configs"])
    assert stats.analysed == 0 and not stats.torch_imported

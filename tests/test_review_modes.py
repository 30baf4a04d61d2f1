"""A changed `_base_` model reaches exactly its inheritors, each distinct model built once per
revision; `--list`, `--staged`, `--worktree` and FILE arguments on real repositories."""
import json
import subprocess
import sys

from mmengine.config import Config
from reference import assert_matches, get_flops_way
from helpers import LENET, ConfigRepo

from mcx_review.select import config_files as impact
from mcx_review import review as rv

BASE_MODEL = "configs/_base_/models/resnet50_cifar.py"


def inheritors_by_mmengine(root, fragment):
    """Independent of our parser: mmengine lists every file a config loaded in ``Config.text``."""
    found = set()
    for cfg in impact.discover_configs(root):
        try:
            text = Config.fromfile(str(root / cfg), import_custom_modules=False).text
        except Exception:  # noqa: BLE001 - configs broken as shipped
            continue
        if str((root / fragment).resolve()) in text or str(root / fragment) in text:
            found.add(cfg)
    return found


def test_base_model_change_reviews_exactly_its_inheritors_and_builds_each_model_once(tmp_path):
    repo = ConfigRepo(tmp_path / "r")
    repo.replace(BASE_MODEL, "depth=50", "depth=101")
    repo.commit("deeper cifar resnet50")
    expected = inheritors_by_mmengine(repo.root, BASE_MODEL)
    assert len(expected) >= 2
    report, stats, targets = rv.run_review(repo.root, rv.Options(base="HEAD~1", head="HEAD", jobs=2,
                                                                   use_cache=False))
    assert {t.path for t in targets} == expected
    assert all(c["reasons"] == [f"inherits {BASE_MODEL}"] for c in report["configs"])
    assert all(c["status"] == "changed" for c in report["configs"])
    distinct = {json.dumps(c["head"], sort_keys=True) for c in report["configs"]}
    assert stats.analysed == 2 * len(distinct), "each distinct model once per revision"
    entry = report["configs"][0]
    assert_matches(entry["head"], get_flops_way(repo.root, entry["path"], 32, 32))


def run(repo, *args):
    return subprocess.run([sys.executable, "-m", "mcx_review", "--no-cache", *args], cwd=repo.root,
                          capture_output=True, text=True)


def test_list_names_configs_and_reasons_without_building(tmp_path):
    repo = ConfigRepo(tmp_path / "r")
    repo.replace(BASE_MODEL, "depth=50", "depth=101")
    proc = run(repo, "--base", "HEAD", "--worktree", "--list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines and all(f"inherits {BASE_MODEL}" in line for line in lines)
    assert "analysing" not in proc.stderr


def test_staged_reviews_the_index_and_worktree_the_files_on_disk(tmp_path):
    repo = ConfigRepo(tmp_path / "r")
    r18 = "configs/resnet/resnet18_8xb16_cifar10.py"
    r34 = "configs/resnet/resnet34_8xb16_cifar10.py"
    repo.edit(r18, "model = dict(backbone=dict(depth=34))")
    repo.repo.git.add(r18)
    repo.edit(r34, "model = dict(backbone=dict(depth=18))")  # not staged
    staged = run(repo, "--base", "HEAD", "--staged", "--format", "json")
    assert staged.returncode == 0, staged.stderr
    report = json.loads(staged.stdout)
    assert [c["path"] for c in report["configs"]] == [r18]
    assert report["head"]["kind"] == "index" and report["head"]["sha"] == repo.repo.head.commit.hexsha
    worktree = json.loads(run(repo, "--base", "HEAD", "--worktree", "--format", "json").stdout)
    assert worktree["head"]["kind"] == "worktree"
    configs = {c["path"]: c for c in worktree["configs"]}
    assert set(configs) == {r18, r34}
    assert configs[r18]["head"] == configs[r34]["base"], "resnet18 made 34 deep equals resnet34"
    only = json.loads(run(repo, "--base", "HEAD", "--worktree", "--format", "json", r34).stdout)
    assert [c["path"] for c in only["configs"]] == [r34], "FILE arguments narrow the review"


def test_a_config_failing_the_same_way_at_base_and_head_is_reported_but_does_not_fail(tmp_path):
    """Among configs that were counted, one broken alike at both sides is a note. (Issue 10: when
    it is the only config under review nothing is counted and the review exits 3 -- test_cli.)"""
    from mcx_review.render.markdown import render_markdown

    repo = ConfigRepo(tmp_path / "r", pkg=None)
    repo.write("configs/broken.py", "_base_ = ['./missing.py']\n")
    repo.write("configs/lenet.py", LENET.format(n=10))
    repo.commit("broken on main")
    repo.write("configs/broken.py", "# still broken\n_base_ = ['./missing.py']\n")
    repo.write("configs/lenet.py", LENET.format(n=12))
    repo.commit("comment only")
    proc = run(repo, "--base", "HEAD~1", "--head", "HEAD", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    entry, lenet = json.loads(proc.stdout)["configs"]
    assert lenet["status"] == "changed" and lenet["head"]["input_shape"] == [1, 32, 32]
    assert entry["status"] == "error"
    base_err, head_err = (e["message"] for e in entry["errors"])
    assert base_err == head_err and "mcx-review-" not in head_err, "no temporary tree paths in messages"
    md = render_markdown(json.loads(proc.stdout))
    assert "fails at base and head (not this change)" in md and "fails at head**" not in md

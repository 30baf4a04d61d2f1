"""The pre-commit hooks: the manifest parses with pre-commit's own schema, and the real
``pre-commit`` runs the system hook on a staged config change in a temp repository."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ConfigRepo, shipped

from mcx_review.units import format_count

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / ".pre-commit-hooks.yaml"
BIN = Path(sys.executable).parent
PRE_COMMIT = BIN / "pre-commit"
FILES = ["resnet/resnet18_8xb32_in1k.py", "_base_/models/resnet18.py", "_base_/datasets/imagenet_bs32.py",
         "_base_/schedules/imagenet_bs256.py", "_base_/default_runtime.py"]
CONFIG = "configs/resnet/resnet18_8xb32_in1k.py"


def manifest():
    from pre_commit.clientlib import load_manifest

    return {h["id"]: h for h in load_manifest(str(MANIFEST))}


def test_manifest_parses_with_pre_commit_schema():
    hooks = manifest()
    assert set(hooks) == {"mcx-review", "mcx-review-system"}
    py, system = hooks["mcx-review"], hooks["mcx-review-system"]
    assert py["language"] == "python"
    assert system["language"] in ("system", "unsupported")  # pre-commit >= 4.4 calls `system` so
    deps = " ".join(py["additional_dependencies"])
    for needed in ("torch", "fvcore", "mmengine", "mmpretrain"):
        assert needed in deps
    for h in (py, system):
        assert h["entry"] == "mcx-review --base HEAD --staged --format text"
        assert h["pass_filenames"] and h["require_serial"]


@pytest.mark.parametrize("path, selected", [
    (CONFIG, True), ("configs/_base_/models/resnet18.py", True), ("configs/mae/mae_vit.yaml", True),
    ("configs/x/model.json", True), ("mmpretrain/models/backbones/resnet.py", True), ("tools/train.py", True),
    ("README.md", False), ("docs/en/index.rst", False), ("configs/resnet/README.md", False),
    ("data/meta.json", False), ("resnet.pyc", False),
])
def test_hook_files_select_configs_and_python_code(path, selected):
    for h in manifest().values():
        assert bool(re.search(h["files"], path)) is selected, (h["id"], path)


@pytest.fixture
def staged_repo(tmp_path):
    """A repo with ResNet-18 committed and its model file made depth 34 in the index only."""
    r = ConfigRepo(tmp_path / "repo", pkg=None)
    for rel in FILES:
        (r.root / "configs" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shipped("mmcls") / rel, r.root / "configs" / rel)
    r.write("README.md", "models\n")
    r.commit("ResNet-18")
    r.replace("configs/_base_/models/resnet18.py", "depth=18", "depth=34")
    r.repo.git.add("configs/_base_/models/resnet18.py")
    return r


@pytest.fixture(scope="module")
def hooks_repo(tmp_path_factory):
    """A git repo holding this working tree's manifest, for `pre-commit try-repo`."""
    d = tmp_path_factory.mktemp("hooks")
    shutil.copy(MANIFEST, d / ".pre-commit-hooks.yaml")
    ConfigRepo(d, pkg=None).commit("hooks")
    return d


def try_hook(repo: ConfigRepo, hooks_repo: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"), NO_COLOR="1")
    env.pop("GITHUB_ACTIONS", None)
    return subprocess.run([str(PRE_COMMIT), "try-repo", str(hooks_repo), "mcx-review-system", "--verbose",
                           "--color", "never"], cwd=repo.root, env=env, capture_output=True, text=True,
                          timeout=900)


def head_numbers(repo: ConfigRepo) -> dict:
    """The staged change's figures from the JSON report, to find them in the hook's table."""
    import json

    out = subprocess.run([str(BIN / "mcx-review"), "--base", "HEAD", "--staged", "--format", "json", "-q"],
                         cwd=repo.root, capture_output=True, text=True, timeout=900)
    assert out.returncode in (0, 1), out.stderr
    return {c["path"]: c for c in json.loads(out.stdout)["configs"]}


def test_hook_shows_the_table_and_passes(staged_repo, hooks_repo, tmp_path):
    out = try_hook(staged_repo, hooks_repo, tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert re.search(r"mcx-review \(model complexity of changed configs\)\.+Passed", text), text
    entry = head_numbers(staged_repo)[CONFIG]
    assert entry["status"] == "changed"
    assert "resnet18_8xb32_in1k.py" in text
    for metric in ("flops", "params"):
        assert format_count(entry["base"][metric]) in text and format_count(entry["head"][metric]) in text


def test_fail_level_budget_fails_the_commit_and_warn_does_not(staged_repo, hooks_repo, tmp_path):
    staged_repo.write(".mcx-review.yaml", "budgets:\n  - {metric: flops, limit: '+5%', level: warn}\n")
    staged_repo.repo.git.add(".mcx-review.yaml")
    warned = try_hook(staged_repo, hooks_repo, tmp_path)
    assert warned.returncode == 0, warned.stdout + warned.stderr

    staged_repo.write(".mcx-review.yaml", "budgets:\n  - {metric: flops, limit: '+5%', level: fail,"
                                          " message: ask the perf team first}\n")
    staged_repo.repo.git.add(".mcx-review.yaml")
    failed = try_hook(staged_repo, hooks_repo, tmp_path)
    text = failed.stdout + failed.stderr
    assert failed.returncode == 1, text
    assert re.search(r"mcx-review \(model complexity of changed configs\)\.+Failed", text), text
    assert "ask the perf team first" in " ".join(text.split())  # the table may wrap long lines


def test_bad_settings_fail_with_one_clear_line(staged_repo, hooks_repo, tmp_path):
    staged_repo.write(".mcx-review.yaml", "budgets:\n  - {metric: flops, limit: '+5%', level: error}\n")
    staged_repo.repo.git.add(".mcx-review.yaml")
    out = try_hook(staged_repo, hooks_repo, tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "budgets[0].level: expected 'warn' or 'fail', got 'error'" in text
    assert "Traceback" not in text


def test_hook_skips_commits_without_config_or_code(staged_repo, hooks_repo, tmp_path):
    staged_repo.repo.git.reset("configs/_base_/models/resnet18.py")  # unstage the model change
    staged_repo.write("README.md", "models, documented\n")
    staged_repo.repo.git.add("README.md")
    out = try_hook(staged_repo, hooks_repo, tmp_path)
    assert out.returncode == 0
    assert re.search(r"mcx-review \(model complexity of changed configs\)\.+\(no files to check\)Skipped",
                     out.stdout), out.stdout

"""The cache (a warm run imports no torch; code and version changes invalidate) and sharding
(shards merged equal the unsharded report, byte for byte)."""
import os
import subprocess
import sys

import pytest
from helpers import ConfigRepo

from mcx_review import review as rv
from mcx_review.measure.cache import cache_key, package_versions
from mcx_review.cli import main

CIFAR = {
    "configs/resnet/resnet18_8xb16_cifar10.py": "model = dict(backbone=dict(depth=34))",
    "configs/resnet/resnet34_8xb16_cifar10.py": "model = dict(backbone=dict(depth=18))",
    "configs/resnet/resnet50_8xb16_cifar10.py": "model = dict(backbone=dict(depth=101))",
    "configs/resnet/resnet101_8xb16_cifar10.py": "model = dict(head=dict(num_classes=100))",
}


@pytest.fixture(scope="module")
def cifar_repo(tmp_path_factory):
    repo = ConfigRepo(tmp_path_factory.mktemp("cifar") / "r")
    repo.branch("pr")
    for path, line in CIFAR.items():
        repo.edit(path, line)
    repo.commit("four cifar resnets changed")
    return repo


def cli(repo, out, *args, env=None):
    return subprocess.run([sys.executable, "-m", "mcx_review", "--base", "main", "--head", "pr", "--format", "json",
                           "-o", str(out), *args], cwd=repo.root, capture_output=True, text=True, env=env)


def test_warm_run_reads_the_cache_and_never_imports_torch(cifar_repo, tmp_path):
    cache = tmp_path / "cache"
    cold = cli(cifar_repo, tmp_path / "cold.json", "--cache-dir", str(cache))
    assert cold.returncode == 0, cold.stderr
    # a torch that leaves a mark if anything imports it
    fake = tmp_path / "fake"
    marker = tmp_path / "torch-was-imported"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text(
        f"open({str(marker)!r}, 'a').write('x')\nraise ImportError('torch imported in a warm run')\n")
    # prepended, so a PYTHONPATH that points at the code under test (a worktree) still does
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(fake), os.environ.get("PYTHONPATH")])))
    warm = cli(cifar_repo, tmp_path / "warm.json", "--cache-dir", str(cache), env=env)
    assert warm.returncode == 0, warm.stderr
    assert not marker.exists(), "a warm run imported torch"
    assert "8 from cache" in warm.stderr or "from cache" in warm.stderr
    assert (tmp_path / "cold.json").read_text() == (tmp_path / "warm.json").read_text()


def test_shards_merged_equal_the_unsharded_report(cifar_repo, tmp_path):
    full = tmp_path / "full.json"
    assert cli(cifar_repo, full, "--no-cache").returncode == 0
    for n in (2, 4):
        parts = []
        for k in range(1, n + 1):
            part = tmp_path / f"shard-{k}-of-{n}.json"
            proc = cli(cifar_repo, part, "--no-cache", "--shard", f"{k}/{n}")
            assert proc.returncode == 0, proc.stderr
            parts.append(str(part))
        merged = tmp_path / f"merged-{n}.json"
        assert main(["merge", *parts, "-o", str(merged)]) == 0
        assert merged.read_text() == full.read_text(), f"{n} shards merged differ from the unsharded run"


def test_merge_refuses_a_missing_shard(cifar_repo, tmp_path, capsys):
    part = tmp_path / "s1.json"
    assert cli(cifar_repo, part, "--no-cache", "--shard", "1/2").returncode == 0
    assert main(["merge", str(part), "-o", str(tmp_path / "m.json")]) == 2
    assert "expected shards 1/2" in capsys.readouterr().err


TINY = """
import torch.nn as nn
from mmengine.model import BaseModule
from mmcls.registry import MODELS
from .blocks import WIDTH


@MODELS.register_module()
class CachedNet(BaseModule):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, WIDTH, 3)

    def forward(self, x):
        return (self.conv(x),)
"""


def test_a_code_change_invalidates_the_cache(tmp_path):
    repo = ConfigRepo(tmp_path / "r")
    repo.write("projects/__init__.py", "")
    repo.write("projects/cached/__init__.py", "from .net import *  # noqa\n")
    repo.write("projects/cached/net.py", TINY)
    repo.write("projects/cached/blocks.py", "WIDTH = 8\n")
    repo.write("configs/cached/net.py", "_base_ = ['../resnet/resnet18_8xb16_cifar10.py']\n"
                                        "custom_imports = dict(imports=['projects.cached'])\n"
                                        "model = dict(backbone=dict(_delete_=True, type='CachedNet'))\n")
    repo.commit("cached net")
    repo.replace("configs/cached/net.py", "type='CachedNet')", "type='CachedNet'), head=dict(num_classes=5)")
    repo.commit("head change")
    opts = rv.Options(base="HEAD~1", head="HEAD", jobs=2, cache_dir=tmp_path / "cache")
    first, stats, _ = rv.run_review(repo.root, opts)
    assert stats.analysed == 2
    again, stats, _ = rv.run_review(repo.root, opts)
    assert stats.analysed == 0 and stats.cache_hits == 2 and again == first
    repo.replace("projects/cached/blocks.py", "WIDTH = 8", "WIDTH = 16")  # imported by the backbone's file
    repo.commit("wider")
    opts.base = "HEAD~2"
    after, stats, _ = rv.run_review(repo.root, opts)
    assert stats.analysed == 1 and stats.cache_hits == 1, "only the head side's code changed"
    (entry,) = after["configs"]
    assert entry["head"]["flops"] == 2 * first["configs"][0]["head"]["flops"]


def test_a_version_change_changes_the_key():
    resolved = {"scope": "mmcls", "model": {"type": "ImageClassifier"}, "shape_spec": {"forced": [224, 224]}}
    versions = dict(package_versions())
    assert cache_key(resolved, "c") == cache_key(resolved, "c", versions)
    for name in ("torch", "fvcore", "mmcls"):
        bumped = dict(versions, **{name: versions.get(name, "0") + ".post1"})
        assert cache_key(resolved, "c", bumped) != cache_key(resolved, "c", versions), name
    assert cache_key(resolved, "other code", versions) != cache_key(resolved, "c", versions)

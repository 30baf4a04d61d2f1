"""Each revision is analysed with its own code: a custom backbone loaded by ``custom_imports``, and
a fork-shaped repository whose own ``mmpretrain/`` shadows the installed package."""
import importlib.util
import json
import shutil
import textwrap
from pathlib import Path

import pytest
from reference import assert_matches, get_flops_way
from repos import ConfigRepo

from mcx_review.cli import main

TINY = '''
import time

import torch.nn as nn
from mmengine.model import BaseModule

from mmcls.registry import MODELS

from .blocks import conv_block

WIDTH = {width}


@MODELS.register_module()
class TinyNet(BaseModule):
    def __init__(self, depth=2):
        super().__init__()
        layers = [conv_block(3, WIDTH)] + [conv_block(WIDTH, WIDTH) for _ in range(depth - 1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return (self.layers(x),)


@MODELS.register_module()
class DownloadingNet(TinyNet):
    def __init__(self):
        super().__init__()
        from torch.hub import load_state_dict_from_url
        load_state_dict_from_url("https://download.example.invalid/tiny.pth")


@MODELS.register_module()
class SlowNet(TinyNet):
    def __init__(self):
        time.sleep(120)
        super().__init__()
'''

BLOCKS = '''
import torch.nn as nn


def conv_block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())
'''


def tiny_config(backbone: str) -> str:
    return textwrap.dedent(f"""
        _base_ = ['../resnet/resnet18_8xb16_cifar10.py']
        custom_imports = dict(imports=['projects.tiny.models'], allow_failed_imports=False)
        model = dict(backbone=dict(_delete_=True, type='{backbone}'), head=dict(in_channels=32))
    """)


@pytest.fixture(scope="module")
def project_repo(tmp_path_factory):
    repo = ConfigRepo(tmp_path_factory.mktemp("project") / "r")
    repo.write("projects/__init__.py", "")
    repo.write("projects/tiny/__init__.py", "")
    repo.write("projects/tiny/models/__init__.py", "from .tiny import *  # noqa\n")
    repo.write("projects/tiny/models/tiny.py", TINY.format(width=32))
    repo.write("projects/tiny/models/blocks.py", BLOCKS)
    repo.write("configs/tiny/tiny_cifar.py", tiny_config("TinyNet"))
    repo.commit("tiny project")
    repo.branch("pr")
    repo.replace("projects/tiny/models/tiny.py", "WIDTH = 32", "WIDTH = 64")
    repo.write("configs/tiny/downloads.py", tiny_config("DownloadingNet"))
    repo.write("configs/tiny/slow.py", tiny_config("SlowNet"))
    repo.commit("wider tiny net; two new configs")
    base_tree = repo.root.parent / "base-tree"
    repo.repo.git.worktree("add", "--detach", str(base_tree), "main")
    out = repo.root.parent / "report.json"
    code = main(["--repo", str(repo.root), "--base", "main", "--head", "pr", "--format", "json", "-o", str(out),
                 "--no-cache", "--timeout", "20"])
    return repo, base_tree, code, {c["path"]: c for c in json.loads(out.read_text())["configs"]}


def test_custom_imports_backbone_is_counted_with_each_revisions_code(project_repo):
    repo, base_tree, _, configs = project_repo
    tiny = configs["configs/tiny/tiny_cifar.py"]
    assert tiny["reasons"] == ["uses code in projects/tiny/models/tiny.py"]
    assert tiny["status"] == "changed"
    assert tiny["base"]["input_shape"] == [3, 32, 32]
    base_ref = get_flops_way(base_tree, "configs/tiny/tiny_cifar.py", 32, 32)
    head_ref = get_flops_way(repo.root, "configs/tiny/tiny_cifar.py", 32, 32)
    assert base_ref["flops"] != head_ref["flops"]
    assert_matches(tiny["base"], base_ref)
    assert_matches(tiny["head"], head_ref)


def test_a_model_that_downloads_is_an_error_naming_it(project_repo):
    _, _, code, configs = project_repo
    entry = configs["configs/tiny/downloads.py"]
    assert entry["status"] == "error" and entry["base"] is None
    (err,) = entry["errors"]
    assert err["side"] == "head" and "download" in err["message"] and "network" in err["message"]
    assert code == 1


def test_an_analysis_over_the_timeout_is_stopped_and_named(project_repo):
    _, _, _, configs = project_repo
    (err,) = configs["configs/tiny/slow.py"]["errors"]
    assert "longer than 20 s" in err["message"]


def test_unrelated_configs_are_not_reviewed(project_repo):
    _, _, _, configs = project_repo
    assert set(configs) == {"configs/tiny/tiny_cifar.py", "configs/tiny/downloads.py", "configs/tiny/slow.py"}


def _installed(pkg: str) -> Path:
    return Path(importlib.util.find_spec(pkg).origin).parent


def test_fork_shaped_repository_is_analysed_with_its_own_package(tmp_path):
    repo = ConfigRepo(tmp_path / "fork", pkg="mmpretrain")
    shutil.copytree(_installed("mmpretrain"), repo.root / "mmpretrain",
                    ignore=shutil.ignore_patterns("__pycache__", ".mim"))
    repo.write(".mcx-review.yaml", "configs:\n  - configs/resnet/resnet50_8xb32_in1k.py\n"
                                   "  - configs/resnet/resnet18_8xb32_in1k.py\n")
    repo.commit("fork of mmpretrain")
    repo.branch("pr")
    repo.replace("mmpretrain/models/backbones/resnet.py", "50: (Bottleneck, (3, 4, 6, 3))",
                 "50: (Bottleneck, (3, 4, 8, 3))")
    repo.commit("deeper stage 3 in the fork's ResNet-50")
    out = tmp_path / "report.json"
    assert main(["--repo", str(repo.root), "--base", "main", "--head", "pr", "--format", "json", "-o", str(out),
                 "--no-cache"]) == 0
    configs = {c["path"]: c for c in json.loads(out.read_text())["configs"]}
    r50, r18 = configs["configs/resnet/resnet50_8xb32_in1k.py"], configs["configs/resnet/resnet18_8xb32_in1k.py"]
    assert r50["reasons"] == ["uses code in mmpretrain/models/backbones/resnet.py"]
    assert r50["status"] == "changed" and r50["head"]["flops"] > r50["base"]["flops"]
    assert r18["status"] == "unchanged", "the edit does not touch ResNet-18's numbers"
    assert_matches(r50["head"], get_flops_way(repo.root, "configs/resnet/resnet50_8xb32_in1k.py", 224, 224))

"""Each revision is analysed with its own code: a custom backbone loaded by ``custom_imports``, and
a fork-shaped repository whose own ``mmpretrain/`` shadows the installed package."""
import importlib.util
import json
import re
import shutil
import textwrap
from pathlib import Path

import pytest
from reference import assert_matches, get_flops_way
from helpers import ConfigRepo

from mcx_review.cli import main
from mcx_review.review import Options, run_review

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
    assert tiny["reasons"] == ["uses WIDTH (projects/tiny/models/tiny.py)"]
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
    assert r50["reasons"] == ["uses ResNet (mmpretrain/models/backbones/resnet.py)"]
    assert r50["status"] == "changed" and r50["head"]["flops"] > r50["base"]["flops"]
    assert r18["status"] == "unchanged", "the edit does not touch ResNet-18's numbers"
    assert_matches(r50["head"], get_flops_way(repo.root, "configs/resnet/resnet50_8xb32_in1k.py", 224, 224))


# ---------------------------------------------------------------- definition-level impact, end to end
# One fork-shaped repository (mmpretrain's own source plus every config it ships), a branch per rule.

RESNET = "mmpretrain/models/backbones/resnet.py"
UTILS_INIT = "mmpretrain/models/utils/__init__.py"
NEW_BACKBONE = '''
import torch.nn as nn

from mmpretrain.registry import MODELS
from .base_backbone import BaseBackbone


@MODELS.register_module()
class TinyNewNet(BaseBackbone):

    def __init__(self, width=16, init_cfg=None):
        super().__init__(init_cfg)
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU())

    def forward(self, x):
        return (self.stem(x), )
'''
NEW_CONFIG = """
_base_ = [
    '../_base_/models/resnet18.py', '../_base_/datasets/imagenet_bs32.py',
    '../_base_/schedules/imagenet_bs256.py', '../_base_/default_runtime.py'
]
model = dict(backbone=dict(_delete_=True, type='TinyNewNet', width=16), head=dict(in_channels=16))
"""


def _docs_and_comments(repo: ConfigRepo) -> None:
    repo.replace(RESNET, '"""ResNetV1d backbone.', '"""ResNetV1d backbone (the "D" variant).')
    repo.replace(RESNET, "        super(ResNetV1c, self).__init__(",
                 "        # a deep stem instead of the 7x7 conv\n        super(ResNetV1c, self).__init__(")
    repo.replace(RESNET, "class ResNet(BaseBackbone):\n    \"\"\"ResNet backbone.",
                 "class ResNet(BaseBackbone):\n    \"\"\"ResNet backbone, as in the paper.")


def _unreachable(repo: ConfigRepo) -> None:
    repo.write("tools/flops_table.py", "from mmpretrain.models import ResNet\n\nprint(ResNet.arch_settings)\n")
    repo.write("setup.py", "from setuptools import setup\n\nsetup(name='fork')\n")
    repo.write("tests/test_fork.py", "def test_nothing():\n    assert True\n")
    repo.write("docs/conf.py", "project = 'fork'\n")
    repo.write("mmpretrain/models/backbones/orphan.py",  # a new module nothing imports yet
               "from mmpretrain.registry import MODELS\n\n\n@MODELS.register_module()\nclass Orphan:\n    pass\n")


def _new_backbone(repo: ConfigRepo) -> None:
    repo.write("mmpretrain/models/backbones/tiny_new.py", NEW_BACKBONE)
    repo.replace("mmpretrain/models/backbones/__init__.py", "from .twins import PCPVT, SVT\n",
                 "from .tiny_new import TinyNewNet\nfrom .twins import PCPVT, SVT\n")
    repo.replace("mmpretrain/models/backbones/__init__.py", "__all__ = [\n", "__all__ = [\n    'TinyNewNet',\n")
    repo.write("configs/tinynew/tinynew_8xb32_in1k.py", NEW_CONFIG)


def _rebind(repo: ConfigRepo) -> None:
    repo.edit(UTILS_INIT, "from .attention import WindowMSA as WindowMSAAlias  # an addition: no effect\n\n\n"
                          "class ShiftWindowMSA(ShiftWindowMSA):  # noqa: F811 - a re-binding Swin takes\n"
                          "    pass\n")


def _v1d(repo: ConfigRepo) -> None:
    repo.replace(RESNET, "deep_stem=True, avg_down=True, **kwargs)", "deep_stem=False, avg_down=True, **kwargs)")


def _module_statement(repo: ConfigRepo) -> None:
    repo.edit(RESNET, "ResNet.arch_settings[18] = (BasicBlock, (2, 2, 2, 2))  # run at import")


BRANCHES = {"docs": _docs_and_comments, "unreachable": _unreachable, "newbb": _new_backbone,
            "rebind": _rebind, "v1d": _v1d, "statement": _module_statement}


@pytest.fixture(scope="module")
def fork(tmp_path_factory):
    repo = ConfigRepo(tmp_path_factory.mktemp("mmpretrain-fork") / "r", pkg="mmpretrain")
    shutil.copytree(_installed("mmpretrain"), repo.root / "mmpretrain",
                    ignore=shutil.ignore_patterns("__pycache__", ".mim"))
    repo.commit("fork of mmpretrain: its package and its configs")
    for name, edit in BRANCHES.items():
        repo.checkout("main")
        repo.branch(name)
        edit(repo)
        repo.commit(name)
    repo.checkout("main")
    return repo


def _list(repo: ConfigRepo, head: str, tmp_path: Path, **kw):
    opts = Options(base="main", head=head, jobs=2, cache_dir=tmp_path / "cache", **kw)
    _, stats, targets = run_review(repo.root, opts, list_only=True)
    return {t.path: t.reasons for t in targets}, stats


def _model_types(root: Path, configs) -> dict:
    """What mmengine itself loads: config -> backbone type (no mcx_review code involved)."""
    from mmengine.config import Config
    out = {}
    for cfg in configs:
        model = Config.fromfile(str(cfg)).get("model") or {}
        out[cfg.relative_to(root).as_posix()] = (model.get("backbone") or {}).get("type")
    return out


def test_docstring_and_comment_edits_resolve_no_config(fork, tmp_path):
    targets, stats = _list(fork, "docs", tmp_path, use_cache=False)
    assert targets == {}
    assert stats.resolved == 0 and stats.workers_started == 0 and not stats.torch_imported


def test_unreachable_files_are_decided_without_a_worker(fork, tmp_path):
    targets, stats = _list(fork, "unreachable", tmp_path, use_cache=False)
    assert targets == {}
    assert stats.resolved == 0 and stats.workers_started == 0


def test_subclass_change_reaches_subclasses_in_other_files_not_its_base_class(fork, tmp_path):
    targets, stats = _list(fork, "v1d", tmp_path)
    types = _model_types(fork.root, sorted((fork.root / "configs/resnet").glob("*.py"))
                         + sorted((fork.root / "configs/resnest").glob("*.py")))
    expected = {c for c, t in types.items() if t in ("ResNetV1d", "ResNeSt")}
    assert len(expected) >= 5 and "configs/resnest/resnest50_32xb64_in1k.py" in expected
    assert set(targets) == expected
    assert all(r == [f"uses ResNetV1d ({RESNET})"] for r in targets.values())
    assert types["configs/resnet/resnet50_8xb32_in1k.py"] == "ResNet"  # same file, not reviewed
    # only the configs that name an affected type are resolved (and those inheriting from a package,
    # `'mmdet::...'`, whose types this tree cannot see); a config's files are the same at base and
    # head, so the head side takes the base side's resolution from the cache
    outside = {p.relative_to(fork.root).as_posix() for p in (fork.root / "configs").rglob("*.py")
               if "_base_" not in p.parts and re.search(r"['\"]\w+::", p.read_text())}
    assert (stats.resolved, stats.resolve_cache_hits) == (len(expected) + len(outside),) * 2
    again, warm = _list(fork, "v1d", tmp_path)
    assert again == targets and (warm.resolved, warm.resolve_cache_hits) == (0, stats.resolved * 2)
    assert warm.workers_started == 0


def test_subclass_change_review_counts_the_affected_configs(fork, tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text("configs:\n  - configs/resnet/resnet50_8xb32_in1k.py\n"
                        "  - configs/resnet/resnetv1d50_8xb32_in1k.py\n"
                        "  - configs/resnest/resnest50_32xb64_in1k.py\n")
    out = tmp_path / "report.json"
    assert main(["--repo", str(fork.root), "--base", "main", "--head", "v1d", "--format", "json", "-o", str(out),
                 "--no-cache", "--config", str(settings)]) == 0
    configs = {c["path"]: c for c in json.loads(out.read_text())["configs"]}
    assert set(configs) == {"configs/resnet/resnetv1d50_8xb32_in1k.py", "configs/resnest/resnest50_32xb64_in1k.py"}
    for c in configs.values():
        assert c["status"] == "changed" and c["head"]["flops"] != c["base"]["flops"]
    v1d = configs["configs/resnet/resnetv1d50_8xb32_in1k.py"]
    fork.checkout("v1d")
    try:
        assert_matches(v1d["head"], get_flops_way(fork.root, "configs/resnet/resnetv1d50_8xb32_in1k.py", 224, 224))
    finally:
        fork.checkout("main")
    # the escape hatch: every config that imports resnet.py, as before
    files = tmp_path / "files.yaml"
    files.write_text(settings.read_text() + "impact: files\n")
    targets, _ = _list(fork, "v1d", tmp_path, settings_path=files)
    assert set(targets) == set(configs) | {"configs/resnet/resnet50_8xb32_in1k.py"}
    assert targets["configs/resnet/resnet50_8xb32_in1k.py"] == [f"uses code in {RESNET}"]


def test_new_backbone_with_its_init_import_reviews_exactly_the_new_config(fork, tmp_path):
    out = tmp_path / "report.json"
    assert main(["--repo", str(fork.root), "--base", "main", "--head", "newbb", "--format", "json", "-o", str(out),
                 "--no-cache"]) == 0
    (entry,) = json.loads(out.read_text())["configs"]
    assert entry["path"] == "configs/tinynew/tinynew_8xb32_in1k.py" and entry["status"] == "added"
    fork.checkout("newbb")
    try:
        assert_matches(entry["head"], get_flops_way(fork.root, entry["path"], 224, 224))
    finally:
        fork.checkout("main")
    _, stats = _list(fork, "newbb", tmp_path, use_cache=False)
    assert stats.resolved == 1, "only the new config (at head) is resolved"


def test_rebinding_a_name_in_an_init_reviews_the_models_that_take_it(fork, tmp_path):
    targets, _ = _list(fork, "rebind", tmp_path)
    swin = _model_types(fork.root, sorted((fork.root / "configs/swin_transformer").glob("*.py")))
    expected = {c for c, t in swin.items() if t == "SwinTransformer"}
    assert expected and expected <= set(targets)
    assert all(f"uses ShiftWindowMSA ({UTILS_INIT})" in targets[c] for c in expected)
    assert not any(c.startswith(("configs/resnet/", "configs/vgg/")) for c in targets)
    assert not any("WindowMSAAlias" in r for reasons in targets.values() for r in reasons)


def test_a_module_level_statement_keeps_the_file_rule(fork, tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text("configs:\n  - configs/resnet/resnet18_8xb32_in1k.py\n"
                        "  - configs/resnest/resnest50_32xb64_in1k.py\n  - configs/vgg/vgg11_8xb32_in1k.py\n")
    targets, _ = _list(fork, "statement", tmp_path, settings_path=settings)
    assert targets == {"configs/resnet/resnet18_8xb32_in1k.py": [f"uses code in {RESNET}"],
                       "configs/resnest/resnest50_32xb64_in1k.py": [f"uses code in {RESNET}"]}

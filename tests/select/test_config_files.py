"""Static impact analysis on real data: the configs mmcls ships, the source of the installed
mmpretrain, real git. Every expectation is derived independently of mcx_review.select.config_files: inheritance
from what mmengine's own ``Config.fromfile`` loads, code from the sources' own text."""
from __future__ import annotations

import importlib.util
import shutil
import textwrap
from pathlib import Path
from typing import Dict, List, Set

import pytest
from mmengine.config import Config
from helpers import ConfigRepo, shipped

from mcx_review.select import config_files as impact
from mcx_review.select.config_files import BaseGraph, CodeIndex

RESNET50 = "configs/_base_/models/resnet50.py"
RUNTIME = "configs/_base_/default_runtime.py"


def _rglob_configs(root: Path) -> List[str]:
    return sorted(p.relative_to(root).as_posix() for p in (root / "configs").rglob("*.py")
                  if "_base_" not in p.relative_to(root).parts)


def _mmengine_bases(root: Path, config: str) -> Set[str]:
    """The files mmengine reads when it loads ``config``: ``Config.fromfile`` puts each loaded
    file's absolute path at the head of its chunk of ``cfg.text``. A config fromfile refuses
    (mmengine 0.10's lazy-import check trips on some shipped ones) is walked with mmengine's own
    ``_get_base_files`` / ``_get_cfg_path`` instead."""
    prefix = str(root) + "/"
    try:
        text = Config.fromfile(str(root / config)).text
        loaded = {line[len(prefix):] for line in text.splitlines()
                  if line.startswith(prefix) and (root / line[len(prefix):]).is_file()}
        return loaded - {config}
    except Exception:  # noqa: BLE001 - fall back to mmengine's base walk
        out: Set[str] = set()
        todo = [str(root / config)]
        while todo:
            f = todo.pop()
            for b in Config._get_base_files(f):
                path, scope = Config._get_cfg_path(b, f)
                if scope is None:
                    rel = Path(path).resolve().relative_to(root.resolve()).as_posix()
                    if rel not in out:
                        out.add(rel)
                        todo.append(path)
        return out


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """A git repo of the shipped mmcls configs, and what mmengine says each config inherits."""
    repo = ConfigRepo(tmp_path_factory.mktemp("zoo") / "r")
    configs = _rglob_configs(repo.root)
    return repo, {c: _mmengine_bases(repo.root, c) for c in configs}


def _mini(tmp_path: Path) -> Path:
    """A tree with the shipped ``_base_`` fragments and the ResNet configs, for tests that add
    files (the shared zoo stays as shipped)."""
    for sub in ("_base_", "resnet"):
        shutil.copytree(shipped() / sub, tmp_path / "configs" / sub, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(textwrap.dedent(text), encoding="utf-8")


def _changed(repo: ConfigRepo, base: str = "main") -> Set[str]:
    return set(repo.repo.git.diff("--name-only", f"{base}...HEAD").splitlines())


# ---------------------------------------------------------------- discovery

def test_discover_finds_every_shipped_leaf_config_and_no_fragment(zoo):
    repo, truth = zoo
    found = impact.discover_configs(repo.root)
    assert found == _rglob_configs(repo.root) == sorted(truth) and len(found) > 300
    assert not any("_base_" in f.split("/") for f in found)


def test_globs_skip_venv_git_build_and_fragments(tmp_path):
    for rel in ["configs/a.py", "configs/_base_/frag.py", "configs/sub/b.yaml", "configs/sub/c.json",
                "configs/sub/metafile.yml", "configs/model-index.yml", "configs/legacy/old.py",
                "configs/pkg/__init__.py", ".venv/lib/configs/venv.py", "env/configs/other.py",
                ".git/configs/git.py", "build/configs/built.py", "x/configs/nested.py"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("model = dict()\n")
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr\n")  # a venv not called .venv
    assert impact.discover_configs(tmp_path, ["**/configs/**/*.py"]) == [
        "configs/a.py", "configs/legacy/old.py", "x/configs/nested.py"]
    assert impact.discover_configs(tmp_path, ["configs/**/*.py"], ["configs/legacy"]) == ["configs/a.py"]
    assert impact.discover_configs(tmp_path, ["configs/**/*.py"], ["**/old.py"]) == ["configs/a.py"]
    assert impact.discover_configs(tmp_path, ["configs/**/*.yml", "configs/**/*.yaml", "configs/**/*.json"]) == [
        "configs/sub/b.yaml", "configs/sub/c.json"]
    assert impact.discover_configs(tmp_path, ["configs/**"]) == [
        "configs/a.py", "configs/legacy/old.py", "configs/sub/b.yaml", "configs/sub/c.json"]
    # a directory named literally in the glob is walked, ignored name or not
    assert impact.discover_configs(tmp_path, ["build/configs/*.py"]) == ["build/configs/built.py"]
    assert impact.discover_configs(tmp_path, ["nowhere/**/*.py"]) == []


# ---------------------------------------------------------------- old-style inheritance

def test_editing_the_resnet50_model_base_reviews_exactly_its_inheritors(zoo):
    repo, truth = zoo
    repo.branch("deeper-resnet")
    try:
        repo.replace(RESNET50, "depth=50", "depth=101")
        repo.commit("resnet50 base: depth 101")
        changed = _changed(repo)
        assert changed == {RESNET50}
        hits = impact.configs_inheriting(repo.root, impact.discover_configs(repo.root), changed)
        expected = {c for c, bases in truth.items() if RESNET50 in bases}
        assert set(hits) == expected and "configs/resnet/resnet50_8xb32_in1k.py" in expected
        assert set(hits.values()) == {RESNET50}
        assert impact.reason_inherits(hits["configs/resnet/resnet50_8xb32_in1k.py"]) == f"inherits {RESNET50}"
    finally:
        repo.checkout("main")


def test_default_runtime_reaches_most_of_the_zoo_and_closures_match_mmengine(zoo):
    repo, truth = zoo
    graph = BaseGraph(repo.root)
    for config, bases in truth.items():
        assert set(graph.closure(config)) == bases, config
    assert graph.problems == {}
    hits = impact.configs_inheriting(repo.root, truth, {RUNTIME}, graph=graph)
    assert set(hits) == {c for c, b in truth.items() if RUNTIME in b}
    assert len(hits) > 0.9 * len(truth)
    assert impact.base_closure(repo.root, "configs/resnet/resnet50_8xb32_in1k.py") == \
        truth["configs/resnet/resnet50_8xb32_in1k.py"]


def test_the_nearest_changed_base_is_named(zoo):
    repo, truth = zoo
    leaf = "configs/resnet/resnet50_8xb32-fp16_in1k.py"
    parent = "configs/resnet/resnet50_8xb32_in1k.py"
    assert parent in truth[leaf] and RESNET50 in truth[leaf]
    assert impact.configs_inheriting(repo.root, [leaf], {RESNET50, parent}) == {leaf: parent}


def test_package_bases_are_ignored_and_file_dirname_is_substituted(tmp_path):
    root = _mini(tmp_path)
    cfg = "configs/custom/r18_from_package.py"
    _write(root, cfg, """
        _base_ = [
            'mmcls::_base_/datasets/imagenet_bs32.py',
            '{{ fileDirname }}/../_base_/models/resnet18.py',
        ]
        model = dict(head=dict(num_classes=10))
    """)
    loaded = Config.fromfile(str(root / cfg))  # mmengine agrees the file is valid
    assert loaded.model.head.num_classes == 10 and loaded.model.backbone.depth == 18
    assert loaded.train_dataloader.batch_size == 32  # from the package's base
    assert impact.base_closure(root, cfg) == {"configs/_base_/models/resnet18.py"}
    assert impact.configs_inheriting(root, [cfg], {"configs/_base_/models/resnet18.py"}) == \
        {cfg: "configs/_base_/models/resnet18.py"}
    # the repo's own copy of the package's file is not what the config inherits
    assert impact.configs_inheriting(root, [cfg], {"configs/_base_/datasets/imagenet_bs32.py"}) == {}


def test_yaml_configs_count_when_globbed_and_inherit(tmp_path):
    root = _mini(tmp_path)
    cfg = "configs/custom/r18.yaml"
    _write(root, cfg, "_base_:\n  - ../_base_/models/resnet18.py\nmodel:\n  head:\n    num_classes: 7\n")
    assert Config.fromfile(str(root / cfg)).model.backbone.depth == 18
    assert cfg not in impact.discover_configs(root)
    yaml_configs = impact.discover_configs(root, ["configs/**/*.py", "configs/**/*.yaml", "configs/**/*.yml"])
    assert cfg in yaml_configs
    assert (root / "configs/resnet/metafile.yml").is_file()
    assert not any(c.endswith(("metafile.yml", "model-index.yml")) for c in yaml_configs)
    assert impact.configs_inheriting(root, yaml_configs, {"configs/_base_/models/resnet18.py"})[cfg] == \
        "configs/_base_/models/resnet18.py"


def test_a_broken_config_is_a_named_problem_not_a_crash(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs/bad.py").write_text("_base_ = ['x.py'\nmodel = dict(\n")
    (tmp_path / "configs/good.py").write_text("_base_ = 'gone.py'\n")
    graph = BaseGraph(tmp_path)
    assert impact.configs_inheriting(tmp_path, ["configs/bad.py", "configs/good.py"], {"configs/gone.py"},
                                     graph=graph) == {"configs/good.py": "configs/gone.py"}
    assert graph.problems["configs/bad.py"].startswith("configs/bad.py: syntax error at line")


# ---------------------------------------------------------------- new-style inheritance

NEW_BASE = '''
from mmengine.model import BaseDataPreprocessor

model = dict(type='ImageClassifier', backbone=dict(type='ResNet', depth=18),
             data_preprocessor=dict(type=BaseDataPreprocessor))
'''
NEW_RUNTIME = "default_scope = 'mmpretrain'\n"
NEW_LEAF = '''
from mmengine.config import read_base

with read_base():
    from .._base_.models.new_resnet18 import *
    from .._base_.new_runtime import *

model.update(neck=dict(type='GlobalAveragePooling'))
'''
NEW_CHILD = '''
from mmengine.config import read_base

with read_base():
    from .new_resnet18_in1k import *

model.backbone.depth = 34
'''


def test_new_style_read_base_configs_follow_their_bases(tmp_path):
    root = _mini(tmp_path)
    _write(root, "configs/_base_/models/new_resnet18.py", NEW_BASE)
    _write(root, "configs/_base_/new_runtime.py", NEW_RUNTIME)
    _write(root, "configs/newstyle/new_resnet18_in1k.py", NEW_LEAF)
    _write(root, "configs/newstyle/new_resnet34_in1k.py", NEW_CHILD)
    child = Config.fromfile(str(root / "configs/newstyle/new_resnet34_in1k.py"))
    assert child.model.backbone.depth == 34 and child.default_scope == "mmpretrain"  # mmengine resolves them
    leaf_bases = {"configs/_base_/models/new_resnet18.py", "configs/_base_/new_runtime.py"}
    assert impact.base_closure(root, "configs/newstyle/new_resnet18_in1k.py") == leaf_bases
    assert impact.base_closure(root, "configs/newstyle/new_resnet34_in1k.py") == \
        leaf_bases | {"configs/newstyle/new_resnet18_in1k.py"}
    configs = impact.discover_configs(root)
    assert impact.configs_inheriting(root, configs, {"configs/_base_/models/new_resnet18.py"}) == {
        "configs/newstyle/new_resnet18_in1k.py": "configs/_base_/models/new_resnet18.py",
        "configs/newstyle/new_resnet34_in1k.py": "configs/_base_/models/new_resnet18.py"}
    assert impact.configs_inheriting(root, configs, {"configs/newstyle/new_resnet18_in1k.py"}) == {
        "configs/newstyle/new_resnet34_in1k.py": "configs/newstyle/new_resnet18_in1k.py"}


def test_new_style_absolute_bases_count_when_the_module_is_in_the_tree(tmp_path):
    """A fork keeps new-style configs in its package (``mmpretrain/configs/``); absolute imports
    of another package's configs point outside the tree."""
    _write(tmp_path, "mmpretrain/configs/_base_/models/r18.py", NEW_BASE)
    _write(tmp_path, "mmpretrain/configs/resnet/r18_in1k.py", """
        from mmengine.config import read_base

        with read_base():
            from mmpretrain.configs._base_.models.r18 import *
            from mmdet.configs._base_.default_runtime import *
    """)
    assert impact.base_closure(tmp_path, "mmpretrain/configs/resnet/r18_in1k.py") == \
        {"mmpretrain/configs/_base_/models/r18.py"}
    assert impact.discover_configs(tmp_path, ["mmpretrain/configs/**/*.py"]) == \
        ["mmpretrain/configs/resnet/r18_in1k.py"]


# ---------------------------------------------------------------- code

def _installed(pkg: str) -> Path:
    spec = importlib.util.find_spec(pkg)
    assert spec and spec.origin
    return Path(spec.origin).parent


@pytest.fixture(scope="module")
def fork(tmp_path_factory) -> Path:
    """A repository that is itself a codebase: mmpretrain's source at ``mmpretrain/``, a project
    with its own backbone loaded by ``custom_imports``."""
    root = tmp_path_factory.mktemp("fork") / "r"
    shutil.copytree(_installed("mmpretrain"), root / "mmpretrain", ignore=shutil.ignore_patterns("__pycache__"))
    files: Dict[str, str] = {
        "projects/foo/__init__.py": "",
        "projects/foo/models/__init__.py": "from .bar import Bar\n",
        "projects/foo/models/bar.py": textwrap.dedent("""
            import torch.nn as nn

            from mmpretrain.registry import MODELS
            from .blocks import conv_block
            from .extra import Baz, Quux


            @MODELS.register_module(name=['FooBar', 'Bar'])
            class Bar(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.body = conv_block(3, 8)


            MODELS.register_module(module=Baz)
            MODELS.register_module(name='Qux', module=Quux)
        """),
        "projects/foo/models/blocks.py": "import torch.nn as nn\n\n\ndef conv_block(i, o):\n"
                                         "    return nn.Conv2d(i, o, 3)\n",
        "projects/foo/models/extra.py": "class Baz:\n    pass\n\n\nclass Quux:\n    pass\n",
        "projects/foo/models/unused.py": "X = 1\n",
        # the same name registered twice: both files are the model's code
        "projects/other/resnet.py": "from mmpretrain.registry import MODELS\n\n\n"
                                    "@MODELS.register_module('ResNet', force=True)\nclass MyResNet:\n    pass\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture(scope="module")
def index(fork) -> CodeIndex:
    return CodeIndex.build(fork)


def test_resnet_resolves_to_its_file_and_the_modules_it_imports(fork, index):
    resnet = "mmpretrain/models/backbones/resnet.py"
    source = (fork / resnet).read_text()
    assert "@MODELS.register_module()\nclass ResNet(" in source
    assert "from .base_backbone import BaseBackbone" in source and "from mmpretrain.registry import MODELS" in source
    used = index.files_for_types(["ResNet"])
    assert {resnet, "mmpretrain/models/backbones/base_backbone.py", "mmpretrain/registry.py",
            "mmpretrain/models/backbones/__init__.py", "projects/other/resnet.py"} <= used
    assert "mmpretrain/models/backbones/vgg.py" not in used  # a sibling backbone is not ResNet's code
    assert index.affected_by(used, {"mmpretrain/models/backbones/base_backbone.py", "README.md"}) == \
        "mmpretrain/models/backbones/base_backbone.py"
    assert index.affected_by(used, {"mmpretrain/models/backbones/vgg.py"}) is None
    for spelled in ("mmpretrain.ResNet", "mmpretrain.models.backbones.ResNet",
                    "mmpretrain.models.backbones.resnet.ResNet", "mmpretrain.models.ResNet"):
        assert resnet in index.files_for_types([spelled]), spelled


def test_names_reexported_by_a_package_lead_to_their_definition(fork, index):
    swin = "mmpretrain/models/backbones/swin_transformer.py"
    source = (fork / swin).read_text()
    assert "from ..utils import" in source and "ShiftWindowMSA" in source
    attention = (fork / "mmpretrain/models/utils/attention.py").read_text()
    assert "class ShiftWindowMSA(" in attention
    used = index.files_for_types(["SwinTransformer"])
    assert {swin, "mmpretrain/models/utils/__init__.py", "mmpretrain/models/utils/attention.py"} <= used
    assert index.affected_by(used, {"mmpretrain/models/utils/attention.py"}) == \
        "mmpretrain/models/utils/attention.py"
    # `models/utils/__init__.py` imports every util; only those Swin takes are its code
    assert "mmpretrain/models/utils/data_preprocessor.py" not in used


def test_types_a_module_builds_by_default_are_its_code(fork, index):
    head = (fork / "mmpretrain/models/heads/cls_head.py").read_text()
    assert "loss: dict = dict(type='CrossEntropyLoss'" in head  # ClsHead's default loss
    assert "class CrossEntropyLoss(" in (fork / "mmpretrain/models/losses/cross_entropy_loss.py").read_text()
    used = index.files_for_types(["LinearClsHead"])
    assert {"mmpretrain/models/heads/linear_head.py", "mmpretrain/models/heads/cls_head.py",
            "mmpretrain/models/losses/cross_entropy_loss.py"} <= used
    assert "mmpretrain/models/losses/focal_loss.py" not in used


def test_custom_imports_project_backbone(index):
    used = index.files_for_types(["ImageClassifier", "FooBar"], ["projects.foo.models"])
    project = {"projects/foo/models/__init__.py", "projects/foo/models/bar.py",
               "projects/foo/models/blocks.py", "projects/foo/models/extra.py"}
    assert project <= used and "projects/foo/models/unused.py" not in used
    assert index.affected_by(used, {"projects/foo/models/blocks.py"}) == "projects/foo/models/blocks.py"
    for registered in ("Bar", "Baz", "Qux", "projects.foo.models.Bar"):
        assert "projects/foo/models/bar.py" in index.files_for_types([registered]), registered
    assert "projects/foo/models/bar.py" not in index.files_for_types(["Quux"])  # registered as Qux
    assert index.files_for_types(["NoSuchType", "mmengine.model.BaseDataPreprocessor"]) == set()

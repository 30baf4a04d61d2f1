"""Definition-level impact, unit by unit: the per-definition comparison of one file's base and head
text, and what a registered type's model can reach (through subclassing and imports across files),
on small trees written here and on the source of the installed mmpretrain."""
from __future__ import annotations

import importlib.util
import shutil
import textwrap
from pathlib import Path
from typing import Dict

import pytest

from mcx_review.select.code_index import CodeIndex
from mcx_review.select.definitions import FileChange, Reach, compare_sources, hits

BASE = '''
"""Blocks."""
import torch.nn as nn

from .registry import MODELS

WIDTH = 32


def conv(cin, cout, k=3):
    """A conv."""
    return nn.Conv2d(cin, cout, k, padding=k // 2)


@MODELS.register_module()
class Net(nn.Module):
    """The net."""

    def __init__(self, depth=2):
        super().__init__()
        self.body = nn.Sequential(*[conv(WIDTH, WIDTH) for _ in range(depth)])


for _name in ("A", "B"):
    MODELS.register_module(name=_name, module=Net)
'''


def change(base: str, old: str, new: str) -> FileChange:
    assert old in base, old
    return compare_sources("m.py", base, base.replace(old, new))


def test_docstrings_comments_and_formatting_never_count():
    assert change(BASE, '"""The net."""', '"""The net, better described."""').empty
    assert change(BASE, '"""Blocks."""', '"""Blocks of the net."""').empty
    assert change(BASE, '    """A conv."""\n', "").empty
    assert change(BASE, "        super().__init__()\n",
                  "        # set up the module\n        super().__init__()\n").empty
    assert change(BASE, "def conv(cin, cout, k=3):", "def conv(cin,\n         cout,\n         k=3):").empty
    assert change(BASE, "[conv(WIDTH, WIDTH) for _ in range(depth)]",
                  "[\n            conv(WIDTH, WIDTH)  # same\n            for _ in range(depth)\n        ]").empty
    assert change(BASE, "WIDTH = 32", "WIDTH = (32)").empty
    assert change(BASE, '"""Blocks."""', '"""Blocks."""\nif __name__ == "__main__":\n    print(1)\n').empty


@pytest.mark.parametrize("old, new, names", [
    ("def __init__(self, depth=2):", "def __init__(self, depth=3):", {"Net"}),  # default argument
    ("return nn.Conv2d(cin, cout, k, padding=k // 2)", "return nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)",
     {"conv"}),  # body statement
    ("class Net(nn.Module):", "class Net(nn.Sequential):", {"Net"}),  # base class
    ("@MODELS.register_module()\nclass Net", "@MODELS.register_module(force=True)\nclass Net", {"Net"}),  # decorator
    ("WIDTH = 32", "WIDTH = 64", {"WIDTH"}),  # module constant
    ("from .registry import MODELS", "from .other_registry import MODELS", {"MODELS"}),  # re-binding an import
])
def test_behavioural_edits_change_exactly_that_definition(old, new, names):
    c = change(BASE, old, new)
    assert c.changed == names and not c.added and not c.removed and not c.other


def test_added_removed_and_other_statements():
    c = change(BASE, "WIDTH = 32\n", "WIDTH = 32\nHEIGHT = 16\nimport math\n")
    assert c.added == {"HEIGHT", "math"} and not c.changed and not c.other
    assert change(BASE, "def conv(", "def conv2(").removed == {"conv"}
    loop = change(BASE, 'for _name in ("A", "B"):', 'for _name in ("A", "B", "C"):')
    assert loop.other and not loop.changed  # a registration loop: the file-level rule
    patch = change(BASE, "WIDTH = 32", "WIDTH = 32\nnn.Conv2d.forward = None")
    assert patch.other and not patch.changed  # monkey-patching is not a definition
    deleted = compare_sources("m.py", BASE, None)
    assert deleted.removed == {"nn", "MODELS", "WIDTH", "conv", "Net"} and deleted.other
    broken = compare_sources("m.py", BASE, BASE + "\ndef (:\n")
    assert broken.other and "m.py: syntax error at line" in broken.problem


def test_init_additions_change_no_binding_and_rebinding_does():
    init = "from .a import A\nfrom .b import B\n\n__all__ = ['A', 'B']\n"
    added = change(init, "from .b import B\n", "from .b import B\nfrom .c import C\n")
    assert added.added == {"C"} and not added.changed and not added.other
    assert change(init, "__all__ = ['A', 'B']", "__all__ = ['A', 'B', 'C']").empty
    assert change(init, "from .b import B\n", "from .b import (\n    B, )\n").empty
    assert change(init, "from .b import B", "from .b2 import B").changed == {"B"}
    assert change(init, "__all__ = ['A', 'B']", "__all__ = ['A']").changed == {"B"}  # star importers lose B
    assert change(init, "from .b import B\n", "from .b import B\nB = A\n").changed == {"B"}


# ---------------------------------------------------------------- reach

TREE: Dict[str, str] = {
    "pkg/__init__.py": "",
    "pkg/registry.py": "from mmengine.registry import Registry\n\nMODELS = Registry('model')\n",
    "pkg/models/__init__.py": "from .base import Base\nfrom .nets import NetA, NetB\nfrom .stars import *\n",
    "pkg/models/base.py": textwrap.dedent('''
        import torch.nn as nn

        SCALE = 2
        UNUSED = 3


        class Base(nn.Module):
            def __init__(self):
                super().__init__()
                self.scale = SCALE
        '''),
    "pkg/models/nets.py": textwrap.dedent('''
        from pkg.registry import MODELS
        from . import helpers
        from .base import Base


        @MODELS.register_module()
        class NetA(Base):
            def __init__(self):
                super().__init__()
                self.block = helpers.block()


        @MODELS.register_module()
        class NetB(NetA):
            def __init__(self, extra=1):
                super().__init__()
                self.extra = extra
        '''),
    "pkg/models/helpers.py": "def block():\n    return None\n\n\ndef unrelated():\n    return 1\n",
    "pkg/models/stars.py": "from .starred import *\n",
    "pkg/models/starred.py": "def from_star():\n    return 1\n\n\ndef other_star():\n    return 2\n",
    "pkg/models/lazy.py": textwrap.dedent('''
        from pkg.registry import MODELS


        @MODELS.register_module()
        class Lazy:
            def __init__(self):
                from pkg.models import from_star
                self.v = from_star()
                self.head = dict(type='NetA')
        '''),
    "tools/train.py": "from pkg.models import NetB\n\nprint(NetB)\n",
}


@pytest.fixture(scope="module")
def reach(tmp_path_factory) -> Reach:
    root = tmp_path_factory.mktemp("tree")
    for rel, text in TREE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return Reach(CodeIndex.build(root))


def defs(nodes) -> set:
    return {(n[1], n[2]) for n in nodes if n[0] == "def"}


def test_reach_follows_bases_and_names_across_files_not_subclasses(reach):
    a, b = defs(reach.of_type("NetA")), defs(reach.of_type("NetB"))
    assert {("pkg/models/nets.py", "NetA"), ("pkg/models/base.py", "Base"), ("pkg/models/base.py", "SCALE"),
            ("pkg/models/helpers.py", "block"), ("pkg/registry.py", "MODELS")} <= a
    assert ("pkg/models/nets.py", "NetB") not in a, "a subclass is not its base's code"
    assert a | {("pkg/models/nets.py", "NetB")} == b
    assert ("pkg/models/base.py", "UNUSED") not in b and ("pkg/models/helpers.py", "unrelated") not in b
    assert not any(rel.startswith("tools/") for rel, _ in b)


def test_reach_through_package_init_star_imports_and_local_imports(reach):
    lazy = defs(reach.of_type("Lazy"))
    # `from pkg.models import from_star` inside a method: models/__init__ -> stars.py -> starred.py
    assert ("pkg/models/starred.py", "from_star") in lazy
    assert ("pkg/models/starred.py", "other_star") not in lazy
    # a type a module builds itself (`dict(type='NetA')`) is its code too
    assert ("pkg/models/nets.py", "NetA") in lazy


def test_hits_name_the_changed_definition_per_side(reach):
    c = compare_sources("pkg/models/base.py", TREE["pkg/models/base.py"],
                        TREE["pkg/models/base.py"].replace("SCALE = 2", "SCALE = 4"))
    changes = {c.path: c}
    assert hits(reach.of_type("NetB"), changes, "base") == [("pkg/models/base.py", "SCALE")]
    unused = compare_sources("pkg/models/base.py", TREE["pkg/models/base.py"],
                             TREE["pkg/models/base.py"].replace("UNUSED = 3", "UNUSED = 5"))
    assert hits(reach.of_type("NetB"), {unused.path: unused}, "base") == []
    added = FileChange("pkg/models/helpers.py", added=frozenset({"block"}))
    assert hits(reach.of_type("NetA"), {added.path: added}, "head") == [("pkg/models/helpers.py", "block")]
    assert hits(reach.of_type("NetA"), {added.path: added}, "base") == []


# ---------------------------------------------------------------- the installed mmpretrain

@pytest.fixture(scope="module")
def mmpretrain_reach(tmp_path_factory) -> Reach:
    root = tmp_path_factory.mktemp("fork") / "r"
    src = Path(importlib.util.find_spec("mmpretrain").origin).parent
    shutil.copytree(src, root / "mmpretrain", ignore=shutil.ignore_patterns("__pycache__", ".mim"))
    return Reach(CodeIndex.build(root))


def test_resnet_v1d_reaches_resnest_in_another_file_not_plain_resnet(mmpretrain_reach):
    resnet = "mmpretrain/models/backbones/resnet.py"
    source = (mmpretrain_reach.index.root / "mmpretrain/models/backbones/resnest.py").read_text()
    assert "class ResNeSt(ResNetV1d):" in source and "from .resnet import ResLayer, ResNetV1d" in source
    v1d = (resnet, "ResNetV1d")
    assert v1d in defs(mmpretrain_reach.of_type("ResNeSt"))
    assert v1d in defs(mmpretrain_reach.of_type("ResNetV1d"))
    assert v1d not in defs(mmpretrain_reach.of_type("ResNet"))
    assert (resnet, "ResNet") in defs(mmpretrain_reach.of_type("ResNeSt"))
    # Swin takes ShiftWindowMSA through models/utils/__init__.py: the binding there is reached too
    swin = defs(mmpretrain_reach.of_type("SwinTransformer"))
    assert ("mmpretrain/models/utils/__init__.py", "ShiftWindowMSA") in swin
    assert ("mmpretrain/models/utils/attention.py", "ShiftWindowMSA") in swin
    assert ("mmpretrain/models/utils/data_preprocessor.py", "ClsDataPreprocessor") not in swin


def test_files_no_model_can_reach_are_decided_by_a_text_pass(tmp_path):
    from mcx_review.select.code_impact import _maybe_reachable

    trees = {}
    for side in ("base", "head"):
        root = tmp_path / side
        for rel, text in TREE.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        trees[side] = root
    (trees["head"] / "tools/flops_table.py").write_text("import argparse\n\nprint(argparse)\n")
    (trees["head"] / "pkg/models/orphan.py").write_text("def orphan():\n    return 1\n")
    new = {rel: compare_sources(rel, None, (trees["head"] / rel).read_text())
           for rel in ("tools/flops_table.py", "pkg/models/orphan.py")}
    assert not _maybe_reachable(trees, new)
    # a file another module imports, or one that registers a type, goes on to the code index
    helpers = compare_sources("pkg/models/helpers.py", TREE["pkg/models/helpers.py"],
                              TREE["pkg/models/helpers.py"] + "\nX = 1\n")
    assert _maybe_reachable(trees, {**new, "pkg/models/helpers.py": helpers})
    (trees["head"] / "pkg/models/orphan.py").write_text(TREE["pkg/models/lazy.py"].replace("Lazy", "Orphan"))
    assert _maybe_reachable(trees, {"pkg/models/orphan.py": compare_sources(
        "pkg/models/orphan.py", None, (trees["head"] / "pkg/models/orphan.py").read_text())})


class _Side:
    """The two things config selection reads of a revision: its `_base_` graph and code index."""

    def __init__(self, root: Path) -> None:
        from mcx_review.select.bases import BaseGraph
        self._graph, self._index = BaseGraph(root), CodeIndex.build(root)

    def graph(self, side: str):
        return self._graph

    def index(self, side: str):
        return self._index


def test_configs_are_resolved_when_their_files_name_an_affected_type_or_inherit_from_outside(tmp_path):
    from mcx_review.select.code_impact import _mentions

    for rel, text in TREE.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    configs = {
        "configs/_base_/models/netb.py": "model = dict(type='NetB')\n",
        "configs/b.py": "_base_ = ['./_base_/models/netb.py']\n",
        "configs/a.py": "model = dict(type='NetA')\n",
        "configs/pkg.py": "_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']\n",
        "configs/new_style.py": "from mmengine.config import read_base\n\nwith read_base():\n"
                                "    from mmpretrain.configs._base_.models.resnet18 import *\n",
        "configs/custom.py": "custom_imports = dict(imports=['pkg.models.helpers'])\nmodel = dict(type='Other')\n",
    }
    for rel, text in configs.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    leaves = sorted(c for c in configs if "_base_" not in c)
    trees = {"base": tmp_path}
    picked = _mentions(trees, "base", leaves, {"NetB"}, _Side(tmp_path), set())
    assert picked == ["configs/b.py", "configs/new_style.py", "configs/pkg.py"]  # NetB through its base
    picked = _mentions(trees, "base", leaves, set(), _Side(tmp_path), {"pkg/models/helpers.py"})
    assert picked == ["configs/custom.py", "configs/new_style.py", "configs/pkg.py"]
    # only types new in this change are affected: nothing outside the tree can name them
    assert _mentions(trees, "base", leaves, {"NetB"}, _Side(tmp_path), set(), outside=False) == ["configs/b.py"]

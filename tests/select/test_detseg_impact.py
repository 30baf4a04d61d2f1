"""Definition-level impact on the real mmdet 3.3.0 and mmsegmentation 1.2.2 source trees (select side
only: configs are resolved, no model is built or traced). Each fixture is a fork-shaped repository:
the installed package's source plus every config it ships, one branch per change."""
import importlib.util
import shutil
from pathlib import Path

import pytest
from helpers import ConfigRepo

from mcx_review.review import Options, run_review
from mcx_review.select.bases import BaseGraph
from mcx_review.select.code_index import CodeIndex
from mcx_review.select.definitions import Reach

pytestmark = pytest.mark.skipif(not (importlib.util.find_spec("mmdet") and importlib.util.find_spec("mmseg")),
                                reason="needs mmdet and mmsegmentation (requirements/dev.txt)")

ANCHORS = "mmdet/models/task_modules/prior_generators/anchor_generator.py"
YOLO_CONFIGS = {f"configs/yolo/{n}" for n in (
    "yolov3_d53_8xb8-320-273e_coco.py", "yolov3_d53_8xb8-amp-ms-608-273e_coco.py",
    "yolov3_d53_8xb8-ms-416-273e_coco.py", "yolov3_d53_8xb8-ms-608-273e_coco.py",
    "yolov3_mobilenetv2_8xb24-320-300e_coco.py", "yolov3_mobilenetv2_8xb24-ms-416-300e_coco.py")}

# New-style configs as mmdet 3.3 writes them under mmdet/configs/ (class objects imported by module
# path, bases by `with read_base():`), written for this test.
NEW_STYLE_MODEL = '''from mmdet.models.backbones.resnet import ResNet
from mmdet.models.dense_heads.retina_head import RetinaHead
from mmdet.models.detectors.retinanet import RetinaNet
from mmdet.models.necks.fpn import FPN
from mmdet.models.task_modules.coders.delta_xywh_bbox_coder import DeltaXYWHBBoxCoder
from mmdet.models.task_modules.prior_generators.anchor_generator import AnchorGenerator

model = dict(
    type=RetinaNet,
    backbone=dict(type=ResNet, depth=18, out_indices=(1, 2, 3)),
    neck=dict(type=FPN, in_channels=[128, 256, 512], out_channels=64, num_outs=3),
    bbox_head=dict(type=RetinaHead, num_classes=3, in_channels=64, feat_channels=64,
                   anchor_generator=dict(type=AnchorGenerator, octave_base_scale=4, scales_per_octave=3,
                                         ratios=[1.0], strides=[8, 16, 32]),
                   bbox_coder=dict(type=DeltaXYWHBBoxCoder)))
'''
NEW_STYLE_CONFIG = '''from mmengine.config import read_base

with read_base():
    from .._base_.models.retina_r18_small import *

model.update(dict(bbox_head=dict(num_classes=5)))
'''
NEW_STYLE = "mmdet/configs/retinanet/retina_r18_small_5cls.py"
NEW_STYLE_SETTINGS = 'configs: ["mmdet/configs/**/*.py"]\n'


def _installed(pkg: str) -> Path:
    spec = importlib.util.find_spec(pkg)
    assert spec and spec.origin
    return Path(spec.origin).parent


def _fork(root: Path, pkg: str) -> ConfigRepo:
    repo = ConfigRepo(root, pkg=pkg)
    shutil.copytree(_installed(pkg), root / pkg, ignore=shutil.ignore_patterns("__pycache__", ".mim"))
    repo.commit(f"fork of {pkg}: its package and its configs")
    return repo


def _yolo_anchors(repo: ConfigRepo) -> None:  # behaviour of one class in a file most detectors use
    repo.replace(ANCHORS, "        return len(self.base_sizes)\n\n    def gen_base_anchors(self) -> List[Tensor]:",
                 "        return len(self.base_sizes) + 0\n\n    def gen_base_anchors(self) -> List[Tensor]:")


def _anchor_docs(repo: ConfigRepo) -> None:
    repo.replace(ANCHORS, '"""Generate base anchors.\n', '"""Generate the base anchors of every level.\n')
    repo.replace(ANCHORS, "        multi_level_base_anchors = []\n",
                 "        # one set of base anchors per level\n        multi_level_base_anchors = []\n")


def _atss_fix(repo: ConfigRepo) -> None:  # one head's fix, the shape of mmdet 3.2.0's ATSSHead one
    repo.replace("mmdet/models/dense_heads/atss_head.py",
                 "featmap_sizes = [featmap.size()[-2:] for featmap in bbox_preds]",
                 "featmap_sizes = [featmap.size()[-2:] for featmap in cls_scores]")


def _new_style(repo: ConfigRepo) -> None:
    repo.write(".mcx-review.yaml", NEW_STYLE_SETTINGS)
    repo.write("mmdet/configs/_base_/models/retina_r18_small.py", NEW_STYLE_MODEL)
    repo.write(NEW_STYLE, NEW_STYLE_CONFIG)


def _new_style_head(repo: ConfigRepo) -> None:
    repo.replace("mmdet/models/dense_heads/retina_head.py", "self.stacked_convs = stacked_convs",
                 "self.stacked_convs = stacked_convs + 1")


@pytest.fixture(scope="module")
def mmdet_fork(tmp_path_factory):
    repo = _fork(tmp_path_factory.mktemp("mmdet-fork") / "r", "mmdet")
    for name, edit in (("yolo", _yolo_anchors), ("docs", _anchor_docs), ("atss", _atss_fix)):
        repo.checkout("main")
        repo.branch(name)
        edit(repo)
        repo.commit(name)
    repo.checkout("main")
    repo.branch("newstyle")
    _new_style(repo)
    repo.commit("new-style configs")
    repo.branch("newstyle-head")
    _new_style_head(repo)
    repo.commit("RetinaHead: one more stacked conv")
    repo.checkout("main")
    return repo


@pytest.fixture(scope="module")
def mmseg_fork(tmp_path_factory):
    repo = _fork(tmp_path_factory.mktemp("mmseg-fork") / "r", "mmseg")
    repo.branch("ham")
    repo.replace("mmseg/models/decode_heads/ham_head.py", "        self.inv_t = 1\n", "        self.inv_t = 2\n")
    repo.commit("NMF2D: inv_t 2")
    repo.checkout("main")
    return repo


def _list(repo: ConfigRepo, base: str, head: str, tmp_path: Path):
    opts = Options(base=base, head=head, jobs=2, cache_dir=tmp_path / "cache", use_cache=False)
    _, stats, targets = run_review(repo.root, opts, list_only=True)
    return {t.path: t.reasons for t in targets}, stats


def _model_types(root: Path, configs) -> dict:
    """What mmengine itself loads: config -> every `type` in its model dict (no mcx_review code)."""
    from mmengine.config import Config

    def walk(v, out):
        if isinstance(v, dict):
            if isinstance(v.get("type"), str):
                out.add(v["type"])
            for x in v.values():
                walk(x, out)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x, out)
        return out

    return {c: walk(Config.fromfile(str(root / c)).get("model"), set()) for c in configs}


def test_only_types_a_model_can_be_built_from_pick_configs(mmdet_fork):
    index = CodeIndex.build(mmdet_fork.root)
    assert index.registries["CocoDataset"] == {"DATASETS"} and index.registries["CocoMetric"] == {"METRICS"}
    assert index.registries["MaxIoUAssigner"] == {"TASK_UTILS"} and index.registries["RetinaHead"] == {"MODELS"}
    names = {"CocoDataset", "CocoMetric", "DetLocalVisualizer", "MaxIoUAssigner", "RetinaHead", "YOLOAnchorGenerator"}
    assert index.model_types(names) == {"MaxIoUAssigner", "RetinaHead", "YOLOAnchorGenerator"}


def test_task_modules_reach_their_registry_and_their_heads_defaults(mmdet_fork):
    reach = Reach(CodeIndex.build(mmdet_fork.root))
    yolo = reach.of_type("YOLOAnchorGenerator")
    assert ("def", ANCHORS, "YOLOAnchorGenerator") in yolo and ("def", ANCHORS, "AnchorGenerator") in yolo
    assert ("def", "mmdet/registry.py", "TASK_UTILS") in yolo
    # YOLOV3Head builds a YOLOAnchorGenerator by default: a config need not name it
    assert ("def", ANCHORS, "YOLOAnchorGenerator") in reach.of_type("YOLOV3Head")
    assert ("def", ANCHORS, "YOLOAnchorGenerator") not in reach.of_type("RetinaHead")


def test_a_task_module_change_reviews_exactly_the_models_that_use_it(mmdet_fork, tmp_path):
    targets, stats = _list(mmdet_fork, "main", "yolo", tmp_path)
    assert set(targets) == YOLO_CONFIGS
    assert all("uses YOLOAnchorGenerator (" + ANCHORS + ")" in r for r in targets.values())
    assert stats.resolved < 4 * len(YOLO_CONFIGS)  # not the 800 configs that name an AnchorGenerator
    types = _model_types(mmdet_fork.root, sorted(YOLO_CONFIGS))
    assert all("YOLOV3Head" in t for t in types.values())


def test_docstring_edits_in_a_task_module_resolve_nothing(mmdet_fork, tmp_path):
    targets, stats = _list(mmdet_fork, "main", "docs", tmp_path)
    assert targets == {} and stats.resolved == 0


def test_one_heads_fix_reviews_the_models_of_that_head_and_its_subclasses(mmdet_fork, tmp_path):
    targets, _ = _list(mmdet_fork, "main", "atss", tmp_path)
    configs = sorted(p.relative_to(mmdet_fork.root).as_posix() for p in (mmdet_fork.root / "configs").rglob("*.py")
                     if "_base_" not in p.parts)
    named = [c for c in configs if any(w in (mmdet_fork.root / c).read_text() for w in ("ATSS", "TOOD", "PAA"))]
    types = _model_types(mmdet_fork.root, named)
    # heads that are ATSSHead or derive from it (class statements in mmdet 3.3.0)
    family = {"ATSSHead", "ATSSVLFusionHead", "TOODHead", "PAAHead", "LADHead"}
    expected = {c for c, t in types.items() if t & family}
    assert expected and expected <= set(targets)
    assert {"configs/retinanet/retinanet_r50_fpn_1x_coco.py", "configs/yolox/yolox_s_8xb8-300e_coco.py"}.isdisjoint(targets)
    assert all(any(r.startswith("uses ATSSHead (") for r in rs) for rs in targets.values())


def test_new_style_read_base_configs_follow_module_paths_and_stay_in_the_tree(mmdet_fork, tmp_path):
    graph = BaseGraph(mmdet_fork.root)
    mmdet_fork.checkout("newstyle")
    try:
        assert graph.closure(NEW_STYLE) == ["mmdet/configs/_base_/models/retina_r18_small.py"]
        assert not graph.inherits_outside(NEW_STYLE)
        assert BaseGraph(mmdet_fork.root).inherits_outside(
            "configs/rtmdet/classification/cspnext-s_8xb256-rsb-a1-600e_in1k.py")  # 'mmpretrain::' bases
    finally:
        mmdet_fork.checkout("main")
    targets, _ = _list(mmdet_fork, "newstyle", "newstyle-head", tmp_path)
    assert targets == {NEW_STYLE: ["uses RetinaHead (mmdet/models/dense_heads/retina_head.py)"]}
    targets, _ = _list(mmdet_fork, "main", "newstyle", tmp_path)
    assert targets == {NEW_STYLE: ["changed", "inherits mmdet/configs/_base_/models/retina_r18_small.py"]}


def test_mmseg_head_fix_reviews_exactly_its_configs(mmseg_fork, tmp_path):
    targets, stats = _list(mmseg_fork, "main", "ham", tmp_path)
    segnext = {p.relative_to(mmseg_fork.root).as_posix() for p in (mmseg_fork.root / "configs/segnext").glob("*.py")}
    assert set(targets) == segnext and len(segnext) == 4
    assert all(r == ["uses NMF2D (mmseg/models/decode_heads/ham_head.py)"] for r in targets.values())


def test_scoped_types_of_another_codebase_are_not_this_trees_classes(mmseg_fork):
    reach = Reach(CodeIndex.build(mmseg_fork.root))
    assert reach.type_nodes("CrossEntropyLoss")  # mmseg's own
    assert reach.type_nodes("mmdet.CrossEntropyLoss") == []  # mmdet's, as mmseg's Mask2Former configs name it
    assert reach.type_nodes("mmseg.CrossEntropyLoss") == reach.type_nodes("CrossEntropyLoss")

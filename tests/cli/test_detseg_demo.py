"""``mcx-review demo --codebase mmdet|mmseg``: the edits apply to the configs mmdet / mmsegmentation
ship, each edit changes only what it says, and the review selects exactly the edited configs (select
side only here: counting detectors is tested in test_detseg.py). The default demo is left alone."""
import importlib.util

import git
import pytest
from mmengine.config import Config

from mcx_review.cli import demo
from mcx_review.review import Options, run_review

pytestmark = pytest.mark.skipif(not (importlib.util.find_spec("mmdet") and importlib.util.find_spec("mmseg")),
                                reason="needs mmdet and mmsegmentation (requirements/dev.txt)")


def _model(root, rel):
    return Config.fromfile(str(root / rel)).model


@pytest.mark.parametrize("codebase,changed", [
    ("mmdet", {"configs/rtmdet/rtmdet_tiny_8xb32-300e_coco.py": ("bbox_head", "feat_channels", 96, 128),
               "configs/retinanet/retinanet_r18_fpn_1x_coco.py": ("bbox_head", "num_classes", 80, 20)}),
    ("mmseg", {"configs/pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py": ("decode_head", "channels", 128, 256),
               "configs/fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py": ("decode_head", "num_convs", 2, 1)}),
])
def test_codebase_demo_edits_change_exactly_what_they_say(tmp_path, codebase, changed):
    pkg, configs = demo.shipped_configs(codebase)
    done = demo.build_repo(tmp_path, pkg, configs)
    assert len(done) == len(changed)
    repo = git.Repo(tmp_path)
    for rel, (part, key, old, new) in changed.items():
        repo.git.checkout("main")
        before = _model(tmp_path, rel)
        repo.git.checkout("change")
        after = _model(tmp_path, rel)
        assert (before[part][key], after[part][key]) == (old, new)
        before[part][key] = new
        assert before.to_dict() == after.to_dict(), f"{rel}: the edit changed more than {part}.{key}"
    _, _, targets = run_review(tmp_path, Options(base="main", head="change", jobs=2, use_cache=False),
                               list_only=True)
    assert {t.path: t.reasons for t in targets} == {rel: ["changed"] for rel in changed}


def test_default_demo_edits_are_unchanged():
    assert [what for _, _, what in demo.edits_for("mmcls")] == [
        "ResNet-50 given depth=101", "ConvNeXt-T's test pipeline crops 288 instead of 224",
        "ViT-B/16 head hidden_dim 3072 -> 1536"]
    assert demo.shipped_configs()[0] in ("mmcls", "mmpretrain")

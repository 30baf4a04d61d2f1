"""The metafile code paths on the real metafiles mmdet 3.3.0 and mmsegmentation 1.2.2 ship: they are
found and read (mmseg 1.x names them metafile.yaml), they publish no FLOPs or Parameters, and so a
review says nothing about them -- no "no metafile entry" for an added config, no "not compared"."""
import importlib.util
from pathlib import Path

import pytest

from mcx_review.metafile import files as metafile_files
from mcx_review.settings import Settings
from mcx_review.render.metafile_lines import metafile_lines

pytestmark = pytest.mark.skipif(not (importlib.util.find_spec("mmdet") and importlib.util.find_spec("mmseg")),
                                reason="needs mmdet and mmsegmentation (requirements/dev.txt)")


def _mim(pkg: str) -> Path:
    spec = importlib.util.find_spec(pkg)
    assert spec and spec.origin
    return Path(spec.origin).parent / ".mim"  # configs/ beside model-index.yml, as in the repositories


@pytest.mark.parametrize("pkg,name,config", [
    ("mmdet", "metafile.yml", "configs/retinanet/retinanet_r50_fpn_1x_coco.py"),
    ("mmseg", "metafile.yaml", "configs/pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py"),
])
def test_real_metafiles_are_read_and_publish_no_figures(pkg, name, config):
    index = metafile_files.build_index(_mim(pkg))
    assert len(index.files) > 50 and all(f.endswith(name) for f in index.files)
    assert index.problems == []
    assert index.entries(config), f"{config} has an entry"
    assert not metafile_files.publishes_figures(index)


def test_a_classification_zoo_still_publishes_figures():
    assert metafile_files.publishes_figures(metafile_files.build_index(_mim("mmpretrain")))


@pytest.mark.parametrize("pkg,config", [
    ("mmdet", "configs/retinanet/retinanet_r50_fpn_1x_coco.py"),
    ("mmdet", "configs/retinanet/retinanet_r50_fpn_new-head_coco.py"),  # added: no entry names it
    ("mmseg", "configs/pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py"),
])
def test_a_review_attaches_no_metafile_verdict_there(pkg, config):
    stats = {"flops": 250_969_227_264, "params": 37_968_692, "activations": 1}
    for status in ("changed", "added"):
        entry = {"path": config, "status": status, "head": stats, "base": stats if status == "changed" else None}
        tree = _mim(pkg)
        problems = metafile_files.attach([entry], {"base": tree, "head": tree}, Settings(), None)
        assert problems == [] and "metafile" not in entry and metafile_lines(entry) == []

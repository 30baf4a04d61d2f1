"""The input size a config declares, and the rule that found it, on configs that mmpretrain,
mmdet 3.3.0 and mmsegmentation 1.2.2 ship (read from copies, never built unless said so)."""
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mmengine import Config
from helpers import LENET, shipped

from mcx_review.measure.worker import analysis, input_shape
from mcx_review.measure.worker import main as worker
from mcx_review.report import validate as report_validate
from mcx_review.measure.worker.input_shape import IMG_SIZE, PIPELINE, PREPROCESSOR_SIZE, InputSize, input_size


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """{'mmpretrain': root, 'mmdet': root, 'mmseg': root}, each root/configs/... a copy of the shipped tree."""
    out = {}
    for name in ("mmpretrain", "mmdet", "mmseg"):
        root = tmp_path_factory.mktemp(name)
        shutil.copytree(shipped(name), root / "configs", ignore=shutil.ignore_patterns("__pycache__"))
        out[name] = root
    return out


def _cfg(trees, pkg: str, rel: str) -> Config:
    # custom imports off: reading a detector's shape must not need mmdet.models (compiled mmcv ops)
    return Config.fromfile(str(trees[pkg] / "configs" / rel), import_custom_modules=False)


@pytest.mark.parametrize("rel, expected", [
    # headless: no test pipeline, the backbone's img_size (224 before: SAM 0.04x, DINOv2 0.13x published)
    ("sam/vit-base-p16_sam_headless.py", (1024, 1024, IMG_SIZE)),
    ("dinov2/vit-small-p14_dinov2-pre_headless.py", (518, 518, IMG_SIZE)),
    ("glip/glip-l_headless.py", (384, 384, IMG_SIZE)),  # 224 gave "(7, 7) smaller than window 12"
    ("simmim/simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py", (192, 192, IMG_SIZE)),
    # a test pipeline wins over img_size: CLIP ViT-B is built at 224 and tested at 384 (as published)
    ("clip/vit-base-p16_pt-64xb64_in1k-384px.py", (384, 384, PIPELINE)),
    ("vision_transformer/vit-base-p16_64xb64_in1k-384px.py", (384, 384, PIPELINE)),
    ("resnet/resnet18_8xb16_cifar10.py", (32, 32, PIPELINE)),
    ("resnet/resnet50_8xb32_in1k.py", (224, 224, PIPELINE)),
    ("eva/eva-l-p14_headless.py", (224, 224, IMG_SIZE)),
])
def test_classifier_sizes(trees, rel, expected):
    assert input_size(_cfg(trees, "mmpretrain", rel)) == InputSize(*expected)


def test_no_pipeline_no_img_size_is_the_default(tmp_path):
    path = tmp_path / "lenet_headless.py"
    path.write_text(LENET.format(n=10).split("test_dataloader")[0])
    assert input_size(Config.fromfile(str(path))) == InputSize(224, 224, "default 224")


def test_img_size_when_the_pipeline_cannot_run(tmp_path):
    """A pipeline step that needs real data (a caption or question step) falls back to img_size;
    without one the failure is still the user's to see."""
    path = tmp_path / "vit.py"
    path.write_text(textwrap.dedent("""
        default_scope = 'mmpretrain'
        model = dict(type='ImageClassifier', backbone=dict(type='VisionTransformer', arch='b', img_size={size}))
        test_dataloader = dict(dataset=dict(type='ImageNet', pipeline=[
            dict(type='CenterCrop', crop_size=256), dict(type='CleanCaption', keys='gt_caption')]))
    """))
    text = path.read_text()
    path.write_text(text.format(size=384))
    assert input_size(Config.fromfile(str(path))) == InputSize(384, 384, IMG_SIZE)
    path.write_text(text.replace(", img_size={size}", ""))
    with pytest.raises(input_shape.ShapeError, match="CleanCaption"):
        input_size(Config.fromfile(str(path)))


@pytest.mark.parametrize("rel, expected", [
    # (1333, 800) keep_ratio: H the short edge, W the long one, padded up to pad_size_divisor 32
    ("retinanet/retinanet_r50_fpn_1x_coco.py", (800, 1344)),
    ("faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py", (800, 1344)),
    ("dino/dino-4scale_r50_8xb2-12e_coco.py", (800, 1333)),  # pad_size_divisor=1
    ("yolo/yolov3_d53_8xb8-ms-608-273e_coco.py", (608, 608)),
    ("rtmdet/rtmdet_s_8xb32-300e_coco.py", (640, 640)),  # fixed size, as given
    ("yolox/yolox_s_8xb8-300e_coco.py", (640, 640)),  # Resize then Pad to (640, 640)
    ("ssd/ssd300_coco.py", (300, 300)),  # keep_ratio=False
])
def test_detection_sizes_from_the_test_resize(trees, rel, expected):
    cfg = _cfg(trees, "mmdet", rel)
    assert input_shape.task(cfg) == "detection"
    assert input_size(cfg) == InputSize(*expected, PIPELINE)


@pytest.mark.parametrize("rel, expected", [
    ("pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py", (512, 1024)),  # the crop, (H, W)
    ("segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py", (512, 512)),
    ("setr/setr_vit-l_naive_8xb1-80k_cityscapes-768x768.py", (768, 768)),  # img_size agrees, crop decides
])
def test_segmentation_sizes_from_the_preprocessor(trees, rel, expected):
    cfg = _cfg(trees, "mmseg", rel)
    assert input_shape.task(cfg) == "segmentation"
    assert input_size(cfg) == InputSize(*expected, PREPROCESSOR_SIZE)


def test_segmentation_without_a_crop_reads_the_test_resize(trees):
    """No preprocessor size: the test Resize (2048, 1024) with keep_ratio gives 1024x2048."""
    path = trees["mmseg"] / "configs" / "pspnet" / "pspnet_nocrop.py"
    path.write_text("_base_ = './pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py'\n"
                    "model = dict(data_preprocessor=dict(size=None))\n")
    assert input_size(Config.fromfile(str(path), import_custom_modules=False)) == InputSize(1024, 2048, PIPELINE)


def test_detection_shape_needs_no_codebase_import(trees):
    """In a fresh interpreter, reading a detector's and a segmentor's shape imports neither
    mmdet/mmseg models nor mmcv's compiled ops (mmcv-lite has none)."""
    code = textwrap.dedent(f"""
        import json, sys
        from mmengine import Config
        from mcx_review.measure.worker.input_shape import input_size
        out = []
        for path in ({str(trees['mmdet'] / 'configs/mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')!r},
                     {str(trees['mmseg'] / 'configs/mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py')!r}):
            out.append(list(input_size(Config.fromfile(path, import_custom_modules=False))))
        loaded = sorted(m for m in sys.modules if m.startswith(('mmcv.ops', 'mmcv._ext', 'mmdet.models',
                                                               'mmseg.models', 'mmdet.datasets', 'torch')))
        print(json.dumps([out, loaded]))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    sizes, loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert sizes == [[800, 1344, PIPELINE], [512, 512, PREPROCESSOR_SIZE]]
    assert loaded == []


def test_resolve_spec_carries_the_declared_size(trees):
    """The resolve step's shape spec (the cache key's input part) holds the declared size, so
    an edit of the test Resize re-measures, and an edit of a headless img_size does too."""
    rel = "configs/retinanet/retinanet_r50_fpn_1x_coco.py"
    cfg = Config.fromfile(str(trees["mmdet"] / rel), import_custom_modules=False)
    assert worker.shape_spec(cfg, None)["declared"] == [800, 1344, PIPELINE]
    assert worker.shape_spec(cfg, [512, 512]) == {"forced": [512, 512], "channels": 3}
    path = trees["mmdet"] / "configs" / "retinanet" / "retinanet_small.py"
    path.write_text(textwrap.dedent("""
        _base_ = './retinanet_r50_fpn_1x_coco.py'
        test_pipeline = [dict(type='LoadImageFromFile', backend_args=None),
                         dict(type='Resize', scale=(666, 400), keep_ratio=True),
                         dict(type='PackDetInputs')]
        test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
    """))
    small = Config.fromfile(str(path), import_custom_modules=False)
    assert worker.shape_spec(small, None)["declared"] == [416, 672, PIPELINE]


def test_the_report_says_which_rule_applied(tmp_path):
    """analyse() puts the rule beside the shape; a forced shape says so."""
    path = tmp_path / "lenet.py"
    path.write_text(LENET.format(n=10))
    cfg = Config.fromfile(str(path))
    stats = analysis.analyse(cfg)
    assert (stats["input_shape"], stats["input_rule"]) == ([1, 32, 32], PIPELINE)
    forced = analysis.analyse(cfg, (32, 32))  # LeNet-5's flatten takes 32x32 only
    assert (forced["input_shape"], forced["input_rule"]) == ([1, 32, 32], "forced")
    entry = {"path": "configs/lenet.py", "status": "changed", "reasons": ["changed"], "base": stats,
             "head": forced, "errors": [], "warnings": []}
    revs = {"base": {"sha": "a" * 40}, "head": {"sha": "b" * 40}}
    assert report_validate.validate({"schema": "mcx-review/1", **revs, "configs": [entry]}) == []
    assert report_validate.validate({"schema": "mcx-review/1", **revs, "configs": [
        {**entry, "head": {**forced, "input_rule": 5}}]}) != []


def test_dinov2_small_at_its_declared_size_equals_the_published_count(trees):
    """DINOv2-S, headless, at its img_size 518: 46,762,499,328 FLOPs, which the metafile
    publishes as 46762000000 (at 224 it read 0.13x that)."""
    from mcx_review.metafile import verdicts as metafile

    stats = analysis.analyse(_cfg(trees, "mmpretrain", "dinov2/vit-small-p14_dinov2-pre_headless.py"))
    assert stats["input_shape"] == [3, 518, 518] and stats["input_rule"] == IMG_SIZE
    assert stats["flops"] == 46_762_499_328
    assert metafile.parse_figure(46762000000).agrees(stats["flops"])


def test_a_multimodal_model_without_its_extras_says_how_to_install_them(trees):
    """BLIP's build needs mmpretrain's multimodal extras, named with the config's own model type
    (mmpretrain's placeholder says "RAMOpenset" for every one of them)."""
    cfg = _cfg(trees, "mmpretrain", "blip/blip-base_8xb32_caption.py")
    with pytest.raises(analysis.AnalysisError) as err:
        analysis.analyse(cfg)
    assert str(err.value) == ("model could not be built: BlipCaption needs mmpretrain's multimodal extras: "
                              "pip install 'mmpretrain[multimodal]'")

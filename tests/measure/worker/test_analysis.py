"""The analysis engine against fvcore counted the get_flops.py way, mmcls's real get_flops.py,
and the FLOPs / params mmpretrain publishes in its metafiles — on real shipped configs."""
import importlib.util
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis
from fvcore.nn.print_model_statistics import _format_size
from mmengine import Config
from reference import assert_matches, get_flops_way

from mcx_review.measure.worker import analysis
from mcx_review.measure.worker import fvcore_handles
from mcx_review.measure.worker.input_shape import infer_input_shape
from mcx_review.measure.worker.skip_init import no_weight_init


def _package_dir(name: str) -> Path:
    return Path(importlib.util.find_spec(name).origin).parent


MMCLS = _package_dir("mmcls")
MMPRETRAIN = _package_dir("mmpretrain")
GET_FLOPS = MMCLS / ".mim" / "tools" / "analysis_tools" / "get_flops.py"

RESNET = "resnet/resnet50_8xb32_in1k.py"
VIT = "vision_transformer/vit-base-p16_pt-64xb64_in1k-224.py"
SWIN = "swin_transformer/swin-tiny_16xb64_in1k.py"
MMCLS_MODELS = (RESNET, VIT, SWIN)
PUBLISHED = ("vision_transformer/vit-base-p16_64xb64_in1k-384px.py", "deit/deit-base_16xb32_in1k-384px.py",
             "deit/deit-tiny_4xb256_in1k.py", "deit3/deit3-small-p16_64xb64_in1k.py")
DEIT_TINY = "deit/deit-tiny_4xb256_in1k.py"


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """Copies of the shipped config trees: {'mmcls': root, 'mmpretrain': root}, root/configs/..."""
    out = {}
    for name, pkg in (("mmcls", MMCLS), ("mmpretrain", MMPRETRAIN)):
        root = tmp_path_factory.mktemp(name)
        shutil.copytree(pkg / ".mim" / "configs", root / "configs",
                        ignore=shutil.ignore_patterns("__pycache__"))
        out[name] = root
    return out


def _cfg(trees, scope: str, rel: str) -> Config:
    return Config.fromfile(str(trees[scope] / "configs" / rel))


@pytest.fixture(scope="module")
def mmcls_stats(trees):
    """Each mmcls model analysed once."""
    return {rel: analysis.analyse(_cfg(trees, "mmcls", rel)) for rel in MMCLS_MODELS}


@pytest.fixture(scope="module")
def deit_tiny(trees):
    """mmpretrain's DeiT-tiny (SDPA attention), built without init, forward bound."""
    cfg = _cfg(trees, "mmpretrain", DEIT_TINY)
    model = analysis.build_model(cfg)
    return cfg, model, analysis.bind_forward(model)


# ---- the get_flops.py way --------------------------------------------------------------------

@pytest.mark.parametrize("rel", MMCLS_MODELS)
def test_every_number_equals_fvcore_the_get_flops_way(trees, mmcls_stats, rel):
    stats = mmcls_stats[rel]
    _, h, w = stats["input_shape"]
    ref = get_flops_way(trees["mmcls"], f"configs/{rel}", h, w)  # random init, two analyses
    assert_matches(stats, ref)
    assert set(stats["modules"]) == {n for n, m in ref["modules"].items() if m["params"] or m["flops"]} | (
        {"neck"} if "neck" in stats["modules"] else set())
    assert stats["forward"] == "extract_feat"
    assert stats["modules"]["backbone"]["called"] and not stats["modules"]["head"]["called"]
    assert "data_preprocessor" not in stats["modules"]
    assert stats["uncalled_modules"] == []  # the head is expected to stay uncalled


def test_vit_totals_equal_mmcls_get_flops_script(trees, mmcls_stats):
    out = subprocess.run([sys.executable, str(GET_FLOPS), f"configs/{VIT}"], cwd=trees["mmcls"],
                         capture_output=True, text=True, check=True).stdout
    printed = dict(re.findall(r"^(Flops|Params|Activation): (\S+)$", out, re.M))
    stats = mmcls_stats[VIT]
    ours = {"Flops": _format_size(stats["flops"]), "Params": _format_size(stats["params"]),
            "Activation": _format_size(stats["activations"])}
    assert ours == printed
    assert ours == {"Flops": "17.582G", "Params": "91.234M", "Activation": "23.895M"}


# ---- published figures and the SDPA handle ----------------------------------------------------

def _published(root: Path, rel: str) -> tuple:
    meta = yaml.safe_load((root / "configs" / rel.split("/")[0] / "metafile.yml").read_text())
    figures = {(m["Metadata"]["FLOPs"], m["Metadata"]["Parameters"])
               for m in meta["Models"] if m.get("Config") == f"configs/{rel}"}
    assert len(figures) == 1, figures
    return figures.pop()


@pytest.mark.parametrize("rel", PUBLISHED)
def test_attention_models_give_published_figures(trees, rel):
    flops, params = _published(trees["mmpretrain"], rel)
    stats = analysis.analyse(_cfg(trees, "mmpretrain", rel))
    assert (stats["flops"], stats["params"]) == (flops, params)
    assert stats["input_shape"] == ([3, 384, 384] if "384" in rel else [3, 224, 224])
    assert "aten::scaled_dot_product_attention" not in stats["unsupported_ops"]


def test_sdpa_adds_the_two_attention_matmuls_to_plain_fvcore(deit_tiny):
    """Plain fvcore misses SDPA; our count is plain + q@k^T + attn@v per layer, FLOPs and activations."""
    cfg, model, _ = deit_tiny
    x = (torch.randn(1, 3, 224, 224),)
    plain_f = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    plain_a = ActivationCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    plain_flops, plain_acts = plain_f.total(), plain_a.total()
    assert plain_f.unsupported_ops()["aten::scaled_dot_product_attention"] == 12
    layers, heads, dims, tokens = 12, 3, 192, (224 // 16) ** 2 + 1
    head_dim = dims // heads
    attention_flops = layers * heads * tokens * tokens * head_dim * 2
    attention_acts = layers * (heads * tokens * tokens + heads * tokens * head_dim)
    stats = analysis.count(model, (3, 224, 224), "extract_feat")
    assert stats["flops"] == plain_flops + attention_flops
    assert stats["activations"] == plain_acts + attention_acts
    assert stats["flops"] == _published(Path(cfg.filename).parents[2], DEIT_TINY)[0]


def test_sdpa_and_explicit_attention_count_the_same(trees, mmcls_stats):
    """mmcls's ViT-B/16 writes attention out; mmpretrain's calls SDPA: same FLOPs and activations."""
    sdpa = analysis.analyse(_cfg(trees, "mmpretrain", "vision_transformer/vit-base-p16_64xb64_in1k.py"))
    explicit = mmcls_stats[VIT]
    assert (sdpa["flops"], sdpa["activations"]) == (explicit["flops"], explicit["activations"])
    assert _format_size(sdpa["activations"]) == "23.895M"
    assert "aten::softmax" in explicit["unsupported_ops"] and "aten::softmax" not in sdpa["unsupported_ops"]


# ---- input shapes -----------------------------------------------------------------------------

@pytest.mark.parametrize("scope, rel, shape", [
    ("mmcls", RESNET, (3, 224, 224)),
    ("mmcls", "vision_transformer/vit-base-p16_ft-64xb64_in1k-384.py", (3, 384, 384)),
    ("mmpretrain", "swin_transformer_v2/swinv2-tiny-w8_16xb64_in1k-256px.py", (3, 256, 256)),
    ("mmcls", "resnet/resnet18_8xb16_cifar10.py", (3, 32, 32)),
    ("mmpretrain", "resnet/resnet18_8xb16_cifar10.py", (3, 32, 32)),
    ("mmcls", "eva/eva-l-p14_headless.py", (3, 224, 224)),  # no test pipeline at all
])
def test_input_shape_from_test_pipeline(trees, scope, rel, shape):
    assert infer_input_shape(_cfg(trees, scope, rel)) == shape


def test_new_style_config_with_transform_classes(tmp_path):
    path = tmp_path / "new_style.py"
    path.write_text(textwrap.dedent("""
        from mmpretrain.datasets import CenterCrop, ImageNet, LoadImageFromFile, PackInputs, ResizeEdge
        default_scope = 'mmpretrain'
        test_pipeline = [dict(type=LoadImageFromFile), dict(type=ResizeEdge, scale=292, edge='short'),
                         dict(type=CenterCrop, crop_size=256), dict(type=PackInputs)]
        test_dataloader = dict(dataset=dict(type=ImageNet, data_root='nowhere', pipeline=test_pipeline))
    """))
    assert infer_input_shape(Config.fromfile(str(path))) == (3, 256, 256)


def test_larger_test_crop_raises_flops(trees, mmcls_stats, tmp_path):
    """ResNet at 384 instead of 224: every map is (12/7)^2 larger, so FLOPs scale exactly."""
    path = trees["mmcls"] / "configs" / "resnet" / "resnet50_384crop.py"
    path.write_text(textwrap.dedent("""
        _base_ = './resnet50_8xb32_in1k.py'
        test_pipeline = [dict(type='LoadImageFromFile'), dict(type='ResizeEdge', scale=438, edge='short'),
                         dict(type='CenterCrop', crop_size=384), dict(type='PackClsInputs')]
        test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
    """))
    big = analysis.analyse(Config.fromfile(str(path)))
    small = mmcls_stats[RESNET]
    assert big["input_shape"] == [3, 384, 384] and small["input_shape"] == [3, 224, 224]
    assert big["flops"] * 49 == small["flops"] * 144
    assert big["activations"] * 49 == small["activations"] * 144
    assert big["params"] == small["params"]
    assert analysis.analyse(Config.fromfile(str(path)), (224, 224))["flops"] == small["flops"]  # forced shape


# ---- speed work changes no number -------------------------------------------------------------

def test_one_trace_equals_two_traces(deit_tiny):
    _, model, forward = deit_tiny
    one = analysis.count(model, (3, 224, 224), forward, single_trace=True)
    two = analysis.count(model, (3, 224, 224), forward, single_trace=False)
    assert one == two
    assert one["flops"] > 0 and one["activations"] > 0 and one["modules"]["backbone"]["flops"] == one["flops"]


def test_one_trace_splits_counts_per_statistic():
    handles = fvcore_handles.combined_handles()
    assert {"aten::_convolution", "aten::batch_norm", "aten::scaled_dot_product_attention"} <= set(handles)
    assert fvcore_handles.split({"flops/conv": 10, "activations/conv": 3, "flops/batch_norm": 4}) == (14, 3)


def test_no_init_build_counts_like_init_build(trees):
    cfg = _cfg(trees, "mmcls", "convnext/convnext-tiny_32xb128_in1k.py")
    counted = []
    for init in (True, False):
        model = analysis.build_model(cfg, init_weights=init)
        counted.append(analysis.count(model, (3, 224, 224), analysis.bind_forward(model)))
    assert counted[0] == counted[1]
    assert counted[0]["params"] == 28589128  # ConvNeXt-T as published


def test_no_weight_init_skips_random_fills_and_restores_them():
    t, tensor_attrs, init_normal = torch.zeros(1000), set(vars(torch.Tensor)), torch.nn.init.normal_
    with no_weight_init():
        torch.nn.init.trunc_normal_(t, std=0.02)
        torch.nn.init.kaiming_uniform_(t.view(10, 100))
        t.normal_()
        torch.nn.init.constant_(t[:10], 1.0)  # constant fills still run
        assert t[10:].abs().sum() == 0 and t[:10].sum() == 10
    t.normal_()
    assert t.abs().sum() > 0
    assert set(vars(torch.Tensor)) == tensor_attrs and torch.nn.init.normal_ is init_normal


# ---- expected failures --------------------------------------------------------------------------

def _write(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "broken.py"
    path.write_text(textwrap.dedent(text))
    return Config.fromfile(str(path))


def test_unknown_model_type_is_named(tmp_path):
    cfg = _write(tmp_path, "default_scope = 'mmcls'\nmodel = dict(type='NoSuchClassifier')\n")
    with pytest.raises(analysis.AnalysisError, match=r"unknown model type 'NoSuchClassifier' in scope 'mmcls'"):
        analysis.analyse(cfg, (224, 224))


def test_unknown_nested_type_is_named(tmp_path):
    cfg = _write(tmp_path, """
        default_scope = 'mmpretrain'
        model = dict(type='ImageClassifier', backbone=dict(type='ResNet51'))
    """)
    with pytest.raises(analysis.AnalysisError, match=r"unknown model type 'ResNet51' in scope 'mmpretrain'"):
        analysis.analyse(cfg, (224, 224))


def test_failed_build_gives_type_and_message(tmp_path):
    cfg = _write(tmp_path, """
        default_scope = 'mmcls'
        model = dict(type='ImageClassifier', backbone=dict(type='ResNet', depth=51))
    """)
    with pytest.raises(analysis.AnalysisError, match=r"^model could not be built: KeyError: .*51"):
        analysis.analyse(cfg, (224, 224))


def test_failed_trace_is_named(trees):
    # Issue 10: this config (one input channel) used to be the failing example because a fixed 3
    # channels were fed; channels now come from the config, so an input too small for its 5x5
    # convolutions makes the trace fail instead.
    cfg = _cfg(trees, "mmcls", "lenet/lenet5_mnist.py")
    with pytest.raises(analysis.AnalysisError, match=r"^tracing extract_feat failed: RuntimeError: "):
        analysis.analyse(cfg, (8, 8))


def test_grayscale_lenet_is_traced_with_one_channel_as_get_flops_would_count_it(trees):
    rel = "lenet/lenet5_mnist.py"
    stats = analysis.analyse(_cfg(trees, "mmcls", rel))
    assert stats["input_shape"] == [1, 32, 32]
    assert_matches(stats, get_flops_way(trees["mmcls"], f"configs/{rel}", 32, 32, channels=1))


def test_model_without_extract_feat_or_tensor_mode(tmp_path):
    cfg = _write(tmp_path, "default_scope = 'mmcls'\nmodel = dict(type='ResNet', depth=18)\n")
    with pytest.raises(analysis.AnalysisError, match=r"ResNet has no extract_feat .* mode='tensor'"):
        analysis.analyse(cfg, (224, 224))


def test_tensor_mode_model(tmp_path, monkeypatch):
    """No extract_feat: measured through forward(inputs, mode='tensor')."""
    (tmp_path / "tensor_model.py").write_text(textwrap.dedent("""
        from mmengine.model import BaseModel
        from mmcls.registry import MODELS

        @MODELS.register_module(force=True)
        class TensorOnly(BaseModel):
            def __init__(self, backbone):
                super().__init__()
                self.backbone = MODELS.build(backbone)

            def forward(self, inputs, data_samples=None, mode='tensor'):
                assert mode == 'tensor'
                return self.backbone(inputs)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = _write(tmp_path, """
        default_scope = 'mmcls'
        custom_imports = dict(imports=['tensor_model'])
        model = dict(type='TensorOnly', backbone=dict(type='ResNet', depth=18))
    """)
    stats = analysis.analyse(cfg, (64, 64))
    assert stats["forward"] == "tensor"
    backbone = analysis.build_model(cfg).backbone  # built in eval mode
    x = (torch.randn(1, 3, 64, 64),)
    assert stats["flops"] == FlopCountAnalysis(backbone, x).unsupported_ops_warnings(False).total()
    assert stats["modules"]["backbone"]["params"] == stats["params"] > 11_000_000

"""The dispatch engine (no torch.jit) against fvcore's trace, on real shipped mmpretrain configs:
every total, every top-level module, every per-module tree row, the uncalled modules equal; the
uncounted ops equal up to the size arithmetic only a jit trace records."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine import Config
from helpers import ConfigRepo, shipped

from mcx_review.measure.worker import analysis
from mcx_review.measure.worker import dispatch_count
from mcx_review.report.validate import validate

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
import engine_compare  # noqa: E402

# config -> what it exercises
SAMPLE = {
    "resnet/resnet50_8xb32_in1k.py": "conv, eval batch norm, max pool, 1x1 adaptive pool (a mean below)",
    "deit/deit-tiny_4xb256_in1k.py": "F.scaled_dot_product_attention (our SDPA handle), linear on 3-D input",
    "swin_transformer/swin-tiny_16xb64_in1k.py": "window attention (matmul), layer norm, shifted windows",
    "convnext/convnext-tiny_32xb128_in1k.py": "depthwise conv, linear on 4-D input (matmul + add_ below)",
    "efficientnet/efficientnet-b0_8xb32_in1k.py": "same-padding (F.pad), squeeze-excitation pools",
    "mobilenet_v2/mobilenet-v2_8xb32_in1k.py": "depthwise separable convs, ReLU6 (clamp)",
    "repvgg/repvgg-A0_8xb32_in1k.py": "multi-branch blocks, identity batch norms",
    "mvit/mvitv2-tiny_8xb256_in1k.py": "einsum (relative positions), pooled attention",
    "levit/levit-128s_8xb256_in1k.py": "attention biases cached in a plain tensor attribute (self.ab)",
}
# Ops a jit trace records when the model does arithmetic on tensor sizes (``W % window``,
# ``1 - x``, ``sqrt(1 / E)`` on ``x.shape``): traced sizes are tensors there, plain ints at the
# dispatcher, which never sees them.
SIZE_ARITHMETIC = {"aten::add", "aten::sub", "aten::rsub", "aten::mul", "aten::div", "aten::floor_divide",
                   "aten::remainder", "aten::sqrt", "aten::Int", "aten::expand_as"}


@pytest.fixture(scope="module")
def both(request):
    """{config: (fvcore stats, dispatch stats, model, input_shape, forward)}, each model built once."""
    out = {}
    root = shipped("mmpretrain")

    def get(rel):
        if rel not in out:
            model, shape, forward = engine_compare.build(Config.fromfile(str(root / rel)))
            out[rel] = (analysis.count(model, shape, forward), analysis.count(model, shape, forward, engine="dispatch"),
                        model, shape, forward)
        return out[rel]
    return get


@pytest.mark.parametrize("rel", sorted(SAMPLE))
def test_every_number_equals_fvcore_without_computing_a_value(both, rel):
    ref, got, *_ = both(rel)
    assert got["engine"] == "dispatch" and "engine_note" not in got, got.get("engine_note")
    assert "engine" not in ref, "the default engine's stats stay as they were"
    assert engine_compare.differences(ref, got, ops=False) == []
    assert ref["flops"] > 0 and ref["activations"] > 0 and len(ref["tree"]) > 10
    assert got["uncalled_modules"] == ref["uncalled_modules"]


@pytest.mark.parametrize("rel", sorted(SAMPLE))
def test_uncounted_ops_are_fvcores_but_its_size_arithmetic(both, rel):
    """Same names, same counts, once the nodes of fvcore's graph that compute only on sizes
    (numbers and 0-dim tensors in and out) are taken out."""
    ref, got, model, shape, _ = both(rel)
    a, b = ref["unsupported_ops"], got["unsupported_ops"]
    if a != b:
        sizes = engine_compare.size_arithmetic(model, shape)
        assert sizes and set(sizes) <= SIZE_ARITHMETIC, sizes
        a = {op: n - sizes.get(op, 0) for op, n in a.items() if n - sizes.get(op, 0)}
    assert a == b and b


def test_resnet_and_deit_list_exactly_fvcores_uncounted_ops(both):
    for rel in ("resnet/resnet50_8xb32_in1k.py", "deit/deit-tiny_4xb256_in1k.py"):
        ref, got, *_ = both(rel)
        assert got["unsupported_ops"] == ref["unsupported_ops"] and ref["unsupported_ops"]


def test_real_tensors_at_the_dispatcher_count_the_same(both):
    """The path for models whose forward needs values: real random input, still no jit."""
    rel = "swin_transformer/swin-tiny_16xb64_in1k.py"
    ref, _, model, shape, _ = both(rel)
    for how in (dispatch_count.FAKE_TENSORS, dispatch_count.REAL_TENSORS):
        with torch.no_grad():
            counts = dispatch_count._run(model, (1, *shape), how)
        assert counts.counted("") == (ref["flops"], ref["activations"]), how
        for name, flops, _, acts in ref["tree"]:
            assert counts.counted(counts.canonical(name)) == (flops, acts), (how, name)


def _tensors(model):
    """Every tensor the model holds: parameters, buffers, plain tensor attributes."""
    out = {n: t for n, t in [*model.named_parameters(), *model.named_buffers()]}
    for name, module in model.named_modules():
        out.update({f"{name}.{k}": v for k, v in vars(module).items() if isinstance(v, torch.Tensor)})
    return out


def test_the_meta_run_leaves_the_model_as_it_was(both):
    """LeViT caches its attention biases in a plain attribute: moved too, or the forward would mix
    devices (and drop to the 3x slower fake tensors)."""
    _, _, model, shape, forward = both("levit/levit-128s_8xb256_in1k.py")
    before = _tensors(model)
    assert any(n.endswith(".ab") for n in before)
    with dispatch_count.on_meta(model):
        assert {t.device.type for t in _tensors(model).values()} == {"meta"}
    after = _tensors(model)
    assert after.keys() == before.keys() and all(after[n] is before[n] for n in before)
    assert {t.device.type for t in after.values()} == {"cpu"}


def test_a_model_that_needs_values_runs_on_real_tensors_and_says_so():
    """mmpretrain's own LeNet-5, its forward made to read a value (``.item()``), as a codebase with
    a value-dependent branch does: fake tensors cannot answer, real ones can."""
    cfg = Config.fromfile(str(shipped("mmpretrain") / "lenet/lenet5_mnist.py"))
    model, shape, forward = engine_compare.build(cfg)
    features = model.backbone.features
    original = features.forward

    def needs_a_value(x):
        if x.abs().sum().item() >= 0:  # always true, but only a real tensor knows
            return original(x)
        return x
    features.forward = needs_a_value
    ref = analysis.count(model, shape, forward)
    got = analysis.count(model, shape, forward, engine="dispatch")
    assert got["engine"] == "dispatch-real"
    assert engine_compare.differences(ref, got, ops=False) == []


def test_a_model_no_engine_but_fvcore_can_run_is_counted_by_fvcore_and_the_stats_say_why():
    """A block that refuses to run unless ``torch.jit`` traces it (code written for export) fails
    at the dispatcher on fake and on real tensors: fvcore's trace counts it, and the stats say so."""
    cfg = Config.fromfile(str(shipped("mmpretrain") / "lenet/lenet5_mnist.py"))
    model, shape, forward = engine_compare.build(cfg)
    features = model.backbone.features
    original = features.forward

    def only_when_traced(x):
        if not torch.jit.is_tracing():
            raise RuntimeError("this block only runs under torch.jit.trace")
        return original(x)
    features.forward = only_when_traced
    ref = analysis.count(model, shape, forward)
    got = analysis.count(model, shape, forward, engine="dispatch")
    assert got["engine"] == "fvcore"
    assert got["engine_note"].startswith("counted by fvcore: the dispatch engine failed (meta tensors: ")
    assert "only runs under torch.jit.trace" in got["engine_note"]
    assert "; fake tensors: " in got["engine_note"] and "; real tensors: " in got["engine_note"]
    assert got["flops"] == ref["flops"] and got["tree"] == ref["tree"]


def test_engine_dispatch_through_the_cli_records_the_engine_and_the_same_numbers(tmp_path):
    """``--engine dispatch`` reaches the workers; each side says who counted; the numbers and the
    schema are those of the default engine; the two engines never share a cache entry."""
    repo = ConfigRepo(tmp_path / "r", pkg="mmpretrain")
    repo.branch("pr")
    rel = "configs/lenet/lenet5_mnist.py"
    repo.replace(rel, "type='LeNet5', num_classes=10", "type='LeNet5', num_classes=26")
    repo.commit("26 classes")
    cache = tmp_path / "cache"
    reports = {}
    for engine in ("fvcore", "dispatch"):
        out = tmp_path / f"{engine}.json"
        proc = subprocess.run([sys.executable, "-m", "mcx_review", "--base", "main", "--engine", engine,
                               "--cache-dir", str(cache), "--json", str(out), "-q"],
                              cwd=repo.root, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        reports[engine] = json.loads(out.read_text())
    assert validate(reports["dispatch"]) == []
    (f,), (d,) = reports["fvcore"]["configs"], reports["dispatch"]["configs"]
    assert "engine" not in reports["fvcore"]["tool"] and reports["dispatch"]["tool"]["engine"] == "dispatch"
    for side in ("base", "head"):
        assert d[side]["engine"] == "dispatch" and "engine" not in f[side]
        assert {k: v for k, v in d[side].items() if k != "engine"} == f[side]
    assert d["delta"] == f["delta"] and d["head"]["flops"] != d["base"]["flops"]


# mmdet and mmseg configs as shipped, counted whole in tensor mode at small shapes: config ->
# (shape, the engine run that must count it, what it exercises)
DETSEG = {
    ("mmdet", "retinanet/retinanet_r18_fpn_1x_coco.py"): ((320, 320), "dispatch", "single stage: shapes only"),
    ("mmdet", "faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py"): (
        (320, 320), "dispatch-real", "NMS needs values; RoIAlign is an mmcv Function (one PythonOp)"),
    ("mmdet", "guided_anchoring/ga-retinanet_r50-caffe_fpn_1x_coco.py"): (
        (320, 320), "dispatch-real", "MaskedConv2d and DeformConv2d Functions, an addmm inside that fvcore never sees"),
    ("mmseg", "unet/unet-s5-d16_fcn_4xb4-40k_chase-db1-128x128.py"): ((128, 128), "dispatch", "segmentor, no aux head"),
}


# mmdet's RPN: ``w, h = x2 - x1, y2 - y1; if not ((w > m) & (h > m)).all(): ...``
BRANCH_ONLY = {"aten::sub", "aten::all"}


@pytest.mark.parametrize("codebase, rel", sorted(DETSEG))
def test_detectors_and_segmentors_count_the_same_on_both_engines(codebase, rel):
    """Every number and every uncounted op equal (those size-only ops aside that only a jit trace
    records), and the run that counted is the one the model allows."""
    shape, engine, _ = DETSEG[(codebase, rel)]
    cfg = str(shipped(codebase) / rel)
    ref = analysis.analyse(Config.fromfile(cfg), shape)
    got = analysis.analyse(Config.fromfile(cfg), shape, engine="dispatch")
    assert got["engine"] == engine, got.get("engine_note")
    assert engine_compare.differences(ref, got, ops=False) == []
    a, b = ref["unsupported_ops"], got["unsupported_ops"]
    only_jit = {op for op, n in a.items() if n > b.get(op, 0)}
    assert only_jit <= SIZE_ARITHMETIC, (a, b)
    only_dispatch = {op for op, n in b.items() if n > a.get(op, 0)}
    if engine == "dispatch":
        assert not only_dispatch, (a, b)
    else:  # on real tensors: ops that only decide a branch (``if not mask.all()``) reach no output,
        # and jit's trace drops them as dead code; the dispatcher sees them run (none is counted)
        assert only_dispatch <= BRANCH_ONLY, (a, b)
    assert {op for op in a if op.startswith("prim::PythonOp")} == {op for op in b if op.startswith("prim::PythonOp")}

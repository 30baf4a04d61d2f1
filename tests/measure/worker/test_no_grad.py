"""Tracing under ``torch.no_grad()`` (what the workers do) gives exactly the numbers of a trace with
autograd on (what get_flops.py does): totals, every per-module figure, ops not counted and
uncalled modules, on real shipped configs, on the one-trace and the two-trace path."""
import importlib.util
import shutil
from pathlib import Path

import pytest
import torch
from mmengine import Config

from mcx_review.measure.worker import analysis

CONFIGS = (
    ("mmcls", "resnet/resnet50_8xb32_in1k.py"),
    ("mmpretrain", "deit/deit-tiny_4xb256_in1k.py"),  # mmpretrain's attention runs through SDPA
    ("mmpretrain", "swin_transformer/swin-tiny_16xb64_in1k.py"),  # window attention, shifted masks
)


def _configs(pkg: str) -> Path:
    return Path(importlib.util.find_spec(pkg).origin).parent / ".mim" / "configs"


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    out = {}
    for pkg in {p for p, _ in CONFIGS}:
        root = tmp_path_factory.mktemp(pkg)
        shutil.copytree(_configs(pkg), root / "configs", ignore=shutil.ignore_patterns("__pycache__"))
        out[pkg] = root / "configs"
    return out


def _count(trees, pkg, rel, *, no_grad, single_trace):
    cfg = Config.fromfile(str(trees[pkg] / rel))
    model = analysis.build_model(cfg)
    forward = analysis.bind_forward(model)
    grad_modes = []
    model.register_forward_hook(lambda *_: grad_modes.append(torch.is_grad_enabled()))
    stats = analysis.count(model, analysis.resolve_shape(cfg, None), forward,
                           single_trace=single_trace, no_grad=no_grad)
    return stats, set(grad_modes)


@pytest.mark.parametrize("single_trace", [True, False], ids=["one-trace", "two-traces"])
@pytest.mark.parametrize("pkg,rel", CONFIGS, ids=[r.split("/")[0] for _, r in CONFIGS])
def test_no_grad_trace_gives_every_number_of_the_autograd_trace(trees, pkg, rel, single_trace):
    with_grad, modes_on = _count(trees, pkg, rel, no_grad=False, single_trace=single_trace)
    without, modes_off = _count(trees, pkg, rel, no_grad=True, single_trace=single_trace)
    assert modes_on == {True} and modes_off == {False}, "the switch must really change the grad mode"
    assert torch.is_grad_enabled(), "no_grad must not leak out of the analysis"
    assert without["flops"] > 0 and without["modules"]
    for key in ("flops", "params", "activations", "input_shape", "forward"):
        assert without[key] == with_grad[key], key
    assert without["modules"] == with_grad["modules"]  # flops, params, activations, called per module
    assert list(without["modules"]) == list(with_grad["modules"])
    assert without["unsupported_ops"] == with_grad["unsupported_ops"]
    assert without["uncalled_modules"] == with_grad["uncalled_modules"]
    assert without == with_grad


def test_the_worker_path_traces_without_grad(trees, monkeypatch):
    """``analyse`` (what a worker calls) uses no_grad by default."""
    seen = []
    real = analysis.count

    def spy(*args, **kwargs):
        seen.append(kwargs.get("no_grad"))
        return real(*args, **kwargs)

    monkeypatch.setattr(analysis, "count", spy)
    cfg = Config.fromfile(str(trees["mmpretrain"] / "deit/deit-tiny_4xb256_in1k.py"))
    analysis.analyse(cfg)
    assert seen == [True]

"""One config -> ModelStats: build the model, count FLOPs, params and activations with fvcore.

Counted the way mmcls's ``tools/analysis_tools/get_flops.py`` does (``eval()``, forward =
``extract_feat``, input ``(1, C, H, W)``, fvcore FLOPs / activations / ``parameter_count``), with
four differences that change no number (get_flops.py fixes C = 3, which fails on a grayscale model;
C here comes from the config): weights are not randomly initialised, one trace serves both FLOPs
and activations, the trace runs under ``torch.no_grad()`` (autograd would keep every intermediate
tensor alive: ViT-H/14 at 448 px peaks near 3.7 GB RSS with it, 1.3 GB without), and
``aten::scaled_dot_product_attention`` is counted like the explicit attention it replaces (so
torch 2.x gives the published figures).

Detectors and segmentors (mmdet, mmseg and codebases built on them) are counted whole in tensor
mode, ``model(inputs, data_samples, mode='tensor')``, as their own ``get_flops.py`` do; see
``measure/worker/tensor_mode.py``. Without a compiled mmcv, its ops run on the stand-ins of
``measure/worker/mmcv_ops.py``, and the stats name the ones used (``mmcv_stand_ins``).
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import re
import sys
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from mcx_review.measure.worker import fvcore_handles, mmcv_ops, tensor_mode
from mcx_review.measure.worker.input_shape import (DEFAULT_CHANNELS, FORCED, ShapeError, input_channels, input_size,
                                                   type_name)
from mcx_review.report.types import ModelStats, ModuleStats
from mcx_review.measure.worker.skip_init import no_weight_init

DEFAULT_SCOPE = "mmpretrain"
EXPECTED_UNCALLED = {"extract_feat": ("head", "data_preprocessor"), "tensor": ("data_preprocessor",)}
_MAX_CAUSE = 300
# tensor mode never runs losses, and an RoI extractor runs only the levels its proposals map to
_NOT_INFERENCE = re.compile(r"(^|\.)(loss\w*|roi_layers\.\d+)$")


class AnalysisError(Exception):
    """Expected failure; str(e) is a clear one-line cause for the user."""


def _cause(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= _MAX_CAUSE else text[: _MAX_CAUSE - 1] + "…"


def scope_of(cfg: Any) -> str:
    return cfg.get("default_scope") or DEFAULT_SCOPE


def registry(scope: str) -> Any:
    """The scope's MODELS, its models imported so they register, the scope made the default."""
    from mmengine.registry import init_default_scope

    mmcv_ops.install()  # before the codebase imports mmcv.ops (no-op with a compiled mmcv)
    try:
        importlib.import_module(f"{scope}.models")
        models = importlib.import_module(f"{scope}.registry").MODELS
    except ImportError as exc:
        raise AnalysisError(f"default_scope '{scope}' cannot be imported ({_cause(exc)})") from exc
    init_default_scope(scope)
    return models


_NOT_REGISTERED = re.compile(r"`?([\w.]+)`? is not in the ([\w.]+)::(\w+) registry")


_REQUIRES = re.compile(r"requires (?P<what>.+?), please install it by `(?P<cmd>[^`]+)`")


def _chain(exc: BaseException) -> List[BaseException]:
    out: List[BaseException] = []
    seen: Optional[BaseException] = exc
    while seen is not None and seen not in out:
        out.append(seen)
        seen = seen.__cause__ or seen.__context__
    return out


def missing_dependency(exc: BaseException, model_type: Optional[str]) -> Optional[str]:
    """An optional dependency the model needs, with the command that installs it, or None.

    mmpretrain registers its multimodal models as placeholders that raise on build; their message
    names the wrong model (every placeholder says "RAMOpenset", a late-binding slip), so the
    config's own model type is named instead."""
    what = model_type or "the model"
    for e in _chain(exc):
        if not isinstance(e, ImportError):
            continue
        text = str(e)
        if "multi-modal dependencies" in text:
            return f"{what} needs mmpretrain's multimodal extras: pip install 'mmpretrain[multimodal]'"
        found = _REQUIRES.search(text)
        if found:
            return f"{what} needs {found.group('what')}: {found.group('cmd')}"
        name = (getattr(e, "name", None) or "").split(".")[0]
        if isinstance(e, ModuleNotFoundError) and name and name != "mmcv":
            return f"{what} needs the Python package '{name}', which is not installed (pip install {name})"
    return None


def _local_sync_bn(spec: Any) -> Any:
    """``MMSyncBN`` (mmcv's SyncBatchNorm) asks for the process group's size when it is built, so
    without ``torch.distributed`` the model cannot be built (mmdet's strong baselines and simple
    copy-paste put it in their heads). torch's ``SyncBN`` has the same parameters and, in eval, the
    same batch norm, and builds alone: the spec names it instead. Other specs come back as given."""
    def swap(value: Any) -> Any:
        if isinstance(value, dict):
            out = {k: swap(v) for k, v in value.items()}
            if out.get("type") == "MMSyncBN":
                out["type"] = "SyncBN"
            return out
        if isinstance(value, (list, tuple)):
            return type(value)(swap(v) for v in value)
        return value

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return spec
    if "MMSyncBN" not in repr(spec):
        return spec
    from mmengine.config import ConfigDict  # attribute access (test_cfg.rpn), as the codebases expect

    return ConfigDict(swap(spec.to_dict() if hasattr(spec, "to_dict") else spec))


def build_model(cfg: Any, init_weights: bool = False) -> Any:
    """``MODELS.build(cfg.model)`` in the config's scope, in eval mode; without random weight init
    unless ``init_weights``."""
    if "model" not in cfg:
        raise AnalysisError("config has no `model`")
    scope = scope_of(cfg)
    models = registry(scope)
    spec = cfg.model
    kind = spec.get("type") if isinstance(spec, dict) else None
    if isinstance(kind, str) and models.get(kind) is None:
        raise AnalysisError(f"unknown model type '{kind}' in scope '{scope}' (not registered)")
    spec = _local_sync_bn(spec)
    try:
        with contextlib.nullcontext() if init_weights else no_weight_init():
            model = models.build(spec)
    except KeyError as exc:
        found = _NOT_REGISTERED.search(str(exc))
        if found:
            raise AnalysisError(f"unknown model type '{type_name(found.group(1))}' in scope "
                                f"'{found.group(2)}' ({found.group(3)} registry)") from exc
        raise AnalysisError(f"model could not be built: {_cause(exc)}") from exc
    except Exception as exc:  # noqa: BLE001 - a broken model definition is the user's to see
        op = mmcv_ops.missing_op(exc)
        if op:
            raise AnalysisError(f"needs compiled mmcv op {op}") from exc
        hint = missing_dependency(exc, type_name(kind) if kind is not None else None)
        raise AnalysisError(f"model could not be built: {hint or _cause(exc)}") from exc
    model.eval()  # not `return model.eval()`: some backbones' train() returns None
    return model


def bind_forward(model: Any) -> str:
    """Point ``model.forward`` at what get_flops.py measures; returns its label."""
    if hasattr(model, "extract_feat"):
        model.forward = model.extract_feat
        return "extract_feat"
    params = inspect.signature(model.forward).parameters
    takes_mode = "mode" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    if not takes_mode:
        raise AnalysisError(f"{type(model).__name__} has no extract_feat and its forward takes no "
                            "mode='tensor': nothing to measure")
    model.forward = functools.partial(model.forward, mode="tensor")
    return "tensor"


class _CallRecorder:
    """Which modules' forward actually ran (hooks, not graph scopes: a module that runs but emits
    no counted op was still called)."""

    def __init__(self, model: Any) -> None:
        self.called: Set[int] = set()
        self._handles = [m.register_forward_pre_hook(self._hook(id(m))) for m in model.modules()]

    def _hook(self, key: int) -> Callable[..., None]:
        def hook(module: Any, inputs: Any) -> None:
            self.called.add(key)
        return hook

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def _has_forward(module: Any) -> bool:
    """fvcore's rule: containers and Identity are not expected to be called."""
    import torch.nn as nn

    forward = type(module).forward
    return not any(forward is base.forward for base in (nn.ModuleList, nn.ModuleDict, nn.Module, nn.Identity))


def _iterated(module: Any, called: Set[int]) -> bool:
    """A container walked by hand (``for layer in self.layers``): every child ran, it owns no
    parameter itself, so nothing it holds went uncounted."""
    children = list(module.children())
    return (bool(children) and all(id(c) in called for c in children)
            and not any(True for _ in module.parameters(recurse=False)))


def _uncalled(model: Any, called: Set[int], forward: str) -> List[str]:
    """Top-most modules with a forward that never ran, the expected ones left out."""
    expected = EXPECTED_UNCALLED[forward]
    out: List[str] = []
    for name, module in model.named_modules():
        if not name or id(module) in called or not _has_forward(module) or _iterated(module, called):
            continue
        if name.split(".")[0] in expected or any(name.startswith(p + ".") for p in out):
            continue
        if forward == "tensor" and _NOT_INFERENCE.search(name):
            continue
        out.append(name)
    return out


def _trace(run: Callable[[], Any], forward: str) -> Any:
    try:
        return run()
    except AnalysisError:
        raise
    except Exception as exc:  # noqa: BLE001 - the model cannot be traced as it stands
        op = mmcv_ops.missing_op(exc)
        raise AnalysisError(f"needs compiled mmcv op {op}" if op else
                            f"tracing {forward} failed: {_cause(exc)}") from exc


def _one_trace(model: Any, inputs: Tuple[Any, ...], forward: str
               ) -> Tuple[Callable[[str], Tuple[int, int]], Dict[str, int], Callable[[str], str]]:
    from fvcore.nn.jit_analysis import JitModelAnalysis

    analysis = (JitModelAnalysis(model, inputs).set_op_handle(**fvcore_handles.combined_handles())
                .unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none"))
    counts = _trace(analysis.by_module_and_operator, forward)
    unsupported = {op: int(n) for op, n in analysis.unsupported_ops("").items()}
    return (lambda name: fvcore_handles.split(counts[name])), unsupported, analysis.canonical_module_name


def _two_traces(model: Any, inputs: Tuple[Any, ...], forward: str
                ) -> Tuple[Callable[[str], Tuple[int, int]], Dict[str, int], Callable[[str], str]]:
    from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis

    flops = FlopCountAnalysis(model, inputs).set_op_handle(**fvcore_handles.flop_handles())
    acts = ActivationCountAnalysis(model, inputs).set_op_handle(**fvcore_handles.activation_handles())
    for analysis in (flops, acts):
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    by_flops, by_acts = _trace(flops.by_module, forward), _trace(acts.by_module, forward)
    unsupported = {op: int(n) for op, n in flops.unsupported_ops("").items()}
    return ((lambda name: (int(by_flops[name]), int(by_acts[name]))), unsupported,
            flops.canonical_module_name)


def _module_tree(model: Any, counted: Callable[[str], Tuple[int, int]], canonical: Callable[[str], str],
                 params: Dict[str, int]) -> List[List[Any]]:
    """``[name, flops, params, activations]`` of every module below the root, in model order, from
    the same trace; all-zero ones (activation functions, empty containers) left out."""
    rows: List[List[Any]] = []
    for name, _ in model.named_modules():
        if not name:
            continue
        try:
            flops, acts = counted(canonical(name))
        except KeyError:
            flops, acts = 0, 0
        n = int(params.get(name, 0))
        if flops or n or acts:
            rows.append([name, int(flops), n, int(acts)])
    return rows


def _dispatch_or_fvcore(model: Any, input_shape: Tuple[int, int, int], forward: str, recorder: _CallRecorder
                        ) -> Tuple[Callable[[str], Tuple[int, int]], Dict[str, int], Callable[[str], str], str, str]:
    """The dispatch engine's counts; fvcore's trace when the model cannot run under it (the
    returned note says why)."""
    import torch

    from mcx_review.measure.worker import dispatch_count

    try:
        counted, unsupported, canonical, engine = dispatch_count.count_ops(
            model, input_shape, before_each=recorder.called.clear)
        return counted, unsupported, canonical, engine, ""
    except dispatch_count.DispatchError as exc:
        recorder.called.clear()
        counted, unsupported, canonical = _one_trace(model, (torch.randn((1, *input_shape)),), forward)
        return counted, unsupported, canonical, "fvcore", f"counted by fvcore: the dispatch engine failed ({exc})"


def count(model: Any, input_shape: Tuple[int, int, int], forward: str,
          single_trace: bool = True, no_grad: bool = True, engine: str = "fvcore") -> ModelStats:
    """fvcore's counts for ``model(torch.randn(1, *input_shape))`` (``model.forward`` already bound).

    ``single_trace=False`` runs separate FlopCountAnalysis and ActivationCountAnalysis, as
    get_flops.py does (same numbers, twice the tracing). ``no_grad=False`` traces with autograd
    on, as get_flops.py does (same numbers, far more memory); it exists for the test that proves
    the numbers equal, not as a user option. ``engine="dispatch"``: counted at the dispatcher
    without torch.jit (measure/worker/dispatch_count.py), by fvcore's trace only if that fails;
    ``stats["engine"]`` then says which counted (and ``stats["engine_note"]`` why fvcore did).
    """
    import torch
    from fvcore.nn import parameter_count

    recorder = _CallRecorder(model)
    used, note = "fvcore", ""
    try:
        with torch.no_grad() if no_grad else contextlib.nullcontext():
            if engine == "dispatch":
                counted, unsupported, canonical, used, note = _dispatch_or_fvcore(model, input_shape, forward, recorder)
            else:
                inputs = (torch.randn((1, *input_shape)),)
                counted, unsupported, canonical = (_one_trace if single_trace else _two_traces)(model, inputs, forward)
    finally:
        recorder.close()
    params = parameter_count(model)
    modules: Dict[str, ModuleStats] = {}
    for name, child in model.named_children():
        called = id(child) in recorder.called
        if not called and not params.get(name, 0):
            continue  # e.g. data_preprocessor: holds nothing, never runs
        flops, acts = counted(canonical(name))
        modules[name] = {"flops": flops, "params": int(params.get(name, 0)),
                         "activations": acts, "called": called}
    flops, acts = counted("")
    stats: ModelStats = {
        "input_shape": [int(d) for d in input_shape], "forward": forward,  # type: ignore[typeddict-item]
        "flops": flops, "params": int(params.get("", 0)), "activations": acts, "modules": modules,
        "unsupported_ops": dict(sorted(unsupported.items())),
        "uncalled_modules": _uncalled(model, recorder.called, forward),
        "tree": _module_tree(model, counted, canonical, params)}
    if engine != "fvcore":  # the default engine's stats stay as they were (and so do their cache keys)
        stats["engine"] = used  # type: ignore[typeddict-item]  # one of the Literal's three, from count_ops
        if note:
            stats["engine_note"] = note
    return stats


def first_layer_channels(model: Any) -> Optional[int]:
    """``in_channels`` of the first convolution the model (its backbone, if any) registers."""
    import torch.nn as nn

    root = getattr(model, "backbone", None) or model
    for module in root.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return int(module.in_channels)
    return None


def resolve_shape(cfg: Any, shape: "Tuple[int, int] | List[int] | None") -> Tuple[int, int, int]:
    """(C, H, W) to trace (:func:`resolve_input` without the rule)."""
    return resolve_input(cfg, shape)[0]


def resolve_input(cfg: Any, shape: "Tuple[int, int] | List[int] | None") -> Tuple[Tuple[int, int, int], str]:
    """((C, H, W), rule) to trace: H, W forced, else the first rule of input_shape.py that finds a
    size (the rule says which); C as the config declares it (:func:`input_channels`), 3 when it
    says nothing (:func:`analyse` then asks the model)."""
    channels = input_channels(cfg) or DEFAULT_CHANNELS
    if shape:
        return (channels, int(shape[0]), int(shape[-1])), FORCED
    try:
        h, w, rule = input_size(cfg)
    except ShapeError as exc:
        raise AnalysisError(f"input shape could not be inferred: {exc} (give the shape explicitly)") from exc
    return (channels, h, w), rule


def deploy_switch(model: Any) -> Optional[Callable[[], Any]]:
    """The backbone's ``switch_to_deploy`` when it has a re-parameterised inference form it is not
    built in yet (RepVGG, MobileOne, RepMLP, RepLKNet, LeViT, RIFormer), as mmpretrain's
    ``tools/model_converters/reparameterize_model.py`` calls it; None otherwise."""
    backbone = getattr(model, "backbone", None)
    switch = getattr(backbone, "switch_to_deploy", None)
    if not callable(switch) or getattr(backbone, "deploy", False) is True:
        return None
    return switch  # type: ignore[no-any-return]


def count_deploy(model: Any, input_shape: Tuple[int, int, int], forward: str, no_grad: bool = True
                 ) -> Optional[Dict[str, int]]:
    """FLOPs / params / activations of the deploy form: one more trace of the same build, switched
    (in place: call it last). None when the model has no deploy form or cannot switch."""
    switch = deploy_switch(model)
    if switch is None:
        return None
    import torch

    try:
        with torch.no_grad():
            switch()
    except Exception:  # noqa: BLE001 - e.g. RepVGG refuses to fuse a norm that is not BN
        return None
    stats = count(model, input_shape, forward, no_grad=no_grad)
    return {"flops": stats["flops"], "params": stats["params"], "activations": stats["activations"]}


def analyse(cfg: Any, shape: "Tuple[int, int] | None" = None, *, no_grad: bool = True,
            engine: str = "fvcore") -> ModelStats:
    """Stats of the config's model at ``shape`` (H, W), or at its test pipeline's resolution
    (``no_grad``, ``engine``: see :func:`count`)."""
    with contextlib.redirect_stdout(sys.stderr):  # codebases and loggers that print
        input_shape, rule = resolve_input(cfg, shape)
        model = build_model(cfg)
        if input_channels(cfg) is None:  # the config is silent: the model's first layer decides
            input_shape = (first_layer_channels(model) or input_shape[0], *input_shape[1:])
        family = tensor_mode.family(model)
        if family is None:
            forward, notes = bind_forward(model), {}
        else:  # detectors and segmentors: the whole model in tensor mode, as their get_flops.py
            forward, notes = "tensor", tensor_mode.bind(model, family, *input_shape[-2:])
        mmcv_ops.reset()
        stats = count(model, input_shape, forward, no_grad=no_grad, engine=engine)
        stats.update(notes)  # type: ignore[typeddict-item]
        stats["input_rule"] = rule
        used = mmcv_ops.used_ops()
        if used:
            stats["mmcv_stand_ins"] = used
        deploy = count_deploy(model, input_shape, forward, no_grad=no_grad)
        if deploy is not None:
            stats["deploy"] = deploy
        return stats

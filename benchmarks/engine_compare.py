"""Both engines on one config in this process: the numbers each gives, and where they differ.

Shared by tests/test_dispatch_count.py and benchmarks/bench_engine.py. A config is built once
(no weight init, forward bound as analysis.py does), then counted by fvcore and by the dispatch
engine; the model is the same object, so any difference is the engine's.
"""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

from mcx_review.measure.worker import analysis

METRICS = ("flops", "params", "activations")


def build(cfg: Any, shape: Optional[Tuple[int, int]] = None) -> Tuple[Any, Tuple[int, int, int], str]:
    """(model, (C, H, W), forward) exactly as analysis.analyse prepares them."""
    with contextlib.redirect_stdout(sys.stderr):
        input_shape = analysis.resolve_shape(cfg, shape)
        model = analysis.build_model(cfg)
        if analysis.input_channels(cfg) is None:
            input_shape = (analysis.first_layer_channels(model) or input_shape[0], *input_shape[1:])
        return model, input_shape, analysis.bind_forward(model)


def timed_count(model: Any, input_shape: Tuple[int, int, int], forward: str, engine: str) -> Tuple[Dict[str, Any], float]:
    start = time.perf_counter()
    stats = analysis.count(model, input_shape, forward, engine=engine)
    return dict(stats), time.perf_counter() - start


def differences(ref: Dict[str, Any], got: Dict[str, Any], ops: bool = True) -> List[str]:
    """Every number that differs: totals, top-level modules, every tree row; then (``ops``)
    uncounted ops and uncalled modules. Empty: equal."""
    out = [f"{m}: fvcore {ref[m]} dispatch {got[m]}" for m in METRICS if ref[m] != got[m]]
    for name in sorted(set(ref["modules"]) | set(got["modules"])):
        a, b = ref["modules"].get(name), got["modules"].get(name)
        if a is None or b is None:
            out.append(f"module {name}: only in {'dispatch' if a is None else 'fvcore'}")
            continue
        out += [f"module {name} {m}: fvcore {a[m]} dispatch {b[m]}" for m in (*METRICS, "called") if a[m] != b[m]]
    tree_a = {r[0]: r[1:] for r in ref.get("tree", [])}
    tree_b = {r[0]: r[1:] for r in got.get("tree", [])}
    for name in [n for n in tree_a if n not in tree_b] + [n for n in tree_b if n not in tree_a]:
        out.append(f"tree {name}: fvcore {tree_a.get(name)} dispatch {tree_b.get(name)}")
    for name in tree_a:
        if name in tree_b and tree_a[name] != tree_b[name]:
            out.append(f"tree {name}: fvcore {tree_a[name]} dispatch {tree_b[name]}")
    if ops:
        if ref["unsupported_ops"] != got["unsupported_ops"]:
            keys = sorted(set(ref["unsupported_ops"]) | set(got["unsupported_ops"]))
            diff = {k: (ref["unsupported_ops"].get(k, 0), got["unsupported_ops"].get(k, 0)) for k in keys
                    if ref["unsupported_ops"].get(k, 0) != got["unsupported_ops"].get(k, 0)}
            out.append(f"unsupported_ops (fvcore, dispatch): {diff}")
        if ref["uncalled_modules"] != got["uncalled_modules"]:
            out.append(f"uncalled_modules: fvcore {ref['uncalled_modules']} dispatch {got['uncalled_modules']}")
    return out


def size_arithmetic(model: Any, input_shape: Tuple[int, int, int]) -> Dict[str, int]:
    """Uncounted ops of fvcore's trace that only compute on sizes: every input and output a number
    or a 0-dim tensor (``W % window`` on ``x.shape`` is traced as ``aten::remainder`` on tensors).
    The dispatcher never sees them: at run time sizes are ints. Counted by fvcore's op name."""
    import torch
    from fvcore.nn.jit_analysis import _IGNORED_OPS, _get_scoped_trace_graph

    def scalar(v: Any) -> bool:
        t = v.type()
        if isinstance(t, torch._C.TensorType):
            sizes = t.sizes() if v.isCompleteTensor() else None
            return sizes is not None and len(sizes) == 0
        return isinstance(t, (torch._C.IntType, torch._C.FloatType, torch._C.BoolType, torch._C.NumberType))

    aliases = {m: n for n, m in reversed(list(model.named_modules()))}
    aliases.update({n: n for n, _ in model.named_modules()})
    with torch.no_grad():
        graph = _get_scoped_trace_graph(model, (torch.randn((1, *input_shape)),), aliases)
    out: Dict[str, int] = {}
    for node in graph.nodes():
        kind = node.kind()
        if kind.startswith("prim::") or kind in _IGNORED_OPS:
            continue
        if all(scalar(v) for v in node.inputs()) and all(scalar(v) for v in node.outputs()):
            out[kind] = out.get(kind, 0) + 1
    return out

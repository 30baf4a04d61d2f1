"""fvcore op handles: the ops fvcore 0.1.5 misses on torch 2.x, and one trace for two statistics.

fvcore counts one multiply-add as one FLOP. ``aten::scaled_dot_product_attention`` (what
``F.scaled_dot_product_attention`` traces to) has no handle, so attention written with it counts 0
where the explicit ``softmax(q @ k^T * s) @ v`` counted two matmuls. The handles here count exactly
those two matmuls, FLOPs and activations (their outputs), so both spellings give one number.
"""
from __future__ import annotations

from collections import Counter
from numbers import Number
from typing import Any, Dict, List, Mapping, Tuple

from fvcore.nn.activation_count import _DEFAULT_SUPPORTED_OPS as _ACTIVATION_OPS
from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS as _FLOP_OPS
from fvcore.nn.jit_handles import Handle, get_shape

FLOPS = "flops"
ACTIVATIONS = "activations"
_SEP = "/"

SDPA_OPS = ("aten::scaled_dot_product_attention",)


def _prod(shape: List[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _sdpa_shapes(inputs: List[Any]) -> Tuple[int, int, int, int]:
    """(batch, L, S, E + Ev) of an SDPA call: query (..., L, E), key (..., S, E), value (..., S, Ev)."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    if q is None or k is None or v is None:
        raise ValueError("scaled_dot_product_attention with inputs of unknown shape")
    batch = _prod(q[:-2])  # every query head attends; grouped key/value heads broadcast
    return batch, int(q[-2]), int(k[-2]), int(q[-1]) + int(v[-1])


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """q @ k^T (L*S*E) plus attn @ v (L*S*Ev) multiply-adds; scaling, masking, softmax are
    elementwise and uncounted, as on the explicit path."""
    batch, length, source, width = _sdpa_shapes(inputs)
    return batch * length * source * width


def sdpa_activation_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """The two matmul outputs of the explicit path: the attention map (L*S) and attn @ v (L*Ev)."""
    batch, length, source, _ = _sdpa_shapes(inputs)
    out = get_shape(outputs[0])
    return batch * length * source + (_prod(out) if out is not None else 0)


def flop_handles() -> Dict[str, Handle]:
    """Handles to add to a FlopCountAnalysis."""
    return {op: sdpa_flop_jit for op in SDPA_OPS}


def activation_handles() -> Dict[str, Handle]:
    """Handles to add to an ActivationCountAnalysis."""
    return {op: sdpa_activation_jit for op in SDPA_OPS}


def _tagged(tag: str, op: str, value: Any) -> "Counter[str]":
    """A handle's result as a Counter whose keys say which statistic they belong to."""
    if isinstance(value, Number):
        name = op.split("::", 1)[-1]
        return Counter({f"{tag}{_SEP}{name}": value})
    return Counter({f"{tag}{_SEP}{k}": v for k, v in value.items()})


def _combined(op: str, flop: "Handle | None", act: "Handle | None") -> Handle:
    def handle(inputs: List[Any], outputs: List[Any]) -> "Counter[str]":
        result: "Counter[str]" = Counter()
        if flop is not None:
            result.update(_tagged(FLOPS, op, flop(inputs, outputs)))
        if act is not None:
            result.update(_tagged(ACTIVATIONS, op, act(inputs, outputs)))
        return result

    return handle


def combined_handles(extra_flops: "Mapping[str, Handle] | None" = None,
                     extra_activations: "Mapping[str, Handle] | None" = None) -> Dict[str, Handle]:
    """One handle per op for one JitModelAnalysis that counts FLOPs and activations at once.

    fvcore's defaults plus ours (or the given extras). Each returns a Counter keyed
    ``"flops/<op>"`` / ``"activations/<op>"``; :func:`split` separates them again. Ops with a
    FLOP handle only give activations 0, as ActivationCountAnalysis does for them.
    """
    flops = {**_FLOP_OPS, **(flop_handles() if extra_flops is None else extra_flops)}
    acts = {**_ACTIVATION_OPS, **(activation_handles() if extra_activations is None else extra_activations)}
    return {op: _combined(op, flops.get(op), acts.get(op)) for op in {*flops, *acts}}


def split(counts: Mapping[str, Any]) -> Tuple[int, int]:
    """(flops, activations) from one module's combined Counter."""
    totals = {FLOPS: 0, ACTIVATIONS: 0}
    for key, value in counts.items():
        totals[key.split(_SEP, 1)[0]] += value
    return int(totals[FLOPS]), int(totals[ACTIVATIONS])

"""Build models without running their random weight initialisers.

Counting FLOPs, params and activations needs parameter shapes, never values, and random init of a
large model costs seconds (ConvNeXt-XL). Building under ``torch.device('meta')`` is no way out:
some backbones call ``.item()`` on tensors while they are built, and fvcore cannot trace meta
tensors. So, while the context is active, torch.nn.init's random initialisers and the in-place
random fills of tensors do nothing: parameters keep the uninitialised memory ``torch.empty`` gave
them. Constant fills (``zeros_``, ``ones_``, ``constant_``) are cheap and still run.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, List, Tuple

import torch

_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "xavier_normal_",
                   "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")
_TENSOR_FILLS = ("uniform_", "normal_", "random_", "bernoulli_", "exponential_", "geometric_",
                 "log_normal_", "cauchy_")


_INHERITED = object()


def _keep(tensor: Any, *args: Any, **kwargs: Any) -> Any:
    return tensor


def _targets() -> List[Tuple[Any, str]]:
    targets: List[Tuple[Any, str]] = [(torch.nn.init, n) for n in _INIT_FUNCTIONS]
    targets += [(torch.Tensor, n) for n in _TENSOR_FILLS]
    try:  # mmengine's own truncated normal (uniform_ + erfinv_ + ... on the whole tensor)
        from mmengine.model import weight_init
        targets.append((weight_init, "_no_grad_trunc_normal_"))
    except ImportError:  # pragma: no cover - mmengine is always there in a worker
        pass
    return [(owner, name) for owner, name in targets if hasattr(owner, name)]


@contextlib.contextmanager
def no_weight_init() -> Iterator[None]:
    """Within the block, random weight initialisation is a no-op; everything is restored after."""
    saved: List[Tuple[Any, str, Any]] = []
    try:
        for owner, name in _targets():
            saved.append((owner, name, vars(owner).get(name, _INHERITED)))
            setattr(owner, name, _keep)
        yield
    finally:
        for owner, name, original in reversed(saved):
            if original is _INHERITED:  # e.g. Tensor.normal_ lives on torch._C.TensorBase
                delattr(owner, name)
            else:
                setattr(owner, name, original)

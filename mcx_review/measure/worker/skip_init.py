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
from typing import Any, Dict, Iterator, List, Tuple

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


# Checkpoints a model loads while it is built (LD's and LAD's teachers: ``load_checkpoint(teacher,
# teacher_ckpt)`` in ``__init__``, an URL): their values change no count, and fetching them needs
# the network, which is off in a worker. Their names, for the report.
skipped_checkpoints: List[str] = []


def _no_checkpoint(filename: Any, *args: Any, **kwargs: Any) -> Dict[str, Any]:
    skipped_checkpoints.append(str(filename))
    return {}  # an empty state dict: load_checkpoint then loads nothing (non-strict) and goes on


def _checkpoint_targets() -> List[Tuple[Any, str]]:
    try:
        from mmengine.runner import checkpoint
    except ImportError:  # pragma: no cover - mmengine is always there in a worker
        return []
    return [(checkpoint, "_load_checkpoint")]


@contextlib.contextmanager
def no_weight_init() -> Iterator[None]:
    """Within the block, random weight initialisation is a no-op and checkpoints loaded through
    mmengine's ``load_checkpoint`` are not read (:data:`skipped_checkpoints` names them);
    everything is restored after."""
    saved: List[Tuple[Any, str, Any]] = []
    try:
        for owner, name in _targets():
            saved.append((owner, name, vars(owner).get(name, _INHERITED)))
            setattr(owner, name, _keep)
        for owner, name in _checkpoint_targets():
            saved.append((owner, name, vars(owner).get(name, _INHERITED)))
            setattr(owner, name, _no_checkpoint)
        yield
    finally:
        for owner, name, original in reversed(saved):
            if original is _INHERITED:  # e.g. Tensor.normal_ lives on torch._C.TensorBase
                delattr(owner, name)
            else:
                setattr(owner, name, original)

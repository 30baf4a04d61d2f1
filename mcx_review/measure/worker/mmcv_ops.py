"""A stand-in for ``mmcv._ext`` (mmcv's compiled ops) when only mmcv-lite is installed.

mmcv-lite ships ``mmcv.ops``' Python side but not the extension it calls, so ``import mmdet.models``
or ``mmseg.models`` fails with ``No module named 'mmcv._ext'``. :func:`install` puts a module in its
place before the codebase is imported. It keeps mmcv's own Python wrappers (``mmcv.ops.nms``,
``batched_nms``, ``RoIAlign``, ``DeformConv2d``, ...) and answers the extension calls they make,
with mmcv's argument conventions (outputs written in place, keyword names as in
``mmcv/ops/*.py``), on ``torchvision.ops``:

- ``nms`` (``offset`` 0 or 1: mmcv counts a box ``x2 - x1 + offset`` wide) and ``softnms``
  (mmcv's CPU algorithm: naive / linear / gaussian);
- ``roi_align_forward`` (``aligned``, ``sampling_ratio``, ``pool_mode`` avg; max is refused);
- ``roi_pool_forward``;
- ``deform_conv_forward`` and ``modulated_deform_conv_forward`` (same offset layout as
  torchvision: per deformable group and kernel position, (dy, dx)).

Deformable attention needs nothing: mmcv takes its pure-PyTorch path on CPU. Every other
extension function exists (mmcv's loader asserts they do at import) but raises
:class:`MissingCompiledOp` naming it when called. With a real mmcv nothing is replaced.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from typing import Any, Callable, Dict, List, Optional, Set

MODULE = "mmcv._ext"
OPS_WITH_STAND_INS = ("nms", "softnms", "roi_align_forward", "roi_pool_forward", "deform_conv_forward",
                      "modulated_deform_conv_forward")


class MissingCompiledOp(RuntimeError):
    """A compiled mmcv op without a stand-in was called; ``op`` is its ``mmcv._ext`` name."""

    def __init__(self, op: str) -> None:
        super().__init__(f"needs compiled mmcv op {op}")
        self.op = op


def _nms(bboxes: Any, scores: Any, iou_threshold: float, offset: int = 0) -> Any:
    """Indices kept, highest score first. ``offset`` 1: widths are ``x2 - x1 + 1`` (moving
    x2, y2 out by one gives torchvision exactly mmcv's areas and intersections)."""
    import torch
    from torchvision.ops import nms

    if bboxes.numel() == 0:
        return torch.empty((0,), dtype=torch.long, device=bboxes.device)
    boxes = bboxes.float()
    if offset:
        boxes = torch.cat([boxes[:, :2], boxes[:, 2:4] + offset], dim=1)
    return nms(boxes, scores.float(), float(iou_threshold))


def _softnms(boxes: Any, scores: Any, dets: Any, iou_threshold: float, sigma: float, min_score: float,
             method: int, offset: int) -> Any:
    """mmcv's CPU soft-NMS: repeatedly take the best remaining box, decay the others' scores
    (0: drop above the threshold, 1: linear, 2: gaussian), discard those under ``min_score``.
    Writes ``(x1, y1, x2, y2, score)`` rows into ``dets``; returns the kept input indices."""
    import torch

    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.long)
    box = boxes[:, :4].float().clone()
    score = scores.float().clone()
    index = torch.arange(box.size(0))
    areas = (box[:, 2] - box[:, 0] + offset) * (box[:, 3] - box[:, 1] + offset)
    kept: List[int] = []
    row = 0
    while index.numel():
        best = int(torch.argmax(score))
        dets[row, :4] = box[best]
        dets[row, 4] = score[best]
        kept.append(int(index[best]))
        row += 1
        rest = torch.ones(index.numel(), dtype=torch.bool)
        rest[best] = False
        lt = torch.maximum(box[rest, :2], box[best, :2])
        rb = torch.minimum(box[rest, 2:], box[best, 2:])
        wh = (rb - lt + offset).clamp(min=0)
        inter = wh[:, 0] * wh[:, 1]
        iou = inter / (areas[best] + areas[rest] - inter)
        if method == 0:
            weight = (iou < iou_threshold).float()
        elif method == 1:
            weight = torch.where(iou >= iou_threshold, 1 - iou, torch.ones_like(iou))
        else:
            weight = torch.exp(-(iou * iou) / sigma)
        box, areas, index = box[rest], areas[rest], index[rest]
        score = score[rest] * weight
        alive = score >= min_score
        box, areas, index, score = box[alive], areas[alive], index[alive], score[alive]
    return torch.tensor(kept, dtype=torch.long)


def _roi_align_forward(input: Any, rois: Any, output: Any, argmax_y: Any, argmax_x: Any, *,
                       aligned_height: int, aligned_width: int, spatial_scale: float, sampling_ratio: int,
                       pool_mode: int, aligned: bool) -> None:
    from torchvision.ops import roi_align

    if pool_mode != 1:  # 0: max pooling over the samples, which torchvision does not offer
        raise MissingCompiledOp("roi_align_forward (pool_mode='max')")
    output.copy_(roi_align(input, rois.to(input.dtype), (aligned_height, aligned_width),
                           spatial_scale=float(spatial_scale), sampling_ratio=int(sampling_ratio),
                           aligned=bool(aligned)))


def _roi_pool_forward(input: Any, rois: Any, output: Any, argmax: Any, *, pooled_height: int,
                      pooled_width: int, spatial_scale: float) -> None:
    from torchvision.ops import roi_pool

    output.copy_(roi_pool(input, rois.to(input.dtype), (pooled_height, pooled_width),
                          spatial_scale=float(spatial_scale)))


def _deform_conv_forward(input: Any, weight: Any, offset: Any, output: Any, columns: Any, ones: Any, *,
                         kW: int, kH: int, dW: int, dH: int, padW: int, padH: int, dilationW: int,
                         dilationH: int, group: int, deformable_group: int, im2col_step: int) -> None:
    from torchvision.ops import deform_conv2d

    output.copy_(deform_conv2d(input, offset, weight, stride=(dH, dW), padding=(padH, padW),
                               dilation=(dilationH, dilationW)))


def _modulated_deform_conv_forward(input: Any, weight: Any, bias: Any, ones: Any, offset: Any, mask: Any,
                                   output: Any, columns: Any, *, kernel_h: int, kernel_w: int,
                                   stride_h: int, stride_w: int, pad_h: int, pad_w: int,
                                   dilation_h: int, dilation_w: int, group: int, deformable_group: int,
                                   with_bias: bool) -> None:
    from torchvision.ops import deform_conv2d

    output.copy_(deform_conv2d(input, offset, weight, bias if with_bias else None, stride=(stride_h, stride_w),
                               padding=(pad_h, pad_w), dilation=(dilation_h, dilation_w), mask=mask))


_IMPLEMENTATIONS: Dict[str, Callable[..., Any]] = {
    "nms": _nms, "softnms": _softnms, "roi_align_forward": _roi_align_forward,
    "roi_pool_forward": _roi_pool_forward, "deform_conv_forward": _deform_conv_forward,
    "modulated_deform_conv_forward": _modulated_deform_conv_forward,
}
assert set(_IMPLEMENTATIONS) == set(OPS_WITH_STAND_INS)


class StandIn(types.ModuleType):
    """``mmcv._ext`` as a module: the stand-ins above, and for any other name a function that
    raises :class:`MissingCompiledOp`. ``used`` holds the names of stand-ins called so far."""

    def __init__(self) -> None:
        super().__init__(MODULE, "mcx-review's stand-in for mmcv's compiled ops (torchvision.ops)")
        # a spec without a loader: importlib.util.find_spec works on it, and mmengine's
        # mmcv_full_available() (pkgutil.find_loader) still answers False, as for mmcv-lite
        self.__spec__ = importlib.machinery.ModuleSpec(MODULE, None)
        self.used: Set[str] = set()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("__"):
            raise AttributeError(name)
        impl = _IMPLEMENTATIONS.get(name)

        def op(*args: Any, **kwargs: Any) -> Any:
            if impl is None:
                raise MissingCompiledOp(name)
            self.used.add(name)
            return impl(*args, **kwargs)

        op.__name__ = name
        return op


def _real_ext_importable() -> bool:
    try:
        importlib.import_module(MODULE)
    except ImportError:
        return False
    return True


def install() -> Optional[StandIn]:
    """Put the stand-in in ``sys.modules`` when mmcv is installed without its compiled ops; the
    stand-in (already installed or new), or None when there is no mmcv or the real ops load."""
    current = sys.modules.get(MODULE)
    if isinstance(current, StandIn):
        return current
    if importlib.util.find_spec("mmcv") is None or _real_ext_importable():
        return None
    stand_in = StandIn()
    sys.modules[MODULE] = stand_in
    mmcv = sys.modules.get("mmcv")
    if mmcv is not None:
        setattr(mmcv, "_ext", stand_in)
    return stand_in


def installed() -> Optional[StandIn]:
    current = sys.modules.get(MODULE)
    return current if isinstance(current, StandIn) else None


def reset() -> None:
    """Forget which stand-ins were called (each analysed config reports its own)."""
    stand_in = installed()
    if stand_in is not None:
        stand_in.used.clear()


def used_ops() -> List[str]:
    """Stand-ins called in this process so far, sorted (empty with a real mmcv)."""
    stand_in = installed()
    return sorted(stand_in.used) if stand_in is not None else []


def missing_op(exc: BaseException) -> Optional[str]:
    """The compiled op a failure came from, looking through wrapped causes; None if none did."""
    seen = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, MissingCompiledOp):
            return current.op
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None

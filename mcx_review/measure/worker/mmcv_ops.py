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
  torchvision: per deformable group and kernel position, (dy, dx));
- ``deform_roi_pool_forward`` (each moved bin one aligned RoIAlign cell);

and, in plain PyTorch, ``psamask_forward`` (PSANet's collect / distribute masks, as mmcv's CPU
kernel writes them) and ``masked_im2col_forward`` / ``masked_col2im_forward`` (guided anchoring's
MaskedConv2d, which mmcv has only for CUDA).

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
                      "modulated_deform_conv_forward", "psamask_forward", "masked_im2col_forward",
                      "masked_col2im_forward", "deform_roi_pool_forward")


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


def _on_output_grid(tensor: Any, height: int, width: int) -> Any:
    """``tensor`` (N, C, h, w) as mmcv's modulated kernel reads it for an (height, width) output:
    per sample, its first C * height * width values in (C, height, width) order. mmcv does not
    check the size; DyHead relies on that (``spatial_conv_high`` runs on the next, coarser level
    with this level's offsets and mask), and torchvision refuses it."""
    if tuple(tensor.shape[-2:]) == (height, width):
        return tensor
    n, c = tensor.shape[:2]
    return tensor.reshape(n, -1)[:, :c * height * width].reshape(n, c, height, width)


def _modulated_deform_conv_forward(input: Any, weight: Any, bias: Any, ones: Any, offset: Any, mask: Any,
                                   output: Any, columns: Any, *, kernel_h: int, kernel_w: int,
                                   stride_h: int, stride_w: int, pad_h: int, pad_w: int,
                                   dilation_h: int, dilation_w: int, group: int, deformable_group: int,
                                   with_bias: bool) -> None:
    from torchvision.ops import deform_conv2d

    height, width = output.shape[-2:]
    offset, mask = _on_output_grid(offset, height, width), _on_output_grid(mask, height, width)

    output.copy_(deform_conv2d(input, offset, weight, bias if with_bias else None, stride=(stride_h, stride_w),
                               padding=(pad_h, pad_w), dilation=(dilation_h, dilation_w), mask=mask))


def _deform_roi_pool_forward(input: Any, rois: Any, offset: Any, output: Any, *, pooled_height: int,
                             pooled_width: int, spatial_scale: float, sampling_ratio: int, gamma: float) -> None:
    """Deformable RoI pooling (mmcv's kernel): RoIAlign with ``aligned`` (start at ``x1 * scale -
    0.5``), each bin's start moved by ``gamma * roi size * offset[r, (x, y), ph, pw]``, its size and
    sampling grid those of the unmoved bin. One bin is one RoIAlign cell, so every bin of every RoI
    is an RoI of its own, pooled to 1x1 by torchvision in a single call: same start, size, grid
    (``ceil(bin)`` or ``sampling_ratio``) and bilinear rule as mmcv's."""
    import torch
    from torchvision.ops import roi_align

    rois = rois.to(input.dtype)
    size = (pooled_height, pooled_width)
    if offset.numel() == 0:
        output.copy_(roi_align(input, rois, size, spatial_scale=float(spatial_scale),
                               sampling_ratio=int(sampling_ratio), aligned=True))
        return
    n = rois.size(0)
    bin_w = (rois[:, 3] - rois[:, 1]) / pooled_width  # in the image's units, as rois are
    bin_h = (rois[:, 4] - rois[:, 2]) / pooled_height
    pw = torch.arange(pooled_width, dtype=input.dtype, device=input.device).view(1, 1, -1)
    ph = torch.arange(pooled_height, dtype=input.dtype, device=input.device).view(1, -1, 1)
    x1 = rois[:, 1].view(-1, 1, 1) + pw * bin_w.view(-1, 1, 1) \
        + gamma * (bin_w * pooled_width).view(-1, 1, 1) * offset[:, 0].to(input.dtype)
    y1 = rois[:, 2].view(-1, 1, 1) + ph * bin_h.view(-1, 1, 1) \
        + gamma * (bin_h * pooled_height).view(-1, 1, 1) * offset[:, 1].to(input.dtype)
    cells = torch.stack([rois[:, 0].view(-1, 1, 1).expand_as(x1), x1, y1,
                         x1 + bin_w.view(-1, 1, 1), y1 + bin_h.view(-1, 1, 1)], dim=-1).reshape(-1, 5)
    pooled = roi_align(input, cells, (1, 1), spatial_scale=float(spatial_scale),
                       sampling_ratio=int(sampling_ratio), aligned=True)  # (n * PH * PW, C, 1, 1)
    output.copy_(pooled.view(n, pooled_height, pooled_width, -1).permute(0, 3, 1, 2))


def _psamask_forward(input: Any, output: Any, *, psa_type: int, num_: int, h_feature: int, w_feature: int,
                     h_mask: int, w_mask: int, half_h_mask: int, half_w_mask: int) -> None:
    """PSANet's point-wise spatial attention mask, as mmcv's CPU kernel (``psamask.cpp``) writes it.

    ``input[n, i * w_mask + j, h, w]`` is the weight that position (h, w) gives its neighbour
    (h + di, w + dj), di = i - half_h_mask, dj = j - half_w_mask; neighbours outside the map are
    dropped. ``output`` is (N, H*W, H, W), read as (N, H, W, H, W): *collect* (0) writes
    ``output[n, h + di, w + dj, h, w]``, *distribute* (1) ``output[n, h, w, h + di, w + dj]``. For
    one offset those places form a diagonal of that 5-D array, a strided view: one copy per
    offset, no index tensors, nothing that depends on values."""
    import torch

    height, width = h_feature, w_feature
    # Under torch.jit's tracer (fvcore) the ~10^3 copies below would each be recorded inside mmcv's
    # Function, which fvcore sees as one uncounted PythonOp anyway: tracing 40 s for nothing.
    set_state = getattr(torch._C, "_set_tracing_state")  # noqa: B009 - not in torch's stubs
    tracing = torch._C._get_tracing_state()
    set_state(None)
    try:
        _psamask_copies(input, output, psa_type, num_, height, width, h_mask, w_mask, half_h_mask, half_w_mask)
    finally:
        set_state(tracing)


def _psamask_copies(input: Any, output: Any, psa_type: int, num_: int, height: int, width: int,
                    h_mask: int, w_mask: int, half_h_mask: int, half_w_mask: int) -> None:
    s_n = output.stride(0)
    s_h, s_w = width * height * width, height * width  # output channel (ph, pw) = ph * W + pw
    s_y, s_x = width, 1
    base = output.storage_offset()
    for i in range(h_mask):
        di = i - half_h_mask
        h0, h1 = max(0, -di), min(height, height - di)
        for j in range(w_mask):
            dj = j - half_w_mask
            w0, w1 = max(0, -dj), min(width, width - dj)
            if h0 >= h1 or w0 >= w1:
                continue
            if psa_type == 0:  # collect: channel (h + di, w + dj), position (h, w)
                first = (h0 + di) * s_h + (w0 + dj) * s_w + h0 * s_y + w0 * s_x
            else:  # distribute: channel (h, w), position (h + di, w + dj)
                first = h0 * s_h + w0 * s_w + (h0 + di) * s_y + (w0 + dj) * s_x
            view = output.as_strided((num_, h1 - h0, w1 - w0), (s_n, s_h + s_y, s_w + s_x), base + first)
            view.copy_(input[:, i * w_mask + j, h0:h1, w0:w1])


def _masked_im2col_forward(im: Any, mask_h_idx: Any, mask_w_idx: Any, col: Any, *, kernel_h: int,
                           kernel_w: int, pad_h: int, pad_w: int) -> None:
    """Columns of a stride-1 convolution at the masked positions only (guided anchoring's
    MaskedConv2d): ``col[(c * kh + i) * kw + j, n]`` is ``im[0, c, h_n + i - pad_h, w_n + j - pad_w]``,
    zero outside the image. mmcv has only a CUDA kernel for it."""
    import torch.nn.functional as F

    width = im.size(3)
    columns = F.unfold(im, (kernel_h, kernel_w), padding=(pad_h, pad_w))[0]  # (C*kh*kw, H*W), same order
    col.copy_(columns[:, mask_h_idx * width + mask_w_idx])


def _masked_col2im_forward(col: Any, mask_h_idx: Any, mask_w_idx: Any, im: Any, *, height: int, width: int,
                           channels: int) -> None:
    """The masked convolution's outputs back at their positions: ``im[0, :, h_n, w_n] = col[:, n]``."""
    im[0, :, mask_h_idx, mask_w_idx] = col.to(im.dtype)


_IMPLEMENTATIONS: Dict[str, Callable[..., Any]] = {
    "nms": _nms, "softnms": _softnms, "roi_align_forward": _roi_align_forward,
    "roi_pool_forward": _roi_pool_forward, "deform_conv_forward": _deform_conv_forward,
    "modulated_deform_conv_forward": _modulated_deform_conv_forward,
    "psamask_forward": _psamask_forward, "masked_im2col_forward": _masked_im2col_forward,
    "deform_roi_pool_forward": _deform_roi_pool_forward,
    "masked_col2im_forward": _masked_col2im_forward,
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

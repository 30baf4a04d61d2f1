"""Detectors and segmentors, counted whole in tensor mode, as mmdet's and mmseg's ``get_flops.py`` do.

``model(inputs, data_samples, mode='tensor')``: backbone, neck and heads without post-processing,
on one synthetic image whose data sample carries the meta information a real one would
(``img_shape``, ``pad_shape``, ``batch_input_shape``, ...). Three differences from the tools,
each to make the count possible or reproducible:

- segmentors lose their auxiliary heads (mmseg's tool does so too: they only serve training);
- a decode head whose tensor-mode forward needs the data samples (MaskFormer, Mask2Former) is
  given them, where mmseg's tool refuses the model;
- the second stage of a two-stage detector runs on exactly the configured maximum number of
  proposals (``test_cfg.rpn.max_per_img``), not on however many survive NMS on arbitrary weights:
  surplus proposals are dropped, missing ones repeat the kept ones (or, if none is kept, are the
  whole image). The RoI heads' cost depends only on that number, so two runs agree.
"""
from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any, Dict, List, Optional, Tuple

DETECTOR, SEGMENTOR = "BaseDetector", "BaseSegmentor"
# Fast R-CNN's proposals come from a file, their number from nowhere in the config: mmdet's
# RPN default (``test_cfg.rpn.max_per_img``) stands in
GIVEN_PROPOSALS = 1000
_SAMPLE_CLASSES = {DETECTOR: ("structures", "DetDataSample"), SEGMENTOR: ("structures", "SegDataSample")}


def family(model: Any) -> Optional[str]:
    """``BaseDetector`` / ``BaseSegmentor`` when the model derives from one (mmdet, mmseg, and
    codebases built on them such as mmyolo), else None."""
    for cls in type(model).__mro__:
        if cls.__name__ in _SAMPLE_CLASSES:
            return cls.__name__
    return None


def _base_class(model: Any, name: str) -> Any:
    return next(cls for cls in type(model).__mro__ if cls.__name__ == name)


def data_samples(model: Any, kind: str, height: int, width: int) -> List[Any]:
    """One data sample of the codebase's own class for a ``height`` x ``width`` input, already
    padded: what the data preprocessor would hand the model."""
    package = _base_class(model, kind).__module__.split(".")[0]
    module, name = _SAMPLE_CLASSES[kind]
    sample_class = getattr(importlib.import_module(f"{package}.{module}"), name)
    shape = (height, width)
    return [sample_class(metainfo={"img_shape": shape, "ori_shape": shape, "pad_shape": shape,
                                   "batch_input_shape": shape, "scale_factor": (1.0, 1.0),
                                   "img_id": 0, "img_path": None})]


def _wants_samples(forward: Any) -> bool:
    try:
        params = inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return False
    return "batch_data_samples" in params or "data_samples" in params


def _configured_proposals(rpn_head: Any) -> Optional[int]:
    cfg: Any = getattr(rpn_head, "test_cfg", None)
    if not hasattr(cfg, "get"):
        return None
    for key in ("max_per_img", "max_num"):
        value = cfg.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _exactly(results: Any, number: int, height: int, width: int) -> Any:
    """``results`` (an InstanceData from an RPN, at most ``number`` rows after its NMS) padded
    with whole-image boxes to ``number`` rows. The same ops run whatever NMS kept (nothing, on
    NaN features), and the pads hang off the RPN's own output, so the trace never drops the RPN."""
    import torch

    bboxes = results.bboxes
    pad = bboxes.new_tensor([[0.0, 0.0, float(width), float(height)]]).expand(number, 4)
    scores = results.scores
    return results.new(bboxes=torch.cat([bboxes, pad])[:number],
                       scores=torch.cat([scores, scores.new_zeros(number)])[:number],
                       labels=torch.cat([scores.new_zeros(len(results), dtype=torch.long),
                                         scores.new_zeros(number, dtype=torch.long)])[:number])


def given_proposals(model: Any, samples: List[Any], height: int, width: int) -> Optional[int]:
    """A two-stage detector without an RPN (Fast R-CNN) reads precomputed proposals from its
    data samples: give it :data:`GIVEN_PROPOSALS` whole-image boxes; the number, or None."""
    import torch
    from mmengine.structures import InstanceData

    if getattr(model, "roi_head", None) is None or getattr(model, "with_rpn", True):
        return None
    proposals = InstanceData(
        bboxes=torch.tensor([[0.0, 0.0, float(width), float(height)]]).repeat(GIVEN_PROPOSALS, 1),
        scores=torch.zeros(GIVEN_PROPOSALS), labels=torch.zeros(GIVEN_PROPOSALS, dtype=torch.long))
    for sample in samples:
        sample.proposals = proposals
    return GIVEN_PROPOSALS


def fix_proposals(model: Any, height: int, width: int) -> Optional[int]:
    """Make a two-stage detector's RPN hand its second stage exactly the configured number of
    proposals; that number, or None when the model has no RPN (or configures no number).
    Learned proposals (Sparse R-CNN's ``num_proposals``) are already a fixed number."""
    rpn_head = getattr(model, "rpn_head", None)
    if rpn_head is None or getattr(model, "roi_head", None) is None:
        return None
    number = _configured_proposals(rpn_head)
    if number is None:
        learned = getattr(rpn_head, "num_proposals", None)
        return learned if isinstance(learned, int) and learned > 0 else None
    predict = rpn_head.predict

    @functools.wraps(predict)
    def fixed(*args: Any, **kwargs: Any) -> Any:
        return [_exactly(r, number, height, width) for r in predict(*args, **kwargs)]

    rpn_head.predict = fixed
    return number


def _through_call(module: Any) -> None:
    """Make ``module.forward(...)`` go through ``module(...)``. The codebases call their heads'
    ``forward`` directly (``self.bbox_head.forward(x)``), which skips the module hooks fvcore
    scopes its counts with: the head's FLOPs would land on the model, not on its row."""
    forward = module.forward
    inside = [False]

    def scoped(*args: Any, **kwargs: Any) -> Any:
        if inside[0]:  # the call below, coming back through Module.__call__
            return forward(*args, **kwargs)
        inside[0] = True
        try:
            return module(*args, **kwargs)
        finally:
            inside[0] = False

    module.forward = scoped


def _own_forward(module: Any) -> bool:
    import torch.nn as nn

    forward = type(module).forward
    return not any(forward is base.forward for base in (nn.ModuleList, nn.ModuleDict, nn.Sequential,
                                                         nn.Module))


def zero_parameters(model: Any) -> None:
    """Zeros instead of the uninitialised memory skip-init leaves: data-dependent steps (which
    proposals NMS keeps, which FPN level an RoI maps to) then go the same way on every run."""
    import torch

    with torch.no_grad():
        for param in model.parameters():
            param.zero_()


def bind(model: Any, kind: str, height: int, width: int) -> Dict[str, Any]:
    """Point ``model.forward`` at tensor mode with a synthetic data sample, prepared as above;
    returns what the result should say about it (``proposals``, when fixed)."""
    samples = data_samples(model, kind, height, width)
    zero_parameters(model)
    notes: Dict[str, Any] = {}
    if kind == SEGMENTOR:
        if getattr(model, "auxiliary_head", None) is not None:
            model.auxiliary_head = None
        head = getattr(model, "decode_head", None)
        if head is not None and _wants_samples(head.forward):
            head.forward = functools.partial(head.forward, batch_data_samples=samples)
    else:
        proposals = fix_proposals(model, height, width) or given_proposals(model, samples, height, width)
        if proposals is not None:
            notes["proposals"] = proposals
    for name, module in model.named_modules():
        if name and _own_forward(module):
            _through_call(module)
    model.forward = functools.partial(model.forward, data_samples=samples, mode="tensor")
    return notes


def input_size(input_shape: Tuple[int, ...]) -> Tuple[int, int]:
    return int(input_shape[-2]), int(input_shape[-1])

"""The input resolution a config declares, and which rule found it.

First found wins (:func:`input_size`; the rule is reported beside the shape):

1. ``forced``: settings ``shape``/``shapes`` or ``--shape`` (the caller's, not this module's).
2. Detectors and segmentors, read from the config, never run (nothing here imports the
   codebase's transforms, so no compiled mmcv op is needed):

   - ``data preprocessor size``: the crop a segmentor's preprocessor pads to (512x512 for
     ADE20K, 512x1024 for Cityscapes);
   - ``test pipeline``: its last ``Resize`` scale, (long edge, short edge) with ``keep_ratio``
     (H the short edge, W the long one: (1333, 800) gives 800x1333), (W, H) as given without it
     (YOLO's 640x640), then any ``Pad`` after it, then padded up to the preprocessor's
     ``pad_size_divisor`` (800x1344).

3. Classifiers:

   - ``test pipeline``: as mmpretrain's ``.dev_scripts/fill_metafile.py`` does it: drop the
     loading step (and packing, which only changes the layout), run the rest on a synthetic
     image and read the size it ends with; CIFAR-style datasets start from their native 32x32;
   - ``backbone img_size``: the size the backbone is built for, when there is no test pipeline
     (SAM at 1024, DINOv2 at 518, GLIP-L at 384: headless configs) or it cannot run on a
     synthetic image (caption and question steps). It comes after the pipeline on purpose: 120
     of mmpretrain 1.2.0's configs have both, and where they differ (CLIP ViT-B at 384 and 448
     px on a backbone built at 224, its position embedding resized) the published figures are
     the pipeline's.

4. ``default 224``.

Channels come from the config too (:func:`input_channels`), not a fixed 3: a grayscale model
(``lenet5_mnist.py``, ``mean=[33.46]``) is traced with a 1-channel input.
"""
from __future__ import annotations

import importlib
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

DEFAULT_SIZE = 224
DEFAULT_CHANNELS = 3
NATIVE_SIZES = {"CIFAR10": 32, "CIFAR100": 32}  # datasets whose images come in one fixed size


class ShapeError(Exception):
    """The test pipeline could not be run; str(e) names the transform and the cause."""


def type_name(value: Any) -> str:
    """A transform's or dataset's type as a bare name: 'mmcls.CIFAR10' and the class both give 'CIFAR10'."""
    if isinstance(value, str):
        return value.rsplit(".", 1)[-1]
    name = getattr(value, "__name__", None)
    if name is None and type(value).__name__ == "LazyObject":  # an unresolved lazy import
        name = str(getattr(value, "_imported", "") or "")
    return name or type(value).__name__


def _test_dataset(cfg: Any) -> Dict[str, Any]:
    loader = cfg.get("test_dataloader") or {}
    dataset = loader.get("dataset") or {} if isinstance(loader, dict) else {}
    # dataset wrappers (RepeatDataset, ClassBalancedDataset, ...) hold the real one
    while isinstance(dataset, dict) and "pipeline" not in dataset and isinstance(dataset.get("dataset"), dict):
        dataset = dataset["dataset"]
    return dataset if isinstance(dataset, dict) else {}


def test_pipeline(cfg: Any) -> Tuple[Optional[str], Optional[List[Any]]]:
    """(dataset type name, pipeline) the config tests with; the pipeline is None when it has none."""
    dataset = _test_dataset(cfg)
    pipeline = dataset.get("pipeline")
    if pipeline is None:
        pipeline = cfg.get("test_pipeline")
    kind = type_name(dataset["type"]) if dataset.get("type") is not None else None
    return kind, list(pipeline) if pipeline is not None else None


def _is_loading(step: Any) -> bool:
    name = type_name(step.get("type")) if isinstance(step, dict) else type(step).__name__
    return name.startswith("Load")


def _is_packing(step: Any) -> bool:
    name = type_name(step.get("type")) if isinstance(step, dict) else type(step).__name__
    return name.startswith("Pack") or name in ("Collect", "ToTensor", "ImageToTensor")


def _registry(scope: str) -> Any:
    """The scope's TRANSFORMS, with its transforms registered."""
    importlib.import_module(f"{scope}.datasets")
    return importlib.import_module(f"{scope}.registry").TRANSFORMS


def run_pipeline(pipeline: List[Any], size: int, scope: str) -> Tuple[int, int]:
    """(H, W) of a synthetic size x size image after the pipeline's steps (loading and packing left out)."""
    import numpy as np
    from mmengine.registry import DefaultScope

    steps = [s for s in pipeline if not _is_loading(s) and not _is_packing(s)]
    img = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    results: Dict[str, Any] = {"img": img, "img_shape": img.shape[:2], "ori_shape": img.shape[:2],
                               "img_path": None, "sample_idx": 0}
    with DefaultScope.overwrite_default_scope(scope):
        transforms = _registry(scope)
        for step in steps:
            name = type_name(step.get("type")) if isinstance(step, dict) else type(step).__name__
            try:
                transform = transforms.build(dict(step)) if isinstance(step, dict) else step
                out = transform(results)
            except Exception as exc:  # noqa: BLE001 - named for the user, with its cause
                raise ShapeError(f"test pipeline step {name} failed on a synthetic image: "
                                 f"{type(exc).__name__}: {exc}") from exc
            if out is None:
                raise ShapeError(f"test pipeline step {name} dropped the synthetic image")
            results = out
    produced = results.get("img")
    if isinstance(produced, (list, tuple)):  # multi-view test-time transforms: the first view
        produced = produced[0]
    if produced is None or not hasattr(produced, "shape") or len(produced.shape) < 2:
        raise ShapeError("the test pipeline produced no image")
    shape = tuple(produced.shape)
    # numpy images are HWC; a tensor (ToTensor-like steps that are not filtered) is CHW
    h, w = (shape[0], shape[1]) if isinstance(produced, np.ndarray) else (shape[-2], shape[-1])
    return int(h), int(w)


def _preprocessor(cfg: Any) -> Dict[str, Any]:
    """The data preprocessor the model is built with: ``model.data_preprocessor``, else the
    top-level ``data_preprocessor`` (mmpretrain's tools copy it into the model)."""
    model = cfg.get("model") or {}
    found = model.get("data_preprocessor") if isinstance(model, dict) else None
    if not isinstance(found, dict):
        found = cfg.get("data_preprocessor")
    return found if isinstance(found, dict) else {}


def input_channels(cfg: Any) -> Optional[int]:
    """Input channels the config declares, without building anything (None: it says nothing).

    In this order: the backbone's ``in_channels``; the data preprocessor's ``mean``/``std``
    length (one value per channel); a test pipeline that loads images as grayscale (1), or in
    colour (3: ``LoadImageFrom*`` without a ``color_type`` loads BGR). The last matters where the
    first convolution does not see the image: YOLOX's Focus stem feeds its first conv 12 channels
    (the image folded 2x2 into depth), and that conv's ``in_channels`` would mislead.
    """
    model = cfg.get("model") or {}
    backbone = model.get("backbone") if isinstance(model, dict) else None
    if isinstance(backbone, dict) and isinstance(backbone.get("in_channels"), int) \
            and backbone["in_channels"] > 0:
        return int(backbone["in_channels"])
    pre = _preprocessor(cfg)
    for key in ("mean", "std"):
        values = pre.get(key)
        if isinstance(values, (list, tuple)) and values:
            return len(values)
    _, pipeline = test_pipeline(cfg)
    colour = False
    for step in pipeline or []:
        if isinstance(step, dict) and _is_loading(step):
            if step.get("color_type") == "grayscale":
                return 1
            colour = colour or (type_name(step.get("type")).startswith("LoadImageFrom")
                                and step.get("color_type", "color") == "color")
    return 3 if colour else None


FORCED = "forced"
IMG_SIZE = "backbone img_size"
PREPROCESSOR_SIZE = "data preprocessor size"
PIPELINE = "test pipeline"
DEFAULT = f"default {DEFAULT_SIZE}"
RULES = (FORCED, IMG_SIZE, PREPROCESSOR_SIZE, PIPELINE, DEFAULT)


class InputSize(NamedTuple):
    """(H, W) and the rule that chose it (one of RULES)."""
    h: int
    w: int
    rule: str


def task(cfg: Any) -> str:
    """'detection', 'segmentation' or 'classification', from the data preprocessor's type, else the
    config's scope (a detector's shape is read from its pipeline, a classifier's pipeline is run)."""
    kind = type_name(_preprocessor(cfg).get("type") or "")
    if "Det" in kind:
        return "detection"
    if "Seg" in kind:
        return "segmentation"
    scope = str(cfg.get("default_scope") or "")
    if scope.startswith(("mmdet", "mmyolo")):
        return "detection"
    if scope.startswith("mmseg"):
        return "segmentation"
    return "classification"


def _pair(value: Any) -> Optional[Tuple[int, int]]:
    """An int or a 2-sequence of positive ints as a pair, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 \
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        return int(value[0]), int(value[1])
    return None


def backbone_img_size(cfg: Any) -> Optional[Tuple[int, int]]:
    """(H, W) the backbone declares with ``img_size`` (an int or (H, W)), None when it does not."""
    model = cfg.get("model") or {}
    backbone = model.get("backbone") if isinstance(model, dict) else None
    return _pair(backbone.get("img_size")) if isinstance(backbone, dict) else None


def preprocessor_size(cfg: Any) -> Optional[Tuple[int, int]]:
    """(H, W) the data preprocessor pads every input to (mmseg's ``size``: the crop), or None."""
    return _pair(_preprocessor(cfg).get("size"))


def _round_up(value: int, divisor: Any) -> int:
    if isinstance(divisor, int) and not isinstance(divisor, bool) and divisor > 1:
        return -(-value // divisor) * divisor
    return value


def _flat_steps(pipeline: List[Any]) -> List[Dict[str, Any]]:
    """Pipeline steps as dicts, test-time-augmentation wrappers opened: their first choice of
    every stage (TestTimeAug's ``transforms`` is a list of alternatives per stage)."""
    out: List[Dict[str, Any]] = []
    for step in pipeline:
        if not isinstance(step, dict):
            continue
        inner = step.get("transforms")
        if isinstance(inner, (list, tuple)) and inner:
            if type_name(step.get("type")) in ("MultiScaleFlipAug",):
                scale = step.get("scale") or step.get("img_scale")
                if scale is not None:
                    out.append({"type": "Resize", "scale": scale, "keep_ratio": True})
            stages = [s[0] if isinstance(s, (list, tuple)) and s else s for s in inner]
            out += _flat_steps(list(stages))
        else:
            out.append(step)
    return out


def _scale_of(step: Dict[str, Any]) -> Optional[Tuple[int, int]]:
    """(H, W) one resize step produces on a landscape image: ``scale`` (or the 2.x ``img_scale``)
    as (long, short) with ``keep_ratio``, as (W, H) without."""
    scale = step.get("scale", step.get("img_scale"))
    if isinstance(scale, list) and scale and isinstance(scale[0], (list, tuple)):
        scale = scale[0]  # a list of scales: the first
    pair = _pair(scale)
    if pair is None:
        return None
    if step.get("keep_ratio"):
        return min(pair), max(pair)
    return pair[1], pair[0]


def read_pipeline(pipeline: List[Any], pad_divisor: Any = None) -> Optional[Tuple[int, int]]:
    """(H, W) a detector's or segmentor's test pipeline produces, read from its last resize step
    and any padding after it, then padded up to ``pad_divisor``; None: no resize step says."""
    size: Optional[Tuple[int, int]] = None
    for step in _flat_steps(pipeline):
        name = type_name(step.get("type"))
        if name.endswith("Resize"):
            size = _scale_of(step) or size
        elif name == "Pad" and size is not None:
            fixed = _pair(step.get("size"))
            if fixed is not None:
                size = fixed[1], fixed[0]  # mmdet's Pad size is (W, H)
            elif step.get("pad_to_square"):
                size = max(size), max(size)
            else:
                size = _round_up(size[0], step.get("size_divisor")), _round_up(size[1], step.get("size_divisor"))
    if size is None:
        return None
    return _round_up(size[0], pad_divisor), _round_up(size[1], pad_divisor)


def _pad_divisor(cfg: Any) -> Any:
    pre = _preprocessor(cfg)
    return pre.get("pad_size_divisor", pre.get("size_divisor"))


def declared_size(cfg: Any) -> Optional[InputSize]:
    """The input size the config states without running anything, or None (a classifier's test
    pipeline decides, or nothing does): a headless classifier's ``img_size``; a segmentor's
    preprocessor size; a detector's or segmentor's test ``Resize``. No import of the codebase
    (the resolve step uses it, and it needs no torch)."""
    _, pipeline = test_pipeline(cfg)
    if task(cfg) == "classification":
        found = None if pipeline else backbone_img_size(cfg)
        return InputSize(*found, IMG_SIZE) if found else None
    found = preprocessor_size(cfg)
    if found:
        return InputSize(*found, PREPROCESSOR_SIZE)
    found = read_pipeline(pipeline or [], _pad_divisor(cfg))
    return InputSize(*found, PIPELINE) if found else None


def input_size(cfg: Any) -> InputSize:
    """(H, W, rule) to trace at, first found wins (see the module's docstring). Raises ShapeError
    when a classifier's test pipeline cannot run and its backbone declares no ``img_size``."""
    found = declared_size(cfg)
    if found is not None:
        return found
    kind, pipeline = test_pipeline(cfg)
    size = NATIVE_SIZES.get(kind or "", DEFAULT_SIZE)
    if pipeline and task(cfg) == "classification":
        scope = cfg.get("default_scope") or "mmpretrain"
        try:
            return InputSize(*run_pipeline(pipeline, size, scope), PIPELINE)
        except ShapeError:
            declared = backbone_img_size(cfg)  # a caption or question step that needs real data
            if declared is None:
                raise
            return InputSize(*declared, IMG_SIZE)
    return InputSize(size, size, DEFAULT if size == DEFAULT_SIZE else f"{kind} native {size}")


def infer_input_shape(cfg: Any) -> Tuple[int, int, int]:
    """(C, H, W) the model sees at test time under this config (C: :func:`input_channels`, 3 when
    the config says nothing). Raises ShapeError when the test pipeline cannot run."""
    channels = input_channels(cfg) or DEFAULT_CHANNELS
    h, w, _ = input_size(cfg)
    return channels, h, w

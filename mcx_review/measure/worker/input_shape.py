"""The input resolution a config's own test pipeline produces.

As mmpretrain's ``.dev_scripts/fill_metafile.py`` does it: take the test dataset's pipeline, drop
the loading step, run the rest on a synthetic image and read the image size it ends with. We also
drop packing (it only changes the layout) and start CIFAR-style datasets from their native 32x32
image. No test pipeline: 224x224.

Channels come from the config too (:func:`input_channels`), not a fixed 3: a grayscale model
(``lenet5_mnist.py``, ``mean=[33.46]``) is traced with a 1-channel input.
"""
from __future__ import annotations

import importlib
from typing import Any, Dict, List, Optional, Tuple

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
    length (one value per channel); a test pipeline that loads images as grayscale (1).
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
    for step in pipeline or []:
        if isinstance(step, dict) and _is_loading(step) and step.get("color_type") == "grayscale":
            return 1
    return None


def infer_input_shape(cfg: Any) -> Tuple[int, int, int]:
    """(C, H, W) the model sees at test time under this config (C: :func:`input_channels`, 3 when
    the config says nothing). Raises ShapeError when the test pipeline cannot run."""
    channels = input_channels(cfg) or DEFAULT_CHANNELS
    kind, pipeline = test_pipeline(cfg)
    size = NATIVE_SIZES.get(kind or "", DEFAULT_SIZE)
    if not pipeline:
        return channels, size, size
    scope = cfg.get("default_scope") or "mmpretrain"
    h, w = run_pipeline(pipeline, size, scope)
    return channels, h, w

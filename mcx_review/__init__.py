"""mcx-review: model-complexity review for changes to OpenMMLab / mmengine configs."""

__version__ = "0.1.0"

"""Number, delta and input-shape formatting shared by the renderers.

``format_count`` reproduces ``fvcore.nn.print_model_statistics._format_size`` (3 significant
decimals, K/M/G/T/P) so our figures read like fvcore's tables and mmcls's get_flops.py. It is a
reimplementation, not an import: fvcore imports torch, and the comment job runs without torch.
"""
from __future__ import annotations

from typing import Optional, Sequence

MINUS = "\u2212"  # true minus sign, as in the PR comment
ARROW = "\u2192"
DASH = "\u2013"  # "not measured" (a module whose forward never ran)

_STEPS = ((1e14, 1e15, "P"), (1e11, 1e12, "T"), (1e8, 1e9, "G"), (1e5, 1e6, "M"), (1e2, 1e3, "K"))


def format_count(n: int, sig_figs: int = 3) -> str:
    """``17582000000 -> '17.582G'``, ``100352 -> '0.1M'``, ``99 -> '99'`` (fvcore's rules, thresholds
    included: a value is shown in a unit once it exceeds a tenth of it)."""
    for threshold, unit, suffix in _STEPS:
        if abs(n) > threshold:
            return "{:.{}f}".format(n / unit, sig_figs).rstrip("0").rstrip(".") + suffix
    return str(n)


def format_percent(change: int, base: int) -> str:
    """Signed relative change with one decimal; a non-zero change never reads as 0.0%."""
    pct = abs(change) / abs(base) * 100
    sign = "+" if change > 0 else MINUS
    text = f"{pct:.1f}"
    if text == "0.0" and change:
        return f"{sign}<0.1%"
    return f"{sign}{text}%"


def format_delta(base: int, head: int) -> str:
    """``(4108970000, 7831550000) -> '+3.722G, +90.6%'``; negatives use the true minus sign; base 0
    gives no percentage; no change gives ``'0'``."""
    change = head - base
    if change == 0:
        return "0"
    text = ("+" if change > 0 else MINUS) + format_count(abs(change))
    if base:
        text += ", " + format_percent(change, base)
    return text


def format_change(base: Optional[int], head: Optional[int]) -> str:
    """A table cell: ``'a → b (Δ, %)'``, or one value when equal or only one side has it."""
    if base is None and head is None:
        return DASH
    if base is None or head is None or base == head:
        one = head if base is None else base
        return format_count(one) if one is not None else DASH
    return f"{format_count(base)} {ARROW} {format_count(head)} ({format_delta(base, head)})"


def format_shape(input_shape: Optional[Sequence[int]]) -> str:
    """``[3, 224, 224] -> '224²'``, ``[3, 224, 320] -> '224×320'`` (H×W); channels other than 3
    are appended: ``[1, 32, 32] -> '32²×1'``."""
    if not input_shape:
        return DASH
    dims = list(input_shape)[-2:]
    if len(dims) == 2 and dims[0] == dims[1]:
        text = f"{dims[0]}\u00b2"
    else:
        text = "\u00d7".join(str(d) for d in dims)
    channels = list(input_shape)[:-2]
    return text + (f"\u00d7{channels[0]}" if len(channels) == 1 and channels[0] != 3 else "")


def format_shapes(base: Optional[Sequence[int]], head: Optional[Sequence[int]]) -> str:
    """``'224²'`` when equal or one-sided, ``'224² → 288²'`` when the input changes."""
    if base and head and list(base) != list(head):
        return f"{format_shape(base)} {ARROW} {format_shape(head)}"
    return format_shape(head or base)
